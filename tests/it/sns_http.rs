//! SNS over HTTP end to end: the real daemon on 127.0.0.1, messages signed here (SHA1withRSA
//! and SHA256withRSA) with a key and self-signed certificate made here, the certificate served
//! by a small server that also records every request it gets (certificate fetches and
//! subscription confirmations), deliveries recorded by an HTTP target.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use rsa::pkcs8::DecodePrivateKey as _;
use serde_json::{Value, json};

use crate::harness::{Daemon, Recorder, write_rules};
use crate::util::{rules_dir, run_in};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders";

/// Signs SNS messages as SNS does, with a certificate to serve.
struct Signer {
    key: rsa::RsaPrivateKey,
    cert_pem: String,
}

impl Signer {
    fn new() -> Signer {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["sns.us-east-1.amazonaws.com".to_owned()])
            .unwrap()
            .self_signed(&pair)
            .unwrap();
        Signer {
            key: rsa::RsaPrivateKey::from_pkcs8_der(&pair.serialize_der()).unwrap(),
            cert_pem: cert.pem(),
        }
    }

    /// Sets `SignatureVersion` and `Signature` over AWS's string to sign (aws-semantics §6.2).
    fn sign(&self, msg: &mut Value, version: u8) {
        let keys: &[&str] = if msg["Type"] == "Notification" {
            &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ]
        } else {
            &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ]
        };
        let mut text = String::new();
        for k in keys {
            if let Some(v) = msg[*k].as_str() {
                text.push_str(&format!("{k}\n{v}\n"));
            }
        }
        // PKCS#1 v1.5: the DigestInfo prefix of the hash, then the hash.
        let (alg, prefix): (_, &[u8]) = match version {
            1 => (
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                &[
                    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
                    0x04, 0x14,
                ],
            ),
            _ => (
                &aws_lc_rs::digest::SHA256,
                &[
                    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
                    0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
                ],
            ),
        };
        let digest = aws_lc_rs::digest::digest(alg, text.as_bytes());
        let padding = rsa::Pkcs1v15Sign {
            hash_len: Some(digest.as_ref().len()),
            prefix: prefix.into(),
        };
        let signature = self.key.sign(padding, digest.as_ref()).unwrap();
        msg["SignatureVersion"] = json!(version.to_string());
        msg["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
    }
}

/// Serves the certificate at any `*.pem` path and 200 elsewhere, on 127.0.0.1 and 127.0.0.2
/// (same port), recording `host path?query` of every request.
struct CertServer {
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
}

impl CertServer {
    async fn start(pem: String) -> CertServer {
        let first = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let second = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 2], port)))
            .await
            .unwrap();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let h = Arc::clone(&hits);
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, uri: axum::http::Uri| {
                let (h, pem) = (Arc::clone(&h), pem.clone());
                async move {
                    let host = headers
                        .get("host")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    h.lock().unwrap().push(format!("{host} {uri}"));
                    if uri.path().ends_with(".pem") {
                        pem
                    } else {
                        "ok".to_owned()
                    }
                }
            },
        );
        for listener in [first, second] {
            let app = app.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        CertServer { port, hits }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    fn hits(&self, needle: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.contains(needle))
            .count()
    }
}

/// A daemon with an `orders` sns source (trusting the certificate server) and a rule sending
/// every SNS event to `rec`.
struct Setup {
    daemon: Daemon,
    rec: Recorder,
    certs: CertServer,
    signer: Signer,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_with("", &[]).await
}

/// As [`setup`], with more rules (`  - name: ...` items) and more `trigd run` arguments.
async fn setup_with(more_rules: &str, args: &[&str]) -> Setup {
    let signer = Signer::new();
    let certs = CertServer::start(signer.cert_pem.clone()).await;
    let rec = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let text = format!(
        r#"
sources:
  orders:
    sns:
      topic_arns: ["{TOPIC}"]
      trusted_cert_hosts: ["http://127.0.0.1:{port}"]
      max_age: 10m
rules:
  - name: sns-orders
    pattern: {{source: [aws.sns]}}
    targets:
      - id: hook
        http: {url}
{more_rules}"#,
        port = certs.port,
        url = rec.url()
    );
    write_rules(&rules, "r.yaml", &text);
    let daemon = Daemon::start(&rules, &dir.path().join("state"), args);
    Setup {
        daemon,
        rec,
        certs,
        signer,
        dir,
    }
}

fn now_plus(minutes: i64) -> String {
    (Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Setup {
    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn cert_url(&self) -> String {
        self.certs
            .url("127.0.0.1", "/SimpleNotificationService-test.pem")
    }

    /// An unsigned Notification of `message` on the allowed topic.
    fn notification(&self, id: &str, message: &str) -> Value {
        json!({
            "Type": "Notification",
            "MessageId": id,
            "TopicArn": TOPIC,
            "Subject": "order placed",
            "Message": message,
            "Timestamp": now_plus(0),
            "SigningCertURL": self.cert_url(),
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
            "MessageAttributes": {"kind": {"Type": "String", "Value": "order"}}
        })
    }

    fn signed(&self, mut msg: Value, version: u8) -> Value {
        self.signer.sign(&mut msg, version);
        msg
    }

    async fn post(&self, msg: &Value) -> (u16, String) {
        self.post_to("orders", msg, &[]).await
    }

    async fn post_to(&self, source: &str, msg: &Value, headers: &[(&str, &str)]) -> (u16, String) {
        let mut req = reqwest::Client::new()
            .post(self.daemon.url(&format!("/sns/{source}")))
            .header("content-type", "text/plain; charset=UTF-8")
            .body(msg.to_string());
        if let Some(t) = msg["Type"].as_str() {
            req = req.header("x-amz-sns-message-type", t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn metrics(&self) -> String {
        reqwest::get(self.daemon.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn rejected(&self, source: &str, reason: &str) -> u64 {
        let line =
            format!("trigd_events_rejected_total{{source=\"{source}\",reason=\"{reason}\"}} ");
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&line).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    }

    async fn matches(&self) -> u64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| {
                l.strip_prefix("trigd_rule_matches_total{rule=\"sns-orders\"} ")
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_notifications_become_events_once() {
    let s = setup().await;
    let v1 = s.signed(s.notification("m-1", r#"{"order": 1}"#), 1);
    let (status, body) = s.post(&v1).await;
    assert_eq!(status, 200, "{body}");
    let v2 = s.signed(s.notification("m-2", r#"{"order": 2}"#), 2);
    let (status, body) = s.post(&v2).await;
    assert_eq!(status, 200, "{body}");

    let got = s.rec.wait_for(2).await;
    let mut events: Vec<Value> = got
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    events.sort_by_key(|e| e["detail"]["MessageId"].as_str().unwrap().to_owned());
    for (e, n) in events.iter().zip([1, 2]) {
        assert_eq!(e["source"], "aws.sns");
        assert_eq!(e["detail-type"], "SNS Notification");
        assert_eq!(e["resources"], json!([TOPIC]));
        assert_eq!(e["detail"]["Message"], json!({"order": n}), "parsed JSON");
        assert_eq!(e["detail"]["Subject"], "order placed");
        assert_eq!(e["detail"]["MessageAttributes"]["kind"]["Value"], "order");
    }
    // The certificate was fetched once, then cached.
    assert_eq!(s.certs.hits(".pem"), 1, "{:?}", s.certs.hits);

    // SNS redelivers: acknowledged, not accepted again.
    let (status, body) = s.post(&v1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["duplicate"],
        true
    );
    assert_eq!(s.matches().await, 2, "the duplicate was not routed");
    assert!(
        s.metrics()
            .await
            .contains("trigd_events_received_total{source=\"orders\"} 2")
    );
    assert_eq!(s.rec.count(), 2);
    assert_eq!(s.daemon.stop(), 0);
}

/// The SNS row of `intake.rs`'s table: counted, dead-lettered and archived as every source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sns_notifications_are_counted_dead_lettered_and_archived_as_every_source() {
    let s = setup_with(
        &crate::intake::rules("sns", "pattern: {source: [aws.sns]}"),
        &["--archive"],
    )
    .await;
    let msg = s.signed(s.notification("m-1", r#"{"order": 1}"#), 2);
    let (status, body) = s.post(&msg).await;
    assert_eq!(status, 200, "{body}");
    let state = s.state();
    crate::intake::assert_taken_in(&s.daemon, &state, "sns", ("orders", 1.0)).await;
    assert_eq!(s.daemon.stop(), 0);
    crate::intake::assert_archived(&state, &["aws.sns"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unverifiable_or_unwanted_messages_are_refused_and_counted() {
    let s = setup().await;
    let mut refused = Vec::new();

    let mut tampered = s.signed(s.notification("t-1", r#"{"order": 1}"#), 2);
    tampered["Message"] = json!(r#"{"order": 1000}"#);
    refused.push(("bad_signature", 403, tampered));

    let mut unsigned = s.notification("t-2", "{}");
    unsigned["SignatureVersion"] = json!("1");
    refused.push(("unsigned", 403, unsigned));

    let mut v3 = s.signed(s.notification("t-3", "{}"), 2);
    v3["SignatureVersion"] = json!("3");
    refused.push(("bad_signature_version", 403, v3));

    let mut old = s.notification("t-4", "{}");
    old["Timestamp"] = json!(now_plus(-20));
    refused.push(("stale", 403, s.signed(old, 1)));

    let mut future = s.notification("t-5", "{}");
    future["Timestamp"] = json!(now_plus(10));
    refused.push(("stale", 403, s.signed(future, 1)));

    let mut other_topic = s.notification("t-6", "{}");
    other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:123456789012:other");
    refused.push(("topic_not_allowed", 403, s.signed(other_topic, 2)));

    // On a loopback host the source does not list: refused before any fetch.
    let mut untrusted = s.notification("t-7", "{}");
    untrusted["SigningCertURL"] = json!(s.certs.url("127.0.0.2", "/untrusted.pem"));
    refused.push(("untrusted_cert_host", 403, s.signed(untrusted, 2)));
    let mut lookalike = s.notification("t-8", "{}");
    lookalike["SigningCertURL"] =
        json!("https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem");
    refused.push(("untrusted_cert_host", 403, s.signed(lookalike, 2)));

    for (reason, status, msg) in &refused {
        let (got, body) = s.post(msg).await;
        assert_eq!(got, *status, "{reason}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["error"],
            *reason,
            "{body}"
        );
    }
    assert_eq!(s.certs.hits("untrusted.pem"), 0, "{:?}", s.certs.hits);
    assert_eq!(s.certs.hits("127.0.0.2"), 0, "{:?}", s.certs.hits);

    // Raw message delivery cannot be verified.
    let raw = json!({"order": 1});
    let (status, _) = s
        .post_to("orders", &raw, &[("x-amz-sns-rawdelivery", "true")])
        .await;
    assert_eq!(status, 403);
    let (status, _) = s.post_to("orders", &raw, &[]).await;
    assert_eq!(status, 403, "no envelope is raw delivery too");
    // Not JSON, and a source that does not exist.
    let resp = reqwest::Client::new()
        .post(s.daemon.url("/sns/orders"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let good = s.signed(s.notification("g-1", "{}"), 1);
    let (status, _) = s.post_to("nope", &good, &[]).await;
    assert_eq!(status, 404);

    for (reason, n) in [
        ("bad_signature", 1),
        ("unsigned", 1),
        ("bad_signature_version", 1),
        ("stale", 2),
        ("topic_not_allowed", 1),
        ("untrusted_cert_host", 2),
        ("raw_delivery", 2),
        ("malformed_json", 1),
    ] {
        assert_eq!(s.rejected("orders", reason).await, n, "{reason}");
    }
    assert_eq!(s.rejected("nope", "unknown_source").await, 1);
    assert_eq!(s.matches().await, 0, "nothing refused was routed");

    // A good message after all that is the only delivery.
    let (status, body) = s.post(&good).await;
    assert_eq!(status, 200, "{body}");
    let got = s.rec.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(&got[0]).unwrap()["detail"]["MessageId"],
        "g-1"
    );
    assert_eq!(s.matches().await, 1);
    assert_eq!(s.daemon.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_are_confirmed_on_trusted_hosts_only() {
    let s = setup().await;
    let confirmation = |id: &str, subscribe_url: String| {
        json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": id,
            "Token": "tok-123",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": subscribe_url,
            "Timestamp": now_plus(0),
            "SigningCertURL": s.cert_url(),
        })
    };
    let trusted = s.certs.url(
        "127.0.0.1",
        "/?Action=ConfirmSubscription&TopicArn=orders&Token=tok-123",
    );
    let (status, body) = s.post(&s.signed(confirmation("c-1", trusted), 1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.certs.hits("Action=ConfirmSubscription"), 1);
    s.daemon.wait_log("the confirmation log line", |v| {
        v["message"] == "SNS subscription confirmed." && v["topic"] == TOPIC
    });

    let untrusted = s
        .certs
        .url("127.0.0.2", "/?Action=ConfirmSubscription&Token=evil");
    let (status, body) = s.post(&s.signed(confirmation("c-2", untrusted), 2)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(s.certs.hits("127.0.0.2"), 0, "{:?}", s.certs.hits);
    assert_eq!(s.rejected("orders", "untrusted_subscribe_url").await, 1);

    // A confirmation signed over another SubscribeURL than it carries is refused unvisited.
    let mut forged = s.signed(
        confirmation(
            "c-3",
            s.certs
                .url("127.0.0.1", "/?Action=ConfirmSubscription&Token=a"),
        ),
        2,
    );
    forged["SubscribeURL"] = json!(
        s.certs
            .url("127.0.0.1", "/?Action=ConfirmSubscription&Token=b")
    );
    let (status, _) = s.post(&forged).await;
    assert_eq!(status, 403);
    assert_eq!(s.certs.hits("Token=b"), 0);

    let mut bye = confirmation("u-1", s.certs.url("127.0.0.1", "/?Action=Resubscribe"));
    bye["Type"] = json!("UnsubscribeConfirmation");
    let (status, body) = s.post(&s.signed(bye, 1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        s.certs.hits("Resubscribe"),
        0,
        "unsubscribing visits nothing"
    );
    assert_eq!(s.certs.hits("Action=ConfirmSubscription"), 1);
    assert_eq!(s.daemon.stop(), 0);
}

#[test]
fn check_points_at_bad_sns_source_values() {
    let dir = rules_dir(&[(
        "r.yaml",
        r#"sources:
  a:
    sns:
      topic_arns: [arn:aws:sqs:us-east-1:1:q]
      trusted_cert_hosts: ["http://certs.example.com", "certs.example.com/x.pem", 7]
      max_age: 10s
  b:
    sns: {trusted_cert_hosts: "127.0.0.1", max_agee: 1h}
"#,
    )]);
    let run = run_in(dir.path(), &["check", "."], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for want in [
        "r.yaml:4:20: `arn:aws:sqs:us-east-1:1:q` is not an SNS topic ARN",
        "r.yaml:5:28: `http://certs.example.com` is not a trusted certificate host: plain http is allowed only for loopback hosts",
        "r.yaml:5:56: `certs.example.com/x.pem` is not a trusted certificate host: it must be a host and an optional port, without a path",
        "r.yaml:5:83: a trusted certificate host must be a string, got a number",
        "r.yaml:6:16: `max_age` must be between 1m and 7d",
        "r.yaml:8:31: `trusted_cert_hosts` must be a list of hosts, got a string",
        "r.yaml:8:44: unknown key `max_agee` in an sns source; did you mean `max_age`?",
    ] {
        assert!(run.stderr.contains(want), "{want}\nnot in:\n{}", run.stderr);
    }
}
