//! When to try a failed delivery again, and when to give up: EventBridge's retry policy
//! (`max_attempts` retries, `max_event_age`), exponential backoff with full jitter, and the
//! target's own `Retry-After`. Pure: the clock and the dice come in as arguments.

use std::time::Duration;

use crate::rules::RetryPolicy;

/// Backoff shape: the n-th retry waits a random time in `[0, min(cap, base * 2^(n-1))]`,
/// never less than a `Retry-After` the target gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

/// Which limit ended the retries (EventBridge's `EXHAUSTED_RETRY_CONDITION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    MaximumRetryAttempts,
    MaximumEventAgeInSeconds,
}

impl Exhausted {
    pub fn as_str(self) -> &'static str {
        match self {
            Exhausted::MaximumRetryAttempts => "MaximumRetryAttempts",
            Exhausted::MaximumEventAgeInSeconds => "MaximumEventAgeInSeconds",
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again at this instant (Unix ms).
    RetryAt(i64),
    /// Give up: the dead letter.
    GiveUp(Exhausted),
}

/// Decides after attempt number `attempts_made` (1 for the first) failed at `now_ms`.
/// `jitter` is a uniform draw from `[0, 1)`.
pub fn after_failure(
    policy: &RetryPolicy,
    backoff: &Backoff,
    attempts_made: u32,
    first_seen_ms: i64,
    now_ms: i64,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Decision {
    // `max_attempts` counts retries: the first attempt is not one.
    if attempts_made > policy.max_attempts {
        return Decision::GiveUp(Exhausted::MaximumRetryAttempts);
    }
    let exp = attempts_made.saturating_sub(1).min(30);
    let ceiling = backoff.base.saturating_mul(1u32 << exp).min(backoff.cap);
    let mut delay = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
    if let Some(ra) = retry_after {
        delay = delay.max(ra);
    }
    let at = now_ms.saturating_add(millis(delay));
    if expired(policy, first_seen_ms, at) {
        return Decision::GiveUp(Exhausted::MaximumEventAgeInSeconds);
    }
    Decision::RetryAt(at)
}

/// Whether an attempt at `at_ms` would be past the event's maximum age.
pub fn expired(policy: &RetryPolicy, first_seen_ms: i64, at_ms: i64) -> bool {
    at_ms.saturating_sub(first_seen_ms) > millis(policy.max_event_age)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32, age_secs: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            max_event_age: Duration::from_secs(age_secs),
        }
    }

    #[test]
    fn attempts_limit_counts_retries() {
        let p = policy(2, 86_400);
        let b = Backoff::default();
        assert!(matches!(
            after_failure(&p, &b, 1, 0, 0, None, 0.5),
            Decision::RetryAt(_)
        ));
        assert!(matches!(
            after_failure(&p, &b, 2, 0, 0, None, 0.5),
            Decision::RetryAt(_)
        ));
        assert_eq!(
            after_failure(&p, &b, 3, 0, 0, None, 0.5),
            Decision::GiveUp(Exhausted::MaximumRetryAttempts)
        );
        let none = policy(0, 86_400);
        assert_eq!(
            after_failure(&none, &b, 1, 0, 0, None, 0.5),
            Decision::GiveUp(Exhausted::MaximumRetryAttempts)
        );
    }

    #[test]
    fn full_jitter_within_the_exponential_ceiling() {
        let p = policy(185, 86_400);
        let b = Backoff::default();
        for (attempt, ceiling_ms) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (9, 256_000),
            (10, 300_000),
            (100, 300_000),
        ] {
            assert_eq!(
                after_failure(&p, &b, attempt, 0, 0, None, 0.0),
                Decision::RetryAt(0)
            );
            let Decision::RetryAt(top) = after_failure(&p, &b, attempt, 0, 0, None, 1.0) else {
                panic!("retry expected");
            };
            assert_eq!(top, ceiling_ms, "attempt {attempt}");
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = policy(185, 86_400);
        let b = Backoff::default();
        assert_eq!(
            after_failure(&p, &b, 1, 0, 10, Some(Duration::from_secs(7)), 0.1),
            Decision::RetryAt(7_010)
        );
    }

    #[test]
    fn event_age_limit() {
        let p = policy(185, 60);
        let b = Backoff::default();
        assert_eq!(
            after_failure(&p, &b, 1, 0, 59_500, None, 1.0),
            Decision::GiveUp(Exhausted::MaximumEventAgeInSeconds)
        );
        assert!(matches!(
            after_failure(&p, &b, 1, 0, 50_000, None, 1.0),
            Decision::RetryAt(51_000)
        ));
        assert!(expired(&p, 0, 60_001));
        assert!(!expired(&p, 0, 60_000));
    }
}
