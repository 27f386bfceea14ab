//! Targets against real components: HTTP servers on 127.0.0.1 (axum) and real child processes.
//! Every test goes through `Targets::deliver`, the one entry point the dispatcher uses.

// `allow-unwrap-in-tests` covers `#[test]` functions only; in these helpers too a failed
// unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio::time::Instant;
use trigd::rules::{HttpUrl, TargetKind};
use trigd::targets::http::Proxies;
use trigd::targets::{Attempt, ErrorCode, Outcome, Output, Targets};

const JSON: &str = r#"{"hello":"world","n":[1,2,3]}"#;

fn attempt(payload: &str) -> Attempt<'_> {
    Attempt {
        delivery_id: "d-0123456789abcdef",
        rule: "rule-a",
        target: "target-1",
        event_id: "e-42",
        attempt: 3,
        payload,
        event: "{}",
        keep_output: false,
    }
}

/// The one call into the API: one attempt, bounded so a hang fails the test instead of
/// stalling the suite.
async fn deliver(kind: &TargetKind, payload: &str) -> Outcome {
    deliver_via(Proxies::none(), kind, payload).await
}

/// [`deliver`] through `proxies` (never the environment's: the tests stay on loopback
/// whatever the machine's proxy settings).
async fn deliver_via(proxies: Proxies, kind: &TargetKind, payload: &str) -> Outcome {
    let targets = Targets::with_proxies(proxies).expect("clients build");
    tokio::time::timeout(
        Duration::from_secs(60),
        targets.deliver(kind, &attempt(payload)),
    )
    .await
    .expect("the attempt ends")
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// A request as the server saw it.
#[derive(Debug)]
struct Seen {
    method: Method,
    /// The request target as sent: a path, or the full URL when sent to a proxy.
    uri: Uri,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

/// A real HTTP server on 127.0.0.1:0 whose answer depends on the path (see [`respond`]).
struct Server {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start() -> Server {
        let (tx, seen) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let tx = tx.clone();
                async move {
                    let path = uri.path().to_owned();
                    let _ = tx.send(Seen {
                        method,
                        uri: uri.clone(),
                        path: path.clone(),
                        query: uri.query().map(str::to_owned),
                        headers,
                        body,
                    });
                    respond(&path).await
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server { addr, seen, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request the server received.
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), self.seen.recv())
            .await
            .expect("a request within 10s")
            .expect("server running")
    }
}

/// `/status/N` answers N with a short body (301 with a `Location`); `/throttle-seconds` and
/// `/throttle-date` answer 429 with a `Retry-After`; `/big-error` a 500 with a long body;
/// `/hang` never answers.
async fn respond(path: &str) -> Response {
    if let Some(code) = path.strip_prefix("/status/") {
        let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        if status == StatusCode::NO_CONTENT {
            return status.into_response();
        }
        let mut response = (status, format!("body of {code}")).into_response();
        if status.is_redirection() {
            response.headers_mut().insert(
                "location",
                HeaderValue::from_static("https://example.invalid/elsewhere"),
            );
        }
        return response;
    }
    match path {
        "/throttle-seconds" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7".to_owned())],
            "slow down",
        )
            .into_response(),
        "/throttle-date" => {
            let at = chrono::Utc::now() + chrono::Duration::seconds(120);
            let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", date)],
                "slow down",
            )
                .into_response()
        }
        "/big-error" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}{}", "é".repeat(2000), "END"),
        )
            .into_response(),
        "/hang" => std::future::pending().await,
        _ => StatusCode::OK.into_response(),
    }
}

fn http(url: String) -> TargetKind {
    TargetKind::Http {
        url: HttpUrl::parse(&url).unwrap(),
        method: "POST".to_owned(),
        headers: Vec::new(),
        timeout: Duration::from_secs(10),
    }
}

fn http_with(url: String, method: &str, headers: &[(&str, &str)]) -> TargetKind {
    TargetKind::Http {
        url: HttpUrl::parse(&url).unwrap(),
        method: method.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        timeout: Duration::from_secs(10),
    }
}

#[track_caller]
fn assert_retry(outcome: &Outcome, want: ErrorCode, contains: &[&str]) -> Option<Duration> {
    match outcome {
        Outcome::Retry {
            code,
            error,
            retry_after,
        } => {
            assert_eq!(*code, want, "{error}");
            for c in contains {
                assert!(error.contains(c), "{error:?} should contain {c:?}");
            }
            *retry_after
        }
        other => panic!("expected a retry with {want:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_fail(outcome: &Outcome, want: ErrorCode, contains: &[&str]) -> String {
    match outcome {
        Outcome::Fail { code, error } => {
            assert_eq!(*code, want, "{error}");
            for c in contains {
                assert!(error.contains(c), "{error:?} should contain {c:?}");
            }
            error.clone()
        }
        other => panic!("expected a failure with {want:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn http_status_classes() {
    let mut server = Server::start().await;
    for code in [200, 201, 204] {
        let outcome = deliver(&http(server.url(&format!("/status/{code}"))), JSON).await;
        assert_eq!(outcome, Outcome::delivered(), "{code}");
    }
    let fails = [
        (301, ErrorCode::InvalidParameter),
        (302, ErrorCode::InvalidParameter),
        (400, ErrorCode::InvalidParameter),
        (401, ErrorCode::NoPermissions),
        (403, ErrorCode::NoPermissions),
        (404, ErrorCode::NoResource),
        (410, ErrorCode::NoResource),
        (413, ErrorCode::InvalidParameter),
    ];
    for (code, want) in fails {
        let outcome = deliver(&http(server.url(&format!("/status/{code}"))), JSON).await;
        let text = code.to_string();
        let error = assert_fail(&outcome, want, &[&text]);
        if code / 100 == 3 {
            assert!(
                error.contains("redirect to `https://example.invalid/elsewhere` not followed"),
                "{error}"
            );
        } else {
            assert!(error.contains(&format!("body of {code}")), "{error}");
        }
    }
    let retries = [
        (408, ErrorCode::TargetError),
        (429, ErrorCode::Throttling),
        (500, ErrorCode::TargetError),
        (502, ErrorCode::TargetError),
        (503, ErrorCode::TargetError),
    ];
    for (code, want) in retries {
        let outcome = deliver(&http(server.url(&format!("/status/{code}"))), JSON).await;
        let text = code.to_string();
        let body = format!("body of {code}");
        let retry_after = assert_retry(&outcome, want, &[&text, &body]);
        assert_eq!(retry_after, None, "{code}");
    }
    // The redirect was not followed: the server saw each path exactly once, in order.
    for code in [200, 201, 204, 301, 302, 400, 401, 403, 404, 410, 413] {
        assert_eq!(server.next().await.path, format!("/status/{code}"));
    }
}

#[tokio::test]
async fn http_retry_after_seconds_and_date() {
    let server = Server::start().await;
    let outcome = deliver(&http(server.url("/throttle-seconds")), JSON).await;
    let wait = assert_retry(&outcome, ErrorCode::Throttling, &["429", "slow down"]);
    assert_eq!(wait, Some(Duration::from_secs(7)));

    let outcome = deliver(&http(server.url("/throttle-date")), JSON).await;
    let wait = assert_retry(&outcome, ErrorCode::Throttling, &["429"]).expect("a wait");
    // 120 s from the server's `Date` header, which may lag by up to a second.
    assert!(
        (Duration::from_secs(118)..=Duration::from_secs(121)).contains(&wait),
        "{wait:?}"
    );
}

#[tokio::test]
async fn http_error_body_is_an_excerpt() {
    let server = Server::start().await;
    let outcome = deliver(&http(server.url("/big-error")), JSON).await;
    let error = match outcome {
        Outcome::Retry { error, .. } => error,
        other => panic!("{other:?}"),
    };
    assert!(
        error.starts_with("HTTP 500 Internal Server Error: éé"),
        "{error}"
    );
    assert!(!error.contains("END"), "{error}");
    assert!(!error.contains('\u{fffd}'), "no broken character: {error}");
    assert!(error.len() < 600, "{} bytes", error.len());
}

#[tokio::test]
async fn http_request_carries_payload_and_headers() {
    let mut server = Server::start().await;
    let path = std::env::var("PATH").expect("PATH is set in the test environment");
    let kind = http_with(
        server.url("/hook"),
        "PUT",
        &[
            ("Authorization", "Bearer ${PATH}!"),
            ("X-Plain", "a $b ${ c"),
        ],
    );
    assert_eq!(deliver(&kind, JSON).await, Outcome::delivered());
    let seen = server.next().await;
    assert_eq!(seen.method, Method::PUT);
    assert_eq!(seen.path, "/hook");
    assert_eq!(seen.body, JSON.as_bytes());
    let h = |name: &str| {
        seen.headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(h("idempotency-key"), "d-0123456789abcdef");
    assert_eq!(h("authorization"), format!("Bearer {path}!"));
    assert_eq!(h("x-plain"), "a $b ${ c");
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(
        h("user-agent"),
        format!("trigd/{}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn http_content_type_follows_the_payload_unless_configured() {
    let mut server = Server::start().await;
    let text = "[ALERT] disk full on host-1";
    assert_eq!(
        deliver(&http(server.url("/")), text).await,
        Outcome::delivered()
    );
    let seen = server.next().await;
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.body, text.as_bytes());
    assert_eq!(seen.headers["content-type"], "text/plain; charset=utf-8");

    let kind = http_with(
        server.url("/"),
        "POST",
        &[
            ("Content-Type", "application/cloudevents+json"),
            ("User-Agent", "custom/1"),
            // Ours wins: the delivery id is the key.
            ("Idempotency-Key", "configured"),
        ],
    );
    assert_eq!(deliver(&kind, JSON).await, Outcome::delivered());
    let seen = server.next().await;
    assert_eq!(seen.headers["content-type"], "application/cloudevents+json");
    assert_eq!(seen.headers["user-agent"], "custom/1");
    assert_eq!(
        seen.headers
            .get_all("idempotency-key")
            .iter()
            .collect::<Vec<_>>(),
        ["d-0123456789abcdef"]
    );
}

#[tokio::test]
async fn http_missing_variable_fails_without_sending() {
    let mut server = Server::start().await;
    let kind = http_with(
        server.url("/"),
        "POST",
        &[("Authorization", "Bearer ${TRIGD_SURELY_MISSING_VAR}")],
    );
    let outcome = deliver(&kind, JSON).await;
    assert_fail(
        &outcome,
        ErrorCode::InvalidParameter,
        &["TRIGD_SURELY_MISSING_VAR", "Authorization"],
    );
    // Nothing was sent: the next request the server sees is this one.
    assert_eq!(
        deliver(&http(server.url("/after")), JSON).await,
        Outcome::delivered()
    );
    assert_eq!(server.next().await.path, "/after");
}

#[tokio::test]
async fn http_timeout() {
    let mut server = Server::start().await;
    let kind = TargetKind::Http {
        url: HttpUrl::parse(&server.url("/hang")).unwrap(),
        method: "POST".to_owned(),
        headers: Vec::new(),
        timeout: Duration::from_millis(300),
    };
    let started = Instant::now();
    let outcome = deliver(&kind, JSON).await;
    assert_retry(&outcome, ErrorCode::Timeout, &["0.3s"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.next().await.path, "/hang");
}

#[tokio::test]
async fn http_connection_refused() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let secret_url = format!("http://127.0.0.1:{port}/hooks/SECRET-TOKEN");
    let outcome = deliver(&http(secret_url), JSON).await;
    assert_retry(&outcome, ErrorCode::Network, &["cannot connect"]);
    let Outcome::Retry { error, .. } = outcome else {
        unreachable!()
    };
    assert!(
        !error.contains("SECRET-TOKEN"),
        "the URL stays out: {error}"
    );
}

#[tokio::test]
async fn http_credentials_in_the_url_are_sent_as_basic_auth() {
    use base64::Engine as _;
    let mut server = Server::start().await;
    // Percent-encoded in the URL, decoded in the header; the fragment is never sent.
    let url = format!("http://us%65r:p%40ss@{}/hook?x=1#fragment", server.addr);
    assert_eq!(
        deliver(&http(url.clone()), JSON).await,
        Outcome::delivered()
    );
    let seen = server.next().await;
    assert_eq!(seen.path, "/hook");
    assert_eq!(seen.query.as_deref(), Some("x=1"));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("user:p@ss")
    );
    assert_eq!(seen.headers["authorization"], basic.as_str());

    // A configured `Authorization` header wins over the URL's credentials.
    let kind = http_with(url, "POST", &[("Authorization", "Bearer t")]);
    assert_eq!(deliver(&kind, JSON).await, Outcome::delivered());
    let seen = server.next().await;
    assert_eq!(seen.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(seen.headers["authorization"], "Bearer t");
}

/// A TLS server on 127.0.0.1 with a self-signed certificate, for one connection: its port,
/// and how the server's side of the handshake ended.
fn untrusted_tls_server() -> (u16, std::thread::JoinHandle<std::io::Result<()>>) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
        )
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept()?;
        let mut tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut socket)?;
        }
        Ok(())
    });
    (port, server)
}

/// The platform's roots do not know a self-signed certificate: the target refuses it before
/// sending anything, and retries as a network error.
#[tokio::test]
async fn https_target_refuses_an_untrusted_certificate() {
    let (port, server) = untrusted_tls_server();
    let outcome = deliver(&http(format!("https://127.0.0.1:{port}/hook")), JSON).await;
    assert_retry(&outcome, ErrorCode::Network, &["certificate"]);
    let handshake = server.join().unwrap();
    assert!(
        handshake.is_err(),
        "the client gave up during the handshake: {handshake:?}"
    );
}

#[tokio::test]
async fn http_target_through_a_forwarding_proxy() {
    // The test server plays the proxy: a forwarded request names the whole URL.
    let mut proxy = Server::start().await;
    let proxies = Proxies::all(&format!("http://pu:pp@{}", proxy.addr), "");
    let kind = http("http://target.invalid:81/hook?q=1".to_owned());
    assert_eq!(
        deliver_via(proxies, &kind, JSON).await,
        Outcome::delivered()
    );
    let seen = proxy.next().await;
    assert_eq!(seen.uri.to_string(), "http://target.invalid:81/hook?q=1");
    assert_eq!(seen.headers["host"], "target.invalid:81");
    assert_eq!(seen.headers["proxy-authorization"], "Basic cHU6cHA="); // "pu:pp"
    assert_eq!(seen.body, JSON.as_bytes());

    // A host in NO_PROXY is reached directly (the proxy's port is closed).
    let mut server = Server::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxies = Proxies::all(&format!("http://{closed}"), "127.0.0.1");
    assert_eq!(
        deliver_via(proxies, &http(server.url("/direct")), JSON).await,
        Outcome::delivered()
    );
    let seen = server.next().await;
    assert_eq!(seen.uri.to_string(), "/direct");
    assert!(!seen.headers.contains_key("proxy-authorization"));
}

/// A CONNECT proxy on 127.0.0.1 for one connection: it answers with `answer`, and on a 200
/// joins the client to 127.0.0.1:`upstream`. Returns its address and the request's head.
async fn connect_proxy(
    answer: &'static str,
    upstream: u16,
) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if client.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        client.write_all(answer.as_bytes()).await.unwrap();
        if answer.starts_with("HTTP/1.1 200") {
            let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                .await
                .unwrap();
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        String::from_utf8(head).unwrap()
    });
    (addr, task)
}

#[tokio::test]
async fn https_target_through_a_proxy_tunnel() {
    // The tunnel reaches the TLS server, and TLS runs end to end through it: the server's
    // certificate is checked (and refused: it is self-signed), not the proxy's.
    let (port, server) = untrusted_tls_server();
    let (proxy, head) = connect_proxy("HTTP/1.1 200 Connection established\r\n\r\n", port).await;
    let proxies = Proxies::all(&format!("http://pu:pp@{proxy}"), "");
    let kind = http("https://secure.invalid/hook".to_owned());
    let outcome = deliver_via(proxies, &kind, JSON).await;
    assert_retry(&outcome, ErrorCode::Network, &["certificate"]);
    let head = head.await.unwrap();
    assert!(
        head.starts_with("CONNECT secure.invalid:443 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Proxy-Authorization: Basic cHU6cHA=\r\n"),
        "{head}"
    );
    assert!(
        server.join().unwrap().is_err(),
        "the handshake reached the server"
    );

    // A proxy that refuses the tunnel: retried, saying where it failed.
    let (proxy, head) = connect_proxy("HTTP/1.1 403 Forbidden\r\n\r\n", 0).await;
    let outcome = deliver_via(Proxies::all(&format!("http://{proxy}"), ""), &kind, JSON).await;
    assert_retry(&outcome, ErrorCode::Network, &["tunnel through the proxy"]);
    head.await.unwrap();

    // Only http:// proxies are supported, and the error says so.
    let outcome = deliver_via(Proxies::all("socks5://127.0.0.1:1", ""), &kind, JSON).await;
    assert_retry(&outcome, ErrorCode::Network, &["only http:// proxies"]);
}

#[tokio::test]
async fn aws_kinds_without_aws_clients_fail_with_the_reason() {
    let kind = TargetKind::Sns {
        topic_arn: "arn:aws:sns:us-east-1:123456789012:t".to_owned(),
        subject: None,
    };
    assert_fail(
        &deliver(&kind, JSON).await,
        ErrorCode::InvalidParameter,
        &["no AWS clients"],
    );
}

// ---------------------------------------------------------------------------------------------
// Commands

fn command(argv: &[&str]) -> TargetKind {
    command_with(argv, Duration::from_secs(30), None, &[])
}

fn command_with(
    argv: &[&str],
    timeout: Duration,
    cwd: Option<&Path>,
    env: &[(&str, &str)],
) -> TargetKind {
    TargetKind::Command {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        timeout,
        cwd: cwd.map(Path::to_path_buf),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        on_success: None,
        on_failure: None,
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

#[tokio::test]
async fn command_gets_the_payload_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdin");
    let kind = command(&["sh", "-c", r#"cat > "$1""#, "sh", path_str(&out)]);
    assert_eq!(deliver(&kind, JSON).await, Outcome::delivered());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), JSON);
}

#[tokio::test]
async fn command_output_is_kept_for_the_log_when_the_attempt_asks() {
    let kind = command(&["sh", "-c", "cat; echo said-on-stderr >&2"]);
    let targets = Targets::with_proxies(Proxies::none()).unwrap();
    let asked = Attempt {
        keep_output: true,
        ..attempt(JSON)
    };
    assert_eq!(
        targets.deliver(&kind, &asked).await,
        Outcome::Delivered {
            response: None,
            output: Some(Output {
                stdout: JSON.to_owned(),
                stderr: "said-on-stderr\n".to_owned(),
            }),
        }
    );
    // Not asked: nothing kept.
    assert_eq!(deliver(&kind, JSON).await, Outcome::delivered());
}

#[tokio::test]
async fn command_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let kind = command_with(
        &["sh", "-c", r#"env > "$1""#, "sh", path_str(&out)],
        Duration::from_secs(30),
        None,
        &[("GREETING", "hello world"), ("TRIGD_RULE", "spoofed")],
    );
    assert_eq!(deliver(&kind, JSON).await, Outcome::delivered());
    let env = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = env.lines().collect();
    for want in [
        "GREETING=hello world",
        "TRIGD_RULE=rule-a",
        "TRIGD_TARGET=target-1",
        "TRIGD_EVENT_ID=e-42",
        "TRIGD_DELIVERY_ID=d-0123456789abcdef",
        "TRIGD_ATTEMPT=3",
    ] {
        assert!(lines.contains(&want), "{want} in\n{env}");
    }
    assert!(lines.iter().any(|l| l.starts_with("PATH=")), "inherited");
}

#[tokio::test]
async fn command_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = dir.path().join("pwd");
    let kind = command_with(
        &["sh", "-c", r#"pwd -P > "$1""#, "sh", path_str(&out)],
        Duration::from_secs(30),
        Some(&work),
        &[],
    );
    assert_eq!(deliver(&kind, JSON).await, Outcome::delivered());
    let pwd = std::fs::read_to_string(&out).unwrap();
    assert_eq!(PathBuf::from(pwd.trim_end()), work.canonicalize().unwrap());

    let missing = dir.path().join("missing");
    let kind = command_with(&["true"], Duration::from_secs(30), Some(&missing), &[]);
    assert_fail(
        &deliver(&kind, JSON).await,
        ErrorCode::NoResource,
        &["working directory", "missing"],
    );
}

#[tokio::test]
async fn command_failure_carries_status_and_stderr() {
    let kind = command(&[
        "sh",
        "-c",
        "echo progress; echo first >&2; echo 'it broke' >&2; exit 3",
    ]);
    let outcome = deliver(&kind, JSON).await;
    assert_retry(
        &outcome,
        ErrorCode::TargetError,
        &["exit status 3", "it broke"],
    );

    // No stderr: the stdout tail instead.
    let kind = command(&["sh", "-c", "echo 'only stdout'; exit 1"]);
    assert_retry(
        &deliver(&kind, JSON).await,
        ErrorCode::TargetError,
        &["exit status 1", "only stdout"],
    );

    let kind = command(&["sh", "-c", "kill -9 $$"]);
    assert_retry(
        &deliver(&kind, JSON).await,
        ErrorCode::TargetError,
        &["killed by signal 9"],
    );
}

#[tokio::test]
async fn command_that_ignores_a_large_stdin() {
    let payload = "x".repeat(1 << 20);
    assert_eq!(
        deliver(&command(&["true"]), &payload).await,
        Outcome::delivered()
    );
    assert_eq!(
        deliver(&command(&["head", "-c", "10"]), &payload).await,
        Outcome::delivered()
    );
    assert_retry(
        &deliver(&command(&["sh", "-c", "exit 5"]), &payload).await,
        ErrorCode::TargetError,
        &["exit status 5"],
    );
}

/// The state of a process from `/proc/<pid>/stat`, or `None` when it is gone.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[tokio::test]
async fn command_timeout_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let kind = command_with(
        &[
            "sh",
            "-c",
            r#"sleep 60 & echo $! > "$1"; wait"#,
            "sh",
            path_str(&pidfile),
        ],
        Duration::from_secs(2),
        None,
        &[],
    );
    let started = Instant::now();
    let outcome = deliver(&kind, JSON).await;
    assert_retry(&outcome, ErrorCode::Timeout, &["within 2s", "killed"]);
    assert!(started.elapsed() < Duration::from_secs(30));

    assert_dies(&pidfile).await;
}

#[tokio::test]
async fn command_dropped_attempt_kills_the_process_group() {
    // The daemon shutting down mid-delivery drops the attempt: nothing it started survives.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let kind = command_with(
        &[
            "sh",
            "-c",
            r#"sleep 60 & echo $! > "$1"; wait"#,
            "sh",
            path_str(&pidfile),
        ],
        Duration::from_secs(60),
        None,
        &[],
    );
    let targets = Targets::new().unwrap();
    let payload = attempt(JSON);
    // Boxed, so that `drop` below drops the attempt itself, not a pinned reference to it.
    let mut attempt = Box::pin(targets.deliver(&kind, &payload));
    // Run the attempt until the grandchild exists, then drop it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&pidfile).map_or(true, |p| !p.ends_with('\n')) {
        assert!(Instant::now() < deadline, "the grandchild never started");
        tokio::select! {
            outcome = &mut attempt => panic!("the attempt ended: {outcome:?}"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    drop(attempt);
    assert_dies(&pidfile).await;
}

/// Waits until the process whose pid is in `pidfile` is dead.
async fn assert_dies(pidfile: &Path) {
    let pid: u32 = std::fs::read_to_string(pidfile)
        .expect("the grandchild's pid was written")
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is delivered at once, but the kernel finishes the process asynchronously; once
    // dead it is gone, or a zombie until its new parent reaps it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match process_state(pid) {
            None | Some('Z') => return,
            Some(state) => {
                assert!(
                    Instant::now() < deadline,
                    "grandchild {pid} still alive in state {state}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn command_ends_when_the_program_exits() {
    // A background process holding stdout open does not keep the attempt going.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let kind = command(&[
        "sh",
        "-c",
        r#"sleep 30 & echo $! > "$1"; exit 0"#,
        "sh",
        path_str(&pidfile),
    ]);
    let started = Instant::now();
    assert_eq!(deliver(&kind, JSON).await, Outcome::delivered());
    assert!(started.elapsed() < Duration::from_secs(20));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Left running by design; this test cleans up after itself.
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

#[tokio::test]
async fn command_missing_executable() {
    assert_fail(
        &deliver(&command(&["trigd-surely-missing-program"]), JSON).await,
        ErrorCode::NoResource,
        &["trigd-surely-missing-program", "not found"],
    );
    assert_fail(
        &deliver(&command(&["/nonexistent/dir/program"]), JSON).await,
        ErrorCode::NoResource,
        &["/nonexistent/dir/program"],
    );
}

#[tokio::test]
async fn command_not_executable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_fail(
        &deliver(&command(&[path_str(&script)]), JSON).await,
        ErrorCode::NoPermissions,
        &["script.sh"],
    );
}

#[tokio::test]
async fn command_chatty_output_keeps_only_the_tail() {
    let kind = command(&[
        "sh",
        "-c",
        r"head -c 10485760 /dev/zero | tr '\000' x >&2; echo END-OF-STDERR >&2; exit 1",
    ]);
    let outcome = deliver(&kind, JSON).await;
    let Outcome::Retry { code, error, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(code, ErrorCode::TargetError);
    assert!(
        error.ends_with("xxxx\nEND-OF-STDERR") || error.ends_with("xxxxEND-OF-STDERR"),
        "{}",
        &error[error.len().saturating_sub(100)..]
    );
    assert!(error.len() < 2048 + 200, "{} bytes", error.len());

    let kind = command(&["sh", "-c", r"head -c 10485760 /dev/zero | tr '\000' y"]);
    assert_eq!(deliver(&kind, JSON).await, Outcome::delivered());
}

// ---------------------------------------------------------------------------------------------
// Log

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn log_target_logs_one_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let outcome = {
        // The test runtime is single-threaded: the attempt runs under this subscriber.
        let _guard = tracing::subscriber::set_default(subscriber);
        deliver(&TargetKind::Log, JSON).await
    };
    assert_eq!(outcome, Outcome::delivered());
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["fields"]["message"] == "Delivery.")
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let fields = &lines[0]["fields"];
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(fields["rule"], "rule-a");
    assert_eq!(fields["target"], "target-1");
    assert_eq!(fields["delivery_id"], "d-0123456789abcdef");
    assert_eq!(fields["attempt"], 3);
    assert_eq!(fields["payload"], JSON);
}
