//! `sqs` function triggers (Lambda's SQS event-source mapping) against moto's server: real
//! queues, real messages, a real Python handler that records each batch it is given and
//! answers as the message bodies tell it to.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use serde_json::Value;

use crate::aws::{Moto, approximate_count, wait_for_async};
use crate::harness::{Daemon, wait_for, write_rules};

/// Records each event to `$OUT/<request id>.json`, then answers per record body:
/// `raise…` raises; `bad…` is reported in `batchItemFailures`; `unknown…` reports an id
/// that is not in the batch; `first-fails…` is reported failed on its first receive;
/// `block…` waits until the file `$GO` exists (or until trigd is gone) before anything.
const HANDLER: &str = r#"import json, os, time

def handler(event, context):
    parent = os.getppid()
    for r in event["Records"]:
        if r["body"].startswith("block"):
            while not os.path.exists(os.environ["GO"]):
                if os.getppid() != parent:
                    os._exit(1)
                time.sleep(0.02)
    out = os.environ["OUT"]
    tmp = os.path.join(out, ".tmp-" + context.aws_request_id)
    with open(tmp, "w") as f:
        json.dump(event, f)
    os.rename(tmp, os.path.join(out, context.aws_request_id + ".json"))
    failures = []
    for r in event["Records"]:
        body = r["body"]
        if body.startswith("raise"):
            raise ValueError("boom")
        if body.startswith("bad"):
            failures.append({"itemIdentifier": r["messageId"]})
        if body.startswith("unknown"):
            failures.append({"itemIdentifier": "not-in-this-batch"})
        if body.startswith("first-fails") and r["attributes"]["ApproximateReceiveCount"] == "1":
            failures.append({"itemIdentifier": r["messageId"]})
    return {"batchItemFailures": failures}
"#;

struct Setup {
    dir: tempfile::TempDir,
    rules: PathBuf,
    out: PathBuf,
    go: PathBuf,
}

impl Setup {
    /// Function `orders` (the handler above) with one `sqs` trigger on `queue_url`, written
    /// as `trigger` (the flow mapping's keys after `source`).
    fn new(queue_url: &str, trigger: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        let out = dir.path().join("out");
        let go = dir.path().join("go");
        std::fs::create_dir_all(rules.join("orders")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(rules.join("orders/app.py"), HANDLER).unwrap();
        let s = Setup {
            dir,
            rules,
            out,
            go,
        };
        s.write(queue_url, trigger);
        s
    }

    /// (Re)writes the rule file with this trigger.
    fn write(&self, queue_url: &str, trigger: &str) {
        let text = format!(
            "sources:\n  orders:\n    sqs: {{queue_url: \"{queue_url}\"}}\nfunctions:\n  orders:\n    runtime: python3.12\n    handler: app.handler\n    code: orders\n    timeout: 60\n    environment: {{OUT: \"{}\", GO: \"{}\"}}\n    triggers:\n      - sqs: {{source: orders{trigger}}}\n",
            self.out.display(),
            self.go.display()
        );
        write_rules(&self.rules, "r.yaml", &text);
    }

    fn start(&self, moto: &Moto) -> Daemon {
        Daemon::start_with_env(
            &self.rules,
            &self.dir.path().join("state"),
            &[],
            &moto.env(),
        )
    }

    /// Every batch recorded so far, in the order the handler finished them.
    fn batches(&self) -> Vec<Value> {
        let mut files: Vec<(std::time::SystemTime, Value)> = std::fs::read_dir(&self.out)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .filter_map(|e| {
                        let modified = e.metadata().ok()?.modified().ok()?;
                        let text = std::fs::read_to_string(e.path()).ok()?;
                        Some((modified, serde_json::from_str(&text).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort_by_key(|(t, _)| *t);
        files.into_iter().map(|(_, v)| v).collect()
    }

    /// The record bodies seen, across batches, once `n` have been.
    fn bodies(&self, n: usize) -> Vec<String> {
        wait_for(&format!("{n} records"), || {
            let bodies = bodies(&self.batches());
            (bodies.len() >= n).then_some(bodies)
        })
    }
}

fn bodies(batches: &[Value]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| b["Records"].as_array().cloned().unwrap_or_default())
        .map(|r| r["body"].as_str().unwrap().to_owned())
        .collect()
}

/// A queue with `visibility` seconds of visibility timeout and, when `max_receives` is given,
/// a dead-letter queue (`NAME-dlq`) after that many receives; (queue URL, DLQ URL).
async fn queue_with_dlq(
    moto: &Moto,
    name: &str,
    visibility: u32,
    max_receives: Option<u32>,
) -> (String, Option<String>) {
    let sqs = moto.sqs().await;
    let fifo = name.ends_with(".fifo");
    let dlq = match max_receives {
        Some(_) => {
            let dlq_name = if fifo {
                format!("{}-dlq.fifo", name.trim_end_matches(".fifo"))
            } else {
                format!("{name}-dlq")
            };
            let mut create = sqs.create_queue().queue_name(dlq_name);
            if fifo {
                create = create.attributes(QueueAttributeName::FifoQueue, "true");
            }
            Some(create.send().await.unwrap().queue_url.unwrap())
        }
        None => None,
    };
    let mut create = sqs.create_queue().queue_name(name).attributes(
        QueueAttributeName::VisibilityTimeout,
        visibility.to_string(),
    );
    if fifo {
        create = create
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "true");
    }
    if let (Some(n), Some(dlq)) = (max_receives, &dlq) {
        let arn = sqs
            .get_queue_attributes()
            .queue_url(dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()
            .remove(&QueueAttributeName::QueueArn)
            .unwrap();
        create = create.attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{n}"}}"#),
        );
    }
    (create.send().await.unwrap().queue_url.unwrap(), dlq)
}

async fn send(sqs: &aws_sdk_sqs::Client, queue: &str, bodies: &[&str]) {
    for body in bodies {
        sqs.send_message()
            .queue_url(queue)
            .message_body(*body)
            .send()
            .await
            .unwrap();
    }
}

/// Waits until the queue holds nothing, visible or in flight.
async fn drained(sqs: &aws_sdk_sqs::Client, queue: &str) {
    wait_for_async("the queue to be empty", || async {
        approximate_count(sqs, queue).await == ("0".to_owned(), "0".to_owned())
    })
    .await;
}

/// The bodies that reached the dead-letter queue, once there are `n`.
async fn dead_letters(sqs: &aws_sdk_sqs::Client, dlq: &str, n: usize) -> Vec<String> {
    let got = std::sync::Mutex::new(Vec::new());
    wait_for_async(&format!("{n} dead letters"), || async {
        let out = sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let mut got = got.lock().unwrap();
        got.extend(
            out.messages
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.body),
        );
        got.len() >= n
    })
    .await;
    let mut got = got.into_inner().unwrap();
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_reaches_the_function_as_lambda_records_and_is_deleted() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let (queue, _) = queue_with_dlq(&moto, "orders", 30, None).await;
    for i in 0..5 {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(format!("order {i}"))
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("new")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    // The messages wait on the queue; the window gathers them into one batch.
    let s = Setup::new(&queue, ", batch_size: 10, batch_window: 2s");
    let d = s.start(&moto);
    let mut seen = s.bodies(5);
    seen.sort();
    assert_eq!(
        seen,
        ["order 0", "order 1", "order 2", "order 3", "order 4"]
    );
    drained(&sqs, &queue).await;
    let batches = s.batches();
    let r = &batches[0]["Records"][0];
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
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
    assert_eq!(
        r["eventSourceARN"],
        "arn:aws:sqs:us-east-1:123456789012:orders"
    );
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
    assert!(r["attributes"]["SentTimestamp"].is_string(), "{r}");
    assert_eq!(
        r["messageAttributes"]["kind"],
        serde_json::json!({"stringValue": "new", "stringListValues": [], "binaryListValues": [], "dataType": "String"})
    );
    let body = r["body"].as_str().unwrap();
    let md5 = format!("{:032x}", md5_of(body.as_bytes()));
    assert_eq!(r["md5OfBody"], md5.as_str());
    let metrics = d.metrics().await;
    assert!(
        metrics.contains(
            "trigd_sqs_trigger_messages_total{function=\"orders\",source=\"orders\",outcome=\"deleted\"} 5\n"
        ),
        "{metrics}"
    );
}

/// MD5 as SQS computes `MD5OfBody`, through Python's hashlib (no MD5 crate in the tree).
fn md5_of(bytes: &[u8]) -> u128 {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.md5(sys.stdin.buffer.read()).hexdigest())",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    u128::from_str_radix(String::from_utf8(out.stdout).unwrap().trim(), 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reported_failures_stay_on_the_queue_and_the_rest_is_deleted() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let (queue, dlq) = queue_with_dlq(&moto, "orders", 1, Some(2)).await;
    let dlq = dlq.unwrap();
    send(&sqs, &queue, &["good 1", "bad 1", "good 2", "bad 2"]).await;
    let s = Setup::new(&queue, ", batch_size: 10, report_batch_item_failures: true");
    let _d = s.start(&moto);
    // The bad ones come back until the queue's redrive moves them; the good ones never do.
    assert_eq!(dead_letters(&sqs, &dlq, 2).await, ["bad 1", "bad 2"]);
    drained(&sqs, &queue).await;
    let seen = bodies(&s.batches());
    assert_eq!(
        seen.iter().filter(|b| b.starts_with("good")).count(),
        2,
        "{seen:?}"
    );
    assert!(
        seen.iter().filter(|b| *b == "bad 1").count() >= 2,
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_function_error_or_an_unknown_item_identifier_fails_the_whole_batch() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    for (first, name) in [("raise", "raises"), ("unknown", "unknown")] {
        let (queue, dlq) = queue_with_dlq(&moto, name, 1, Some(2)).await;
        let dlq = dlq.unwrap();
        let bodies_sent = [
            format!("{first} 1"),
            "fine 1".to_owned(),
            "fine 2".to_owned(),
        ];
        let refs: Vec<&str> = bodies_sent.iter().map(String::as_str).collect();
        send(&sqs, &queue, &refs).await;
        let s = Setup::new(&queue, ", batch_size: 3, report_batch_item_failures: true");
        let d = s.start(&moto);
        let mut expected = bodies_sent.to_vec();
        expected.sort();
        // Every message, even those the function did not fail, went through SQS's redrive.
        assert_eq!(dead_letters(&sqs, &dlq, 3).await, expected, "{name}");
        let metrics = d.metrics().await;
        assert!(
            metrics.contains(
                "trigd_sqs_trigger_batches_total{function=\"orders\",source=\"orders\",result=\"failure\"}"
            ),
            "{metrics}"
        );
        assert!(
            !metrics.contains("outcome=\"deleted\""),
            "nothing deleted: {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_hand_over_what_matches_and_delete_the_rest() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let (queue, dlq) = queue_with_dlq(&moto, "orders", 5, Some(1)).await;
    let dlq = dlq.unwrap();
    send(
        &sqs,
        &queue,
        &[
            r#"{"status": "created", "id": 1}"#,
            r#"{"status": "shipped", "id": 2}"#,
            "plain text",
            r#"{"status": "created", "id": 3}"#,
            "priority",
        ],
    )
    .await;
    // A JSON body is matched parsed; a text body as a string.
    let s = Setup::new(
        &queue,
        ", batch_window: 2s, filter: [{body: {status: [created]}}, {body: [priority]}]",
    );
    let d = s.start(&moto);
    let mut seen = s.bodies(3);
    drained(&sqs, &queue).await;
    seen.sort();
    assert_eq!(
        seen,
        [
            "priority",
            r#"{"status": "created", "id": 1}"#,
            r#"{"status": "created", "id": 3}"#,
        ]
    );
    // What matched no filter was deleted, not left to the redrive.
    let left = sqs
        .receive_message()
        .queue_url(&dlq)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let metrics = d.metrics().await;
    assert!(
        metrics.contains(
            "trigd_sqs_trigger_messages_total{function=\"orders\",source=\"orders\",outcome=\"filtered\"} 2\n"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifo_groups_stay_in_order_through_a_failure() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    // The visibility timeout outlasts the window and the handler, as Lambda advises.
    let (queue, _) = queue_with_dlq(&moto, "orders.fifo", 4, None).await;
    // a3 fails on its first receive; trigd keeps a4 and a5 (same group) on the queue with it,
    // while group b goes on.
    let sent = [
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("a", "first-fails a3"),
        ("b", "b2"),
        ("a", "a4"),
        ("b", "b3"),
        ("a", "a5"),
    ];
    for (group, body) in sent {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body)
            .message_group_id(group)
            .send()
            .await
            .unwrap();
    }
    let s = Setup::new(
        &queue,
        ", batch_size: 10, batch_window: 1s, report_batch_item_failures: true",
    );
    let _d = s.start(&moto);
    drained(&sqs, &queue).await;
    let seen = bodies(&s.batches());
    // Per group, the function first saw the messages in the order sent. (Their order on
    // redelivery is the queue's: moto hands a FIFO group's returning messages back out of
    // order, which SQS does not, so the test does not read it.)
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, b) in seen.iter().enumerate() {
        first.entry(b.as_str()).or_insert(i);
    }
    for group in ["a", "b"] {
        let positions: Vec<usize> = sent
            .iter()
            .filter(|(g, _)| *g == group)
            .map(|(_, b)| first[b])
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "group {group} out of order: {seen:?}"
        );
    }
    // a4 and a5 were handed over again after a3 failed.
    for again in ["first-fails a3", "a4", "a5"] {
        assert!(seen.iter().filter(|b| *b == again).count() >= 2, "{seen:?}");
    }
    for once in ["a1", "a2", "b1", "b2", "b3"] {
        assert_eq!(seen.iter().filter(|b| *b == once).count(), 1, "{seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_in_the_middle_of_a_batch_loses_nothing() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let (queue, _) = queue_with_dlq(&moto, "orders", 3, None).await;
    let sent = ["block 1", "m 2", "m 3", "m 4"];
    send(&sqs, &queue, &sent).await;
    let s = Setup::new(&queue, ", batch_size: 10");
    let d = s.start(&moto);
    // The function holds the batch; trigd dies meanwhile.
    wait_for_async("the batch to be in flight", || async {
        approximate_count(&sqs, &queue).await == ("0".to_owned(), "4".to_owned())
    })
    .await;
    assert!(s.batches().is_empty());
    d.kill();
    std::fs::write(&s.go, "").unwrap();
    let _d = s.start(&moto);
    let mut seen = s.bodies(4);
    drained(&sqs, &queue).await;
    seen.sort();
    let set: HashSet<&str> = seen.iter().map(String::as_str).collect();
    assert_eq!(
        set,
        sent.iter().copied().collect::<HashSet<_>>(),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_restarts_a_changed_trigger_and_leaves_nothing_behind() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let (queue, _) = queue_with_dlq(&moto, "orders", 30, None).await;
    let s = Setup::new(&queue, ", filter: [{body: [one]}]");
    let d = s.start(&moto);
    send(&sqs, &queue, &["one"]).await;
    assert_eq!(s.bodies(1), ["one"]);
    s.write(&queue, ", filter: [{body: [two]}]");
    d.hup();
    d.wait_log("the trigger restarted", |v| {
        v["message"] == "sqs trigger changed by the reload."
            && v["trigger"] == "orders<-orders"
            && v["change"] == "restarted"
    });
    send(&sqs, &queue, &["one", "two"]).await;
    assert_eq!(s.bodies(2), ["one", "two"]);
    drained(&sqs, &queue).await;
    // The new filter dropped the second `one`.
    let metrics = d.metrics().await;
    assert!(
        metrics.contains(
            "trigd_sqs_trigger_messages_total{function=\"orders\",source=\"orders\",outcome=\"filtered\"} 1\n"
        ),
        "{metrics}"
    );
}
