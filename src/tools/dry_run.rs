//! Dry runs: which rules an event matches, why the others do not, and the exact text each
//! matched target would receive. Used by `trigd match` and `trigd test`; touches nothing.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::config::diag::did_you_mean;
use crate::pattern::{self, EventError, ValidJson};
pub use crate::route::{Matched, Payload, render_rule};
use crate::rules::{RuleSet, SourceKind, Trigger};

/// The outcome of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub matched: Vec<Matched>,
    pub unmatched: Vec<Unmatched>,
}

/// A pattern rule the event does not match, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmatched {
    pub rule: String,
    pub reason: String,
}

/// Why an event could not be dry-run.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("the event is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the event must be a JSON object, got {0}")]
    NotObject(&'static str),
    #[error("{0}")]
    Scan(#[from] EventError),
    /// A webhook body (`--source`) that is not an object: the daemon answers it 400.
    #[error("a webhook body must be a JSON object, got {0}")]
    BodyNotObject(&'static str),
    /// Webhook sources are declared and none has this name: the daemon answers it 404.
    #[error("no webhook source is named `{name}`{hint}")]
    UnknownSource { name: String, hint: String },
}

/// Dry-runs `event_text` against every pattern rule. Schedule rules are not listed.
///
/// `now` stands in for the ingestion time when the event has no `time` field.
pub fn run(rules: &RuleSet, event_text: &str, now: DateTime<Utc>) -> Result<Report, DryRunError> {
    let event: Value = serde_json::from_str(event_text)?;
    if !event.is_object() {
        return Err(DryRunError::NotObject(json_type(&event)));
    }
    // Targets receive the event as trigd would forward it: compact, key order kept.
    let compact = ValidJson::of(&event);
    let m = rules.matcher();
    let mut scratch = m.scratch();
    let mut ids = Vec::new();
    m.matches_valid(&compact, &mut scratch, &mut ids)?;
    let mut report = Report {
        matched: Vec::new(),
        unmatched: Vec::new(),
    };
    let ingestion = ingestion_time(&event, now);
    let mut is_matched = vec![false; rules.rules.len()];
    for &id in &ids {
        if let Some(i) = rules.rule_index(id) {
            is_matched[i] = true;
        }
    }
    for (rule, matched) in rules.rules.iter().zip(is_matched) {
        let Trigger::Pattern(p) = &rule.trigger else {
            continue;
        };
        if !matched {
            let reason = pattern::explain(p, &event)
                .unwrap_or_else(|| "the compiled matcher and the explainer disagree".to_owned());
            report.unmatched.push(Unmatched {
                rule: rule.name.clone(),
                reason,
            });
        } else if !rule.enabled {
            report.unmatched.push(Unmatched {
                rule: rule.name.clone(),
                reason: "the pattern matches, but the rule is disabled (`enabled: false`)"
                    .to_owned(),
            });
        } else {
            report
                .matched
                .push(render_rule(rules, rule, &compact, &event, &ingestion));
        }
    }
    Ok(report)
}

/// Dry-runs `body` as if it were posted to `POST /events/{source}`: it becomes the event the
/// daemon makes of it (`source` the name, `detail-type` `Webhook`, `detail` the body, `time`
/// `now`; the id is derived from the body, so that the output is the same each time), and
/// is refused where the daemon refuses it (a body that is not an object, a name that is not
/// a declared webhook source when any are declared). Authentication is not checked.
pub fn run_webhook(
    rules: &RuleSet,
    source: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<Report, DryRunError> {
    let detail: Value = serde_json::from_str(body)?;
    if !detail.is_object() {
        return Err(DryRunError::BodyNotObject(json_type(&detail)));
    }
    let webhooks: Vec<&str> = rules
        .sources
        .iter()
        .filter(|s| matches!(s.kind, SourceKind::Webhook { .. }))
        .map(|s| s.name.as_str())
        .collect();
    if !webhooks.is_empty() && !webhooks.contains(&source) {
        let hint = match did_you_mean(source, &webhooks) {
            Some(meant) => format!("; did you mean `{meant}`?"),
            None => format!("; the webhook sources are: {}", webhooks.join(", ")),
        };
        return Err(DryRunError::UnknownSource {
            name: source.to_owned(),
            hint,
        });
    }
    let id = crate::event::stable_id_of(&["webhook ", source, " ", body]);
    let event = crate::event::webhook_event(&rules.settings, source, detail, &id, now);
    run(rules, &crate::event::compact(&event), now)
}

/// The event's own `time` when it has one, else `now`.
pub fn ingestion_time(event: &Value, now: DateTime<Utc>) -> String {
    event
        .get("time")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| now.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Report {
    /// The JSON form printed by `trigd match --format json`.
    pub fn to_json(&self) -> Value {
        let matched: Vec<Value> = self
            .matched
            .iter()
            .map(|m| {
                let targets: Vec<Value> = m
                    .targets
                    .iter()
                    .map(|t| match &t.payload {
                        Ok(p) => serde_json::json!({"id": t.id, "payload": p}),
                        Err(e) => serde_json::json!({"id": t.id, "payload": null, "error": e}),
                    })
                    .collect();
                serde_json::json!({"rule": m.rule, "targets": targets})
            })
            .collect();
        let unmatched: Vec<Value> = self
            .unmatched
            .iter()
            .map(|u| serde_json::json!({"rule": u.rule, "reason": u.reason}))
            .collect();
        serde_json::json!({"matched": matched, "unmatched": unmatched})
    }

    /// The text form printed by `trigd match`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.matched.is_empty() {
            out.push_str("no rule matches\n");
        }
        for m in &self.matched {
            out.push_str(&format!("matched  {}\n", m.rule));
            for t in &m.targets {
                match &t.payload {
                    Ok(p) => out.push_str(&format!("  -> {}: {p}\n", t.id)),
                    Err(e) => out.push_str(&format!("  -> {}: cannot render: {e}\n", t.id)),
                }
            }
        }
        for u in &self.unmatched {
            out.push_str(&format!("no match {}: {}\n", u.rule, u.reason));
        }
        out
    }
}
