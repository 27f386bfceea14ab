//! SNS notifications as Lambda hands them to a subscribed function:
//! `{"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn",
//! "Sns": {...}}]}`, the envelope's fields with Lambda's spelling (`SigningCertUrl`,
//! `UnsubscribeUrl`), `Subject` null when the message had none, and `MessageAttributes` `{}`
//! when it had none.

use serde_json::{Map, Value, json};

/// True for an SNS `Notification` envelope (over HTTP, or an SQS body without raw delivery).
pub fn is_notification(v: &Value) -> bool {
    v["Type"] == "Notification" && v["TopicArn"].is_string() && v["Message"].is_string()
}

/// The event of one notification, delivered by the subscription `subscription_arn`.
pub fn invocation(envelope: &Value, subscription_arn: &str) -> Value {
    let field = |k: &str| envelope.get(k).cloned().unwrap_or(Value::Null);
    let attributes = match envelope.get("MessageAttributes") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        _ => Value::Object(Map::new()),
    };
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": {
            "Type": field("Type"),
            "MessageId": field("MessageId"),
            "TopicArn": field("TopicArn"),
            "Subject": field("Subject"),
            "Message": field("Message"),
            "Timestamp": field("Timestamp"),
            "SignatureVersion": field("SignatureVersion"),
            "Signature": field("Signature"),
            "SigningCertUrl": field("SigningCertURL"),
            "UnsubscribeUrl": field("UnsubscribeURL"),
            "MessageAttributes": attributes,
        }
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_becomes_lambdas_record() {
        let envelope = json!({
            "Type": "Notification", "MessageId": "m1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts",
            "Message": "{\"a\":1}", "Timestamp": "2026-12-04T10:00:00.000Z",
            "SignatureVersion": "1", "Signature": "c2ln",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {"k": {"Type": "String", "Value": "v"}}
        });
        assert!(is_notification(&envelope));
        let e = invocation(&envelope, "arn:aws:sns:us-east-1:123456789012:alerts:sub");
        let r = &e["Records"][0];
        assert_eq!(r["EventSource"], "aws:sns");
        assert_eq!(
            r["EventSubscriptionArn"],
            "arn:aws:sns:us-east-1:123456789012:alerts:sub"
        );
        let sns = &r["Sns"];
        // The message stays a string, as SNS sent it.
        assert_eq!(sns["Message"], "{\"a\":1}");
        assert_eq!(sns["Subject"], Value::Null);
        assert_eq!(
            sns["SigningCertUrl"],
            "https://sns.us-east-1.amazonaws.com/x.pem"
        );
        assert_eq!(sns["MessageAttributes"]["k"]["Value"], "v");
        let keys: Vec<&str> = sns
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "Type",
                "MessageId",
                "TopicArn",
                "Subject",
                "Message",
                "Timestamp",
                "SignatureVersion",
                "Signature",
                "SigningCertUrl",
                "UnsubscribeUrl",
                "MessageAttributes"
            ]
        );
        let bare = json!({"Type": "Notification", "TopicArn": "t", "Message": "m", "Subject": "s"});
        let e = invocation(&bare, "x");
        assert_eq!(e["Records"][0]["Sns"]["Subject"], "s");
        assert_eq!(e["Records"][0]["Sns"]["MessageAttributes"], json!({}));
        assert!(!is_notification(
            &json!({"Type": "SubscriptionConfirmation", "TopicArn": "t", "Message": "m"})
        ));
    }
}
