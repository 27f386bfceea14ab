//! The `http` target: one request per attempt, and the mapping of its response to an
//! [`Outcome`].
//!
//! Decisions, in one place:
//! * **Body**: the payload, exactly, for every method (GET and DELETE included: the payload is
//!   the point of the delivery).
//! * **Headers**: the configured ones, with `${VAR}` in a value replaced by the environment
//!   variable `VAR` at each attempt; a variable that is not set fails the delivery
//!   (`INVALID_PARAMETER`, naming the variable but never a value). Values that held a reference
//!   are marked sensitive so they are never printed. Then `Idempotency-Key: <delivery id>`
//!   (always ours, replacing a configured one: the delivery id is the key), and, unless
//!   configured, `User-Agent: trigd/<version>` and `Content-Type`: `application/json` when the
//!   payload is a JSON text, else `text/plain; charset=utf-8` (an input template can render free
//!   text, and calling that JSON would make strict receivers reject it).
//! * **Redirects are not followed**: a 3xx fails the delivery (`INVALID_PARAMETER`, "redirect
//!   to X not followed"). Following would resend the payload to a URL nobody configured, and
//!   301/302 turn a POST into a body-less GET; the fix is to configure the final URL.
//! * **Statuses**: 2xx delivered; 408, 429 and 5xx retried (429 as `THROTTLING`, the others as
//!   `TARGET_ERROR`); 401/403 `NO_PERMISSIONS`, 404/410 `NO_RESOURCE`, every other status
//!   `INVALID_PARAMETER`, not retried. Failed statuses carry the status and the first
//!   [`BODY_EXCERPT`] bytes of the response body (lossy UTF-8).
//! * **`Retry-After`** on a retried status is honoured as delta-seconds or an HTTP-date. A date
//!   is measured from the response's own `Date` header when it has one (so clock skew between
//!   us and the server does not matter), else from our clock; a date in the past means "now".
//!   The wait is capped at [`RETRY_AFTER_CAP`] (one hour) so a broken or hostile server cannot
//!   park a delivery past its `max_event_age` by itself; unparseable values are ignored.
//! * **Errors**: no answer within the target's `timeout` (connect, request and response
//!   together) is `TIMEOUT`; connection refused or reset, DNS and TLS failures are
//!   `SDK_CLIENT_ERROR` (`Network`), retried. Error texts leave the URL out: webhook URLs often
//!   hold a secret (Slack, Discord), and errors end up in logs and dead letters.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use connect::Connector;
pub use connect::Proxies;

mod connect;

use super::{Attempt, ErrorCode, Outcome};

/// Most of a failed response's body quoted in the error.
pub const BODY_EXCERPT: usize = 512;

/// The longest `Retry-After` honoured.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// Most of a successful response's body read so the connection can go back to the pool;
/// a longer body is dropped with its connection.
const DRAIN_LIMIT: usize = 64 * 1024;

/// One `http` target's configuration, borrowed from the rule.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub url: &'a crate::rules::HttpUrl,
    /// Upper case, validated by the rule loader (POST, PUT, PATCH, GET or DELETE).
    pub method: &'a str,
    /// Values may hold `${VAR}` references.
    pub headers: &'a [(String, String)],
    pub timeout: Duration,
}

/// How long an idle connection to a target stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The shared client: pooled HTTP/1.1 connections, TLS through rustls with the platform's
/// certificate verifier, the environment's proxies (see [`connect`]), `User-Agent:
/// trigd/<version>` unless a rule sets one.
///
/// This is hyper's client without reqwest around it: a delivery is one request to a URL parsed
/// when its rule was loaded, with no redirects to follow, cookies or retries inside the
/// client, and reqwest's layers for those were a tenth of the daemon's CPU at saturation
/// (BENCHMARKS.md).
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpsConnector<Connector>, Full<Bytes>>,
    proxies: Proxies,
    user_agent: HeaderValue,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS: {0}")]
pub struct ClientError(#[from] rustls::Error);

/// Builds the shared client.
pub fn client(proxies: Proxies) -> Result<Client, ClientError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(Connector::new(tcp, proxies.clone()));
    let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(https);
    Ok(Client {
        inner,
        proxies,
        user_agent: HeaderValue::from_static(concat!("trigd/", env!("CARGO_PKG_VERSION"))),
    })
}

/// One attempt: sends the payload and classifies what came back, all within the target's
/// timeout (connecting, sending, and reading the response).
pub async fn deliver(client: &Client, request: &Request<'_>, attempt: &Attempt<'_>) -> Outcome {
    let method = match Method::from_bytes(request.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return invalid(format!("`{}` is not an HTTP method", request.method)),
    };
    let mut headers = match headers(request.headers, attempt) {
        Ok(h) => h,
        Err(error) => return invalid(error),
    };
    if !headers.contains_key(header::USER_AGENT) {
        headers.insert(header::USER_AGENT, client.user_agent.clone());
    }
    if let Some(auth) = request.url.basic_auth()
        && !headers.contains_key(header::AUTHORIZATION)
    {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    if let Some(auth) = client.proxies.authorization(request.url.uri()) {
        headers.insert(header::PROXY_AUTHORIZATION, auth);
    }
    let mut http_request = hyper::Request::new(Full::new(Bytes::copy_from_slice(
        attempt.payload.as_bytes(),
    )));
    *http_request.method_mut() = method;
    *http_request.uri_mut() = request.url.uri().clone();
    *http_request.headers_mut() = headers;
    let exchange = async {
        match client.inner.request(http_request).await {
            Ok(response) => classify(response).await,
            Err(e) => send_error(&e),
        }
    };
    match tokio::time::timeout(request.timeout, exchange).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Retry {
            code: ErrorCode::Timeout,
            error: format!("no response within {}s", request.timeout.as_secs_f64()),
            retry_after: None,
        },
    }
}

fn invalid(error: String) -> Outcome {
    Outcome::Fail {
        code: ErrorCode::InvalidParameter,
        error,
    }
}

/// The request headers: configured ones with `${VAR}` resolved, then ours.
fn headers(configured: &[(String, String)], attempt: &Attempt<'_>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in configured {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        let (expanded, secret) = expand(value, |var| std::env::var(var).ok())
            .map_err(|var| format!("header `{name}` refers to environment variable `{var}`, which is not set or not UTF-8"))?;
        let mut value = HeaderValue::from_str(&expanded).map_err(|_| {
            if secret {
                format!(
                    "header `{name}`: the value from the environment is not a valid header value"
                )
            } else {
                format!("header `{name}` has a value that is not a valid header value")
            }
        })?;
        value.set_sensitive(secret);
        // `append`, not `insert`: a configured header never silently replaces another.
        map.append(header, value);
    }
    let key = HeaderValue::from_str(attempt.delivery_id).map_err(|_| {
        format!(
            "delivery id `{}` is not a valid header value",
            attempt.delivery_id
        )
    })?;
    map.insert(HeaderName::from_static("idempotency-key"), key);
    if !map.contains_key(header::CONTENT_TYPE) {
        map.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(attempt.payload)),
        );
    }
    Ok(map)
}

/// The default `Content-Type` of a payload.
pub fn content_type(payload: &str) -> &'static str {
    // Validated, not built: nothing is allocated for the payload's values.
    if serde_json::from_str::<serde::de::IgnoredAny>(payload).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// Replaces each `${NAME}` (NAME: a letter or `_`, then letters, digits, `_`) in `value` with
/// `lookup(NAME)`. Anything else, `$` alone or an unterminated `${`, stays as written. Returns the
/// text and whether it held a reference, or the first name `lookup` did not know.
pub fn expand(
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut found = false;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find('}') {
            Some(end) if is_var_name(&after[..end]) => {
                let name = &after[..end];
                out.push_str(&lookup(name).ok_or_else(|| name.to_owned())?);
                found = true;
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok((out, found))
}

fn is_var_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What a response means for the delivery.
async fn classify(mut response: Response<Incoming>) -> Outcome {
    let status = response.status();
    if status.is_success() {
        // Read a short body to the end so the connection can be reused; the target has
        // accepted the payload whatever happens here.
        let mut read = 0;
        while read <= DRAIN_LIMIT {
            match next_chunk(&mut response).await {
                Some(chunk) => read += chunk.len(),
                None => break,
            }
        }
        return Outcome::delivered();
    }
    if status.is_redirection() {
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        let error = match location {
            Some(l) => format!(
                "HTTP {}: redirect to `{l}` not followed",
                status_text(status)
            ),
            None => format!("HTTP {}: redirect not followed", status_text(status)),
        };
        return invalid(error);
    }
    let retry_after = retry_after(response.headers(), Utc::now());
    let error = failure_text(status, &mut response).await;
    match status_class(status) {
        Some(code @ (ErrorCode::Throttling | ErrorCode::TargetError)) => Outcome::Retry {
            code,
            error,
            retry_after,
        },
        Some(code) => Outcome::Fail { code, error },
        None => invalid(error),
    }
}

/// The error code of a failed (non-2xx, non-3xx) status: `Throttling` and `TargetError` are
/// retried, the others are not.
pub fn status_class(status: StatusCode) -> Option<ErrorCode> {
    Some(match status.as_u16() {
        429 => ErrorCode::Throttling,
        408 | 500..=599 => ErrorCode::TargetError,
        401 | 403 => ErrorCode::NoPermissions,
        404 | 410 => ErrorCode::NoResource,
        400..=499 => ErrorCode::InvalidParameter,
        _ => return None,
    })
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// `"HTTP 503 Service Unavailable: <the body's first bytes>"`.
async fn failure_text(status: StatusCode, response: &mut Response<Incoming>) -> String {
    let mut body = Vec::new();
    while body.len() < BODY_EXCERPT {
        match next_chunk(response).await {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    let truncated = body.len() > BODY_EXCERPT;
    body.truncate(BODY_EXCERPT);
    let text = String::from_utf8_lossy(trim_partial_char(&body)).into_owned();
    let text = text.trim();
    let status = status_text(status);
    match (text.is_empty(), truncated) {
        (true, _) => format!("HTTP {status}"),
        (false, false) => format!("HTTP {status}: {text}"),
        (false, true) => format!("HTTP {status}: {text}…"),
    }
}

/// The response body's next piece of data; `None` at its end or on an error (a body that
/// breaks off is treated as ended: what was read is all there is).
async fn next_chunk(response: &mut Response<Incoming>) -> Option<Bytes> {
    loop {
        match response.body_mut().frame().await?.ok()?.into_data() {
            Ok(data) => return Some(data),
            // Trailers: not data, read on.
            Err(_) => continue,
        }
    }
}

/// `bytes` without a UTF-8 sequence cut short at its end.
fn trim_partial_char(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes,
        // `error_len() == None`: the input ended inside a sequence.
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        Err(_) => bytes,
    }
}

/// How long the response asks us to wait, from `Retry-After`, capped at [`RETRY_AFTER_CAP`].
/// `now` is used for an HTTP-date only when the response has no usable `Date` header.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to fit is "a very long time": the cap.
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = http_date(value)?;
        let now = headers
            .get(header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(http_date)
            .unwrap_or(now);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(wait.min(RETRY_AFTER_CAP))
}

/// An HTTP-date (RFC 9110 §5.6.7): the IMF-fixdate, or the obsolete RFC 850 and asctime forms
/// that recipients must still accept.
pub fn http_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.with_timezone(&Utc));
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|d| d.and_utc())
}

/// What a request that got no response means: it could not be sent or answered (network,
/// retried). The request itself cannot be at fault: its URI was checked when the rule loaded.
fn send_error(e: &hyper_util::client::legacy::Error) -> Outcome {
    let mut error = String::from(if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    });
    // hyper's errors never carry the URL, which may hold a secret.
    crate::outcome::push_causes(&mut error, std::error::Error::source(e), |err| {
        err.to_string()
    });
    Outcome::Retry {
        code: ErrorCode::Network,
        error,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_references() {
        assert_eq!(
            expand("Bearer ${TOKEN}", env),
            Ok(("Bearer s3cret".to_owned(), true))
        );
        assert_eq!(
            expand("${TOKEN}${EMPTY}-${TOKEN}", env),
            Ok(("s3cret-s3cret".to_owned(), true))
        );
        assert_eq!(expand("plain", env), Ok(("plain".to_owned(), false)));
        assert_eq!(expand("$TOKEN", env), Ok(("$TOKEN".to_owned(), false)));
        assert_eq!(expand("${", env), Ok(("${".to_owned(), false)));
        assert_eq!(
            expand("a ${ b } ${TOKEN", env),
            Ok(("a ${ b } ${TOKEN".to_owned(), false))
        );
        assert_eq!(expand("${1X}", env), Ok(("${1X}".to_owned(), false)));
        assert_eq!(
            expand("x ${MISSING} ${TOKEN}", env),
            Err("MISSING".to_owned())
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(r#"{"a":1}"#), "application/json");
        assert_eq!(content_type(r#" "text" "#), "application/json");
        assert_eq!(content_type("42"), "application/json");
        assert_eq!(
            content_type("[ALERT] disk full"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(content_type(""), "text/plain; charset=utf-8");
    }

    #[test]
    fn status_classes() {
        let class = |s: u16| status_class(StatusCode::from_u16(s).unwrap());
        assert_eq!(class(429), Some(ErrorCode::Throttling));
        assert_eq!(class(408), Some(ErrorCode::TargetError));
        assert_eq!(class(500), Some(ErrorCode::TargetError));
        assert_eq!(class(599), Some(ErrorCode::TargetError));
        assert_eq!(class(401), Some(ErrorCode::NoPermissions));
        assert_eq!(class(403), Some(ErrorCode::NoPermissions));
        assert_eq!(class(404), Some(ErrorCode::NoResource));
        assert_eq!(class(410), Some(ErrorCode::NoResource));
        assert_eq!(class(400), Some(ErrorCode::InvalidParameter));
        assert_eq!(class(413), Some(ErrorCode::InvalidParameter));
        assert_eq!(class(101), None);
    }

    fn retry_headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_forms() {
        let now = http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let at = |v: &str| retry_after(&retry_headers(&[("retry-after", v)]), now);
        assert_eq!(at("7"), Some(Duration::from_secs(7)));
        assert_eq!(at(" 0 "), Some(Duration::ZERO));
        assert_eq!(at("86400"), Some(RETRY_AFTER_CAP));
        assert_eq!(at("99999999999999999999999"), Some(RETRY_AFTER_CAP));
        assert_eq!(
            at("Sun, 06 Nov 1994 08:51:37 GMT"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            at("Sunday, 06-Nov-94 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            at("Sun Nov  6 08:50:07 1994"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(at("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("-5"), None);
        assert_eq!(at("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
        // The server's own clock wins over ours.
        let skewed = retry_headers(&[
            ("retry-after", "Sun, 06 Nov 1994 09:00:00 GMT"),
            ("date", "Sun, 06 Nov 1994 08:59:00 GMT"),
        ]);
        assert_eq!(retry_after(&skewed, now), Some(Duration::from_secs(60)));
    }

    #[test]
    fn partial_chars_are_trimmed() {
        let s = "añb".as_bytes();
        assert_eq!(trim_partial_char(&s[..2]), b"a");
        assert_eq!(trim_partial_char(s), s);
        assert_eq!(trim_partial_char(b"\xffa"), b"\xffa");
    }
}
