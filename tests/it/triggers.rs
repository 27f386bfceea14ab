//! Function triggers that reach a function through the outbox, end to end: S3 notifications
//! and SNS messages from moto's server (through SQS sources), and schedules. Each handler
//! records the event it was given, and the test reads what Lambda's shapes promise.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::aws::{Moto, approximate_count, wait_for_async};
use crate::aws_e2e::{arn, bucket_notifying, s3};
use crate::harness::{Daemon, wait_for, write_rules};
use crate::util::run_in;

/// Writes each event it is given to `$OUT/<request id>.json` (whole, then renamed).
const RECORDER: &str = r#"import json, os

def handler(event, context):
    out = os.environ["OUT"]
    tmp = os.path.join(out, ".tmp-" + context.aws_request_id)
    with open(tmp, "w") as f:
        json.dump(event, f)
    os.rename(tmp, os.path.join(out, context.aws_request_id + ".json"))
    return {"ok": True}
"#;

/// A rules directory whose function `record` (the recorder, with `triggers`) writes to `out`,
/// beside `more` (sources, rules).
struct Setup {
    dir: tempfile::TempDir,
    rules: PathBuf,
    out: PathBuf,
}

fn setup(triggers: &str, more: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let out = dir.path().join("out");
    std::fs::create_dir_all(rules.join("record")).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(rules.join("record/app.py"), RECORDER).unwrap();
    let text = format!(
        "{more}\nfunctions:\n  record:\n    runtime: python3.12\n    handler: app.handler\n    code: record\n    environment: {{OUT: \"{}\"}}\n    triggers:\n{triggers}",
        out.display()
    );
    write_rules(&rules, "r.yaml", &text);
    Setup { dir, rules, out }
}

/// The events recorded so far, once there are `n` of them.
fn recorded(out: &Path, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} recorded events"), || {
        let events: Vec<Value> = std::fs::read_dir(out)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect();
        (events.len() >= n).then_some(events)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_notifications_reach_a_function_as_s3_records() {
    let moto = Moto::start();
    let sqs = moto.sqs().await;
    let uploads = moto.queue("uploads").await;
    // Saving the configuration sends an s3:TestEvent, which the function never sees.
    bucket_notifying(&moto, "holiday", &uploads).await;
    let s = setup(
        "      - s3: {source: uploads}\n",
        &format!(
            "sources:\n  uploads:\n    sqs: {{queue_url: \"{uploads}\"}}\nrules:\n  - name: also\n    pattern: {{source: [aws.s3]}}\n    targets: [{{id: l, log: true}}]\n"
        ),
    );
    let d = Daemon::start_with_env(&s.rules, &s.dir.path().join("state"), &[], &moto.env());
    for key in ["photos/my cat.jpg", "a/b.txt"] {
        let path = format!("/holiday/{}", key.replace(' ', "%20"));
        assert_eq!(s3(&moto, reqwest::Method::PUT, &path, "xyz").await, 200);
    }
    let mut events = recorded(&s.out, 2);
    events.sort_by_key(|e| e["Records"][0]["s3"]["object"]["key"].to_string());
    for e in &events {
        let records = e["Records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "one record per invocation: {e}");
        let r = &records[0];
        assert_eq!(r["eventSource"], "aws:s3");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert!(
            r["eventName"]
                .as_str()
                .unwrap()
                .starts_with("ObjectCreated:")
        );
        assert_eq!(r["s3"]["bucket"]["name"], "holiday");
        assert_eq!(r["s3"]["object"]["size"], 3);
    }
    // Keys as S3 sends them: form-URL-encoded (moto encodes `/` too).
    let keys: Vec<String> = events
        .iter()
        .map(|e| {
            e["Records"][0]["s3"]["object"]["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let decoded: Vec<String> = keys
        .iter()
        .map(|k| trigd::sources::decode::form_url_decode(k).unwrap())
        .collect();
    assert_eq!(decoded, ["a/b.txt", "photos/my cat.jpg"], "{keys:?}");
    assert!(keys[1].contains('+'), "a space is `+`: {keys:?}");
    // The queue is drained; the rule on the same source still saw the events.
    wait_for_async("the queue to be empty", || async {
        approximate_count(&sqs, &uploads).await == ("0".to_owned(), "0".to_owned())
    })
    .await;
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("trigd_trigger_invocations_total{source=\"uploads\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trigd_rule_matches_total{rule=\"also\"} 2"),
        "{metrics}"
    );
    assert_eq!(d.stop(), 0);
    // Exactly two: the test event made none, and nothing ran twice.
    assert_eq!(recorded(&s.out, 2).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sns_messages_reach_a_function_as_sns_records() {
    let moto = Moto::start();
    let sns = aws_sdk_sns::Client::new(&moto.conf().await);
    let topic = sns
        .create_topic()
        .name("alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue = moto.queue("alerts").await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn(&queue))
        .send()
        .await
        .unwrap();
    let s = setup(
        "      - sns: {source: alerts}\n",
        &format!("sources:\n  alerts:\n    sqs: {{queue_url: \"{queue}\"}}\n"),
    );
    let d = Daemon::start_with_env(&s.rules, &s.dir.path().join("state"), &[], &moto.env());
    sns.publish()
        .topic_arn(&topic)
        .subject("Disk")
        .message(r#"{"host":"db1","free":"3%"}"#)
        .message_attributes(
            "severity",
            aws_sdk_sns::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("high")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    sns.publish()
        .topic_arn(&topic)
        .message("plain text")
        .send()
        .await
        .unwrap();
    let mut events = recorded(&s.out, 2);
    events.sort_by_key(|e| e["Records"][0]["Sns"]["Message"].to_string());
    let r = &events[1]["Records"][0];
    assert_eq!(r["EventSource"], "aws:sns");
    assert_eq!(r["EventVersion"], "1.0");
    assert!(
        r["EventSubscriptionArn"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{topic}:")),
        "{r}"
    );
    let m = &r["Sns"];
    assert_eq!(m["Type"], "Notification");
    assert_eq!(m["TopicArn"], topic.as_str());
    assert_eq!(m["Subject"], "Disk");
    // The message stays the string that was published.
    assert_eq!(m["Message"], r#"{"host":"db1","free":"3%"}"#);
    assert_eq!(
        m["MessageAttributes"]["severity"],
        json!({"Type": "String", "Value": "high"})
    );
    for key in [
        "MessageId",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertUrl",
        "UnsubscribeUrl",
    ] {
        assert!(m[key].is_string(), "{key} in {m}");
    }
    let plain = &events[0]["Records"][0]["Sns"];
    assert_eq!(plain["Message"], "plain text");
    assert_eq!(plain["Subject"], Value::Null);
    assert_eq!(plain["MessageAttributes"], json!({}));
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schedule_triggers_invoke_with_their_input_or_the_scheduled_event() {
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).format("%Y-%m-%dT%H:%M:%S");
    let s = setup(
        &format!(
            "      - schedule: {{expression: \"at({at})\", input: {{message: WAKE UP}}}}\n      - schedule: {{expression: \"at({at})\"}}\n      - schedule: {{expression: \"rate(1 day)\", enabled: false}}\n"
        ),
        "",
    );
    // `trigd next` shows them as the schedule rules they are.
    let next = run_in(&s.rules, &["next", "."], None);
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert!(next.stdout.contains("record:schedule:1"), "{}", next.stdout);
    assert!(next.stdout.contains("record:schedule:2"), "{}", next.stdout);

    let d = Daemon::start(&s.rules, &s.dir.path().join("state"), &[]);
    let mut events = recorded(&s.out, 2);
    events.sort_by_key(|e| e.get("message").is_some());
    let scheduled = &events[0];
    assert_eq!(scheduled["detail-type"], "Scheduled Event");
    assert_eq!(scheduled["source"], "aws.events");
    assert_eq!(scheduled["detail"], json!({}));
    assert_eq!(
        scheduled["resources"],
        json!(["arn:aws:events:us-east-1:123456789012:rule/record:schedule:2"])
    );
    // The input as written, nothing around it.
    assert_eq!(events[1], json!({"message": "WAKE UP"}));
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("trigd_schedule_fires_total{rule=\"record:schedule:1\"} 1"),
        "{metrics}"
    );
    assert_eq!(d.stop(), 0);
}

#[test]
fn trigd_test_feeds_a_function_and_checks_its_result_or_error() {
    let s = setup("      - api: {route: GET /hello}\n", "");
    std::fs::write(
        s.rules.join("record/shout.py"),
        "def handler(event, context):\n    if event.get('fail'):\n        raise KeyError('no')\n    return {'statusCode': 200, 'body': event['text'].upper()}\n",
    )
    .unwrap();
    let functions = "functions:\n  shout:\n    runtime: python3.12\n    handler: shout.handler\n    code: record\n";
    write_rules(&s.rules, "shout.yaml", functions);
    let tests = |cases: &str| {
        write_rules(&s.rules, "shout.test.yaml", &format!("tests:\n{cases}"));
        run_in(&s.rules, &["test", "."], None)
    };
    let ok = tests(
        "  - name: shouts\n    function: shout\n    event: {text: hi}\n    expect:\n      result: {statusCode: 200, body: HI}\n  - name: fails\n    function: shout\n    event: {fail: true}\n    expect:\n      error: KeyError\n",
    );
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("2 passed, 0 failed"), "{}", ok.stdout);

    let bad = tests(
        "  - name: wrong result\n    function: shout\n    event: {text: hi}\n    expect:\n      result: {statusCode: 200, body: hi}\n  - name: wrong error\n    function: shout\n    event: {fail: true}\n    expect:\n      error: ValueError\n  - name: no error\n    function: shout\n    event: {text: a}\n    expect:\n      error: KeyError\n",
    );
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    assert!(bad.stdout.contains("0 passed, 3 failed"), "{}", bad.stdout);
    assert!(bad.stdout.contains("result differs"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("-   \"body\": \"hi\""),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout
            .contains("expected error ValueError, but the handler failed with KeyError"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout
            .contains("expected error KeyError, but the handler returned"),
        "{}",
        bad.stdout
    );

    // Mistakes are reported where they are written.
    let wrong = tests(
        "  - name: typo\n    function: shot\n    event: {}\n    expect: {result: 1}\n  - name: mixed\n    function: shout\n    event: {}\n    expect: {matched: [x]}\n  - name: rule test\n    event: {}\n    expect: {error: E}\n",
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    for want in [
        "shout.test.yaml:3:15: no function is named `shot`; did you mean `shout`?",
        "`matched` is for rule tests; a function test expects `result` or `error`",
        "`error` is for function tests: add `function: NAME` to the test",
    ] {
        assert!(wrong.stderr.contains(want), "{want} in:\n{}", wrong.stderr);
    }
}
