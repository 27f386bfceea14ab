//! Sample events for `trigd event KIND`: the shapes AWS sends, to start a test from (as
//! `sam local generate-event` does).

/// Every kind, with its sample.
pub const SAMPLES: &[(&str, &str)] = &[
    ("scheduled", include_str!("events/scheduled.json")),
    ("s3-put", include_str!("events/s3-put.json")),
    ("sqs", include_str!("events/sqs.json")),
    ("sns", include_str!("events/sns.json")),
    ("eventbridge", include_str!("events/eventbridge.json")),
    ("api-gateway-v1", include_str!("events/api-gateway-v1.json")),
    ("api-gateway-v2", include_str!("events/api-gateway-v2.json")),
];

/// The sample of `kind`.
pub fn sample(kind: &str) -> Option<&'static str> {
    SAMPLES.iter().find(|(k, _)| *k == kind).map(|(_, s)| *s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_sample_is_json_with_its_shape() {
        for (kind, text) in super::SAMPLES {
            let v: serde_json::Value =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{kind}: {e}"));
            match *kind {
                "s3-put" => assert_eq!(v["Records"][0]["eventSource"], "aws:s3", "{kind}"),
                "sqs" => assert_eq!(v["Records"][0]["eventSource"], "aws:sqs", "{kind}"),
                "sns" => assert_eq!(v["Records"][0]["EventSource"], "aws:sns", "{kind}"),
                "scheduled" => assert_eq!(v["detail-type"], "Scheduled Event", "{kind}"),
                "eventbridge" => assert!(v["detail"].is_object(), "{kind}"),
                "api-gateway-v1" => assert!(v["httpMethod"].is_string(), "{kind}"),
                "api-gateway-v2" => assert_eq!(v["version"], "2.0", "{kind}"),
                _ => panic!("no check for {kind}"),
            }
        }
    }
}
