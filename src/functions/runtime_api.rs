//! Lambda's Runtime API (2018-06-01), served to one environment on its own loopback port.
//!
//! One listener per environment keeps the protocol's single-invocation state machine simple:
//! the port identifies the environment, so `next`, `response` and `error` need no routing,
//! and a runtime can never answer for another environment's invocation. The runtime's `next`
//! is held open for as long as it takes (Lambda's clients crash or wedge when it is answered
//! with anything but an event).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot, watch};

/// The largest response a runtime may post: 6 MiB and 100 bytes, as Lambda allows.
pub(crate) const MAX_RESPONSE: usize = 6 * 1024 * 1024 + 100;
/// The largest error body kept (an error is a few KiB; a runaway stack trace is cut).
const MAX_ERROR: usize = 1024 * 1024;

/// An event on its way to the runtime, with what the `next` headers carry.
#[derive(Debug)]
pub(crate) struct Event {
    pub request_id: Arc<str>,
    pub payload: Bytes,
    /// Unix milliseconds.
    pub deadline_ms: i64,
    pub function_arn: Arc<str>,
    pub trace_id: String,
    /// JSON, already decoded from the caller's base64.
    pub client_context: Option<String>,
}

/// What the runtime answered for an invocation.
#[derive(Debug)]
pub(crate) enum Answer {
    Response(Bytes),
    /// `/error`: the body as posted (passed on untouched) and its error type.
    Error {
        body: Bytes,
        error_type: String,
    },
    /// The response was over [`MAX_RESPONSE`].
    TooLarge,
}

/// A failure reported before the first `next` (`/init/error`).
#[derive(Debug)]
pub(crate) struct InitError {
    pub body: Bytes,
    pub error_type: String,
}

/// The invocation the runtime is working on: its id, and where its answer goes.
struct Current {
    request_id: Arc<str>,
    answer: oneshot::Sender<Answer>,
}

struct Shared {
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    current: Mutex<Option<Current>>,
    /// Set at the runtime's first `next`: init is over.
    ready: watch::Sender<Option<Instant>>,
    init_error: mpsc::Sender<InitError>,
}

/// The environment's side of its Runtime API.
pub(crate) struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    events: mpsc::Sender<Event>,
    pub ready: watch::Receiver<Option<Instant>>,
    pub init_error: mpsc::Receiver<InitError>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Binds 127.0.0.1 on a free port and serves the API until dropped.
    pub(super) async fn start() -> std::io::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (events_tx, events_rx) = mpsc::channel(1);
        let (ready_tx, ready_rx) = watch::channel(None);
        let (init_tx, init_rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(events_rx),
            current: Mutex::new(None),
            ready: ready_tx,
            init_error: init_tx,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route("/2018-06-01/ping", get(|| async { "pong" }))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // Ends only with the environment (the task is aborted on drop).
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(message = "A function's Runtime API stopped.", error = %e);
            }
        });
        Ok(RuntimeApi {
            addr,
            shared,
            events: events_tx,
            ready: ready_rx,
            init_error: init_rx,
            server,
        })
    }

    /// Hands `event` to the runtime (its pending or next `next`); the answer comes on the
    /// returned channel. `None` if the API is gone.
    pub(super) fn send(&self, event: Event) -> Option<oneshot::Receiver<Answer>> {
        let (tx, rx) = oneshot::channel();
        *lock(&self.shared.current) = Some(Current {
            request_id: Arc::clone(&event.request_id),
            answer: tx,
        });
        // Capacity 1 and one invocation at a time per environment: never full.
        self.events.try_send(event).ok()?;
        Some(rx)
    }

    /// Forgets the current invocation: a late answer for it gets 400, as for an unknown id.
    pub(super) fn clear(&self) {
        lock(&self.shared.current).take();
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error_response(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

/// `GET next`: waits, with no time limit, for the next event.
async fn next(State(s): State<Arc<Shared>>) -> Response {
    s.ready.send_if_modified(|at| {
        if at.is_none() {
            *at = Some(Instant::now());
            true
        } else {
            false
        }
    });
    let event = {
        let mut events = s.events.lock().await;
        events.recv().await
    };
    let Some(e) = event else {
        // The environment is going away: the runtime should exit.
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.Shutdown",
            "the environment is shutting down",
        );
    };
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", &e.request_id);
    put("lambda-runtime-deadline-ms", &e.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", &e.function_arn);
    put("lambda-runtime-trace-id", &e.trace_id);
    if let Some(cc) = &e.client_context {
        put("lambda-runtime-client-context", cc);
    }
    put("content-type", "application/json");
    (StatusCode::OK, headers, e.payload).into_response()
}

/// Takes the answer channel of invocation `id`, if it is the current one.
fn take_current(s: &Shared, id: &str) -> Option<oneshot::Sender<Answer>> {
    let mut current = lock(&s.current);
    match current.as_ref() {
        Some(c) if &*c.request_id == id => current.take().map(|c| c.answer),
        _ => None,
    }
}

fn invalid_request_id() -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

/// Reads a body of at most `limit` bytes; `None` when it is longer (or broken).
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ReadError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ReadError::TooLarge),
        Err(_) => Err(ReadError::Broken),
    }
}

enum ReadError {
    TooLarge,
    Broken,
}

async fn response(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|m| m != "streaming")
    {
        if let Some(tx) = take_current(&s, &id) {
            let _ = tx.send(Answer::Error {
                body: Bytes::from_static(
                    br#"{"errorType":"Runtime.InvalidResponseModeHeader","errorMessage":"Invalid Lambda-Runtime-Function-Response-Mode header"}"#,
                ),
                error_type: "Runtime.InvalidResponseModeHeader".to_owned(),
            });
        }
        return error_response(
            StatusCode::BAD_REQUEST,
            "InvalidFunctionResponseMode",
            "Invalid Lambda-Runtime-Function-Response-Mode header",
        );
    }
    // Checked before the body is read: an answer for another id is refused without taking the
    // current invocation's channel.
    if lock(&s.current)
        .as_ref()
        .is_none_or(|c| *c.request_id != *id)
    {
        return invalid_request_id();
    }
    let read = read_limited(body, MAX_RESPONSE).await;
    let Some(tx) = take_current(&s, &id) else {
        return invalid_request_id();
    };
    match read {
        Ok(bytes) => {
            let _ = tx.send(Answer::Response(bytes));
            accepted()
        }
        Err(ReadError::TooLarge) => {
            let _ = tx.send(Answer::TooLarge);
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE} bytes)."),
            )
        }
        Err(ReadError::Broken) => {
            let _ = tx.send(Answer::Error {
                body: Bytes::from_static(
                    br#"{"errorType":"Runtime.ResponseBodyError","errorMessage":"the runtime's response body could not be read"}"#,
                ),
                error_type: "Runtime.ResponseBodyError".to_owned(),
            });
            error_response(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "the body could not be read",
            )
        }
    }
}

/// The error type: the body's `errorType`, else the header, else `Unhandled`.
fn error_type(headers: &HeaderMap, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|b| b.get("errorType")?.as_str().map(str::to_owned))
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Unhandled".to_owned())
}

/// Reads an error body, cut at [`MAX_ERROR`] rather than refused: an error is always taken.
async fn read_error_body(body: Body) -> Bytes {
    match read_limited(body, MAX_ERROR).await {
        Ok(b) => b,
        Err(ReadError::TooLarge) => Bytes::from_static(
            br#"{"errorType":"Runtime.Unknown","errorMessage":"the runtime's error body was over 1 MiB"}"#,
        ),
        Err(ReadError::Broken) => Bytes::from_static(
            br#"{"errorType":"Runtime.Unknown","errorMessage":"the runtime's error body could not be read"}"#,
        ),
    }
}

async fn error(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if lock(&s.current)
        .as_ref()
        .is_none_or(|c| *c.request_id != *id)
    {
        return invalid_request_id();
    }
    let body = read_error_body(body).await;
    let Some(tx) = take_current(&s, &id) else {
        return invalid_request_id();
    };
    let error_type = error_type(&headers, &body);
    let _ = tx.send(Answer::Error { body, error_type });
    accepted()
}

async fn init_error(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let body = read_error_body(body).await;
    let error_type = error_type(&headers, &body);
    // Capacity 1: a runtime reports init failure once, then exits.
    let _ = s.init_error.try_send(InitError { body, error_type });
    accepted()
}
