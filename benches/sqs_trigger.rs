//! SQS trigger benchmark: messages handled per second by an `sqs` trigger (Lambda's SQS
//! event-source mapping) with batches of 10, through moto's server, beside moto alone.
//!
//! Run: `cargo bench --bench sqs_trigger`. Needs moto's server (`MOTO_SERVER`, or
//! `.venv-moto/bin/moto_server` as `scripts/test` installs it) and `python3`.
//! `TRIGD_BENCH_MESSAGES` (default 500; moto's receive slows as its queue grows) messages are put on a queue; then:
//! 1. **moto alone**: the bench's own two pollers receive 10 at a time and delete each batch
//!    (`DeleteMessageBatch`) until the queue is empty: the emulator's ceiling for this loop;
//! 2. **trigd**: the same number again, handled by the release `trigd` (a child process) with
//!    a no-op Python function behind an `sqs` trigger (`batch_size: 10`, `max_concurrency: 2`),
//!    timed from the start of the daemon until its metrics count every message deleted.
//!
//! moto is a single Python process: both figures are bound by it, not by trigd.

// A benchmark: wall-clock time is the point, and failures should stop it loudly.
#![allow(clippy::disallowed_types, clippy::expect_used, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};

#[path = "common/child.rs"]
#[allow(dead_code)]
mod child;

use child::start_trigd_env;

const NOOP_PY: &str = "def handler(event, context):\n    return None\n";

fn moto_bin() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/moto_server"))
}

async fn client(url: &str) -> aws_sdk_sqs::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&conf)
}

async fn fill(sqs: &aws_sdk_sqs::Client, queue: &str, n: usize) {
    for start in (0..n).step_by(10) {
        let entries = (start..(start + 10).min(n))
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(format!(r#"{{"order": {i}, "status": "created"}}"#))
                    .build()
                    .unwrap()
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
}

/// One poller of the moto-alone phase: receive 10, delete them, until a receive is empty.
async fn drain(sqs: aws_sdk_sqs::Client, queue: String) -> usize {
    let mut n = 0;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return n;
        }
        n += messages.len();
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        sqs.delete_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
}

/// The daemon's count of messages its trigger deleted.
async fn deleted(http: &reqwest::Client, control: &str) -> u64 {
    let text = http
        .get(format!("http://{control}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| {
            l.starts_with("trigd_sqs_trigger_messages_total{") && l.contains("outcome=\"deleted\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let n: usize = std::env::var("TRIGD_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = moto_bin();
    let mut moto = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto's server {}: {e}", bin.display()));
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sqs = client(&url).await;
    let queue = sqs
        .create_queue()
        .queue_name("orders")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    // 1. moto alone.
    fill(&sqs, &queue, n).await;
    let start = Instant::now();
    let pollers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(drain(sqs.clone(), queue.clone())))
        .collect();
    let mut drained = 0;
    for p in pollers {
        drained += p.await.unwrap();
    }
    // The last empty receives waited a second each; count the time to the last message.
    let alone = start.elapsed().as_secs_f64() - 1.0;
    println!(
        "1. moto alone, 2 pollers, receive 10 + DeleteMessageBatch: {drained} messages in {alone:.2} s = {:.0} messages/s",
        drained as f64 / alone
    );

    // 2. trigd.
    fill(&sqs, &queue, n).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("noop")).unwrap();
    std::fs::write(rules.join("noop/app.py"), NOOP_PY).unwrap();
    std::fs::write(
        rules.join("sqs.yaml"),
        format!(
            "sources:\n  orders:\n    sqs: {{queue_url: \"{queue}\"}}\nfunctions:\n  noop:\n    runtime: python3.12\n    handler: app.handler\n    code: noop\n    concurrency: 2\n    triggers:\n      - sqs: {{source: orders, batch_size: 10, max_concurrency: 2}}\n"
        ),
    )
    .unwrap();
    let start = Instant::now();
    let (mut trigd, ready, _logs) = start_trigd_env(
        &rules,
        &dir.path().join("state"),
        "warn,trigd::daemon=info",
        &[],
        &[
            ("AWS_ENDPOINT_URL", &url),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        |_| false,
    );
    let control = ready["listen"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    loop {
        if deleted(&http, &control).await >= n as u64 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "trigd did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let through = start.elapsed().as_secs_f64();
    println!(
        "2. trigd, sqs trigger (batch_size 10, max_concurrency 2, no-op Python handler): {n} messages in {through:.2} s = {:.0} messages/s (from the daemon's start)",
        n as f64 / through
    );
    let _ = trigd.kill();
    let _ = trigd.wait();
    let _ = moto.kill();
    let _ = moto.wait();
}
