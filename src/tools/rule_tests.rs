//! Rule tests (`*.test.yaml`): events in, the exact set of matching rules and the payloads
//! out. Run by `trigd test`; validated like rule files, with positions.
//!
//! ```yaml
//! tests:
//!   - name: jpeg upload makes a thumbnail
//!     event: {source: aws.s3, detail-type: Object Created, detail: {object: {key: a.jpg}}}
//!     # or event_file: events/a.json, or schedule: {rule: alarm-clock, time: 2026-11-23T12:00:00Z}
//!     expect:
//!       matched: [resize-images]
//!       payloads:
//!         resize-images/resize: {"object": {"key": "a.jpg"}}
//!   - name: the API answers
//!     function: hello                # feeds the event to a local function (run for real)
//!     event_file: events/api.json    # e.g. saved from `trigd event api-gateway-v2`
//!     expect:
//!       result: {statusCode: 200, body: hello}   # or `error: Runtime.ExitError` (errorType)
//! ```

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::config::diag::{Diagnostic, Diagnostics, Reporter};
use crate::config::reader::{self, Fields};
use crate::config::yaml::{self, Kind, Node};
use crate::config::{LoadError, is_test_file, read_files};
use crate::dry_run;
use crate::event;
use crate::next;
use crate::rules::{RuleSet, Trigger};

const FILE_KEYS: &[&str] = &["tests"];
const TEST_KEYS: &[&str] = &[
    "name",
    "event",
    "event_file",
    "schedule",
    "function",
    "expect",
];
const EXPECT_KEYS: &[&str] = &["matched", "payloads", "result", "error"];
const SCHEDULE_KEYS: &[&str] = &["rule", "time"];

/// One test case.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub input: TestInput,
    /// The exact set of rules that must match; `None` when the test does not say.
    pub matched: Option<Vec<String>>,
    /// `(rule, target id, expected)`.
    pub payloads: Vec<(String, String, Expected)>,
    /// A function test: the event goes to this local function, run for real.
    pub function: Option<FunctionExpect>,
    pub file: String,
    pub line: usize,
}

/// What a test feeds in.
#[derive(Debug, Clone)]
pub enum TestInput {
    /// An event's JSON text.
    Event(String),
    /// A schedule rule's fire at an instant.
    Scheduled { rule: String, time: DateTime<Utc> },
}

/// What a function test expects of the invocation.
#[derive(Debug, Clone)]
pub struct FunctionExpect {
    pub function: String,
    /// The handler's result.
    pub result: Option<Expected>,
    /// The error's `errorType` (the invocation must fail).
    pub error: Option<String>,
}

/// An expected payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// Compared as JSON (key order and spacing do not matter).
    Json(Value),
    /// Compared exactly, byte for byte.
    Text(String),
}

/// The result of one test.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub file: String,
    pub line: usize,
    /// Empty when the test passed.
    pub failures: Vec<String>,
}

/// Loads every `*.test.yaml` under `root`, checking that the rules and targets they name
/// exist in `rules`.
pub fn load(root: &Path, rules: &RuleSet) -> Result<Vec<TestCase>, LoadError> {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut out = Vec::new();
    for (path, text) in read_files(root, is_test_file)? {
        let shown = path.display().to_string();
        let mut r = Reporter::new(&shown, &mut diags);
        match yaml::parse(&text) {
            Ok(node) => read_file(&mut r, &node, &path, rules, &mut out),
            Err(e) => r.error(e.pos, format!("invalid YAML: {}", e.message)),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(LoadError::Invalid(Diagnostics(diags)))
    }
}

fn read_file(
    r: &mut Reporter<'_>,
    node: &Node,
    path: &Path,
    rules: &RuleSet,
    out: &mut Vec<TestCase>,
) {
    if node.kind == Kind::Null {
        return;
    }
    let Some(f) = Fields::new(r, node, "a test file", FILE_KEYS) else {
        return;
    };
    let Some(tests) = f.get("tests") else {
        r.error(node.pos, "a test file needs `tests:`, a list of tests");
        return;
    };
    let Kind::Seq(items) = &tests.kind else {
        r.error(
            tests.pos,
            format!("`tests` must be a list, got {}", tests.type_name()),
        );
        return;
    };
    for item in items {
        if let Some(t) = read_test(r, item, path, rules) {
            out.push(t);
        }
    }
}

fn read_test(r: &mut Reporter<'_>, node: &Node, path: &Path, rules: &RuleSet) -> Option<TestCase> {
    let before = r.count();
    let f = Fields::new(r, node, "a test", TEST_KEYS)?;
    let name = match f.get("name") {
        Some(n) => reader::nonempty(r, n, "a test's `name`").map(str::to_owned),
        None => {
            r.error(node.pos, "a test needs a `name`");
            None
        }
    };
    let inputs = f.present(&["event", "event_file", "schedule"]);
    let input = match inputs.as_slice() {
        ["event"] => f.get("event").and_then(|e| match e.to_json() {
            Ok(v @ Value::Object(_)) => Some(TestInput::Event(v.to_string())),
            Ok(_) => {
                r.error(e.pos, "`event` must be a mapping (a JSON object)");
                None
            }
            Err(err) => {
                r.error(err.pos, err.message);
                None
            }
        }),
        ["event_file"] => f.get("event_file").and_then(|e| event_file(r, e, path)),
        ["schedule"] => f.get("schedule").and_then(|s| read_scheduled(r, s, rules)),
        _ => {
            r.error(
                node.pos,
                "a test needs exactly one of `event`, `event_file` or `schedule`",
            );
            None
        }
    };
    let function = match f.get("function") {
        None => None,
        Some(n) => {
            let name = reader::nonempty(r, n, "`function`")?;
            if rules.function(name).is_none() {
                let names: Vec<&str> = rules.functions.iter().map(|f| f.name.as_str()).collect();
                let hint = match crate::config::diag::did_you_mean(name, &names) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => format!("; declared functions: {}", names.join(", ")),
                };
                r.error(n.pos, format!("no function is named `{name}`{hint}"));
            }
            if f.has("schedule") {
                r.error(
                    n.pos,
                    "a function test feeds an `event` or `event_file`; to test a schedule trigger, feed its input (or `trigd event scheduled`)",
                );
            }
            Some(name.to_owned())
        }
    };
    let Some(e) = f.get("expect") else {
        let what = if function.is_some() {
            "`result` or `error`"
        } else {
            "`matched` and/or `payloads`"
        };
        r.error(node.pos, format!("a test needs `expect:` with {what}"));
        return None;
    };
    let (matched, payloads, function) = match function {
        Some(name) => {
            let (result, error) = read_function_expect(r, e)?;
            (
                None,
                Vec::new(),
                Some(FunctionExpect {
                    function: name,
                    result,
                    error,
                }),
            )
        }
        None => {
            let (m, p) = read_expect(r, e, rules)?;
            (m, p, None)
        }
    };
    if r.count() != before {
        return None;
    }
    Some(TestCase {
        name: name?,
        input: input?,
        matched,
        payloads,
        function,
        file: r.file().to_owned(),
        line: node.pos.line,
    })
}

fn event_file(r: &mut Reporter<'_>, node: &Node, test_file: &Path) -> Option<TestInput> {
    let rel = reader::nonempty(r, node, "`event_file`")?;
    let full = test_file.parent().unwrap_or(Path::new(".")).join(rel);
    let text = match std::fs::read_to_string(&full) {
        Ok(t) => t,
        Err(e) => {
            r.error(node.pos, format!("cannot read {}: {e}", full.display()));
            return None;
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Some(TestInput::Event(v.to_string())),
        Ok(_) => {
            r.error(
                node.pos,
                format!("{} must hold a JSON object", full.display()),
            );
            None
        }
        Err(e) => {
            r.error(
                node.pos,
                format!("{} is not valid JSON: {e}", full.display()),
            );
            None
        }
    }
}

fn read_scheduled(r: &mut Reporter<'_>, node: &Node, rules: &RuleSet) -> Option<TestInput> {
    let f = Fields::new(r, node, "`schedule`", SCHEDULE_KEYS)?;
    let (Some(rule_node), Some(time_node)) = (f.get("rule"), f.get("time")) else {
        r.error(
            node.pos,
            "`schedule` needs `rule` (a schedule rule's name) and `time` (RFC 3339)",
        );
        return None;
    };
    let rule = reader::nonempty(r, rule_node, "`schedule.rule`")?;
    match rules.rule(rule).map(|x| &x.trigger) {
        Some(Trigger::Schedule(_)) => {}
        Some(Trigger::Pattern(_)) => {
            r.error(
                rule_node.pos,
                format!("rule `{rule}` has a pattern, not a schedule"),
            );
            return None;
        }
        None => {
            r.error(rule_node.pos, unknown_rule(rule, rules));
            return None;
        }
    }
    let t = reader::nonempty(r, time_node, "`schedule.time`")?;
    let Ok(time) = DateTime::parse_from_rfc3339(t) else {
        r.error(
            time_node.pos,
            "`schedule.time` must be an RFC 3339 timestamp such as 2026-11-23T06:00:00Z",
        );
        return None;
    };
    Some(TestInput::Scheduled {
        rule: rule.to_owned(),
        time: time.with_timezone(&Utc),
    })
}

fn unknown_rule(name: &str, rules: &RuleSet) -> String {
    let names: Vec<&str> = rules.rules.iter().map(|r| r.name.as_str()).collect();
    match crate::config::diag::did_you_mean(name, &names) {
        Some(s) => format!("no rule is named `{name}`; did you mean `{s}`?"),
        None => format!("no rule is named `{name}`"),
    }
}

/// An expected value: a string is compared as text, anything else as JSON.
fn expected(r: &mut Reporter<'_>, v: &Node) -> Option<Expected> {
    match &v.kind {
        Kind::Str(s) => Some(Expected::Text(s.clone())),
        _ => match v.to_json() {
            Ok(j) => Some(Expected::Json(j)),
            Err(e) => {
                r.error(e.pos, e.message);
                None
            }
        },
    }
}

/// A function test's `expect`: `result` or `error`.
fn read_function_expect(
    r: &mut Reporter<'_>,
    node: &Node,
) -> Option<(Option<Expected>, Option<String>)> {
    let f = Fields::new(r, node, "`expect`", EXPECT_KEYS)?;
    for key in f.present(&["matched", "payloads"]) {
        if let Some(k) = f.key_node(key) {
            r.error(
                k.pos,
                format!("`{key}` is for rule tests; a function test expects `result` or `error`"),
            );
        }
    }
    let result = match f.get("result") {
        Some(v) => Some(expected(r, v)?),
        None => None,
    };
    let error = match f.get("error") {
        Some(v) => Some(reader::nonempty(r, v, "`error` (an errorType)")?.to_owned()),
        None => None,
    };
    match (&result, &error) {
        (None, None) => {
            r.error(
                node.pos,
                "a function test's `expect` needs `result` (the handler's return value) or `error` (its errorType)",
            );
            None
        }
        (Some(_), Some(_)) => {
            r.error(node.pos, "`expect` has `result` or `error`, not both");
            None
        }
        _ => Some((result, error)),
    }
}

type Expectations = (Option<Vec<String>>, Vec<(String, String, Expected)>);

fn read_expect(r: &mut Reporter<'_>, node: &Node, rules: &RuleSet) -> Option<Expectations> {
    let f = Fields::new(r, node, "`expect`", EXPECT_KEYS)?;
    for key in f.present(&["result", "error"]) {
        if let Some(k) = f.key_node(key) {
            r.error(
                k.pos,
                format!("`{key}` is for function tests: add `function: NAME` to the test"),
            );
        }
    }
    let matched = match f.get("matched") {
        None => None,
        Some(m) => {
            let Kind::Seq(items) = &m.kind else {
                r.error(
                    m.pos,
                    "`matched` must be a list of rule names ([] for none)",
                );
                return None;
            };
            let mut names = Vec::new();
            for item in items {
                let name = reader::nonempty(r, item, "a rule name in `matched`")?;
                if rules.rule(name).is_none() {
                    r.error(item.pos, unknown_rule(name, rules));
                }
                names.push(name.to_owned());
            }
            Some(names)
        }
    };
    let mut payloads = Vec::new();
    if let Some(p) = f.get("payloads") {
        let Kind::Map(entries) = &p.kind else {
            r.error(
                p.pos,
                "`payloads` must be a mapping of `rule/target-id` to the expected payload",
            );
            return None;
        };
        for (k, v) in entries {
            let key = reader::nonempty(r, k, "a `payloads` key")?;
            let Some((rule, target)) = key.split_once('/') else {
                r.error(
                    k.pos,
                    format!("`{key}`: name a payload as `rule/target-id`"),
                );
                continue;
            };
            match rules.rule(rule) {
                None => r.error(k.pos, unknown_rule(rule, rules)),
                Some(found) if !found.targets.iter().any(|t| t.id == target) => {
                    let ids: Vec<&str> = found.targets.iter().map(|t| t.id.as_str()).collect();
                    r.error(
                        k.pos,
                        format!(
                            "rule `{rule}` has no target `{target}`; its targets: {}",
                            ids.join(", ")
                        ),
                    );
                }
                Some(_) => {}
            }
            let Some(expected) = expected(r, v) else {
                continue;
            };
            payloads.push((rule.to_owned(), target.to_owned(), expected));
        }
    }
    if matched.is_none() && payloads.is_empty() {
        r.error(node.pos, "`expect` needs `matched` and/or `payloads`");
        return None;
    }
    Some((matched, payloads))
}

/// Runs every test but the function tests (see [`run_functions`]), in order.
pub fn run(rules: &RuleSet, tests: &[TestCase], now: DateTime<Utc>) -> Vec<Outcome> {
    tests
        .iter()
        .filter(|t| t.function.is_none())
        .map(|t| run_one(rules, t, now))
        .collect()
}

/// Runs the function tests, in order: each event goes to its function on `host` (the real
/// handler, in its runtime), and the result or error is compared.
pub async fn run_functions(host: &crate::functions::Host, tests: &[TestCase]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for test in tests {
        let (Some(want), TestInput::Event(event)) = (&test.function, &test.input) else {
            continue;
        };
        let mut failures = Vec::new();
        let invocation = crate::functions::Invocation::new(event.clone().into_bytes());
        match host.invoke(&want.function, invocation).await {
            Err(e) => failures.push(format!("{} could not be invoked: {e}", want.function)),
            Ok(o) => match (o.result, &want.result, &want.error) {
                (Ok(body), Some(expected), _) => {
                    let got = String::from_utf8_lossy(&body);
                    if let Some(diff) = compare(expected, &got) {
                        failures.push(format!("result differs (- expected, + actual)\n{diff}"));
                    }
                }
                (Ok(body), None, _) => failures.push(format!(
                    "expected error {}, but the handler returned {}",
                    want.error.as_deref().unwrap_or_default(),
                    String::from_utf8_lossy(&body)
                )),
                (Err(e), _, Some(error)) if &e.error_type == error => {}
                (Err(e), _, Some(error)) => failures.push(format!(
                    "expected error {error}, but the handler failed with {}",
                    e.summary()
                )),
                (Err(e), _, None) => failures.push(format!("the handler failed: {}", e.summary())),
            },
        }
        out.push(outcome(test, failures));
    }
    out
}

fn run_one(rules: &RuleSet, test: &TestCase, now: DateTime<Utc>) -> Outcome {
    let mut failures = Vec::new();
    let report = match &test.input {
        TestInput::Event(text) => match dry_run::run(rules, text, now) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("the event cannot be matched: {e}"));
                return outcome(test, failures);
            }
        },
        TestInput::Scheduled { rule, time } => {
            if let Some(why) = does_not_fire(rules, rule, *time) {
                failures.push(why);
                return outcome(test, failures);
            }
            scheduled_report(rules, rule, *time)
        }
    };
    let got: Vec<&str> = report.matched.iter().map(|m| m.rule.as_str()).collect();
    if let Some(want) = &test.matched {
        let mut w: Vec<&str> = want.iter().map(String::as_str).collect();
        let mut g = got.clone();
        w.sort_unstable();
        g.sort_unstable();
        if w != g {
            failures.push(format!(
                "matched [{}], expected [{}]",
                g.join(", "),
                w.join(", ")
            ));
            for u in &report.unmatched {
                if want.contains(&u.rule) {
                    failures.push(format!("  {} did not match: {}", u.rule, u.reason));
                }
            }
        }
    }
    for (rule, target, expected) in &test.payloads {
        let payload = report
            .matched
            .iter()
            .find(|m| &m.rule == rule)
            .and_then(|m| m.targets.iter().find(|t| &t.id == target));
        match payload.map(|p| &p.payload) {
            None => failures.push(format!(
                "{rule}/{target}: no payload, because {rule} did not match"
            )),
            Some(Err(e)) => failures.push(format!("{rule}/{target}: cannot render: {e}")),
            Some(Ok(text)) => {
                if let Some(diff) = compare(expected, text) {
                    failures.push(format!(
                        "{rule}/{target}: payload differs (- expected, + actual)\n{diff}"
                    ));
                }
            }
        }
    }
    outcome(test, failures)
}

fn outcome(test: &TestCase, failures: Vec<String>) -> Outcome {
    Outcome {
        name: test.name.clone(),
        file: test.file.clone(),
        line: test.line,
        failures,
    }
}

/// Why the schedule rule `name` does not fire at `time`, if it does not: a test of a fire
/// that never happens must not pass.
fn does_not_fire(rules: &RuleSet, name: &str, time: DateTime<Utc>) -> Option<String> {
    let rule = rules.rule(name)?;
    let Trigger::Schedule(s) = &rule.trigger else {
        return None;
    };
    if !rule.enabled {
        return Some("the rule is disabled (`enabled: false`): it never fires".to_owned());
    }
    let around = next::fires_at(s, time).err()?;
    let show = |t: DateTime<Utc>| {
        format!(
            "{} ({})",
            t.to_rfc3339_opts(SecondsFormat::Secs, true),
            t.with_timezone(&s.timezone).format("%a %H:%M %Z")
        )
    };
    let at = show(time);
    Some(match (around.before, around.after) {
        (Some(before), Some(after)) => format!(
            "the schedule does not fire at that time ({at}); its fires around it are {} and {}",
            show(before),
            show(after)
        ),
        (Some(before), None) => format!(
            "the schedule does not fire at that time ({at}); its last fire is {}",
            show(before)
        ),
        (None, Some(after)) => format!(
            "the schedule does not fire at that time ({at}); its first fire is {}",
            show(after)
        ),
        (None, None) => format!("the schedule does not fire at that time ({at}), nor ever"),
    })
}

/// The dry-run of a schedule rule's fire: the rule "matches" its own Scheduled Event.
fn scheduled_report(rules: &RuleSet, name: &str, time: DateTime<Utc>) -> dry_run::Report {
    let mut report = dry_run::Report {
        matched: Vec::new(),
        unmatched: Vec::new(),
    };
    if let Some(rule) = rules.rule(name) {
        let arn = rules.rule_arn(name);
        let id = event::stable_id(&format!("{arn}@{}", time.timestamp()));
        let ev = event::scheduled_event(&rules.settings, &arn, time, &id);
        let text = ev.to_string();
        let ingestion = dry_run::ingestion_time(&ev, time);
        report.matched.push(crate::route::render_rule(
            rules, rule, &text, &ev, &ingestion,
        ));
    }
    report
}

/// `None` when `actual` meets the expectation; otherwise a line diff.
fn compare(expected: &Expected, actual: &str) -> Option<String> {
    match expected {
        Expected::Text(want) => (want != actual).then(|| line_diff(want, actual)),
        Expected::Json(want) => match serde_json::from_str::<Value>(actual) {
            Ok(got) if &got == want => None,
            Ok(got) => Some(line_diff(&pretty(want), &pretty(&got))),
            Err(_) => Some(line_diff(&pretty(want), actual)),
        },
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn line_diff(want: &str, got: &str) -> String {
    let diff = similar::TextDiff::from_lines(want, got);
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "-",
            similar::ChangeTag::Insert => "+",
            similar::ChangeTag::Equal => " ",
        };
        out.push_str(&format!("    {sign} {}", change.value()));
        if !change.value().ends_with('\n') {
            out.push('\n');
        }
    }
    out.trim_end().to_owned()
}

/// Enabled rules that no test names, as expected to match or by schedule.
pub fn uncovered<'r>(rules: &'r RuleSet, tests: &[TestCase]) -> Vec<&'r str> {
    rules
        .rules
        .iter()
        .filter(|rule| {
            !tests.iter().any(|t| {
                t.matched.as_ref().is_some_and(|m| m.contains(&rule.name))
                    || matches!(&t.input, TestInput::Scheduled { rule: r, .. } if r == &rule.name)
            })
        })
        .map(|r| r.name.as_str())
        .collect()
}
