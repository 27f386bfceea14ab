//! Destinations: where a Lambda (RequestResponse) or command target's result goes
//! (`on_success` / `on_failure`), as Lambda's own destinations do for asynchronous invocations.
//!
//! The destination receives Lambda's invocation record (`version`, `timestamp`,
//! `requestContext{requestId, functionArn, condition, approximateInvokeCount}`,
//! `requestPayload`, `responseContext`, `responsePayload`). It is delivered in one of two ways:
//!
//! * **To a target** (`sqs`, `sns`, `lambda`, `eventbridge`, `http`, `command`): as a delivery
//!   of its own, through the outbox like any other, under the synthetic target id
//!   `<target>#on_success` or `<target>#on_failure` of the same rule. It inherits the parent
//!   target's retry policy and concurrency, and dead-letters locally like any delivery.
//! * **To trigd's bus** (`bus: true`): the record becomes the `detail` of an event with
//!   `source: trigd` and `detail-type: Destination`, handed to the intake at once (routed,
//!   stored, counted and archived as any source's event), so another rule can match it and
//!   chain.
//!
//! **Exactly the same follow-up every time.** The follow-up's event id is derived from the
//! parent delivery's id and the condition, so its deliveries' ids are stable: if the daemon
//! crashes after storing the follow-up but before removing the parent, the parent runs again
//! (at least once) and its follow-up is the same row again (`INSERT OR IGNORE`), not a second.
//! The follow-up is stored *before* the parent is removed, so a crash never loses it.
//!
//! **Loops stop.** Each follow-up carries one more hop than its parent ([`Delivery::hops`]);
//! at [`MAX_HOPS`] the chain ends with a warning and `trigd_destination_loops_total`, like
//! Lambda's recursive-loop detection (which also stops at 16).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Delivery, MAX_HOPS, delivery_id};
use crate::event::stable_id;
use crate::rules::{Destination, RetryPolicy, RuleSet, TargetKind};
use crate::targets::{ErrorCode, Response, target_arn};

/// Which destination of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    OnSuccess,
    OnFailure,
}

impl Which {
    fn key(self) -> &'static str {
        match self {
            Which::OnSuccess => "on_success",
            Which::OnFailure => "on_failure",
        }
    }
}

/// Lambda's `requestContext.condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Success,
    /// Every attempt the retry policy allows failed (or the failure could not be retried).
    RetriesExhausted,
    /// `max_event_age` ran out.
    EventAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
        }
    }

    fn which(self) -> Which {
        match self {
            Condition::Success => Which::OnSuccess,
            Condition::RetriesExhausted | Condition::EventAgeExceeded => Which::OnFailure,
        }
    }
}

/// The synthetic target id a destination delivers under. `#` cannot appear in a target id
/// written in a rule file, so it never collides with one.
pub fn target_id(parent: &str, which: Which) -> String {
    format!("{parent}#{}", which.key())
}

/// What a delivery's target id stands for in the current rules: a target of the rule, or the
/// destination of one.
#[derive(Debug, Clone)]
pub struct Resolved<'a> {
    pub kind: &'a TargetKind,
    pub retry: RetryPolicy,
    pub concurrency: u32,
    /// The target's `log_output` (a destination has its target's).
    pub log_output: bool,
    /// The destinations of `kind`; none for a destination itself (they do not chain by
    /// themselves: chains go through the bus).
    pub on_success: Option<&'a Destination>,
    pub on_failure: Option<&'a Destination>,
}

/// Resolves `target` of rule `rule`, or `None` when a reload removed it.
pub fn resolve<'a>(rules: &'a RuleSet, rule: &str, target: &str) -> Option<Resolved<'a>> {
    let (parent, which) = match target.split_once('#') {
        None => (target, None),
        Some((parent, "on_success")) => (parent, Some(Which::OnSuccess)),
        Some((parent, "on_failure")) => (parent, Some(Which::OnFailure)),
        Some(_) => return None,
    };
    let t = if rule == crate::rules::INVOKE_RULE {
        rules.invoke_target(parent)?
    } else {
        rules.rule(rule)?.targets.iter().find(|t| t.id == parent)?
    };
    let (on_success, on_failure) = destinations(&t.kind);
    let kind = match which {
        None => {
            return Some(Resolved {
                kind: &t.kind,
                retry: t.retry,
                concurrency: t.concurrency,
                log_output: t.log_output,
                on_success,
                on_failure,
            });
        }
        Some(Which::OnSuccess) => on_success?,
        Some(Which::OnFailure) => on_failure?,
    };
    match kind {
        Destination::Target(kind) => Some(Resolved {
            kind,
            retry: t.retry,
            concurrency: t.concurrency,
            log_output: t.log_output,
            on_success: None,
            on_failure: None,
        }),
        // Bus destinations are routed when they happen; nothing is stored under their id.
        Destination::Bus => None,
    }
}

fn destinations(kind: &TargetKind) -> (Option<&Destination>, Option<&Destination>) {
    match kind {
        TargetKind::Lambda {
            on_success,
            on_failure,
            ..
        }
        | TargetKind::Command {
            on_success,
            on_failure,
            ..
        }
        | TargetKind::Function {
            on_success,
            on_failure,
            ..
        } => (on_success.as_deref(), on_failure.as_deref()),
        _ => (None, None),
    }
}

/// How an attempt ended, for the record.
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a> {
    pub condition: Condition,
    /// Attempts made, the last one included.
    pub attempts: u32,
    /// What the target answered (success only).
    pub response: Option<&'a Response>,
    /// Why it failed (failure only).
    pub error: Option<(ErrorCode, &'a str)>,
}

/// Lambda's invocation record for `d` ending as `result`.
///
/// `requestPayload` and `responsePayload` are the JSON the payload and the response hold, or
/// their text when they are not JSON. On failure `responseContext.functionError` is the error
/// code (`TARGET_ERROR`, `TIMEOUT`, …) and `responsePayload` is
/// `{"errorType": code, "errorMessage": last error}`, the shape of a Lambda function error.
pub fn record(d: &Delivery, function_arn: &str, result: &Ending<'_>, now: DateTime<Utc>) -> Value {
    let (response_context, response_payload) = match (result.response, result.error) {
        (_, Some((code, message))) => (
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": code.as_str()}),
            json!({"errorType": code.as_str(), "errorMessage": message}),
        ),
        (Some(r), None) => (
            json!({"statusCode": r.status, "executedVersion": "$LATEST"}),
            r.body.as_deref().map_or(Value::Null, as_json),
        ),
        (None, None) => (
            json!({"statusCode": 200, "executedVersion": "$LATEST"}),
            Value::Null,
        ),
    };
    json!({
        "version": "1.0",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "requestContext": {
            "requestId": d.id,
            "functionArn": function_arn,
            "condition": result.condition.as_str(),
            "approximateInvokeCount": result.attempts,
        },
        "requestPayload": as_json(&d.payload),
        "responseContext": response_context,
        "responsePayload": response_payload,
    })
}

fn as_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// The follow-up of one finished delivery: what to store before the delivery is removed.
#[derive(Debug, Default)]
pub struct FollowUp {
    /// Deliveries to enqueue (a destination target's).
    pub deliveries: Vec<Delivery>,
    /// The event to pass on to trigd's bus (through the intake), with [`FollowUp::hops`].
    pub bus: Option<Value>,
    /// How many destinations led to this follow-up.
    pub hops: u32,
    /// The chain is at [`MAX_HOPS`]: nothing was made.
    pub loop_stopped: bool,
}

/// The follow-up of `d` (of `rules`), ending as `result`, for its destination `dest`.
pub fn follow_up(
    rules: &RuleSet,
    d: &Delivery,
    parent_kind: &TargetKind,
    dest: &Destination,
    result: &Ending<'_>,
    now: DateTime<Utc>,
) -> FollowUp {
    let hops = d.hops.saturating_add(1);
    let mut out = FollowUp {
        hops,
        ..FollowUp::default()
    };
    if hops > MAX_HOPS {
        out.loop_stopped = true;
        return out;
    }
    let mut function_arn = target_arn(parent_kind, &rules.settings);
    if matches!(parent_kind, TargetKind::Lambda { .. }) {
        function_arn.push_str(":$LATEST");
    }
    let detail = record(d, &function_arn, result, now);
    let event_id = stable_id(&format!("{}\n{}", d.id, result.condition.as_str()));
    let event = json!({
        "version": "0",
        "id": event_id,
        "detail-type": "Destination",
        "source": "trigd",
        "account": rules.settings.account,
        "time": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": rules.settings.region,
        "resources": [function_arn],
        "detail": detail,
    });
    match dest {
        Destination::Target(_) => {
            let target = target_id(&d.target, result.condition.which());
            out.deliveries.push(Delivery {
                id: delivery_id(&d.rule, &target, &event_id),
                rule: d.rule.clone(),
                target,
                event_id,
                payload: crate::event::compact(&event["detail"]),
                event: crate::event::compact(&event),
                attempts: 0,
                first_seen_ms: now.timestamp_millis(),
                next_attempt_ms: now.timestamp_millis(),
                first_error: None,
                last_error: None,
                hops,
                ordering_key: None,
            });
        }
        Destination::Bus => out.bus = Some(event),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(payload: &str) -> Delivery {
        Delivery {
            id: "d-1".to_owned(),
            rule: "r".to_owned(),
            target: "fn".to_owned(),
            event_id: "e-1".to_owned(),
            event: "{}".to_owned(),
            payload: payload.to_owned(),
            attempts: 2,
            first_seen_ms: 0,
            next_attempt_ms: 0,
            first_error: None,
            last_error: None,
            hops: 0,
            ordering_key: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_123).unwrap_or_default()
    }

    #[test]
    fn a_success_record_has_lambdas_shape() {
        let response = Response {
            status: 200,
            body: Some(r#"{"thumb":"a.png"}"#.to_owned()),
        };
        let result = Ending {
            condition: Condition::Success,
            attempts: 3,
            response: Some(&response),
            error: None,
        };
        let r = record(&delivery(r#"{"key":"a.jpg"}"#), "arn:f", &result, now());
        assert_eq!(
            r,
            json!({
                "version": "1.0",
                "timestamp": "2023-11-14T22:13:20.123Z",
                "requestContext": {
                    "requestId": "d-1",
                    "functionArn": "arn:f",
                    "condition": "Success",
                    "approximateInvokeCount": 3,
                },
                "requestPayload": {"key": "a.jpg"},
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
                "responsePayload": {"thumb": "a.png"},
            })
        );
    }

    #[test]
    fn text_that_is_not_json_stays_text_and_a_dropped_response_is_null() {
        let response = Response {
            status: 0,
            body: None,
        };
        let result = Ending {
            condition: Condition::Success,
            attempts: 1,
            response: Some(&response),
            error: None,
        };
        let r = record(&delivery("plain words"), "command:x", &result, now());
        assert_eq!(r["requestPayload"], "plain words");
        assert_eq!(r["responsePayload"], Value::Null);
        assert_eq!(r["responseContext"]["statusCode"], 0);
    }

    #[test]
    fn a_failure_record_says_why() {
        let result = Ending {
            condition: Condition::EventAgeExceeded,
            attempts: 4,
            response: None,
            error: Some((ErrorCode::Timeout, "too old")),
        };
        let r = record(&delivery("{}"), "arn:f", &result, now());
        assert_eq!(r["requestContext"]["condition"], "EventAgeExceeded");
        assert_eq!(r["responseContext"]["functionError"], "TIMEOUT");
        assert_eq!(
            r["responsePayload"],
            json!({"errorType": "TIMEOUT", "errorMessage": "too old"})
        );
    }

    #[test]
    fn synthetic_ids_cannot_be_written_in_a_rule_file() {
        assert_eq!(target_id("fn", Which::OnSuccess), "fn#on_success");
        assert_eq!(target_id("fn", Which::OnFailure), "fn#on_failure");
    }
}
