//! `trigd run` end to end: the real binary, real HTTP on 127.0.0.1, real child processes, the
//! real outbox on disk.

use serde_json::{Value, json};

use crate::harness::{Daemon, Recorder, wait_dead_letter, wait_for, write_rules};

fn http_rule(name: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
rules:
  - name: {name}
    pattern: {{source: [shop]}}
    retry: {{max_attempts: 3, max_event_age: 1h}}
    targets:
      - id: hook
        http: {url}
        timeout: 5s
{extra}
"#
    )
}

pub(crate) async fn post(
    url: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

fn put_events_headers() -> [(&'static str, &'static str); 2] {
    [
        ("X-Amz-Target", "AWSEvents.PutEvents"),
        ("Content-Type", "application/x-amz-json-1.1"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_event_reaches_an_http_target_with_the_envelope() {
    let rec = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(&rules, "r.yaml", &http_rule("orders", &rec.url(), ""));
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);

    let (status, body) = post(&d.url("/events/shop"), r#"{"order": 42}"#, &[]).await;
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = rec.wait_for(1).await;
    let event: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(event["source"], "shop");
    assert_eq!(event["id"], id);
    assert_eq!(event["detail"], json!({"order": 42}));
    assert_eq!(event["detail-type"], "Webhook");
    let headers = rec.bodies.lock().unwrap()[0].1.clone();
    assert!(
        headers.iter().any(|(k, _)| k == "idempotency-key"),
        "{headers:?}"
    );

    let (status, _) = post(&d.url("/events/other"), "{}", &[]).await;
    assert_eq!(
        status, 200,
        "undeclared sources are accepted when none are declared"
    );
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_events_speaks_the_eventbridge_protocol() {
    let rec = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(
        &rules,
        "r.yaml",
        &http_rule("orders", &rec.url(), "        input_path: $.detail"),
    );
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);
    let body = json!({"Entries": [
        {"Source": "shop", "DetailType": "Order Placed", "Detail": "{\"id\": 1}"},
        {"Source": "shop", "DetailType": "Order Placed", "Detail": "not json"},
        {"Source": "other", "DetailType": "X", "Detail": "{}"},
        {"DetailType": "X", "Detail": "{}"}
    ]});
    let (status, text) = post(&d.url("/"), body.to_string(), &put_events_headers()).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["FailedEntryCount"], 2);
    let entries = v["Entries"].as_array().unwrap();
    assert!(entries[0]["EventId"].is_string());
    assert_eq!(entries[1]["ErrorCode"], "InvalidArgument");
    assert!(entries[2]["EventId"].is_string());
    assert_eq!(entries[3]["ErrorMessage"], "Source is required");
    let got = rec.wait_for(1).await;
    assert_eq!(got[0], r#"{"id":1}"#);

    let (status, text) = post(&d.url("/"), "{}", &[("X-Amz-Target", "AWSEvents.PutRule")]).await;
    assert_eq!(status, 400);
    assert!(text.contains("UnknownOperationException"));
    let too_many =
        json!({"Entries": vec![json!({"Source": "s", "DetailType": "d", "Detail": "{}"}); 11]});
    let (status, text) = post(&d.url("/"), too_many.to_string(), &put_events_headers()).await;
    assert_eq!(status, 400);
    assert!(text.contains("ValidationException"), "{text}");
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_clear_4xx_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let text = r#"
sources:
  shop: {webhook: {bearer_token_env: PATH}}
  signed: {webhook: {hmac_secret_env: HOME}}
rules:
  - name: r
    pattern: {source: [shop]}
    targets: [{id: t, log: true}]
"#;
    write_rules(&rules, "r.yaml", text);
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);
    let path = std::env::var("PATH").unwrap();
    let auth = format!("Bearer {path}");
    let ok = [("Authorization", auth.as_str())];
    type Case<'a> = (&'a str, Vec<u8>, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/events/shop",
            b"{\"a\":".to_vec(),
            &ok,
            400,
            "malformed_json",
        ),
        (
            "/events/shop",
            vec![b'{', b'"', 0xff, b'"', b':', b'1', b'}'],
            &ok,
            400,
            "invalid_utf8",
        ),
        ("/events/shop", b"[1,2]".to_vec(), &ok, 400, "not_object"),
        (
            "/events/shop",
            format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200)).into_bytes(),
            &ok,
            400,
            "too_deep",
        ),
        (
            "/events/shop",
            format!("{{\"a\":\"{}\"}}", "x".repeat(300 * 1024)).into_bytes(),
            &ok,
            413,
            "too_large",
        ),
        ("/events/nope", b"{}".to_vec(), &ok, 404, "unknown_source"),
        ("/events/shop", b"{}".to_vec(), &[], 401, "unauthorized"),
        (
            "/events/shop",
            b"{}".to_vec(),
            &[("Authorization", "Bearer wrong")],
            401,
            "unauthorized",
        ),
        (
            "/events/signed",
            b"{}".to_vec(),
            &[("X-Hub-Signature-256", "sha256=00")],
            401,
            "unauthorized",
        ),
    ];
    for (path, body, headers, want, reason) in &cases {
        let (status, text) = post(&d.url(path), body.clone(), headers).await;
        assert_eq!(status, *want, "{path} {reason}: {text}");
        if *want != 413 {
            assert!(text.contains(reason), "{path}: {text}");
        }
    }
    let (status, _) = post(&d.url("/events/shop"), "{\"a\":1}", &ok).await;
    assert_eq!(status, 200);
    let home = std::env::var("HOME").unwrap();
    let sig = {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(home.as_bytes()).unwrap();
        mac.update(b"{\"b\":2}");
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let (status, text) = post(
        &d.url("/events/signed"),
        "{\"b\":2}",
        &[("X-Hub-Signature-256", &sig)],
    )
    .await;
    assert_eq!(status, 200, "{text}");

    let (_, metrics) = get(&d.url("/metrics")).await;
    for reason in [
        "malformed_json",
        "invalid_utf8",
        "not_object",
        "too_deep",
        "too_large",
        "unknown_source",
    ] {
        assert!(
            metrics.contains(&format!("reason=\"{reason}\"")),
            "{reason} not counted:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("trigd_events_received_total{source=\"shop\"} 1"),
        "{metrics}"
    );
    let (status, body) = get(&d.url("/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_then_delivers_and_dead_letters_what_cannot_succeed() {
    // 500, 503 then 200 for the first event; the second event's target says 400.
    let rec = Recorder::start(vec![500, 503]).await;
    let bad = Recorder::start(vec![400, 400, 400]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let text = format!(
        "{}\n  - name: refused\n    pattern: {{source: [refuse]}}\n    targets:\n      - id: hook\n        http: {}\n",
        http_rule("orders", &rec.url(), "").trim_end(),
        bad.url()
    );
    write_rules(&rules, "r.yaml", &text);
    let state = dir.path().join("state");
    let d = Daemon::start(&rules, &state, &[]);
    assert_eq!(post(&d.url("/events/shop"), "{\"n\":1}", &[]).await.0, 200);
    assert_eq!(
        post(&d.url("/events/refuse"), "{\"n\":2}", &[]).await.0,
        200
    );
    rec.wait_for(1).await;
    d.wait_log("the retry warning", |v| {
        v["message"] == "Delivery failed, will retry." && v["attempt"] == 2
    });

    let record = wait_dead_letter(&state, |_| true);
    assert_eq!(record["rule"], "refused");
    assert_eq!(record["error_code"], "INVALID_PARAMETER");
    assert_eq!(record["attempts"], 1);
    assert!(
        record["last_error"].as_str().unwrap().contains("400"),
        "{record}"
    );
    assert_eq!(record["exhausted_retry_condition"], Value::Null);

    // The CLI sees it while the daemon runs, and redrive puts it back.
    let list = crate::util::run(&["dlq", "list", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains("refused/hook"), "{}", list.stdout);
    let id = record["id"].as_str().unwrap();
    let show = crate::util::run(&["dlq", "show", id, "--state-dir", state.to_str().unwrap()]);
    assert!(show.stdout.contains("\"payload\""), "{}", show.stdout);
    let redrive = crate::util::run(&["dlq", "redrive", id, "--state-dir", state.to_str().unwrap()]);
    assert_eq!(redrive.code, 0, "{}", redrive.stderr);
    assert!(redrive.stdout.contains("redrove 1"));
    // Redriven, it meets the target's next answer, 400 again, and is dead-lettered again.
    wait_for("the redriven delivery to fail again", || {
        let log = d.log.lock().unwrap();
        let n = log
            .iter()
            .filter(|v| v["message"] == "Delivery dead-lettered." && v["rule"] == "refused")
            .count();
        (n >= 2).then_some(())
    });
    let (_, metrics) = get(&d.url("/metrics")).await;
    assert!(
        metrics.contains(
            "trigd_dead_letters_total{rule=\"refused\",target=\"hook\",code=\"INVALID_PARAMETER\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "trigd_deliveries_total{rule=\"orders\",target=\"hook\",outcome=\"delivered\"} 1"
        ),
        "{metrics}"
    );
    // Every write above was committed (and fsync'd): the commits are counted.
    let commits: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("trigd_outbox_commits_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(commits >= 2.0, "{metrics}");
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exhausted_retries_record_the_condition() {
    let rec = Recorder::start(vec![429, 429, 429, 429]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let text = http_rule("orders", &rec.url(), "").replace("max_attempts: 3", "max_attempts: 1");
    write_rules(&rules, "r.yaml", &text);
    let state = dir.path().join("state");
    let d = Daemon::start(&rules, &state, &[]);
    assert_eq!(post(&d.url("/events/shop"), "{}", &[]).await.0, 200);
    let record = wait_dead_letter(&state, |_| true);
    assert_eq!(record["exhausted_retry_condition"], "MaximumRetryAttempts");
    assert_eq!(record["error_code"], "THROTTLING");
    assert_eq!(record["attempts"], 2);
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn command_target_gets_the_payload_on_stdin_and_its_env() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let rules = dir.path().join("rules");
    let text = format!(
        r#"
rules:
  - name: run-it
    pattern: {{source: [shop]}}
    targets:
      - id: script
        command: [sh, -c, 'cat > "$0.tmp" && echo "$TRIGD_RULE $TRIGD_TARGET $TRIGD_ATTEMPT" >> "$0.tmp" && mv "$0.tmp" "$0"', {out}]
        input_transformer:
          input_paths: {{n: $.detail.n}}
          input_template: '"order <n>"'
"#,
        out = out.display()
    );
    write_rules(&rules, "r.yaml", &text);
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);
    assert_eq!(post(&d.url("/events/shop"), "{\"n\":7}", &[]).await.0, 200);
    let got = wait_for("the command's output", || {
        std::fs::read_to_string(&out).ok()
    });
    assert_eq!(got, "\"order 7\"run-it script 1\n");
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_swaps_good_rules_and_keeps_the_old_ones_on_errors() {
    let rec = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(&rules, "r.yaml", &http_rule("orders", &rec.url(), ""));
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);

    // A bad file: refused, the old rules keep routing.
    write_rules(
        &rules,
        "broken.yaml",
        "rules: [{name: x, pattern: {a: 1}, targets: [{id: t, log: true}]}]\n",
    );
    d.wait_log("the refused reload", |v| {
        v["message"] == "Reload refused; the previous rules keep running."
    });
    assert_eq!(post(&d.url("/events/shop"), "{}", &[]).await.0, 200);
    rec.wait_for(1).await;

    // Fixed, and a new rule added: reloaded on the file change.
    std::fs::remove_file(rules.join("broken.yaml")).unwrap();
    write_rules(
        &rules,
        "more.yaml",
        &http_rule("more", &rec.url(), "").replace("[shop]", "[bakery]"),
    );
    d.wait_log("the reload", |v| {
        v["message"] == "Rules reloaded." && v["rules"] == 2
    });
    assert_eq!(post(&d.url("/events/bakery"), "{}", &[]).await.0, 200);
    rec.wait_for(2).await;

    // SIGHUP reloads too.
    d.hup();
    d.wait_log("the SIGHUP reload", |v| {
        v["message"] == "Rules reloaded." && v["reason"] == "SIGHUP"
    });
    let (_, metrics) = get(&d.url("/metrics")).await;
    assert!(
        metrics.contains("trigd_reloads_total{result=\"failure\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trigd_reloads_total{result=\"success\"}"),
        "{metrics}"
    );
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_says_which_trigd_yaml_changes_wait_for_a_restart_and_applies_the_rules() {
    let rec = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(&rules, "r.yaml", &http_rule("orders", &rec.url(), ""));
    let config = dir.path().join("trigd.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:8787\ngrace_period: 5s\n").unwrap();
    let d = Daemon::start(
        &rules,
        &dir.path().join("state"),
        &["--config", config.to_str().unwrap()],
    );

    // Unchanged settings: a plain success.
    d.hup();
    d.wait_log("the first reload", |v| v["message"] == "Rules reloaded.");

    // The region and the grace period changed, and a rule was added: the rule applies now,
    // the settings after a restart, and the reload says so. The listen address changed too,
    // but `--listen` overrides it, so a restart would not apply it either.
    std::fs::write(
        &config,
        "listen: 127.0.0.1:8788\ngrace_period: 9s\nregion: eu-west-2\n",
    )
    .unwrap();
    write_rules(
        &rules,
        "more.yaml",
        &http_rule("more", &rec.url(), "").replace("[shop]", "[bakery]"),
    );
    d.wait_log("the reload of the new rule", |v| {
        v["message"] == "Rules reloaded." && v["rules"] == 2
    });
    d.hup();
    let warned = d.wait_log("the restart warning", |v| {
        v["message"] == "trigd.yaml changed; these settings take effect only after a restart."
    });
    assert_eq!(warned["settings"], "region, grace_period");
    assert_eq!(post(&d.url("/events/bakery"), "{}", &[]).await.0, 200);
    rec.wait_for(1).await;

    // An invalid trigd.yaml refuses the reload whole.
    std::fs::write(&config, "listen: nowhere\n").unwrap();
    d.hup();
    let refused = d.wait_log("the refused reload", |v| {
        v["message"] == "Reload refused; the previous rules keep running."
    });
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("`listen` must be"),
        "{refused}"
    );
    let (_, metrics) = get(&d.url("/metrics")).await;
    assert!(
        metrics.contains("trigd_reloads_total{result=\"success\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("trigd_reloads_total{result=\"restart_needed\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("trigd_reloads_total{result=\"failure\"} 1\n"),
        "{metrics}"
    );
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_deliveries_survive_a_restart() {
    // The target is down: the delivery waits in the outbox across a clean stop.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let url = format!("http://{addr}/hook");
    write_rules(
        &rules,
        "r.yaml",
        &http_rule("orders", &url, "").replace("max_attempts: 3", "max_attempts: 185"),
    );
    let state = dir.path().join("state");
    let d = Daemon::start(&rules, &state, &[]);
    assert_eq!(
        post(&d.url("/events/shop"), "{\"keep\":1}", &[]).await.0,
        200
    );
    d.wait_log("a failed attempt", |v| {
        v["message"] == "Delivery failed, will retry."
    });
    assert_eq!(d.stop(), 0);

    // The target comes back on the same port; a restarted daemon delivers.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let rec = Recorder::serve(listener, vec![]);
    let d = Daemon::start(&rules, &state, &[]);
    let got = rec.wait_for(1).await;
    assert!(got[0].contains("\"keep\":1"), "{got:?}");
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_shot_schedule_fires_its_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fired.json");
    let rules = dir.path().join("rules");
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).format("%Y-%m-%dT%H:%M:%S");
    let text = format!(
        "rules:\n  - name: once\n    schedule: at({at})\n    targets:\n      - id: w\n        command: [sh, -c, 'cat > \"$0\"', {}]\n",
        out.display()
    );
    write_rules(&rules, "r.yaml", &text);
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);
    let got = wait_for("the schedule's event", || {
        std::fs::read_to_string(&out).ok().filter(|s| !s.is_empty())
    });
    let event: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert_eq!(
        event["resources"],
        json!(["arn:aws:events:us-east-1:123456789012:rule/once"])
    );
    assert_eq!(event["detail"], json!({}));
    let (_, metrics) = get(&d.url("/metrics")).await;
    assert!(
        metrics.contains("trigd_schedule_fires_total{rule=\"once\"} 1"),
        "{metrics}"
    );
    assert_eq!(d.stop(), 0);
}

#[test]
fn configuration_errors_exit_64_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(
        &rules,
        "r.yaml",
        "rules: [{name: x, pattern: {a: 1}, targets: [{id: t, log: true}]}]\n",
    );
    let run = crate::util::run(&["run", rules.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(run.code, 64, "{}", run.stderr);
    assert!(run.stderr.contains("r.yaml:1:"), "{}", run.stderr);
    let config = dir.path().join("trigd.yaml");
    std::fs::write(&config, "listen: nowhere\nstate_dri: /tmp\n").unwrap();
    write_rules(&rules, "r.yaml", "rules: []\n");
    let run = crate::util::run(&[
        "run",
        rules.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 64, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("trigd.yaml:1:9: `listen` must be an address"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `state_dir`?"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archived_events_export_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(
        &rules,
        "r.yaml",
        "rules:\n  - name: big\n    pattern: {detail: {n: [{numeric: [\">\", 2]}]}}\n    targets: [{id: t, log: true}]\n",
    );
    let state = dir.path().join("state");
    let d = Daemon::start(&rules, &state, &["--archive"]);
    for n in 0..5 {
        let (status, _) = post(
            &d.url("/events/shop"),
            format!("{{\"n\":{n},\"secret\":false}}"),
            &[("Authorization", "Bearer hunter2")],
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(d.stop(), 0);

    let out = dir.path().join("day.jsonl");
    let export = crate::util::run(&[
        "archive",
        "export",
        "--state-dir",
        state.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    assert!(
        export.stderr.contains("exported 5 event(s)"),
        "{}",
        export.stderr
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("hunter2"), "headers are never archived");
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 5);
    assert_eq!(events[3]["detail"]["n"], 3);
    assert_eq!(events[3]["source"], "shop");

    let replay = crate::util::run(&[
        "match",
        rules.to_str().unwrap(),
        "--events",
        out.to_str().unwrap(),
        "--format",
        "summary",
    ]);
    assert_eq!(replay.code, 0, "{}", replay.stderr);
    let summary: Value = serde_json::from_str(replay.stdout.trim()).unwrap();
    assert_eq!(summary["events"], 5);
    assert_eq!(summary["matches"]["big"], 2);

    let none = crate::util::run(&[
        "archive",
        "export",
        "--state-dir",
        state.to_str().unwrap(),
        "--since",
        "2999-01-01T00:00:00Z",
    ]);
    assert_eq!(none.code, 0);
    assert!(none.stdout.is_empty());
}

#[test]
fn it_speaks_systemds_notify_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(crate::harness::DEADLINE))
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let rules = dir.path().join("rules");
    write_rules(&rules, "r.yaml", "rules: []\n");
    let d = Daemon::start_with_env(
        &rules,
        &dir.path().join("state"),
        &[],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    // The watchdog interval is 100 ms, so pings interleave with the states.
    let mut seen = Vec::new();
    let next_state = |seen: &mut Vec<String>| loop {
        let m = recv();
        seen.push(m.clone());
        if m != "WATCHDOG=1" {
            return m;
        }
    };
    assert_eq!(next_state(&mut seen), "READY=1");
    d.hup();
    assert_eq!(next_state(&mut seen), "RELOADING=1");
    assert_eq!(next_state(&mut seen), "READY=1");
    // The watchdog pings every 100 ms (half of WATCHDOG_USEC).
    while recv() != "WATCHDOG=1" {}
    seen.push("WATCHDOG=1".to_owned());
    let pid = rustix::process::Pid::from_raw(d.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(next_state(&mut seen), "STOPPING=1");
    assert!(
        seen.iter().any(|m| m == "WATCHDOG=1"),
        "watchdog pings: {seen:?}"
    );
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_posts_an_envelope_through_put_events() {
    let rec = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let text = format!(
        "rules:\n  - name: s3\n    pattern: {{source: [aws.s3], detail: {{object: {{key: [{{suffix: .jpg}}]}}}}}}\n    targets:\n      - id: hook\n        http: {}\n        input_path: $.detail.object.key\n",
        rec.url()
    );
    write_rules(&rules, "r.yaml", &text);
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);
    let url = format!("http://{}", d.addr);
    let event = crate::util::root().join("rules/events/s3-put.json");
    let sent = crate::util::run(&["send", event.to_str().unwrap(), "--url", &url]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert_eq!(
        sent.stdout.trim().len(),
        36,
        "prints the event id: {}",
        sent.stdout
    );
    assert_eq!(rec.wait_for(1).await, vec!["\"2026/cat.jpg\"".to_owned()]);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"detail\": {}}").unwrap();
    let refused = crate::util::run(&["send", bad.to_str().unwrap(), "--url", &url]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("needs `source` and `detail-type`"),
        "{}",
        refused.stderr
    );
    assert_eq!(d.stop(), 0);
}

/// A target that never answers holds up only its own lane: another rule's target, fed by the
/// same events, gets every delivery, and the stuck target never has more requests open than
/// its `concurrency`. The stuck deliveries wait in the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_target_slows_only_itself() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Accepts connections, reads nothing back, answers nothing, keeps them open.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_addr = stuck.local_addr().unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&opened);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = stuck.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    let rec = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(
        &rules,
        "r.yaml",
        &format!(
            r#"
rules:
  - name: stuck
    pattern: {{source: [shop]}}
    targets:
      - {{id: hook, http: "http://{stuck_addr}/", timeout: 15m, concurrency: 2}}
  - name: fast
    pattern: {{source: [shop]}}
    targets:
      - {{id: hook, http: "{}", concurrency: 4}}
"#,
            rec.url()
        ),
    );
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);
    let events = 100;
    for n in 0..events {
        let (status, _) = post(&d.url("/events/shop"), format!(r#"{{"n":{n}}}"#), &[]).await;
        assert_eq!(status, 200);
    }
    wait_for("every delivery to the fast target", || {
        (rec.bodies.lock().unwrap().len() >= events).then_some(())
    });
    assert_eq!(rec.bodies.lock().unwrap().len(), events);
    let metrics = d.metrics().await;
    assert!(
        metrics.contains(
            "trigd_deliveries_total{rule=\"fast\",target=\"hook\",outcome=\"delivered\"} 100"
        ),
        "{metrics}"
    );
    let opened = opened.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&opened),
        "{opened} connections to the stuck target"
    );
    // The stuck target's deliveries are all still waiting, none lost, none attempted twice.
    assert!(
        !metrics.contains("trigd_deliveries_total{rule=\"stuck\""),
        "{metrics}"
    );
    d.kill();
}

/// Sends a request with a body of `size` bytes the way Python's urllib does (all of it before
/// reading anything), and returns the status line of the answer.
fn send_all_then_read(addr: std::net::SocketAddr, size: usize, chunked: bool) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(crate::harness::DEADLINE))
        .unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {size}")
    };
    let head = format!("POST /events/shop HTTP/1.1\r\nHost: trigd\r\n{framing}\r\n\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    let mut body = vec![b'{'];
    body.resize(size, b' ');
    if chunked {
        for piece in body.chunks(64 * 1024) {
            conn.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .unwrap();
            conn.write_all(piece).expect("the whole body is read");
            conn.write_all(b"\r\n").unwrap();
        }
        conn.write_all(b"0\r\n\r\n").unwrap();
    } else {
        conn.write_all(&body).expect("the whole body is read");
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).expect("the answer is readable");
        assert!(n > 0, "closed before the answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_a_too_large_body_whole_before_reading_sees_the_413() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(
        &rules,
        "r.yaml",
        "rules:\n  - {name: r, pattern: {source: [shop]}, targets: [{id: t, log: true}]}\n",
    );
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);
    let addr = d.addr;
    // 48 times the limit, and more than the socket buffers hold (here 2 MiB fit in them and
    // 8 MiB did not), so the daemon must read it for the client to get to the answer.
    for chunked in [false, true] {
        let status =
            tokio::task::spawn_blocking(move || send_all_then_read(addr, 12 << 20, chunked))
                .await
                .unwrap();
        assert_eq!(
            status, "HTTP/1.1 413 Payload Too Large",
            "chunked: {chunked}"
        );
    }
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_delivery_outcome_is_logged_with_its_ids_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(
        &rules,
        "r.yaml",
        r#"
rules:
  - name: quiet
    pattern: {source: [quiet]}
    targets:
      - {id: run, command: [sh, -c, 'cat; echo said-on-stderr >&2']}
  - name: loud
    pattern: {source: [loud]}
    targets:
      - {id: run, command: [sh, -c, 'cat; echo said-on-stderr >&2'], log_output: true}
  - name: broken
    pattern: {source: [broken]}
    retry: {max_attempts: 0}
    targets:
      - {id: run, command: [sh, -c, 'echo it broke >&2; exit 3']}
"#,
    );
    let d = Daemon::start(&rules, &dir.path().join("state"), &[]);
    // A success without `log_output` is delivered (counted) ...
    assert_eq!(post(&d.url("/events/quiet"), "{}", &[]).await.0, 200);
    let deadline = tokio::time::Instant::now() + crate::harness::DEADLINE;
    while !d
        .metrics()
        .await
        .contains("trigd_deliveries_total{rule=\"quiet\",target=\"run\",outcome=\"delivered\"} 1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "quiet not delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // ... and one with it is logged at info, with what the command printed.
    assert_eq!(post(&d.url("/events/loud"), r#"{"n":7}"#, &[]).await.0, 200);
    let line = d.wait_log("the loud delivery", |v| {
        v["message"] == "Delivered." && v["rule"] == "loud"
    });
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["target"], "run");
    assert_eq!(line["attempt"], 1);
    assert!(
        line["delivery_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{line}"
    );
    assert!(line["duration_ms"].is_u64(), "{line}");
    assert!(
        line["stdout"]
            .as_str()
            .unwrap()
            .contains(r#""detail":{"n":7}"#),
        "{line}"
    );
    assert_eq!(line["stderr"], "said-on-stderr\n");
    // The quiet one was delivered before the loud one was sent: its line would be earlier.
    assert!(
        !d.log
            .lock()
            .unwrap()
            .iter()
            .any(|v| v["message"] == "Delivered." && v["rule"] == "quiet"),
        "a success without log_output is not logged at info"
    );

    // A failure is logged at the default level with the same identification.
    assert_eq!(post(&d.url("/events/broken"), "{}", &[]).await.0, 200);
    let line = d.wait_log("the broken delivery", |v| {
        v["message"] == "Delivery dead-lettered." && v["rule"] == "broken"
    });
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(
        line["delivery_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{line}"
    );
    assert!(line["duration_ms"].is_u64(), "{line}");
    assert!(
        line["error"].as_str().unwrap().contains("it broke"),
        "{line}"
    );
    assert_eq!(d.stop(), 0);
}

/// A `request: true` webhook keeps the request: a GitHub push can be routed on its
/// `X-GitHub-Event` header, and method, path, query and a non-JSON body arrive too, with the
/// authorization and signature headers left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_with_request_true_keeps_the_request() {
    let rec = Recorder::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(
        &rules,
        "r.yaml",
        &format!(
            "sources:\n  github:\n    webhook: {{request: true, bearer_token_env: GH_TOKEN}}\n  plain:\n    webhook: {{}}\nrules:\n  - name: pushes\n    pattern: {{source: [github], detail: {{headers: {{x-github-event: [push]}}}}}}\n    targets: [{{id: t, http: \"{}\"}}]\n  - name: plain\n    pattern: {{source: [plain]}}\n    targets: [{{id: t, http: \"{}\"}}]\n",
            rec.url(),
            rec.url()
        ),
    );
    let d = Daemon::start_with_env(
        &rules,
        &dir.path().join("state"),
        &[],
        &[("GH_TOKEN", "s3cret")],
    );
    let auth = [
        ("authorization", "Bearer s3cret"),
        ("x-github-event", "push"),
        ("x-hub-signature-256", "sha256=abc"),
    ];
    let (status, body) = post(
        &d.url("/events/github?ref=main&tag=a&tag=b"),
        r#"{"after": "9f1c2e7"}"#,
        &auth,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Another event type does not match the rule; a body that is not JSON is kept as text.
    let issue = [
        ("authorization", "Bearer s3cret"),
        ("x-github-event", "issues"),
    ];
    assert_eq!(
        post(&d.url("/events/github"), "not json", &issue).await.0,
        200
    );
    let got = rec.wait_for(1).await;
    let event: Value = serde_json::from_str(&got[0]).unwrap();
    let detail = &event["detail"];
    assert_eq!(detail["method"], "POST");
    assert_eq!(detail["path"], "/events/github");
    assert_eq!(detail["query"], json!({"ref": "main", "tag": "a,b"}));
    assert_eq!(detail["body"], json!({"after": "9f1c2e7"}));
    assert_eq!(detail["headers"]["x-github-event"], "push");
    assert!(detail["headers"].get("authorization").is_none(), "{detail}");
    assert!(
        detail["headers"].get("x-hub-signature-256").is_none(),
        "{detail}"
    );
    // Authentication still applies, and a source without `request` keeps the body only.
    assert_eq!(post(&d.url("/events/github"), "{}", &[]).await.0, 401);
    assert_eq!(
        post(&d.url("/events/plain"), r#"{"n": 1}"#, &[]).await.0,
        200
    );
    let got = rec.wait_for(2).await;
    let plain: Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(plain["detail"], json!({"n": 1}));
    assert_eq!(rec.count(), 2, "the `issues` event matched nothing");
    assert_eq!(d.stop(), 0);
}
