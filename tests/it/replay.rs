//! Replays and reviews: `trigd match --events` over files of recorded events, and `trigd diff`
//! of two rule sets over them.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::util::{Run, root, rules_dir, run, run_in, trigd};

/// Runs `trigd args...` in `cwd` with `input` on standard input, written from another thread
/// so that a large input cannot deadlock against a full output pipe.
fn run_piped(cwd: &Path, args: &[&str], input: Vec<u8>) -> std::io::Result<Run> {
    let mut child = trigd()
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| std::io::Error::other("the stdin writer panicked"))??;
    Ok(out.into())
}

/// Rules over the generated events; the test computes what each should match.
const GEN_RULES: &str = r#"
rules:
  - name: sevens
    pattern: {source: [gen], detail: {kind: [k0]}}
    targets: [{id: t, log: true}]
  - name: big
    pattern:
      detail:
        n: [{numeric: [">", 3000]}]
    targets: [{id: t, log: true}]
  - name: k1-prefix
    pattern: {detail: {kind: [{prefix: k1}]}}
    targets: [{id: t, log: true}]
  - name: tick
    schedule: rate(5 minutes)
    targets: [{id: t, log: true}]
  - name: red-or-small
    pattern:
      $or:
        - detail: {n: [{numeric: ["<", 10]}]}
        - detail: {tags: [red], kind: [k2]}
    targets: [{id: t, log: true}]
  - name: off
    enabled: false
    pattern: {source: [gen]}
    targets: [{id: t, log: true}]
  - name: everything
    pattern: {source: [gen]}
    targets: [{id: t, log: true}]
"#;

/// The pattern rules of [`GEN_RULES`], in rule order.
const GEN_PATTERN_RULES: [&str; 6] = [
    "sevens",
    "big",
    "k1-prefix",
    "red-or-small",
    "off",
    "everything",
];

/// Event `i` of the generated file, in two layouts (compact, and spaced with keys reordered).
fn gen_event(i: usize) -> String {
    let kind = format!("k{}", i % 13);
    let tags = if i.is_multiple_of(3) {
        r#"["red","blue"]"#
    } else {
        r#"["blue"]"#
    };
    if i.is_multiple_of(2) {
        format!(
            r#"{{"source":"gen","time":"2026-01-01T00:00:00Z","detail":{{"n":{i},"kind":"{kind}","tags":{tags}}}}}"#
        )
    } else {
        format!(
            r#"{{ "detail": {{ "tags": {tags}, "kind": "{kind}", "n": {i} }}, "source": "gen" }}"#
        )
    }
}

/// What event `i` matches, in rule order.
fn gen_expected(i: usize) -> Vec<&'static str> {
    let kind = format!("k{}", i % 13);
    let mut out = Vec::new();
    if kind == "k0" {
        out.push("sevens");
    }
    if i > 3000 {
        out.push("big");
    }
    if kind.starts_with("k1") {
        out.push("k1-prefix");
    }
    if i < 10 || (i.is_multiple_of(3) && kind == "k2") {
        out.push("red-or-small");
    }
    out.push("everything");
    out
}

const GEN_EVENTS: usize = 4000;

/// The generated file's text (a blank line after every 97th event), and each event's line.
fn gen_file() -> (String, Vec<u64>) {
    let mut text = String::new();
    let mut lines = Vec::new();
    let mut line = 0u64;
    for i in 0..GEN_EVENTS {
        text.push_str(&gen_event(i));
        text.push('\n');
        line += 1;
        lines.push(line);
        if i % 97 == 96 {
            text.push('\n');
            line += 1;
        }
    }
    (text, lines)
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn gzip(text: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text)?;
    gz.finish()
}

/// Checks a jsonl replay of the generated file: one line per event, in input order, each with
/// what the event should match.
fn check_gen_jsonl(stdout: &str, lines: &[u64]) {
    let out = json_lines(stdout);
    assert_eq!(out.len(), GEN_EVENTS);
    let mut previous = 0;
    for (i, v) in out.iter().enumerate() {
        let Some(line) = v["line"].as_u64() else {
            panic!("no line number: {v}");
        };
        assert!(
            line > previous,
            "line numbers increase: {line} after {previous}"
        );
        previous = line;
        assert_eq!(line, lines[i], "event {i} is on line {}", lines[i]);
        assert_eq!(v["matched"], json!(gen_expected(i)), "event {i}");
    }
}

#[test]
fn summary_counts_equal_the_per_event_results_in_input_order() {
    let dir = rules_dir(&[("r.yaml", GEN_RULES)]);
    let (text, lines) = gen_file();
    std::fs::write(dir.path().join("events.jsonl"), &text).unwrap();

    let jsonl = run_in(
        dir.path(),
        &["match", ".", "--events", "events.jsonl"],
        None,
    );
    assert_eq!(jsonl.code, 0, "{}", jsonl.stderr);
    assert_eq!(jsonl.stderr, "");
    check_gen_jsonl(&jsonl.stdout, &lines);

    let summary = run_in(
        dir.path(),
        &[
            "match",
            ".",
            "--events",
            "events.jsonl",
            "--format",
            "summary",
        ],
        None,
    );
    assert_eq!(summary.code, 0, "{}", summary.stderr);
    let v: Value = serde_json::from_str(&summary.stdout).unwrap();
    let mut counts = serde_json::Map::new();
    for name in GEN_PATTERN_RULES {
        let n = json_lines(&jsonl.stdout)
            .iter()
            .filter(|l| l["matched"].as_array().unwrap().contains(&json!(name)))
            .count();
        counts.insert(name.to_owned(), json!(n));
    }
    assert_eq!(
        v,
        json!({"events": GEN_EVENTS, "errors": 0, "matches": counts})
    );
    let keys: Vec<&str> = v["matches"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, GEN_PATTERN_RULES, "every pattern rule, in rule order");
    assert_eq!(v["matches"]["off"], 0, "disabled rules never match");
    assert_eq!(v["matches"]["everything"], GEN_EVENTS);
}

#[test]
fn gzip_input_is_read_transparently() {
    let dir = rules_dir(&[("r.yaml", GEN_RULES)]);
    let (text, lines) = gen_file();
    // Two gzip members, as `cat a.gz b.gz` makes.
    let (a, b) = text.split_at(text.len() / 2);
    let mut gz = gzip(a.as_bytes()).unwrap();
    gz.extend(gzip(b.as_bytes()).unwrap());
    std::fs::write(dir.path().join("events.jsonl.gz"), &gz).unwrap();
    // Without the suffix, the magic bytes tell.
    std::fs::write(dir.path().join("events.log"), &gz).unwrap();
    for file in ["events.jsonl.gz", "events.log"] {
        let r = run_in(dir.path(), &["match", ".", "--events", file], None);
        assert_eq!(r.code, 0, "{file}: {}", r.stderr);
        check_gen_jsonl(&r.stdout, &lines);
    }
    // A `.gz` name that is not gzip is an error, not garbage.
    std::fs::write(dir.path().join("plain.gz"), &text).unwrap();
    let r = run_in(dir.path(), &["match", ".", "--events", "plain.gz"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot read plain.gz"), "{}", r.stderr);
}

#[test]
fn stdin_input() {
    let dir = rules_dir(&[("r.yaml", GEN_RULES)]);
    let (text, lines) = gen_file();
    let r = run_piped(
        dir.path(),
        &["match", ".", "--events", "-"],
        text.into_bytes(),
    )
    .unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    check_gen_jsonl(&r.stdout, &lines);
    let r = run_in(
        dir.path(),
        &["match", ".", "--events", "-", "--format", "summary"],
        Some(""),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap(),
        json!({"events": 0, "errors": 0, "matches": {"sevens": 0, "big": 0, "k1-prefix": 0,
            "red-or-small": 0, "off": 0, "everything": 0}})
    );
}

#[test]
fn malformed_lines_are_counted_and_reported_and_the_run_goes_on() {
    let dir = rules_dir(&[("r.yaml", GEN_RULES)]);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"{\"source\":\"gen\",\"detail\":{\"n\":1}}\n");
    bytes.extend_from_slice(b"{\"source\": \n");
    bytes.extend_from_slice(b"[1, 2]\n");
    bytes.extend_from_slice(b"\"text\"\n");
    bytes.extend_from_slice(b"{\"source\":\"\xff\xfe\"}\n");
    bytes.extend_from_slice(b"   \n");
    bytes.extend_from_slice(b"{\"source\":\"gen\"} trailing\n");
    bytes.extend_from_slice(b"{\"source\":\"gen\",\"detail\":{\"n\":5000}}");
    std::fs::write(dir.path().join("events.jsonl"), &bytes).unwrap();

    let r = run_in(
        dir.path(),
        &["match", ".", "--events", "events.jsonl"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        json_lines(&r.stdout),
        vec![
            json!({"line": 1, "matched": ["red-or-small", "everything"]}),
            json!({"line": 8, "matched": ["big", "everything"]}),
        ]
    );
    assert_eq!(
        r.stderr,
        "line 2: invalid JSON at byte 11: expected a value\n\
         line 3: invalid JSON at byte 0: an event must be a JSON object\n\
         line 4: invalid JSON at byte 0: an event must be a JSON object\n\
         line 5: not valid UTF-8 (byte 11)\n\
         line 7: invalid JSON at byte 17: trailing characters after the event\n"
    );

    let r = run_in(
        dir.path(),
        &[
            "match",
            ".",
            "--events",
            "events.jsonl",
            "--format",
            "summary",
        ],
        None,
    );
    assert_eq!(r.code, 0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["events"], 2);
    assert_eq!(v["errors"], 5);
    assert_eq!(v["matches"]["everything"], 2);
}

const PAYLOAD_RULES: &str = r#"
rules:
  - name: orders
    pattern: {source: [shop]}
    targets:
      - id: whole
        log: true
      - id: total
        log: true
        input_path: $.detail.total
      - id: note
        log: true
        input_transformer:
          input_paths: {id: $.detail.id, rule: $.detail.id}
          input_template: '{"text": "order <id>", "rule": <aws.events.rule-name>, "at": <aws.events.event.ingestion-time>}'
      - id: fixed
        log: true
        input: {kind: order}
  - name: gone
    enabled: false
    pattern: {source: [shop]}
    targets: [{id: t, log: true}]
"#;

#[test]
fn payloads_are_the_strings_match_event_renders() {
    let dir = rules_dir(&[("r.yaml", PAYLOAD_RULES)]);
    let events = [
        r#"{"source":"shop","time":"2026-11-23T10:00:00Z","detail":{"id":"o-1","total":250.5}}"#,
        r#"{ "source" : "shop", "time": "2026-11-23T11:00:00Z", "detail": { "id": "o-\u00e9" } }"#,
        r#"{"source":"other"}"#,
    ];
    let text = events.join("\n");
    let r = run_in(
        dir.path(),
        &["match", ".", "--events", "-", "--payloads"],
        Some(&text),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = json_lines(&r.stdout);
    assert_eq!(out.len(), 3);
    for (event, line) in events.iter().zip(&out) {
        let single = run_in(
            dir.path(),
            &["match", ".", "--event", "-", "--format", "json"],
            Some(event),
        );
        let single: Value = serde_json::from_str(&single.stdout).unwrap();
        let mut payloads = serde_json::Map::new();
        let mut errors = serde_json::Map::new();
        let mut matched = Vec::new();
        for m in single["matched"].as_array().unwrap() {
            matched.push(m["rule"].clone());
            for t in m["targets"].as_array().unwrap() {
                let key = format!(
                    "{}/{}",
                    m["rule"].as_str().unwrap(),
                    t["id"].as_str().unwrap()
                );
                match t.get("error") {
                    Some(e) => errors.insert(key, e.clone()),
                    None => payloads.insert(key, t["payload"].clone()),
                };
            }
        }
        assert_eq!(line["matched"], Value::Array(matched), "{event}");
        assert_eq!(line["payloads"], Value::Object(payloads), "{event}");
        if errors.is_empty() {
            assert!(line.get("errors").is_none(), "{line}");
        } else {
            assert_eq!(line["errors"], Value::Object(errors), "{event}");
        }
    }
    assert_eq!(
        out[0]["payloads"],
        json!({
            "orders/whole": events[0],
            "orders/total": "250.5",
            "orders/note": r#"{"text": "order o-1", "rule": "orders", "at": "2026-11-23T10:00:00Z"}"#,
            "orders/fixed": r#"{"kind":"order"}"#,
        })
    );
    assert_eq!(
        out[1]["errors"],
        json!({"orders/total": "input_path $.detail.total selected nothing"})
    );
    assert_eq!(out[2], json!({"line": 3, "matched": [], "payloads": {}}));
}

#[test]
fn match_events_usage_errors() {
    let dir = rules_dir(&[("r.yaml", GEN_RULES)]);
    for (args, why) in [
        (&["match", "."][..], "--event <EVENT>|--events <EVENTS>"),
        (
            &["match", ".", "--event", "-", "--events", "-"],
            "cannot be used with",
        ),
        (
            &["match", ".", "--events", "-", "--format", "text"],
            "need --event",
        ),
        (
            &["match", ".", "--event", "-", "--format", "summary"],
            "need --events",
        ),
        (
            &["match", ".", "--event", "-", "--payloads"],
            "--payloads needs --events",
        ),
        (
            &["match", ".", "--events", "missing.jsonl"],
            "cannot read missing.jsonl",
        ),
    ] {
        let r = run_in(dir.path(), args, Some("{}"));
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains(why), "{args:?}: {}", r.stderr);
    }
    let bad = rules_dir(&[("r.yaml", "rules: [{name: x}]\n")]);
    let r = run_in(bad.path(), &["match", ".", "--events", "-"], Some("{}"));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("needs a `pattern` or a `schedule`"),
        "{}",
        r.stderr
    );
}

const OLD_RULES: &str = r#"
rules:
  - name: orders
    pattern:
      source: [shop]
      detail-type: [order]
      detail:
        total: [{numeric: [">", 100]}]
    targets:
      - id: big
        log: true
        input_path: $.detail.total
  - name: notify
    pattern: {source: [shop], detail-type: [order]}
    targets:
      - id: slack
        log: true
        input_transformer:
          input_paths: {id: $.detail.id, total: $.detail.total}
          input_template: '"order <id>: <total>"'
  - name: legacy
    pattern: {source: [shop], detail-type: [legacy]}
    targets: [{id: t, log: true}]
  - name: tick
    schedule: rate(5 minutes)
    targets: [{id: t, log: true}]
"#;

/// [`OLD_RULES`] with `orders` narrowed and given a second target, `notify`'s template
/// changed, `legacy` removed and `refunds` added.
const NEW_RULES: &str = r#"
rules:
  - name: orders
    pattern:
      source: [shop]
      detail-type: [order]
      detail:
        total: [{numeric: [">", 200]}]
    targets:
      - id: big
        log: true
        input_path: $.detail.total
      - id: audit
        log: true
        input: {audit: true}
  - name: notify
    pattern: {source: [shop], detail-type: [order]}
    targets:
      - id: slack
        log: true
        input_transformer:
          input_paths: {id: $.detail.id, total: $.detail.total}
          input_template: '"new order <id>: <total>"'
  - name: refunds
    pattern: {detail-type: [refund]}
    targets: [{id: t, log: true}]
"#;

/// [`OLD_RULES`] reformatted: rules reordered and split across files, keys reordered, flow and
/// block styles swapped, comments, `input_paths` in another order.
const OLD_REFORMATTED: [(&str, &str); 2] = [
    (
        "a.yaml",
        r#"
# Same rules, new layout.
rules:
  - pattern: {source: [shop], detail-type: [legacy]}   # unchanged
    targets:
      - id: t
        log: true
    name: legacy
  - targets:
      - input_transformer:
          input_template: '"order <id>: <total>"'
          input_paths:
            total: $.detail.total
            id: $.detail.id
        log: true
        id: slack
    name: notify
    pattern:
      detail-type:
        - order
      source:
        - shop
"#,
    ),
    (
        "b.yaml",
        r#"
rules:
  - {name: tick, schedule: rate(5 minutes), targets: [{id: t, log: true}]}
  - name: orders
    targets: [{input_path: $.detail.total, log: true, id: big}]
    pattern:
      detail: {total: [{numeric: [">", 100]}]}
      detail-type: [order]
      source: ["shop"]
"#,
    ),
];

const DIFF_EVENTS: &str = r#"{"source":"shop","detail-type":"order","detail":{"id":"o-1","total":250}}
{"source":"shop","detail-type":"order","detail":{"id":"o-2","total":150}}
{"source":"shop","detail-type":"legacy","detail":{"id":"l-1","total":5}}

{"source":"bank","detail-type":"refund","detail":{"note":"a long event, so that its excerpt is cut at one hundred and twenty characters: ............................"}}
{"source":"other"}
not an event
"#;

fn diff_dirs() -> tempfile::TempDir {
    let mut files: Vec<(String, &str)> = vec![
        ("old/r.yaml".to_owned(), OLD_RULES),
        ("new/r.yaml".to_owned(), NEW_RULES),
        ("events.jsonl".to_owned(), DIFF_EVENTS),
    ];
    for (name, text) in OLD_REFORMATTED {
        files.push((format!("same/{name}"), text));
    }
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    rules_dir(&files)
}

#[test]
fn diff_finds_added_removed_narrowed_and_changed_templates() {
    let dir = diff_dirs();
    let r = run_in(
        dir.path(),
        &[
            "diff",
            "old",
            "new",
            "--events",
            "events.jsonl",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        "line 7: invalid JSON at byte 0: an event must be a JSON object"
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let excerpt = |line: usize| {
        let text = DIFF_EVENTS.lines().nth(line - 1).unwrap();
        if text.chars().count() <= 120 {
            text.to_owned()
        } else {
            format!("{}…", text.chars().take(119).collect::<String>())
        }
    };
    assert_eq!(
        v,
        json!({
            "changes": [
                {"line": 1, "excerpt": excerpt(1), "added": [], "removed": [], "payloads": [
                    {"rule": "orders", "target": "audit", "old": null, "new": "{\"audit\":true}"},
                    {"rule": "notify", "target": "slack", "old": "\"order o-1: 250\"", "new": "\"new order o-1: 250\""},
                ]},
                {"line": 2, "excerpt": excerpt(2), "added": [], "removed": ["orders"], "payloads": [
                    {"rule": "notify", "target": "slack", "old": "\"order o-2: 150\"", "new": "\"new order o-2: 150\""},
                ]},
                {"line": 3, "excerpt": excerpt(3), "added": [], "removed": ["legacy"], "payloads": []},
                {"line": 5, "excerpt": excerpt(5), "added": ["refunds"], "removed": [], "payloads": []},
            ],
            "events": 5,
            "changed": 4,
            "errors": 1,
            "rules": {
                "orders": {"gained": 0, "lost": 1, "payloads": 1},
                "notify": {"gained": 0, "lost": 0, "payloads": 2},
                "refunds": {"gained": 1, "lost": 0, "payloads": 0},
                "legacy": {"gained": 0, "lost": 1, "payloads": 0},
            },
        })
    );
    assert_eq!(
        v["changes"][3]["excerpt"].as_str().unwrap().chars().count(),
        120
    );

    let text = run_in(
        dir.path(),
        &["diff", "old", "new", "--events", "events.jsonl"],
        None,
    );
    assert_eq!(text.code, 0, "{}", text.stderr);
    let expected = r#"line 1: {"source":"shop","detail-type":"order","detail":{"id":"o-1","total":250}}
  ~ orders/audit
      - (no such target)
      + {"audit":true}
  ~ notify/slack
      - "order o-1: 250"
      + "new order o-1: 250"
line 2: {"source":"shop","detail-type":"order","detail":{"id":"o-2","total":150}}
  - orders
  ~ notify/slack
      - "order o-2: 150"
      + "new order o-2: 150"
line 3: {"source":"shop","detail-type":"legacy","detail":{"id":"l-1","total":5}}
  - legacy
"#;
    assert!(text.stdout.starts_with(expected), "{}", text.stdout);
    assert!(text.stdout.contains("\n  + refunds\n"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("\n5 events examined, 4 changed (1 bad line(s) skipped)\n"),
        "{}",
        text.stdout
    );
    let table: Vec<Vec<&str>> = text
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("  rule "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        table,
        vec![
            vec!["rule", "gained", "lost", "payloads"],
            vec!["orders", "+0", "-1", "1"],
            vec!["notify", "+0", "-0", "2"],
            vec!["refunds", "+1", "-0", "0"],
            vec!["legacy", "+0", "-1", "0"],
        ]
    );
}

#[test]
fn a_reformatted_equivalent_rule_set_changes_nothing() {
    let dir = diff_dirs();
    assert_eq!(run_in(dir.path(), &["check", "same"], None).code, 0);
    for (a, b) in [("old", "same"), ("same", "old")] {
        let r = run_in(
            dir.path(),
            &["diff", a, b, "--events", "events.jsonl", "--exit-code"],
            None,
        );
        assert_eq!(r.code, 0, "{a} -> {b}: {}{}", r.stdout, r.stderr);
        assert_eq!(
            r.stdout,
            "5 events examined, none changed (1 bad line(s) skipped)\n"
        );
        let r = run_in(
            dir.path(),
            &["diff", a, b, "--events", "events.jsonl", "--format", "json"],
            None,
        );
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["changes"], json!([]));
        assert_eq!(v["changed"], 0);
    }
}

#[test]
fn diff_exit_codes() {
    let dir = diff_dirs();
    let code = |args: &[&str]| run_in(dir.path(), args, None).code;
    assert_eq!(code(&["diff", "old", "new", "--events", "events.jsonl"]), 0);
    assert_eq!(
        code(&[
            "diff",
            "old",
            "new",
            "--events",
            "events.jsonl",
            "--exit-code"
        ]),
        1
    );
    assert_eq!(
        code(&[
            "diff",
            "old",
            "new",
            "--events",
            "events.jsonl",
            "--exit-code",
            "--format",
            "json"
        ]),
        1
    );
    assert_eq!(
        code(&[
            "diff",
            "old",
            "same",
            "--events",
            "events.jsonl",
            "--exit-code"
        ]),
        0
    );
    let r = run_in(
        dir.path(),
        &[
            "diff",
            "old",
            "new",
            "--events",
            "missing.jsonl",
            "--exit-code",
        ],
        None,
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("cannot read missing.jsonl"),
        "{}",
        r.stderr
    );
    assert_eq!(
        code(&["diff", "old", "--events", "events.jsonl"]),
        2,
        "usage"
    );

    let bad = rules_dir(&[
        ("bad/r.yaml", "rules: [{name: x}]\n"),
        ("events.jsonl", "{}\n"),
    ]);
    std::fs::create_dir(bad.path().join("empty")).unwrap();
    let r = run_in(
        bad.path(),
        &[
            "diff",
            "empty",
            "bad",
            "--events",
            "events.jsonl",
            "--exit-code",
        ],
        None,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("bad/r.yaml:1:9: a rule needs a `pattern` or a `schedule`"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    let r = run_in(
        bad.path(),
        &[
            "diff",
            "bad",
            "empty",
            "--events",
            "events.jsonl",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(r.code, 1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["errors"].as_array().is_some_and(|e| !e.is_empty()), "{v}");
}

#[test]
fn diff_reads_gzip_from_stdin_in_input_order() {
    // The generated events against the generated rules and a variant without `big`: the
    // changes must be exactly the events over 3000, in input order.
    let without_big = GEN_RULES
        .replace("  - name: big\n", "  - name: huge\n")
        .replace(
            r#"n: [{numeric: [">", 3000]}]"#,
            r#"n: [{numeric: [">", 3500]}]"#,
        );
    let dir = rules_dir(&[("old/r.yaml", GEN_RULES), ("new/r.yaml", &without_big)]);
    let (text, lines) = gen_file();
    let r = run_piped(
        dir.path(),
        &["diff", "old", "new", "--events", "-", "--format", "json"],
        gzip(text.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let changes = v["changes"].as_array().unwrap();
    let expected: Vec<u64> = (3001..GEN_EVENTS).map(|i| lines[i]).collect();
    let got: Vec<u64> = changes
        .iter()
        .map(|c| c["line"].as_u64().unwrap())
        .collect();
    assert_eq!(got, expected);
    for c in changes {
        let i = lines
            .iter()
            .position(|&l| l == c["line"].as_u64().unwrap())
            .unwrap();
        let added = if i > 3500 { json!(["huge"]) } else { json!([]) };
        assert_eq!(c["added"], added, "{c}");
        assert_eq!(c["removed"], json!(["big"]), "{c}");
    }
    assert_eq!(v["events"], GEN_EVENTS);
    assert_eq!(
        v["rules"]["big"],
        json!({"gained": 0, "lost": 999, "payloads": 0})
    );
    assert_eq!(
        v["rules"]["huge"],
        json!({"gained": 499, "lost": 0, "payloads": 0})
    );
}

#[test]
fn the_checked_in_sample_exercises_the_example_rules() {
    let sample = "tests/data/replay/sample.jsonl";
    let r = run(&["match", "rules", "--events", sample, "--format", "summary"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["errors"], 0);
    for (rule, n) in v["matches"].as_object().unwrap() {
        assert!(n.as_u64().unwrap() > 0, "no sample event matches {rule}");
    }
    let r = run(&["diff", "rules", "rules", "--events", sample, "--exit-code"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(Path::new(&root().join(sample)).is_file());
}
