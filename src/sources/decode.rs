//! What an SQS message carries, as EventBridge events: S3 notifications (one event per record,
//! in EventBridge's S3 form), SNS envelopes (S3 notifications inside unwrapped), EventBridge
//! events (as they are), or anything else (an `aws.sqs` "SQS Message" event). Pure.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::event::stable_id;
use crate::rules::{QueueFormat, Settings};

/// One received SQS message, as the decoder needs it.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
    /// System attributes (`SentTimestamp`, ...), as strings.
    pub attributes: Map<String, Value>,
    /// Message attributes, in Lambda's event shape (`stringValue`, `dataType`).
    pub message_attributes: Map<String, Value>,
    /// The queue's ARN.
    pub queue_arn: &'a str,
    pub region: &'a str,
}

/// Why a message could not be decoded; it is left on the queue for SQS's own redrive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// The events a message becomes. An S3 test event becomes none (it is acknowledged and
/// dropped). Event ids are derived from the message id, so a message received twice yields the
/// same events and so the same deliveries (which the outbox keeps once).
pub fn decode(
    msg: &Message<'_>,
    format: QueueFormat,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Value>, DecodeError> {
    let parsed: Option<Value> = serde_json::from_str(msg.body).ok().filter(Value::is_object);
    let detected = match (&parsed, format) {
        (_, QueueFormat::Raw) => QueueFormat::Raw,
        (Some(v), QueueFormat::Auto) => detect(v),
        (Some(_), pinned) => pinned,
        (None, QueueFormat::Auto) => QueueFormat::Raw,
        (None, pinned) => {
            return Err(DecodeError(format!(
                "the body is not a JSON object, but the source's format is {pinned:?}"
            )));
        }
    };
    let v = parsed.unwrap_or(Value::Null);
    match detected {
        QueueFormat::S3 => s3_events(&v, msg.message_id, settings),
        QueueFormat::Sns => sns_event(&v, msg.message_id, settings, now),
        QueueFormat::EventBridge => {
            let ok = ["source", "detail-type", "detail"]
                .iter()
                .all(|k| v.get(k).is_some());
            if ok {
                Ok(vec![v])
            } else {
                Err(DecodeError(
                    "the body is not an EventBridge event (source, detail-type, detail)".to_owned(),
                ))
            }
        }
        QueueFormat::Raw | QueueFormat::Auto => Ok(vec![raw_event(msg, settings, now)]),
    }
}

/// What a JSON body looks like.
fn detect(v: &Value) -> QueueFormat {
    let is_s3 = v["Records"]
        .as_array()
        .is_some_and(|r| !r.is_empty() && r.iter().all(|x| x["eventSource"] == "aws:s3"));
    if is_s3 || v["Event"] == "s3:TestEvent" {
        QueueFormat::S3
    } else if v["Type"] == "Notification"
        && v.get("TopicArn").is_some()
        && v.get("Message").is_some()
    {
        QueueFormat::Sns
    } else if ["source", "detail-type", "detail"]
        .iter()
        .all(|k| v.get(k).is_some())
    {
        QueueFormat::EventBridge
    } else {
        QueueFormat::Raw
    }
}

fn raw_event(msg: &Message<'_>, settings: &Settings, now: DateTime<Utc>) -> Value {
    let body = serde_json::from_str::<Value>(msg.body)
        .unwrap_or_else(|_| Value::String(msg.body.to_owned()));
    let time = msg
        .attributes
        .get("SentTimestamp")
        .and_then(Value::as_str)
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(now);
    json!({
        "version": "0",
        "id": stable_id(&format!("sqs:{}", msg.message_id)),
        "detail-type": "SQS Message",
        "source": "aws.sqs",
        "account": settings.account,
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": msg.region,
        "resources": [msg.queue_arn],
        "detail": {
            "messageId": msg.message_id,
            "body": body,
            "attributes": msg.attributes,
            "messageAttributes": msg.message_attributes,
            "eventSourceARN": msg.queue_arn,
        },
    })
}

/// An SNS envelope (a Notification's fields) → its event: `aws.sns` "SNS Notification", or the
/// S3 events of an S3 notification inside. Shared by SQS and SNS-over-HTTP sources.
pub(crate) fn sns_event(
    v: &Value,
    message_id: &str,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Value>, DecodeError> {
    let message = v["Message"]
        .as_str()
        .ok_or_else(|| DecodeError("the SNS envelope has no Message".to_owned()))?;
    let inner: Option<Value> = serde_json::from_str(message).ok();
    // S3 notifications published to SNS are unwrapped, as if S3 had sent them to the queue.
    if let Some(inner) = inner.as_ref().filter(|i| detect(i) == QueueFormat::S3) {
        return s3_events(inner, message_id, settings);
    }
    let topic = v["TopicArn"].as_str().unwrap_or_default();
    let region = topic
        .split(':')
        .nth(3)
        .unwrap_or(&settings.region)
        .to_owned();
    let mut detail = Map::new();
    for key in [
        "TopicArn",
        "MessageId",
        "Subject",
        "Timestamp",
        "MessageAttributes",
    ] {
        if let Some(x) = v.get(key) {
            detail.insert(key.to_owned(), x.clone());
        }
    }
    detail.insert(
        "Message".to_owned(),
        inner.unwrap_or_else(|| Value::String(message.to_owned())),
    );
    let time = v["Timestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(now, |t| t.with_timezone(&Utc));
    Ok(vec![json!({
        "version": "0",
        "id": stable_id(&format!("sns:{}", v["MessageId"].as_str().unwrap_or(message_id))),
        "detail-type": "SNS Notification",
        "source": "aws.sns",
        "account": settings.account,
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": region,
        "resources": [topic],
        "detail": detail,
    })])
}

/// S3 notification records → EventBridge's S3 events. `s3:TestEvent` → none.
fn s3_events(v: &Value, message_id: &str, settings: &Settings) -> Result<Vec<Value>, DecodeError> {
    if v["Event"] == "s3:TestEvent" {
        tracing::info!(message = "S3 test event dropped.", bucket = %v["Bucket"]);
        return Ok(Vec::new());
    }
    let records = v["Records"]
        .as_array()
        .ok_or_else(|| DecodeError("the S3 notification has no Records".to_owned()))?;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| s3_event(r, &format!("s3:{message_id}:{i}"), settings))
        .collect()
}

fn s3_event(r: &Value, seed: &str, settings: &Settings) -> Result<Value, DecodeError> {
    let name = r["eventName"]
        .as_str()
        .ok_or_else(|| DecodeError("an S3 record has no eventName".to_owned()))?;
    let bucket = r["s3"]["bucket"]["name"]
        .as_str()
        .ok_or_else(|| DecodeError("an S3 record has no bucket name".to_owned()))?;
    let raw_key = r["s3"]["object"]["key"]
        .as_str()
        .ok_or_else(|| DecodeError("an S3 record has no object key".to_owned()))?;
    let key = form_url_decode(raw_key).ok_or_else(|| {
        DecodeError(format!(
            "the S3 key `{raw_key}` is not valid form-URL encoding"
        ))
    })?;
    let (detail_type, reason, deletion) = s3_kind(name);
    let object = &r["s3"]["object"];
    let mut obj = Map::new();
    obj.insert("key".to_owned(), Value::String(key));
    for (from, to) in [
        ("size", "size"),
        ("eTag", "etag"),
        ("versionId", "version-id"),
        ("sequencer", "sequencer"),
    ] {
        if let Some(x) = object.get(from).filter(|x| !x.is_null()) {
            obj.insert(to.to_owned(), x.clone());
        }
    }
    let mut detail = Map::new();
    detail.insert("version".to_owned(), json!("0"));
    detail.insert("bucket".to_owned(), json!({"name": bucket}));
    detail.insert("object".to_owned(), Value::Object(obj));
    if let Some(id) = r["responseElements"]["x-amz-request-id"].as_str() {
        detail.insert("request-id".to_owned(), json!(id));
    }
    if let Some(p) = r["userIdentity"]["principalId"].as_str() {
        detail.insert("requester".to_owned(), json!(p));
    }
    if let Some(ip) = r["requestParameters"]["sourceIPAddress"].as_str() {
        detail.insert("source-ip-address".to_owned(), json!(ip));
    }
    if let Some(reason) = reason {
        detail.insert("reason".to_owned(), json!(reason));
    }
    if let Some(d) = deletion {
        detail.insert("deletion-type".to_owned(), json!(d));
    }
    let time = r["eventTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(String::new, |t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        });
    Ok(json!({
        "version": "0",
        "id": stable_id(seed),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": settings.account,
        "time": time,
        "region": r["awsRegion"].as_str().unwrap_or(&settings.region),
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": detail,
    }))
}

/// (detail-type, reason, deletion-type) of an S3 `eventName`, as EventBridge names them.
fn s3_kind(name: &str) -> (&'static str, Option<&'static str>, Option<&'static str>) {
    match name {
        "ObjectCreated:Put" => ("Object Created", Some("PutObject"), None),
        "ObjectCreated:Post" => ("Object Created", Some("POST Object"), None),
        "ObjectCreated:Copy" => ("Object Created", Some("CopyObject"), None),
        "ObjectCreated:CompleteMultipartUpload" => {
            ("Object Created", Some("CompleteMultipartUpload"), None)
        }
        "ObjectRemoved:Delete" => (
            "Object Deleted",
            Some("DeleteObject"),
            Some("Permanently Deleted"),
        ),
        "ObjectRemoved:DeleteMarkerCreated" => (
            "Object Deleted",
            Some("DeleteObject"),
            Some("Delete Marker Created"),
        ),
        "LifecycleExpiration:Delete" => (
            "Object Deleted",
            Some("Lifecycle Expiration"),
            Some("Permanently Deleted"),
        ),
        "LifecycleExpiration:DeleteMarkerCreated" => (
            "Object Deleted",
            Some("Lifecycle Expiration"),
            Some("Delete Marker Created"),
        ),
        "ObjectRestore:Post" => ("Object Restore Initiated", None, None),
        "ObjectRestore:Completed" => ("Object Restore Completed", None, None),
        "ObjectRestore:Delete" => ("Object Restore Expired", None, None),
        "ObjectTagging:Put" => ("Object Tags Added", None, None),
        "ObjectTagging:Delete" => ("Object Tags Deleted", None, None),
        "ObjectAcl:Put" => ("Object ACL Updated", None, None),
        "LifecycleTransition" => ("Object Storage Class Changed", None, None),
        "IntelligentTiering" => ("Object Access Tier Changed", None, None),
        n if n.starts_with("ObjectCreated:") => ("Object Created", None, None),
        n if n.starts_with("ObjectRemoved:") => ("Object Deleted", None, None),
        _ => ("S3 Event", None, None),
    }
}

/// HTML-form decoding, as S3 encodes keys in notifications: `+` is a space, `%XX` a byte;
/// the bytes must be UTF-8.
pub fn form_url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> Message<'_> {
        Message {
            message_id: "m-1",
            body,
            attributes: Map::new(),
            message_attributes: Map::new(),
            queue_arn: "arn:aws:sqs:us-east-1:123456789012:q",
            region: "us-east-1",
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const S3: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-2","eventTime":"2026-11-23T10:00:00.123Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:AIDA"},"requestParameters":{"sourceIPAddress":"1.2.3.4"},"responseElements":{"x-amz-request-id":"RID"},"s3":{"s3SchemaVersion":"1.0","bucket":{"name":"photos","arn":"arn:aws:s3:::photos"},"object":{"key":"my+photos/%C3%A9t%C3%A9+1.jpg","size":1024,"eTag":"d41d8","sequencer":"0055"}}},{"eventSource":"aws:s3","awsRegion":"eu-west-2","eventTime":"2026-11-23T10:00:01Z","eventName":"ObjectRemoved:DeleteMarkerCreated","s3":{"bucket":{"name":"photos"},"object":{"key":"a%2Bb.txt","versionId":"v1"}}}]}"#;

    #[test]
    fn s3_records_become_eventbridge_s3_events() {
        let events = decode(&msg(S3), QueueFormat::Auto, &Settings::default(), now()).unwrap();
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(e["source"], "aws.s3");
        assert_eq!(e["detail-type"], "Object Created");
        assert_eq!(e["time"], "2026-11-23T10:00:00Z");
        assert_eq!(e["region"], "eu-west-2");
        assert_eq!(e["resources"], json!(["arn:aws:s3:::photos"]));
        assert_eq!(
            e["detail"],
            json!({"version":"0","bucket":{"name":"photos"},"object":{"key":"my photos/été 1.jpg","size":1024,"etag":"d41d8","sequencer":"0055"},
                   "request-id":"RID","requester":"AWS:AIDA","source-ip-address":"1.2.3.4","reason":"PutObject"})
        );
        let d = &events[1];
        assert_eq!(d["detail-type"], "Object Deleted");
        assert_eq!(
            d["detail"]["object"],
            json!({"key": "a+b.txt", "version-id": "v1"})
        );
        assert_eq!(d["detail"]["deletion-type"], "Delete Marker Created");
        assert_ne!(events[0]["id"], events[1]["id"]);
        // The same message decodes to the same ids (so a redelivery deduplicates).
        let again = decode(&msg(S3), QueueFormat::Auto, &Settings::default(), now()).unwrap();
        assert_eq!(events[0]["id"], again[0]["id"]);
    }

    #[test]
    fn s3_test_events_are_dropped() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2014-10-13T15:57:02.089Z","Bucket":"b","RequestId":"R","HostId":"H"}"#;
        assert_eq!(
            decode(&msg(body), QueueFormat::Auto, &Settings::default(), now()).unwrap(),
            Vec::<Value>::new()
        );
    }

    #[test]
    fn sns_envelopes_and_s3_inside_them() {
        let sns = json!({"Type":"Notification","MessageId":"sns-1","TopicArn":"arn:aws:sns:eu-west-1:1:alerts","Subject":"hi","Message":"{\"level\":\"high\"}","Timestamp":"2026-11-23T09:00:00.000Z"}).to_string();
        let e = &decode(&msg(&sns), QueueFormat::Auto, &Settings::default(), now()).unwrap()[0];
        assert_eq!(e["source"], "aws.sns");
        assert_eq!(e["detail-type"], "SNS Notification");
        assert_eq!(e["region"], "eu-west-1");
        assert_eq!(e["detail"]["Message"], json!({"level": "high"}));
        assert_eq!(e["detail"]["Subject"], "hi");
        let wrapped = json!({"Type":"Notification","MessageId":"sns-2","TopicArn":"arn:aws:sns:eu-west-1:1:t","Message":S3}).to_string();
        let events = decode(
            &msg(&wrapped),
            QueueFormat::Auto,
            &Settings::default(),
            now(),
        )
        .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["source"], "aws.s3");
        let text = json!({"Type":"Notification","MessageId":"sns-3","TopicArn":"arn:aws:sns:eu-west-1:1:t","Message":"plain text"}).to_string();
        let e = &decode(&msg(&text), QueueFormat::Auto, &Settings::default(), now()).unwrap()[0];
        assert_eq!(e["detail"]["Message"], "plain text");
    }

    #[test]
    fn eventbridge_events_pass_as_they_are_and_anything_else_is_an_sqs_message() {
        let eb = r#"{"version":"0","id":"x","detail-type":"D","source":"s","account":"1","time":"t","region":"r","resources":[],"detail":{"a":1}}"#;
        let e = &decode(&msg(eb), QueueFormat::Auto, &Settings::default(), now()).unwrap()[0];
        assert_eq!(e, &serde_json::from_str::<Value>(eb).unwrap());
        let e = &decode(
            &msg("{\"order\": 7}"),
            QueueFormat::Auto,
            &Settings::default(),
            now(),
        )
        .unwrap()[0];
        assert_eq!(e["source"], "aws.sqs");
        assert_eq!(e["detail-type"], "SQS Message");
        assert_eq!(e["detail"]["body"], json!({"order": 7}));
        assert_eq!(
            e["detail"]["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        let e = &decode(
            &msg("not json"),
            QueueFormat::Auto,
            &Settings::default(),
            now(),
        )
        .unwrap()[0];
        assert_eq!(e["detail"]["body"], "not json");
        // Pinned formats: raw keeps even S3-looking bodies raw; s3 refuses what is not S3.
        let e = &decode(&msg(S3), QueueFormat::Raw, &Settings::default(), now()).unwrap()[0];
        assert_eq!(e["source"], "aws.sqs");
        assert!(
            decode(
                &msg("not json"),
                QueueFormat::S3,
                &Settings::default(),
                now()
            )
            .is_err()
        );
        assert!(
            decode(
                &msg("{\"a\":1}"),
                QueueFormat::EventBridge,
                &Settings::default(),
                now()
            )
            .is_err()
        );
    }

    #[test]
    fn form_url_decoding() {
        assert_eq!(
            form_url_decode("my+photos%2F1.jpg").as_deref(),
            Some("my photos/1.jpg")
        );
        assert_eq!(form_url_decode("a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(
            form_url_decode("plain/key.txt").as_deref(),
            Some("plain/key.txt")
        );
        assert_eq!(form_url_decode("bad%zz"), None);
        assert_eq!(form_url_decode("cut%4"), None);
        assert_eq!(form_url_decode("%ff%fe"), None);
    }
}
