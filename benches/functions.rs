//! Local functions benchmark: Lambda handlers run by the release `trigd` (a child process on
//! 127.0.0.1), reached through Lambda's Invoke API and through a rule's `function` target.
//!
//! Run: `cargo bench --bench functions`. Needs `python3` and `node` on PATH. Five phases, each
//! `TRIGD_BENCH_SECS` (default 5) seconds where it is timed:
//! 1. warm round trip: a no-op Python handler through `POST /2015-03-31/functions/noop/
//!    invocations` (RequestResponse) on one keep-alive connection, one request at a time,
//!    after a warm-up: p50/p99/max latency and invocations/s at concurrency 1;
//! 2. the same on two keep-alive connections: invocations/s and p50/p99 at concurrency 2;
//! 3. cold start: the first invocation of each of 8 identical Python functions run with the
//!    `python3` found on PATH (which may be a wrapper such as pyenv's shim), 8 with
//!    `interpreter:` pinned to the executable that `python3` runs, and 8 Node functions, one
//!    after the other: the request's latency (runtime start, init and the invocation) and the
//!    `Init Duration` of trigd's REPORT lines; beside them what a bare interpreter takes to
//!    start, for scale;
//! 4. webhook → function target at a steady 500 events/s (`TRIGD_BENCH_RATE`): the sender
//!    puts its send time in the body, the handler appends `now - sent` to a file at entry;
//!    p50/p99/max of request → handler;
//! 5. the same handler as a `command` target (a new Python process per delivery, the pinned
//!    executable, the payload on stdin) at 25 events/s (`TRIGD_BENCH_COMMAND_RATE`): the same request → handler latency.
//!
//! The daemon logs as it would by default for functions (`trigd::function=info`: START, END
//! and REPORT lines per invocation, JSON on stderr); `TRIGD_BENCH_LOG` sets another
//! `RUST_LOG`. The HTTP client is the lean keep-alive peer of the daemon bench
//! (`common/http.rs`): the machine has two cores, shared by trigd, the Python or Node
//! environments and the client.

// A benchmark: wall-clock time is the point, and failures should stop it loudly.
#![allow(clippy::disallowed_types, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[path = "common/child.rs"]
mod child;
#[path = "common/http.rs"]
mod http;

use child::{cpu_seconds, micros_now, percentile, start_trigd};
use http::Peer;

/// Identical functions per runtime for the cold-start phase.
const COLD: usize = 8;

const NOOP_PY: &str = "def handler(event, context):\n    return event\n";
const NOOP_JS: &str = "exports.handler = async (e) => e;\n";
/// The handler of phases 4 and 5: request → handler latency at entry, one file per process.
const STAMP_PY: &str = r#"import os, time

_out = open(os.path.join(os.environ["BENCH_OUT"], "%d.txt" % os.getpid()), "a", buffering=1)


def handler(event, context):
    now = time.time_ns() // 1000
    _out.write("%d %d\n" % (event["n"], now - event["t"]))
    return None
"#;
/// The `command` target's program: the same module, called as a stdin script would call it.
const COMMAND_PY: &str = r#"import json, os, sys

os.environ["BENCH_OUT"] = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import app

app.handler(json.load(sys.stdin), None)
"#;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn q(path: &Path) -> String {
    serde_json::to_string(path.to_str().unwrap()).unwrap()
}

/// Writes the rules, the handlers and the command script under `dir`; returns the rules
/// directory and the two output directories (function, command).
fn write_files(dir: &Path, interpreter: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let rules = dir.join("rules");
    let out_fn = dir.join("out/function");
    let out_cmd = dir.join("out/command");
    for d in [
        rules.join("fn/noop"),
        rules.join("fn/noop-node"),
        rules.join("fn/stamp"),
        out_fn.clone(),
        out_cmd.clone(),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(rules.join("fn/noop/app.py"), NOOP_PY).unwrap();
    std::fs::write(rules.join("fn/noop-node/index.js"), NOOP_JS).unwrap();
    std::fs::write(rules.join("fn/stamp/app.py"), STAMP_PY).unwrap();
    std::fs::write(dir.join("command.py"), COMMAND_PY).unwrap();

    let python = "    runtime: python3.12\n    handler: app.handler\n    code: fn/noop\n";
    let pinned = format!("{python}    interpreter: {}\n", q(interpreter));
    let node = "    runtime: nodejs20.x\n    handler: index.handler\n    code: fn/noop-node\n";
    let mut y = String::from("functions:\n  noop:\n");
    y.push_str(python);
    for i in 0..COLD {
        y.push_str(&format!(
            "  cold-py-{i}:\n{python}  cold-pinned-{i}:\n{pinned}  cold-node-{i}:\n{node}"
        ));
    }
    y.push_str(&format!(
        "  stamp:\n    runtime: python3.12\n    handler: app.handler\n    code: fn/stamp\n    environment: {{BENCH_OUT: {}}}\n",
        q(&out_fn)
    ));
    y.push_str(&format!(
        "sources:
  to-function:
    webhook: {{}}
  to-command:
    webhook: {{}}
rules:
  - name: to-function
    pattern: {{source: [to-function]}}
    targets:
      - id: stamp
        function: stamp
        input_path: $.detail
  - name: to-command
    pattern: {{source: [to-command]}}
    targets:
      - id: stamp
        command: [{}, {}, {}, {}]
        input_path: $.detail
",
        q(interpreter),
        q(&dir.join("command.py")),
        q(&out_cmd),
        q(&rules.join("fn/stamp")),
    ));
    std::fs::write(rules.join("bench.yaml"), y).unwrap();
    (rules, out_fn, out_cmd)
}

fn invoke_request(addr: &str, function: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn connect(addr: &str) -> Peer {
    Peer::new(TcpStream::connect(addr).await.unwrap())
}

/// Sends one pre-built request and reads its answer.
async fn round_trip(peer: &mut Peer, request: &[u8]) -> (u16, Vec<u8>) {
    peer.stream.write_all(request).await.unwrap();
    peer.read(false).await.expect("an answer")
}

/// One connection invoking one request after another until `deadline`: the latencies (µs)
/// and the number of answers that were not 200.
async fn invoke_loop(mut peer: Peer, request: Vec<u8>, deadline: Instant) -> (Vec<u64>, u64) {
    let mut lat = Vec::with_capacity(100_000);
    let mut errors = 0;
    while Instant::now() < deadline {
        let t = Instant::now();
        let (status, _) = round_trip(&mut peer, &request).await;
        lat.push(t.elapsed().as_micros() as u64);
        if status != 200 {
            errors += 1;
        }
    }
    (lat, errors)
}

/// The pids of a process's descendants, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// CPU seconds so far of trigd, of its child processes (the environments) and of this bench.
fn cpu_split(trigd: u32) -> [f64; 3] {
    [
        cpu_seconds(trigd),
        descendants(trigd).into_iter().map(cpu_seconds).sum(),
        cpu_seconds(std::process::id()),
    ]
}

fn cpu_line(before: [f64; 3], after: [f64; 3], n: u64) -> String {
    let per = |i: usize| (after[i] - before[i]) * 1e6 / n as f64;
    format!(
        "CPU per invocation: trigd {:.0} µs, the environments {:.0} µs, the bench client {:.0} µs",
        per(0),
        per(1),
        per(2)
    )
}

fn summary_us(sorted: &[u64]) -> String {
    format!(
        "p50 {} µs, p99 {} µs, max {} µs",
        percentile(sorted, 0.50),
        percentile(sorted, 0.99),
        percentile(sorted, 1.0)
    )
}

fn summary_ms(sorted: &[u64]) -> String {
    let ms = |p| percentile(sorted, p) as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(0.50),
        ms(0.99),
        ms(1.0)
    )
}

/// User + system CPU seconds of a process's children that it has waited for, from /proc.
fn reaped_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .skip(13)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    fields.iter().sum::<f64>() / 100.0
}

/// Median of a few runs of a program with only `PATH` in its environment (as trigd starts a
/// runtime), in ms: what the bare interpreter takes to start.
fn startup_ms(program: &str, args: &[&str]) -> f64 {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut runs: Vec<u64> = (0..COLD)
        .map(|_| {
            let t = Instant::now();
            let status = Command::new(program)
                .args(args)
                .env_clear()
                .env("PATH", &path)
                .status()
                .unwrap();
            assert!(status.success(), "{program} {args:?}");
            t.elapsed().as_micros() as u64
        })
        .collect();
    runs.sort_unstable();
    percentile(&runs, 0.5) as f64 / 1000.0
}

/// Webhook events to `source` at `rate` per second for `secs`, over `connections` keep-alive
/// connections, each event `{"n":<n>,"t":<send time, µs>}` with `n` from `first`: the number
/// of events accepted (2xx).
async fn send_steady(
    addr: &str,
    source: &str,
    rate: u64,
    secs: f64,
    connections: u64,
    first: i64,
) -> u64 {
    let total = (rate as f64 * secs) as u64;
    let per = total / connections;
    let mut tasks = Vec::new();
    for k in 0..connections {
        let addr = addr.to_owned();
        let source = source.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut peer = connect(&addr).await;
            // Each connection sends every `connections`-th event, offset by `k` events.
            tokio::time::sleep(Duration::from_micros(k * 1_000_000 / rate)).await;
            let mut tick =
                tokio::time::interval(Duration::from_micros(connections * 1_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut accepted = 0;
            for j in 0..per {
                tick.tick().await;
                let n = first + (j * connections + k) as i64;
                let body = format!("{{\"n\":{n},\"t\":{}}}", micros_now());
                let request = format!(
                    "POST /events/{source} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let (status, _) = round_trip(&mut peer, request.as_bytes()).await;
                if (200..300).contains(&status) {
                    accepted += 1;
                }
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap();
    }
    accepted
}

/// The `n latency` lines the handlers wrote under `dir`.
fn read_stamps(dir: &Path) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let mut it = line.split(' ');
            if let (Some(Ok(n)), Some(Ok(lat))) = (
                it.next().map(str::parse::<i64>),
                it.next().map(str::parse::<i64>),
            ) {
                out.push((n, lat.max(0) as u64));
            }
        }
    }
    out
}

/// Waits until the handlers have recorded `count` events with `n >= from` (at most a
/// minute); returns their latencies, sorted.
async fn wait_stamps(dir: &Path, from: i64, count: u64) -> Vec<u64> {
    let start = Instant::now();
    loop {
        let mut lat: Vec<u64> = read_stamps(dir)
            .into_iter()
            .filter(|(n, _)| *n >= from)
            .map(|(_, l)| l)
            .collect();
        if lat.len() as u64 >= count || start.elapsed() > Duration::from_secs(60) {
            lat.sort_unstable();
            return lat;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `Init Duration` (ms) per function, from the REPORT lines, until `want` of the cold-start
/// functions have one (or 5 s have passed).
fn cold_init_durations(
    logs: &std::sync::mpsc::Receiver<String>,
    want: usize,
) -> HashMap<String, f64> {
    let mut out: HashMap<String, f64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.keys().filter(|f| f.starts_with("cold-")).count() < want {
        let Ok(line) = logs.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let message = v["message"].as_str().unwrap_or_default();
        let init = message
            .split("Init Duration: ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse::<f64>().ok());
        if let (Some(f), Some(ms)) = (v["function"].as_str(), init) {
            out.insert(f.to_owned(), ms);
        }
    }
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let secs = env_u64("TRIGD_BENCH_SECS", 5);
    let rate = env_u64("TRIGD_BENCH_RATE", 500);
    let command_rate = env_u64("TRIGD_BENCH_COMMAND_RATE", 25);
    let rust_log = std::env::var("TRIGD_BENCH_LOG")
        .unwrap_or_else(|_| "warn,trigd::daemon=info,trigd::function=info".to_owned());
    let dir = tempfile::tempdir().unwrap();
    // `python3` on PATH may be a wrapper (pyenv's shim here); the interpreter it runs:
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH")
        .stdout;
    let python = PathBuf::from(String::from_utf8(python).unwrap().trim());
    let (rules, out_fn, out_cmd) = write_files(dir.path(), &python);
    let (mut trigd, addr, logs) = start_trigd(&rules, &dir.path().join("state"), &rust_log, |l| {
        l.contains("Init Duration")
    });
    let pid = trigd.id();
    let noop = invoke_request(&addr, "noop", "{\"n\":1}");
    println!("trigd at {addr}, RUST_LOG={rust_log}, {secs} s per timed phase");

    // Phase 1: one connection, one invocation at a time.
    let mut peer = connect(&addr).await;
    let (status, body) = round_trip(&mut peer, &noop).await;
    let echoed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(
        (status, echoed),
        (200, serde_json::json!({"n": 1})),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let _warm = invoke_loop(peer, noop.clone(), Instant::now() + Duration::from_secs(1)).await;
    let before = cpu_split(pid);
    let start = Instant::now();
    let (mut lat, errors) = invoke_loop(
        connect(&addr).await,
        noop.clone(),
        start + Duration::from_secs(secs),
    )
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    let after = cpu_split(pid);
    lat.sort_unstable();
    let n = lat.len() as u64;
    println!(
        "1. warm round trip, 1 connection: {n} invocations ({errors} not 200) in {elapsed:.1} s = {:.0} invocations/s; latency {}; {}",
        n as f64 / elapsed,
        summary_us(&lat),
        cpu_line(before, after, n)
    );

    // Phase 2: two connections (two environments), after a warm-up of both.
    let run_two = |duration: Duration| {
        let deadline = Instant::now() + duration;
        let addr = addr.clone();
        let noop = noop.clone();
        async move {
            let mut tasks = Vec::new();
            for _ in 0..2 {
                let peer = connect(&addr).await;
                tasks.push(tokio::spawn(invoke_loop(peer, noop.clone(), deadline)));
            }
            let mut lat = Vec::new();
            let mut errors = 0;
            for t in tasks {
                let (l, e) = t.await.unwrap();
                lat.extend(l);
                errors += e;
            }
            (lat, errors)
        }
    };
    run_two(Duration::from_secs(1)).await;
    let before = cpu_split(pid);
    let start = Instant::now();
    let (mut lat, errors) = run_two(Duration::from_secs(secs)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let after = cpu_split(pid);
    lat.sort_unstable();
    let n = lat.len() as u64;
    println!(
        "2. concurrency 2, 2 connections: {n} invocations ({errors} not 200) in {elapsed:.1} s = {:.0} invocations/s; latency {}; {}",
        n as f64 / elapsed,
        summary_us(&lat),
        cpu_line(before, after, n)
    );

    // Phase 3: cold starts, one function after the other.
    let mut peer = connect(&addr).await;
    let mut cold = HashMap::new();
    for runtime in ["py", "pinned", "node"] {
        for i in 0..COLD {
            let name = format!("cold-{runtime}-{i}");
            let request = invoke_request(&addr, &name, "{\"n\":1}");
            let t = Instant::now();
            let (status, body) = round_trip(&mut peer, &request).await;
            let us = t.elapsed().as_micros() as u64;
            assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
            cold.insert(name, us);
        }
    }
    let inits = cold_init_durations(&logs, 3 * COLD);
    let pinned = format!("Python, `interpreter: {}`", python.display());
    for (runtime, label) in [
        ("py", "Python, `python3` from PATH"),
        ("pinned", pinned.as_str()),
        ("node", "Node"),
    ] {
        let mut lat: Vec<u64> = (0..COLD)
            .map(|i| cold[&format!("cold-{runtime}-{i}")])
            .collect();
        lat.sort_unstable();
        let mut init: Vec<u64> = (0..COLD)
            .filter_map(|i| inits.get(&format!("cold-{runtime}-{i}")))
            .map(|ms| (ms * 1000.0) as u64)
            .collect();
        init.sort_unstable();
        println!(
            "3. cold start, {label}, {COLD} fresh environments: first-invocation latency median {:.1} ms, max {:.1} ms; REPORT Init Duration median {:.1} ms, max {:.1} ms ({} lines)",
            percentile(&lat, 0.5) as f64 / 1000.0,
            percentile(&lat, 1.0) as f64 / 1000.0,
            percentile(&init, 0.5) as f64 / 1000.0,
            percentile(&init, 1.0) as f64 / 1000.0,
            init.len()
        );
    }
    let py = python.to_str().unwrap();
    println!(
        "   for scale, median of {COLD} starts with only PATH set: `python3 -c pass` from PATH {:.1} ms, `{py} -c pass` {:.1} ms, `{py} -S -c pass` (no site module) {:.1} ms, `{py} -c 'import http.client, json, logging, importlib, traceback'` (the bootstrap's imports) {:.1} ms, `node -e 0` {:.1} ms",
        startup_ms("python3", &["-c", "pass"]),
        startup_ms(py, &["-c", "pass"]),
        startup_ms(py, &["-S", "-c", "pass"]),
        startup_ms(
            py,
            &[
                "-c",
                "import http.client, json, logging, importlib, traceback"
            ]
        ),
        startup_ms("node", &["-e", "0"]),
    );

    // Phase 4: webhook → function target at a steady rate, after a warm-up.
    let warm = send_steady(&addr, "to-function", 100, 0.5, 2, -1_000_000).await;
    wait_stamps(&out_fn, -1_000_000, warm).await;
    let before = cpu_split(pid);
    let accepted = send_steady(&addr, "to-function", rate, secs as f64, 4, 0).await;
    let lat = wait_stamps(&out_fn, 0, accepted).await;
    let after = cpu_split(pid);
    println!(
        "4. webhook → function target at {rate} events/s for {secs} s: {accepted} accepted, {} reached the handler; request → handler latency {}; {}",
        lat.len(),
        summary_ms(&lat),
        cpu_line(before, after, lat.len().max(1) as u64)
    );

    // Phase 5: the same handler as a `command` target.
    let before = cpu_split(pid);
    let reaped_before = reaped_cpu_seconds(pid);
    let accepted = send_steady(&addr, "to-command", command_rate, secs as f64, 2, 0).await;
    let lat = wait_stamps(&out_cmd, 0, accepted).await;
    let after = cpu_split(pid);
    let delivered = lat.len().max(1) as f64;
    println!(
        "5. webhook → command target (a new {py} per delivery) at {command_rate} events/s for {secs} s: {accepted} accepted, {} reached the handler; request → handler latency {}; CPU per delivery: trigd {:.0} µs, the python3 processes {:.0} µs",
        lat.len(),
        summary_ms(&lat),
        (after[0] - before[0]) * 1e6 / delivered,
        (reaped_cpu_seconds(pid) - reaped_before) * 1e6 / delivered
    );

    let _ = trigd.kill();
    let _ = trigd.wait();
}
