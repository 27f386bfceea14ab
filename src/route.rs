//! Routing: an accepted event (or a schedule fire) becomes deliveries, one per matching rule
//! and target, each with its payload rendered. Pure: no IO, the time comes in. The daemon's
//! intake routes every live event here; the offline tools (`dry_run`, `replay`, rule tests)
//! render with [`render_rule`] too, so a dry run shows exactly what a target would receive.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::event::stable_id_of;
use crate::lambda_events::{s3, sns};
use crate::pattern::{EventError, Scratch, ValidJson};
use crate::rules::{FunctionTriggerKind, INVOKE_RULE, Rule, RuleSet};
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
/// `event_text` is `event` written compact.
pub fn route_event(
    rules: &RuleSet,
    scratch: &mut Scratch,
    event: &Value,
    event_text: &ValidJson,
    now: DateTime<Utc>,
    routed: &mut Routed,
) -> Result<(), EventError> {
    let mut ids = Vec::new();
    rules
        .matcher()
        .matches_valid(event_text, scratch, &mut ids)?;
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

/// A message as its source received it, for the `s3` and `sns` triggers of functions, which
/// take it in Lambda's shape rather than as an EventBridge event.
#[derive(Debug, Clone, Copy)]
pub enum Received<'a> {
    /// An SQS message's body: an S3 notification, or an SNS envelope (which may carry an S3
    /// notification).
    Sqs { message_id: &'a str, body: &'a str },
    /// A verified SNS notification received over HTTP, and the subscription that sent it.
    Sns {
        envelope: &'a Value,
        subscription_arn: Option<&'a str>,
    },
}

/// The asynchronous invocations that `received`, from the source named `source`, makes for
/// the `s3` and `sns` triggers on that source: deliveries of [`INVOKE_RULE`] to each function,
/// one per S3 record or SNS notification, as Lambda invokes a function from S3 and SNS. Their
/// ids derive from the message, so a message received twice is stored once. Returns how many
/// were added; a message that holds nothing a trigger takes adds none (an S3 test event, a
/// raw message on an `sns` trigger).
pub fn route_triggers(
    rules: &RuleSet,
    source: &str,
    received: &Received<'_>,
    now: DateTime<Utc>,
    routed: &mut Routed,
) -> usize {
    let mut triggers = rules.triggers_on(source).peekable();
    if triggers.peek().is_none() {
        return 0;
    }
    // What the message holds: an SNS envelope, and an S3 notification (on its own, or as an
    // SNS message).
    let (id, parsed, subscription) = match *received {
        Received::Sqs { message_id, body } => {
            (message_id, serde_json::from_str::<Value>(body).ok(), None)
        }
        Received::Sns {
            envelope,
            subscription_arn,
        } => (
            envelope["MessageId"].as_str().unwrap_or_default(),
            Some(envelope.clone()),
            subscription_arn,
        ),
    };
    let Some(parsed) = parsed else {
        return 0;
    };
    let envelope = sns::is_notification(&parsed).then_some(&parsed);
    let inner: Option<Value> = envelope
        .and_then(|e| e["Message"].as_str())
        .and_then(|m| serde_json::from_str(m).ok());
    let s3_records = s3::records(&parsed).or_else(|| inner.as_ref().and_then(s3::records));
    let mut added = 0;
    for t in triggers {
        let events: Vec<Value> = match (&t.kind, envelope, s3_records) {
            (FunctionTriggerKind::S3 { .. }, _, Some(records)) => {
                records.iter().map(s3::invocation).collect()
            }
            (FunctionTriggerKind::Sns { .. }, Some(envelope), _) => {
                let arn = match subscription {
                    Some(arn) => arn.to_owned(),
                    // Through a queue the subscription is not known: one stable per source.
                    None => format!(
                        "{}:{}",
                        envelope["TopicArn"].as_str().unwrap_or_default(),
                        stable_id_of(&["trigd:", source])
                    ),
                };
                vec![sns::invocation(envelope, &arn)]
            }
            _ => Vec::new(),
        };
        for (i, event) in events.iter().enumerate() {
            let event_id =
                stable_id_of(&[t.kind.name(), ":", source, ":", id, ":", &i.to_string()]);
            let text = crate::event::compact(event);
            routed.deliveries.push(Delivery {
                id: delivery_id(INVOKE_RULE, &t.function, &event_id),
                rule: INVOKE_RULE.to_owned(),
                target: t.function.clone(),
                event_id,
                event: text.clone(),
                payload: text,
                attempts: 0,
                first_seen_ms: now.timestamp_millis(),
                next_attempt_ms: now.timestamp_millis(),
                first_error: None,
                last_error: None,
                hops: 0,
                ordering_key: None,
            });
            added += 1;
        }
    }
    added
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
