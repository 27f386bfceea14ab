//! Lambda's Invoke API on trigd's listener: `POST /2015-03-31/functions/{name}/invocations`,
//! so `aws lambda invoke --endpoint-url`, boto3 and a handler's own Lambda client reach local
//! functions.
//!
//! `RequestResponse` runs the function and answers with its result (200, with
//! `X-Amz-Function-Error: Unhandled` when it failed); `Event` stores the invocation in the
//! outbox before answering 202, and the dispatcher runs and retries it as Lambda retries an
//! asynchronous invocation; `DryRun` checks the function exists (204). Errors carry
//! `x-amzn-ErrorType`, which the AWS SDKs turn into their exception classes.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use http_body_util::BodyExt;

use super::{Host, Invocation};
use crate::metrics::Metrics;

/// Lambda's limits on a request's payload.
const MAX_SYNC: usize = 6 * 1024 * 1024;
const MAX_ASYNC: usize = 1024 * 1024;

/// Where `Event` invocations are stored, durably, before they are answered 202: the daemon
/// gives the outbox, whose dispatcher runs and retries them. (A trait, so that this room
/// knows nothing of the outbox: arrows point from delivery to functions, never back.)
pub trait EventQueue: Send + Sync + std::fmt::Debug {
    /// Stores one asynchronous invocation; `Err` says why it could not be stored.
    fn enqueue<'a>(
        &'a self,
        function: &'a str,
        request_id: &'a str,
        payload: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// What the Invoke API needs.
#[derive(Debug, Clone)]
pub struct InvokeApi {
    pub host: Arc<Host>,
    /// Where `Event` invocations wait for the dispatcher.
    pub events: Arc<dyn EventQueue>,
    pub metrics: Arc<Metrics>,
}

/// The API's routes, to merge into the listener's.
pub fn routes(api: InvokeApi) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .with_state(Arc::new(api))
}

/// An error as Lambda's API sends it.
fn refuse(
    api: &InvokeApi,
    status: StatusCode,
    error_type: &'static str,
    message: String,
) -> Response {
    api.metrics
        .inc("trigd_invoke_api_refused_total", &[("reason", error_type)]);
    let body = serde_json::json!({"Type": "User", "message": message}).to_string();
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    response
}

/// The function name out of what the caller wrote: a name, a partial ARN or an ARN, each
/// with an optional `:qualifier`. `Err` when it is not a function identifier.
fn parse_function(text: &str) -> Result<(&str, Option<&str>), ()> {
    let parts: Vec<&str> = text.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        [_account, "function", name] => (*name, None),
        [_account, "function", name, q] => (*name, Some(*q)),
        ["arn", _, "lambda", _region, _account, "function", name] => (*name, None),
        ["arn", _, "lambda", _region, _account, "function", name, q] => (*name, Some(*q)),
        _ => return Err(()),
    };
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid || qualifier.is_some_and(str::is_empty) {
        return Err(());
    }
    Ok((name, qualifier))
}

async fn invoke(
    State(api): State<Arc<InvokeApi>>,
    Path(function): Path<String>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok((name, path_qualifier)) = parse_function(&function) else {
        return refuse(
            &api,
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!(
                "1 validation error detected: Value '{function}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{{2}}(-gov)?-[a-z]+-\\d{{1}}:)?(\\d{{12}}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
            ),
        );
    };
    let qualifier = match (path_qualifier, params.get("Qualifier").map(String::as_str)) {
        (Some(a), Some(b)) if a != b => {
            return refuse(
                &api,
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                "The derived qualifier from the function name does not match the specified qualifier.".to_owned(),
            );
        }
        (a, b) => a.or(b),
    };
    let arn = api.host.function_arn(name);
    if !api.host.has(name) || qualifier.is_some_and(|q| q != "$LATEST") {
        let shown = match qualifier {
            Some(q) => format!("{arn}:{q}"),
            None => arn,
        };
        return refuse(
            &api,
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {shown}"),
        );
    }
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let invocation_type = header("x-amz-invocation-type").unwrap_or("RequestResponse");
    let limit = match invocation_type {
        "RequestResponse" | "DryRun" => MAX_SYNC,
        "Event" => MAX_ASYNC,
        other => {
            return refuse(
                &api,
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!("Unsupported InvocationType {other}: use RequestResponse, Event or DryRun"),
            );
        }
    };
    let payload = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(
                &api,
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                format!(
                    "Request must be smaller than {limit} bytes for the {invocation_type} invocation type"
                ),
            );
        }
        Err(_) => {
            return refuse(
                &api,
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                "the request body could not be read".to_owned(),
            );
        }
    };
    let payload = if payload.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
        return refuse(
            &api,
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json: the payload is not valid JSON".to_owned(),
        );
    }
    let client_context = match header("x-amz-client-context") {
        None => None,
        Some(b64) => match base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok())
        {
            Some(json) => Some(json),
            None => {
                return refuse(
                    &api,
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    "X-Amz-Client-Context must be base64-encoded JSON".to_owned(),
                );
            }
        },
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    match invocation_type {
        "DryRun" => answer(StatusCode::NO_CONTENT, &request_id, Bytes::new()),
        "Event" => enqueue(&api, name, &request_id, payload).await,
        _ => {
            let mut inv = Invocation::with_id(&request_id, payload);
            inv.client_context = client_context;
            inv.tail = header("x-amz-log-type") == Some("Tail");
            let Ok(outcome) = api.host.invoke(name, inv).await else {
                return refuse(
                    &api,
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    format!("Function not found: {}", api.host.function_arn(name)),
                );
            };
            let (body, failed) = match outcome.result {
                Ok(body) => (body, false),
                Err(e) => (e.body, true),
            };
            let mut response = answer(StatusCode::OK, &request_id, body);
            let h = response.headers_mut();
            h.insert(
                "x-amz-executed-version",
                HeaderValue::from_static("$LATEST"),
            );
            if failed {
                h.insert(
                    "x-amz-function-error",
                    HeaderValue::from_static("Unhandled"),
                );
            }
            if let Some(tail) = outcome.log_tail {
                let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
                if let Ok(v) = HeaderValue::from_str(&encoded) {
                    h.insert("x-amz-log-result", v);
                }
            }
            response
        }
    }
}

fn answer(status: StatusCode, request_id: &str, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    response
}

/// Stores an `Event` invocation (fsync'd) before answering 202: from here on it is retried
/// and dead-lettered like any delivery.
async fn enqueue(api: &InvokeApi, name: &str, request_id: &str, payload: Bytes) -> Response {
    let text = String::from_utf8_lossy(&payload).into_owned();
    match api.events.enqueue(name, request_id, text).await {
        Ok(()) => answer(StatusCode::ACCEPTED, request_id, Bytes::new()),
        Err(e) => {
            tracing::error!(message = "An asynchronous invocation could not be stored.", function = %name, error = %e);
            refuse(
                api,
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceException",
                "the invocation could not be stored; try again".to_owned(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_function;

    #[test]
    fn function_identifiers_as_lambda_takes_them() {
        assert_eq!(parse_function("thumbs"), Ok(("thumbs", None)));
        assert_eq!(
            parse_function("thumbs:$LATEST"),
            Ok(("thumbs", Some("$LATEST")))
        );
        assert_eq!(
            parse_function("123456789012:function:thumbs"),
            Ok(("thumbs", None))
        );
        assert_eq!(
            parse_function("arn:aws:lambda:us-east-1:123456789012:function:thumbs:live"),
            Ok(("thumbs", Some("live")))
        );
        for bad in ["", "a b", "x:y:z", "arn:aws:s3:::bucket", "thumbs:"] {
            assert!(parse_function(bad).is_err(), "{bad}");
        }
    }
}
