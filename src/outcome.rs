//! What one attempt at one delivery came to, in the vocabulary every target shares and the
//! dispatcher decides on: delivered, retry, or fail, with EventBridge's error codes. Pure data:
//! the AWS error classifier and every target produce it, the dispatcher consumes it.

use std::time::Duration;

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done. `response` is what the target answered, when a destination wants it (see
    /// [`Response`]); `None` for every other target.
    Delivered {
        response: Option<Response>,
        /// What the target printed, when the attempt asked to keep it (see
        /// `targets::Attempt::keep_output`); `None` for targets that print nothing.
        output: Option<Output>,
    },
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

impl Outcome {
    /// Delivered, with no response to pass on.
    pub fn delivered() -> Outcome {
        Outcome::Delivered {
            response: None,
            output: None,
        }
    }
}

/// What a command printed, for the log: the end of each stream (see `targets::command::TAIL`), as
/// text (lossy UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// What a target that can have destinations (`on_success`/`on_failure`) answered: a
/// synchronous Lambda invocation's status and payload, or a command's exit status and
/// standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Lambda's `StatusCode` (200 for a synchronous invocation); a command's exit status (0).
    pub status: i32,
    /// The response payload or the standard output, as text (lossy UTF-8); `None` when it was
    /// larger than [`MAX_RESPONSE`] and was dropped.
    pub body: Option<String>,
}

/// The largest response passed on to a destination: an event's limit, since the response
/// travels inside one (the destination record).
pub const MAX_RESPONSE: usize = 256 * 1024;

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

/// Appends `error` and its sources to `text` as "a: b: c", each as `describe` puts it; a text
/// already there is skipped (hyper and std repeat their cause in their own text now and then).
pub fn push_causes(
    text: &mut String,
    error: Option<&(dyn std::error::Error + 'static)>,
    describe: impl Fn(&(dyn std::error::Error + 'static)) -> String,
) {
    let mut current = error;
    while let Some(err) = current {
        let msg = describe(err);
        if !text.contains(&msg) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&msg);
        }
        current = err.source();
    }
}
