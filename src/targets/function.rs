//! The `function` target: one invocation of a local function per attempt.
//!
//! Returning is success; a handler error, a timeout, a crash or an out-of-memory kill is a
//! failed attempt, retried under the function's asynchronous retry settings (two retries and
//! six hours by default, as Lambda retries an asynchronous invocation) and then
//! dead-lettered. Every attempt of one delivery carries the same request id, as Lambda keeps
//! the request id across the retries of one asynchronous invocation: the delivery id for a
//! rule's target, and the id the caller was given for an Invoke API `Event` invocation.

use super::{Attempt, ErrorCode, MAX_RESPONSE, Outcome, Response};
use crate::functions::{ErrorKind, Host, Invocation};

pub async fn deliver(host: &Host, name: &str, capture: bool, attempt: &Attempt<'_>) -> Outcome {
    let request_id = if attempt.rule == crate::rules::INVOKE_RULE {
        attempt.event_id
    } else {
        attempt.delivery_id
    };
    let inv = Invocation::with_id(request_id, attempt.payload.to_owned());
    match host.invoke(name, inv).await {
        Err(e) => Outcome::Fail {
            code: ErrorCode::NoResource,
            error: e.to_string(),
        },
        Ok(outcome) => match outcome.result {
            Ok(body) => Outcome::Delivered {
                // The function's output is in trigd's log already, line by line.
                output: None,
                response: capture.then(|| Response {
                    status: 200,
                    body: (body.len() <= MAX_RESPONSE)
                        .then(|| String::from_utf8_lossy(&body).into_owned()),
                }),
            },
            Err(e) => Outcome::Retry {
                code: match e.kind {
                    ErrorKind::Timeout => ErrorCode::Timeout,
                    _ => ErrorCode::TargetError,
                },
                error: e.summary(),
                retry_after: None,
            },
        },
    }
}
