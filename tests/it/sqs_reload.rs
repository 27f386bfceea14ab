//! A reload applies SQS sources too (issue 13, item 8): against moto's server, a changed
//! source is restarted with its new settings and the next message is decoded the new way; a
//! removed source stops polling, an added one starts, an unchanged one is left alone; nothing
//! sent after the change is lost.

use serde_json::Value;

use crate::aws::{Moto, approximate_count, daemon, receive_all, s3_notification, wait_for_async};
use crate::harness::{Daemon, Recorder, write_rules};

/// The value of one sample in the daemon's `/metrics` (0 when it was never set).
async fn metric(d: &Daemon, sample: &str) -> f64 {
    let text = d.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Waits for the reload log line of `source`'s `change` ("started", "stopped", "restarted"),
/// then for "Rules reloaded.", which comes after the sources were applied.
fn wait_source_change(d: &Daemon, source: &str, change: &str) {
    d.wait_log(&format!("{source} {change} by the reload"), |v| {
        v["message"] == "SQS source changed by the reload."
            && v["source"] == source
            && v["change"] == change
    });
    d.wait_log("the reload", |v| v["message"] == "Rules reloaded.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_that_changes_an_sqs_sources_format_decodes_the_next_messages_the_new_way() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let inbox = moto.queue("inbox").await;
    let rec = Recorder::start(Vec::new()).await;
    let rules = |format: &str| {
        format!(
            r#"
sources:
  uploads:
    sqs: {{queue_url: {inbox}, format: {format}}}
rules:
  - name: thumbnails
    pattern: {{source: [aws.s3], detail-type: [Object Created]}}
    targets:
      - id: hook
        http: {url}
        input_path: $.detail.object.key
"#,
            url = rec.url()
        )
    };
    let (dir, _state, d) = daemon(&moto, &rules("raw"));
    let send = |key: &str| {
        sqs.send_message()
            .queue_url(&inbox)
            .message_body(s3_notification(&[key]))
            .send()
    };

    // As `raw`, an S3 notification is an `aws.sqs` event: it matches nothing and is deleted.
    send("before.jpg").await.unwrap();
    wait_for_async("the raw message to be consumed", || async {
        metric(&d, "trigd_events_unmatched_total").await == 1.0
            && approximate_count(&sqs, &inbox).await == ("0".to_owned(), "0".to_owned())
    })
    .await;

    // The source now reads S3 notifications: the reload restarts it.
    write_rules(&dir.path().join("rules"), "r.yaml", &rules("s3"));
    wait_source_change(&d, "uploads", "restarted");
    let keys = ["after-0.jpg", "after-1.jpg", "after-2.jpg", "after-3.jpg"];
    for key in keys {
        send(key).await.unwrap();
    }
    let mut got: Vec<Value> = rec
        .wait_for(keys.len())
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    got.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(got, keys);
    wait_for_async("the inbox to be empty", || async {
        approximate_count(&sqs, &inbox).await == ("0".to_owned(), "0".to_owned())
    })
    .await;
    // Every message after the change was decoded the new way: none went unmatched.
    assert_eq!(metric(&d, "trigd_events_unmatched_total").await, 1.0);
    assert_eq!(
        metric(&d, "trigd_events_received_total{source=\"uploads\"}").await,
        5.0
    );
    assert_eq!(rec.count(), keys.len());
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_stops_a_removed_sqs_source_starts_an_added_one_and_leaves_the_others() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let gone = moto.queue("gone").await;
    let steady = moto.queue("steady").await;
    let added = moto.queue("added").await;
    let rec = Recorder::start(Vec::new()).await;
    let rules = |sources: &[(&str, &str)]| {
        let mut text = "sources:\n".to_owned();
        for (name, url) in sources {
            text.push_str(&format!("  {name}:\n    sqs: {{queue_url: {url}}}\n"));
        }
        text.push_str(&format!(
            "rules:\n  - name: r\n    pattern: {{source: [aws.sqs]}}\n    targets:\n      - id: hook\n        http: {}\n        input_path: $.detail.body\n",
            rec.url()
        ));
        text
    };
    let (dir, _state, d) = daemon(&moto, &rules(&[("gone", &gone), ("steady", &steady)]));
    let send = |url: &str, body: &str| {
        sqs.send_message()
            .queue_url(url)
            .message_body(format!("\"{body}\""))
            .send()
    };
    send(&gone, "gone-before").await.unwrap();
    send(&steady, "steady-before").await.unwrap();
    rec.wait_for(2).await;

    write_rules(
        &dir.path().join("rules"),
        "r.yaml",
        &rules(&[("steady", &steady), ("added", &added)]),
    );
    wait_source_change(&d, "gone", "stopped");
    wait_source_change(&d, "added", "started");
    send(&gone, "gone-after").await.unwrap();
    send(&steady, "steady-after").await.unwrap();
    send(&added, "added-after").await.unwrap();
    let mut got = rec.wait_for(4).await;
    got.sort();
    assert_eq!(
        got,
        [
            "\"added-after\"",
            "\"gone-before\"",
            "\"steady-after\"",
            "\"steady-before\""
        ]
    );
    // The removed source no longer polls: its message is still on its queue, for anyone.
    let left = receive_all(&sqs, &gone, 1).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].body(), Some("\"gone-after\""));
    assert_eq!(
        metric(&d, "trigd_events_received_total{source=\"gone\"}").await,
        1.0
    );
    // The unchanged source was not restarted.
    assert!(
        !d.log
            .lock()
            .unwrap()
            .iter()
            .any(|v| v["message"] == "SQS source changed by the reload." && v["source"] == "steady"),
        "steady was restarted"
    );
    assert_eq!(rec.count(), 4);
    assert_eq!(d.stop(), 0);
}
