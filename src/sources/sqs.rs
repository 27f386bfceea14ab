//! The SQS source: long-polls a queue (20 s, batches of 10), turns each message into events,
//! writes their deliveries to the outbox durably, and only then deletes the messages
//! (`DeleteMessageBatch`). A message that cannot be decoded, or whose deliveries could not be
//! stored, stays on the queue: SQS makes it visible again and, with a redrive policy, moves it
//! to the queue's own dead-letter queue. Receive errors (the service down, say) back off and
//! retry, so the source reconnects by itself; they are counted in `trigd_source_errors_total`.

use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::decode::{Message, decode};
use crate::intake::{Batch, Intake};
use crate::metrics::Metrics;
use crate::rules::QueueFormat;

/// One SQS source.
#[derive(Debug, Clone)]
pub struct SqsSource {
    pub name: String,
    pub queue_url: String,
    pub format: QueueFormat,
}

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` from a queue URL (`.../ACCOUNT/NAME`).
pub fn queue_arn(queue_url: &str, region: &str) -> String {
    let mut parts = queue_url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    format!("arn:aws:sqs:{region}:{account}:{name}")
}

/// Polls until `stop`.
pub async fn run(
    client: aws_sdk_sqs::Client,
    source: SqsSource,
    intake: Intake,
    stop: CancellationToken,
) {
    let region = intake.rules().settings.region.clone();
    let arn = queue_arn(&source.queue_url, &region);
    let mut backoff = Duration::from_secs(1);
    loop {
        let receive = client
            .receive_message()
            .queue_url(&source.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(20)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        let result = tokio::select! {
            r = receive => r,
            () = stop.cancelled() => return,
        };
        let messages = match result {
            Ok(out) => {
                backoff = Duration::from_secs(1);
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!(message = "Cannot receive from SQS; will retry.", source = %source.name, retry_in_secs = backoff.as_secs(), error = %aws_sdk_sqs::error::DisplayErrorContext(&e));
                let wait = backoff;
                backoff = receive_failed(intake.metrics(), &source.name, backoff);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => return,
                }
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        handle_batch(&client, &source, &arn, &region, &intake, messages).await;
    }
}

/// The longest wait between failed receives.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// After a failed receive: counts it in `trigd_source_errors_total` and returns the wait after
/// the next failure (doubling, at most [`MAX_BACKOFF`]).
fn receive_failed(metrics: &Metrics, source: &str, backoff: Duration) -> Duration {
    metrics.inc(
        "trigd_source_errors_total",
        &[("source", source), ("operation", "receive")],
    );
    (backoff * 2).min(MAX_BACKOFF)
}

async fn handle_batch(
    client: &aws_sdk_sqs::Client,
    source: &SqsSource,
    arn: &str,
    region: &str,
    intake: &Intake,
    messages: Vec<aws_sdk_sqs::types::Message>,
) {
    let rules = intake.rules();
    let now = Utc::now();
    let mut events = Vec::new();
    // A FIFO queue's message group, per event: its deliveries keep the group's order.
    let mut groups = Vec::new();
    let mut done = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let group = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
            .map(|g| format!("{arn}#{g}"));
        let msg = Message {
            message_id: m.message_id().unwrap_or_default(),
            body: m.body().unwrap_or_default(),
            attributes: m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
            message_attributes: message_attributes(m),
            queue_arn: arn,
            region,
        };
        match decode(&msg, source.format, &rules.settings, now) {
            Ok(evs) => {
                groups.extend(std::iter::repeat_n(group, evs.len()));
                events.extend(evs);
                if let Some(handle) = m.receipt_handle() {
                    done.push((i, handle.to_owned()));
                }
            }
            Err(e) => {
                intake.metrics().inc(
                    "trigd_events_rejected_total",
                    &[("source", &source.name), ("reason", "undecodable")],
                );
                tracing::warn!(message = "An SQS message cannot be decoded; it stays on the queue.", source = %source.name, message_id = msg.message_id, error = %e);
            }
        }
    }
    let batch = Batch::new(&source.name, events).ordered(groups);
    if let Err(e) = intake.accept(&rules, batch, now).await {
        tracing::error!(message = "Events from SQS could not be stored; the messages stay on the queue.", source = %source.name, error = %e);
        return;
    }
    delete(client, source, intake.metrics(), done).await;
}

/// Deletes processed messages; per-entry failures are logged and counted (the message will
/// come back, and its deliveries, having the same ids, are stored once).
async fn delete(
    client: &aws_sdk_sqs::Client,
    source: &SqsSource,
    metrics: &Metrics,
    done: Vec<(usize, String)>,
) {
    if done.is_empty() {
        return;
    }
    let entries: Vec<DeleteMessageBatchRequestEntry> = done
        .into_iter()
        .filter_map(|(i, handle)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .ok()
        })
        .collect();
    match client
        .delete_message_batch()
        .queue_url(&source.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) => {
            if !out.failed().is_empty() {
                metrics.add(
                    "trigd_source_errors_total",
                    &[("source", &source.name), ("operation", "delete")],
                    out.failed().len() as f64,
                );
            }
            for f in out.failed() {
                tracing::warn!(message = "An SQS message could not be deleted; it will be received again.", source = %source.name, code = f.code(), error = f.message().unwrap_or_default());
            }
        }
        Err(e) => {
            metrics.inc(
                "trigd_source_errors_total",
                &[("source", &source.name), ("operation", "delete")],
            );
            tracing::warn!(message = "SQS messages could not be deleted; they will be received again.", source = %source.name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e));
        }
    }
}

/// Message attributes in Lambda's event shape.
fn message_attributes(m: &aws_sdk_sqs::types::Message) -> Map<String, Value> {
    m.message_attributes()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"stringValue": v.string_value(), "dataType": v.data_type()}),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns_from_urls() {
        assert_eq!(
            queue_arn(
                "https://sqs.eu-west-2.amazonaws.com/123456789012/uploads",
                "eu-west-2"
            ),
            "arn:aws:sqs:eu-west-2:123456789012:uploads"
        );
        assert_eq!(
            queue_arn("http://127.0.0.1:5000/123456789012/q.fifo/", "us-east-1"),
            "arn:aws:sqs:us-east-1:123456789012:q.fifo"
        );
    }

    #[test]
    fn failed_receives_are_counted_and_back_off_up_to_a_cap() {
        let m = Metrics::new();
        let mut wait = Duration::from_secs(1);
        let mut waits = Vec::new();
        for _ in 0..7 {
            wait = receive_failed(&m, "uploads", wait);
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30]);
        let labels = [("source", "uploads"), ("operation", "receive")];
        assert_eq!(m.get("trigd_source_errors_total", &labels), 7.0);
        assert!(
            m.render().contains(
                "trigd_source_errors_total{source=\"uploads\",operation=\"receive\"} 7\n"
            )
        );
    }
}
