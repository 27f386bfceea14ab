//! SNS targets: `Publish` with the payload as the message and the rule's optional subject.
//! FIFO topics (`.fifo`) get the rule name as the message group and the delivery id as the
//! deduplication id.

use super::{Attempt, Outcome};
use crate::aws::classify;

/// One `Publish`.
pub async fn deliver(
    client: &aws_sdk_sns::Client,
    topic_arn: &str,
    subject: Option<&str>,
    attempt: &Attempt<'_>,
) -> Outcome {
    let mut request = client
        .publish()
        .topic_arn(topic_arn)
        .message(attempt.payload);
    if let Some(s) = subject {
        request = request.subject(s);
    }
    if topic_arn.ends_with(".fifo") {
        request = request
            .message_group_id(attempt.rule)
            .message_deduplication_id(attempt.delivery_id);
    }
    match request.send().await {
        Ok(_) => Outcome::delivered(),
        Err(e) => classify(&e),
    }
}
