//! SQS targets: `SendMessage` with the payload as the body. FIFO queues get the rule's
//! `message_group_id` and the delivery id as the deduplication id, so a repeated delivery
//! (after a crash, say) is dropped by SQS itself within its five-minute window.

use super::{Attempt, Outcome};
use crate::aws::classify;

/// One `SendMessage`.
pub async fn deliver(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    message_group_id: Option<&str>,
    attempt: &Attempt<'_>,
) -> Outcome {
    let mut request = client
        .send_message()
        .queue_url(queue_url)
        .message_body(attempt.payload);
    if let Some(group) = message_group_id {
        request = request
            .message_group_id(group)
            .message_deduplication_id(attempt.delivery_id);
    }
    match request.send().await {
        Ok(_) => Outcome::Delivered,
        Err(e) => classify(&e),
    }
}
