//! End-to-end daemon benchmark: webhook ingest → outbox (fsync on) → dispatcher → an HTTP
//! target on 127.0.0.1, with the release `trigd` binary as a child process.
//!
//! Run: `cargo bench --bench daemon`. Two phases:
//! 1. saturation: 64 keep-alive connections, each sending its next event as soon as the last
//!    one is answered, for `TRIGD_BENCH_SECS` (default 10) seconds; reports events accepted
//!    per second, events delivered per second and the daemon's CPU per event;
//! 2. steady load at 1,000 events/s for the same time; reports p50/p99/max latency from the
//!    sender's request to the target receiving the delivery.
//!
//! The machine has two cores, shared by the daemon, the load generator and the target. The
//! load generator and the target are therefore lean HTTP/1.1 peers written for this bench
//! (pre-built requests, a fixed answer), as `wrk` would be, so that the daemon gets the CPU
//! a real deployment would give it. `TRIGD_BENCH_LOADGEN=reqwest` sends phase 1 with reqwest
//! instead (the generator of earlier measurements, which takes about a third of the
//! machine). Phase 2 always uses reqwest: at 1,000 events/s its cost does not matter.

// A benchmark: wall-clock time is the point, and failures should stop it loudly.
#![allow(clippy::disallowed_types, clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[path = "common/child.rs"]
mod child;
#[path = "common/http.rs"]
mod http;

use child::{cpu_seconds, micros_now, percentile, start_trigd};
use http::Peer;

/// The send time a phase-2 body carries (`"t":<micros>`), if any.
fn sent_at(body: &[u8]) -> Option<u64> {
    let at = body.windows(4).position(|w| w == b"\"t\":")? + 4;
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

struct Sink {
    delivered: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

/// The HTTP target: answers every request `200 ok` and records the latency of phase-2 events.
async fn start_sink() -> (String, Arc<Sink>) {
    let sink = Arc::new(Sink {
        delivered: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = Arc::clone(&sink);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut peer = Peer::new(stream);
                while let Some((_, body)) = peer.read(true).await {
                    if let Some(t) = sent_at(&body) {
                        let now = micros_now();
                        s.latencies.lock().unwrap().push(now.saturating_sub(t));
                    }
                    s.delivered.fetch_add(1, Ordering::Relaxed);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if peer.stream.write_all(ok).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/sink"), sink)
}

/// Phase 1's sender on one keep-alive connection: the next event as soon as the last one is
/// answered, until `deadline`.
async fn send_lean(addr: String, accepted: Arc<AtomicU64>, deadline: Instant) {
    let body = format!("{{\"n\":0,\"x\":\"{}\"}}", "a".repeat(200));
    let request = format!(
        "POST /events/load HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut peer = Peer::new(TcpStream::connect(&addr).await.unwrap());
    while Instant::now() < deadline {
        peer.stream.write_all(request.as_bytes()).await.unwrap();
        let Some((status, _)) = peer.read(false).await else {
            return;
        };
        if (200..300).contains(&status) {
            accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Phase 1's sender through reqwest (`TRIGD_BENCH_LOADGEN=reqwest`).
async fn send_reqwest(
    client: reqwest::Client,
    url: String,
    accepted: Arc<AtomicU64>,
    deadline: Instant,
) {
    while Instant::now() < deadline {
        let body = format!("{{\"n\":0,\"x\":\"{}\"}}", "a".repeat(200));
        if let Ok(r) = client.post(&url).body(body).send().await
            && r.status().is_success()
        {
            accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn wait_delivered(sink: &Sink, n: u64) -> Duration {
    let start = Instant::now();
    while sink.delivered.load(Ordering::Relaxed) < n && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let secs: u64 = std::env::var("TRIGD_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (sink_url, sink) = start_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("r.yaml"),
        format!(
            "rules:\n  - name: load\n    pattern: {{source: [load]}}\n    targets:\n      - id: sink\n        http: {sink_url}\n        input_path: $.detail\n        concurrency: 64\n"
        ),
    )
    .unwrap();
    let (mut child, addr, _) = start_trigd(
        &rules,
        &dir.path().join("state"),
        "warn,trigd::daemon=info",
        |_| false,
    );
    let url = format!("http://{addr}/events/load");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();
    let connections: usize = std::env::var("TRIGD_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let reqwest_loadgen = std::env::var("TRIGD_BENCH_LOADGEN").is_ok_and(|v| v == "reqwest");

    // Phase 1: saturation.
    let cpu_before = cpu_seconds(child.id());
    let own_cpu_before = cpu_seconds(std::process::id());
    let accepted = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut senders = Vec::new();
    for _ in 0..connections {
        let accepted = Arc::clone(&accepted);
        senders.push(if reqwest_loadgen {
            tokio::spawn(send_reqwest(
                client.clone(),
                url.clone(),
                accepted,
                deadline,
            ))
        } else {
            tokio::spawn(send_lean(addr.clone(), accepted, deadline))
        });
    }
    for s in senders {
        s.await.unwrap();
    }
    let ingest_secs = start.elapsed().as_secs_f64();
    let n = accepted.load(Ordering::Relaxed);
    wait_delivered(&sink, n).await;
    let total_secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(child.id()) - cpu_before;
    let own_cpu = cpu_seconds(std::process::id()) - own_cpu_before;
    println!(
        "saturation, {connections} connections: {n} events accepted in {ingest_secs:.1} s = {:.0} events/s ingested (fsync'd); all delivered after {total_secs:.1} s = {:.0} events/s end to end; the daemon used {cpu:.1} CPU-s = {:.0} events per daemon CPU-second (the {} load generator and the sink, sharing the 2 cores, used {own_cpu:.1} CPU-s)",
        n as f64 / ingest_secs,
        n as f64 / total_secs,
        n as f64 / cpu,
        if reqwest_loadgen { "reqwest" } else { "lean" },
    );

    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let commits: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("trigd_outbox_commits_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    println!(
        "outbox: {commits} commits = {:.1} events per commit (the commits that store events are fsync'd)",
        n as f64 / commits
    );

    // Phase 2: 1,000 events/s.
    sink.latencies.lock().unwrap().clear();
    let before = sink.delivered.load(Ordering::Relaxed);
    let rate = 1000u64;
    let total = rate * secs;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let client = client.clone();
        let url = url.clone();
        sent.push(tokio::spawn(async move {
            let body = format!("{{\"n\":{i},\"t\":{}}}", micros_now());
            client
                .post(&url)
                .body(body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }));
    }
    let mut ok = 0;
    for s in sent {
        if s.await.unwrap() {
            ok += 1;
        }
    }
    wait_delivered(&sink, before + ok).await;
    let mut lat = sink.latencies.lock().unwrap().clone();
    lat.sort_unstable();
    println!(
        "steady {rate} events/s for {secs} s: {ok}/{total} accepted; request-to-delivery latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&lat, 0.50) as f64 / 1000.0,
        percentile(&lat, 0.99) as f64 / 1000.0,
        percentile(&lat, 1.0) as f64 / 1000.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
