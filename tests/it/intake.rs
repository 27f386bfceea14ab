//! One intake for every source: whatever brought an event in (a webhook, PutEvents, SNS over
//! HTTP, SQS, a schedule fire, a result passed on to trigd's bus), its matches are counted in
//! `trigd_rule_matches_total`, a payload that cannot be rendered is dead-lettered and counted
//! in `trigd_dead_letters_total`, the event is counted in `trigd_events_received_total`, and it
//! is archived (`--archive`). The SNS and SQS rows live beside their own fixtures
//! (`sns_http.rs`, `aws.rs`) and use the checks here.

use std::path::Path;

use reqwest::Client;
use serde_json::Value;

use crate::harness::{DEADLINE, Daemon, wait_dead_letter, write_rules};

/// The rules of one source kind: `<kind>-ok` (a log target) and `<kind>-bad`, whose template
/// puts the whole event (an object, so with quotes) inside a JSON string: invalid JSON for
/// every event, so every delivery of it is dead-lettered at intake. `trigger` is the rules' `pattern: ...`
/// or `schedule: ...` line.
pub(crate) fn rules(kind: &str, trigger: &str) -> String {
    format!(
        r#"
  - name: {kind}-ok
    {trigger}
    targets: [{{id: t, log: true}}]
  - name: {kind}-bad
    {trigger}
    targets:
      - id: t
        log: true
        input_transformer:
          input_paths: {{e: $}}
          input_template: '{{"e": "<e>"}}'
"#
    )
}

/// The value of the sample `name{labels}` (exactly), or 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until every `(series, value)` holds in `d`'s metrics; fails with the metrics text.
async fn wait_metrics(d: &Daemon, want: &[(String, f64)]) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let text = d.metrics().await;
        let missing: Vec<&(String, f64)> = want
            .iter()
            .filter(|(series, value)| sample(&text, series) != *value)
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never reached {missing:?}:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Checks what the events of kind `kind`, `received` of them from the source labelled
/// `source`, left behind: one match of each of its rules, one delivery of `<kind>-ok`, and one
/// dead letter (file and metric) for `<kind>-bad`.
pub(crate) async fn assert_taken_in(
    d: &Daemon,
    state: &Path,
    kind: &str,
    (source, received): (&str, f64),
) {
    wait_metrics(
        d,
        &[
            (
                format!("trigd_events_received_total{{source=\"{source}\"}}"),
                received,
            ),
            (format!("trigd_rule_matches_total{{rule=\"{kind}-ok\"}}"), 1.0),
            (
                format!("trigd_rule_matches_total{{rule=\"{kind}-bad\"}}"),
                1.0,
            ),
            (
                format!(
                    "trigd_deliveries_total{{rule=\"{kind}-ok\",target=\"t\",outcome=\"delivered\"}}"
                ),
                1.0,
            ),
            (
                format!(
                    "trigd_dead_letters_total{{rule=\"{kind}-bad\",target=\"t\",code=\"INVALID_PARAMETER\"}}"
                ),
                1.0,
            ),
        ],
    )
    .await;
    let bad = format!("{kind}-bad");
    let letter = wait_dead_letter(state, |v| v["rule"] == bad.as_str());
    assert_eq!(letter["error_code"], "INVALID_PARAMETER", "{letter}");
    assert_eq!(letter["attempts"], 0, "never attempted: {letter}");
    let error = letter["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("invalid JSON"), "{letter}");
}

/// After the daemon stopped: the archive under `state` holds exactly one event of each of
/// `sources` (by the event's `source` field), and nothing else.
pub(crate) fn assert_archived(state: &Path, sources: &[&str]) {
    let export = crate::util::run(&["archive", "export", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let mut got: Vec<String> = export
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["source"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "{}", export.stdout);
}

/// How the HTTP and in-process sources hand an event in.
enum Send {
    Webhook(&'static str),
    PutEvents(&'static str),
    /// Fires by itself.
    Schedule,
    /// A webhook event for `feeder`, whose command's result goes to the bus.
    Bus(&'static str),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_source_kind_counts_dead_letters_and_archives_alike() {
    let at = (chrono::Utc::now() + chrono::Duration::seconds(3)).format("%Y-%m-%dT%H:%M:%S");
    // (kind, trigger, how its events come, their `source`: the label they are counted under
    // in `trigd_events_received_total` and the field of the archived events, and how many)
    let schedule = format!("schedule: at({at})");
    let table: [(&str, &str, Send, &str, usize); 4] = [
        (
            "webhook",
            "pattern: {source: [hook]}",
            Send::Webhook("hook"),
            "hook",
            1,
        ),
        (
            "put",
            "pattern: {source: [put]}",
            Send::PutEvents("put"),
            "put",
            1,
        ),
        // Each schedule rule fires on its own: two events.
        ("schedule", &schedule, Send::Schedule, "aws.events", 2),
        (
            "bus",
            "pattern: {source: [trigd], detail-type: [Destination]}",
            Send::Bus("feed"),
            "trigd",
            1,
        ),
    ];
    let mut text = String::from(
        r#"
rules:
  - name: feeder
    pattern: {source: [feed]}
    targets:
      - id: echo
        command: [cat]
        on_success: {bus: true}
"#,
    );
    for (kind, trigger, ..) in &table {
        text.push_str(&rules(kind, trigger));
    }
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    write_rules(&rules_dir, "r.yaml", &text);
    let state = dir.path().join("state");
    let d = Daemon::start(&rules_dir, &state, &["--archive"]);

    let http = Client::new();
    for (_, _, send, ..) in &table {
        let status = match send {
            Send::Webhook(source) | Send::Bus(source) => http
                .post(d.url(&format!("/events/{source}")))
                .body(r#"{"n": 1}"#)
                .send()
                .await
                .unwrap()
                .status(),
            Send::PutEvents(source) => {
                let entry = serde_json::json!({"Source": source, "DetailType": "t", "Detail": "{\"n\": 1}"});
                http.post(d.url("/"))
                    .header("X-Amz-Target", "AWSEvents.PutEvents")
                    .header("Content-Type", "application/x-amz-json-1.1")
                    .body(serde_json::json!({ "Entries": [entry] }).to_string())
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
            Send::Schedule => continue,
        };
        assert_eq!(status, 200);
    }

    for (kind, _, _, source, n) in &table {
        assert_taken_in(&d, &state, kind, (source, *n as f64)).await;
    }
    assert_eq!(d.stop(), 0);
    let mut archived: Vec<&str> = table
        .iter()
        .flat_map(|row| std::iter::repeat_n(row.3, row.4))
        .collect();
    // The feeder's own event, from its webhook.
    archived.push("feed");
    assert_archived(&state, &archived);
}
