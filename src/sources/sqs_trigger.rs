//! `sqs` function triggers: Lambda's SQS event-source mapping, run locally.
//!
//! Each trigger's pollers (its `max_concurrency`, one batch in flight each) long-poll the
//! source's queue and gather a batch: up to `batch_size` messages, received for at most
//! `batch_window` after the first one arrived, and no more than Lambda's 6 MB payload (what a
//! receive brings beyond it is made visible again for the next batch). Records that no filter
//! matches are deleted without an invocation, as Lambda does. The rest go to the function in
//! one synchronous invocation, `{"Records": [...]}` in Lambda's shape
//! ([`crate::lambda_events::sqs`]); then:
//!
//! - success: the whole batch is deleted; with `report_batch_item_failures`, all but the
//!   messages the function listed in `batchItemFailures` (a malformed list fails the batch);
//! - a function error, a timeout or a crash: nothing is deleted, and the batch comes back after
//!   the queue's visibility timeout, so SQS's redrive policy decides when a message has failed
//!   often enough to move to the queue's dead-letter queue.
//!
//! A FIFO queue keeps each message group in order: SQS hands out no later message of a group
//! while an earlier one is in flight, and when a message fails, trigd keeps the group's later
//! messages of the batch on the queue too, whatever the function reported.
//!
//! Nothing is deleted before the function has answered, so a crash or a restart in the middle
//! of a batch loses nothing: the messages come back after the visibility timeout. A reload
//! that changes a trigger lets the batch in hand finish before the new pollers begin.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pollers::{Change, Lease, Pollers, Spawn};
use super::sqs::{delete, receive, release, release_late};
use crate::functions::{Host, Invocation, InvokeError};
use crate::lambda_events::sqs as lambda;
use crate::metrics::Metrics;
use crate::pattern::{Matcher, ValidJson};
use crate::rules::{FunctionTriggerKind, RuleSet, SourceKind, SqsMapping, queue_arn};

/// Lambda's largest synchronous payload: a batch stops growing there.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// What a record adds to the payload besides its body (ids, the receipt handle, attributes):
/// a generous estimate, so that a batch stays under [`MAX_PAYLOAD`].
const RECORD_OVERHEAD: usize = 2048;

/// The longest wait between failed receives.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One trigger, as its pollers run it.
#[derive(Debug, Clone, PartialEq)]
struct Trigger {
    function: String,
    source: String,
    queue_url: String,
    mapping: SqsMapping,
}

impl Trigger {
    fn fifo(&self) -> bool {
        self.queue_url.trim_end_matches('/').ends_with(".fifo")
    }
}

/// What every poller shares.
struct Shared {
    client: aws_sdk_sqs::Client,
    host: Arc<Host>,
    metrics: Arc<Metrics>,
    region: String,
}

/// The running `sqs` triggers, keyed `FUNCTION<-SOURCE`.
pub struct SqsTriggers {
    shared: Arc<Shared>,
    pollers: Pollers<Trigger>,
}

impl SqsTriggers {
    pub fn new(
        client: aws_sdk_sqs::Client,
        host: Arc<Host>,
        metrics: Arc<Metrics>,
        region: String,
        shutdown: CancellationToken,
        spawner: Arc<dyn Spawn>,
    ) -> SqsTriggers {
        SqsTriggers {
            shared: Arc::new(Shared {
                client,
                host,
                metrics,
                region,
            }),
            pollers: Pollers::new(shutdown, spawner),
        }
    }

    /// Runs the `sqs` triggers `rules` declares, starting, stopping and restarting pollers as
    /// they changed (see [`Pollers::apply`]).
    pub fn apply(&mut self, rules: &RuleSet) -> Vec<(String, Change)> {
        let declared = declared(rules)
            .into_iter()
            .map(|t| (format!("{}<-{}", t.function, t.source), t))
            .collect();
        let shared = &self.shared;
        self.pollers.apply(
            declared,
            |t| t.mapping.max_concurrency.max(1),
            |t, lease| {
                let matcher = (!t.mapping.filters.is_empty())
                    .then(|| Arc::new(Matcher::new(&t.mapping.filters)));
                run(Arc::clone(shared), Arc::new(t.clone()), matcher, lease)
            },
        )
    }
}

/// The `sqs` triggers of `rules`, with their queues.
fn declared(rules: &RuleSet) -> Vec<Trigger> {
    rules
        .triggers
        .iter()
        .filter_map(|t| {
            let FunctionTriggerKind::Sqs(mapping) = &t.kind else {
                return None;
            };
            let source = rules.sources.iter().find(|s| s.name == mapping.source)?;
            let SourceKind::Sqs { queue_url, .. } = &source.kind else {
                return None;
            };
            Some(Trigger {
                function: t.function.clone(),
                source: mapping.source.clone(),
                queue_url: queue_url.clone(),
                mapping: mapping.clone(),
            })
        })
        .collect()
}

/// Gathers and hands batches to the function until the lease's stop.
async fn run(
    shared: Arc<Shared>,
    t: Arc<Trigger>,
    matcher: Option<Arc<Matcher>>,
    mut lease: Lease,
) {
    if !lease.wait_turn().await {
        return;
    }
    let Lease { stop, batch, .. } = lease;
    let arn = queue_arn(&t.queue_url, &shared.region);
    let mut backoff = Duration::from_secs(1);
    let mut carry = Vec::new();
    loop {
        if stop.retire.is_cancelled() {
            drop(batch);
            release(
                &shared.client,
                &t.queue_url,
                &t.source,
                &shared.metrics,
                handles(&carry),
            )
            .await;
            return;
        }
        let mut messages = std::mem::take(&mut carry);
        let mut deadline = (!messages.is_empty()).then(|| Instant::now() + t.mapping.batch_window);
        let mut size: usize = messages.iter().map(payload_size).sum();
        // Gather.
        loop {
            let want = t
                .mapping
                .batch_size
                .saturating_sub(messages.len() as u32)
                .min(10);
            if want == 0 || size >= MAX_PAYLOAD {
                break;
            }
            let wait = match deadline {
                None => 20,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    if left < Duration::from_secs(1) {
                        // Receives wait whole seconds: the window's last fraction is slept,
                        // then one receive takes what arrived meanwhile.
                        tokio::select! {
                            () = tokio::time::sleep_until(d) => {}
                            () = stop.shutdown.cancelled() => {}
                        }
                        0
                    } else {
                        left.as_secs().min(20) as i32
                    }
                }
            };
            let receive = receive(&shared.client, &t.queue_url, want as i32, wait).send();
            tokio::pin!(receive);
            let result = tokio::select! {
                biased;
                () = stop.shutdown.cancelled() => {
                    // Gathered but not handed over: back on the queue at once for whoever
                    // polls next, rather than after the visibility timeout.
                    release(&shared.client, &t.queue_url, &t.source, &shared.metrics, handles(&messages)).await;
                    return;
                }
                () = stop.retire.cancelled() => {
                    drop(batch);
                    release(&shared.client, &t.queue_url, &t.source, &shared.metrics, handles(&messages)).await;
                    release_late(&shared.client, &t.queue_url, &t.source, &shared.metrics, receive, &stop.shutdown).await;
                    return;
                }
                r = &mut receive => r,
            };
            match result {
                Ok(out) => {
                    backoff = Duration::from_secs(1);
                    for m in out.messages.unwrap_or_default() {
                        size += payload_size(&m);
                        add(&mut messages, m);
                    }
                    if !messages.is_empty() && deadline.is_none() {
                        deadline = Some(Instant::now() + t.mapping.batch_window);
                    }
                    if wait == 0 && deadline.is_some_and(|d| d <= Instant::now()) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(message = "Cannot receive from SQS for a function trigger; will retry.", function = %t.function, source = %t.source, retry_in_secs = backoff.as_secs(), error = %aws_sdk_sqs::error::DisplayErrorContext(&e));
                    shared.metrics.inc(
                        "trigd_source_errors_total",
                        &[("source", &t.source), ("operation", "receive")],
                    );
                    if !messages.is_empty() {
                        break;
                    }
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.retire.cancelled() => {}
                    }
                }
            }
        }
        if messages.is_empty() {
            continue;
        }
        carry = split_at_payload_limit(&mut messages);
        handle(&shared, &t, &arn, matcher.as_deref(), messages).await;
    }
}

/// Adds a received message to the batch; a message received twice (standard queues deliver at
/// least once) keeps one place, with its latest receipt handle.
fn add(messages: &mut Vec<aws_sdk_sqs::types::Message>, m: aws_sdk_sqs::types::Message) {
    match messages
        .iter_mut()
        .find(|old| old.message_id.is_some() && old.message_id == m.message_id)
    {
        Some(old) => *old = m,
        None => messages.push(m),
    }
}

fn payload_size(m: &aws_sdk_sqs::types::Message) -> usize {
    m.body().map_or(0, str::len) + RECORD_OVERHEAD
}

/// Cuts the batch where its payload would pass [`MAX_PAYLOAD`] (keeping at least one
/// message); returns what is left over, for the next batch.
fn split_at_payload_limit(
    messages: &mut Vec<aws_sdk_sqs::types::Message>,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut size = 0;
    let mut keep = messages.len();
    for (i, m) in messages.iter().enumerate() {
        size += payload_size(m);
        if size > MAX_PAYLOAD && i > 0 {
            keep = i;
            break;
        }
    }
    messages.split_off(keep)
}

fn handles(messages: &[aws_sdk_sqs::types::Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m.receipt_handle().map(str::to_owned))
        .collect()
}

/// The message as Lambda's record needs it.
fn message(m: &aws_sdk_sqs::types::Message) -> lambda::Message {
    let attributes: Map<String, Value> = m
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    let message_attributes = m
        .message_attributes()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        lambda::message_attribute(
                            v.data_type(),
                            v.string_value(),
                            v.binary_value().map(|b| b.as_ref()),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    lambda::Message {
        message_id: m.message_id().unwrap_or_default().to_owned(),
        receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        attributes,
        message_attributes,
        md5_of_body: m.md5_of_body().unwrap_or_default().to_owned(),
    }
}

/// How a batch ended, as counted in `trigd_sqs_trigger_batches_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchResult {
    /// Every record handed over was deleted.
    Success,
    /// The function reported some records failed; the others were deleted.
    Partial,
    /// The function failed (or was not loaded): nothing handed over was deleted.
    Failure,
}

impl BatchResult {
    fn label(self) -> &'static str {
        match self {
            BatchResult::Success => "success",
            BatchResult::Partial => "partial",
            BatchResult::Failure => "failure",
        }
    }
}

/// Filters, invokes and deletes one batch.
async fn handle(
    shared: &Shared,
    t: &Trigger,
    arn: &str,
    matcher: Option<&Matcher>,
    messages: Vec<aws_sdk_sqs::types::Message>,
) {
    let messages: Vec<lambda::Message> = messages.iter().map(message).collect();
    let mut records = Vec::with_capacity(messages.len());
    let mut kept = Vec::with_capacity(messages.len());
    let mut filtered = Vec::new();
    let mut scratch = matcher.map(Matcher::scratch);
    let mut hits = Vec::new();
    for m in messages {
        let record = lambda::record(&m, arn, &shared.region);
        let pass = match (matcher, scratch.as_mut()) {
            (Some(matcher), Some(scratch)) => {
                let view = ValidJson::of(&lambda::filter_view(&record));
                matcher.matches_valid(&view, scratch, &mut hits).is_ok() && !hits.is_empty()
            }
            _ => true,
        };
        if pass {
            records.push(record);
            kept.push(m);
        } else {
            filtered.push(m.receipt_handle);
        }
    }
    let labels = [
        ("function", t.function.as_str()),
        ("source", t.source.as_str()),
    ];
    if !filtered.is_empty() {
        shared.metrics.add(
            "trigd_sqs_trigger_messages_total",
            &[labels[0], labels[1], ("outcome", "filtered")],
            filtered.len() as f64,
        );
    }
    if kept.is_empty() {
        delete(
            &shared.client,
            &t.queue_url,
            &t.source,
            &shared.metrics,
            filtered,
        )
        .await;
        return;
    }
    let payload = match serde_json::to_vec(&lambda::batch(records)) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(message = "An SQS batch could not be encoded; it stays on the queue.", function = %t.function, error = %e);
            return;
        }
    };
    let ids: Vec<&str> = kept.iter().map(|m| m.message_id.as_str()).collect();
    let whole_batch = || ids.iter().map(|s| (*s).to_owned()).collect();
    let failed: Vec<String> = match shared
        .host
        .invoke(&t.function, Invocation::new(payload))
        .await
    {
        Err(InvokeError::NotFound(_)) => {
            tracing::warn!(message = "The function of an sqs trigger is not loaded; the batch stays on the queue.", function = %t.function, source = %t.source);
            whole_batch()
        }
        Ok(outcome) => match outcome.result {
            Err(e) => {
                tracing::warn!(message = "The function failed on an SQS batch; the batch comes back after the queue's visibility timeout.", function = %t.function, source = %t.source, records = ids.len(), error = %e.summary());
                whole_batch()
            }
            Ok(_) if !t.mapping.report_batch_item_failures => Vec::new(),
            Ok(result) => match lambda::batch_item_failures(&result, &ids) {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!(message = "The function's batchItemFailures cannot be read; the whole batch is treated as failed, as Lambda does.", function = %t.function, source = %t.source, error = %e);
                    whole_batch()
                }
            },
        },
    };
    let failed = if t.fifo() {
        with_later_in_group(&kept, failed)
    } else {
        failed.into_iter().collect()
    };
    let result = if failed.is_empty() {
        BatchResult::Success
    } else if failed.len() == kept.len() {
        BatchResult::Failure
    } else {
        BatchResult::Partial
    };
    let mut done = filtered;
    let mut succeeded = 0;
    for m in kept {
        if !failed.contains(&m.message_id) {
            succeeded += 1;
            done.push(m.receipt_handle);
        }
    }
    delete(
        &shared.client,
        &t.queue_url,
        &t.source,
        &shared.metrics,
        done,
    )
    .await;
    shared.metrics.inc(
        "trigd_sqs_trigger_batches_total",
        &[labels[0], labels[1], ("result", result.label())],
    );
    for (outcome, n) in [("deleted", succeeded), ("failed", failed.len())] {
        if n > 0 {
            shared.metrics.add(
                "trigd_sqs_trigger_messages_total",
                &[labels[0], labels[1], ("outcome", outcome)],
                n as f64,
            );
        }
    }
}

/// On a FIFO queue, a failed message keeps its group's later messages of the batch on the
/// queue too, so that the group stays in order.
fn with_later_in_group(batch: &[lambda::Message], failed: Vec<String>) -> HashSet<String> {
    let mut failed: HashSet<String> = failed.into_iter().collect();
    let mut stopped: HashSet<&str> = HashSet::new();
    for m in batch {
        let group = m.group().unwrap_or_default();
        if stopped.contains(group) || failed.contains(&m.message_id) {
            stopped.insert(group);
            failed.insert(m.message_id.clone());
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo_message(id: &str, group: &str) -> lambda::Message {
        let mut attributes = Map::new();
        attributes.insert("MessageGroupId".into(), group.into());
        lambda::Message {
            message_id: id.into(),
            receipt_handle: format!("h-{id}"),
            body: String::new(),
            attributes,
            message_attributes: Map::new(),
            md5_of_body: String::new(),
        }
    }

    #[test]
    fn a_failure_in_a_fifo_group_keeps_the_groups_later_messages() {
        let batch = [
            fifo_message("a1", "a"),
            fifo_message("b1", "b"),
            fifo_message("a2", "a"),
            fifo_message("b2", "b"),
            fifo_message("a3", "a"),
        ];
        let mut failed: Vec<String> = with_later_in_group(&batch, vec!["a2".into()])
            .into_iter()
            .collect();
        failed.sort();
        assert_eq!(failed, ["a2", "a3"]);
        assert!(with_later_in_group(&batch, vec![]).is_empty());
    }

    fn sdk_message(id: &str, body_len: usize) -> aws_sdk_sqs::types::Message {
        aws_sdk_sqs::types::Message::builder()
            .message_id(id)
            .receipt_handle(format!("h-{id}"))
            .body("x".repeat(body_len))
            .build()
    }

    #[test]
    fn a_batch_stops_at_lambdas_payload_limit() {
        let mut batch: Vec<_> = (0..30)
            .map(|i| sdk_message(&i.to_string(), 250 * 1024))
            .collect();
        let rest = split_at_payload_limit(&mut batch);
        // 24 × (250 KiB + the record estimate) fit in 6 MiB; a 25th would not.
        assert_eq!(batch.len(), 24);
        assert_eq!(rest.len(), 6);
        assert!(batch.iter().map(payload_size).sum::<usize>() <= MAX_PAYLOAD);
        // A single message is never held back.
        let mut one = vec![sdk_message("big", MAX_PAYLOAD)];
        assert!(split_at_payload_limit(&mut one).is_empty());
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn a_message_received_twice_keeps_one_place_and_its_latest_handle() {
        let mut batch = vec![sdk_message("a", 1), sdk_message("b", 1)];
        let again = aws_sdk_sqs::types::Message::builder()
            .message_id("a")
            .receipt_handle("h-a-2")
            .build();
        add(&mut batch, again);
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].receipt_handle(), Some("h-a-2"));
    }
}
