//! Deliveries: the outbox they wait in, the policy that spaces their retries, the dispatcher
//! that runs them, and the dead letters they end in when they cannot succeed.
//!
//! The promise: a delivery is written to the outbox (fsync'd) before its source is
//! acknowledged, and leaves the outbox only when its target succeeded or it was written, with
//! its reason, to the dead-letter directory. A crash at any point loses nothing; it may repeat.

pub mod destination;
pub mod dispatcher;
pub mod policy;
pub mod store;

use crate::event::stable_id_of;
use crate::metrics::Metrics;
use crate::targets::ErrorCode;

/// A delivery waiting in the outbox: one (event, rule, target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable idempotency key derived from rule, target and event id: the same event routed
    /// twice is the same delivery (see [`delivery_id`]).
    pub id: String,
    pub rule: String,
    /// The target's id within the rule.
    pub target: String,
    pub event_id: String,
    /// The event's JSON text, kept for dead letters and redrive.
    pub event: String,
    /// The exact text the target receives.
    pub payload: String,
    /// Attempts made so far (0 for a new delivery).
    pub attempts: u32,
    /// When the event was accepted, in Unix milliseconds (for `max_event_age`).
    pub first_seen_ms: i64,
    /// When the next attempt is due, in Unix milliseconds.
    pub next_attempt_ms: i64,
    /// The first and the latest error, when an attempt failed.
    pub first_error: Option<String>,
    pub last_error: Option<String>,
    /// How many destinations (`on_success`/`on_failure`) led here: 0 for an event from a
    /// source, one more for each result fed back. Capped at [`MAX_HOPS`].
    pub hops: u32,
    /// Deliveries of one rule and target with the same key are attempted one at a time, in
    /// the order they were stored, the next only once the one before it has left the outbox
    /// (delivered or dead-lettered): a FIFO queue's message group keeps its order through
    /// trigd. `None` for everything else.
    pub ordering_key: Option<String>,
}

#[cfg(test)]
impl Delivery {
    /// A new delivery for unit tests: rule `r`, target `t`, event `e` (`{}`, also the
    /// payload), due at `next_attempt_ms`.
    pub(crate) fn for_test(id: &str, next_attempt_ms: i64) -> Delivery {
        Delivery {
            id: id.to_owned(),
            rule: "r".to_owned(),
            target: "t".to_owned(),
            event_id: "e".to_owned(),
            event: "{}".to_owned(),
            payload: "{}".to_owned(),
            attempts: 0,
            first_seen_ms: 0,
            next_attempt_ms,
            first_error: None,
            last_error: None,
            hops: 0,
            ordering_key: None,
        }
    }
}

/// Asynchronous invocations of local functions (the Invoke API's `Event`) wait in the
/// outbox as deliveries of [`crate::rules::INVOKE_RULE`] to the function, with the caller's
/// request id as their event id.
impl crate::functions::invoke_api::EventQueue for store::Outbox {
    fn enqueue<'a>(
        &'a self,
        function: &'a str,
        request_id: &'a str,
        payload: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        let rule = crate::rules::INVOKE_RULE;
        let now = chrono::Utc::now().timestamp_millis();
        let d = Delivery {
            id: delivery_id(rule, function, request_id),
            rule: rule.to_owned(),
            target: function.to_owned(),
            event_id: request_id.to_owned(),
            event: payload.clone(),
            payload,
            attempts: 0,
            first_seen_ms: now,
            next_attempt_ms: now,
            first_error: None,
            last_error: None,
            hops: 0,
            ordering_key: None,
        };
        Box::pin(async move {
            store::Outbox::enqueue(self, vec![d], None)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The longest chain of destinations: a rule whose result, on trigd's bus, matches a rule that
/// feeds the bus again stops here (Lambda's recursion guard stops at 16 too).
pub const MAX_HOPS: u32 = 16;

/// The idempotency key of (rule, target, event): also sent to targets (HTTP
/// `Idempotency-Key`, `TRIGD_DELIVERY_ID`) so they can drop repeats.
pub fn delivery_id(rule: &str, target: &str, event_id: &str) -> String {
    stable_id_of(&[rule, "\n", target, "\n", event_id])
}

/// Dead-letters a delivery whose payload could not be rendered (its input transformer made
/// invalid JSON, say): it can never succeed, so it is not stored for attempts. EventBridge
/// drops such events silently; trigd keeps them, with the reason.
pub async fn dead_letter_unrendered(
    outbox: &store::Outbox,
    metrics: &Metrics,
    d: &Delivery,
    error: String,
    now_ms: i64,
) -> Result<(), store::StoreError> {
    tracing::warn!(message = "Delivery cannot be rendered; dead-lettered.", rule = %d.rule, target = %d.target, %error);
    metrics.inc(
        "trigd_dead_letters_total",
        &[
            ("rule", &d.rule),
            ("target", &d.target),
            ("code", ErrorCode::InvalidParameter.as_str()),
        ],
    );
    let info = store::DeadLetterInfo {
        code: ErrorCode::InvalidParameter,
        error,
        exhausted: None,
        at_ms: now_ms,
    };
    outbox.dead_letter(d, info).await.map(drop)
}

#[cfg(test)]
mod tests {
    #[test]
    fn delivery_ids_are_stable_across_versions() {
        // Sent as `Idempotency-Key` and stored in the outbox: a new version must compute the
        // same id for the same delivery, or a redelivery after an upgrade looks new.
        assert_eq!(
            super::delivery_id("r", "t", "e"),
            "c6f17177-608c-46d2-02db-1c324b72193d"
        );
    }
}
