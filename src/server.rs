//! The daemon's one HTTP listener: webhook ingest (`POST /events/{source}`), EventBridge's
//! `PutEvents` JSON protocol (`POST /`), SNS HTTP(S) subscriptions (`POST /sns/{source}`, in
//! `sources::sns_http`), `GET /healthz` and `GET /metrics`.
//!
//! A 2xx answer means the event's deliveries are durably in the outbox. Bad input gets a 4xx
//! with a reason, and is counted in `trigd_events_rejected_total{source, reason}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::delivery::store::Outbox;
use crate::event::{put_events_event, webhook_event};
use crate::intake::{Batch, Intake, IntakeError};
use crate::metrics::Metrics;
use crate::rules::{RuleSet, SourceKind};

/// EventBridge's limit on an event (and ours on a request body), in bytes.
pub const DEFAULT_MAX_BODY: usize = 256 * 1024;
/// At most this many entries in one PutEvents request, as EventBridge.
const MAX_PUT_EVENTS_ENTRIES: usize = 10;

/// Where the daemon is in its life, for `/healthz` and for refusing ingest while draining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Running = 1,
    Draining = 2,
}

/// Shared by every request.
pub struct AppState {
    /// Where every source's events go (it holds the current rules).
    pub intake: Intake,
    /// For `/metrics` (the outbox's depth).
    pub outbox: Outbox,
    pub metrics: Arc<Metrics>,
    pub phase: AtomicU8,
}

impl AppState {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Running,
            _ => Phase::Draining,
        }
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Release);
    }
}

/// The router of the listener's own routes and the webhook and PutEvents sources; the other
/// sources bring theirs (`sources::sns_http::routes`), and the daemon merges them.
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/events/{source}", post(webhook))
        .route("/", post(put_events))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_request(linger))
        .with_state(state)
}

/// At most this much of a request body nobody read (one refused as too large) is read and
/// discarded after the answer, so that the client sees the answer (see [`Lingering`]).
pub const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// ... and for at most this long.
pub const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Wraps each request's body in [`Lingering`].
pub(crate) async fn linger(req: axum::extract::Request) -> axum::extract::Request {
    req.map(|body| axum::body::Body::new(Lingering { body: Some(body) }))
}

/// A request body that, when dropped unread (a body over `max_body_bytes` is refused with
/// 413 before it is read), is read and discarded in the background, up to [`LINGER_BYTES`]
/// within [`LINGER_TIME`]: a lingering close. Closing the connection with the body unread
/// would reset it, and a client that sends its whole body before reading (Python's urllib)
/// would see a broken pipe instead of the 413. Past the bound, the connection is closed.
struct Lingering {
    /// `None` once the body has ended (or been handed to the discarding task).
    body: Option<axum::body::Body>,
}

impl axum::body::HttpBody for Lingering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        let Some(body) = self.body.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let frame = std::pin::Pin::new(body).poll_frame(cx);
        if let std::task::Poll::Ready(None) = frame {
            self.body = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body
            .as_ref()
            .is_none_or(axum::body::HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.as_ref().map_or_else(
            || hyper::body::SizeHint::with_exact(0),
            axum::body::HttpBody::size_hint,
        )
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else { return };
        if axum::body::HttpBody::is_end_stream(&body) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(discard(body));
        }
    }
}

/// Reads `body` to its end, or until [`LINGER_BYTES`] or [`LINGER_TIME`], keeping nothing.
async fn discard(body: axum::body::Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, Bytes::len);
            if read > LINGER_BYTES {
                break;
            }
        }
    })
    .await;
}

/// A refusal: status, reason label for the metric, and a message for the sender.
pub struct Refusal {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

/// How an event the intake did not take is answered: 400 for an event the matcher cannot
/// read, 503 (retry) when the outbox could not store it.
impl From<IntakeError> for Refusal {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Malformed(e) => {
                Refusal::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string())
            }
            IntakeError::Store(_) => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the outbox could not store the event; retry",
            ),
            IntakeError::DeadLetter(_) => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the dead letter could not be stored; retry",
            ),
        }
    }
}

impl Refusal {
    /// While starting or draining: 503, so the sender retries.
    pub(crate) fn not_running() -> Self {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "trigd is not accepting events now",
        )
    }

    pub(crate) fn new(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Refusal {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Counts and logs a refusal, and answers it.
pub(crate) fn refuse(state: &AppState, source: &str, r: Refusal) -> Response {
    state.metrics.inc(
        "trigd_events_rejected_total",
        &[("source", source), ("reason", r.reason)],
    );
    tracing::debug!(message = "Event refused.", source, reason = r.reason, error = %r.message);
    let body = json!({"error": r.reason, "message": r.message}).to_string();
    (r.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.phase() {
        Phase::Running => (StatusCode::OK, "ok\n").into_response(),
        Phase::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response(),
        Phase::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(stats) = state.outbox.stats().await {
        state
            .metrics
            .set("trigd_outbox_pending", &[], stats.pending as f64);
        let age = stats.oldest_first_seen_ms.map_or(0.0, |t| {
            ((Utc::now().timestamp_millis() - t).max(0) as f64) / 1000.0
        });
        state
            .metrics
            .set("trigd_outbox_oldest_pending_age_seconds", &[], age);
    }
    state.metrics.set(
        "trigd_outbox_commits_total",
        &[],
        state.outbox.commits() as f64,
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Body bytes → a JSON value, with the refusals bad input earns.
pub(crate) fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<(Bytes, Value), Refusal> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.body_text())
        } else {
            Refusal::new(e.status(), "unreadable", e.body_text())
        }
    })?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
            "the body is not valid UTF-8",
        ));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "too_deep",
                "the JSON is nested deeper than 128 levels",
            )
        } else {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            )
        }
    })?;
    Ok((bytes, value))
}

async fn webhook(
    State(state): State<Arc<AppState>>,
    Path(source): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if state.phase() != Phase::Running {
        return refuse(&state, &source, Refusal::not_running());
    }
    let rules = state.intake.rules();
    if let Err(r) = authorize(&rules, &source, &headers, body.as_ref().ok()) {
        return refuse(&state, &source, r);
    }
    // `request: true`: the whole request is the detail, the body parsed when it is JSON.
    let whole_request = rules.sources.iter().find_map(|s| match &s.kind {
        SourceKind::Webhook {
            request: true,
            hmac_header,
            ..
        } if s.name == source => Some(hmac_header.as_str()),
        _ => None,
    });
    let detail = match whole_request {
        Some(signature_header) => match body {
            Ok(bytes) => request_detail("POST", &uri, &headers, &bytes, signature_header),
            Err(e) => match parse_body(Err(e)) {
                Err(r) => return refuse(&state, &source, r),
                Ok((_, v)) => v,
            },
        },
        None => match parse_body(body) {
            Ok((_, v)) => v,
            Err(r) => return refuse(&state, &source, r),
        },
    };
    if !detail.is_object() {
        return refuse(
            &state,
            &source,
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "not_object",
                "the body must be a JSON object",
            ),
        );
    }
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let event = webhook_event(&rules.settings, &source, detail, &id, now);
    let batch = Batch::new(&source, vec![event]);
    match state.intake.accept(&rules, batch, now).await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            // A UUID needs no escaping.
            format!("{{\"id\":\"{id}\"}}"),
        )
            .into_response(),
        Err(e) => refuse(&state, &source, e.into()),
    }
}

/// Headers a `request: true` webhook leaves out of its events: credentials and signatures.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-gitlab-token",
];

/// The `detail` of a `request: true` webhook: `method`, `path`, `query` (repeated keys
/// comma-joined, as API Gateway's payload 2.0 joins them), `headers` (lower-case names,
/// repeated ones comma-joined, credentials and the source's signature header left out) and
/// `body` (parsed when it is JSON, else the text).
fn request_detail(
    method: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    signature_header: &str,
) -> Value {
    let mut query = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let mut hs = serde_json::Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        if SECRET_HEADERS.contains(&name) || name.eq_ignore_ascii_case(signature_header) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        match hs.get_mut(name) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&value);
            }
            _ => {
                hs.insert(name.to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    serde_json::json!({
        "method": method,
        "path": uri.path(),
        "query": query,
        "headers": hs,
        "body": body,
    })
}

/// Checks a webhook source's name and authentication, when sources are declared.
fn authorize(
    rules: &RuleSet,
    source: &str,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Result<(), Refusal> {
    let mut webhooks = rules
        .sources
        .iter()
        .filter(|s| matches!(s.kind, SourceKind::Webhook { .. }))
        .peekable();
    if webhooks.peek().is_none() {
        return Ok(());
    }
    let Some(src) = webhooks.find(|s| s.name == source) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "unknown_source",
            format!("no webhook source is named `{source}`"),
        ));
    };
    let SourceKind::Webhook {
        bearer_token_env,
        hmac_secret_env,
        hmac_header,
        ..
    } = &src.kind
    else {
        return Ok(());
    };
    if let Some(var) = bearer_token_env {
        let want = secret(var)?;
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(got.as_bytes(), want.as_bytes()) {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            ));
        }
    }
    if let Some(var) = hmac_secret_env {
        let key = secret(var)?;
        let got = headers
            .get(hmac_header.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let got = got.strip_prefix("sha256=").unwrap_or(got);
        let body = body.map(|b| b.as_ref()).unwrap_or_default();
        if !hmac_matches(key.as_bytes(), body, got) {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("missing or wrong HMAC-SHA256 signature in {hmac_header}"),
            ));
        }
    }
    Ok(())
}

fn secret(var: &str) -> Result<String, Refusal> {
    std::env::var(var).map_err(|_| {
        tracing::error!(message = "A webhook secret is not set.", variable = var);
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the source's secret is not configured",
        )
    })
}

/// HMAC-SHA256 of `body` under `key`, compared in constant time with the hex `signature`.
pub fn hmac_matches(key: &[u8], body: &[u8], signature: &str) -> bool {
    use hmac::{KeyInit, Mac};
    let Ok(expected) = hex::decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /` with `X-Amz-Target: AWSEvents.PutEvents`: AWS SDKs and the AWS CLI send events
/// here with an endpoint override.
async fn put_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != "AWSEvents.PutEvents" {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("unsupported operation `{target}`: trigd speaks AWSEvents.PutEvents"),
        );
    }
    if state.phase() != Phase::Running {
        return aws_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "trigd is not accepting events now",
        );
    }
    let (_, request) = match parse_body(body) {
        Ok(v) => v,
        Err(r) => {
            state.metrics.inc(
                "trigd_events_rejected_total",
                &[("source", "put-events"), ("reason", r.reason)],
            );
            return aws_error(r.status, "ValidationException", &r.message);
        }
    };
    let Some(entries) = request.get("Entries").and_then(Value::as_array) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Entries is required",
        );
    };
    if entries.is_empty() || entries.len() > MAX_PUT_EVENTS_ENTRIES {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            &format!("Entries must hold 1 to {MAX_PUT_EVENTS_ENTRIES} entries"),
        );
    }
    let rules = state.intake.rules();
    let now = Utc::now();
    let mut results = Vec::with_capacity(entries.len());
    let mut events = Vec::new();
    for entry in entries {
        match entry_event(&rules, entry, now) {
            Ok((id, event)) => {
                results.push(json!({"EventId": id}));
                events.push(event);
            }
            Err(message) => {
                state.metrics.inc(
                    "trigd_events_rejected_total",
                    &[("source", "put-events"), ("reason", "invalid_entry")],
                );
                results.push(json!({"ErrorCode": "InvalidArgument", "ErrorMessage": message}));
            }
        }
    }
    // Counted in `trigd_events_received_total` under each entry's `Source`.
    if let Err(e) = state
        .intake
        .accept(&rules, Batch::of_events(events), now)
        .await
    {
        let r = Refusal::from(e);
        return aws_error(r.status, "InternalException", &r.message);
    }
    let failed = results
        .iter()
        .filter(|r| r.get("ErrorCode").is_some())
        .count();
    let body = json!({"FailedEntryCount": failed, "Entries": results}).to_string();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        )],
        body,
    )
        .into_response()
}

/// One PutEvents entry → (event id, event).
fn entry_event(
    rules: &RuleSet,
    entry: &Value,
    now: DateTime<Utc>,
) -> Result<(String, Value), String> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let source = field("Source").ok_or("Source is required")?;
    let detail_type = field("DetailType").ok_or("DetailType is required")?;
    let detail_text = field("Detail").ok_or("Detail is required")?;
    let detail: Value =
        serde_json::from_str(detail_text).map_err(|_| "Detail is malformed.".to_owned())?;
    if !detail.is_object() {
        return Err("Detail is malformed.".to_owned());
    }
    let resources = match entry.get("Resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
        Some(_) => return Err("Resources must be a list of strings".to_owned()),
    };
    let time = match entry.get("Time") {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(|secs| Utc.timestamp_millis_opt((secs * 1000.0) as i64).single())
            .ok_or("Time is invalid")?,
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "Time is invalid".to_owned())?,
        Some(_) => return Err("Time is invalid".to_owned()),
    };
    let size = source.len() + detail_type.len() + detail_text.len();
    if size > DEFAULT_MAX_BODY {
        return Err("Entry is larger than 256 KB".to_owned());
    }
    let id = uuid::Uuid::new_v4().to_string();
    let event = put_events_event(
        &rules.settings,
        source,
        detail_type,
        detail,
        resources,
        time,
        &id,
    );
    Ok((id, event))
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"__type": kind, "message": message}).to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_signatures() {
        // HMAC-SHA256("secret", "hello") in hex.
        let sig = "88aab3ede8d3adf94d26ab90d3bafd4a2083070c3bcce9c014ee04a443847c0b";
        assert!(hmac_matches(b"secret", b"hello", sig));
        assert!(!hmac_matches(b"secret", b"hello!", sig));
        assert!(!hmac_matches(b"other", b"hello", sig));
        assert!(!hmac_matches(b"secret", b"hello", "zz"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
