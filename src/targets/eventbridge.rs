//! EventBridge targets: `PutEvents` to a bus, with the payload as the detail (it must be a
//! JSON object) and the source and detail-type set in the rule or taken from the event. A
//! failed entry is a failed attempt: throttling and internal failures are retried, the rest
//! go to the dead letter.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;

use super::{Attempt, ErrorCode, Outcome};
use crate::aws::classify;

/// One `PutEvents` with one entry.
pub async fn deliver(
    client: &aws_sdk_eventbridge::Client,
    bus: &str,
    source: Option<&str>,
    detail_type: Option<&str>,
    attempt: &Attempt<'_>,
) -> Outcome {
    if !serde_json::from_str::<Value>(attempt.payload).is_ok_and(|v| v.is_object()) {
        return Outcome::Fail {
            code: ErrorCode::InvalidParameter,
            error:
                "an EventBridge target needs a JSON object as the detail; shape the input into one"
                    .to_owned(),
        };
    }
    let event: Value = serde_json::from_str(attempt.event).unwrap_or(Value::Null);
    let source = source.or(event["source"].as_str()).unwrap_or("trigd");
    let detail_type = detail_type
        .or(event["detail-type"].as_str())
        .unwrap_or("trigd");
    let resources: Vec<String> = event["resources"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let entry = PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(source)
        .detail_type(detail_type)
        .detail(attempt.payload)
        .set_resources((!resources.is_empty()).then_some(resources))
        .build();
    match client.put_events().entries(entry).send().await {
        Ok(out) if out.failed_entry_count() == 0 => Outcome::delivered(),
        Ok(out) => {
            let failed = out.entries().first();
            let code = failed.and_then(|e| e.error_code()).unwrap_or("Unknown");
            let message = failed.and_then(|e| e.error_message()).unwrap_or_default();
            let error = format!("PutEvents refused the entry: {code}: {message}");
            match code {
                "ThrottlingException" => Outcome::Retry {
                    code: ErrorCode::Throttling,
                    error,
                    retry_after: None,
                },
                "InternalFailure" | "InternalException" => Outcome::Retry {
                    code: ErrorCode::TargetError,
                    error,
                    retry_after: None,
                },
                _ => Outcome::Fail {
                    code: ErrorCode::InvalidParameter,
                    error,
                },
            }
        }
        Err(e) => classify(&e),
    }
}
