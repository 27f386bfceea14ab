//! End to end against moto's server: AWS services produce the events (S3 notifications, SNS
//! fan-out to SQS), trigd reads them from SQS, matches them and delivers to AWS targets; and an
//! outage of the whole emulator, during which nothing accepted is lost.

use serde_json::{Value, json};

use crate::aws::{Moto, approximate_count, daemon, post, receive_all, wait_for_async};
use crate::harness::Daemon;

pub(crate) fn arn(queue_url: &str) -> String {
    trigd::sources::sqs::queue_arn(queue_url, "us-east-1")
}

/// A path-style S3 REST call to moto. The `Authorization` header is not a signature (moto does
/// not check one); it names S3 as the service, and without it moto refuses to overwrite an
/// object (403).
pub(crate) async fn s3(moto: &Moto, method: reqwest::Method, path: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .request(method, format!("{}{path}", moto.url))
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .header("Content-Type", "application/octet-stream")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Creates `bucket` and has it notify the queue at `queue_url` of every object created.
pub(crate) async fn bucket_notifying(moto: &Moto, bucket: &str, queue_url: &str) {
    assert_eq!(
        s3(moto, reqwest::Method::PUT, &format!("/{bucket}"), "").await,
        200
    );
    let notification = format!(
        r#"<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><QueueConfiguration><Id>uploads</Id><Queue>{}</Queue><Event>s3:ObjectCreated:*</Event></QueueConfiguration></NotificationConfiguration>"#,
        arn(queue_url)
    );
    let path = format!("/{bucket}?notification");
    assert_eq!(
        s3(moto, reqwest::Method::PUT, &path, &notification).await,
        200
    );
}

/// An object key as a URL path: unreserved bytes and `/` as they are, the rest `%XX`.
fn key_path(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of one sample in the daemon's `/metrics` (0 when it was never set), e.g.
/// `trigd_outbox_pending` or `trigd_source_errors_total{source="inbox",operation="receive"}`.
async fn metric(d: &Daemon, sample: &str) -> f64 {
    let text = d.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// The sum of every sample of a counter, whatever its labels.
async fn metric_sum(d: &Daemon, name: &str) -> f64 {
    let text = d.metrics().await;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

async fn wait_metric(d: &Daemon, sample: &str, want: f64) {
    wait_for_async(&format!("{sample} to be {want}"), || async {
        metric(d, sample).await == want
    })
    .await;
}

async fn healthz(d: &Daemon) -> u16 {
    reqwest::get(d.url("/healthz"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn bodies(messages: &[aws_sdk_sqs::types::Message]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

/// After everything was delivered, a queue has nothing more.
async fn assert_empty(sqs: &aws_sdk_sqs::Client, url: &str) {
    let more = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(more.is_empty(), "unexpected messages on {url}: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_uploads_reach_an_sqs_target_through_a_notification_queue() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let uploads = moto.queue("uploads").await;
    let thumbs = moto.queue("thumbs").await;
    // Saving the configuration sends an s3:TestEvent to the queue.
    bucket_notifying(&moto, "holiday", &uploads).await;
    let text = format!(
        r#"
sources:
  uploads:
    sqs: {{queue_url: {uploads}}}
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
"#
    );
    let (_dir, _state, d) = daemon(&moto, &text);
    // S3 encodes keys in notifications (moto even encodes `/`); the rule sees them decoded.
    // Suffixes are case-sensitive, as in EventBridge: `.JPG` does not match `.jpg`.
    for key in [
        "photos/my cat.jpg",
        "photos/a+b/c d.jpg",
        "photos/SHOUT.JPG",
        "notes/readme.txt",
    ] {
        let path = format!("/holiday/{}", key_path(key));
        assert_eq!(s3(&moto, reqwest::Method::PUT, &path, "x").await, 200);
    }
    // All five messages (the test event and four uploads) were consumed and acknowledged.
    wait_for_async("the notification queue to be empty", || async {
        approximate_count(&sqs, &uploads).await == ("0".to_owned(), "0".to_owned())
    })
    .await;
    wait_metric(&d, "trigd_events_received_total{source=\"uploads\"}", 4.0).await;
    assert_eq!(metric(&d, "trigd_events_unmatched_total").await, 2.0);
    wait_metric(
        &d,
        "trigd_deliveries_total{rule=\"thumbnails\",target=\"q\",outcome=\"delivered\"}",
        2.0,
    )
    .await;
    let mut got = bodies(&receive_all(&sqs, &thumbs, 2).await);
    got.sort_by_key(|v| v["key"].as_str().unwrap().to_owned());
    assert_eq!(
        got,
        vec![
            json!({"bucket": "holiday", "key": "photos/a+b/c d.jpg"}),
            json!({"bucket": "holiday", "key": "photos/my cat.jpg"}),
        ]
    );
    assert_empty(&sqs, &thumbs).await;
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sns_messages_wrapped_and_raw_reach_sqs_and_sns_targets() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let sns = aws_sdk_sns::Client::new(&moto.conf().await);
    let orders = sns
        .create_topic()
        .name("orders")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let notices = sns
        .create_topic()
        .name("notices")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let wrapped = moto.queue("orders-wrapped").await;
    let raw = moto.queue("orders-raw").await;
    let copies = moto.queue("copies").await;
    let notified = moto.queue("notified").await;
    for (topic, queue, raw_delivery) in [
        (&orders, &wrapped, "false"),
        (&orders, &raw, "true"),
        (&notices, &notified, "true"),
    ] {
        sns.subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(arn(queue))
            .attributes("RawMessageDelivery", raw_delivery)
            .send()
            .await
            .unwrap();
    }
    let text = format!(
        r#"
sources:
  wrapped:
    sqs: {{queue_url: {wrapped}}}
  raw:
    sqs: {{queue_url: {raw}}}
rules:
  - name: from-envelope
    pattern:
      source: [aws.sns]
      detail-type: [SNS Notification]
      detail: {{Message: {{kind: [new]}}}}
    targets:
      - id: copy
        sqs: {copies}
      - id: notify
        sns: {notices}
        input_transformer:
          input_paths: {{order: $.detail.Message.order, topic: $.detail.TopicArn}}
          input_template: '{{"via": "envelope", "order": <order>, "topic": <topic>}}'
  - name: from-raw
    pattern:
      source: [aws.sqs]
      detail: {{body: {{kind: [new]}}}}
    targets:
      - id: copy
        sqs: {copies}
      - id: notify
        sns: {notices}
        input_transformer:
          input_paths: {{order: $.detail.body.order, color: $.detail.messageAttributes.color.stringValue}}
          input_template: '{{"via": "raw", "order": <order>, "color": <color>}}'
"#
    );
    let (_dir, _state, d) = daemon(&moto, &text);
    let published = json!({"order": 42, "kind": "new"});
    sns.publish()
        .topic_arn(&orders)
        .subject("order")
        .message(published.to_string())
        .message_attributes(
            "color",
            aws_sdk_sns::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("blue")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The SQS target gets both events as they are.
    let got = bodies(&receive_all(&sqs, &copies, 2).await);
    assert_eq!(got.len(), 2, "{got:?}");
    let by_source = |s: &str| {
        got.iter()
            .find(|e| e["source"] == s)
            .unwrap_or_else(|| panic!("no {s} event in {got:?}"))
            .clone()
    };
    // From the wrapped queue: the SNS envelope, its Message parsed.
    let e = by_source("aws.sns");
    assert_eq!(e["detail-type"], "SNS Notification");
    assert_eq!(e["resources"], json!([orders]));
    assert_eq!(e["region"], "us-east-1");
    assert_eq!(e["detail"]["Message"], published);
    assert_eq!(e["detail"]["TopicArn"], orders.as_str());
    assert_eq!(e["detail"]["Subject"], "order");
    assert_eq!(
        e["detail"]["MessageAttributes"]["color"],
        json!({"Type": "String", "Value": "blue"})
    );
    // From the raw queue: an SQS message whose body is the published JSON, the SNS message
    // attributes now SQS message attributes.
    let e = by_source("aws.sqs");
    assert_eq!(e["detail-type"], "SQS Message");
    assert_eq!(e["resources"], json!([arn(&raw)]));
    assert_eq!(e["detail"]["body"], published);
    assert_eq!(e["detail"]["eventSourceARN"], arn(&raw));
    assert_eq!(
        e["detail"]["messageAttributes"]["color"],
        json!({"stringValue": "blue", "dataType": "String"})
    );

    // The SNS target published the transformed payloads to the second topic.
    let mut got = bodies(&receive_all(&sqs, &notified, 2).await);
    got.sort_by_key(|v| v["via"].as_str().unwrap().to_owned());
    assert_eq!(
        got,
        vec![
            json!({"via": "envelope", "order": 42, "topic": orders}),
            json!({"via": "raw", "order": 42, "color": "blue"}),
        ]
    );
    wait_metric(&d, "trigd_outbox_pending", 0.0).await;
    assert_empty(&sqs, &copies).await;
    assert_empty(&sqs, &notified).await;
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sqs_source_and_target_survive_moto_restarting() {
    let mut moto = Moto::start();
    let sqs = moto.sqs().await;
    let inbox = moto.queue("inbox").await;
    let out = moto.queue("out").await;
    let text = format!(
        r#"
sources:
  inbox:
    sqs: {{queue_url: {inbox}}}
rules:
  - name: relay
    pattern: {{source: [aws.sqs, shop]}}
    retry: {{max_attempts: 185, max_event_age: 10m}}
    targets:
      - id: out
        sqs: {out}
"#
    );
    let (_dir, _state, d) = daemon(&moto, &text);
    let send = |body: &'static str| {
        let sqs = sqs.clone();
        let inbox = inbox.clone();
        async move {
            sqs.send_message()
                .queue_url(inbox)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
    };
    send("before").await;
    let got = bodies(&receive_all(&sqs, &out, 1).await);
    assert_eq!(got[0]["detail"]["body"], "before");

    let errors = "trigd_source_errors_total{source=\"inbox\",operation=\"receive\"}";
    let before = metric(&d, errors).await;
    moto.stop();
    // The source keeps failing, and counts it; the daemon stays up and healthy.
    wait_for_async("a source error", || async {
        metric(&d, errors).await > before
    })
    .await;
    assert_eq!(healthz(&d).await, 200);
    // An event accepted while the target is down is stored, tried, and kept for a retry.
    assert_eq!(
        post(&d.url("/events/shop"), r#"{"n": "during"}"#).await,
        200
    );
    let failed = "trigd_deliveries_total{rule=\"relay\",target=\"out\",outcome=\"failed\"}";
    wait_for_async("a failed delivery attempt", || async {
        metric(&d, failed).await >= 1.0
    })
    .await;
    let errors_down = metric(&d, errors).await;
    wait_for_async("more source errors", || async {
        metric(&d, errors).await > errors_down
    })
    .await;
    assert_eq!(healthz(&d).await, 200);
    assert_eq!(metric(&d, "trigd_outbox_pending").await, 1.0);

    // moto keeps no state across a restart: the queues come back empty (created before the
    // port opens, so that a retry cannot find the target missing and dead-letter it).
    moto.restart(&["inbox", "out"]);
    send("after").await;
    let mut got = bodies(&receive_all(&sqs, &out, 2).await);
    got.sort_by_key(|e| e["source"].as_str().unwrap().to_owned());
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["source"], "aws.sqs");
    assert_eq!(got[0]["detail"]["body"], "after");
    assert_eq!(got[1]["source"], "shop");
    assert_eq!(got[1]["detail"], json!({"n": "during"}));
    wait_metric(&d, "trigd_outbox_pending", 0.0).await;
    assert_eq!(metric_sum(&d, "trigd_dead_letters_total").await, 0.0);
    assert_empty(&sqs, &out).await;
    assert_eq!(d.stop(), 0);
}

/// A FIFO queue as a source with two message groups, into an HTTP target with this
/// `concurrency` (the default when `None`): the deliveries each group made, in arrival order.
async fn fifo_groups_through(concurrency: Option<u32>) -> Vec<Value> {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    use aws_sdk_sqs::types::QueueAttributeName as Q;
    let queue = sqs
        .create_queue()
        .queue_name("orders.fifo")
        .attributes(Q::FifoQueue, "true")
        .attributes(Q::ContentBasedDeduplication, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for seq in 0..FIFO_PER_GROUP {
        for group in ["a", "b"] {
            sqs.send_message()
                .queue_url(&queue)
                .message_group_id(group)
                .message_body(json!({"group": group, "seq": seq}).to_string())
                .send()
                .await
                .unwrap();
        }
    }
    let recorder = crate::harness::Recorder::start(Vec::new()).await;
    let limit = concurrency.map_or_else(String::new, |c| format!("        concurrency: {c}\n"));
    let text = format!(
        "sources:\n  orders:\n    sqs: {{queue_url: {queue}}}\nrules:\n  - name: r\n    pattern: {{source: [aws.sqs]}}\n    targets:\n      - id: hook\n        http: {}\n{limit}        input_path: $.detail.body\n",
        recorder.url()
    );
    let (_dir, _state, d) = daemon(&moto, &text);
    let got: Vec<Value> = recorder
        .wait_for(2 * FIFO_PER_GROUP as usize)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(d.stop(), 0);
    got
}

const FIFO_PER_GROUP: u64 = 8;

fn assert_per_group_order(got: &[Value]) {
    assert_eq!(got.len(), 2 * FIFO_PER_GROUP as usize, "{got:?}");
    for group in ["a", "b"] {
        let seqs: Vec<u64> = got
            .iter()
            .filter(|v| v["group"] == group)
            .map(|v| v["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (0..FIFO_PER_GROUP).collect::<Vec<_>>(),
            "group {group} out of order; all deliveries in arrival order: {got:?}"
        );
    }
}

/// The source hands a FIFO queue's messages over in order: a target that takes one delivery
/// at a time sees each group in the order it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifo_source_keeps_per_group_order_to_a_serial_target() {
    assert_per_group_order(&fifo_groups_through(Some(1)).await);
}

/// With the target's default concurrency the dispatcher would send one group's deliveries in
/// parallel; the group's ordering key makes it send them one at a time, in order (other groups
/// and events still go in parallel).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifo_source_keeps_per_group_order_with_default_target_concurrency() {
    assert_per_group_order(&fifo_groups_through(None).await);
}
