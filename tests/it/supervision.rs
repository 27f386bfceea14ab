//! The daemon supervises itself and bounds its stop: a core task that fails stops the daemon
//! with an error (503s while it drains, a non-zero exit for systemd to restart it) and loses
//! nothing; SIGTERM ends the process within the grace period and a little, whatever hangs.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::daemon::post;
use crate::harness::{DEADLINE, Daemon, Recorder, write_rules};

/// A TCP server that accepts connections, reads what comes and never answers: a target or an
/// AWS endpoint that hangs mid-call.
struct Silent {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        Silent { addr, accepted }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Polls `f` (async) until it yields, failing after [`DEADLINE`].
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn settings(dir: &Path, grace: &str) -> String {
    let path = dir.join("trigd.yaml");
    std::fs::write(&path, format!("grace_period: {grace}\n")).unwrap();
    path.display().to_string()
}

fn rules_to(slow: &str, flaky: &str) -> String {
    format!(
        "rules:\n  - name: r\n    pattern: {{source: [app]}}\n    targets:\n      - id: slow\n        http: {slow}\n        timeout: 60s\n      - id: flaky\n        http: {flaky}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_outbox_stops_the_daemon_and_nothing_accepted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let state = dir.path().join("state");
    let fault = dir.path().join("fail-reads");
    let config = settings(dir.path(), "2s");
    // `slow` never answers: its delivery is in flight through the drain. `flaky` answers 503:
    // its delivery is a retry, read back from the outbox, where the fault waits.
    let silent = Silent::start();
    let flaky = Recorder::start(vec![503; 100]).await;
    write_rules(&rules, "r.yaml", &rules_to(&silent.url(), &flaky.url()));
    let mut d = Daemon::start_with_env(
        &rules,
        &state,
        &["--config", &config],
        &[("TRIGD_FAULT_OUTBOX_READ", &fault.display().to_string())],
    );
    let (status, _) = post(&d.url("/events/app"), r#"{"order": 1}"#, &[]).await;
    assert_eq!(status, 200);
    until("both first attempts", || async {
        let m = d.metrics().await;
        (silent.accepted() >= 1
            && m.contains(r#"trigd_deliveries_total{rule="r",target="flaky",outcome="failed"}"#))
        .then_some(())
    })
    .await;
    // From now on every outbox read fails: the dispatcher dies at its next read.
    std::fs::write(&fault, "").unwrap();
    // Until the daemon notices, events are still accepted (and must not be lost); while it
    // drains, they and the health check are refused.
    let url = d.url("/events/app");
    let health = d.url("/healthz");
    let mut accepted = vec![1];
    let deadline = Instant::now() + DEADLINE;
    for order in 2.. {
        assert!(Instant::now() < deadline, "events were never refused");
        let r = reqwest::Client::new()
            .post(&url)
            .body(format!(r#"{{"order": {order}}}"#))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => accepted.push(order),
            503 => break,
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h = reqwest::get(&health).await.map(|r| r.status().as_u16());
    assert!(
        matches!(h, Ok(503) | Err(_)),
        "healthz while draining: {h:?}"
    );
    let code = crate::harness::wait_for("the daemon to exit", || {
        d.child.try_wait().unwrap().map(|s| s.code())
    });
    assert_ne!(code, Some(0), "a dead dispatcher is a failed daemon");
    let line = d.wait_log("the supervision's error", |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("A task trigd cannot run without has stopped"))
    });
    assert_eq!(line["task"], "the dispatcher", "{line}");
    assert!(
        line["cause"].as_str().unwrap().contains("injected"),
        "{line}"
    );
    drop(d);

    // Restarted (as systemd would), with the fault gone and the targets answering: both
    // deliveries of the accepted event arrive.
    std::fs::remove_file(&fault).unwrap();
    let good = Recorder::start(vec![]).await;
    write_rules(&rules, "r.yaml", &rules_to(&good.url(), &good.url()));
    let d = Daemon::start(&rules, &state, &["--config", &config]);
    // Two targets: each accepted event arrives twice.
    let bodies = good.wait_for(2 * accepted.len()).await;
    let mut orders: Vec<i64> = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["detail"]["order"]
                .as_i64()
                .unwrap()
        })
        .collect();
    orders.sort();
    let mut want: Vec<i64> = accepted.iter().flat_map(|o| [*o, *o]).collect();
    want.sort();
    assert_eq!(orders, want);
    assert_eq!(d.stop(), 0);
}

/// SIGTERM and the time until the process is gone.
fn stop_timed(mut d: Daemon) -> (i32, Duration) {
    let started = std::time::SystemTime::now();
    let pid = rustix::process::Pid::from_raw(d.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let code = crate::harness::wait_for("the daemon to exit", || {
        d.child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1))
    });
    (code, started.elapsed().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_process_in_time_whatever_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let state = dir.path().join("state");
    let config = settings(dir.path(), "1s");
    let silent = Silent::start();
    write_rules(
        &rules,
        "r.yaml",
        &format!(
            "rules:\n  - name: r\n    pattern: {{source: [app]}}\n    targets:\n      - id: never\n        http: {}\n        timeout: 60s\n      - id: long\n        command: [sleep, '61']\n        timeout: 120s\n",
            silent.url()
        ),
    );
    let d = Daemon::start(&rules, &state, &["--config", &config]);
    let (status, _) = post(&d.url("/events/app"), r#"{"n": 1}"#, &[]).await;
    assert_eq!(status, 200);
    let sleeping = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join("cmdline"))
                    .is_ok_and(|c| c == "sleep\x0061\x00")
            })
            .count()
    };
    crate::harness::wait_for("both attempts in flight", || {
        (silent.accepted() >= 1 && sleeping() >= 1).then_some(())
    });
    let (code, took) = stop_timed(d);
    assert_eq!(code, 0);
    // 1 s of grace, 3 s of slack for the rest of the stop, and room for a slow machine.
    assert!(took < Duration::from_secs(8), "the stop took {took:?}");
    crate::harness::wait_for("the command to be killed", || {
        (sleeping() == 0).then_some(())
    });
    // What did not finish stayed in the outbox: a restart delivers it.
    let good = Recorder::start(vec![]).await;
    write_rules(
        &rules,
        "r.yaml",
        &format!(
            "rules:\n  - name: r\n    pattern: {{source: [app]}}\n    targets:\n      - id: never\n        http: {}\n      - id: long\n        command: ['true']\n",
            good.url()
        ),
    );
    let d = Daemon::start(&rules, &state, &["--config", &config]);
    let got = good.wait_for(1).await;
    assert!(got[0].contains("\"n\":1"), "{got:?}");
    assert_eq!(d.stop(), 0);
}

/// An SQS endpoint that hands out one message, then never answers again (the source is
/// stuck mid-call, deleting it): SIGTERM still ends the process in time, and the message,
/// not deleted, stays on the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_process_while_a_source_is_stuck_in_a_call() {
    use axum::http::HeaderMap;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let seen = Arc::clone(&seen);
        async move {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let op = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if n == 0 && op.ends_with("ReceiveMessage") {
                let body = r#"{"Messages":[{"MessageId":"m1","ReceiptHandle":"h1","Body":"{\"k\":1}","Attributes":{"SentTimestamp":"1700000000000"}}]}"#;
                return (
                    [("content-type", "application/x-amz-json-1.0")],
                    body.to_owned(),
                );
            }
            // Every later call hangs, as an endpoint that stopped answering.
            std::future::pending::<()>().await;
            unreachable!()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let config = settings(dir.path(), "1s");
    write_rules(
        &rules,
        "r.yaml",
        &format!(
            "sources:\n  q:\n    sqs: {{queue_url: http://{addr}/123456789012/q, format: raw}}\nrules:\n  - name: r\n    pattern: {{source: [aws.sqs]}}\n    targets:\n      - id: t\n        log: true\n"
        ),
    );
    let endpoint = format!("http://{addr}");
    let d = Daemon::start_with_env(
        &rules,
        &dir.path().join("state"),
        &["--config", &config],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    // The message was received and stored; its delete is the call that hangs.
    d.wait_log("the message's delivery", |v| {
        v["message"] == "Delivery." && v["payload"].as_str().is_some_and(|p| p.contains("\"k\":1"))
    });
    until("the delete call", || async {
        (calls.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    let (code, took) = stop_timed(d);
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(8), "the stop took {took:?}");
}
