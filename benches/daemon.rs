//! End-to-end daemon benchmark: webhook ingest → outbox (fsync on) → dispatcher → an HTTP
//! target on 127.0.0.1, with the release `trigd` binary as a child process.
//!
//! Run: `cargo bench --bench daemon`. Two phases:
//! 1. saturation: 64 concurrent senders for `TRIGD_BENCH_SECS` (default 10) seconds; reports
//!    events accepted per second and events delivered per second;
//! 2. steady load at 1,000 events/s for the same time; reports p50/p99/max latency from the
//!    sender's request to the target receiving the delivery.

// A benchmark: wall-clock time is the point, and failures should stop it loudly.
#![allow(clippy::disallowed_types, clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

struct Sink {
    delivered: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

async fn start_sink() -> (String, Arc<Sink>) {
    let sink = Arc::new(Sink {
        delivered: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
    });
    let s = Arc::clone(&sink);
    let app = axum::Router::new().fallback(move |body: String| {
        let s = Arc::clone(&s);
        async move {
            let now = micros_now();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                && let Some(t) = v["t"].as_u64()
            {
                s.latencies.lock().unwrap().push(now.saturating_sub(t));
            }
            s.delivered.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/sink"), sink)
}

fn start_trigd(rules: &std::path::Path, state: &std::path::Path) -> (std::process::Child, String) {
    // `TRIGD_BENCH_BIN` runs another build of trigd (to compare two builds back to back).
    let bin =
        std::env::var("TRIGD_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_trigd").to_owned());
    let mut child = Command::new(bin)
        .arg("run")
        .arg(rules)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--state-dir",
        ])
        .arg(state)
        .env("RUST_LOG", "warn,trigd::daemon=info")
        .envs(
            std::env::var("TRIGD_BENCH_DAEMON_WORKERS")
                .ok()
                .map(|n| ("TOKIO_WORKER_THREADS", n)),
        )
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("trigd starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "trigd is ready."
            {
                let _ = tx.send(v["listen"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("trigd ready");
    (child, format!("http://{addr}/events/load"))
}

/// User + system CPU time of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn wait_delivered(sink: &Sink, n: u64) -> Duration {
    let start = Instant::now();
    while sink.delivered.load(Ordering::Relaxed) < n && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::main]
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
    let (mut child, url) = start_trigd(&rules, &dir.path().join("state"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();

    // Phase 1: saturation.
    let cpu_before = cpu_seconds(child.id());
    let accepted = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut senders = Vec::new();
    for _ in 0..64 {
        let client = client.clone();
        let url = url.clone();
        let accepted = Arc::clone(&accepted);
        senders.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let body = format!("{{\"n\":0,\"x\":\"{}\"}}", "a".repeat(200));
                if let Ok(r) = client.post(&url).body(body).send().await
                    && r.status().is_success()
                {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let ingest_secs = start.elapsed().as_secs_f64();
    let n = accepted.load(Ordering::Relaxed);
    wait_delivered(&sink, n).await;
    let total_secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(child.id()) - cpu_before;
    println!(
        "saturation: {n} events accepted in {ingest_secs:.1} s = {:.0} events/s ingested (fsync'd); all delivered after {total_secs:.1} s = {:.0} events/s end to end; the daemon used {cpu:.1} CPU-s = {:.0} events per daemon CPU-second (the load generator and the sink share the 2 cores)",
        n as f64 / ingest_secs,
        n as f64 / total_secs,
        n as f64 / cpu
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
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    let _ = child.kill();
    let _ = child.wait();
}
