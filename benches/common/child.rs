//! Starting the release `trigd` as a child process, and the small measurements the benches
//! share.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Starts `trigd run RULES --listen 127.0.0.1:0 --log-format json` with `RUST_LOG=rust_log`;
/// returns the child, the address it listens on, and the log lines (raw JSON text) for which
/// `keep` is true. Every other line is read and dropped, so the daemon never blocks on a full
/// pipe.
pub fn start_trigd(
    rules: &Path,
    state: &Path,
    rust_log: &str,
    keep: fn(&str) -> bool,
) -> (Child, String, mpsc::Receiver<String>) {
    let (child, ready, lines) = start_trigd_with(rules, state, rust_log, &[], keep);
    let addr = ready["listen"].as_str().unwrap_or_default().to_owned();
    (child, addr, lines)
}

/// As [`start_trigd`], with more arguments for `trigd run`; returns the "trigd is ready." log
/// line (its `listen`, and `api` when the HTTP API listener runs).
#[allow(dead_code)] // Not every bench that includes this file calls it directly.
pub fn start_trigd_with(
    rules: &Path,
    state: &Path,
    rust_log: &str,
    extra: &[&str],
    keep: fn(&str) -> bool,
) -> (Child, serde_json::Value, mpsc::Receiver<String>) {
    start_trigd_env(rules, state, rust_log, extra, &[], keep)
}

/// As [`start_trigd_with`], with more environment variables for the daemon.
#[allow(dead_code)] // Not every bench that includes this file calls it directly.
pub fn start_trigd_env(
    rules: &Path,
    state: &Path,
    rust_log: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    keep: fn(&str) -> bool,
) -> (Child, serde_json::Value, mpsc::Receiver<String>) {
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
        .args(extra)
        .env("RUST_LOG", rust_log)
        .envs(env.iter().copied())
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
    let (ready_tx, ready_rx) = mpsc::channel();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("trigd is ready.")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "trigd is ready."
            {
                let _ = ready_tx.send(v);
            } else if keep(&line) {
                let _ = lines_tx.send(line);
            }
        }
    });
    let ready = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("trigd ready");
    (child, ready, lines_rx)
}

/// User + system CPU time of a process, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
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

/// The value at quantile `p` of sorted samples (0 when there are none).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
