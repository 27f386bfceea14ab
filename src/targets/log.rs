//! The `log` target: one structured log line per delivery, for trying rules out and for
//! auditing. It cannot fail.

use super::{Attempt, Outcome};

/// Logs the attempt at `info` (message `Delivery.`, with rule, target, delivery id, attempt
/// number and the payload as fields) and reports it delivered.
pub fn deliver(attempt: &Attempt<'_>) -> Outcome {
    tracing::info!(
        message = "Delivery.",
        rule = attempt.rule,
        target = attempt.target,
        event_id = attempt.event_id,
        delivery_id = attempt.delivery_id,
        attempt = attempt.attempt,
        payload = attempt.payload,
    );
    Outcome::delivered()
}
