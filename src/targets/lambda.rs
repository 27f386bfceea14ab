//! Lambda targets: `Invoke`, asynchronously (`Event`, as EventBridge invokes: a function error
//! is Lambda's own to retry) or synchronously (`RequestResponse`: a function error is a failed
//! attempt, retried and then dead-lettered with its errorType and errorMessage). Payloads over
//! Lambda's limits (1 MiB asynchronous, 6 MiB synchronous) go to the dead letter unsent.

use aws_sdk_lambda::primitives::Blob;
use serde_json::Value;

use super::{Attempt, ErrorCode, MAX_RESPONSE, Outcome, Response};
use crate::aws::classify;
use crate::rules::InvocationType;

const ASYNC_LIMIT: usize = 1024 * 1024;
const SYNC_LIMIT: usize = 6 * 1024 * 1024;

/// One `Invoke`. With `capture` (an `on_success` destination wants it), a synchronous
/// invocation's response is returned with the outcome.
pub async fn deliver(
    client: &aws_sdk_lambda::Client,
    function: &str,
    invocation: InvocationType,
    capture: bool,
    attempt: &Attempt<'_>,
) -> Outcome {
    let (limit, kind) = match invocation {
        InvocationType::Event => (ASYNC_LIMIT, aws_sdk_lambda::types::InvocationType::Event),
        InvocationType::RequestResponse => (
            SYNC_LIMIT,
            aws_sdk_lambda::types::InvocationType::RequestResponse,
        ),
    };
    if attempt.payload.len() > limit {
        return Outcome::Fail {
            code: ErrorCode::InvalidParameter,
            error: format!(
                "the payload is {} bytes; Lambda takes at most {limit} for {} invocations",
                attempt.payload.len(),
                kind.as_str()
            ),
        };
    }
    let result = client
        .invoke()
        .function_name(function)
        .invocation_type(kind)
        .payload(Blob::new(attempt.payload.as_bytes()))
        .send()
        .await;
    match result {
        Ok(out) => match out.function_error() {
            // An asynchronous invocation answers 202 and no payload: nothing to pass on.
            None if !capture || invocation == InvocationType::Event => Outcome::delivered(),
            None => {
                let body = out
                    .payload()
                    .filter(|b| b.as_ref().len() <= MAX_RESPONSE)
                    .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned());
                Outcome::Delivered {
                    response: Some(Response {
                        status: out.status_code(),
                        body,
                    }),
                    output: None,
                }
            }
            Some(kind) => {
                let body = out
                    .payload()
                    .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned())
                    .unwrap_or_default();
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let error = format!(
                    "function error ({kind}): {}: {}",
                    v["errorType"].as_str().unwrap_or("Error"),
                    v["errorMessage"].as_str().unwrap_or(&body)
                );
                Outcome::Retry {
                    code: ErrorCode::TargetError,
                    error,
                    retry_after: None,
                }
            }
        },
        Err(e) => classify(&e),
    }
}
