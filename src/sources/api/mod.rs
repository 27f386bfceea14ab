//! The HTTP API listener (`api.listen` in `trigd.yaml`): the functions' `api` triggers served
//! as API Gateway's HTTP API serves Lambda proxy integrations, on a listener of its own.
//!
//! A request is routed through the current rule set's [`RouteTable`] (compiled once per set
//! and rebuilt when a reload brings a new one), turned into a payload format 2.0 or 1.0 event
//! ([`crate::lambda_events::api`]), handed to the function through [`Host::invoke`] as a
//! `RequestResponse` invocation (waiting its turn when all of the function's environments are
//! busy), and the result mapped back to a response. CORS preflights are answered without
//! invoking anything ([`cors`]). Every request is counted (`trigd_api_requests_total{route,
//! status}`, `trigd_api_request_duration_seconds{route}`) and logged once, at info.
//!
//! These requests are answered, not stored: they never touch the outbox, the one exception to
//! "a 2xx means the event is stored". A request lost to a stop is lost, as with API Gateway.

pub mod cors;
pub mod routes;

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Version, header};
use axum::response::Response;
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::config::settings::{ApiSettings, Cors};
use crate::functions::{ErrorKind, Host, Invocation, InvokeError};
use crate::intake::Intake;
use crate::lambda_events::api::{
    self as shapes, Context, GatewayError, MAX_BODY, Matched, Request as ApiRequest,
};
use crate::metrics::Metrics;
use crate::rules::{PayloadFormat, RuleSet};
use routes::RouteTable;

/// The route label of requests that matched no route.
const NO_ROUTE: &str = "-";
/// The route label of CORS preflights the gateway answered.
const PREFLIGHT: &str = "$cors-preflight";

/// What the listener needs; one per daemon, shared by every request.
pub struct Api {
    /// Holds the current rules (the reloader swaps them in).
    intake: Intake,
    host: Arc<Host>,
    metrics: Arc<Metrics>,
    cors: Option<Cors>,
    /// `requestContext.apiId`: stable for a listen address, as an API's id is for the API.
    api_id: String,
    /// The table of the rule set it was compiled from, found again by pointer: compiled once
    /// per rule set, not per request.
    table: Mutex<Option<(Arc<RuleSet>, Arc<RouteTable>)>>,
}

impl Api {
    pub fn new(
        intake: Intake,
        host: Arc<Host>,
        metrics: Arc<Metrics>,
        settings: &ApiSettings,
    ) -> Api {
        Api {
            intake,
            host,
            metrics,
            cors: settings.cors.clone(),
            api_id: api_id(settings.listen),
            table: Mutex::new(None),
        }
    }

    /// The routes of the current rules.
    fn table(&self) -> (Arc<RuleSet>, Arc<RouteTable>) {
        let rules = self.intake.rules();
        let mut cached = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((r, t)) = cached.as_ref()
            && Arc::ptr_eq(r, &rules)
        {
            return (rules, Arc::clone(t));
        }
        let table = Arc::new(RouteTable::new(&rules));
        *cached = Some((Arc::clone(&rules), Arc::clone(&table)));
        (rules, table)
    }
}

/// A ten-character id of lower-case letters and digits, as API Gateway's, derived from the
/// listen address.
pub fn api_id(listen: SocketAddr) -> String {
    let mut h = listen
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..10)
        .map(|_| {
            let c = ALPHABET[(h % 36) as usize] as char;
            h /= 36;
            c
        })
        .collect()
}

/// The listener's router (every path and method goes to the route table).
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(axum::middleware::map_request(crate::server::linger))
        .with_state(api)
}

/// Serves `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(api).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// What one request came to, for the response, the metrics and the access log.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The route label.
    route: String,
    /// Why the gateway answered with an error, for the log.
    error: Option<String>,
    /// Payload format 1.0, whose error text differs.
    v1: bool,
}

impl Answer {
    fn gateway(e: GatewayError, route: String, error: Option<String>) -> Answer {
        let r = e.response();
        Answer {
            status: r.status,
            headers: r.headers,
            body: r.body,
            route,
            error,
            v1: matches!(e, GatewayError::Integration { v1: true }),
        }
    }
}

async fn handle(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let start = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let raw_path = parts.uri.path().to_owned();
    let header = |name: HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let origin = header(header::ORIGIN);
    let mut answer = answer(&api, &parts, body, &request_id, peer, origin.as_deref()).await;
    if let Some(cors) = &api.cors
        && answer.route != PREFLIGHT
    {
        cors::decorate(cors, origin.as_deref(), &mut answer.headers);
    }
    answer
        .headers
        .push(("apigw-requestid".into(), request_id.clone()));
    let response = match build(&mut answer) {
        Ok(r) => r,
        Err(why) => {
            // A header the function set cannot be sent: a malformed result.
            let v1 = answer.v1;
            answer = Answer::gateway(GatewayError::Integration { v1 }, answer.route, Some(why));
            answer
                .headers
                .push(("apigw-requestid".into(), request_id.clone()));
            build(&mut answer).unwrap_or_else(|_| Response::new(Body::empty()))
        }
    };
    let latency = start.elapsed();
    let status = response.status();
    api.metrics.inc(
        "trigd_api_requests_total",
        &[("route", &answer.route), ("status", status.as_str())],
    );
    api.metrics.observe(
        "trigd_api_request_duration_seconds",
        &[("route", &answer.route)],
        latency.as_secs_f64(),
    );
    tracing::info!(
        message = "API request.",
        method,
        path = raw_path,
        route = answer.route,
        status = status.as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        request_id,
        error = answer.error.as_deref()
    );
    response
}

/// Routes, invokes and maps one request.
async fn answer(
    api: &Api,
    parts: &axum::http::request::Parts,
    body: Body,
    request_id: &str,
    peer: SocketAddr,
    origin: Option<&str>,
) -> Answer {
    let method = parts.method.as_str();
    if let (Some(cors), Some(origin)) = (&api.cors, origin)
        && method == "OPTIONS"
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let asked = parts
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok());
        return Answer {
            status: 204,
            headers: cors::preflight(cors, origin, asked),
            body: Vec::new(),
            route: PREFLIGHT.to_owned(),
            error: None,
            v1: false,
        };
    }
    let (rules, table) = api.table();
    let Some(selected) = table.select(method, parts.uri.path()) else {
        return Answer::gateway(GatewayError::NotFound, NO_ROUTE.to_owned(), None);
    };
    let route = selected.key.to_string();
    let v1 = selected.format == PayloadFormat::V1;
    let body = match read_body(parts, body).await {
        Ok(b) => b,
        Err(e) => return Answer::gateway(e, route, None),
    };
    let headers: Vec<(&str, Cow<'_, str>)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let source_ip = peer.ip().to_string();
    let request = ApiRequest {
        method,
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or_default(),
        headers: &headers,
        body: &body,
        protocol: protocol(parts.version),
        source_ip: &source_ip,
    };
    let matched = Matched {
        key: selected.key,
        params: &selected.params,
    };
    let ctx = Context {
        request_id,
        time: Utc::now(),
        account_id: &rules.settings.account,
        api_id: &api.api_id,
    };
    let event = if v1 {
        shapes::event_v1(&request, &matched, &ctx)
    } else {
        shapes::event_v2(&request, &matched, &ctx)
    };
    let invocation = Invocation::new(event.to_string());
    let integration =
        |why: String| Answer::gateway(GatewayError::Integration { v1 }, route.clone(), Some(why));
    // The invocation runs in a task of its own and is awaited here: a client that goes away
    // drops this future, not the invocation, which ends as on Lambda (within the function's
    // timeout) and leaves its environment warm and its pool's counts right.
    let host = Arc::clone(&api.host);
    let function = selected.function.to_owned();
    let invoked = tokio::spawn(async move { host.invoke(&function, invocation).await }).await;
    let outcome = match invoked {
        Ok(Ok(o)) => o,
        Ok(Err(InvokeError::NotFound(name))) => {
            return integration(format!("function `{name}` is not loaded"));
        }
        Err(e) => return integration(format!("the invocation failed: {e}")),
    };
    let result = match outcome.result {
        Ok(result) => result,
        Err(e) if e.kind == ErrorKind::Timeout => {
            return Answer::gateway(GatewayError::Timeout, route, Some(e.summary()));
        }
        Err(e) => return integration(e.summary()),
    };
    let mapped = if v1 {
        shapes::response_v1(&result)
    } else {
        shapes::response_v2(&result)
    };
    match mapped {
        Ok(r) => Answer {
            status: r.status,
            headers: r.headers,
            body: r.body,
            route,
            error: None,
            v1,
        },
        Err(m) => integration(m.to_string()),
    }
}

/// The request's body, up to [`MAX_BODY`].
async fn read_body(parts: &axum::http::request::Parts, body: Body) -> Result<Bytes, GatewayError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(GatewayError::TooLarge);
    }
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(GatewayError::TooLarge),
        // The client went away mid-body, or sent a broken chunked body.
        Err(_) => Err(GatewayError::BadRequest),
    }
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Headers the listener sets itself from the body it sends.
const FRAMING: &[&str] = &["content-length", "transfer-encoding", "connection"];

/// The HTTP response (taking the answer's body); `Err` names a header that cannot be sent.
fn build(answer: &mut Answer) -> Result<Response, String> {
    let mut response = Response::new(Body::from(std::mem::take(&mut answer.body)));
    *response.status_mut() = StatusCode::from_u16(answer.status)
        .map_err(|_| format!("status {} is not an HTTP status", answer.status))?;
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a header name"))?;
        if FRAMING.contains(&name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` cannot be sent"))?;
        headers.append(name, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_ids_are_stable_and_look_like_api_gateways() {
        let a = api_id("127.0.0.1:3000".parse().unwrap());
        assert_eq!(a, api_id("127.0.0.1:3000".parse().unwrap()));
        assert_ne!(a, api_id("127.0.0.1:3001".parse().unwrap()));
        assert_eq!(a.len(), 10);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }

    #[test]
    fn headers_that_cannot_be_sent_are_refused_and_framing_is_ours() {
        let answer = |headers: &[(&str, &str)]| Answer {
            status: 200,
            headers: headers
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
            body: b"hi".to_vec(),
            route: "r".into(),
            error: None,
            v1: false,
        };
        let r = build(&mut answer(&[
            ("content-length", "99"),
            ("x-a", "1"),
            ("x-a", "2"),
        ]))
        .unwrap();
        assert!(r.headers().get("content-length").is_none());
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        assert!(build(&mut answer(&[("bad name", "1")])).is_err());
        assert!(build(&mut answer(&[("x-a", "line\nbreak")])).is_err());
    }
}
