//! Validation of a function's `triggers:` (each one of `api`, `sqs`, `s3`, `sns`,
//! `schedule`) into [`FunctionTrigger`]s, every problem at its position. A `schedule` trigger
//! also becomes a schedule rule whose one target is the function, so it fires, catches up and
//! shows in `trigd next` as schedule rules do.
//!
//! What needs every file (the source a trigger names, a route used twice) is checked in
//! [`super::load_rules`] by [`check`].

use std::time::Duration;

use super::diag::{Diagnostic, Reporter, did_you_mean};
use super::reader::{self, Fields};
use super::rule_file::{read_pattern, read_schedule};
use super::yaml::{Kind, Node};
use crate::lambda_events::RouteKey;
use crate::rules::{
    ApiRoute, Function, FunctionTrigger, FunctionTriggerKind, PayloadFormat, Rule, Source,
    SourceKind, SqsMapping, Target, TargetKind, Trigger,
};
use crate::transform::InputSpec;

/// The kinds of triggers, each a key of one trigger.
pub const TRIGGER_KINDS: &[&str] = &["api", "sqs", "s3", "sns", "schedule"];
pub const API_KEYS: &[&str] = &["route", "payload_format"];
pub const SQS_KEYS: &[&str] = &[
    "source",
    "batch_size",
    "batch_window",
    "report_batch_item_failures",
    "filter",
    "max_concurrency",
];
pub const SOURCE_KEYS: &[&str] = &["source"];
pub const SCHEDULE_KEYS: &[&str] = &[
    "expression",
    "timezone",
    "start",
    "end",
    "jitter",
    "catch_up",
    "input",
    "enabled",
];

/// Lambda's limit on filters per event-source mapping.
const MAX_FILTERS: usize = 5;

/// A function's triggers, and the schedule rules they become.
#[derive(Debug, Default)]
pub struct Triggers {
    pub triggers: Vec<FunctionTrigger>,
    pub rules: Vec<Rule>,
}

/// Reads `triggers:` of `function` (already validated).
pub fn read(r: &mut Reporter<'_>, node: &Node, function: &Function) -> Triggers {
    let mut out = Triggers::default();
    let Kind::Seq(items) = &node.kind else {
        r.error(
            node.pos,
            format!(
                "`triggers` must be a list, e.g. `- api: {{route: GET /hello}}`, got {}",
                node.type_name()
            ),
        );
        return out;
    };
    let mut schedules = 0;
    for item in items {
        let Some(f) = Fields::new(r, item, "a trigger", TRIGGER_KINDS) else {
            continue;
        };
        let kinds = f.present(TRIGGER_KINDS);
        let (kind, value) = match kinds.as_slice() {
            [k] => match f.get(k) {
                Some(v) => (*k, v),
                None => continue,
            },
            [] => {
                // An unknown kind has been reported by `Fields`.
                if matches!(&item.kind, Kind::Map(entries) if entries.is_empty()) {
                    r.error(
                        item.pos,
                        format!("a trigger needs one of: {}", TRIGGER_KINDS.join(", ")),
                    );
                }
                continue;
            }
            [_, second, ..] => {
                let at = f.key_node(second).map_or(item.pos, |k| k.pos);
                r.error(
                    at,
                    format!(
                        "a trigger has one kind, this one has {}; write each as its own `- {}: ...` item",
                        kinds.join(" and "),
                        second
                    ),
                );
                continue;
            }
        };
        let at = f.key_node(kind).map_or(item.pos, |k| k.pos);
        let kind = match kind {
            "api" => api(r, value).map(FunctionTriggerKind::Api),
            "sqs" => sqs(r, value, function).map(FunctionTriggerKind::Sqs),
            "s3" => source_only(r, value, "an s3 trigger")
                .map(|source| FunctionTriggerKind::S3 { source }),
            "sns" => source_only(r, value, "an sns trigger")
                .map(|source| FunctionTriggerKind::Sns { source }),
            _ => {
                schedules += 1;
                let name = format!("{}:schedule:{schedules}", function.name);
                schedule(r, value, function, &name, at).map(|rule| {
                    out.rules.push(rule);
                    FunctionTriggerKind::Schedule { rule: name }
                })
            }
        };
        if let Some(kind) = kind {
            out.triggers.push(FunctionTrigger {
                function: function.name.clone(),
                kind,
                file: r.file().to_owned(),
                line: at.line,
                column: at.column,
            });
        }
    }
    out
}

fn api(r: &mut Reporter<'_>, node: &Node) -> Option<ApiRoute> {
    let before = r.count();
    let f = Fields::new(r, node, "an api trigger", API_KEYS)?;
    let route = match f.get("route") {
        None => {
            r.error(
                node.pos,
                "an api trigger needs a `route`, e.g. `route: GET /hello` or `route: $default`",
            );
            None
        }
        Some(n) => {
            let text = reader::nonempty(r, n, "`route`")?;
            match RouteKey::parse(text) {
                Ok(k) => Some(k),
                Err(e) => {
                    r.error(n.pos, e.0);
                    None
                }
            }
        }
    };
    let payload_format = match f.get("payload_format") {
        None => Some(PayloadFormat::V2),
        Some(n) => match &n.kind {
            Kind::Str(s) if s == "2.0" => Some(PayloadFormat::V2),
            Kind::Str(s) if s == "1.0" => Some(PayloadFormat::V1),
            Kind::Float(v) if *v == 2.0 => Some(PayloadFormat::V2),
            Kind::Float(v) if *v == 1.0 => Some(PayloadFormat::V1),
            _ => {
                r.error(
                    n.pos,
                    "`payload_format` is \"2.0\" (HTTP API, the default) or \"1.0\" (REST API proxy)",
                );
                None
            }
        },
    };
    if r.count() != before {
        return None;
    }
    Some(ApiRoute {
        route: route?,
        payload_format: payload_format?,
    })
}

fn sqs(r: &mut Reporter<'_>, node: &Node, function: &Function) -> Option<SqsMapping> {
    let before = r.count();
    let f = Fields::new(r, node, "an sqs trigger", SQS_KEYS)?;
    let source = required_source(r, node, &f, "an sqs trigger");
    let batch_size = match f.get("batch_size") {
        None => Some(10),
        Some(n) => reader::integer(r, n, "`batch_size`", 1..=10_000).map(|b| b as u32),
    };
    let batch_window = match f.get("batch_window") {
        None => Some(Duration::ZERO),
        Some(n) => reader::duration_within(
            r,
            n,
            "`batch_window`",
            Duration::ZERO,
            Duration::from_secs(300),
        ),
    };
    if let (Some(size), Some(Duration::ZERO)) = (batch_size, batch_window)
        && size > 10
    {
        let at = f.get("batch_size").map_or(node.pos, |n| n.pos);
        r.error(
            at,
            format!(
                "a `batch_size` over 10 ({size}) needs a `batch_window` of at least 1s, as Lambda requires"
            ),
        );
    }
    let report = match f.get("report_batch_item_failures") {
        None => Some(false),
        Some(n) => reader::boolean(r, n, "`report_batch_item_failures`"),
    };
    let filters = match f.get("filter") {
        None => Some(Vec::new()),
        Some(n) => match &n.kind {
            Kind::Seq(items) if items.len() <= MAX_FILTERS => {
                let patterns: Vec<_> = items.iter().filter_map(|i| read_pattern(r, i)).collect();
                (patterns.len() == items.len()).then_some(patterns)
            }
            Kind::Seq(_) => {
                r.error(
                    n.pos,
                    format!("an sqs trigger has at most {MAX_FILTERS} filters, as on Lambda"),
                );
                None
            }
            _ => {
                r.error(
                    n.pos,
                    format!(
                        "`filter` must be a list of event patterns matched against each record, e.g. `[{{body: {{status: [created]}}}}]`, got {}",
                        n.type_name()
                    ),
                );
                None
            }
        },
    };
    let max_concurrency = match f.get("max_concurrency") {
        None => Some(function.concurrency),
        Some(n) => reader::integer(r, n, "`max_concurrency`", 2..=1_000)
            .map(|c| (c as u32).min(function.concurrency)),
    };
    if r.count() != before {
        return None;
    }
    Some(SqsMapping {
        source: source?,
        batch_size: batch_size?,
        batch_window: batch_window?,
        report_batch_item_failures: report?,
        filters: filters?,
        max_concurrency: max_concurrency?,
    })
}

fn source_only(r: &mut Reporter<'_>, node: &Node, what: &str) -> Option<String> {
    let before = r.count();
    let f = Fields::new(r, node, what, SOURCE_KEYS)?;
    let source = required_source(r, node, &f, what);
    source.filter(|_| r.count() == before)
}

fn required_source(
    r: &mut Reporter<'_>,
    node: &Node,
    f: &Fields<'_>,
    what: &str,
) -> Option<String> {
    match f.get("source") {
        Some(n) => reader::nonempty(r, n, "`source`").map(str::to_owned),
        None => {
            r.error(
                node.pos,
                format!("{what} needs a `source`: the name of a source under `sources:`"),
            );
            None
        }
    }
}

fn schedule(
    r: &mut Reporter<'_>,
    node: &Node,
    function: &Function,
    name: &str,
    at: super::yaml::Pos,
) -> Option<Rule> {
    let before = r.count();
    let f = Fields::new(r, node, "a schedule trigger", SCHEDULE_KEYS)?;
    let schedule = match f.get("expression") {
        Some(n) => read_schedule(r, n, &f),
        None => {
            r.error(
                node.pos,
                "a schedule trigger needs an `expression`, e.g. `expression: cron(0 7 ? * MON-FRI *)`",
            );
            None
        }
    };
    let input = match f.get("input") {
        // The Scheduled Event, as a rule's target receives it.
        None => Some(InputSpec::WholeEvent),
        Some(n) => match n.to_json() {
            Ok(json) => Some(InputSpec::Constant(json.to_string())),
            Err(e) => {
                r.error(e.pos, e.message);
                None
            }
        },
    };
    let enabled = match f.get("enabled") {
        None => Some(true),
        Some(n) => reader::boolean(r, n, "`enabled`"),
    };
    if r.count() != before {
        return None;
    }
    Some(Rule {
        name: name.to_owned(),
        description: Some(format!("schedule trigger of function {}", function.name)),
        trigger: Trigger::Schedule(schedule?),
        targets: vec![Target {
            id: function.name.clone(),
            kind: TargetKind::Function {
                name: function.name.clone(),
                on_success: None,
                on_failure: None,
            },
            input: input?,
            retry: function.retry,
            dead_letter: None,
            concurrency: function.concurrency,
            log_output: false,
        }],
        enabled: enabled?,
        file: r.file().to_owned(),
        line: at.line,
        column: at.column,
    })
}

/// What needs every file: each trigger's source exists and can feed it, a queue has one
/// consumer, FIFO batches are at most 10, and no route is taken twice.
pub fn check(diags: &mut Vec<Diagnostic>, triggers: &[FunctionTrigger], sources: &[Source]) {
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    for (i, t) in triggers.iter().enumerate() {
        let mut error = |message: String| {
            diags.push(Diagnostic {
                file: t.file.clone(),
                line: t.line,
                column: t.column,
                message,
            })
        };
        if let FunctionTriggerKind::Api(api) = &t.kind {
            let taken = triggers[..i].iter().find(|o| match &o.kind {
                FunctionTriggerKind::Api(a) => a.route == api.route,
                _ => false,
            });
            if let Some(first) = taken {
                error(format!(
                    "route `{}` is already taken by function `{}` at {}:{}; a route invokes one function",
                    api.route, first.function, first.file, first.line
                ));
            }
            continue;
        }
        let Some(name) = t.kind.source() else {
            continue;
        };
        let Some(source) = sources.iter().find(|s| s.name == name) else {
            let hint = match did_you_mean(name, &names) {
                Some(s) => format!("; did you mean `{s}`?"),
                None if names.is_empty() => "; declare it under `sources:`".to_owned(),
                None => format!("; declared sources: {}", names.join(", ")),
            };
            error(format!(
                "{} trigger of function `{}` names source `{name}`, which is not declared{hint}",
                t.kind.name(),
                t.function
            ));
            continue;
        };
        let fits = matches!(
            (&t.kind, &source.kind),
            (FunctionTriggerKind::Sqs(_), SourceKind::Sqs { .. })
                | (
                    FunctionTriggerKind::S3 { .. } | FunctionTriggerKind::Sns { .. },
                    SourceKind::Sqs { .. } | SourceKind::Sns { .. }
                )
        );
        if !fits {
            let wants = match t.kind {
                FunctionTriggerKind::Sqs(_) => "an sqs source",
                _ => "an sqs or sns source",
            };
            error(format!(
                "{} trigger needs {wants}; `{name}` is a {} source",
                t.kind.name(),
                source_kind(&source.kind)
            ));
            continue;
        }
        // A queue an sqs trigger consumes feeds that trigger alone.
        let consumer = triggers
            .iter()
            .find(|o| matches!(&o.kind, FunctionTriggerKind::Sqs(m) if m.source == name));
        if let Some(c) = consumer
            && !std::ptr::eq(c, t)
        {
            error(format!(
                "source `{name}` is consumed by the sqs trigger of function `{}` at {}:{}; a queue feeds one sqs trigger and nothing else (give this trigger a queue of its own)",
                c.function, c.file, c.line
            ));
        }
        if let (FunctionTriggerKind::Sqs(m), SourceKind::Sqs { queue_url, .. }) =
            (&t.kind, &source.kind)
            && queue_url.ends_with(".fifo")
            && m.batch_size > 10
        {
            error(format!(
                "`batch_size` {} is over 10, the most for a FIFO queue (`{name}` is one)",
                m.batch_size
            ));
        }
    }
}

fn source_kind(kind: &SourceKind) -> &'static str {
    match kind {
        SourceKind::Sqs { .. } => "sqs",
        SourceKind::Sns { .. } => "sns",
        SourceKind::Webhook { .. } => "webhook",
    }
}
