//! What makes an SNS HTTP(S) message trustworthy, as AWS documents it: the message types, the
//! canonical string each is signed over, SHA1withRSA (`SignatureVersion` 1) and
//! SHA256withRSA (2), the hosts that may serve signing certificates and subscription URLs, and
//! the replay window. Pure: no IO, and the clock comes in as an argument. The IO (fetching
//! certificates, confirming subscriptions) is in `sns_http`.

use std::time::Duration;

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::Url;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Map, Value};

use crate::rules::TrustedHost;

/// How far in the future a `Timestamp` may be (clock skew) before the message is refused.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Why an SNS message is refused. [`SnsError::reason`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    #[error(
        "the body is not an SNS message envelope; raw message delivery cannot be verified, turn it off for this subscription"
    )]
    RawDelivery,
    #[error("{0}")]
    Malformed(String),
    #[error("the message is not signed: `{0}` is missing")]
    Unsigned(&'static str),
    #[error("unsupported SignatureVersion {0}; expected \"1\" or \"2\"")]
    SignatureVersion(String),
    #[error("the signing certificate URL `{0}` is not on a trusted host")]
    UntrustedCertHost(String),
    #[error("the signing certificate could not be fetched: {0}")]
    CertUnavailable(String),
    #[error("the signing certificate cannot be used: {0}")]
    BadCertificate(String),
    #[error("the signature does not match the message")]
    BadSignature,
    #[error("topic `{0}` is not one of this source's topic_arns")]
    TopicNotAllowed(String),
    #[error("the message's Timestamp {0} is {1}")]
    Stale(String, &'static str),
    #[error("the SubscribeURL `{0}` is not on a trusted host; not visited")]
    UntrustedSubscribeUrl(String),
    #[error("the subscription could not be confirmed: {0}")]
    ConfirmFailed(String),
}

impl SnsError {
    /// The short label of `trigd_events_rejected_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            SnsError::RawDelivery => "raw_delivery",
            SnsError::Malformed(_) => "malformed",
            SnsError::Unsigned(_) => "unsigned",
            SnsError::SignatureVersion(_) => "bad_signature_version",
            SnsError::UntrustedCertHost(_) => "untrusted_cert_host",
            SnsError::CertUnavailable(_) => "cert_unavailable",
            SnsError::BadCertificate(_) => "bad_certificate",
            SnsError::BadSignature => "bad_signature",
            SnsError::TopicNotAllowed(_) => "topic_not_allowed",
            SnsError::Stale(..) => "stale",
            SnsError::UntrustedSubscribeUrl(_) => "untrusted_subscribe_url",
            SnsError::ConfirmFailed(_) => "confirm_failed",
        }
    }

    /// Whether SNS should deliver the message again: the failure was ours or the network's,
    /// not the message's (answered with a 5xx, which SNS retries).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            SnsError::CertUnavailable(_) | SnsError::ConfirmFailed(_)
        )
    }
}

/// The three kinds of message SNS sends to an HTTP(S) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    SubscriptionConfirmation,
    Notification,
    UnsubscribeConfirmation,
}

impl MessageType {
    pub fn parse(s: &str) -> Option<MessageType> {
        match s {
            "SubscriptionConfirmation" => Some(MessageType::SubscriptionConfirmation),
            "Notification" => Some(MessageType::Notification),
            "UnsubscribeConfirmation" => Some(MessageType::UnsubscribeConfirmation),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageType::Notification => "Notification",
            MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    /// The keys signed, in the order they are signed (byte-wise alphabetical). `Subject` is
    /// signed only when the message has one.
    fn signed_keys(self) -> &'static [&'static str] {
        match self {
            MessageType::Notification => &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ],
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ],
        }
    }
}

/// How a message is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// RSA PKCS#1 v1.5 with SHA-1.
    V1,
    /// RSA PKCS#1 v1.5 with SHA-256.
    V2,
}

/// A message whose envelope is complete, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: MessageType,
    pub message_id: String,
    pub topic_arn: String,
    pub timestamp: DateTime<Utc>,
    /// Confirmations only.
    pub subscribe_url: Option<String>,
    pub version: SignatureVersion,
    pub signature: Vec<u8>,
    pub cert_url: String,
    /// What the signature is over.
    pub string_to_sign: String,
}

/// Reads a message's envelope. `header_type` is the `x-amz-sns-message-type` header, which
/// must agree with the body's `Type` when present.
pub fn parse(body: &Value, header_type: Option<&str>) -> Result<Envelope, SnsError> {
    let Some(fields) = body.as_object() else {
        return Err(SnsError::RawDelivery);
    };
    let Some(type_name) = fields.get("Type").and_then(Value::as_str) else {
        return Err(SnsError::RawDelivery);
    };
    let kind = MessageType::parse(type_name)
        .ok_or_else(|| SnsError::Malformed(format!("unknown message Type `{type_name}`")))?;
    if let Some(h) = header_type
        && h != type_name
    {
        return Err(SnsError::Malformed(format!(
            "the x-amz-sns-message-type header says `{h}` but the message's Type is `{type_name}`"
        )));
    }
    let version = match fields.get("SignatureVersion") {
        None | Some(Value::Null) => {
            return Err(SnsError::SignatureVersion("(missing)".to_owned()));
        }
        Some(v) if v == "1" => SignatureVersion::V1,
        Some(v) if v == "2" => SignatureVersion::V2,
        Some(v) => return Err(SnsError::SignatureVersion(v.to_string())),
    };
    let signature = match fields.get("Signature").and_then(Value::as_str) {
        None | Some("") => return Err(SnsError::Unsigned("Signature")),
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| SnsError::BadSignature)?,
    };
    let cert_url = match fields.get("SigningCertURL").and_then(Value::as_str) {
        None | Some("") => return Err(SnsError::Unsigned("SigningCertURL")),
        Some(s) => s.to_owned(),
    };
    let string_to_sign = string_to_sign(kind, fields)?;
    let text = |key: &str| -> Result<String, SnsError> {
        fields
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SnsError::Malformed(format!("`{key}` is missing")))
    };
    let timestamp = text("Timestamp")?;
    let timestamp = DateTime::parse_from_rfc3339(&timestamp)
        .map_err(|_| {
            SnsError::Malformed(format!(
                "the Timestamp `{timestamp}` is not an ISO 8601 time"
            ))
        })?
        .with_timezone(&Utc);
    Ok(Envelope {
        kind,
        message_id: text("MessageId")?,
        topic_arn: text("TopicArn")?,
        timestamp,
        subscribe_url: match kind {
            MessageType::Notification => None,
            _ => Some(text("SubscribeURL")?),
        },
        version,
        signature,
        cert_url,
        string_to_sign,
    })
}

/// AWS's canonical string: `Key\nvalue\n` for each signed key present, in order. Values are
/// the JSON-decoded strings. Every signed key but `Subject` must be present, as a string.
pub fn string_to_sign(kind: MessageType, fields: &Map<String, Value>) -> Result<String, SnsError> {
    let mut out = String::new();
    for &key in kind.signed_keys() {
        let value = match fields.get(key) {
            Some(Value::String(s)) => s,
            None | Some(Value::Null) if key == "Subject" => continue,
            None | Some(Value::Null) => {
                return Err(SnsError::Malformed(format!("`{key}` is missing")));
            }
            Some(_) => {
                return Err(SnsError::Malformed(format!("`{key}` must be a string")));
            }
        };
        out.push_str(key);
        out.push('\n');
        out.push_str(value);
        out.push('\n');
    }
    Ok(out)
}

/// Checks the signature of `envelope` with the certificate's public key (an X.509
/// SubjectPublicKeyInfo, DER).
pub fn verify_signature(envelope: &Envelope, spki: &[u8]) -> Result<(), SnsError> {
    let key = match envelope.version {
        SignatureVersion::V1 => {
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, spki)
        }
        SignatureVersion::V2 => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki),
    };
    key.verify(envelope.string_to_sign.as_bytes(), &envelope.signature)
        .map_err(|_| SnsError::BadSignature)
}

/// The public key (SubjectPublicKeyInfo, DER) of the first certificate in a PEM file; it must
/// be an RSA key. The certificate's chain and dates are not checked: its URL is on a trusted
/// host, fetched over https (the server's own certificate is checked by TLS).
pub fn public_key_from_pem(pem: &[u8]) -> Result<Vec<u8>, SnsError> {
    let der = CertificateDer::from_pem_slice(pem)
        .map_err(|e| SnsError::BadCertificate(format!("not a PEM certificate: {e}")))?;
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| SnsError::BadCertificate(format!("not an X.509 certificate: {e}")))?;
    let spki = cert.subject_public_key_info();
    aws_lc_rs::rsa::PublicKey::from_der(spki.as_ref())
        .map_err(|_| SnsError::BadCertificate("its key is not an RSA key".to_owned()))?;
    Ok(spki.as_ref().to_vec())
}

/// Refuses a message from a topic the source does not list (an empty list allows any).
pub fn check_topic(topic_arn: &str, allowed: &[String]) -> Result<(), SnsError> {
    if allowed.is_empty() || allowed.iter().any(|t| t == topic_arn) {
        Ok(())
    } else {
        Err(SnsError::TopicNotAllowed(topic_arn.to_owned()))
    }
}

/// Refuses a message older than `max_age`, or from further in the future than clock skew
/// explains: a replay.
pub fn check_age(
    timestamp: DateTime<Utc>,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Result<(), SnsError> {
    let age = now.signed_duration_since(timestamp);
    let show = || timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if age.to_std().is_ok_and(|a| a > max_age) {
        return Err(SnsError::Stale(show(), "older than the source's max_age"));
    }
    if (-age).to_std().is_ok_and(|ahead| ahead > MAX_CLOCK_SKEW) {
        return Err(SnsError::Stale(show(), "in the future"));
    }
    Ok(())
}

/// What a URL is for: certificates must also be `.pem` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlUse {
    Certificate,
    Subscribe,
}

/// AWS's documented SNS host rule: `^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$`.
pub fn is_aws_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"));
    region
        .is_some_and(|r| r.len() >= 3 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// The URL, parsed, when trigd may fetch it: https on an AWS SNS host, or a host the source
/// trusts (with its scheme and port); no user name or password; a certificate's path ends in
/// `.pem`. Anything else is refused without being fetched.
pub fn trusted_url(url: &str, extra: &[TrustedHost], what: UrlUse) -> Option<Url> {
    let parsed = Url::parse(url).ok()?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return None;
    }
    if what == UrlUse::Certificate && !parsed.path().ends_with(".pem") {
        return None;
    }
    let raw_host = parsed.host_str()?;
    let host = match raw_host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok()?.to_string(),
        None => raw_host.to_ascii_lowercase(),
    };
    let scheme = parsed.scheme();
    let aws = scheme == "https" && is_aws_sns_host(&host);
    let listed = extra.iter().any(|t| {
        let scheme_ok = scheme == if t.http { "http" } else { "https" };
        let host_ok = match t.host.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == t.host,
        };
        let port_ok = t.port.is_none() || t.port == parsed.port_or_known_default();
        scheme_ok && host_ok && port_ok
    });
    (aws || listed).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_trusted_host_rule_is_aws_sns() {
        let ok = |u: &str| trusted_url(u, &[], UrlUse::Certificate).is_some();
        assert!(ok(
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"
        ));
        assert!(ok(
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem"
        ));
        assert!(!ok("http://sns.us-east-1.amazonaws.com/x.pem"), "not https");
        assert!(!ok("https://sns.evil.com/x.pem"));
        assert!(!ok("https://sns.evil.com/"));
        assert!(!ok("https://sns.us-east-1.amazonaws.com.evil.com/x.pem"));
        assert!(!ok("https://evil.com/sns.us-east-1.amazonaws.com/x.pem"));
        assert!(!ok("https://sns.us-east-1.amazonaws.com@evil.com/x.pem"));
        assert!(!ok("https://sns.us-east-1.amazonaws.com/x.txt"), "not .pem");
        assert!(!ok("https://sns.a.amazonaws.com/x.pem"), "region too short");
        assert!(!ok("https://sns.us_east.amazonaws.com/x.pem"));
        assert!(!ok("not a url"));
        // Subscribe URLs have no path rule.
        assert!(
            trusted_url(
                "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=t",
                &[],
                UrlUse::Subscribe
            )
            .is_some()
        );
    }

    #[test]
    fn extra_trusted_hosts() {
        let hosts: Vec<TrustedHost> = ["http://127.0.0.1:8080", "*.example.com", "[::1]:9"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let ok = |u: &str| trusted_url(u, &hosts, UrlUse::Certificate).is_some();
        assert!(ok("http://127.0.0.1:8080/c.pem"));
        assert!(!ok("http://127.0.0.1:8081/c.pem"), "other port");
        assert!(!ok("https://127.0.0.1:8080/c.pem"), "other scheme");
        assert!(!ok("http://127.0.0.2:8080/c.pem"), "other loopback host");
        assert!(ok("https://certs.example.com/c.pem"));
        assert!(ok("https://a.b.example.com:8443/c.pem"));
        assert!(!ok("https://example.com/c.pem"));
        assert!(!ok("https://badexample.com/c.pem"));
        assert!(!ok("http://certs.example.com/c.pem"));
        assert!(ok("https://[::1]:9/c.pem"), "no scheme is https");
        assert!(!ok("http://[::1]:9/c.pem"), "listed without http");
    }

    #[test]
    fn trusted_host_entries() {
        let h: TrustedHost = "http://[0:0::1]:80".parse().unwrap();
        assert_eq!((h.http, h.host.as_str(), h.port), (true, "::1", Some(80)));
        let h: TrustedHost = "Certs.Example.COM".parse().unwrap();
        assert_eq!(
            (h.http, h.host.as_str(), h.port),
            (false, "certs.example.com", None)
        );
        for bad in [
            "http://10.0.0.1",
            "http://example.com",
            "ftp://x.com",
            "x.com/path",
            "x.com:0",
            "x.com:http",
            "user@x.com",
            "exa mple.com",
            "*.",
            "::1",
        ] {
            assert!(bad.parse::<TrustedHost>().is_err(), "{bad}");
        }
    }

    fn notification() -> Value {
        json!({
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
            "Subject": "My First Message",
            "Message": "Hello\nworld!",
            "Timestamp": "2012-05-02T00:54:06.655Z",
            "SignatureVersion": "1",
            "Signature": "AAAA",
            "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f.pem",
            "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {"a": {"Type": "String", "Value": "v"}}
        })
    }

    #[test]
    fn strings_to_sign() {
        let mut n = notification();
        let e = parse(&n, Some("Notification")).unwrap();
        assert_eq!(
            e.string_to_sign,
            "Message\nHello\nworld!\nMessageId\nm-1\nSubject\nMy First Message\nTimestamp\n2012-05-02T00:54:06.655Z\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n"
        );
        n.as_object_mut().unwrap().remove("Subject");
        let e = parse(&n, None).unwrap();
        assert_eq!(
            e.string_to_sign,
            "Message\nHello\nworld!\nMessageId\nm-1\nTimestamp\n2012-05-02T00:54:06.655Z\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n",
            "no Subject, no Subject line"
        );
        let c = json!({
            "Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "tok",
            "TopicArn": "arn:aws:sns:us-west-2:1:T", "Message": "confirm", "Subject": "ignored",
            "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": "2012-04-26T20:45:04.751Z", "SignatureVersion": "2", "Signature": "AAAA",
            "SigningCertURL": "https://sns.us-west-2.amazonaws.com/x.pem"
        });
        let e = parse(&c, None).unwrap();
        assert_eq!(
            e.string_to_sign,
            "Message\nconfirm\nMessageId\nm\nSubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription\nTimestamp\n2012-04-26T20:45:04.751Z\nToken\ntok\nTopicArn\narn:aws:sns:us-west-2:1:T\nType\nSubscriptionConfirmation\n"
        );
        assert_eq!(e.version, SignatureVersion::V2);
        assert!(e.subscribe_url.is_some());
    }

    #[test]
    fn refusals_before_any_verification() {
        let reason =
            |v: &Value, header: Option<&str>| parse(v, header).map(|_| ()).map_err(|e| e.reason());
        let without = |key: &str| {
            let mut n = notification();
            n.as_object_mut().unwrap().remove(key);
            reason(&n, None)
        };
        let with = |key: &str, value: Value| {
            let mut n = notification();
            n[key] = value;
            reason(&n, None)
        };
        assert_eq!(reason(&notification(), None), Ok(()));
        assert_eq!(without("Type"), Err("raw_delivery"));
        assert_eq!(reason(&json!("hello"), None), Err("raw_delivery"));
        assert_eq!(with("Type", json!("Other")), Err("malformed"));
        assert_eq!(without("Signature"), Err("unsigned"));
        assert_eq!(without("SigningCertURL"), Err("unsigned"));
        assert_eq!(without("SignatureVersion"), Err("bad_signature_version"));
        assert_eq!(
            with("SignatureVersion", json!("3")),
            Err("bad_signature_version")
        );
        assert_eq!(
            with("SignatureVersion", json!(1)),
            Err("bad_signature_version")
        );
        assert_eq!(with("Signature", json!("!!")), Err("bad_signature"));
        assert_eq!(without("MessageId"), Err("malformed"));
        assert_eq!(with("Message", json!({"a": 1})), Err("malformed"));
        assert_eq!(with("Timestamp", json!("yesterday")), Err("malformed"));
        assert_eq!(
            reason(&notification(), Some("SubscriptionConfirmation")),
            Err("malformed")
        );
    }

    #[test]
    fn replay_window_and_topics() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let now = t("2026-11-23T12:00:00Z");
        let hour = Duration::from_secs(3600);
        assert!(check_age(t("2026-11-23T11:00:00Z"), now, hour).is_ok());
        assert_eq!(
            check_age(t("2026-11-23T10:59:59Z"), now, hour).map_err(|e| e.reason()),
            Err("stale")
        );
        assert!(check_age(t("2026-11-23T12:05:00Z"), now, hour).is_ok());
        assert!(check_age(t("2026-11-23T12:05:01Z"), now, hour).is_err());
        assert!(check_topic("arn:aws:sns:r:1:a", &[]).is_ok());
        let allowed = ["arn:aws:sns:r:1:a".to_owned()];
        assert!(check_topic("arn:aws:sns:r:1:a", &allowed).is_ok());
        assert_eq!(
            check_topic("arn:aws:sns:r:1:b", &allowed).map_err(|e| e.reason()),
            Err("topic_not_allowed")
        );
    }

    #[test]
    fn certificates_must_be_pem_rsa() {
        assert_eq!(
            public_key_from_pem(b"hello").map_err(|e| e.reason()),
            Err("bad_certificate")
        );
        let junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            public_key_from_pem(junk).map_err(|e| e.reason()),
            Err("bad_certificate")
        );
    }
}
