//! The HTTP API listener against real Python handlers: reqwest on one side, trigd's listener
//! on 127.0.0.1:0 in the middle, the functions' environments behind it. The handlers echo
//! their event (so the test sees the payload's shape) or answer with what the test sent.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use trigd::config::settings::{ApiSettings, Cors};
use trigd::delivery::store::Outbox;
use trigd::functions::{Host, HostOptions, LogSink};
use trigd::intake::Intake;
use trigd::lambda_events::RouteKey;
use trigd::metrics::Metrics;
use trigd::rules::{ApiRoute, FunctionTrigger, FunctionTriggerKind, PayloadFormat, RuleSet};

use crate::functions::{functions_file, python_function};
use crate::util::rules_dir;

const APP: &str = r#"
import base64, json, os, time

def echo(event, ctx):
    return event

def echo_v1(event, ctx):
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(event)}

def respond(event, ctx):
    # The test sends the result it wants back.
    return json.loads(event["body"])

def fail(event, ctx):
    raise ValueError("no such thing")

def slow(event, ctx):
    time.sleep(10)

def binary(event, ctx):
    assert event["isBase64Encoded"], event
    return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
            "isBase64Encoded": True, "body": event["body"]}

def busy(event, ctx):
    start = time.time()
    time.sleep(0.2)
    return {"pid": os.getpid(), "start": start, "end": time.time()}
"#;

/// Route key, function, payload format.
const ROUTES: &[(&str, &str, PayloadFormat)] = &[
    ("GET /items/{id}", "echo", PayloadFormat::V2),
    ("ANY /v1/{proxy+}", "echo_v1", PayloadFormat::V1),
    ("POST /respond", "respond", PayloadFormat::V2),
    ("POST /respond-v1", "respond", PayloadFormat::V1),
    ("GET /fail", "fail", PayloadFormat::V2),
    ("GET /fail-v1", "fail", PayloadFormat::V1),
    ("GET /slow", "slow", PayloadFormat::V2),
    ("POST /binary", "binary", PayloadFormat::V2),
    ("GET /busy", "busy", PayloadFormat::V2),
    ("ANY /files/{path+}", "echo", PayloadFormat::V2),
];

/// A running listener over real functions.
struct Gateway {
    _dir: tempfile::TempDir,
    _state: tempfile::TempDir,
    addr: SocketAddr,
    rules: Arc<RuleSet>,
    rules_tx: watch::Sender<Arc<RuleSet>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    client: reqwest::Client,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn triggers(routes: &[(&str, &str, PayloadFormat)]) -> Vec<FunctionTrigger> {
    routes
        .iter()
        .map(|(route, function, format)| FunctionTrigger {
            function: (*function).to_owned(),
            kind: FunctionTriggerKind::Api(ApiRoute {
                route: RouteKey::parse(route).unwrap(),
                payload_format: *format,
            }),
            file: "functions.yaml".into(),
            line: 1,
            column: 1,
        })
        .collect()
}

fn load(dir: &Path, routes: &[(&str, &str, PayloadFormat)]) -> RuleSet {
    trigd::config::load_rules(dir, trigd::rules::Settings::default())
        .unwrap()
        .with_triggers(triggers(routes))
}

impl Gateway {
    async fn start(cors: Option<Cors>) -> Gateway {
        let dir = rules_dir(&[
            (
                "functions.yaml",
                &functions_file(&[
                    python_function("echo", "app.echo", ""),
                    python_function("echo_v1", "app.echo_v1", ""),
                    python_function("respond", "app.respond", ""),
                    python_function("fail", "app.fail", ""),
                    python_function("slow", "app.slow", "    timeout: 1s\n"),
                    python_function("binary", "app.binary", ""),
                    python_function("busy", "app.busy", "    concurrency: 2\n"),
                ]),
            ),
            ("fn/app.py", APP),
        ]);
        let state = tempfile::tempdir().unwrap();
        let rules = Arc::new(load(dir.path(), ROUTES));
        let metrics = Arc::new(Metrics::new());
        let host = Host::new(HostOptions {
            state_dir: state.path().to_owned(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            lambda_endpoint: None,
            aws_endpoint: None,
            log: LogSink::Tracing,
            idle_timeout: Duration::from_secs(60),
            metrics: Some(Arc::clone(&metrics)),
        })
        .unwrap();
        host.update(&rules.functions);
        let (rules_tx, rules_rx) = watch::channel(Arc::clone(&rules));
        let outbox = Outbox::open(state.path()).unwrap();
        let intake = Intake::new(rules_rx, outbox, Arc::clone(&metrics), None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = ApiSettings { listen: addr, cors };
        let api = Arc::new(trigd::sources::api::Api::new(
            intake,
            host,
            Arc::clone(&metrics),
            &settings,
        ));
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(trigd::sources::api::serve(listener, api, async move {
            s.cancelled().await
        }));
        Gateway {
            _dir: dir,
            _state: state,
            addr,
            rules,
            rules_tx,
            metrics,
            stop,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request; answers status, headers and body.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.bytes().await.unwrap().to_vec())
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let (status, _, body) = self.send(req).await;
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        (status, v)
    }

    /// Asks `POST /respond` (payload 2.0) or `/respond-v1` to answer with `result`.
    async fn respond(&self, v1: bool, result: Value) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let path = if v1 { "/respond-v1" } else { "/respond" };
        self.send(
            self.client
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(result.to_string()),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_2_0_carries_the_request() {
    let g = Gateway::start(None).await;
    let before = chrono::Utc::now().timestamp_millis();
    let (status, headers, body) = g
        .send(
            g.client
                .get(g.url("/items/a%20b?x=1&x=2&y=%2F"))
                .header("X-Custom", "one")
                .header("cookie", "c1=1; c2=2")
                .header("user-agent", "api-test"),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "GET /items/{id}");
    assert_eq!(e["rawPath"], "/items/a%20b");
    assert_eq!(e["rawQueryString"], "x=1&x=2&y=%2F");
    assert_eq!(e["cookies"], json!(["c1=1", "c2=2"]));
    assert_eq!(e["headers"]["x-custom"], "one");
    assert!(e["headers"].get("cookie").is_none(), "{e}");
    assert_eq!(e["queryStringParameters"], json!({"x": "1,2", "y": "/"}));
    assert_eq!(e["pathParameters"], json!({"id": "a b"}));
    assert_eq!(e["isBase64Encoded"], false);
    assert!(e.get("body").is_none());
    let rc = &e["requestContext"];
    assert_eq!(rc["http"]["method"], "GET");
    assert_eq!(rc["http"]["path"], "/items/a%20b");
    assert_eq!(rc["http"]["protocol"], "HTTP/1.1");
    assert_eq!(rc["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(rc["http"]["userAgent"], "api-test");
    assert_eq!(rc["accountId"], "123456789012");
    assert_eq!(rc["stage"], "$default");
    assert_eq!(rc["routeKey"], "GET /items/{id}");
    assert_eq!(rc["domainName"], g.addr.to_string());
    assert_eq!(rc["apiId"].as_str().unwrap().len(), 10);
    // The request id is the one the answer carries, a uuid.
    let id = rc["requestId"].as_str().unwrap();
    assert_eq!(headers["apigw-requestid"], id);
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let epoch = rc["timeEpoch"].as_i64().unwrap();
    assert!(
        (before..=chrono::Utc::now().timestamp_millis()).contains(&epoch),
        "{epoch}"
    );
    let time =
        chrono::DateTime::parse_from_str(rc["time"].as_str().unwrap(), "%d/%b/%Y:%H:%M:%S %z")
            .unwrap();
    assert_eq!(time.timestamp(), epoch / 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_1_0_carries_the_request() {
    let g = Gateway::start(None).await;
    let (status, e) = g
        .json(
            g.client
                .post(g.url("/v1/a/b%2Fc?q=1&q=2"))
                .header("x-multi", "1")
                .header("x-multi", "2")
                .header("content-type", "application/json")
                .body(r#"{"n":1}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(e["version"], "1.0");
    assert_eq!(e["resource"], "/v1/{proxy+}");
    assert_eq!(e["path"], "/v1/a/b%2Fc");
    assert_eq!(e["httpMethod"], "POST");
    assert_eq!(e["headers"]["x-multi"], "2");
    assert_eq!(e["multiValueHeaders"]["x-multi"], json!(["1", "2"]));
    assert_eq!(e["queryStringParameters"], json!({"q": "2"}));
    assert_eq!(
        e["multiValueQueryStringParameters"],
        json!({"q": ["1", "2"]})
    );
    assert_eq!(e["pathParameters"], json!({"proxy": "a/b/c"}));
    assert_eq!(e["stageVariables"], Value::Null);
    assert_eq!(e["body"], r#"{"n":1}"#);
    assert_eq!(e["isBase64Encoded"], false);
    let rc = &e["requestContext"];
    assert_eq!(rc["resourcePath"], "/v1/{proxy+}");
    assert_eq!(rc["httpMethod"], "POST");
    assert_eq!(rc["stage"], "$default");
    assert_eq!(rc["identity"]["sourceIp"], "127.0.0.1");
    assert!(uuid::Uuid::parse_str(rc["requestId"].as_str().unwrap()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_become_responses_as_api_gateway_maps_them() {
    let g = Gateway::start(None).await;
    // 2.0: status, headers, cookies, body.
    let (status, h, body) = g
        .respond(
            false,
            json!({"statusCode": 201, "headers": {"x-a": "1", "x-list": ["a", "b"]},
                   "cookies": ["a=1; Path=/", "b=2"], "body": "made"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(h["x-a"], "1");
    assert_eq!(h["x-list"], "a,b");
    let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
    assert_eq!(body, b"made");
    // 2.0: a value without statusCode is a 200 JSON answer.
    let (status, h, body) = g.respond(false, json!({"hello": "world"})).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, &br#"{"hello":"world"}"#[..])
    );
    assert_eq!(h["content-type"], "application/json");
    let (_, _, body) = g.respond(false, json!("hello")).await;
    assert_eq!(body, b"hello");
    // 2.0: base64 bodies are decoded.
    let (_, _, body) = g
        .respond(
            false,
            json!({"statusCode": 200, "body": "AAH/", "isBase64Encoded": true}),
        )
        .await;
    assert_eq!(body, [0, 1, 255]);
    // 1.0: multi-value headers first, then the single value of the same name.
    let (status, h, body) = g
        .respond(
            true,
            json!({"statusCode": "202", "multiValueHeaders": {"x-m": ["1", "2"]},
                   "headers": {"x-m": "3", "x-b": true}, "body": "ok"}),
        )
        .await;
    assert_eq!(status, 202);
    let m: Vec<_> = h.get_all("x-m").iter().collect();
    assert_eq!(m, ["1", "2", "3"]);
    assert_eq!(h["x-b"], "true");
    assert_eq!(body, b"ok");
    // 1.0: a malformed result is API Gateway's 502.
    for malformed in [
        json!({"statusCode": 200, "wrongValue": 1}),
        json!({}),
        json!("text"),
    ] {
        let (status, _, body) = g.respond(true, malformed.clone()).await;
        assert_eq!(status, 502, "{malformed}");
        assert_eq!(
            body, br#"{"message":"Internal server error"}"#,
            "{malformed}"
        );
    }
    // A header that cannot be sent makes the result malformed too.
    let (status, _, _) = g
        .respond(false, json!({"statusCode": 200, "headers": {"x": "a\nb"}}))
        .await;
    assert_eq!(status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_answer_with_api_gateways_bodies() {
    let g = Gateway::start(None).await;
    let check = async |path: &str, status: u16, body: &str| {
        let (s, h, b) = g.send(g.client.get(g.url(path))).await;
        assert_eq!(s, status, "{path}");
        assert_eq!(String::from_utf8_lossy(&b), body, "{path}");
        assert_eq!(h["content-type"], "application/json", "{path}");
        assert!(h.contains_key("apigw-requestid"), "{path}");
    };
    check("/fail", 502, r#"{"message":"Internal Server Error"}"#).await;
    check("/fail-v1", 502, r#"{"message":"Internal server error"}"#).await;
    check("/nowhere", 404, r#"{"message":"Not Found"}"#).await;
    check("/items", 404, r#"{"message":"Not Found"}"#).await;
    let (s, _, _) = g.send(g.client.post(g.url("/items/1"))).await;
    assert_eq!(s, 404, "no POST route");
    let start = tokio::time::Instant::now();
    check("/slow", 504, r#"{"message":"Endpoint request timed out"}"#).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // Over 10 MB: 413, and the connection still answers.
    let (s, _, b) = g
        .send(
            g.client
                .post(g.url("/respond"))
                .body(vec![b'x'; 10 * 1024 * 1024 + 1]),
        )
        .await;
    assert_eq!(s, 413);
    assert_eq!(b, br#"{"message":"Request Entity Too Large"}"#);
    let text = g.metrics.render();
    for series in [
        r#"trigd_api_requests_total{route="GET /fail",status="502"} 1"#,
        r#"trigd_api_requests_total{route="-",status="404"} 3"#,
        r#"trigd_api_requests_total{route="GET /slow",status="504"} 1"#,
        r#"trigd_api_requests_total{route="POST /respond",status="413"} 1"#,
        r#"trigd_api_request_duration_seconds_count{route="GET /slow"} 1"#,
    ] {
        assert!(text.contains(series), "{series}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_bodies_round_trip_in_base64() {
    let g = Gateway::start(None).await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let (status, h, body) = g
        .send(
            g.client
                .post(g.url("/binary"))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(body, bytes);
    // What the function saw was base64 with the flag set.
    let (_, e) = g
        .json(
            g.client
                .put(g.url("/files/x.bin"))
                .header("content-type", "image/png")
                .body(vec![0x89, b'P', b'N', b'G']),
        )
        .await;
    assert_eq!(e["isBase64Encoded"], true);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(e["body"].as_str().unwrap())
            .unwrap(),
        [0x89, b'P', b'N', b'G']
    );
    assert_eq!(e["pathParameters"], json!({"path": "x.bin"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_without_invoking_and_responses_carry_cors() {
    let g = Gateway::start(Some(Cors {
        allow_origins: vec!["https://app.example".into()],
        allow_methods: vec!["GET".into(), "PUT".into()],
        allow_headers: vec!["content-type".into()],
        expose_headers: vec!["apigw-requestid".into()],
        max_age: Some(600),
        allow_credentials: true,
    }))
    .await;
    let (status, h, body) = g
        .send(
            g.client
                .request(reqwest::Method::OPTIONS, g.url("/files/a"))
                .header("origin", "https://app.example")
                .header("access-control-request-method", "PUT")
                .header("access-control-request-headers", "content-type"),
        )
        .await;
    assert_eq!(status, 204);
    assert!(body.is_empty());
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-methods"], "GET,PUT");
    assert_eq!(h["access-control-allow-headers"], "content-type");
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(h["access-control-allow-credentials"], "true");
    // Nothing was invoked for it (`ANY /files/{path+}` would have taken it).
    let metrics = g.metrics.render();
    assert!(
        !metrics.contains("trigd_function_invocations_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"trigd_api_requests_total{route="$cors-preflight",status="204"} 1"#),
        "{metrics}"
    );
    // An actual request from the origin gets the headers; another origin gets none.
    let (status, h, _) = g
        .send(
            g.client
                .get(g.url("/items/1"))
                .header("origin", "https://app.example"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-expose-headers"], "apigw-requestid");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let (_, h, _) = g
        .send(
            g.client
                .get(g.url("/items/1"))
                .header("origin", "https://evil.example"),
        )
        .await;
    assert!(!h.contains_key("access-control-allow-origin"));
    // A preflight from another origin is answered, without CORS headers.
    let (status, h, _) = g
        .send(
            g.client
                .request(reqwest::Method::OPTIONS, g.url("/items/1"))
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "GET"),
        )
        .await;
    assert_eq!(status, 204);
    assert!(!h.contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_to_one_function_are_all_answered() {
    let g = Arc::new(Gateway::start(None).await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let g = Arc::clone(&g);
        tasks.spawn(async move { g.json(g.client.get(g.url("/busy"))).await });
    }
    let answers = tasks.join_all().await;
    assert_eq!(answers.len(), 20);
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let pids: std::collections::BTreeSet<i64> = answers
        .iter()
        .map(|(_, v)| v["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "two environments, reused: {answers:?}");
    // Never more than two at once.
    for (_, a) in &answers {
        let t = a["start"].as_f64().unwrap() + 0.01;
        let running = answers
            .iter()
            .filter(|(_, o)| o["start"].as_f64().unwrap() <= t && t < o["end"].as_f64().unwrap())
            .count();
        assert!(running <= 2, "{answers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_the_rules_the_intake_holds() {
    let g = Gateway::start(None).await;
    let (status, _) = g.json(g.client.get(g.url("/hello"))).await;
    assert_eq!(status, 404);
    // A reload brings a new rule set: its routes answer from the next request on.
    let mut routes = ROUTES.to_vec();
    routes.push(("$default", "echo_v1", PayloadFormat::V1));
    let dir = g._dir.path().to_owned();
    let new = Arc::new(load(&dir, &routes));
    assert_eq!(new.functions.len(), g.rules.functions.len());
    g.rules_tx.send_replace(new);
    let (status, e) = g.json(g.client.get(g.url("/hello"))).await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["resource"], "$default");
    assert_eq!(e["path"], "/hello");
    let (status, _) = g.json(g.client.get(g.url("/items/1"))).await;
    assert_eq!(status, 200);
}

/// The rule file of the daemon tests: one function behind `routes`.
fn daemon_rules(routes: &[&str]) -> String {
    let mut text = functions_file(&[python_function("hello", "app.hello", "")]);
    text.push_str("    triggers:\n");
    for r in routes {
        text.push_str(&format!("      - api: {{route: \"{r}\"}}\n"));
    }
    text
}

const HELLO: &str = "def hello(event, ctx):\n    return {'statusCode': 200, 'body': 'hello from ' + event['rawPath']}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_api_triggers_logs_each_request_and_follows_reloads() {
    let dir = rules_dir(&[
        ("functions.yaml", &daemon_rules(&["GET /hello"])),
        ("fn/app.py", HELLO),
    ]);
    let state = tempfile::tempdir().unwrap();
    let d =
        crate::harness::Daemon::start(dir.path(), state.path(), &["--api-listen", "127.0.0.1:0"]);
    let ready = d.wait_log("the ready line", |v| v["message"] == "trigd is ready.");
    let api = ready["api"].as_str().expect("the API listener's address");
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{api}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["apigw-requestid"].to_str().unwrap().to_owned();
    assert_eq!(r.text().await.unwrap(), "hello from /hello");
    // One access line per request, with what an operator looks for.
    let line = d.wait_log("the access line", |v| {
        v["message"] == "API request." && v["request_id"] == id.as_str()
    });
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/hello");
    assert_eq!(line["route"], "GET /hello");
    assert_eq!(line["status"], 200);
    assert!(line["latency_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    // The control listener does not serve the routes, and counts them.
    let r = client.get(d.url("/hello")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let metrics = d.metrics().await;
    assert!(
        metrics.contains(r#"trigd_api_requests_total{route="GET /hello",status="200"} 1"#),
        "{metrics}"
    );
    // A reload brings a new route.
    std::fs::write(
        dir.path().join("functions.yaml"),
        daemon_rules(&["GET /hello", "GET /bye/{who}"]),
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + crate::harness::DEADLINE;
    loop {
        let r = client
            .get(format!("http://{api}/bye/you"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            assert_eq!(r.text().await.unwrap(), "hello from /bye/you");
            break;
        }
        assert_eq!(r.status(), 404);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reload never brought the route"
        );
        d.wait_log("a reload", |v| v["message"] == "Rules reloaded.");
    }
    assert_eq!(d.stop(), 0);
}

#[test]
fn an_api_address_in_use_ends_the_start_naming_it() {
    let dir = rules_dir(&[
        ("functions.yaml", &daemon_rules(&["GET /hello"])),
        ("fn/app.py", HELLO),
    ]);
    let state = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // `timeout`: should the bind wrongly succeed, the daemon would run on.
    let out = std::process::Command::new("timeout")
        .arg("20")
        .arg(env!("CARGO_BIN_EXE_trigd"))
        .args(["run"])
        .arg(dir.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--api-listen",
            &addr,
            "--state-dir",
        ])
        .arg(state.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_ne!(out.status.code(), Some(124), "it ran on: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_does_not_cancel_the_invocation() {
    let g = Gateway::start(None).await;
    let (_, first) = g.json(g.client.get(g.url("/busy"))).await;
    // The handler sleeps 0.2 s; the client gives up long before.
    let gave_up = g
        .client
        .get(g.url("/busy"))
        .timeout(Duration::from_millis(50))
        .send()
        .await;
    assert!(gave_up.is_err());
    let success = [("function", "busy"), ("outcome", "success")];
    let deadline = tokio::time::Instant::now() + crate::harness::DEADLINE;
    while g.metrics.get("trigd_function_invocations_total", &success) < 2.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the abandoned invocation never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its environment stayed warm: the next request runs in one of the two already started.
    let (_, next) = g.json(g.client.get(g.url("/busy"))).await;
    let started = g
        .metrics
        .get("trigd_function_cold_starts_total", &[("function", "busy")]);
    assert!(started <= 2.0, "{started} cold starts");
    assert!(next["pid"].is_i64() && first["pid"].is_i64());
}
