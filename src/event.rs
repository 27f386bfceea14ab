//! Events in the EventBridge envelope, as trigd produces them (scheduled events today;
//! webhook, S3, SNS and SQS shapes come with their sources).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::rules::Settings;

/// The `Scheduled Event` EventBridge sends for a schedule rule's fire at `time`.
///
/// `time` is the scheduled instant truncated to the second; `detail` is an empty object.
pub fn scheduled_event(
    settings: &Settings,
    rule_arn: &str,
    time: DateTime<Utc>,
    id: &str,
) -> Value {
    envelope(
        settings,
        id,
        "aws.events",
        "Scheduled Event",
        vec![Value::String(rule_arn.to_owned())],
        time,
        json!({}),
    )
}

/// The compact JSON text of `value`: what `value.to_string()` gives, written straight to a
/// byte buffer instead of through `fmt` (several times faster on an event-sized value, and
/// it runs for every event).
pub fn compact(value: &Value) -> String {
    crate::pattern::ValidJson::of(value).into_string()
}

/// The EventBridge envelope, fields in EventBridge's order.
fn envelope(
    settings: &Settings,
    id: &str,
    source: &str,
    detail_type: &str,
    resources: Vec<Value>,
    time: DateTime<Utc>,
    detail: Value,
) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": detail_type,
        "source": source,
        "account": settings.account,
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": settings.region,
        "resources": resources,
        "detail": detail,
    })
}

/// The event a webhook body becomes: `source` is the configured source name, `detail` the
/// body, `detail-type` "Webhook".
pub fn webhook_event(
    settings: &Settings,
    source: &str,
    detail: Value,
    id: &str,
    time: DateTime<Utc>,
) -> Value {
    envelope(settings, id, source, "Webhook", Vec::new(), time, detail)
}

/// The event a PutEvents entry becomes, as EventBridge builds it.
pub fn put_events_event(
    settings: &Settings,
    source: &str,
    detail_type: &str,
    detail: Value,
    resources: Vec<Value>,
    time: DateTime<Utc>,
    id: &str,
) -> Value {
    envelope(settings, id, source, detail_type, resources, time, detail)
}

/// A UUID-shaped identifier derived from `seed`, stable across runs: for events whose
/// identity is their origin (a schedule fire), so that a repeated fire is recognisably the
/// same event.
pub fn stable_id(seed: &str) -> String {
    stable_id_of(&[seed])
}

/// [`stable_id`] of the concatenation of `parts`, without building it.
pub fn stable_id_of(parts: &[&str]) -> String {
    // Two FNV-1a hashes with different offsets give 128 bits, written as a UUID's text.
    let fnv = |offset: u64| {
        parts.iter().flat_map(|p| p.bytes()).fold(offset, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let id = uuid::Uuid::from_u64_pair(fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_event_shape() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T06:00:00.750Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = scheduled_event(
            &Settings::default(),
            "arn:aws:events:us-east-1:123456789012:rule/r",
            t,
            "x",
        );
        assert_eq!(e["time"], "2026-11-23T06:00:00Z");
        assert_eq!(e["detail"], json!({}));
        assert_eq!(
            e["resources"],
            json!(["arn:aws:events:us-east-1:123456789012:rule/r"])
        );
        assert_eq!(e["detail-type"], "Scheduled Event");
    }

    #[test]
    fn compact_is_display() {
        let v = json!({"a": [1, 2.5, "x\"y"], "b": {"c": null, "é": true}});
        assert_eq!(compact(&v), v.to_string());
    }

    #[test]
    fn stable_ids() {
        // Ids are stored (delivery ids, schedule event ids) and sent as idempotency keys, so
        // they must never change between versions.
        for (seed, id) in [
            ("", "cbf29ce4-8422-2325-8422-2325cbf29ce4"),
            ("a", "af63dc4c-8601-ec8c-789e-3e398d3ff5ff"),
            (
                "rule\ntarget\nevent-1",
                "5e89c66c-c475-66de-be42-539542dbef61",
            ),
            (
                "sqs:0f4c5a6e-1111-2222-3333-444455556666",
                "277c5df8-f761-ab8c-b226-b026e547a619",
            ),
        ] {
            assert_eq!(stable_id(seed), id, "{seed:?}");
        }
        assert_eq!(
            stable_id_of(&["rule", "\n", "target\nevent-1"]),
            stable_id("rule\ntarget\nevent-1")
        );
        assert_eq!(stable_id("a"), stable_id("a"));
        assert_ne!(stable_id("a"), stable_id("b"));
        assert_eq!(stable_id("a").len(), 36);
    }
}
