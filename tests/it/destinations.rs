//! Destinations (`on_success` / `on_failure`): a target's result passed on, as Lambda's
//! invocation record, to another target or to trigd's own bus, with a hop limit on chains.
//! The real binary, real child processes, real HTTP on 127.0.0.1; moto for Lambda and SQS.

use serde_json::{Value, json};

use crate::aws::{Moto, daemon, receive_all, wait_for_async};
use crate::daemon::post;
use crate::harness::{Daemon, Recorder, wait_dead_letter, write_rules};

fn start(rules_yaml: &str) -> (tempfile::TempDir, std::path::PathBuf, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(&rules, "r.yaml", rules_yaml);
    let state = dir.path().join("state");
    let d = Daemon::start(&rules, &state, &[]);
    (dir, state, d)
}

/// Re-reads the daemon's metrics until they contain `what`, failing after the deadline.
async fn wait_metric(d: &Daemon, what: &str) {
    wait_for_async(what, || async { d.metrics().await.contains(what) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commands_output_goes_to_its_on_success_target_as_lambdas_record() {
    let rec = Recorder::start(vec![]).await;
    let (_dir, _state, d) = start(&format!(
        r#"
rules:
  - name: resize
    pattern: {{source: [shop]}}
    targets:
      - id: tool
        command: [tr, n, m]
        input_path: $.detail
        on_success: {{http: "{url}"}}
"#,
        url = rec.url()
    ));
    assert_eq!(post(&d.url("/events/shop"), r#"{"n":7}"#, &[]).await.0, 200);
    let got = rec.wait_for(1).await;
    let record: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(record["version"], "1.0");
    assert_eq!(record["requestContext"]["condition"], "Success");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(record["requestContext"]["functionArn"], "command:tr");
    assert_eq!(record["requestPayload"], json!({"n": 7}));
    assert_eq!(
        record["responsePayload"],
        json!({"m": 7}),
        "the command's stdout"
    );
    assert_eq!(record["responseContext"]["statusCode"], 0);
    assert!(record["timestamp"].as_str().unwrap().ends_with('Z'));
    wait_metric(
        &d,
        "trigd_destinations_total{rule=\"resize\",target=\"tool\",condition=\"Success\"} 1",
    )
    .await;
    // The destination's own delivery is counted under its synthetic target id.
    wait_metric(
        &d,
        "trigd_deliveries_total{rule=\"resize\",target=\"tool#on_success\",outcome=\"delivered\"} 1",
    )
    .await;
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_goes_to_on_failure_and_the_dead_letter_is_kept() {
    let rec = Recorder::start(vec![]).await;
    let (_dir, state, d) = start(&format!(
        r#"
rules:
  - name: flaky
    pattern: {{source: [shop]}}
    retry: {{max_attempts: 0}}
    targets:
      - id: tool
        command: [sh, -c, 'echo "disk full" >&2; exit 3']
        on_success: {{http: "{url}/never"}}
        on_failure: {{http: "{url}"}}
"#,
        url = rec.url()
    ));
    assert_eq!(post(&d.url("/events/shop"), r#"{"n":1}"#, &[]).await.0, 200);
    let got = rec.wait_for(1).await;
    let record: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(record["responseContext"]["functionError"], "TARGET_ERROR");
    assert_eq!(record["responsePayload"]["errorType"], "TARGET_ERROR");
    let message = record["responsePayload"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("disk full"), "{message}");
    assert_eq!(record["requestPayload"]["detail"], json!({"n": 1}));
    // The local dead letter is written as well: on_failure is a copy, not a replacement.
    let letter = wait_dead_letter(&state, |_| true);
    assert_eq!(letter["target"], "tool");
    assert_eq!(rec.count(), 1, "no on_success after a failure");
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_result_on_the_bus_is_matched_by_another_rule() {
    let rec = Recorder::start(vec![]).await;
    let (_dir, _state, d) = start(&format!(
        r#"
rules:
  - name: resize
    pattern: {{source: [shop]}}
    targets:
      - id: tool
        command: [tr, n, m]
        input_path: $.detail
        on_success: {{bus: true}}
  - name: notify
    pattern:
      source: [trigd]
      detail-type: [Destination]
      detail: {{requestContext: {{condition: [Success]}}, responsePayload: {{m: [{{numeric: [">", 5]}}]}}}}
    targets:
      - id: hook
        http: "{url}"
"#,
        url = rec.url()
    ));
    assert_eq!(post(&d.url("/events/shop"), r#"{"n":7}"#, &[]).await.0, 200);
    // Too small for `notify`'s pattern: chained on the bus, but matched by nothing.
    assert_eq!(post(&d.url("/events/shop"), r#"{"n":2}"#, &[]).await.0, 200);
    let got = rec.wait_for(1).await;
    let event: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(event["source"], "trigd");
    assert_eq!(event["detail-type"], "Destination");
    assert_eq!(event["resources"], json!(["command:tr"]));
    assert_eq!(event["detail"]["responsePayload"], json!({"m": 7}));
    wait_metric(
        &d,
        "trigd_destinations_total{rule=\"resize\",target=\"tool\",condition=\"Success\"} 2",
    )
    .await;
    wait_metric(&d, "trigd_outbox_pending 0").await;
    assert_eq!(rec.count(), 1);
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_that_feeds_itself_stops_after_sixteen_hops() {
    let rec = Recorder::start(vec![]).await;
    let (_dir, _state, d) = start(&format!(
        r#"
rules:
  # Matches its own results: without the hop limit this would run forever.
  - name: echo
    pattern: {{source: [shop, trigd]}}
    targets:
      - id: tool
        command: [cat]
        input_path: $.id
        on_success: {{bus: true}}
  - name: watch
    pattern: {{source: [trigd]}}
    targets:
      - id: hook
        http: "{url}"
"#,
        url = rec.url()
    ));
    assert_eq!(post(&d.url("/events/shop"), "{}", &[]).await.0, 200);
    d.wait_log("the loop guard", |v| {
        v["message"] == "A chain of destinations reached its limit; the result is not passed on."
    });
    wait_metric(
        &d,
        "trigd_destination_loops_total{rule=\"echo\",target=\"tool\"} 1",
    )
    .await;
    wait_metric(&d, "trigd_outbox_pending 0").await;
    assert_eq!(
        rec.wait_for(16).await.len(),
        16,
        "hops 1 to 16, then no more"
    );
    assert_eq!(d.stop(), 0);
}

/// moto's Docker-less Lambda answers a synchronous Invoke with a canned response; trigd passes
/// it on to an SQS queue as Lambda's invocation record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lambda_response_goes_to_an_sqs_destination() {
    let moto = Moto::start();
    let http = reqwest::Client::new();
    moto.lambda_without_docker().await;
    let canned = http
        .post(format!(
            "{}/moto-api/static/lambda-simple/response",
            moto.url
        ))
        .header("Content-Type", "application/json")
        .body(r#"{"results":["{\"thumbnail\":\"a-small.jpg\"}"],"region":"us-east-1"}"#)
        .send()
        .await
        .unwrap();
    assert!(canned.status().is_success());
    let sqs = moto.sqs().await;
    let queue = moto.queue("results").await;
    let (_dir, _state, d) = daemon(
        &moto,
        &format!(
            r#"
rules:
  - name: thumbnails
    pattern: {{source: [shop]}}
    targets:
      - id: resize
        lambda: resize
        invocation_type: RequestResponse
        input_path: $.detail
        on_success: {{sqs: "{queue}"}}
"#
        ),
    );
    assert_eq!(
        post(&d.url("/events/shop"), r#"{"image":"a.jpg"}"#, &[])
            .await
            .0,
        200
    );
    let got = receive_all(&sqs, &queue, 1).await;
    assert_eq!(got.len(), 1);
    let record: Value = serde_json::from_str(got[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(record["requestContext"]["condition"], "Success");
    assert_eq!(
        record["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:resize:$LATEST"
    );
    assert_eq!(record["requestPayload"], json!({"image": "a.jpg"}));
    assert_eq!(
        record["responsePayload"],
        json!({"thumbnail": "a-small.jpg"})
    );
    assert_eq!(record["responseContext"]["statusCode"], 200);
    assert_eq!(record["responseContext"]["executedVersion"], "$LATEST");
    assert_eq!(d.stop(), 0);
}
