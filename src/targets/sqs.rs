//! SQS targets: `SendMessage` with the payload as the body. FIFO queues get the rule's
//! `message_group_id` and the delivery id as the deduplication id, so a repeated delivery
//! (after a crash, say) is dropped by SQS itself within its five-minute window.

use aws_sdk_sqs::types::MessageAttributeValue;

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
        Ok(_) => Outcome::delivered(),
        Err(e) => classify(&e),
    }
}

/// EventBridge's dead-letter message attributes.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetterAttributes<'a> {
    pub rule_arn: &'a str,
    pub target_arn: &'a str,
    pub error_code: &'a str,
    pub error_message: &'a str,
    /// `MaximumRetryAttempts` or `MaximumEventAgeInSeconds`; absent when not retried.
    pub exhausted: Option<&'a str>,
    /// Retries made (attempts after the first).
    pub retry_attempts: u32,
}

/// Sends an event to a dead-letter queue, with the reason in string message attributes.
pub async fn send_dead_letter(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    event: &str,
    a: &DeadLetterAttributes<'_>,
) -> Result<(), String> {
    let string = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .map_err(|e| e.to_string())
    };
    let retries = a.retry_attempts.to_string();
    // SQS refuses empty attribute values and caps messages; keep the error message bounded.
    let message: String = a.error_message.chars().take(1024).collect();
    let mut request = client
        .send_message()
        .queue_url(queue_url)
        .message_body(event)
        .message_attributes("RULE_ARN", string(a.rule_arn)?)
        .message_attributes("TARGET_ARN", string(a.target_arn)?)
        .message_attributes("ERROR_CODE", string(a.error_code)?)
        .message_attributes("RETRY_ATTEMPTS", string(&retries)?);
    if !message.is_empty() {
        request = request.message_attributes("ERROR_MESSAGE", string(&message)?);
    }
    if let Some(x) = a.exhausted {
        request = request.message_attributes("EXHAUSTED_RETRY_CONDITION", string(x)?);
    }
    request
        .send()
        .await
        .map(drop)
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
}
