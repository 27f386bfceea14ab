//! Against moto's server, a real AWS emulator on 127.0.0.1: the official SDK in trigd talks to
//! it through the ordinary endpoint override. A missing moto fails these tests loudly.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::harness::{Daemon, wait_dead_letter, wait_for, write_rules};
use crate::util::root;

/// A `moto_server` child process on a free port. It can be stopped and started again on the
/// same port ([`Moto::stop`], [`Moto::restart`]); moto keeps its state in memory only, so a
/// restart begins empty.
pub(crate) struct Moto {
    child: Option<Child>,
    bin: PathBuf,
    port: u16,
    pub url: String,
}

/// Runs moto's server after creating SQS queues in its in-memory backend, so that they exist
/// before the port opens (nobody can see moto up without them).
const PRELOAD: &str = r#"
import sys
from moto.sqs.models import sqs_backends
from moto.server import main
for name in sys.argv[2:]:
    sqs_backends["123456789012"]["us-east-1"].create_queue(name)
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

impl Moto {
    pub fn start() -> Moto {
        let bin = std::env::var_os("MOTO_SERVER")
            .map(PathBuf::from)
            .or_else(|| Some(root().join(".venv-moto/bin/moto_server")).filter(|p| p.exists()))
            .unwrap_or_else(|| {
                panic!(
                    "moto_server not found: these tests need moto's server. Install it with \
                     `python3 -m venv .venv-moto && .venv-moto/bin/pip install 'moto[server]'` \
                     (scripts/test does this), or set MOTO_SERVER to its path"
                )
            });
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut moto = Moto {
            child: None,
            bin,
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        let mut cmd = Command::new(&moto.bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        moto.spawn(cmd);
        moto
    }

    fn spawn(&mut self, mut cmd: Command) {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
        let probe = format!("127.0.0.1:{}", self.port);
        wait_for("moto to listen", || {
            std::net::TcpStream::connect(&probe).ok()
        });
    }

    /// Kills the server and waits until its port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let probe = format!("127.0.0.1:{}", self.port);
        wait_for("moto's port to close", || {
            std::net::TcpStream::connect(&probe).err()
        });
    }

    /// Starts the server again on the same port, with these (standard) SQS queues already
    /// created: its state was lost with the process. Uses the Python next to `moto_server`.
    pub fn restart(&mut self, queues: &[&str]) {
        assert!(self.child.is_none(), "moto is still running");
        let python = self.bin.with_file_name("python3");
        assert!(
            python.exists(),
            "restarting moto with queues needs {} (the Python of moto's venv)",
            python.display()
        );
        let mut cmd = Command::new(python);
        cmd.args(["-c", PRELOAD, &self.port.to_string()])
            .args(queues);
        self.spawn(cmd);
    }

    /// An SQS client for the test itself.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        aws_sdk_sqs::Client::new(&conf)
    }

    pub async fn conf(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await
    }

    /// Creates a standard queue; its URL.
    pub async fn queue(&self, name: &str) -> String {
        self.sqs()
            .await
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap()
    }

    /// Switches Lambda to moto's Docker-less backend: Invoke answers (echo, or canned
    /// responses), no code runs.
    pub async fn lambda_without_docker(&self) {
        let config = reqwest::Client::new()
            .post(format!("{}/moto-api/config", self.url))
            .header("Content-Type", "application/json")
            .body(r#"{"lambda":{"use_docker":false}}"#)
            .send()
            .await
            .unwrap();
        assert!(config.status().is_success());
    }

    /// The environment trigd needs to reach this moto.
    pub fn env(&self) -> [(&'static str, &str); 4] {
        [
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `trigd run` on one rule file against this moto, in a temporary directory that lives as
/// long as the first element.
pub(crate) fn daemon(moto: &Moto, rules_yaml: &str) -> (tempfile::TempDir, PathBuf, Daemon) {
    daemon_with(moto, rules_yaml, &[])
}

/// As [`daemon`], with more `trigd run` arguments.
pub(crate) fn daemon_with(
    moto: &Moto,
    rules_yaml: &str,
    args: &[&str],
) -> (tempfile::TempDir, PathBuf, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(&rules, "r.yaml", rules_yaml);
    let state = dir.path().join("state");
    let d = Daemon::start_with_env(&rules, &state, args, &moto.env());
    (dir, state, d)
}

pub(crate) async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    n: usize,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + crate::harness::DEADLINE;
    while got.len() < n && tokio::time::Instant::now() < deadline {
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        got.extend(r.messages.unwrap_or_default());
    }
    got
}

pub(crate) async fn post(url: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sqs_target_receives_the_transformed_payloads() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let queue = moto.queue("uploads").await;
    let text = format!(
        r#"
rules:
  - name: jpegs
    pattern: {{source: [s3], detail: {{key: [{{suffix: .jpg}}]}}}}
    targets:
      - id: queue
        sqs: {queue}
        input_transformer:
          input_paths: {{key: $.detail.key}}
          input_template: '{{"thumbnail_for": <key>}}'
"#
    );
    let (_dir, _state, d) = daemon(&moto, &text);
    for key in ["a b/c.jpg", "x.png", "d.jpg"] {
        let body = serde_json::json!({"key": key}).to_string();
        assert_eq!(post(&d.url("/events/s3"), &body).await, 200);
    }
    let got = receive_all(&sqs, &queue, 2).await;
    let mut bodies: Vec<String> = got.iter().filter_map(|m| m.body.clone()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec![
            r#"{"thumbnail_for": "a b/c.jpg"}"#,
            r#"{"thumbnail_for": "d.jpg"}"#
        ]
    );
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifo_queues_get_the_group_and_the_delivery_id_as_deduplication_id() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let queue = sqs
        .create_queue()
        .queue_name("orders.fifo")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let (_dir, _state, d) = daemon(
        &moto,
        &format!(
            "rules:\n  - name: orders\n    pattern: {{source: [shop]}}\n    targets:\n      - id: q\n        sqs: {queue}\n        message_group_id: shop\n"
        ),
    );
    assert_eq!(post(&d.url("/events/shop"), "{\"n\":1}").await, 200);
    let got = receive_all(&sqs, &queue, 1).await;
    let attrs = got[0].attributes.clone().unwrap_or_default();
    use aws_sdk_sqs::types::MessageSystemAttributeName as A;
    assert_eq!(
        attrs.get(&A::MessageGroupId).map(String::as_str),
        Some("shop")
    );
    assert_eq!(
        attrs.get(&A::MessageDeduplicationId).map(String::len),
        Some(36)
    );
    let event: Value = serde_json::from_str(got[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(event["detail"]["n"], 1);
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_queue_is_a_dead_letter_with_the_reason() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let queue = moto.queue("gone").await;
    sqs.delete_queue().queue_url(&queue).send().await.unwrap();
    let (_dir, state, d) = daemon(
        &moto,
        &format!(
            "rules:\n  - name: r\n    pattern: {{source: [shop]}}\n    targets:\n      - id: q\n        sqs: {queue}\n"
        ),
    );
    assert_eq!(post(&d.url("/events/shop"), "{}").await, 200);
    let record = wait_dead_letter(&state, |_| true);
    assert_eq!(record["error_code"], "NO_RESOURCE", "{record}");
    assert_eq!(record["attempts"], 1);
    assert!(
        record["last_error"]
            .as_str()
            .unwrap()
            .contains("QueueDoesNotExist")
            || record["last_error"]
                .as_str()
                .unwrap()
                .contains("NonExistentQueue"),
        "{record}"
    );
    assert_eq!(d.stop(), 0);
}

pub(crate) fn s3_notification(keys: &[&str]) -> String {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| {
            serde_json::json!({"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
                "eventTime":"2026-11-23T10:00:00.000Z","eventName":"ObjectCreated:Put",
                "s3":{"s3SchemaVersion":"1.0","bucket":{"name":"photos","arn":"arn:aws:s3:::photos"},
                      "object":{"key":k,"size":5,"eTag":"e","sequencer":"01"}}})
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

pub(crate) async fn approximate_count(sqs: &aws_sdk_sqs::Client, url: &str) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName as Q;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Q::ApproximateNumberOfMessages)
        .attribute_names(Q::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    (
        attrs
            .get(&Q::ApproximateNumberOfMessages)
            .cloned()
            .unwrap_or_default(),
        attrs
            .get(&Q::ApproximateNumberOfMessagesNotVisible)
            .cloned()
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sqs_source_decodes_s3_sns_eventbridge_and_raw_messages() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let inbox = moto.queue("inbox").await;
    let thumbs = moto.queue("thumbs").await;
    let others = moto.queue("others").await;
    let text = format!(
        r#"
sources:
  uploads:
    sqs: {{queue_url: {inbox}}}
rules:
  - name: thumbnails
    pattern:
      source: [aws.s3]
      detail-type: [Object Created]
      detail: {{object: {{key: [{{suffix: .jpg}}]}}}}
    targets:
      - id: q
        sqs: {thumbs}
        input_transformer:
          input_paths: {{bucket: $.detail.bucket.name, key: $.detail.object.key}}
          input_template: '{{"bucket": <bucket>, "key": <key>}}'
  - name: the-rest
    pattern:
      $or:
        - source: [aws.sqs]
        - source: [custom]
    targets:
      - id: q
        sqs: {others}
        input_path: $.source
"#
    );
    let (_dir, _state, d) = daemon(&moto, &text);
    let bodies = [
        s3_notification(&["holiday+photos/%C3%A9t%C3%A9+1.jpg", "notes.txt"]),
        r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-23T10:00:00.000Z","Bucket":"photos","RequestId":"R","HostId":"H"}"#.to_owned(),
        serde_json::json!({"Type":"Notification","MessageId":"s-1","TopicArn":"arn:aws:sns:us-east-1:123456789012:uploads",
            "Message": s3_notification(&["a%2Fb/c.jpg"]),"Timestamp":"2026-11-23T10:00:00.000Z"}).to_string(),
        r#"{"version":"0","id":"e-1","detail-type":"Thing","source":"custom","account":"123456789012","time":"2026-11-23T10:00:00Z","region":"us-east-1","resources":[],"detail":{}}"#.to_owned(),
        "just some text".to_owned(),
    ];
    for body in &bodies {
        sqs.send_message()
            .queue_url(&inbox)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let got = receive_all(&sqs, &thumbs, 2).await;
    let mut thumbs_bodies: Vec<Value> = got
        .iter()
        .map(|m| serde_json::from_str(m.body.as_deref().unwrap()).unwrap())
        .collect();
    thumbs_bodies.sort_by_key(|v| v["key"].as_str().unwrap().to_owned());
    assert_eq!(
        thumbs_bodies,
        vec![
            serde_json::json!({"bucket": "photos", "key": "a/b/c.jpg"}),
            serde_json::json!({"bucket": "photos", "key": "holiday photos/été 1.jpg"}),
        ]
    );
    let got = receive_all(&sqs, &others, 2).await;
    let mut sources: Vec<String> = got.iter().map(|m| m.body.clone().unwrap()).collect();
    sources.sort();
    assert_eq!(sources, vec!["\"aws.sqs\"", "\"custom\""]);
    // Every message was acknowledged once its deliveries were stored.
    wait_for_async("the inbox to be empty", || async {
        approximate_count(&sqs, &inbox).await == ("0".to_owned(), "0".to_owned())
    })
    .await;
    assert_eq!(d.stop(), 0);
}

/// The SQS row of `intake.rs`'s table: counted, dead-lettered and archived as every source,
/// and the message deleted once its deliveries and dead letter are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_messages_are_counted_dead_lettered_and_archived_as_every_source() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let inbox = moto.queue("inbox").await;
    let text = format!(
        "sources:\n  inbox:\n    sqs: {{queue_url: {inbox}}}\nrules:\n{}",
        crate::intake::rules("sqs", "pattern: {source: [aws.sqs]}")
    );
    let (_dir, state, d) = daemon_with(&moto, &text, &["--archive"]);
    sqs.send_message()
        .queue_url(&inbox)
        .message_body("just some text")
        .send()
        .await
        .unwrap();
    crate::intake::assert_taken_in(&d, &state, "sqs", ("inbox", 1.0)).await;
    wait_for_async("the inbox to be empty", || async {
        approximate_count(&sqs, &inbox).await == ("0".to_owned(), "0".to_owned())
    })
    .await;
    assert_eq!(d.stop(), 0);
    crate::intake::assert_archived(&state, &["aws.sqs"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undecodable_message_stays_on_the_queue() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let inbox = sqs
        .create_queue()
        .queue_name("pinned")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "600",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let (_dir, _state, d) = daemon(
        &moto,
        &format!("sources:\n  s3only:\n    sqs: {{queue_url: {inbox}, format: s3}}\nrules: []\n"),
    );
    sqs.send_message()
        .queue_url(&inbox)
        .message_body("not an S3 notification")
        .send()
        .await
        .unwrap();
    d.wait_log("the refusal", |v| {
        v["message"] == "An SQS message cannot be decoded; it stays on the queue."
    });
    // Received (in flight) but not deleted: it will come back for SQS's own redrive.
    assert_eq!(
        approximate_count(&sqs, &inbox).await,
        ("0".to_owned(), "1".to_owned())
    );
    assert_eq!(d.stop(), 0);
}

/// Re-checks an async condition until it holds, failing after the deadline.
pub(crate) async fn wait_for_async<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + crate::harness::DEADLINE;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_go_to_the_sqs_dead_letter_queue_with_eventbridges_attributes() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let dlq = moto.queue("dlq").await;
    let refusing = crate::harness::Recorder::start(vec![400]).await;
    let text = format!(
        "rules:\n  - name: r\n    pattern: {{source: [shop]}}\n    dead_letter: {{sqs: {dlq}}}\n    targets:\n      - id: hook\n        http: {}\n",
        refusing.url()
    );
    let (_dir, state, d) = daemon(&moto, &text);
    assert_eq!(post(&d.url("/events/shop"), "{\"order\":9}").await, 200);
    let deadline = tokio::time::Instant::now() + crate::harness::DEADLINE;
    let got = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing arrived on the dead-letter queue"
        );
        let r = sqs
            .receive_message()
            .queue_url(&dlq)
            .wait_time_seconds(2)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        if let Some(m) = r.messages.unwrap_or_default().into_iter().next() {
            break m;
        }
    };
    let event: Value = serde_json::from_str(got.body.as_deref().unwrap()).unwrap();
    assert_eq!(event["detail"]["order"], 9, "the body is the event");
    let attrs = got.message_attributes.unwrap_or_default();
    let attr = |k: &str| attrs.get(k).and_then(|v| v.string_value.clone());
    assert_eq!(
        attr("RULE_ARN").as_deref(),
        Some("arn:aws:events:us-east-1:123456789012:rule/r")
    );
    assert_eq!(attr("TARGET_ARN"), Some(refusing.url()));
    assert_eq!(attr("ERROR_CODE").as_deref(), Some("INVALID_PARAMETER"));
    assert!(attr("ERROR_MESSAGE").unwrap().contains("400"));
    assert_eq!(attr("RETRY_ATTEMPTS").as_deref(), Some("0"));
    assert_eq!(
        attr("EXHAUSTED_RETRY_CONDITION"),
        None,
        "not retried: no exhausted condition"
    );
    // The local dead letter is written too.
    wait_dead_letter(&state, |_| true);
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sns_target_publishes_to_the_topic() {
    let moto = Moto::start();
    let conf = moto.conf().await;
    let sns = aws_sdk_sns::Client::new(&conf);
    let sqs = moto.sqs().await;
    let topic = sns
        .create_topic()
        .name("alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue = moto.queue("alerts-copy").await;
    let queue_arn = trigd::sources::sqs::queue_arn(&queue, "us-east-1");
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let (_dir, _state, d) = daemon(
        &moto,
        &format!(
            "rules:\n  - name: r\n    pattern: {{source: [shop]}}\n    targets:\n      - id: t\n        sns: {topic}\n        subject: new order\n        input_path: $.detail\n"
        ),
    );
    assert_eq!(post(&d.url("/events/shop"), "{\"order\":3}").await, 200);
    let got = receive_all(&sqs, &queue, 1).await;
    assert_eq!(got[0].body.as_deref(), Some(r#"{"order":3}"#));
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_eventbridge_target_puts_events_on_a_bus() {
    let moto = Moto::start();
    let conf = moto.conf().await;
    let events = aws_sdk_eventbridge::Client::new(&conf);
    let sqs = moto.sqs().await;
    let queue = moto.queue("bus-copy").await;
    events
        .create_event_bus()
        .name("orders")
        .send()
        .await
        .unwrap();
    events
        .put_rule()
        .name("copy")
        .event_bus_name("orders")
        .event_pattern(r#"{"source":["trigd.shop"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("copy")
        .event_bus_name("orders")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(trigd::sources::sqs::queue_arn(&queue, "us-east-1"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (_dir, state, d) = daemon(
        &moto,
        "rules:\n  - name: r\n    pattern: {source: [shop]}\n    targets:\n      - id: bus\n        eventbridge: orders\n        source: trigd.shop\n        input_path: $.detail\n      - id: text\n        eventbridge: orders\n        input: not-an-object\n",
    );
    assert_eq!(post(&d.url("/events/shop"), "{\"order\":4}").await, 200);
    let got = receive_all(&sqs, &queue, 1).await;
    let event: Value = serde_json::from_str(got[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(event["source"], "trigd.shop");
    assert_eq!(event["detail-type"], "Webhook", "taken from the event");
    assert_eq!(event["detail"], serde_json::json!({"order": 4}));
    // A detail that is not a JSON object cannot be put: dead letter, with the reason.
    let record = wait_dead_letter(&state, |_| true);
    assert_eq!(record["target"], "text");
    assert!(
        record["last_error"]
            .as_str()
            .unwrap()
            .contains("JSON object"),
        "{record}"
    );
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lambda_targets_invoke_and_refuse_oversized_payloads() {
    let moto = Moto::start();
    // moto runs Lambda without Docker in its "simple" backend: Invoke answers, no code runs.
    moto.lambda_without_docker().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let text = "rules:
  - name: r
    pattern: {source: [shop]}
    retry: {max_attempts: 0}
    targets:
      - id: async
        lambda: arn:aws:lambda:us-east-1:123456789012:function:resize
      - id: sync
        lambda: resize
        invocation_type: RequestResponse
        input_path: $.detail
";
    write_rules(&rules, "r.yaml", text);
    // Bodies up to 4 MiB, so that an event can exceed Lambda's asynchronous limit.
    let config = dir.path().join("trigd.yaml");
    std::fs::write(&config, "max_body_bytes: 4194304\n").unwrap();
    let state = dir.path().join("state");
    let d = Daemon::start_with_env(
        &rules,
        &state,
        &["--config", config.to_str().unwrap()],
        &moto.env(),
    );
    assert_eq!(
        post(&d.url("/events/shop"), "{\"image\":\"a.jpg\"}").await,
        200
    );
    let metrics_url = d.url("/metrics");
    wait_for_async("both invocations", || async {
        let m = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.contains("target=\"async\",outcome=\"delivered\"} 1")
            && m.contains("target=\"sync\",outcome=\"delivered\"} 1")
    })
    .await;

    // Over Lambda's 1 MiB limit for asynchronous invocations: never sent, dead-lettered.
    let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    assert_eq!(post(&d.url("/events/shop"), &big).await, 200);
    let record = wait_dead_letter(&state, |r| r["target"] == "async");
    assert_eq!(record["error_code"], "INVALID_PARAMETER");
    assert!(
        record["last_error"]
            .as_str()
            .unwrap()
            .contains("Lambda takes at most 1048576"),
        "{record}"
    );
    assert_eq!(d.stop(), 0);
}
