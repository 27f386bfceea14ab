//! Nothing accepted is lost: `kill -9` mid-stream, restarts on the same state directory, and
//! a target outage.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::harness::{Daemon, Recorder, write_rules};

fn rule(url: &str) -> String {
    format!(
        "rules:\n  - name: sink\n    pattern: {{source: [load]}}\n    targets:\n      - id: hook\n        http: {url}\n        input_path: $.detail\n        concurrency: 8\n"
    )
}

/// Posts `n` from `from`; returns the numbers that got a 2xx before the daemon went away.
/// `progress` counts the acknowledgements as they come.
async fn post_until_gone(
    client: &reqwest::Client,
    url: &str,
    from: u64,
    n: u64,
    progress: &AtomicUsize,
) -> Vec<u64> {
    let mut acked = Vec::new();
    for i in from..from + n {
        match client.post(url).body(format!("{{\"n\":{i}}}")).send().await {
            Ok(r) if r.status().is_success() => {
                acked.push(i);
                progress.fetch_add(1, Ordering::SeqCst);
            }
            _ => break,
        }
    }
    acked
}

fn counts(rec: &Recorder) -> HashMap<u64, usize> {
    let mut seen = HashMap::new();
    for (body, _) in rec.bodies.lock().unwrap().iter() {
        let v: Value = serde_json::from_str(body).unwrap();
        *seen.entry(v["n"].as_u64().unwrap()).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_event_survives_kill_9() {
    let rec = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(&rules, "r.yaml", &rule(&rec.url()));
    let state = dir.path().join("state");
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    let mut next = 0;
    for _round in 0..4 {
        let d = Daemon::start(&rules, &state, &[]);
        let url = d.url("/events/load");
        // Kill the daemon while a sender is mid-stream: spawn the sender, let it get some
        // events in, then SIGKILL.
        let progress = Arc::new(AtomicUsize::new(0));
        let sender = {
            let client = client.clone();
            let url = url.clone();
            let progress = Arc::clone(&progress);
            tokio::spawn(
                async move { post_until_gone(&client, &url, next, 1_000_000, &progress).await },
            )
        };
        crate::harness::wait_for("events to be acknowledged", || {
            (progress.load(Ordering::SeqCst) >= 150).then_some(())
        });
        d.kill();
        let got = sender.await.unwrap();
        next = got.last().map_or(next, |l| l + 1) + 1;
        acked.extend(got);
    }
    // A last, clean incarnation delivers whatever is left.
    let d = Daemon::start(&rules, &state, &[]);
    crate::harness::wait_for("every acknowledged event", || {
        let seen = counts(&rec);
        acked.iter().all(|n| seen.contains_key(n)).then_some(())
    });
    let seen = counts(&rec);
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    eprintln!(
        "crash test: {} events acknowledged across 4 kill -9s, all delivered; {duplicates} duplicate deliveries",
        acked.len()
    );
    assert!(
        acked.len() >= 400,
        "too few events got through: {}",
        acked.len()
    );
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_outage_delays_but_loses_nothing() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(&rules, "r.yaml", &rule(&format!("http://{addr}/hook")));
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);
    let client = reqwest::Client::new();
    let acked = post_until_gone(&client, &d.url("/events/load"), 0, 50, &AtomicUsize::new(0)).await;
    assert_eq!(acked.len(), 50);
    d.wait_log("failed attempts", |v| {
        v["message"] == "Delivery failed, will retry." && v["attempt"] == 2
    });
    // The target comes back: everything arrives.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let rec = Recorder::serve(listener, vec![]);
    rec.wait_for(50).await;
    let seen = counts(&rec);
    assert!((0..50).all(|n| seen.contains_key(&n)), "{seen:?}");
    assert_eq!(d.stop(), 0);
}
