//! The command-line contract: each command's output and exit status, on the example rules
//! and on temporary rule directories.

use serde_json::Value;

use crate::util::{root, rules_dir, run, run_in};

const RULE: &str = r#"
rules:
  - name: orders
    pattern:
      source: [shop]
      detail:
        total: [{numeric: [">", 100]}]
    targets:
      - id: big
        log: true
        input_path: $.detail.total
      - id: note
        log: true
        input_transformer:
          input_paths: {id: $.detail.id}
          input_template: '"order <id> is big"'
  - name: tick
    schedule: rate(5 minutes)
    targets: [{id: t, log: true}]
"#;

#[test]
fn check_accepts_the_example_rules() {
    let r = run(&["check", "rules"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("ok: "), "{}", r.stdout);
    let r = run(&["check", "rules", "--format", "json"]);
    assert_eq!(r.code, 0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"errors": []}));
}

#[test]
fn check_exit_codes() {
    let missing = run(&["check", "does/not/exist"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("cannot read does/not/exist"),
        "{}",
        missing.stderr
    );
    let usage = run(&["check"]);
    assert_eq!(usage.code, 2);
    let bad_flag = run(&["check", "rules", "--format", "xml"]);
    assert_eq!(bad_flag.code, 2);
    let dir = rules_dir(&[("r.yaml", "rules: [{name: x}]\n")]);
    let invalid = run_in(dir.path(), &["check", "."], None);
    assert_eq!(invalid.code, 1);
    assert!(
        invalid
            .stderr
            .contains("./r.yaml:1:9: a rule needs a `pattern` or a `schedule`"),
        "{}",
        invalid.stderr
    );
}

#[test]
fn an_empty_directory_is_valid() {
    let dir = rules_dir(&[]);
    let r = run_in(dir.path(), &["check", "."], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("0 rules"));
}

#[test]
fn test_files_are_not_rules_and_nested_dirs_are_read() {
    let dir = rules_dir(&[
        ("team/a/orders.yaml", RULE),
        ("team/a/orders.test.yaml", "tests: []\n"),
        (".hidden/ignored.yaml", "not: [valid"),
        ("README.md", "# not yaml"),
    ]);
    let r = run_in(dir.path(), &["check", "."], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("2 rules (1 pattern, 1 schedule)"),
        "{}",
        r.stdout
    );
}

#[test]
fn match_json_lists_payloads_and_reasons() {
    let dir = rules_dir(&[("r.yaml", RULE)]);
    let ev = r#"{"source":"shop","detail":{"id":"o-1","total":250.5}}"#;
    let r = run_in(
        dir.path(),
        &["match", ".", "--event", "-", "--format", "json"],
        Some(ev),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "matched": [{"rule": "orders", "targets": [
                {"id": "big", "payload": "250.5"},
                {"id": "note", "payload": "\"order o-1 is big\""}
            ]}],
            "unmatched": []
        })
    );
    let small = r#"{"source":"shop","detail":{"id":"o-2","total":"12"}}"#;
    let r = run_in(
        dir.path(),
        &["match", ".", "--event", "-", "--format", "json"],
        Some(small),
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["matched"], serde_json::json!([]));
    assert_eq!(
        v["unmatched"],
        serde_json::json!([{"rule": "orders", "reason": "detail.total: numeric > 100 needs a number, got \"12\" (a string)"}])
    );
}

#[test]
fn match_text_and_files() {
    let r = run(&["match", "rules", "--event", "rules/events/s3-put.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("matched  resize-images\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("  -> notify: {\"text\": \"new upload 2026/cat.jpg in photos\"")
    );
    assert!(
        r.stdout
            .contains("no match main-pushed: source: expected one of [\"github\"], got \"aws.s3\"")
    );
    assert!(
        !r.stdout.contains("heartbeat"),
        "schedule rules are never listed"
    );
}

#[test]
fn match_refuses_bad_events() {
    let dir = rules_dir(&[("r.yaml", RULE)]);
    for (event, why) in [
        ("{\"source\": ", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("\"text\"", "must be a JSON object"),
    ] {
        let r = run_in(dir.path(), &["match", ".", "--event", "-"], Some(event));
        assert_eq!(r.code, 2, "{event}");
        assert!(r.stderr.contains(why), "{event}: {}", r.stderr);
    }
    let r = run_in(dir.path(), &["match", ".", "--event", "missing.json"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("reading missing.json"), "{}", r.stderr);
}

#[test]
fn match_with_invalid_rules_reports_them() {
    let dir = rules_dir(&[(
        "r.yaml",
        "rules: [{name: x, pattern: {a: 1}, targets: [{id: t, log: true}]}]",
    )]);
    let r = run_in(dir.path(), &["match", ".", "--event", "-"], Some("{}"));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("\"a\" must be an object or an array"),
        "{}",
        r.stderr
    );
}

#[test]
fn test_passes_on_the_example_rules() {
    let r = run(&["test", "rules"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let last = r.stdout.lines().last().unwrap();
    assert!(last.ends_with("passed, 0 failed"), "{last}");
    assert!(
        !r.stdout.contains("rules no test exercises"),
        "{}",
        r.stdout
    );
}

#[test]
fn test_reports_failures_with_a_diff_and_exit_1() {
    let tests = r#"
tests:
  - name: big order
    event: {source: shop, detail: {id: o-1, total: 500}}
    expect:
      matched: [orders]
      payloads:
        orders/note: '"order o-1 is huge"'
  - name: small order
    event: {source: shop, detail: {id: o-2, total: 5}}
    expect:
      matched: [orders]
  - name: json payload
    event: {source: shop, detail: {id: o-3, total: 101}}
    expect:
      payloads:
        orders/big: 101
"#;
    let dir = rules_dir(&[("r.yaml", RULE), ("r.test.yaml", tests)]);
    let r = run_in(dir.path(), &["test", "."], None);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("FAIL big order (./r.test.yaml:3)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("    - \"order o-1 is huge\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("    + \"order o-1 is big\""),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("FAIL small order"));
    assert!(r.stdout.contains("matched [], expected [orders]"));
    assert!(
        r.stdout
            .contains("orders did not match: detail.total: expected one of [numeric > 100], got 5")
    );
    assert!(r.stdout.contains("ok   json payload"));
    assert!(r.stdout.contains("rules no test exercises: tick"));
    assert!(
        r.stdout.trim_end().ends_with("1 passed, 2 failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn test_files_are_validated_with_positions() {
    let tests =
        "tests:\n  - name: x\n    event: {source: shop}\n    expect:\n      matched: [ordres]\n";
    let dir = rules_dir(&[("r.yaml", RULE), ("r.test.yaml", tests)]);
    let r = run_in(dir.path(), &["test", "."], None);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("./r.test.yaml:5:17: no rule is named `ordres`; did you mean `orders`?"),
        "{}",
        r.stderr
    );
    let check = run_in(dir.path(), &["check", "."], None);
    assert_eq!(check.code, 1, "check validates tests too");
}

#[test]
fn next_json_is_one_object_per_rule() {
    let r = run(&[
        "next",
        "rules",
        "--after",
        "2026-11-20T12:00:00Z",
        "-n",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"rule": "alarm-clock", "expression": "cron(0 7 ? * MON-FRI *)", "timezone": "America/New_York",
                "fires": ["2026-11-23T12:00:00Z", "2026-11-24T12:00:00Z"]}),
            serde_json::json!({"rule": "heartbeat", "expression": "rate(1 minute)", "timezone": "UTC",
                "fires": ["2026-11-20T12:01:00Z", "2026-11-20T12:02:00Z"]}),
        ]
    );
}

#[test]
fn next_text_flags_dst_changes() {
    let rules = "rules:\n  - name: early\n    schedule: cron(30 1 * * ? *)\n    timezone: America/New_York\n    targets: [{id: t, log: true}]\n";
    let dir = rules_dir(&[("r.yaml", rules)]);
    let r = run_in(
        dir.path(),
        &["next", ".", "--after", "2026-10-31T00:00:00Z", "-n", "3"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "early  cron(30 1 * * ? *)  America/New_York");
    assert_eq!(
        lines[1],
        "  2026-10-31 01:30:00 EDT  (2026-10-31T05:30:00Z)"
    );
    // 01:30 happens twice on 2026-11-01; it fires once, at the first (EDT) occurrence, and
    // the fire is flagged as next to the change.
    assert_eq!(
        lines[2],
        "  2026-11-01 01:30:00 EDT  (2026-11-01T05:30:00Z)  [DST change: UTC-04:00 -> UTC-05:00 on 2026-11-01]"
    );
    assert!(
        lines[3].starts_with("  2026-11-02 01:30:00 EST  (2026-11-02T06:30:00Z)"),
        "{}",
        r.stdout
    );
}

#[test]
fn next_errors() {
    let r = run(&["next", "rules", "--rule", "nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no rule is named `nope`"));
    let r = run(&["next", "rules", "--rule", "resize-images"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("has no schedule"), "{}", r.stderr);
    let r = run(&["next", "rules", "--after", "yesterday"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not an RFC 3339 timestamp"));
}

#[test]
fn schema_matches_the_committed_files() {
    for (kind, file) in [
        ("rules", "schema/rules.schema.json"),
        ("tests", "schema/tests.schema.json"),
    ] {
        let r = run(&["schema", kind]);
        assert_eq!(r.code, 0);
        let printed: Value = serde_json::from_str(&r.stdout).unwrap();
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(root().join(file)).unwrap()).unwrap();
        assert_eq!(
            printed, committed,
            "regenerate with: trigd schema {kind} > {file}"
        );
    }
}

#[test]
fn the_aws_examples_are_valid() {
    let r = run(&["check", "examples/aws"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("7 rules (5 pattern, 2 schedule), 2 sources"),
        "{}",
        r.stdout
    );
}

#[test]
fn check_suggests_the_operator_meant_and_reports_every_problem_of_a_pattern() {
    let dir = rules_dir(&[(
        "r.yaml",
        "rules:
  - name: thumbs
    pattern:
      source: []
      detail:
        key: [{sufix: .jpg}, {anything-but: {prefx: tmp/}}]
    targets: [{id: t, log: true}]
",
    )]);
    let r = run_in(dir.path(), &["check", "."], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let want = [
        "./r.yaml:4:15: invalid pattern at `source`: Empty arrays are not allowed",
        "./r.yaml:6:23: invalid pattern at `detail.key[0].sufix`: Unrecognized match type sufix; did you mean `suffix`?",
        "./r.yaml:6:53: invalid pattern at `detail.key[1].anything-but.prefx`: Unsupported anything-but pattern: prefx; did you mean `prefix`?",
    ];
    for line in want {
        assert!(
            r.stderr.contains(line),
            "{line} missing from:\n{}",
            r.stderr
        );
    }
    assert!(r.stderr.contains("3 problem(s) found"), "{}", r.stderr);
}

#[test]
fn check_warns_of_a_command_not_on_path_and_a_missing_cwd_but_passes() {
    let dir = rules_dir(&[(
        "r.yaml",
        "rules:
  - name: hook
    pattern: {source: [x]}
    targets:
      - id: run
        command: [pyhton3-not-installed, handler.py]
        cwd: ./not-here
",
    )]);
    let r = run_in(dir.path(), &["check", "."], None);
    assert_eq!(r.code, 0, "warnings do not fail the check: {}", r.stderr);
    assert!(r.stdout.starts_with("ok: 1 rules"), "{}", r.stdout);
    for line in [
        "./r.yaml:7:14: warning: `cwd` `./not-here` is not a directory here",
        "./r.yaml:6:19: warning: `pyhton3-not-installed` is not on PATH, so every delivery would fail (NO_RESOURCE)",
    ] {
        assert!(
            r.stderr.contains(line),
            "{line} missing from:\n{}",
            r.stderr
        );
    }
    let r = run_in(dir.path(), &["check", ".", "--format", "json"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["errors"], serde_json::json!([]));
    let warnings = v["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2, "{v}");
    assert_eq!(warnings[1]["line"], 6);
    assert_eq!(warnings[1]["column"], 19);
}

#[test]
fn match_with_source_takes_the_file_as_a_webhook_body_posted_to_that_source() {
    let args = [
        "match",
        "rules",
        "--event",
        "rules/events/github-push.json",
        "--format",
        "json",
    ];
    // The Quick start's body is not an envelope: alone, it matches nothing.
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["matched"], serde_json::json!([]));

    let r = run(&[&args[..], &["--source", "github"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["matched"][0]["rule"], "main-pushed", "{v}");
    assert_eq!(
        v["matched"][0]["targets"][0],
        serde_json::json!({"id": "deploy", "payload": r#"{"sha": "9f1c2e7", "by": "ada"}"#})
    );
    // The Node function gets the whole envelope the daemon would make.
    let summary = &v["matched"][0]["targets"][1];
    assert_eq!(summary["id"], "summary");
    let event: Value = serde_json::from_str(summary["payload"].as_str().unwrap()).unwrap();
    assert_eq!(event["source"], "github");
    assert_eq!(event["detail"]["pusher"]["name"], "ada");

    // Refused as the daemon refuses it: an undeclared source (404 there), a body that is not
    // an object (400 there).
    let r = run(&[&args[..], &["--source", "githb"]].concat());
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("no webhook source is named `githb`; did you mean `github`?"),
        "{}",
        r.stderr
    );
    let r = run_in(
        &root(),
        &["match", "rules", "--event", "-", "--source", "github"],
        Some("[1]"),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("a webhook body must be a JSON object, got an array"),
        "{}",
        r.stderr
    );
    let r = run(&["match", "rules", "--events", "-", "--source", "github"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--source needs --event"), "{}", r.stderr);
}

#[test]
fn match_with_source_makes_the_webhook_envelope() {
    let dir = rules_dir(&[(
        "r.yaml",
        "rules:
  - name: all
    pattern: {detail-type: [Webhook]}
    targets: [{id: t, log: true}]
",
    )]);
    let r = run_in(
        dir.path(),
        &[
            "match", ".", "--event", "-", "--source", "shop", "--format", "json",
        ],
        Some(r#"{"order": 42}"#),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let payload = v["matched"][0]["targets"][0]["payload"].as_str().unwrap();
    let event: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(event["source"], "shop");
    assert_eq!(event["detail-type"], "Webhook");
    assert_eq!(event["detail"], serde_json::json!({"order": 42}));
    assert!(
        event["id"].as_str().is_some_and(|id| id.len() == 36),
        "{event}"
    );
}

#[test]
fn a_schedule_test_at_a_time_the_schedule_never_fires_fails() {
    let rules = "rules:
  - name: alarm
    schedule: cron(0 7 ? * MON-FRI *)
    timezone: America/New_York
    targets: [{id: wake, log: true, input: {message: WAKE UP}}]
  - name: off
    schedule: rate(1 hour)
    enabled: false
    targets: [{id: t, log: true}]
";
    let tests = "tests:
  - name: monday
    schedule: {rule: alarm, time: 2026-11-23T12:00:00Z}
    expect:
      payloads:
        alarm/wake: {message: WAKE UP}
  - name: sunday
    schedule: {rule: alarm, time: 2026-11-22T12:00:00Z}
    expect:
      payloads:
        alarm/wake: {message: WAKE UP}
  - name: disabled
    schedule: {rule: off, time: 2026-11-22T12:00:00Z}
    expect:
      payloads:
        off/t: {}
";
    let dir = rules_dir(&[("r.yaml", rules), ("r.test.yaml", tests)]);
    let r = run_in(dir.path(), &["test", "."], None);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("ok   monday"), "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "FAIL sunday (./r.test.yaml:7)\n      the schedule does not fire at that time \
             (2026-11-22T12:00:00Z (Sun 07:00 EST)); its fires around it are \
             2026-11-20T12:00:00Z (Fri 07:00 EST) and 2026-11-23T12:00:00Z (Mon 07:00 EST)\n"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("the rule is disabled (`enabled: false`): it never fires"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.trim_end().ends_with("1 passed, 2 failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn every_rule_file_example_in_the_readme_passes_check() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .filter(|b| b.lines().any(|l| l == "rules:" || l == "sources:"))
        .collect();
    assert!(blocks.len() >= 4, "{blocks:?}");
    for block in blocks {
        let dir = rules_dir(&[("r.yaml", block)]);
        let r = run_in(dir.path(), &["check", "."], None);
        assert_eq!(r.code, 0, "{block}\n{}", r.stderr);
    }
}

#[tokio::test]
async fn the_heartbeat_appends_one_json_object_per_line() {
    use trigd::rules::{Settings, TargetKind};
    use trigd::targets::{Attempt, Outcome, Targets};
    let set = trigd::config::load_rules(&root().join("rules"), Settings::default()).unwrap();
    let target = &set.rule("heartbeat").unwrap().targets[0];
    let TargetKind::Command { argv, .. } = &target.kind else {
        panic!("the heartbeat runs a command: {:?}", target.kind);
    };
    // The example's own command, writing into a temporary file instead of /tmp's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heartbeat.jsonl");
    let file = file.to_str().unwrap();
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.replace("/tmp/trigd-heartbeat.jsonl", file))
        .collect();
    assert!(argv.iter().any(|a| a.contains(file)), "{argv:?}");
    let kind = TargetKind::Command {
        argv,
        timeout: std::time::Duration::from_secs(30),
        cwd: None,
        env: Vec::new(),
        on_success: None,
        on_failure: None,
    };
    let targets = Targets::new().unwrap();
    for n in 1..=2 {
        // A payload as the heartbeat sends it: compact JSON, no newline.
        let payload = format!(r#"{{"detail-type":"Scheduled Event","n":{n}}}"#);
        let attempt = Attempt {
            delivery_id: "d",
            rule: "heartbeat",
            target: "append",
            event_id: "e",
            attempt: 1,
            payload: &payload,
            event: &payload,
            keep_output: false,
        };
        assert_eq!(targets.deliver(&kind, &attempt).await, Outcome::delivered());
    }
    let text = std::fs::read_to_string(file).unwrap();
    assert_eq!(
        text,
        "{\"detail-type\":\"Scheduled Event\",\"n\":1}\n{\"detail-type\":\"Scheduled Event\",\"n\":2}\n"
    );
}

#[test]
fn next_help_says_which_times_it_shows() {
    let r = run(&["next", "--help"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("in each rule's time zone and in UTC"),
        "{}",
        r.stdout
    );
}
