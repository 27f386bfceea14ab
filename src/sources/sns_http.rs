//! SNS over HTTP(S): `POST /sns/{source}`, the endpoint of an SNS topic's http/https
//! subscription. `{source}` names an `sns` source.
//!
//! Every message, whatever its type, is verified before anything is done with it: its
//! envelope is read (`sns_verify::parse`; raw message delivery is refused, it cannot be
//! verified), its `SigningCertURL` must be on a trusted host (checked before anything is
//! fetched), the certificate's public key is fetched (no redirects, a timeout, cached per URL)
//! and the signature checked; then the topic must be one of the source's `topic_arns` and the
//! `Timestamp` within `max_age`. Then: a `Notification` becomes an event (the same decoding as
//! SNS envelopes on SQS) and is accepted into the outbox, once per `MessageId` among recent
//! ones; a `SubscriptionConfirmation` is confirmed by a GET of its `SubscribeURL` (on a trusted
//! host only); an `UnsubscribeConfirmation` is logged.
//!
//! Answers: 200 when done (or a duplicate); 400 for a malformed message, 403 for one refused
//! (bad or missing signature, untrusted URL, topic not allowed, stale, raw delivery), 404 for
//! an unknown source; 502 when the certificate could not be fetched or the subscription not
//! confirmed, so that SNS delivers the message again. Every refusal is logged and counted in
//! `trigd_events_rejected_total{source, reason}`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde_json::{Value, json};

use super::decode::sns_event;
use super::sns_verify::{
    self, Envelope, MessageType, SnsError, UrlUse, check_age, check_topic, trusted_url,
    verify_signature,
};
use crate::intake::Batch;
use crate::route::Received;
use crate::rules::{RuleSet, SourceKind, TrustedHost};
use crate::server::{AppState, Phase, Refusal, parse_body, refuse};

/// How long fetching a certificate or confirming a subscription may take. SNS waits 15 s
/// for an answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A signing certificate is a couple of KiB; anything much larger is not one.
const MAX_CERT_BYTES: usize = 64 * 1024;
/// Certificates cached (AWS uses one per region at a time).
const CERT_CACHE: usize = 32;
/// Message ids remembered per source, to acknowledge redeliveries without accepting them
/// again.
const RECENT_IDS: usize = 4096;

/// What SNS over HTTP keeps between requests.
pub struct SnsHttp {
    /// Redirects off, so a trusted URL cannot send trigd elsewhere.
    client: reqwest::Client,
    /// Certificate URL → its public key (SubjectPublicKeyInfo, DER).
    certs: Mutex<Bounded<Arc<[u8]>>>,
    /// Source name → message ids accepted recently.
    seen: Mutex<HashMap<String, Bounded<()>>>,
}

impl SnsHttp {
    pub fn new() -> Result<SnsHttp, reqwest::Error> {
        Ok(SnsHttp {
            // Redirects off: a confirmation or certificate URL is fetched only where SNS
            // says, and it was checked to be SNS's.
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("trigd/", env!("CARGO_PKG_VERSION")))
                .build()?,
            certs: Mutex::new(Bounded::new(CERT_CACHE)),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// The public key of the certificate at `url` (already found trusted), from the cache or
    /// fetched.
    async fn public_key(&self, url: &Url) -> Result<Arc<[u8]>, SnsError> {
        let cached = self
            .certs
            .lock()
            .ok()
            .and_then(|c| c.get(url.as_str()).cloned());
        if let Some(key) = cached {
            return Ok(key);
        }
        let unavailable = |why: String| SnsError::CertUnavailable(format!("{url}: {why}"));
        let mut response = self
            .client
            .get(url.clone())
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| unavailable(chain(&e)))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("answered {}", response.status())));
        }
        let mut pem = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unavailable(chain(&e)))? {
            if pem.len() + chunk.len() > MAX_CERT_BYTES {
                return Err(SnsError::BadCertificate(format!(
                    "{url} is larger than {MAX_CERT_BYTES} bytes"
                )));
            }
            pem.extend_from_slice(&chunk);
        }
        let key: Arc<[u8]> = sns_verify::public_key_from_pem(&pem)?.into();
        if let Ok(mut certs) = self.certs.lock() {
            certs.insert(url.to_string(), Arc::clone(&key));
        }
        tracing::info!(message = "SNS signing certificate fetched.", url = %url);
        Ok(key)
    }

    /// Confirms a subscription: GET its `SubscribeURL` (already found trusted).
    async fn confirm(&self, url: &Url) -> Result<(), SnsError> {
        let response = self
            .client
            .get(url.clone())
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| SnsError::ConfirmFailed(chain(&e)))?;
        if !response.status().is_success() {
            return Err(SnsError::ConfirmFailed(format!(
                "the SubscribeURL answered {}",
                response.status()
            )));
        }
        Ok(())
    }

    fn seen(&self, source: &str, message_id: &str) -> bool {
        self.seen.lock().ok().is_some_and(|s| {
            s.get(source)
                .is_some_and(|ids| ids.get(message_id).is_some())
        })
    }

    fn remember(&self, source: &str, message_id: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.entry(source.to_owned())
                .or_insert_with(|| Bounded::new(RECENT_IDS))
                .insert(message_id.to_owned(), ());
        }
    }
}

/// A map that forgets its oldest entries beyond a capacity.
struct Bounded<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
    cap: usize,
}

impl<V> Bounded<V> {
    fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    fn insert(&mut self, key: String, value: V) {
        if let Some(v) = self.map.get_mut(&key) {
            *v = value;
            return;
        }
        while self.order.len() >= self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
    }
}

/// An `sns` source's settings, as one request needs them.
struct SourceConfig<'a> {
    topic_arns: &'a [String],
    trusted: &'a [TrustedHost],
    max_age: Duration,
}

/// Why a request failed: the message, or the shared intake.
enum Failure {
    Sns(SnsError),
    Intake(Refusal),
}

impl From<SnsError> for Failure {
    fn from(e: SnsError) -> Self {
        Failure::Sns(e)
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Failure::Intake(r)
    }
}

/// `POST /sns/{source}`.
/// What the SNS route needs: the listener's state and the SNS client.
pub struct SnsState {
    pub app: Arc<AppState>,
    /// Signing certificates and recent message ids.
    pub sns: SnsHttp,
}

/// `POST /sns/{source}`, to merge into the listener's routes.
pub fn routes(app: Arc<AppState>, sns: SnsHttp, max_body: usize) -> axum::Router {
    axum::Router::new()
        .route("/sns/{source}", axum::routing::post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_request(crate::server::linger))
        .with_state(Arc::new(SnsState { app, sns }))
}

async fn receive(
    State(st): State<Arc<SnsState>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let state = &st.app;
    if state.phase() != Phase::Running {
        return refuse(state, &source, Refusal::not_running());
    }
    let rules = state.intake.rules();
    let config = rules.sources.iter().find_map(|s| match &s.kind {
        SourceKind::Sns {
            topic_arns,
            trusted_cert_hosts,
            max_age,
        } if s.name == source => Some(SourceConfig {
            topic_arns,
            trusted: trusted_cert_hosts,
            max_age: *max_age,
        }),
        _ => None,
    });
    let Some(config) = config else {
        tracing::warn!(
            message = "SNS message for an unknown source refused.",
            source
        );
        return refuse(
            state,
            &source,
            Refusal::new(
                StatusCode::NOT_FOUND,
                "unknown_source",
                format!("no sns source is named `{source}`"),
            ),
        );
    };
    match handle(&st, &rules, &source, &config, &headers, body).await {
        Ok(response) => response,
        Err(Failure::Intake(r)) => {
            tracing::warn!(message = "SNS message refused.", source, reason = r.reason, error = %r.message);
            refuse(state, &source, r)
        }
        Err(Failure::Sns(e)) => {
            let status = if e.retryable() {
                StatusCode::BAD_GATEWAY
            } else if matches!(e, SnsError::Malformed(_)) {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::FORBIDDEN
            };
            tracing::warn!(message = "SNS message refused.", source, reason = e.reason(), error = %e);
            refuse(
                state,
                &source,
                Refusal::new(status, e.reason(), e.to_string()),
            )
        }
    }
}

async fn handle(
    st: &SnsState,
    rules: &RuleSet,
    source: &str,
    config: &SourceConfig<'_>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let raw = headers
        .get("x-amz-sns-rawdelivery")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if raw {
        return Err(SnsError::RawDelivery.into());
    }
    let (_, body) = parse_body(body)?;
    let header_type = headers
        .get("x-amz-sns-message-type")
        .and_then(|v| v.to_str().ok());
    let envelope = sns_verify::parse(&body, header_type)?;
    let cert_url = trusted_url(&envelope.cert_url, config.trusted, UrlUse::Certificate)
        .ok_or_else(|| SnsError::UntrustedCertHost(envelope.cert_url.clone()))?;
    let key = st.sns.public_key(&cert_url).await?;
    verify_signature(&envelope, &key)?;
    check_topic(&envelope.topic_arn, config.topic_arns)?;
    let now = Utc::now();
    check_age(envelope.timestamp, now, config.max_age)?;
    match envelope.kind {
        MessageType::Notification => {
            let subscription = headers
                .get("x-amz-sns-subscription-arn")
                .and_then(|v| v.to_str().ok());
            notification(st, rules, source, &envelope, &body, subscription, now).await
        }
        MessageType::SubscriptionConfirmation => {
            let text = envelope.subscribe_url.as_deref().unwrap_or_default();
            let url = trusted_url(text, config.trusted, UrlUse::Subscribe)
                .ok_or_else(|| SnsError::UntrustedSubscribeUrl(text.to_owned()))?;
            st.sns.confirm(&url).await?;
            tracing::info!(message = "SNS subscription confirmed.", source, topic = %envelope.topic_arn, host = url.host_str().unwrap_or_default());
            Ok(ok(json!({"confirmed": envelope.topic_arn})))
        }
        MessageType::UnsubscribeConfirmation => {
            tracing::info!(message = "SNS subscription ended.", source, topic = %envelope.topic_arn);
            Ok(ok(json!({"unsubscribed": envelope.topic_arn})))
        }
    }
}

/// A verified notification → its event, into the outbox (once per recent `MessageId`).
async fn notification(
    st: &SnsState,
    rules: &RuleSet,
    source: &str,
    envelope: &Envelope,
    body: &Value,
    subscription_arn: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Response, Failure> {
    let id = &envelope.message_id;
    if st.sns.seen(source, id) {
        tracing::info!(message = "SNS message already accepted; acknowledged again.", source, message_id = %id);
        return Ok(ok(json!({"id": id, "duplicate": true})));
    }
    let events = sns_event(body, id, &rules.settings, now).map_err(|e| SnsError::Malformed(e.0))?;
    st.app
        .intake
        .accept(
            rules,
            Batch::new(source, events).with_received(vec![Received::Sns {
                envelope: body,
                subscription_arn,
            }]),
            now,
        )
        .await
        .map_err(Refusal::from)?;
    st.sns.remember(source, id);
    Ok(ok(json!({"id": id})))
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A reqwest error and its causes, "a: b: c", without the URL (SNS's URLs carry tokens).
fn chain(e: &reqwest::Error) -> String {
    let mut text = String::new();
    crate::outcome::push_causes(&mut text, Some(e), |err| {
        match err.downcast_ref::<reqwest::Error>() {
            // Display without the URL: say what kind of failure it was, then walk on.
            Some(re) if re.url().is_some() => reqwest_kind(re).to_owned(),
            _ => err.to_string(),
        }
    });
    text
}

fn reqwest_kind(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() {
        "error sending the request body"
    } else if e.is_request() {
        "error sending the request"
    } else if e.is_decode() {
        "error decoding the response"
    } else {
        "request failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_maps_forget_the_oldest() {
        let mut b = Bounded::new(2);
        b.insert("a".to_owned(), 1);
        b.insert("b".to_owned(), 2);
        b.insert("a".to_owned(), 3);
        assert_eq!(b.get("a"), Some(&3));
        b.insert("c".to_owned(), 4);
        assert_eq!(b.get("a"), None);
        assert_eq!(b.get("b"), Some(&2));
        assert_eq!(b.get("c"), Some(&4));
        assert_eq!(b.map.len(), 2);
    }
}
