//! Routing: an accepted event (or a schedule fire) becomes deliveries, one per matching rule
//! and target, each with its payload rendered. Pure: no IO, the time comes in. The daemon's
//! intake routes every live event here; the offline tools (`dry_run`, `replay`, rule tests)
//! render with [`render_rule`] too, so a dry run shows exactly what a target would receive.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::delivery::{Delivery, delivery_id};
use crate::pattern::{EventError, Scratch};
use crate::rules::{Rule, RuleSet};
use crate::transform::RenderContext;

/// A rule an event matches, with each target's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    pub rule: String,
    pub targets: Vec<Payload>,
}

/// What one target would receive, or why rendering failed (a JSON template that produced
/// invalid JSON: EventBridge silently drops such deliveries; trigd reports them).
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub id: String,
    pub payload: Result<String, String>,
}

/// What events route to.
#[derive(Debug, Default)]
pub struct Routed {
    /// Deliveries to write to the outbox.
    pub deliveries: Vec<Delivery>,
    /// Deliveries whose payload could not be rendered, with the reason: they go straight to
    /// the dead letter (EventBridge drops them silently).
    pub failed: Vec<(Delivery, String)>,
    /// Names of the rules that matched (once per event and rule).
    pub rules: Vec<String>,
}

/// Routes an event through every enabled pattern rule, adding its deliveries to `routed`.
pub fn route_event(
    rules: &RuleSet,
    scratch: &mut Scratch,
    event: &Value,
    event_text: &str,
    now: DateTime<Utc>,
    routed: &mut Routed,
) -> Result<(), EventError> {
    let mut ids = Vec::new();
    rules.matcher().matches(event_text, scratch, &mut ids)?;
    for id in ids {
        let Some(rule) = rules.rule_index(id).and_then(|i| rules.rules.get(i)) else {
            continue;
        };
        if rule.enabled {
            add_rule(rules, rule, event, event_text, now, now, routed);
        }
    }
    Ok(())
}

/// The deliveries of one rule for one event; the first attempt is due at `due`.
pub fn add_rule(
    rules: &RuleSet,
    rule: &Rule,
    event: &Value,
    event_text: &str,
    now: DateTime<Utc>,
    due: DateTime<Utc>,
    routed: &mut Routed,
) {
    let ingestion = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let event_id = event.get("id").and_then(Value::as_str).unwrap_or_default();
    let rendered = render_rule(rules, rule, event_text, event, &ingestion);
    for target in rendered.targets {
        let mut d = Delivery {
            id: delivery_id(&rule.name, &target.id, event_id),
            rule: rule.name.clone(),
            target: target.id,
            event_id: event_id.to_owned(),
            event: event_text.to_owned(),
            payload: String::new(),
            attempts: 0,
            first_seen_ms: now.timestamp_millis(),
            next_attempt_ms: due.timestamp_millis(),
            first_error: None,
            last_error: None,
            hops: 0,
            ordering_key: None,
        };
        match target.payload {
            Ok(p) => {
                d.payload = p;
                routed.deliveries.push(d);
            }
            Err(e) => routed.failed.push((d, e)),
        }
    }
    routed.rules.push(rule.name.clone());
}

/// Renders every target of `rule` for an event.
pub fn render_rule(
    rules: &RuleSet,
    rule: &Rule,
    event_text: &str,
    event: &Value,
    ingestion_time: &str,
) -> Matched {
    let arn = rules.rule_arn(&rule.name);
    let ctx = RenderContext {
        rule_name: &rule.name,
        rule_arn: &arn,
        ingestion_time,
    };
    Matched {
        rule: rule.name.clone(),
        targets: rule
            .targets
            .iter()
            .map(|t| Payload {
                id: t.id.clone(),
                payload: t
                    .input
                    .render(event_text, event, &ctx)
                    .map_err(|e| e.to_string()),
            })
            .collect(),
    }
}
