//! S3 event notifications as Lambda hands them to a function: `{"Records": [record]}`, one
//! record per invocation, each as S3 wrote it (keys form-URL-encoded, as S3 sends them).

use serde_json::{Value, json};

/// The records of an S3 notification (none for `s3:TestEvent`, which S3 sends once when a
/// notification is configured and Lambda never sees); `None` when `v` is no S3 notification.
pub fn records(v: &Value) -> Option<&[Value]> {
    if v["Event"] == "s3:TestEvent" {
        return Some(&[]);
    }
    let records = v["Records"].as_array()?;
    let all_s3 = !records.is_empty() && records.iter().all(|r| r["eventSource"] == "aws:s3");
    all_s3.then_some(records.as_slice())
}

/// The event of one record.
pub fn invocation(record: &Value) -> Value {
    json!({ "Records": [record] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_notifications_and_none_of_anything_else() {
        let n = json!({"Records": [
            {"eventSource": "aws:s3", "s3": {"object": {"key": "a+b%2B.jpg"}}},
            {"eventSource": "aws:s3", "s3": {"object": {"key": "c"}}}
        ]});
        let rs = records(&n).unwrap();
        assert_eq!(rs.len(), 2);
        // As S3 sent it: the key stays encoded.
        assert_eq!(
            invocation(&rs[0]),
            json!({"Records": [{"eventSource": "aws:s3", "s3": {"object": {"key": "a+b%2B.jpg"}}}]})
        );
        assert_eq!(
            records(&json!({"Event": "s3:TestEvent", "Bucket": "b"})),
            Some(&[][..])
        );
        for other in [
            json!({"Records": []}),
            json!({"Records": [{"eventSource": "aws:sqs"}]}),
            json!({"Type": "Notification"}),
            json!("text"),
        ] {
            assert_eq!(records(&other), None, "{other}");
        }
    }
}
