//! Routing: an accepted event (or a schedule fire) becomes deliveries, one per matching rule
//! and target, each with its payload rendered. Pure: no IO, the time comes in. The daemon's
//! intake routes every live event here; the offline tools (`dry_run`, `replay`, rule tests)
//! render with [`render_rule`] too, so a dry run shows exactly what a target would receive.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::event::stable_id_of;
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

/// A delivery waiting in the outbox: one (event, rule, target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable idempotency key derived from rule, target and event id: the same event routed
    /// twice is the same delivery (see [`delivery_id`]).
    pub id: String,
    pub rule: String,
    /// The target's id within the rule.
    pub target: String,
    pub event_id: String,
    /// The event's JSON text, kept for dead letters and redrive.
    pub event: String,
    /// The exact text the target receives.
    pub payload: String,
    /// Attempts made so far (0 for a new delivery).
    pub attempts: u32,
    /// When the event was accepted, in Unix milliseconds (for `max_event_age`).
    pub first_seen_ms: i64,
    /// When the next attempt is due, in Unix milliseconds.
    pub next_attempt_ms: i64,
    /// The first and the latest error, when an attempt failed.
    pub first_error: Option<String>,
    pub last_error: Option<String>,
    /// How many destinations (`on_success`/`on_failure`) led here: 0 for an event from a
    /// source, one more for each result fed back. Capped at [`MAX_HOPS`].
    pub hops: u32,
    /// Deliveries of one rule and target with the same key are attempted one at a time, in
    /// the order they were stored, the next only once the one before it has left the outbox
    /// (delivered or dead-lettered): a FIFO queue's message group keeps its order through
    /// trigd. `None` for everything else.
    pub ordering_key: Option<String>,
}

#[cfg(test)]
impl Delivery {
    /// A new delivery for unit tests: rule `r`, target `t`, event `e` (`{}`, also the
    /// payload), due at `next_attempt_ms`.
    pub(crate) fn for_test(id: &str, next_attempt_ms: i64) -> Delivery {
        Delivery {
            id: id.to_owned(),
            rule: "r".to_owned(),
            target: "t".to_owned(),
            event_id: "e".to_owned(),
            event: "{}".to_owned(),
            payload: "{}".to_owned(),
            attempts: 0,
            first_seen_ms: 0,
            next_attempt_ms,
            first_error: None,
            last_error: None,
            hops: 0,
            ordering_key: None,
        }
    }
}

/// The longest chain of destinations: a rule whose result, on trigd's bus, matches a rule that
/// feeds the bus again stops here (Lambda's recursion guard stops at 16 too).
pub const MAX_HOPS: u32 = 16;

/// The idempotency key of (rule, target, event): also sent to targets (HTTP
/// `Idempotency-Key`, `TRIGD_DELIVERY_ID`) so they can drop repeats.
pub fn delivery_id(rule: &str, target: &str, event_id: &str) -> String {
    stable_id_of(&[rule, "\n", target, "\n", event_id])
}
