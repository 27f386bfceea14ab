//! Targets: where deliveries go. One module per kind, one outcome type for all of them, so the
//! dispatcher decides retries and dead letters without knowing the kinds.

use std::time::Duration;

/// One attempt at one delivery, as a target sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The idempotency key (see [`crate::delivery::delivery_id`]).
    pub delivery_id: &'a str,
    pub rule: &'a str,
    /// The target's id within the rule.
    pub target: &'a str,
    pub event_id: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The exact text to send.
    pub payload: &'a str,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// A transient failure: try again later (no sooner than `retry_after` when the target
    /// said so, e.g. HTTP `Retry-After`).
    Retry {
        code: ErrorCode,
        error: String,
        retry_after: Option<Duration>,
    },
    /// A failure that retrying cannot fix: straight to the dead letter.
    Fail { code: ErrorCode, error: String },
}

/// Why an attempt failed, in the vocabulary of EventBridge's dead-letter `ERROR_CODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The target does not exist (404, missing executable, queue gone).
    NoResource,
    /// Not allowed (401/403, permission denied).
    NoPermissions,
    /// The request was refused as invalid (other 4xx, payload too large, bad config).
    InvalidParameter,
    /// The target asked us to slow down (429).
    Throttling,
    /// No answer in time.
    Timeout,
    /// The target failed (5xx, non-zero exit, function error).
    TargetError,
    /// The connection failed.
    Network,
}

impl ErrorCode {
    /// The text EventBridge uses in `ERROR_CODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NoResource => "NO_RESOURCE",
            ErrorCode::NoPermissions => "NO_PERMISSIONS",
            ErrorCode::InvalidParameter => "INVALID_PARAMETER",
            ErrorCode::Throttling => "THROTTLING",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::TargetError => "TARGET_ERROR",
            ErrorCode::Network => "SDK_CLIENT_ERROR",
        }
    }
}
