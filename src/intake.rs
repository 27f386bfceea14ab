//! The intake: the one door every source hands its events to (webhooks, PutEvents, SNS over
//! HTTP, SQS, schedule fires, results passed on to trigd's bus). For a [`Batch`] it
//!
//! 1. routes each event ([`crate::route`]: through the matcher, or to its one rule for a
//!    schedule fire);
//! 2. stores every delivery of the batch in one outbox commit, with a schedule's last-fire
//!    mark when given, and the ordering key of each event's FIFO group;
//! 3. archives the events, when the archive is on;
//! 4. dead-letters the deliveries whose payload cannot be rendered (counted in
//!    `trigd_dead_letters_total{code="INVALID_PARAMETER"}`);
//! 5. counts `trigd_events_received_total{source}`, `trigd_rule_matches_total{rule}` and
//!    `trigd_events_unmatched_total`;
//! 6. for the `s3` and `sns` triggers of functions on the source, stores the asynchronous
//!    invocations its messages make, in Lambda's shapes, in the same commit
//!    (`trigd_trigger_invocations_total{source}`).
//!
//! The same for every source. A source may acknowledge what it received (an HTTP 2xx, an SQS
//! delete) only once [`Intake::accept`] returned `Ok`; on an error nothing is counted as
//! received, and a batch given again is stored once (deliveries keep their ids).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;

use crate::archive::Archive;
use crate::delivery::dead_letter_unrendered;
use crate::delivery::store::{Outbox, StoreError};
use crate::metrics::Metrics;
use crate::pattern::{EventError, Scratch, ValidJson};
use crate::route::{Received, Routed, add_rule, route_event, route_triggers};
use crate::rules::{Rule, RuleSet};

/// The intake; cheap to clone (one shared state).
#[derive(Clone)]
pub struct Intake {
    inner: Arc<Inner>,
}

struct Inner {
    /// The current rules; swapped whole on reload.
    rules: watch::Receiver<Arc<RuleSet>>,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    /// Where accepted events are recorded for replay, when on.
    archive: Option<Archive>,
    /// Reused matcher working memory (one per concurrent batch at most).
    scratch: Mutex<Vec<Scratch>>,
}

/// Why a batch was not accepted. Nothing of it counts as received.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// An event the matcher cannot read (nested too deep, say): nothing of the batch was
    /// stored.
    #[error("{0}")]
    Malformed(#[source] EventError),
    /// The outbox could not store the batch's deliveries: nothing of it was stored.
    #[error("the outbox could not store the events")]
    Store(#[source] StoreError),
    /// The deliveries are stored, but the dead letter of one that cannot be rendered is not:
    /// the batch may be given again (its deliveries are stored once).
    #[error("a dead letter could not be stored")]
    DeadLetter(#[source] StoreError),
}

/// Events from one source, accepted together.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The source's name, the label of `trigd_events_received_total`; `None`: each event's
    /// own `source` field (PutEvents, schedule fires, the bus).
    pub source: Option<&'a str>,
    pub events: Vec<Value>,
    /// `ordering_keys[i]` for `events[i]` (missing or `None`: none): the deliveries of events
    /// with the same key are attempted in order, per rule and target (see
    /// [`crate::delivery::Delivery::ordering_key`]). FIFO queues pass their message group.
    pub ordering_keys: Vec<Option<String>>,
    /// How many destinations led to these events (see [`crate::delivery::Delivery::hops`]).
    pub hops: u32,
    /// A schedule fire: its events go to this rule only.
    pub fire: Option<Fire<'a>>,
    /// The messages as the source received them, for the `s3` and `sns` triggers of
    /// functions on the source ([`crate::route::route_triggers`]).
    pub received: Vec<Received<'a>>,
}

/// A schedule fire: its event goes to `rule` alone (not through the matcher), its first
/// attempt is due at `due` (after the rule's jitter), and the rule's last-fire mark is stored
/// in the same commit as its deliveries.
#[derive(Debug, Clone, Copy)]
pub struct Fire<'a> {
    pub rule: &'a Rule,
    pub due: DateTime<Utc>,
    /// The fire's scheduled time, in Unix milliseconds.
    pub mark_ms: i64,
}

impl<'a> Batch<'a> {
    /// Events from the source named `source`.
    pub fn new(source: &'a str, events: Vec<Value>) -> Batch<'a> {
        Batch {
            source: Some(source),
            ..Batch::of_events(events)
        }
    }

    /// Events counted under their own `source` field.
    pub fn of_events(events: Vec<Value>) -> Batch<'a> {
        Batch {
            source: None,
            events,
            ordering_keys: Vec::new(),
            hops: 0,
            fire: None,
            received: Vec::new(),
        }
    }

    /// With the messages as received, for function triggers on the source.
    pub fn with_received(mut self, received: Vec<Received<'a>>) -> Batch<'a> {
        self.received = received;
        self
    }

    /// With an ordering key per event.
    pub fn ordered(mut self, keys: Vec<Option<String>>) -> Batch<'a> {
        self.ordering_keys = keys;
        self
    }

    /// A schedule fire's event (see [`Fire`]).
    pub fn fire(event: Value, fire: Fire<'a>) -> Batch<'a> {
        Batch {
            fire: Some(fire),
            ..Batch::of_events(vec![event])
        }
    }

    /// A result passed on to trigd's bus, `hops` destinations from its origin.
    pub fn passed_on(event: Value, hops: u32) -> Batch<'a> {
        Batch {
            hops,
            ..Batch::of_events(vec![event])
        }
    }
}

impl Intake {
    pub fn new(
        rules: watch::Receiver<Arc<RuleSet>>,
        outbox: Outbox,
        metrics: Arc<Metrics>,
        archive: Option<Archive>,
    ) -> Intake {
        Intake {
            inner: Arc::new(Inner {
                rules,
                outbox,
                metrics,
                archive,
                scratch: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The current rules: take them once per batch, decide with them (authentication, the
    /// event's envelope) and pass them to [`Intake::accept`].
    pub fn rules(&self) -> Arc<RuleSet> {
        self.inner.rules.borrow().clone()
    }

    /// The daemon's metrics, for what a source counts itself (refusals, its own errors).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Routes `batch` with `rules`, stores its deliveries in one commit, archives its
    /// events, dead-letters what cannot be rendered and counts it (see the module doc).
    pub async fn accept(
        &self,
        rules: &RuleSet,
        batch: Batch<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), IntakeError> {
        let inner = &*self.inner;
        let mut routed = Routed::default();
        // Texts are kept for the archive only.
        let mut texts = match inner.archive {
            Some(_) => Some(Vec::with_capacity(batch.events.len())),
            None => None,
        };
        let mut scratch = inner
            .scratch
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_else(|| rules.matcher().scratch());
        let unmatched = route_batch(
            rules,
            &batch,
            &mut scratch,
            &mut routed,
            texts.as_mut(),
            now,
        );
        if let Ok(mut pool) = inner.scratch.lock() {
            pool.push(scratch);
        }
        let unmatched = unmatched.map_err(IntakeError::Malformed)?;
        let triggered = match batch.source {
            Some(source) => batch
                .received
                .iter()
                .map(|r| route_triggers(rules, source, r, now, &mut routed))
                .sum(),
            None => 0,
        };
        let mark = batch.fire.map(|f| (f.rule.name.clone(), f.mark_ms));
        if !routed.deliveries.is_empty() || mark.is_some() {
            inner
                .outbox
                .enqueue(routed.deliveries, mark)
                .await
                .map_err(|e| {
                    tracing::error!(message = "The outbox refused a write.", error = %e);
                    IntakeError::Store(e)
                })?;
        }
        if let (Some(archive), Some(texts)) = (&inner.archive, &texts) {
            for t in texts {
                archive.record(t);
            }
        }
        let now_ms = now.timestamp_millis();
        for (d, error) in routed.failed {
            dead_letter_unrendered(&inner.outbox, &inner.metrics, &d, error, now_ms)
                .await
                .map_err(|e| {
                    tracing::error!(message = "Could not write a dead letter.", error = %e);
                    IntakeError::DeadLetter(e)
                })?;
        }
        let m = &inner.metrics;
        match batch.source {
            Some(source) => m.add(
                "trigd_events_received_total",
                &[("source", source)],
                batch.events.len() as f64,
            ),
            None => {
                for event in &batch.events {
                    let source = event.get("source").and_then(Value::as_str);
                    m.inc(
                        "trigd_events_received_total",
                        &[("source", source.unwrap_or_default())],
                    );
                }
            }
        }
        for rule in &routed.rules {
            m.inc("trigd_rule_matches_total", &[("rule", rule)]);
        }
        if unmatched > 0 {
            m.add("trigd_events_unmatched_total", &[], unmatched as f64);
        }
        if let (Some(source), true) = (batch.source, triggered > 0) {
            m.add(
                "trigd_trigger_invocations_total",
                &[("source", source)],
                triggered as f64,
            );
        }
        Ok(())
    }
}

/// Routes every event of `batch` into `routed` (and its text into `texts`, when given: the
/// archive is on). Returns how many events matched no rule.
fn route_batch(
    rules: &RuleSet,
    batch: &Batch<'_>,
    scratch: &mut Scratch,
    routed: &mut Routed,
    mut texts: Option<&mut Vec<ValidJson>>,
    now: DateTime<Utc>,
) -> Result<usize, EventError> {
    let mut unmatched = 0;
    for (i, event) in batch.events.iter().enumerate() {
        let text = ValidJson::of(event);
        let (first, first_failed, matched) = (
            routed.deliveries.len(),
            routed.failed.len(),
            routed.rules.len(),
        );
        match batch.fire {
            Some(f) => add_rule(rules, f.rule, event, &text, now, f.due, routed),
            None => route_event(rules, scratch, event, &text, now, routed)?,
        }
        if routed.rules.len() == matched {
            unmatched += 1;
        }
        if let Some(Some(key)) = batch.ordering_keys.get(i) {
            for d in &mut routed.deliveries[first..] {
                d.ordering_key = Some(key.clone());
            }
        }
        if batch.hops > 0 {
            let made = routed.deliveries[first..].iter_mut();
            let failed = routed.failed[first_failed..].iter_mut().map(|(d, _)| d);
            for d in made.chain(failed) {
                d.hops = batch.hops;
            }
        }
        if let Some(texts) = texts.as_deref_mut() {
            texts.push(text);
        }
    }
    Ok(unmatched)
}

/// Results passed on to trigd's bus come in as any source's events.
impl crate::delivery::Bus for Intake {
    fn pass_on<'a>(
        &'a self,
        rules: &'a RuleSet,
        event: Value,
        hops: u32,
        now: DateTime<Utc>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), crate::delivery::BusError>> + Send + 'a>,
    > {
        Box::pin(async move {
            use crate::delivery::BusError;
            match self.accept(rules, Batch::passed_on(event, hops), now).await {
                Ok(()) => Ok(()),
                Err(IntakeError::Malformed(e)) => Err(BusError::Unreadable(e.to_string())),
                Err(IntakeError::Store(e) | IntakeError::DeadLetter(e)) => Err(BusError::Store(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;

    fn rules() -> RuleSet {
        let dir = tempfile::tempdir().unwrap();
        let text =
            "rules:\n  - name: a\n    pattern: {source: [a]}\n    targets: [{id: t, log: true}]\n";
        std::fs::write(dir.path().join("r.yaml"), text).unwrap();
        crate::config::load_rules(dir.path(), crate::rules::Settings::default()).unwrap()
    }

    /// An intake over `rules()` with a fresh outbox (and the directory that holds it).
    fn fixture() -> (
        tempfile::TempDir,
        Outbox,
        Arc<RuleSet>,
        Arc<Metrics>,
        Intake,
    ) {
        let state = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(state.path()).unwrap();
        let rules = Arc::new(rules());
        let (_tx, rx) = watch::channel(Arc::clone(&rules));
        let metrics = Arc::new(Metrics::new());
        let intake = Intake::new(rx, outbox.clone(), Arc::clone(&metrics), None);
        (state, outbox, rules, metrics, intake)
    }

    fn event(id: &str, source: &str) -> Value {
        json!({"version": "0", "id": id, "source": source, "detail-type": "x", "detail": {}})
    }

    #[tokio::test]
    async fn a_batch_is_stored_in_one_commit_with_its_ordering_keys_and_counted() {
        let (_state, outbox, rules, metrics, intake) = fixture();
        let now = Utc::now();
        let events = vec![event("e1", "a"), event("e2", "a"), event("e3", "z")];
        let keys = vec![Some("g".to_owned()), Some("g".to_owned())];
        let commits = outbox.commits();
        let batch = Batch::new("q", events).ordered(keys);
        intake.accept(&rules, batch, now).await.unwrap();
        assert_eq!(outbox.commits(), commits + 1, "one commit for the batch");
        assert_eq!(outbox.stats().await.unwrap().pending, 2);
        // The group's head only: its second delivery waits for the first.
        let due = outbox
            .due(now.timestamp_millis(), 10, &HashSet::new())
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event_id, "e1");
        assert_eq!(due[0].ordering_key.as_deref(), Some("g"));
        assert_eq!(
            metrics.get("trigd_events_received_total", &[("source", "q")]),
            3.0
        );
        assert_eq!(
            metrics.get("trigd_rule_matches_total", &[("rule", "a")]),
            2.0
        );
        assert_eq!(metrics.get("trigd_events_unmatched_total", &[]), 1.0);
    }

    #[tokio::test]
    async fn events_passed_on_keep_their_hops_and_are_counted_by_their_source() {
        let (_state, outbox, rules, metrics, intake) = fixture();
        let now = Utc::now();
        let batch = Batch::passed_on(event("e1", "a"), 3);
        intake.accept(&rules, batch, now).await.unwrap();
        let due = outbox
            .due(now.timestamp_millis(), 10, &HashSet::new())
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].hops, 3);
        assert_eq!(due[0].ordering_key, None);
        assert_eq!(
            metrics.get("trigd_events_received_total", &[("source", "a")]),
            1.0
        );
    }
}
