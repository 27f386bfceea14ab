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

use crate::metrics::Metrics;
use crate::targets::ErrorCode;

pub use crate::route::{Delivery, MAX_HOPS, delivery_id};

/// Where results passed on to trigd's bus (`on_success: {bus: true}`) go: routed, stored,
/// counted and archived like any source's event. The daemon gives the intake; a trait, so
/// that this layer does not reach up to the one above it.
pub trait Bus: Send + Sync {
    /// Passes `event` on, `hops` destinations deep.
    fn pass_on<'a>(
        &'a self,
        rules: &'a crate::rules::RuleSet,
        event: serde_json::Value,
        hops: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BusError>> + Send + 'a>>;
}

/// Why an event could not be passed on to the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The matcher cannot read it (nested too deep): retrying cannot help.
    #[error("{0}")]
    Unreadable(String),
    /// It could not be stored: the attempt that produced it is repeated later.
    #[error("the outbox could not store it")]
    Store(#[source] store::StoreError),
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
