//! The SQS source: long-polls a queue (20 s, batches of 10), turns each message into events,
//! writes their deliveries to the outbox durably, and only then deletes the messages
//! (`DeleteMessageBatch`). A message that cannot be decoded, or whose deliveries could not be
//! stored, stays on the queue: SQS makes it visible again and, with a redrive policy, moves it
//! to the queue's own dead-letter queue. Receive errors (the service down, say) back off and
//! retry, so the source reconnects by itself; they are counted in `trigd_source_errors_total`.
//!
//! [`SqsSources`] keeps the pollers as the current rule set declares them: a reload starts new
//! sources, stops removed ones and restarts changed ones, leaving the others untouched.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::decode::{Message, decode};
pub use super::pollers::Change;
use super::pollers::{Lease, Pollers, Spawn};
use crate::intake::{Batch, Intake};
use crate::metrics::Metrics;
use crate::route::Received;
use crate::rules::{FunctionTriggerKind, QueueFormat, RuleSet, SourceKind};

/// One SQS source.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsSource {
    pub name: String,
    pub queue_url: String,
    pub format: QueueFormat,
}

pub use crate::rules::queue_arn;

/// The running SQS sources, by name.
pub struct SqsSources {
    client: aws_sdk_sqs::Client,
    intake: Intake,
    pollers: Pollers<(SqsSource, u32)>,
}

impl SqsSources {
    pub fn new(
        client: aws_sdk_sqs::Client,
        intake: Intake,
        shutdown: CancellationToken,
        spawner: Arc<dyn Spawn>,
    ) -> SqsSources {
        SqsSources {
            client,
            intake,
            pollers: Pollers::new(shutdown, spawner),
        }
    }

    /// Runs the SQS sources `rules` declares: starts the new ones, stops the removed ones and
    /// restarts those whose queue, format or concurrency changed; the others keep running
    /// untouched. A queue an `sqs` function trigger consumes is polled by that trigger
    /// instead (see [`super::sqs_trigger`]). Returns what changed, by source name, sorted.
    pub fn apply(&mut self, rules: &RuleSet) -> Vec<(String, Change)> {
        let declared = rules
            .sources
            .iter()
            .filter(|s| !consumed_by_trigger(rules, &s.name))
            .filter_map(|s| match &s.kind {
                SourceKind::Sqs {
                    queue_url,
                    format,
                    concurrency,
                } => Some((
                    s.name.clone(),
                    (
                        SqsSource {
                            name: s.name.clone(),
                            queue_url: queue_url.clone(),
                            format: *format,
                        },
                        *concurrency,
                    ),
                )),
                _ => None,
            })
            .collect();
        let (client, intake) = (&self.client, &self.intake);
        self.pollers.apply(
            declared,
            |(_, n)| *n,
            |(source, _), lease| run(client.clone(), source.clone(), intake.clone(), lease),
        )
    }
}

/// Whether an `sqs` function trigger consumes the source's queue.
pub fn consumed_by_trigger(rules: &RuleSet, source: &str) -> bool {
    rules
        .triggers_on(source)
        .any(|t| matches!(t.kind, FunctionTriggerKind::Sqs(_)))
}

/// Polls until the lease's stop, after the pollers it replaces finished their batches.
async fn run(client: aws_sdk_sqs::Client, source: SqsSource, intake: Intake, mut lease: Lease) {
    if !lease.wait_turn().await {
        return;
    }
    let Lease { stop, batch, .. } = lease;
    let region = intake.rules().settings.region.clone();
    let arn = queue_arn(&source.queue_url, &region);
    let mut backoff = Duration::from_secs(1);
    loop {
        if stop.retire.is_cancelled() {
            return;
        }
        let receive = receive(&client, &source.queue_url, 10, 20).send();
        tokio::pin!(receive);
        let result = tokio::select! {
            biased;
            () = stop.shutdown.cancelled() => return,
            () = stop.retire.cancelled() => {
                drop(batch);
                release_late(&client, &source.queue_url, &source.name, intake.metrics(), receive, &stop.shutdown).await;
                return;
            }
            r = &mut receive => r,
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
                    () = stop.retire.cancelled() => return,
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

/// A long poll for up to `max` messages (1–10), waiting up to `wait` seconds (0–20), with
/// every system attribute and message attribute.
pub(super) fn receive(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: i32,
    wait: i32,
) -> aws_sdk_sqs::operation::receive_message::builders::ReceiveMessageFluentBuilder {
    client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
}

/// After a retired poller's receive in flight returns: its messages are made visible again
/// at once (`ChangeMessageVisibilityBatch` to 0), unread, for the poller that took over. The
/// long poll is not abandoned because the queue would still hand it messages and hide them for
/// the visibility timeout.
pub(super) async fn release_late<E>(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    name: &str,
    metrics: &Metrics,
    receive: impl Future<
        Output = Result<aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput, E>,
    >,
    shutdown: &CancellationToken,
) {
    let received = tokio::select! {
        biased;
        () = shutdown.cancelled() => return,
        r = receive => r,
    };
    let Ok(out) = received else {
        return;
    };
    let handles = out
        .messages
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.receipt_handle().map(str::to_owned))
        .collect();
    release(client, queue_url, name, metrics, handles).await;
}

/// Makes received messages visible again at once (`ChangeMessageVisibilityBatch` to 0), in
/// requests of ten; failures are counted in `trigd_source_errors_total{operation="release"}`
/// (those messages come back after their visibility timeout instead).
pub(super) async fn release(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    name: &str,
    metrics: &Metrics,
    handles: Vec<String>,
) {
    let count = handles.len();
    for chunk in handles.chunks(10) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        let released = client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        let failed = match released {
            Ok(out) => out.failed().len(),
            Err(e) => {
                tracing::warn!(message = "SQS messages could not be released; they come back after the visibility timeout.", source = %name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e));
                chunk.len()
            }
        };
        if failed > 0 {
            metrics.add(
                "trigd_source_errors_total",
                &[("source", name), ("operation", "release")],
                failed as f64,
            );
        }
    }
    if count > 0 {
        tracing::info!(message = "SQS messages received while stopping were left on the queue.", source = %name, messages = count);
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
    // As received, for function triggers on the source.
    let mut received = Vec::new();
    for m in &messages {
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
                received.push(Received::Sqs {
                    message_id: msg.message_id,
                    body: msg.body,
                });
                groups.extend(std::iter::repeat_n(group, evs.len()));
                events.extend(evs);
                if let Some(handle) = m.receipt_handle() {
                    done.push(handle.to_owned());
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
    let batch = Batch::new(&source.name, events)
        .ordered(groups)
        .with_received(received);
    if let Err(e) = intake.accept(&rules, batch, now).await {
        tracing::error!(message = "Events from SQS could not be stored; the messages stay on the queue.", source = %source.name, error = %e);
        return;
    }
    delete(
        client,
        &source.queue_url,
        &source.name,
        intake.metrics(),
        done,
    )
    .await;
}

/// Deletes processed messages, in requests of ten; per-entry failures are logged and
/// counted (the message will come back, and its deliveries, having the same ids, are stored
/// once). Returns how many could not be deleted.
pub(super) async fn delete(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    name: &str,
    metrics: &Metrics,
    handles: Vec<String>,
) -> usize {
    let mut failed = 0;
    for chunk in handles.chunks(10) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
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
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                failed += out.failed().len();
                for f in out.failed() {
                    tracing::warn!(message = "An SQS message could not be deleted; it will be received again.", source = %name, code = f.code(), error = f.message().unwrap_or_default());
                }
            }
            Err(e) => {
                failed += chunk.len();
                tracing::warn!(message = "SQS messages could not be deleted; they will be received again.", source = %name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e));
            }
        }
    }
    if failed > 0 {
        metrics.add(
            "trigd_source_errors_total",
            &[("source", name), ("operation", "delete")],
            failed as f64,
        );
    }
    failed
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
