//! Validation of one rule file: `rules:` and `sources:` into the model of [`crate::rules`],
//! with every problem reported at its position.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::diag::{Reporter, did_you_mean};
use super::reader::{self, Fields};
use super::yaml::{Kind, Node, Pos};
use crate::pattern::{self, PathSeg};
use crate::rules::{
    CatchUp, DEFAULT_SNS_MAX_AGE, DeadLetter, Defaults, Destination, HttpUrl, InvocationType,
    QueueFormat, RetryPolicy, Rule, Schedule, Source, SourceKind, Target, TargetKind, Trigger,
    TrustedHost,
};
use crate::schedule::ScheduleExpr;
use crate::transform::{InputSpec, JsonPath, Template};

/// Keys of a rule file's top level.
pub const FILE_KEYS: &[&str] = &["rules", "sources", "functions"];
/// Keys of a rule.
pub const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "pattern",
    "schedule",
    "timezone",
    "start",
    "end",
    "jitter",
    "catch_up",
    "enabled",
    "targets",
    "retry",
    "dead_letter",
];
/// Keys that name a target's kind; exactly one per target.
pub const TARGET_KINDS: &[&str] = &[
    "lambda",
    "sqs",
    "sns",
    "eventbridge",
    "http",
    "command",
    "log",
    "function",
];
/// The three input options besides the whole event; at most one per target.
pub const INPUT_KEYS: &[&str] = &["input", "input_path", "input_transformer"];
/// Options and the kinds they apply to.
pub const TARGET_OPTIONS: &[(&str, &[&str])] = &[
    ("invocation_type", &["lambda"]),
    ("on_success", &["lambda", "command", "function"]),
    ("on_failure", &["lambda", "command", "function"]),
    ("message_group_id", &["sqs"]),
    ("subject", &["sns"]),
    ("source", &["eventbridge"]),
    ("detail_type", &["eventbridge"]),
    ("method", &["http"]),
    ("headers", &["http"]),
    ("timeout", &["http", "command"]),
    ("cwd", &["command"]),
    ("env", &["command"]),
];
/// Keys every target may have.
pub const TARGET_COMMON: &[&str] = &["id", "retry", "dead_letter", "concurrency", "log_output"];
pub const RETRY_KEYS: &[&str] = &["max_attempts", "max_event_age"];
pub const TRANSFORMER_KEYS: &[&str] = &["input_paths", "input_template"];
pub const SOURCE_KINDS: &[&str] = &["sqs", "sns", "webhook"];
pub const SQS_SOURCE_KEYS: &[&str] = &["queue_url", "format", "concurrency"];
pub const SNS_SOURCE_KEYS: &[&str] = &["topic_arns", "trusted_cert_hosts", "max_age"];
pub const WEBHOOK_SOURCE_KEYS: &[&str] = &[
    "bearer_token_env",
    "hmac_secret_env",
    "hmac_header",
    "request",
];
pub const CATCH_UP_KEYS: &[&str] = &["policy", "within"];

/// All keys a target may have.
pub fn target_keys() -> Vec<&'static str> {
    let mut keys: Vec<&str> = TARGET_COMMON.to_vec();
    keys.extend(TARGET_KINDS);
    keys.extend(INPUT_KEYS);
    keys.extend(TARGET_OPTIONS.iter().map(|(k, _)| *k));
    keys
}

/// What one file contributes.
#[derive(Debug, Default)]
pub struct FileContents {
    pub rules: Vec<Rule>,
    pub sources: Vec<Source>,
    pub functions: Vec<crate::rules::Function>,
    /// The functions' triggers; a `schedule` trigger's rule is in `rules`.
    pub triggers: Vec<crate::rules::FunctionTrigger>,
    /// Each `function:` target, checked once every file is read (a function may be declared
    /// in another file).
    pub function_refs: Vec<FunctionRef>,
}

/// Validates a parsed rule file. Problems go to `r`; only valid rules are returned.
/// `dir` is the file's directory: function paths are relative to it.
pub fn read(
    r: &mut Reporter<'_>,
    root: &Node,
    defaults: &Defaults,
    dir: &std::path::Path,
) -> FileContents {
    let mut out = FileContents::default();
    if root.kind == Kind::Null {
        return out;
    }
    let Some(f) = Fields::new(r, root, "a rule file", FILE_KEYS) else {
        return out;
    };
    if let Some(rules) = f.get("rules") {
        match &rules.kind {
            Kind::Seq(items) => {
                for item in items {
                    if let Some(rule) = read_rule(r, item, defaults) {
                        out.rules.push(rule);
                    }
                }
            }
            _ => r.error(
                rules.pos,
                format!("`rules` must be a list of rules, got {}", rules.type_name()),
            ),
        }
    }
    if let Some(functions) = f.get("functions") {
        let read = super::function_file::read(r, functions, dir);
        out.functions = read.functions;
        out.triggers = read.triggers.triggers;
        out.rules.extend(read.triggers.rules);
    }
    out.function_refs = function_refs(f.get("rules"));
    if let Some(sources) = f.get("sources") {
        match &sources.kind {
            Kind::Map(entries) => {
                for (k, v) in entries {
                    if let Some(s) = read_source(r, k, v) {
                        out.sources.push(s);
                    }
                }
            }
            _ => r.error(
                sources.pos,
                format!(
                    "`sources` must be a mapping of source names to sources, got {}",
                    sources.type_name()
                ),
            ),
        }
    }
    out
}

/// A `function:` target as written.
#[derive(Debug)]
pub struct FunctionRef {
    /// The function it names, and where.
    pub function: String,
    pub pos: Pos,
    pub rule: String,
    pub target: String,
    /// Whether the target or its rule sets `retry:`; if not, the function's own asynchronous
    /// retry settings apply, as Lambda's do.
    pub retry_given: bool,
}

/// The `function:` targets of the rules.
fn function_refs(rules: Option<&Node>) -> Vec<FunctionRef> {
    let field = |node: &Node, key: &str| -> Option<Node> {
        match &node.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v.clone()),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let Some(Kind::Seq(rules)) = rules.map(|n| &n.kind) else {
        return out;
    };
    for rule in rules {
        let rule_name = field(rule, "name").and_then(|n| n.as_str().map(str::to_owned));
        let rule_retry = field(rule, "retry").is_some();
        if let Some(Node {
            kind: Kind::Seq(targets),
            ..
        }) = field(rule, "targets")
        {
            for t in &targets {
                if let Some(n) = field(t, "function")
                    && let Some(name) = n.as_str()
                {
                    out.push(FunctionRef {
                        function: name.to_owned(),
                        pos: n.pos,
                        rule: rule_name.clone().unwrap_or_default(),
                        target: field(t, "id")
                            .and_then(|i| i.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        retry_given: rule_retry || field(t, "retry").is_some(),
                    });
                }
            }
        }
    }
    out
}

/// `[A-Za-z0-9._-]{1,64}`
pub(super) fn check_name(r: &mut Reporter<'_>, node: &Node, what: &str) -> Option<String> {
    let name = reader::string(r, node, what)?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        r.error(
            node.pos,
            format!("{what} `{name}` must be 1 to 64 letters, digits, `.`, `_` or `-`"),
        );
        return None;
    }
    Some(name.to_owned())
}

fn read_rule(r: &mut Reporter<'_>, node: &Node, defaults: &Defaults) -> Option<Rule> {
    let before = r.count();
    let f = Fields::new(r, node, "a rule", RULE_KEYS)?;
    let name = match f.get("name") {
        Some(n) => check_name(r, n, "rule name"),
        None => {
            r.error(node.pos, "a rule needs a `name`");
            None
        }
    };
    let description = f
        .get("description")
        .and_then(|d| reader::string(r, d, "`description`"))
        .map(str::to_owned);
    let enabled = f
        .get("enabled")
        .and_then(|e| reader::boolean(r, e, "`enabled`"))
        .unwrap_or(true);
    let trigger = read_trigger(r, node, &f);
    let retry = read_retry(r, f.get("retry"), defaults.retry).unwrap_or(defaults.retry);
    let dead_letter = f.get("dead_letter").and_then(|d| read_dead_letter(r, d));
    let targets = read_targets(
        r,
        node,
        &f,
        retry,
        dead_letter.as_ref(),
        defaults.concurrency,
    );
    if r.count() != before {
        return None;
    }
    Some(Rule {
        name: name?,
        description,
        trigger: trigger?,
        targets: targets?,
        enabled,
        file: r.file().to_owned(),
        line: f.get("name").map_or(node.pos, |n| n.pos).line,
        column: f.get("name").map_or(node.pos, |n| n.pos).column,
    })
}

const SCHEDULE_ONLY: &[&str] = &["timezone", "start", "end", "jitter", "catch_up"];

fn read_trigger(r: &mut Reporter<'_>, node: &Node, f: &Fields<'_>) -> Option<Trigger> {
    match (f.get("pattern"), f.get("schedule")) {
        (Some(_), Some(_)) => {
            let at = f.key_node("schedule").map_or(node.pos, |k| k.pos);
            r.error(
                at,
                "a rule has either a `pattern` or a `schedule`, not both; split it into two rules",
            );
            None
        }
        (None, None) => {
            r.error(node.pos, "a rule needs a `pattern` or a `schedule`");
            None
        }
        (Some(p), None) => {
            for key in f.present(SCHEDULE_ONLY) {
                if let Some(k) = f.key_node(key) {
                    r.error(k.pos, format!("`{key}` applies only to schedule rules"));
                }
            }
            read_pattern(r, p).map(Trigger::Pattern)
        }
        (None, Some(s)) => read_schedule(r, s, f).map(Trigger::Schedule),
    }
}

/// Parses a pattern written in YAML (or as a JSON string), mapping pattern errors back to the
/// node they concern.
pub fn read_pattern(r: &mut Reporter<'_>, node: &Node) -> Option<pattern::Pattern> {
    let json = match &node.kind {
        // A pattern pasted from the AWS console as a JSON string.
        Kind::Str(s) => match serde_json::from_str(s) {
            Ok(v) => v,
            Err(e) => {
                r.error(node.pos, format!("pattern is not valid JSON: {e}"));
                return None;
            }
        },
        _ => match node.to_json() {
            Ok(v) => v,
            Err(e) => {
                r.error(e.pos, e.message);
                return None;
            }
        },
    };
    match pattern::parse_all(&json) {
        Ok(p) => Some(p),
        Err(errors) => {
            for e in errors {
                let at = match &node.kind {
                    Kind::Str(_) => node.pos,
                    _ => locate(node, &e.path),
                };
                r.error(at, pattern_message(&e));
            }
            None
        }
    }
}

/// `invalid pattern at PATH: REASON`, with the operator meant when a name is misspelled.
fn pattern_message(e: &pattern::PatternError) -> String {
    let mut message = if e.path.is_empty() {
        format!("invalid pattern: {}", e.reason)
    } else {
        format!(
            "invalid pattern at `{}`: {}",
            pattern::display_path(&e.path),
            e.reason
        )
    };
    if let Some(PathSeg::Key(word)) = e.path.last()
        && let Some(meant) = did_you_mean(word, e.expected)
        // Not for a name that differs only in case (`NUMERIC`): that one keeps the reason
        // alone, as `trigd check` has always reported it.
        && !meant.eq_ignore_ascii_case(word)
    {
        message.push_str(&format!("; did you mean `{meant}`?"));
    }
    message
}

/// The position of the node at `path` (the last duplicate key wins, as in the pattern).
fn locate(root: &Node, path: &[PathSeg]) -> Pos {
    let mut node = root;
    for seg in path {
        let next = match (&node.kind, seg) {
            (Kind::Map(entries), PathSeg::Key(k)) => entries
                .iter()
                .rev()
                .find(|(key, _)| key.key_text().as_deref() == Some(k.as_str()))
                .map(|(_, v)| v),
            (Kind::Seq(items), PathSeg::Index(i)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    node.pos
}

pub(super) fn read_schedule(r: &mut Reporter<'_>, node: &Node, f: &Fields<'_>) -> Option<Schedule> {
    let before = r.count();
    let text = reader::string(r, node, "`schedule`")?;
    let expr = match ScheduleExpr::parse(text) {
        Ok(e) => Some(e),
        Err(e) => {
            r.error(
                node.pos_at(e.offset),
                format!("invalid schedule `{text}`: {e}"),
            );
            None
        }
    };
    let timezone = match f.get("timezone") {
        None => Some(chrono_tz::UTC),
        Some(tz) => {
            let name = reader::string(r, tz, "`timezone`")?;
            match name.parse::<chrono_tz::Tz>() {
                Ok(t) => Some(t),
                Err(_) => {
                    r.error(
                        tz.pos,
                        format!("unknown time zone `{name}`: use an IANA name such as `America/New_York` or `UTC`"),
                    );
                    None
                }
            }
        }
    };
    let start = f.get("start").and_then(|n| timestamp(r, n, "`start`"));
    let end = f.get("end").and_then(|n| timestamp(r, n, "`end`"));
    if let (Some(s), Some(e), Some(n)) = (start, end, f.get("end"))
        && e <= s
    {
        r.error(n.pos, "`end` must be after `start`");
    }
    let jitter = f.get("jitter").and_then(|n| {
        reader::duration_within(
            r,
            n,
            "`jitter`",
            Duration::from_secs(60),
            Duration::from_secs(1440 * 60),
        )
    });
    let catch_up = match f.get("catch_up") {
        None => Some(CatchUp::Once {
            within: Duration::from_secs(24 * 3600),
        }),
        Some(n) => read_catch_up(r, n),
    };
    if r.count() != before {
        return None;
    }
    Some(Schedule {
        expr: expr?,
        timezone: timezone?,
        start,
        end,
        jitter,
        catch_up: catch_up?,
    })
}

fn read_catch_up(r: &mut Reporter<'_>, node: &Node) -> Option<CatchUp> {
    let default_within = Duration::from_secs(24 * 3600);
    let policy = |r: &mut Reporter<'_>, n: &Node| -> Option<bool> {
        match n.as_str() {
            Some("skip") => Some(false),
            Some("once") => Some(true),
            _ => {
                r.error(n.pos, "`catch_up` policy must be `skip` or `once`");
                None
            }
        }
    };
    match &node.kind {
        Kind::Str(_) => Some(if policy(r, node)? {
            CatchUp::Once {
                within: default_within,
            }
        } else {
            CatchUp::Skip
        }),
        _ => {
            let f = Fields::new(r, node, "`catch_up`", CATCH_UP_KEYS)?;
            let once = match f.get("policy") {
                Some(p) => policy(r, p)?,
                None => true,
            };
            let within = match f.get("within") {
                Some(w) => reader::duration_within(
                    r,
                    w,
                    "`catch_up.within`",
                    Duration::from_secs(60),
                    Duration::from_secs(366 * 86_400),
                )?,
                None => default_within,
            };
            if !once && f.has("within") {
                r.error(node.pos, "`within` applies only to the `once` policy");
                return None;
            }
            Some(if once {
                CatchUp::Once { within }
            } else {
                CatchUp::Skip
            })
        }
    }
}

fn timestamp(r: &mut Reporter<'_>, node: &Node, what: &str) -> Option<DateTime<Utc>> {
    let s = reader::string(r, node, what)?;
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            r.error(
                node.pos,
                format!("{what} must be an RFC 3339 timestamp such as `2026-12-01T09:00:00Z`"),
            );
            None
        }
    }
}

/// A `retry` block; fields it does not set keep `default`'s.
pub fn read_retry(
    r: &mut Reporter<'_>,
    node: Option<&Node>,
    default: RetryPolicy,
) -> Option<RetryPolicy> {
    let node = node?;
    let f = Fields::new(r, node, "`retry`", RETRY_KEYS)?;
    let max_attempts = match f.get("max_attempts") {
        Some(n) => reader::integer(r, n, "`retry.max_attempts`", 0..=185).map(|v| v as u32),
        None => Some(default.max_attempts),
    };
    let max_event_age = match f.get("max_event_age") {
        Some(n) => reader::duration_within(
            r,
            n,
            "`retry.max_event_age`",
            Duration::from_secs(60),
            Duration::from_secs(86_400),
        ),
        None => Some(default.max_event_age),
    };
    Some(RetryPolicy {
        max_attempts: max_attempts?,
        max_event_age: max_event_age?,
    })
}

fn read_dead_letter(r: &mut Reporter<'_>, node: &Node) -> Option<DeadLetter> {
    let f = Fields::new(r, node, "`dead_letter`", &["sqs"])?;
    let Some(q) = f.get("sqs") else {
        r.error(node.pos, "`dead_letter` needs `sqs: QUEUE_URL`");
        return None;
    };
    let url = queue_url(r, q)?;
    if url.ends_with(".fifo") {
        r.error(
            q.pos,
            "a dead-letter queue must be a standard queue, not FIFO (as EventBridge requires)",
        );
        return None;
    }
    Some(DeadLetter::Sqs(url))
}

fn read_targets(
    r: &mut Reporter<'_>,
    rule: &Node,
    f: &Fields<'_>,
    retry: RetryPolicy,
    dead_letter: Option<&DeadLetter>,
    concurrency: u32,
) -> Option<Vec<Target>> {
    let Some(node) = f.get("targets") else {
        r.error(rule.pos, "a rule needs `targets` (1 to 5)");
        return None;
    };
    let Kind::Seq(items) = &node.kind else {
        r.error(
            node.pos,
            format!("`targets` must be a list, got {}", node.type_name()),
        );
        return None;
    };
    if items.is_empty() || items.len() > 5 {
        r.error(
            node.pos,
            format!("a rule has 1 to 5 targets, this one has {}", items.len()),
        );
    }
    let before = r.count();
    let mut out: Vec<Target> = Vec::new();
    for item in items {
        if let Some(t) = read_target(r, item, retry, dead_letter, concurrency) {
            if out.iter().any(|o| o.id == t.id) {
                r.error(
                    item.pos,
                    format!("target id `{}` is used twice in this rule", t.id),
                );
            }
            out.push(t);
        }
    }
    (r.count() == before).then_some(out)
}

fn read_target(
    r: &mut Reporter<'_>,
    node: &Node,
    rule_retry: RetryPolicy,
    rule_dead_letter: Option<&DeadLetter>,
    default_concurrency: u32,
) -> Option<Target> {
    let before = r.count();
    let keys = target_keys();
    let f = Fields::new(r, node, "a target", &keys)?;
    let id = match f.get("id") {
        Some(n) => check_name(r, n, "target id"),
        None => {
            r.error(node.pos, "a target needs an `id`");
            None
        }
    };
    let kinds = f.present(TARGET_KINDS);
    let kind = match kinds.as_slice() {
        [one] => f.get(one).and_then(|v| read_kind(r, one, v, &f)),
        [] => {
            r.error(
                node.pos,
                format!("a target needs one of: {}", TARGET_KINDS.join(", ")),
            );
            None
        }
        [_, second, ..] => {
            let at = f.key_node(second).map_or(node.pos, |k| k.pos);
            r.error(
                at,
                format!(
                    "a target has one kind; this one has {}: use one target per kind",
                    kinds.join(" and ")
                ),
            );
            None
        }
    };
    if let [one] = kinds.as_slice() {
        for (opt, applies) in TARGET_OPTIONS {
            if !applies.contains(one)
                && let Some(k) = f.key_node(opt)
            {
                r.error(
                    k.pos,
                    format!("`{opt}` applies only to {} targets", applies.join(" and ")),
                );
            }
        }
    }
    let input = read_input(r, node, &f, id.as_deref().unwrap_or("?"));
    let retry = match f.get("retry") {
        Some(_) => read_retry(r, f.get("retry"), rule_retry),
        None => Some(rule_retry),
    };
    let dead_letter = match f.get("dead_letter") {
        Some(d) => read_dead_letter(r, d),
        None => rule_dead_letter.cloned(),
    };
    let concurrency = match f.get("concurrency") {
        Some(n) => reader::integer(r, n, "`concurrency`", 1..=10_000).map(|c| c as u32),
        None => Some(default_concurrency),
    };
    let log_output = match f.get("log_output") {
        Some(n) => match n.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                r.error(n.pos, "write `log_output: true` (or false)");
                None
            }
        },
        None => Some(false),
    };
    if r.count() != before {
        return None;
    }
    Some(Target {
        id: id?,
        kind: kind?,
        input: input?,
        retry: retry?,
        dead_letter,
        concurrency: concurrency?,
        log_output: log_output?,
    })
}

fn read_kind(r: &mut Reporter<'_>, kind: &str, v: &Node, f: &Fields<'_>) -> Option<TargetKind> {
    let opt_str = |r: &mut Reporter<'_>, key: &str| -> Option<Option<String>> {
        match f.get(key) {
            None => Some(None),
            Some(n) => reader::nonempty(r, n, &format!("`{key}`")).map(|s| Some(s.to_owned())),
        }
    };
    let timeout = |r: &mut Reporter<'_>| -> Option<Duration> {
        match f.get("timeout") {
            None => Some(Duration::from_secs(30)),
            Some(n) => reader::duration_within(
                r,
                n,
                "`timeout`",
                Duration::from_secs(1),
                Duration::from_secs(15 * 60),
            ),
        }
    };
    let destination = |r: &mut Reporter<'_>, key: &str| -> Option<Option<Box<Destination>>> {
        match f.get(key) {
            None => Some(None),
            Some(n) => read_destination(r, n, key).map(|d| Some(Box::new(d))),
        }
    };
    match kind {
        "lambda" => {
            let function = lambda_function(r, v)?;
            let invocation_type = match f.get("invocation_type") {
                None => InvocationType::Event,
                Some(n) => match n.as_str() {
                    Some("Event") => InvocationType::Event,
                    Some("RequestResponse") => InvocationType::RequestResponse,
                    _ => {
                        r.error(
                            n.pos,
                            "`invocation_type` must be `Event` or `RequestResponse`",
                        );
                        return None;
                    }
                },
            };
            let on_success = destination(r, "on_success")?;
            let on_failure = destination(r, "on_failure")?;
            if invocation_type == InvocationType::Event
                && (on_success.is_some() || on_failure.is_some())
            {
                let at = f
                    .key_node("on_success")
                    .or(f.key_node("on_failure"))
                    .map_or(v.pos, |k| k.pos);
                r.error(
                    at,
                    "destinations need the function's result: set `invocation_type: RequestResponse`",
                );
                return None;
            }
            Some(TargetKind::Lambda {
                function,
                invocation_type,
                on_success,
                on_failure,
            })
        }
        "sqs" => {
            let queue_url = queue_url(r, v)?;
            let message_group_id = opt_str(r, "message_group_id")?;
            if queue_url.ends_with(".fifo") && message_group_id.is_none() {
                r.error(v.pos, "a FIFO queue needs `message_group_id`");
                return None;
            }
            Some(TargetKind::Sqs {
                queue_url,
                message_group_id,
            })
        }
        "sns" => Some(TargetKind::Sns {
            topic_arn: topic_arn(r, v)?,
            subject: opt_str(r, "subject")?,
        }),
        "eventbridge" => {
            let bus = reader::nonempty(r, v, "`eventbridge` (a bus name or ARN)")?;
            let ok = bus.starts_with("arn:")
                || bus
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
            if !ok {
                r.error(v.pos, format!("`{bus}` is not an event bus name or ARN"));
                return None;
            }
            Some(TargetKind::EventBridge {
                bus: bus.to_owned(),
                source: opt_str(r, "source")?,
                detail_type: opt_str(r, "detail_type")?,
            })
        }
        "http" => {
            let url = http_target_url(r, v)?;
            let method = match f.get("method") {
                None => "POST".to_owned(),
                Some(n) => {
                    let m = reader::nonempty(r, n, "`method`")?;
                    let upper = m.to_ascii_uppercase();
                    if !matches!(upper.as_str(), "POST" | "PUT" | "PATCH" | "GET" | "DELETE") {
                        r.error(n.pos, "`method` must be POST, PUT, PATCH, GET or DELETE");
                        return None;
                    }
                    upper
                }
            };
            let headers = match f.get("headers") {
                None => Vec::new(),
                Some(n) => reader::string_map(r, n, "`headers`")?,
            };
            Some(TargetKind::Http {
                url,
                method,
                headers,
                timeout: timeout(r)?,
            })
        }
        "command" => {
            let argv = reader::string_list(r, v, "`command`")?;
            if argv.first().is_none_or(|a| a.is_empty()) {
                r.error(
                    v.pos,
                    "`command` needs the program and its arguments, e.g. [./bin/notify, --quiet]",
                );
                return None;
            }
            let env = match f.get("env") {
                None => Vec::new(),
                Some(n) => reader::string_map(r, n, "`env`")?,
            };
            let cwd = match f.get("cwd") {
                None => None,
                Some(n) => Some(reader::nonempty(r, n, "`cwd`")?.into()),
            };
            Some(TargetKind::Command {
                argv,
                timeout: timeout(r)?,
                cwd,
                env,
                on_success: destination(r, "on_success")?,
                on_failure: destination(r, "on_failure")?,
            })
        }
        "function" => {
            let name = check_name(r, v, "`function` (a function declared under `functions:`)")?;
            Some(TargetKind::Function {
                name,
                on_success: destination(r, "on_success")?,
                on_failure: destination(r, "on_failure")?,
            })
        }
        "log" => match v.kind {
            Kind::Bool(true) | Kind::Null => Some(TargetKind::Log),
            _ => {
                r.error(v.pos, "write `log: true` for a log target");
                None
            }
        },
        _ => None,
    }
}

const DESTINATION_KINDS: &[&str] = &[
    "lambda",
    "sqs",
    "sns",
    "eventbridge",
    "http",
    "command",
    "bus",
];

fn read_destination(r: &mut Reporter<'_>, node: &Node, key: &str) -> Option<Destination> {
    let f = Fields::new(r, node, &format!("`{key}`"), DESTINATION_KINDS)?;
    let kinds = f.present(DESTINATION_KINDS);
    let [kind] = kinds.as_slice() else {
        r.error(
            node.pos,
            format!(
                "`{key}` names one destination: one of {}",
                DESTINATION_KINDS.join(", ")
            ),
        );
        return None;
    };
    let v = f.get(kind)?;
    match *kind {
        "bus" => match v.kind {
            Kind::Bool(true) => Some(Destination::Bus),
            _ => {
                r.error(
                    v.pos,
                    "write `bus: true` to send the result to trigd's own bus",
                );
                None
            }
        },
        "lambda" => Some(Destination::Target(TargetKind::Lambda {
            function: lambda_function(r, v)?,
            invocation_type: InvocationType::Event,
            on_success: None,
            on_failure: None,
        })),
        "sqs" => Some(Destination::Target(TargetKind::Sqs {
            queue_url: queue_url(r, v)?,
            message_group_id: None,
        })),
        "sns" => Some(Destination::Target(TargetKind::Sns {
            topic_arn: topic_arn(r, v)?,
            subject: None,
        })),
        "eventbridge" => Some(Destination::Target(TargetKind::EventBridge {
            bus: reader::nonempty(r, v, "`eventbridge`")?.to_owned(),
            source: None,
            detail_type: None,
        })),
        "http" => Some(Destination::Target(TargetKind::Http {
            url: http_target_url(r, v)?,
            method: "POST".to_owned(),
            headers: Vec::new(),
            timeout: Duration::from_secs(30),
        })),
        "command" => {
            let argv = reader::string_list(r, v, "`command`")?;
            if argv.first().is_none_or(|a| a.is_empty()) {
                r.error(v.pos, "`command` needs the program and its arguments");
                return None;
            }
            Some(Destination::Target(TargetKind::Command {
                argv,
                timeout: Duration::from_secs(30),
                cwd: None,
                env: Vec::new(),
                on_success: None,
                on_failure: None,
            }))
        }
        _ => None,
    }
}

fn http_url(r: &mut Reporter<'_>, node: &Node, what: &str) -> Option<String> {
    let s = reader::nonempty(r, node, what)?;
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !s.contains(char::is_whitespace) =>
        {
            Some(s.to_owned())
        }
        _ => {
            r.error(
                node.pos,
                format!("{what} must be an http:// or https:// URL, got `{s}`"),
            );
            None
        }
    }
}

/// An `http` target's URL, checked as [`http_url`] does and then parsed.
fn http_target_url(r: &mut Reporter<'_>, node: &Node) -> Option<HttpUrl> {
    let text = http_url(r, node, "`http`")?;
    match HttpUrl::parse(&text) {
        Ok(url) => Some(url),
        Err(e) => {
            r.error(node.pos, format!(
                    "`http` is not a valid URL ({e}): `{text}`; write one such as https://hooks.example.com/path"
                ));
            None
        }
    }
}

fn queue_url(r: &mut Reporter<'_>, node: &Node) -> Option<String> {
    let url = http_url(r, node, "a queue URL")?;
    let path_segments = url
        .splitn(4, '/')
        .nth(3)
        .map_or(0, |p| p.split('/').filter(|s| !s.is_empty()).count());
    if path_segments < 2 {
        r.error(
            node.pos,
            format!(
                "`{url}` is not a queue URL: expected https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE"
            ),
        );
        return None;
    }
    Some(url)
}

fn topic_arn(r: &mut Reporter<'_>, node: &Node) -> Option<String> {
    let s = reader::nonempty(r, node, "an SNS topic ARN")?;
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && !parts[5].is_empty();
    if !ok {
        r.error(
            node.pos,
            format!("`{s}` is not an SNS topic ARN: expected arn:aws:sns:REGION:ACCOUNT:TOPIC"),
        );
        return None;
    }
    Some(s.to_owned())
}

/// An entry of `trusted_cert_hosts`: `[https://|http://]HOST[:PORT]`, where HOST is a DNS
/// name (`*.` in front for any subdomain) or an IP address (IPv6 in brackets). Plain `http` only
/// for loopback hosts.
fn trusted_host(r: &mut Reporter<'_>, node: &Node) -> Option<TrustedHost> {
    let s = reader::nonempty(r, node, "a trusted certificate host")?;
    match s.parse::<TrustedHost>() {
        Ok(h) => Some(h),
        Err(why) => {
            r.error(
                node.pos,
                format!(
                    "`{s}` is not a trusted certificate host: {why}; expected HOST, HOST:PORT or http://127.0.0.1:PORT"
                ),
            );
            None
        }
    }
}

/// A function name, `name:qualifier`, partial ARN or full ARN, as Invoke accepts.
fn lambda_function(r: &mut Reporter<'_>, node: &Node) -> Option<String> {
    let s = reader::nonempty(r, node, "a Lambda function")?;
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    };
    let parts: Vec<&str> = s.split(':').collect();
    let ok = match parts.as_slice() {
        [name] | [name, _] => name_ok(name),
        [_, "function", name] | [_, "function", name, _] => name_ok(name),
        ["arn", partition, "lambda", _, _, "function", name]
        | ["arn", partition, "lambda", _, _, "function", name, _] => {
            partition.starts_with("aws") && name_ok(name)
        }
        _ => false,
    };
    if !ok {
        r.error(
            node.pos,
            format!(
                "`{s}` is not a Lambda function: use a name (my-function), name:alias, or arn:aws:lambda:REGION:ACCOUNT:function:NAME"
            ),
        );
        return None;
    }
    Some(s.to_owned())
}

/// Variables every template may use without an `input_paths` entry.
pub const RESERVED_VARIABLES: &[&str] = &[
    "aws.events.rule-name",
    "aws.events.rule-arn",
    "aws.events.event",
    "aws.events.event.json",
    "aws.events.event.ingestion-time",
];

fn read_input(r: &mut Reporter<'_>, node: &Node, f: &Fields<'_>, id: &str) -> Option<InputSpec> {
    let given = f.present(INPUT_KEYS);
    if given.len() > 1 {
        let at = f.key_node(given[1]).map_or(node.pos, |k| k.pos);
        r.error(
            at,
            format!(
                "only one of input, input_path or input_transformer may be given for target {id}; this one has {}",
                given.join(" and ")
            ),
        );
        return None;
    }
    if let Some(v) = f.get("input") {
        return match v.to_json() {
            Ok(json) => {
                let text = json.to_string();
                if text.chars().count() > 8192 {
                    r.error(
                        v.pos,
                        "`input` is longer than EventBridge's 8192 characters",
                    );
                    return None;
                }
                Some(InputSpec::Constant(text))
            }
            Err(e) => {
                r.error(e.pos, e.message);
                None
            }
        };
    }
    if let Some(v) = f.get("input_path") {
        return json_path(r, v, "`input_path`").map(InputSpec::Path);
    }
    if let Some(v) = f.get("input_transformer") {
        return read_transformer(r, v);
    }
    Some(InputSpec::WholeEvent)
}

fn json_path(r: &mut Reporter<'_>, node: &Node, what: &str) -> Option<JsonPath> {
    let text = reader::string(r, node, what)?;
    match JsonPath::parse(text) {
        Ok(p) => Some(p),
        Err(e) => {
            r.error(
                node.pos_at(e.offset),
                format!("invalid JSONPath `{text}` in {what}: {}", e.message),
            );
            None
        }
    }
}

fn read_transformer(r: &mut Reporter<'_>, node: &Node) -> Option<InputSpec> {
    let before = r.count();
    let f = Fields::new(r, node, "`input_transformer`", TRANSFORMER_KEYS)?;
    let mut paths: Vec<(String, JsonPath)> = Vec::new();
    if let Some(map) = f.get("input_paths") {
        match &map.kind {
            Kind::Map(entries) => {
                if entries.len() > 100 {
                    r.error(
                        map.pos,
                        format!(
                            "`input_paths` has {} entries; EventBridge allows at most 100",
                            entries.len()
                        ),
                    );
                }
                for (k, v) in entries {
                    let Some(name) = reader::string(r, k, "an `input_paths` name") else {
                        continue;
                    };
                    if name.starts_with("AWS.") || name.starts_with("aws.") {
                        r.error(
                            k.pos,
                            format!("`{name}`: names may not start with `AWS.`; AWS reserves them"),
                        );
                        continue;
                    }
                    let valid_chars = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                    if !valid_chars {
                        r.error(
                            k.pos,
                            format!("`{name}`: an `input_paths` name may hold letters, digits, `_`, `-` and `.`"),
                        );
                        continue;
                    }
                    if paths.iter().any(|(n, _)| n == name) {
                        r.error(k.pos, format!("`{name}` is defined twice in `input_paths`"));
                        continue;
                    }
                    if let Some(p) = json_path(r, v, &format!("`input_paths.{name}`")) {
                        paths.push((name.to_owned(), p));
                    }
                }
            }
            _ => r.error(
                map.pos,
                format!(
                    "`input_paths` must be a mapping of names to JSONPaths, got {}",
                    map.type_name()
                ),
            ),
        }
    }
    let Some(tpl) = f.get("input_template") else {
        r.error(node.pos, "`input_transformer` needs an `input_template`");
        return None;
    };
    let text = reader::string(r, tpl, "`input_template`")?;
    let names: Vec<&str> = paths.iter().map(|(n, _)| n.as_str()).collect();
    let template = match Template::parse(text, &names) {
        Ok(t) => Some(t),
        Err(e) => {
            r.error(
                tpl.pos_at(e.offset),
                format!("invalid `input_template`: {}", e.message),
            );
            None
        }
    };
    if r.count() != before {
        return None;
    }
    Some(InputSpec::Transformer {
        paths,
        template: template?,
    })
}

fn read_source(r: &mut Reporter<'_>, key: &Node, node: &Node) -> Option<Source> {
    let before = r.count();
    let name = check_name(r, key, "source name");
    let f = Fields::new(r, node, "a source", SOURCE_KINDS)?;
    let kinds = f.present(SOURCE_KINDS);
    let [kind] = kinds.as_slice() else {
        r.error(
            node.pos,
            format!("a source has exactly one of: {}", SOURCE_KINDS.join(", ")),
        );
        return None;
    };
    let v = f.get(kind)?;
    let kind = match *kind {
        "sqs" => {
            let g = Fields::new(r, v, "an sqs source", SQS_SOURCE_KEYS)?;
            let Some(url) = g.get("queue_url") else {
                r.error(v.pos, "an sqs source needs `queue_url`");
                return None;
            };
            let queue_url = queue_url(r, url)?;
            let format = match g.get("format") {
                None => QueueFormat::Auto,
                Some(n) => match n.as_str() {
                    Some("auto") => QueueFormat::Auto,
                    Some("s3") => QueueFormat::S3,
                    Some("sns") => QueueFormat::Sns,
                    Some("eventbridge") => QueueFormat::EventBridge,
                    Some("raw") => QueueFormat::Raw,
                    _ => {
                        r.error(
                            n.pos,
                            "`format` must be one of: auto, s3, sns, eventbridge, raw",
                        );
                        return None;
                    }
                },
            };
            let concurrency = match g.get("concurrency") {
                None => 1,
                Some(n) => reader::integer(r, n, "`concurrency`", 1..=64)? as u32,
            };
            SourceKind::Sqs {
                queue_url,
                format,
                concurrency,
            }
        }
        "sns" => {
            let g = Fields::new(r, v, "an sns source", SNS_SOURCE_KEYS)?;
            let topic_arns = match g.get("topic_arns") {
                None => Vec::new(),
                Some(n) => {
                    let Kind::Seq(items) = &n.kind else {
                        r.error(n.pos, "`topic_arns` must be a list of SNS topic ARNs");
                        return None;
                    };
                    items.iter().filter_map(|i| topic_arn(r, i)).collect()
                }
            };
            let trusted_cert_hosts = match g.get("trusted_cert_hosts") {
                None => Vec::new(),
                Some(n) => {
                    let Kind::Seq(items) = &n.kind else {
                        r.error(
                            n.pos,
                            format!(
                                "`trusted_cert_hosts` must be a list of hosts, got {}",
                                n.type_name()
                            ),
                        );
                        return None;
                    };
                    items.iter().filter_map(|i| trusted_host(r, i)).collect()
                }
            };
            let max_age = match g.get("max_age") {
                None => DEFAULT_SNS_MAX_AGE,
                Some(n) => reader::duration_within(
                    r,
                    n,
                    "`max_age`",
                    Duration::from_secs(60),
                    Duration::from_secs(7 * 86_400),
                )?,
            };
            SourceKind::Sns {
                topic_arns,
                trusted_cert_hosts,
                max_age,
            }
        }
        "webhook" => {
            let g = Fields::new(r, v, "a webhook source", WEBHOOK_SOURCE_KEYS)?;
            let env_name = |r: &mut Reporter<'_>, key: &str| -> Option<Option<String>> {
                match g.get(key) {
                    None => Some(None),
                    Some(n) => {
                        reader::nonempty(r, n, &format!("`{key}`")).map(|s| Some(s.to_owned()))
                    }
                }
            };
            let bearer_token_env = env_name(r, "bearer_token_env")?;
            let hmac_secret_env = env_name(r, "hmac_secret_env")?;
            let hmac_header =
                env_name(r, "hmac_header")?.unwrap_or_else(|| "X-Hub-Signature-256".to_owned());
            let request = match g.get("request") {
                None => false,
                Some(n) => reader::boolean(r, n, "`request`")?,
            };
            SourceKind::Webhook {
                bearer_token_env,
                hmac_secret_env,
                hmac_header,
                request,
            }
        }
        _ => return None,
    };
    if r.count() != before {
        return None;
    }
    Some(Source {
        name: name?,
        kind,
        file: r.file().to_owned(),
        line: key.pos.line,
        column: key.pos.column,
    })
}
