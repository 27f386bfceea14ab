//! HTTP API trigger benchmark: a no-op Python handler behind an `api` trigger, reached through
//! the release `trigd`'s HTTP API listener (a child process on 127.0.0.1), beside the same
//! handler invoked directly through Lambda's Invoke API on the control listener.
//!
//! Run: `cargo bench --bench api`. Needs `python3` on PATH. Four phases of
//! `TRIGD_BENCH_SECS` (default 5) seconds each, after a warm-up, on keep-alive connections
//! with one request at a time per connection:
//! 1. `GET /noop` through the API listener (payload format 2.0, the handler answers
//!    `{"statusCode": 200, "body": "ok"}`), one connection;
//! 2. the same on two connections (the function's two environments);
//! 3. `POST /2015-03-31/functions/noop/invocations` (RequestResponse) on the control
//!    listener, one connection;
//! 4. the same on two connections.
//!
//! Each phase prints requests/s and p50/p99/max latency. The daemon logs as it does by
//! default for functions and the API (START, END, REPORT and one access line per request;
//! `TRIGD_BENCH_LOG` sets another `RUST_LOG`).

// A benchmark: wall-clock time is the point, and failures should stop it loudly.
#![allow(clippy::disallowed_types, clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[path = "common/child.rs"]
#[allow(dead_code)]
mod child;
#[path = "common/http.rs"]
mod http;

use child::{percentile, start_trigd_with};
use http::Peer;

const NOOP_PY: &str =
    "def handler(event, context):\n    return {\"statusCode\": 200, \"body\": \"ok\"}\n";

fn write_rules(dir: &Path) {
    std::fs::create_dir_all(dir.join("fn/noop")).unwrap();
    std::fs::write(dir.join("fn/noop/app.py"), NOOP_PY).unwrap();
    std::fs::write(
        dir.join("api.yaml"),
        "functions:
  noop:
    runtime: python3.12
    handler: app.handler
    code: fn/noop
    concurrency: 2
    triggers:
      - api: {route: GET /noop}
",
    )
    .unwrap();
}

/// One connection sending `request` after each answer until `deadline`: the latencies (µs)
/// and the number of answers that were not 200.
async fn request_loop(addr: String, request: Vec<u8>, deadline: Instant) -> (Vec<u64>, u64) {
    let mut peer = Peer::new(TcpStream::connect(&addr).await.unwrap());
    let mut lat = Vec::with_capacity(100_000);
    let mut errors = 0;
    while Instant::now() < deadline {
        let t = Instant::now();
        peer.stream.write_all(&request).await.unwrap();
        let (status, _) = peer.read(false).await.expect("an answer");
        lat.push(t.elapsed().as_micros() as u64);
        if status != 200 {
            errors += 1;
        }
    }
    (lat, errors)
}

/// `connections` loops for `duration`: all latencies, sorted, and the errors.
async fn run(
    addr: &str,
    request: &[u8],
    connections: usize,
    duration: Duration,
) -> (Vec<u64>, u64) {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(request_loop(addr.to_owned(), request.to_vec(), deadline)))
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    lat.sort_unstable();
    (lat, errors)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let secs: u64 = std::env::var("TRIGD_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rust_log = std::env::var("TRIGD_BENCH_LOG").unwrap_or_else(|_| {
        "warn,trigd::daemon=info,trigd::function=info,trigd::sources::api=info".to_owned()
    });
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(&rules);
    let (mut trigd, ready, _logs) = start_trigd_with(
        &rules,
        &dir.path().join("state"),
        &rust_log,
        &["--api-listen", "127.0.0.1:0"],
        |_| false,
    );
    let control = ready["listen"].as_str().unwrap().to_owned();
    let api = ready["api"].as_str().expect("the API listener").to_owned();
    println!("trigd: control {control}, API {api}; RUST_LOG={rust_log}; {secs} s per phase");
    let through_api = format!("GET /noop HTTP/1.1\r\nhost: {api}\r\n\r\n").into_bytes();
    let body = "{}";
    let direct = format!(
        "POST /2015-03-31/functions/noop/invocations HTTP/1.1\r\nhost: {control}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    for (phase, label, addr, request, connections) in [
        (1, "API listener, GET /noop", &api, &through_api, 1),
        (2, "API listener, GET /noop", &api, &through_api, 2),
        (3, "Invoke API, RequestResponse", &control, &direct, 1),
        (4, "Invoke API, RequestResponse", &control, &direct, 2),
    ] {
        run(addr, request, connections, Duration::from_secs(1)).await;
        let start = Instant::now();
        let (lat, errors) = run(addr, request, connections, Duration::from_secs(secs)).await;
        let elapsed = start.elapsed().as_secs_f64();
        let n = lat.len();
        let ms = |p| percentile(&lat, p) as f64 / 1000.0;
        println!(
            "{phase}. {label}, {connections} connection(s): {n} requests ({errors} not 200) in {elapsed:.1} s = {:.0} requests/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            n as f64 / elapsed,
            ms(0.5),
            ms(0.99),
            ms(1.0)
        );
    }
    let _ = trigd.kill();
    let _ = trigd.wait();
}
