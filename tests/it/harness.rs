//! Running the real daemon: start `trigd run` on 127.0.0.1:0 in a temporary directory, learn
//! its address from its JSON log, talk HTTP to it, stop it with a signal or kill it; plus a
//! recording HTTP target to deliver to.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

/// How long any wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running `trigd run`.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every log line the daemon wrote so far (JSON objects).
    pub log: Arc<Mutex<Vec<Value>>>,
}

impl Daemon {
    /// Starts the daemon on `rules` with state in `state`, waiting until it is ready.
    pub fn start(rules: &Path, state: &Path, extra: &[&str]) -> Daemon {
        Self::start_with_env(rules, state, extra, &[])
    }

    /// As [`Daemon::start`], with extra environment variables.
    pub fn start_with_env(
        rules: &Path,
        state: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trigd"));
        cmd.envs(env.iter().copied());
        cmd.args(["run"])
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
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("trigd starts");
        let stderr = child.stderr.take().expect("stderr pipe");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if v["message"] == "trigd is ready." {
                    let _ = ready_tx.send(v["listen"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(v);
            }
        });
        let addr = match ready_rx.recv_timeout(DEADLINE) {
            Ok(a) => a.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!("trigd did not become ready: {:?}", log.lock().unwrap());
            }
        };
        Daemon { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits for the exit status; prints the daemon's log when it is not 0.
    /// The daemon's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics text")
    }

    pub fn stop(mut self) -> i32 {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let code = wait_exit(&mut self.child);
        if code != 0 {
            // Give the log reader a moment to drain the pipe after the exit.
            let _ = wait_for_opt(|| {
                self.log
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|v| v.is_string())
                    .then_some(())
            });
            for line in self.log.lock().unwrap().iter().rev().take(20).rev() {
                eprintln!("trigd: {line}");
            }
        }
        code
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn hup(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
    }

    /// Waits until a log line satisfies `f`.
    pub fn wait_log(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || {
            self.log.lock().unwrap().iter().find(|v| f(v)).cloned()
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = std::time::SystemTime::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        assert!(
            std::time::SystemTime::now() < deadline,
            "trigd did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Re-checks `f` for up to a second; `None` if it never yields.
fn wait_for_opt<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..50 {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Re-checks `f` until it yields a value, failing after [`DEADLINE`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::SystemTime::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::SystemTime::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Request bodies with their headers, in arrival order.
pub type Recorded = Vec<(String, Vec<(String, String)>)>;

/// An HTTP target on 127.0.0.1 that records every request body and answers with the next
/// status from a script (then 200 forever).
#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    pub bodies: Arc<Mutex<Recorded>>,
    script: Arc<Mutex<Vec<u16>>>,
    pub arrived: Arc<Notify>,
}

impl Recorder {
    /// Starts on a fresh port, in the background of the current tokio runtime.
    pub async fn start(script: Vec<u16>) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::serve(listener, script)
    }

    /// Serves on a given listener (to come back on the same port after an outage).
    pub fn serve(listener: tokio::net::TcpListener, script: Vec<u16>) -> Recorder {
        let addr = listener.local_addr().expect("addr");
        let rec = Recorder {
            addr,
            bodies: Arc::default(),
            script: Arc::new(Mutex::new(script.into_iter().rev().collect())),
            arrived: Arc::default(),
        };
        let r = rec.clone();
        let app =
            axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    let status = r.script.lock().unwrap().pop().unwrap_or(200);
                    let hs = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    if status < 300 {
                        r.bodies.lock().unwrap().push((body, hs));
                        r.arrived.notify_waiters();
                    }
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        rec
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn count(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    /// Waits (async) until at least `n` bodies arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let notified = self.arrived.notified();
            {
                let b = self.bodies.lock().unwrap();
                if b.len() >= n {
                    return b.iter().map(|(body, _)| body.clone()).collect();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("timed out waiting for {n} deliveries, got {}", self.count());
            }
        }
    }
}

/// Writes a rules directory.
pub fn write_rules(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(name), text).expect("write rules");
}

/// Waits for a dead letter under the state directory `state` for which `accept` holds, and
/// returns its JSON. Only finished files count (`*.json`; a name starting with `.` is a write
/// in progress).
pub fn wait_dead_letter(state: &Path, accept: impl Fn(&Value) -> bool) -> Value {
    wait_for("a dead letter", || {
        std::fs::read_dir(state.join("dead-letters"))
            .ok()?
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".json") && !name.starts_with('.')
            })
            .filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok())
            .find(|v| accept(v))
    })
}
