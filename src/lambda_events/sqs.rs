//! SQS batches as Lambda's event-source mapping hands them to a function,
//! `{"Records": [{"messageId", "receiptHandle", "body", "attributes", "messageAttributes",
//! "md5OfBody", "eventSource": "aws:sqs", "eventSourceARN", "awsRegion"}]}` (camelCase keys,
//! unlike the SQS API), and what the function answers when partial batch responses are on
//! (`{"batchItemFailures": [{"itemIdentifier": MESSAGE_ID}]}`).

use serde_json::{Map, Value, json};

/// One received message, as the record needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// The system attributes (`ApproximateReceiveCount`, `SentTimestamp`, `MessageGroupId`,
    /// ...), their values strings as SQS gives them.
    pub attributes: Map<String, Value>,
    /// The message attributes, already in the record's shape (see [`message_attribute`]).
    pub message_attributes: Map<String, Value>,
    pub md5_of_body: String,
}

impl Message {
    /// The FIFO message group, if any.
    pub fn group(&self) -> Option<&str> {
        self.attributes.get("MessageGroupId")?.as_str()
    }
}

/// One message attribute in the record's shape: `stringValue` or `binaryValue` (base64),
/// with the empty list fields Lambda always sends.
pub fn message_attribute(
    data_type: &str,
    string_value: Option<&str>,
    binary_value: Option<&[u8]>,
) -> Value {
    use base64::Engine as _;
    let mut v = Map::new();
    if let Some(s) = string_value {
        v.insert("stringValue".into(), s.into());
    }
    if let Some(b) = binary_value {
        v.insert(
            "binaryValue".into(),
            base64::engine::general_purpose::STANDARD.encode(b).into(),
        );
    }
    v.insert("stringListValues".into(), json!([]));
    v.insert("binaryListValues".into(), json!([]));
    v.insert("dataType".into(), data_type.into());
    Value::Object(v)
}

/// The record of one message received from the queue `queue_arn`.
pub fn record(m: &Message, queue_arn: &str, region: &str) -> Value {
    json!({
        "messageId": m.message_id,
        "receiptHandle": m.receipt_handle,
        "body": m.body,
        "attributes": m.attributes,
        "messageAttributes": m.message_attributes,
        "md5OfBody": m.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    })
}

/// The event of a batch of records.
pub fn batch(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// The record as filter criteria see it: the body parsed when it is a JSON object or array
/// (a filter then reaches into it, `{body: {status: [created]}}`); otherwise the body stays a
/// string and only string patterns on `body` can match it, as Lambda does.
pub fn filter_view(record: &Value) -> Value {
    let mut view = record.clone();
    if let Some(body) = record["body"].as_str()
        && let Ok(parsed @ (Value::Object(_) | Value::Array(_))) =
            serde_json::from_str::<Value>(body)
    {
        view["body"] = parsed;
    }
    view
}

/// Why a partial batch response fails the whole batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchResponseError {
    #[error("the response is not JSON")]
    NotJson,
    #[error("`batchItemFailures` is not a list")]
    NotAList,
    #[error("a batch item failure has no `itemIdentifier` string")]
    MissingIdentifier,
    #[error("`itemIdentifier` is empty")]
    EmptyIdentifier,
    #[error("`itemIdentifier` {0:?} is not a message of the batch")]
    UnknownIdentifier(String),
}

/// The message ids a function reported failed (`ReportBatchItemFailures`), in the order given
/// and without repeats. An empty or `null` list, an empty object, `null` or a result without
/// `batchItemFailures` is full success (no ids); a malformed entry, or an id not in `batch`,
/// fails the whole batch, as Lambda does.
pub fn batch_item_failures(
    result: &[u8],
    batch: &[&str],
) -> Result<Vec<String>, BatchResponseError> {
    if result.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(result).map_err(|_| BatchResponseError::NotJson)?;
    let failures = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(BatchResponseError::NotAList),
    };
    let mut ids: Vec<String> = Vec::with_capacity(failures.len());
    for item in failures {
        let id = match item.get("itemIdentifier") {
            Some(Value::String(id)) => id,
            _ => return Err(BatchResponseError::MissingIdentifier),
        };
        if id.is_empty() {
            return Err(BatchResponseError::EmptyIdentifier);
        }
        if !batch.contains(&id.as_str()) {
            return Err(BatchResponseError::UnknownIdentifier(id.clone()));
        }
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, body: &str) -> Message {
        let mut attributes = Map::new();
        attributes.insert("ApproximateReceiveCount".into(), "1".into());
        attributes.insert("SentTimestamp".into(), "1545082649183".into());
        let mut message_attributes = Map::new();
        message_attributes.insert(
            "myAttribute".into(),
            message_attribute("String", Some("myValue"), None),
        );
        Message {
            message_id: id.into(),
            receipt_handle: "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a".into(),
            body: body.into(),
            attributes,
            message_attributes,
            md5_of_body: "098f6bcd4621d373cade4e832627b4f6".into(),
        }
    }

    #[test]
    fn a_record_has_lambdas_keys_in_lambdas_order() {
        let r = record(
            &message("059f36b4", "test"),
            "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "us-east-2",
        );
        let keys: Vec<&str> = r
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "messageId",
                "receiptHandle",
                "body",
                "attributes",
                "messageAttributes",
                "md5OfBody",
                "eventSource",
                "eventSourceARN",
                "awsRegion"
            ]
        );
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(
            r["messageAttributes"]["myAttribute"],
            json!({"stringValue": "myValue", "stringListValues": [], "binaryListValues": [], "dataType": "String"})
        );
        assert_eq!(batch(vec![r.clone()])["Records"][0], r);
    }

    #[test]
    fn binary_attributes_are_base64() {
        assert_eq!(
            message_attribute("Binary", None, Some(b"\x00\xffhi"))["binaryValue"],
            "AP9oaQ=="
        );
    }

    #[test]
    fn filters_see_a_json_body_parsed_and_other_bodies_as_strings() {
        let r = record(&message("1", r#"{"status":"created"}"#), "arn", "r");
        assert_eq!(filter_view(&r)["body"]["status"], "created");
        let r = record(&message("1", "plain text"), "arn", "r");
        assert_eq!(filter_view(&r)["body"], "plain text");
        // A JSON scalar body stays the string it was.
        let r = record(&message("1", "42"), "arn", "r");
        assert_eq!(filter_view(&r)["body"], "42");
    }

    #[test]
    fn partial_batch_responses_as_lambda_reads_them() {
        let ids = ["a", "b", "c"];
        let ok = |s: &str| batch_item_failures(s.as_bytes(), &ids);
        // Full success.
        for s in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures": []}"#,
            r#"{"batchItemFailures": null}"#,
            r#""done""#,
        ] {
            assert_eq!(ok(s), Ok(vec![]), "{s}");
        }
        assert_eq!(
            ok(
                r#"{"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "b"}, {"itemIdentifier": "a"}]}"#
            ),
            Ok(vec!["b".to_owned(), "a".to_owned()])
        );
        // The whole batch fails.
        assert_eq!(ok("{"), Err(BatchResponseError::NotJson));
        assert_eq!(
            ok(r#"{"batchItemFailures": "b"}"#),
            Err(BatchResponseError::NotAList)
        );
        assert_eq!(
            ok(r#"{"batchItemFailures": [{"itemId": "b"}]}"#),
            Err(BatchResponseError::MissingIdentifier)
        );
        assert_eq!(
            ok(r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#),
            Err(BatchResponseError::MissingIdentifier)
        );
        assert_eq!(
            ok(r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#),
            Err(BatchResponseError::EmptyIdentifier)
        );
        assert_eq!(
            ok(r#"{"batchItemFailures": [{"itemIdentifier": "zzz"}]}"#),
            Err(BatchResponseError::UnknownIdentifier("zzz".into()))
        );
    }
}
