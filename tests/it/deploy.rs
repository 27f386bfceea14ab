//! `trigd deploy` and `trigd export` against moto's server through the real SDK. Every call
//! trigd makes goes through a small counting proxy in front of moto, so that "no write call"
//! is proved from the requests themselves, not from trigd's own report.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::aws::Moto;
use crate::util::Run;

/// One request trigd sent.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    /// `X-Amz-Target` (EventBridge's JSON protocol), or the query protocol's `Action`.
    op: String,
    body: String,
}

impl Call {
    /// Reads are List*, Describe* and Get* operations (and Scheduler's GETs); all else writes.
    fn is_write(&self) -> bool {
        if self.op.is_empty() {
            return self.method != "GET";
        }
        !["List", "Describe", "Get"]
            .iter()
            .any(|p| self.op.starts_with(p))
    }
}

/// A proxy on 127.0.0.1 that forwards every request to moto and records it.
struct Proxy {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let state = (
            upstream.to_owned(),
            Arc::clone(&calls),
            reqwest::Client::new(),
        );
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::new(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy { url, calls }
    }

    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

type ProxyState = Arc<(String, Arc<Mutex<Vec<Call>>>, reqwest::Client)>;

async fn forward(
    axum::extract::State(state): axum::extract::State<ProxyState>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (upstream, calls, client) = &*state;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&body).into_owned();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or_default().to_owned());
    let action = text
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .map(str::to_owned);
    calls.lock().unwrap().push(Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        op: target.or(action).unwrap_or_default(),
        body: text,
    });
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = client.request(parts.method.clone(), format!("{upstream}{path_and_query}"));
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let resp = out.body(body).send().await.unwrap();
    let mut builder = axum::response::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            builder = builder.header(k, v);
        }
    }
    builder
        .body(axum::body::Body::from(resp.bytes().await.unwrap()))
        .unwrap()
}

const ROLE: &str = "arn:aws:iam::123456789012:role/trigd-scheduler";

/// `trigd ARGS` with the AWS environment pointing at `endpoint`.
fn trigd(endpoint: &str, cwd: &Path, args: &[&str]) -> Run {
    crate::util::trigd()
        .args(args)
        .current_dir(cwd)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOOK_TOKEN", "tok-3a9f-secret")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
        .into()
}

struct World {
    moto: Moto,
    proxy: Proxy,
    dir: tempfile::TempDir,
    conf: aws_config::SdkConfig,
}

impl World {
    async fn new() -> World {
        let moto = Moto::start();
        let proxy = Proxy::start(&moto.url).await;
        let conf = moto.conf().await;
        World {
            moto,
            proxy,
            dir: tempfile::tempdir().unwrap(),
            conf,
        }
    }

    fn events(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.conf)
    }

    fn scheduler(&self) -> aws_sdk_scheduler::Client {
        aws_sdk_scheduler::Client::new(&self.conf)
    }

    /// Writes the rules into `shop/` (the deployment's default name).
    fn rules(&self, text: &str) {
        crate::harness::write_rules(&self.dir.path().join("shop"), "r.yaml", text);
    }

    /// `trigd deploy shop ARGS` through the proxy; the calls it made.
    fn deploy(&self, args: &[&str]) -> (Run, Vec<Call>) {
        self.proxy.take();
        let mut all = vec!["deploy", "shop", "--scheduler-role", ROLE];
        all.extend_from_slice(args);
        let run = trigd(&self.proxy.url, self.dir.path(), &all);
        (run, self.proxy.take())
    }
}

fn writes(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {} {}", c.method, c.path, c.op))
        .collect()
}

fn rules_text(queue_url: &str) -> String {
    format!(
        r#"
rules:
  - name: orders
    description: New orders
    pattern: {{source: [shop], detail-type: [Order Placed]}}
    retry: {{max_attempts: 3, max_event_age: 1h}}
    targets:
      - id: q
        sqs: {queue_url}
        input_transformer:
          input_paths: {{id: $.detail.id}}
          input_template: '{{"order": <id>}}'
      - id: fn
        lambda: resize
        input_path: $.detail
  - name: refunds
    pattern: {{source: [shop], detail-type: [Refund]}}
    targets:
      - id: q
        sqs: {queue_url}
  - name: nightly
    schedule: cron(0 3 * * ? *)
    timezone: Europe/Paris
    jitter: 10m
    targets:
      - id: q
        sqs: {queue_url}
        input: {{report: nightly}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_plans_without_writing_applies_once_and_then_has_no_changes() {
    let w = World::new().await;
    let queue = w.moto.queue("orders").await;
    // The queue's policy already grants someone else: that statement must stay.
    let theirs = r#"{"Sid":"theirs","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"sqs:SendMessage","Resource":"arn:aws:sqs:us-east-1:123456789012:orders"}"#;
    let sqs = w.moto.sqs().await;
    sqs.set_queue_attributes()
        .queue_url(&queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            format!(r#"{{"Version":"2012-10-17","Statement":[{theirs}]}}"#),
        )
        .send()
        .await
        .unwrap();
    w.rules(&rules_text(&queue));

    let (plan, calls) = w.deploy(&["--plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.code, 2,
        "changes: exit 2\n{}{}",
        plan.stdout, plan.stderr
    );
    assert!(!calls.is_empty(), "the plan reads AWS");
    assert_eq!(
        writes(&calls),
        Vec::<String>::new(),
        "--plan writes nothing"
    );
    for line in [
        "+ schedule group",
        "+ rule orders\n",
        "+ rule refunds\n",
        "+ schedule nightly.q\n",
        "+ queue policy arn:aws:sqs:us-east-1:123456789012:orders\n",
        "4 to add, 0 to change, 0 to delete",
    ] {
        assert!(plan.stdout.contains(line), "{line}:\n{}", plan.stdout);
    }

    let (apply, calls) = w.deploy(&[]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(
        writes(&calls),
        [
            "POST /schedule-groups/trigd-shop ",
            "POST / SetQueueAttributes",
            "POST / PutRule",
            "POST / PutTargets",
            "POST / PutRule",
            "POST / PutTargets",
            "POST /schedules/nightly.q ",
        ],
        "exactly the planned resources, in dependency order"
    );
    assert!(apply.stdout.contains("(7 write calls)"), "{}", apply.stdout);
    // One statement of ours, listing both rules; theirs kept.
    let policy = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&aws_sdk_sqs::types::QueueAttributeName::Policy)
        .unwrap();
    let policy: Value = serde_json::from_str(&policy).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{policy}");
    assert_eq!(
        statements[0],
        serde_json::from_str::<Value>(theirs).unwrap()
    );
    assert_eq!(
        statements[1]["Principal"],
        serde_json::json!({"Service": "events.amazonaws.com"})
    );
    assert_eq!(
        statements[1]["Condition"]["ArnEquals"]["aws:SourceArn"],
        serde_json::json!([
            "arn:aws:events:us-east-1:123456789012:rule/orders",
            "arn:aws:events:us-east-1:123456789012:rule/refunds"
        ])
    );

    // What AWS holds, read through the SDK.
    let events = w.events();
    let rule = events.describe_rule().name("orders").send().await.unwrap();
    let pattern: Value = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
    assert_eq!(
        pattern,
        serde_json::json!({"source": ["shop"], "detail-type": ["Order Placed"]})
    );
    assert_eq!(rule.description(), Some("New orders"));
    let tags = events
        .list_tags_for_resource()
        .resource_arn(rule.arn().unwrap())
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    let mut tags: Vec<(String, String)> = tags.into_iter().map(|t| (t.key, t.value)).collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("managed-by".to_owned(), "trigd".to_owned()),
            ("trigd:deployment".to_owned(), "shop".to_owned())
        ]
    );
    let targets = events
        .list_targets_by_rule()
        .rule("orders")
        .send()
        .await
        .unwrap()
        .targets
        .unwrap();
    let q = targets.iter().find(|t| t.id == "q").unwrap();
    assert_eq!(q.arn, "arn:aws:sqs:us-east-1:123456789012:orders");
    let tr = q.input_transformer.as_ref().unwrap();
    assert_eq!(tr.input_template, r#"{"order": <id>}"#);
    assert_eq!(
        tr.input_paths_map
            .as_ref()
            .unwrap()
            .get("id")
            .map(String::as_str),
        Some("$.detail.id")
    );
    let retry = q.retry_policy.as_ref().unwrap();
    assert_eq!(
        (
            retry.maximum_retry_attempts,
            retry.maximum_event_age_in_seconds
        ),
        (Some(3), Some(3600))
    );
    let f = targets.iter().find(|t| t.id == "fn").unwrap();
    assert_eq!(
        f.arn,
        "arn:aws:lambda:us-east-1:123456789012:function:resize"
    );
    assert_eq!(f.input_path.as_deref(), Some("$.detail"));

    let s = w
        .scheduler()
        .get_schedule()
        .name("nightly.q")
        .group_name("trigd-shop")
        .send()
        .await
        .unwrap();
    assert_eq!(s.schedule_expression(), Some("cron(0 3 * * ? *)"));
    assert_eq!(s.schedule_expression_timezone(), Some("Europe/Paris"));
    let window = s.flexible_time_window().unwrap();
    assert_eq!(window.maximum_window_in_minutes, Some(10));
    assert_eq!(
        s.action_after_completion().map(|a| a.as_str()),
        Some("NONE")
    );
    let target = s.target().unwrap();
    assert_eq!(target.role_arn, ROLE);
    assert_eq!(target.input.as_deref(), Some(r#"{"report":"nightly"}"#));

    // A second apply: no write call at all, and the plan says so.
    let (again, calls) = w.deploy(&[]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new());
    assert!(again.stdout.ends_with("\nno changes\n"), "{}", again.stdout);
    let (plan, calls) = w.deploy(&["--plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new());
    // Only the notes (the function that does not exist) and the
    // verdict: no `+`, `~`, `-` or `!` line.
    assert!(plan.stdout.ends_with("\n\nno changes\n"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .lines()
            .all(|l| !l.starts_with(['+', '~', '-', '!'])),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("function:resize` does not exist"),
        "{}",
        plan.stdout
    );

    // JSON: the same plan, for programs.
    let (json, _) = w.deploy(&["--plan", "--format", "json"]);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v["summary"],
        serde_json::json!({"add": 0, "change": 0, "delete": 0, "conflict": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_shows_in_the_plan_field_by_field_and_apply_repairs_it() {
    let w = World::new().await;
    let queue = w.moto.queue("orders").await;
    w.rules(&rules_text(&queue));
    assert_eq!(w.deploy(&[]).0.code, 0);

    // Changes by hand: a pattern, a removed target, a disabled schedule.
    let events = w.events();
    events
        .put_rule()
        .name("orders")
        .event_pattern(r#"{"source":["elsewhere"]}"#)
        .description("New orders")
        .send()
        .await
        .unwrap();
    events
        .remove_targets()
        .rule("refunds")
        .ids("q")
        .send()
        .await
        .unwrap();
    let sched = w.scheduler();
    let s = sched
        .get_schedule()
        .name("nightly.q")
        .group_name("trigd-shop")
        .send()
        .await
        .unwrap();
    sched
        .update_schedule()
        .name("nightly.q")
        .group_name("trigd-shop")
        .schedule_expression(s.schedule_expression().unwrap())
        .schedule_expression_timezone(s.schedule_expression_timezone().unwrap())
        .flexible_time_window(s.flexible_time_window().unwrap().clone())
        .target(s.target().unwrap().clone())
        .state(aws_sdk_scheduler::types::ScheduleState::Disabled)
        .send()
        .await
        .unwrap();

    let (plan, calls) = w.deploy(&["--plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new());
    assert!(
        plan.stdout.contains(
            "~ rule orders\n    EventPattern.detail-type: (none) -> [\"Order Placed\"]\n    EventPattern.source: [\"elsewhere\"] -> [\"shop\"]\n"
        ),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("~ rule refunds\n    Targets: {} -> "),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("~ schedule nightly.q\n    State: \"DISABLED\" -> \"ENABLED\"\n"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("0 to add, 3 to change, 0 to delete"));

    let (apply, calls) = w.deploy(&[]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(
        writes(&calls),
        [
            "POST / PutRule",
            "POST / PutTargets",
            "PUT /schedules/nightly.q ",
        ],
        "only what drifted is written"
    );
    let (plan, _) = w.deploy(&["--plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.stdout);

    // One field changed in the files: one `~` with that field.
    w.rules(&rules_text(&queue).replace("max_attempts: 3", "max_attempts: 4"));
    let (plan, _) = w.deploy(&["--plan"]);
    assert_eq!(plan.stdout.matches("~ ").count(), 1, "{}", plan.stdout);
    assert!(
        plan.stdout.contains(
            "~ rule orders\n    Targets.fn.RetryPolicy.MaximumRetryAttempts: 3 -> 4\n    Targets.q.RetryPolicy.MaximumRetryAttempts: 3 -> 4\n"
        ),
        "{}",
        plan.stdout
    );
    let (apply, calls) = w.deploy(&[]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(writes(&calls), ["POST / PutTargets"], "targets only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_rules_are_deleted_targets_first_and_nobody_elses_are_touched() {
    let w = World::new().await;
    let queue = w.moto.queue("orders").await;
    let events = w.events();
    events
        .create_event_bus()
        .name("shop-bus")
        .send()
        .await
        .unwrap();
    // A rule on the bus that trigd did not create, and one of another deployment.
    events
        .put_rule()
        .name("theirs")
        .event_bus_name("shop-bus")
        .event_pattern(r#"{"source":["theirs"]}"#)
        .send()
        .await
        .unwrap();
    w.rules(&rules_text(&queue).replace(
        "  - name: nightly",
        "  - name: extra\n    pattern: {source: [x]}\n    targets:\n      - id: q\n        sqs: QUEUE\n  - name: nightly",
    ).replace("QUEUE", &queue));
    let (apply, _) = w.deploy(&["--bus", "shop-bus"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);

    // `extra` and `nightly` leave the files.
    let kept = rules_text(&queue);
    w.rules(kept.split("  - name: nightly").next().unwrap());
    let (plan, _) = w.deploy(&["--bus", "shop-bus", "--plan"]);
    assert!(plan.stdout.contains("- rule extra\n"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("- schedule nightly.q\n"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("- schedule group (no schedule left in it)\n"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("theirs"), "{}", plan.stdout);
    let (apply, calls) = w.deploy(&["--bus", "shop-bus"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(
        writes(&calls),
        [
            "POST / SetQueueAttributes",
            "DELETE /schedules/nightly.q ",
            "POST / RemoveTargets",
            "POST / DeleteRule",
            "DELETE /schedule-groups/trigd-shop "
        ],
        "the queue's statement without the rule, the schedule, then the rule's targets, then \
         the rule, and the empty schedule group last"
    );
    for c in calls
        .iter()
        .filter(|c| c.op == "RemoveTargets" || c.op == "DeleteRule")
    {
        let body: Value = serde_json::from_str(&c.body).unwrap();
        assert_eq!(body["EventBusName"], "shop-bus", "{} names the bus", c.op);
    }
    let names: Vec<String> = events
        .list_rules()
        .event_bus_name("shop-bus")
        .send()
        .await
        .unwrap()
        .rules
        .unwrap()
        .into_iter()
        .filter_map(|r| r.name)
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["orders", "refunds", "theirs"]);
    let theirs = events
        .describe_rule()
        .name("theirs")
        .event_bus_name("shop-bus")
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.event_pattern(), Some(r#"{"source":["theirs"]}"#));

    // A rule of the same name that trigd did not create is a conflict: apply writes nothing.
    w.rules(
        "rules:\n  - name: theirs\n    pattern: {source: [mine]}\n    targets:\n      - id: fn\n        lambda: f\n",
    );
    let (plan, _) = w.deploy(&["--bus", "shop-bus", "--plan"]);
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("! rule theirs: a rule with this name exists and was not created by trigd"),
        "{}",
        plan.stdout
    );
    let (apply, calls) = w.deploy(&["--bus", "shop-bus"]);
    assert_eq!(apply.code, 1, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new());

    // Another deployment on the same bus sees ours as a conflict and never deletes it.
    w.rules("rules: []\n");
    let (other, calls) = w.deploy(&["--bus", "shop-bus", "--deployment", "other"]);
    assert_eq!(other.code, 0, "{}{}", other.stdout, other.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new(), "{}", other.stdout);

    // No rules left in the files: ours go, and so does our statement in the queue's policy.
    let (gone, calls) = w.deploy(&["--bus", "shop-bus"]);
    assert_eq!(gone.code, 0, "{}{}", gone.stdout, gone.stderr);
    assert!(
        gone.stdout
            .contains("- queue policy arn:aws:sqs:us-east-1:123456789012:orders\n"),
        "{}",
        gone.stdout
    );
    assert_eq!(
        writes(&calls),
        [
            "POST / RemoveTargets",
            "POST / DeleteRule",
            "POST / RemoveTargets",
            "POST / DeleteRule",
            "POST / SetQueueAttributes",
        ],
        "rules first, then the grant they needed"
    );
    let policy = w
        .moto
        .sqs()
        .await
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default()
        .remove(&aws_sdk_sqs::types::QueueAttributeName::Policy)
        .unwrap_or_default();
    assert!(!policy.contains("events.amazonaws.com"), "{policy}");
    let left: Vec<String> = events
        .list_rules()
        .event_bus_name("shop-bus")
        .send()
        .await
        .unwrap()
        .rules
        .unwrap()
        .into_iter()
        .filter_map(|r| r.name)
        .collect();
    assert_eq!(left, ["theirs"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undeployable_features_stop_apply_before_any_call_unless_skipped() {
    let w = World::new().await;
    let queue = w.moto.queue("orders").await;
    w.rules(&format!(
        "rules:\n  - name: ok\n    pattern: {{source: [a]}}\n    targets:\n      - id: q\n        sqs: {queue}\n  - name: local\n    pattern: {{source: [b]}}\n    targets:\n      - id: run\n        command: [echo, hi]\n"
    ));
    let (apply, calls) = w.deploy(&[]);
    assert_eq!(apply.code, 1, "{}{}", apply.stdout, apply.stderr);
    assert!(calls.is_empty(), "no call at all: {calls:?}");
    assert!(
        apply.stderr.contains(
            "shop/r.yaml:10:9: undeployable: target `run` of rule `local` is a `command` target"
        ),
        "{}",
        apply.stderr
    );
    assert!(
        apply.stderr.contains("--skip-undeployable"),
        "{}",
        apply.stderr
    );

    let (plan, _) = w.deploy(&["--plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 1, "errors win over changes: {}", plan.stdout);

    let (apply, calls) = w.deploy(&["--skip-undeployable"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(
        writes(&calls),
        [
            "POST / SetQueueAttributes",
            "POST / PutRule",
            "POST / PutTargets"
        ]
    );
    assert!(
        apply
            .stderr
            .contains("rule `local` has no target that can be deployed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_plan_refuses_invalid_rules_with_the_same_diagnostics_as_check() {
    let w = World::new().await;
    w.rules("rules:\n  - name: bad\n    pattern: {source: shop}\n    targets:\n      - id: fn\n        lambda: f\n");
    let (plan, calls) = w.deploy(&["--plan"]);
    let check = trigd(&w.proxy.url, w.dir.path(), &["check", "shop"]);
    assert_eq!((plan.code, check.code), (1, 1));
    assert_eq!(plan.stderr, check.stderr);
    assert!(calls.is_empty());
}

/// The exported template, created as a stack through moto's CloudFormation (which creates
/// Events::Rule; Scheduler resources it skips), gives the rule deploy would have made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_exported_template_loads_into_cloudformation() {
    let w = World::new().await;
    let queue = w.moto.queue("orders").await;
    // Without the Lambda target: moto's CloudFormation refuses a permission on a function it
    // does not hold.
    w.rules(&rules_text(&queue).replace(
        "      - id: fn\n        lambda: resize\n        input_path: $.detail\n",
        "",
    ));
    let one = trigd(
        &w.moto.url,
        w.dir.path(),
        &["export", "shop", "--format", "cloudformation"],
    );
    let two = trigd(
        &w.moto.url,
        w.dir.path(),
        &["export", "shop", "--format", "cloudformation"],
    );
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(one.stdout, two.stdout, "deterministic");
    let sam = trigd(
        &w.moto.url,
        w.dir.path(),
        &["export", "shop", "--format", "sam"],
    );
    let sam: Value = serde_json::from_str(&sam.stdout).unwrap();
    assert_eq!(sam["Transform"], "AWS::Serverless-2016-10-31");

    let resp = reqwest::Client::new()
        .post(&w.moto.url)
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/cloudformation/aws4_request, SignedHeaders=host, Signature=x",
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("Action", "CreateStack"),
                    ("Version", "2010-05-15"),
                    ("StackName", "trigd-shop"),
                    ("TemplateBody", one.stdout.as_str()),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    let events = w.events();
    let rule = events.describe_rule().name("refunds").send().await.unwrap();
    let pattern: Value = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
    assert_eq!(
        pattern,
        serde_json::json!({"source": ["shop"], "detail-type": ["Refund"]})
    );
    let targets = events
        .list_targets_by_rule()
        .rule("orders")
        .send()
        .await
        .unwrap()
        .targets
        .unwrap();
    let q = targets.iter().find(|t| t.id == "q").unwrap();
    assert_eq!(q.arn, "arn:aws:sqs:us-east-1:123456789012:orders");
    assert_eq!(
        q.input_transformer.as_ref().unwrap().input_template,
        r#"{"order": <id>}"#
    );
}

/// A query-protocol call to moto for a service the tests have no SDK crate for.
async fn query(moto: &Moto, service: &str, params: &[(&str, &str)]) -> String {
    let resp = reqwest::Client::new()
        .post(&moto.url)
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x"
            ),
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(
        status.is_success(),
        "{service} {params:?}: {status}: {text}"
    );
    text
}

/// Creates Lambda function `name` in moto (with the IAM role Lambda insists on).
async fn create_function(w: &World, name: &str) {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    query(
        &w.moto,
        "iam",
        &[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", "fn-role"),
            ("AssumeRolePolicyDocument", trust),
        ],
    )
    .await;
    // An empty zip archive: moto keeps the code without running it.
    let mut zip = vec![0x50, 0x4b, 0x05, 0x06];
    zip.extend([0u8; 18]);
    aws_sdk_lambda::Client::new(&w.conf)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/fn-role")
        .handler("h.h")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

async fn policy_sids(w: &World, function: &str) -> Vec<(String, String)> {
    let policy = match aws_sdk_lambda::Client::new(&w.conf)
        .get_policy()
        .function_name(function)
        .send()
        .await
    {
        Ok(out) => out.policy.unwrap(),
        Err(_) => return Vec::new(),
    };
    let v: Value = serde_json::from_str(&policy).unwrap();
    let mut out: Vec<(String, String)> = v["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["Sid"].as_str().unwrap().to_owned(),
                s["Condition"]["ArnLike"]["AWS:SourceArn"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lambda_targets_get_their_permission_and_other_statements_are_kept() {
    let w = World::new().await;
    let queue = w.moto.queue("orders").await;
    create_function(&w, "resize").await;
    let lambda = aws_sdk_lambda::Client::new(&w.conf);
    // A statement somebody else wrote.
    lambda
        .add_permission()
        .function_name("resize")
        .statement_id("theirs")
        .action("lambda:InvokeFunction")
        .principal("s3.amazonaws.com")
        .source_arn("arn:aws:s3:::photos")
        .send()
        .await
        .unwrap();
    w.rules(&rules_text(&queue));
    let (plan, _) = w.deploy(&["--plan"]);
    let sid_line = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("+ permission trigd-"))
        .unwrap_or_else(|| panic!("{}", plan.stdout))
        .to_owned();
    assert!(
        sid_line.ends_with("-orders@arn:aws:lambda:us-east-1:123456789012:function:resize"),
        "{sid_line}"
    );
    let sid = sid_line
        .trim_start_matches("+ permission ")
        .split('@')
        .next()
        .unwrap()
        .to_owned();

    let (apply, calls) = w.deploy(&[]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let written = writes(&calls);
    assert_eq!(
        written[..2],
        [
            "POST /schedule-groups/trigd-shop ",
            "POST /2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aresize/policy "
        ],
        "the permission before the rule that needs it: {written:?}"
    );
    assert_eq!(
        policy_sids(&w, "resize").await,
        [
            ("theirs".to_owned(), "arn:aws:s3:::photos".to_owned()),
            (
                sid.clone(),
                "arn:aws:events:us-east-1:123456789012:rule/orders".to_owned()
            ),
        ]
    );
    let (again, calls) = w.deploy(&[]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new());

    // The rule leaves the files: its permission goes, the other statement stays.
    w.rules(&rules_text(&queue).replace("- name: orders", "- name: orders-off\n    enabled: false\n    pattern: {source: [off]}\n    targets:\n      - id: q\n        sqs: QUEUE\n  - name: retired").replace("QUEUE", &queue));
    let (apply, calls) = w.deploy(&[]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(
        writes(&calls).contains(&format!(
            "DELETE /2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aresize/policy/{sid} "
        )),
        "{:?}",
        writes(&calls)
    );
    let sids = policy_sids(&w, "resize").await;
    assert!(sids.iter().any(|(s, _)| s == "theirs"), "{sids:?}");
    assert!(
        sids.iter()
            .any(|(s, arn)| s.ends_with("-retired") && arn.ends_with("rule/retired")),
        "the renamed rule's permission: {sids:?}"
    );
    assert!(!sids.iter().any(|(s, _)| *s == sid), "{sids:?}");
}

/// `examples/aws/shop` does what its README says: a plan with changes, an apply, then none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shop_example_deploys_as_its_readme_says() {
    let w = World::new().await;
    let root = crate::util::root();
    let run = |args: &[&str]| {
        let mut all = vec!["deploy", "examples/aws/shop", "--scheduler-role", ROLE];
        all.extend_from_slice(args);
        trigd(&w.proxy.url, &root, &all)
    };
    let plan = run(&["--plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    for line in [
        "+ rule shop-order-placed\n",
        "+ rule shop-big-order\n",
        "+ schedule shop-nightly-report.report\n",
        "3 to add, 0 to change, 0 to delete",
    ] {
        assert!(plan.stdout.contains(line), "{line}\n{}", plan.stdout);
    }
    let apply = run(&[]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let s = w
        .scheduler()
        .get_schedule()
        .name("shop-nightly-report.report")
        .group_name("trigd-shop")
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.target().unwrap().input.as_deref(),
        Some(r#"{"report": "daily-sales", "scheduled": "<aws.scheduler.scheduled-time>"}"#)
    );
    w.proxy.take();
    let again = run(&["--plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&w.proxy.take()), Vec::<String>::new());
}

/// Secrets (a `${VAR}` header value, credentials in a URL) appear in no plan, log, error or
/// template, in any format.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_never_appear_in_plans_or_templates() {
    let w = World::new().await;
    let queue = w.moto.queue("orders").await;
    w.rules(&format!(
        "rules:\n  - name: hooked\n    pattern: {{source: [a]}}\n    targets:\n      - id: q\n        sqs: {queue}\n      - id: hook\n        http: https://ada:pa55w0rd-9@hooks.example.com/x\n        headers: {{Authorization: \"Bearer ${{HOOK_TOKEN}}\"}}\n"
    ));
    let mut outputs = Vec::new();
    for args in [
        &["--plan"][..],
        &["--plan", "--format", "json"],
        &[],
        &["--events-role", EVENTS_ROLE, "--plan", "--format", "json"],
        &["--events-role", EVENTS_ROLE],
        &["--events-role", EVENTS_ROLE, "--update-secrets"],
        &[
            "--events-role",
            EVENTS_ROLE,
            "--update-secrets",
            "--format",
            "json",
        ],
    ] {
        let (r, _) = w.deploy(args);
        outputs.push(format!("{args:?}: {}{}", r.stdout, r.stderr));
    }
    for format in ["cloudformation", "sam"] {
        let r = trigd(
            &w.proxy.url,
            w.dir.path(),
            &["export", "shop", "--format", format],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        outputs.push(format!("{format}: {}{}", r.stdout, r.stderr));
    }
    assert!(outputs[4].contains("+ connection "), "{}", outputs[4]);
    for out in &outputs {
        for secret in ["pa55w0rd-9", "tok-3a9f-secret"] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
    }
}

/// A schedule whose `start` has passed is deployed without it (Scheduler refuses a past start
/// date), and that is no change for the next plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_whose_start_has_passed_deploys_and_stays_unchanged() {
    let w = World::new().await;
    let queue = w.moto.queue("orders").await;
    w.rules(&format!(
        "rules:\n  - name: nightly\n    schedule: cron(0 3 * * ? *)\n    start: 2020-01-01T00:00:00Z\n    end: 2099-01-01T00:00:00Z\n    targets:\n      - id: q\n        sqs: {queue}\n"
    ));
    let (apply, _) = w.deploy(&[]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(
        apply.stderr.contains("its `start` has passed"),
        "{}",
        apply.stderr
    );
    let s = w
        .scheduler()
        .get_schedule()
        .name("nightly.q")
        .group_name("trigd-shop")
        .send()
        .await
        .unwrap();
    assert_eq!(s.start_date(), None);
    assert_eq!(s.end_date().map(|d| d.secs()), Some(4070908800));
    let (plan, calls) = w.deploy(&["--plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new());
}

const EVENTS_ROLE: &str = "arn:aws:iam::123456789012:role/trigd-events";

/// An `http` target: a connection (with the URL's credentials and the `${VAR}` header as
/// secrets) and an API destination, the rule's target pointing at it with the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_targets_deploy_as_connections_and_api_destinations() {
    let w = World::new().await;
    let rules = "rules:\n  - name: hooked\n    pattern: {source: [shop]}\n    targets:\n      - id: hook\n        http: https://ada:pa55w0rd-9@hooks.example.com/orders\n        method: PUT\n        headers: {X-Plain: visible, Authorization: \"Bearer ${HOOK_TOKEN}\"}\n";
    w.rules(rules);
    let (plan, _) = w.deploy(&["--plan", "--events-role", EVENTS_ROLE]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let connection_line = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("+ connection "))
        .unwrap_or_else(|| panic!("{}", plan.stdout));
    let name = connection_line
        .trim_start_matches("+ connection ")
        .to_owned();
    assert!(name.ends_with("-hooked.hook"), "{name}");
    assert!(plan.stdout.contains(&format!("+ api destination {name}\n")));

    let (apply, calls) = w.deploy(&["--events-role", EVENTS_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(
        writes(&calls),
        [
            "POST / CreateConnection",
            "POST / CreateApiDestination",
            "POST / PutRule",
            "POST / PutTargets"
        ]
    );
    let events = w.events();
    // moto gives the secrets back (AWS does not): they are what the environment held.
    let conn = events
        .describe_connection()
        .name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(conn.authorization_type().map(|t| t.as_str()), Some("BASIC"));
    let auth = conn.auth_parameters().unwrap();
    assert_eq!(
        auth.basic_auth_parameters().unwrap().username(),
        Some("ada")
    );
    let header = &auth
        .invocation_http_parameters()
        .unwrap()
        .header_parameters()[0];
    assert_eq!(header.key(), Some("Authorization"));
    assert_eq!(header.value(), Some("Bearer tok-3a9f-secret"));
    assert!(header.is_value_secret());
    let dest = events
        .describe_api_destination()
        .name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        dest.invocation_endpoint(),
        Some("https://hooks.example.com/orders")
    );
    assert_eq!(dest.http_method().map(|m| m.as_str()), Some("PUT"));
    let targets = events
        .list_targets_by_rule()
        .rule("hooked")
        .send()
        .await
        .unwrap()
        .targets
        .unwrap();
    assert_eq!(Some(targets[0].arn.as_str()), dest.api_destination_arn());
    assert_eq!(targets[0].role_arn.as_deref(), Some(EVENTS_ROLE));
    let headers = targets[0]
        .http_parameters
        .as_ref()
        .unwrap()
        .header_parameters
        .as_ref()
        .unwrap();
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert_eq!(headers["X-Plain"], "visible");

    // Unchanged: no write. `--update-secrets`: the connection alone, its secrets not shown.
    let (again, calls) = w.deploy(&["--events-role", EVENTS_ROLE]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new(), "{}", again.stdout);
    let (resend, calls) = w.deploy(&["--events-role", EVENTS_ROLE, "--update-secrets"]);
    assert_eq!(resend.code, 0, "{}{}", resend.stdout, resend.stderr);
    assert_eq!(writes(&calls), ["POST / UpdateConnection"]);
    assert!(
        resend.stdout.contains(&format!(
            "~ connection {name}\n    secrets: sent again (never shown)\n"
        )),
        "{}",
        resend.stdout
    );
    for out in [&plan, &apply, &again, &resend] {
        for secret in ["pa55w0rd-9", "tok-3a9f-secret"] {
            assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
        }
    }

    // The rule goes: its targets, the rule, then its API destination and connection.
    w.rules("rules: []\n");
    let (gone, calls) = w.deploy(&["--events-role", EVENTS_ROLE]);
    assert_eq!(gone.code, 0, "{}{}", gone.stdout, gone.stderr);
    assert_eq!(
        writes(&calls),
        [
            "POST / RemoveTargets",
            "POST / DeleteRule",
            "POST / DeleteApiDestination",
            "POST / DeleteConnection"
        ]
    );
    let left = events.list_connections().send().await.unwrap();
    assert_eq!(left.connections.unwrap_or_default().len(), 0);
}

const FUNCTION_ROLE: &str = "arn:aws:iam::123456789012:role/fn-role";

/// A local function becomes a Lambda function (its code zipped, its settings, its reserved
/// concurrency), which a `function` target then reaches with its permission; unchanged code
/// is no change, changed code is uploaded alone, and a removed function is deleted last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_functions_deploy_as_lambda_functions() {
    let w = World::new().await;
    // The execution role (moto checks that it exists), made through a throwaway function.
    create_function(&w, "scratch").await;
    let code = w.dir.path().join("shop/fn/resize");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("app.py"),
        "def handler(event, context):\n    return 1\n",
    )
    .unwrap();
    let rules = "functions:\n  resize:\n    runtime: python3.12\n    handler: app.handler\n    code: fn/resize\n    timeout: 10s\n    memory: 256\n    concurrency: 3\n    environment: {SIZE: '64'}\nrules:\n  - name: orders\n    pattern: {source: [shop]}\n    targets:\n      - id: f\n        function: resize\n";
    w.rules(rules);
    let (plan, calls) = w.deploy(&["--plan", "--function-role", FUNCTION_ROLE]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new());
    assert!(
        plan.stdout.contains("+ function resize\n"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("+ permission "), "{}", plan.stdout);

    let (apply, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let written = writes(&calls);
    assert_eq!(written[0], "POST /2015-03-31/functions ", "{written:?}");
    assert!(written[1].ends_with("/concurrency "), "{written:?}");
    assert!(
        written[2].ends_with("/policy "),
        "the permission after the function: {written:?}"
    );
    assert_eq!(written[3..], ["POST / PutRule", "POST / PutTargets"]);

    let lambda = aws_sdk_lambda::Client::new(&w.conf);
    let f = lambda
        .get_function()
        .function_name("resize")
        .send()
        .await
        .unwrap();
    let conf = f.configuration().unwrap();
    assert_eq!(conf.handler(), Some("app.handler"));
    assert_eq!(conf.timeout(), Some(10));
    assert_eq!(conf.memory_size(), Some(256));
    assert_eq!(
        conf.environment().unwrap().variables().unwrap()["SIZE"],
        "64"
    );
    assert_eq!(
        f.concurrency().unwrap().reserved_concurrent_executions(),
        Some(3)
    );
    assert_eq!(f.tags().unwrap()["trigd:deployment"], "shop");
    let targets = w
        .events()
        .list_targets_by_rule()
        .rule("orders")
        .send()
        .await
        .unwrap()
        .targets
        .unwrap();
    assert_eq!(Some(targets[0].arn.as_str()), conf.function_arn());

    let (again, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new(), "{}", again.stdout);

    // New code: uploaded alone.
    std::fs::write(
        code.join("app.py"),
        "def handler(event, context):\n    return 2\n",
    )
    .unwrap();
    let (plan, _) = w.deploy(&["--plan", "--function-role", FUNCTION_ROLE]);
    assert!(
        plan.stdout.contains("~ function resize\n    CodeSha256: "),
        "{}",
        plan.stdout
    );
    let (apply, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(writes(&calls), ["PUT /2015-03-31/functions/resize/code "]);

    // Gone from the files: the rule first, then its permission, then the function.
    w.rules("rules: []\n");
    let (gone, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(gone.code, 0, "{}{}", gone.stdout, gone.stderr);
    let written = writes(&calls);
    assert_eq!(written[..2], ["POST / RemoveTargets", "POST / DeleteRule"]);
    assert!(
        written[2].starts_with("DELETE ") && written[2].contains("/policy/"),
        "{written:?}"
    );
    assert_eq!(written[3], "DELETE /2015-03-31/functions/resize ");
    assert!(
        lambda
            .get_function()
            .function_name("scratch")
            .send()
            .await
            .is_ok(),
        "a function trigd did not create is left alone"
    );
}

/// An `sqs` trigger becomes the function's event-source mapping, with its batch, window,
/// partial batch responses, filters and concurrency; a change updates it in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_triggers_deploy_as_event_source_mappings() {
    let w = World::new().await;
    create_function(&w, "scratch").await;
    let queue = w.moto.queue("inbox").await;
    let code = w.dir.path().join("shop/fn/worker");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("app.py"),
        "def handler(event, context):\n    return {}\n",
    )
    .unwrap();
    let rules = |batch: u32| {
        format!(
            "sources:\n  inbox:\n    sqs: {{queue_url: {queue}}}\nfunctions:\n  worker:\n    runtime: python3.12\n    handler: app.handler\n    code: fn/worker\n    triggers:\n      - sqs:\n          source: inbox\n          batch_size: {batch}\n          batch_window: 5s\n          report_batch_item_failures: true\n          max_concurrency: 4\n          filter:\n            - {{body: {{kind: [order]}}}}\nrules: []\n"
        )
    };
    w.rules(&rules(20));
    let (apply, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let written = writes(&calls);
    assert_eq!(written[0], "POST /2015-03-31/functions ", "{written:?}");
    assert_eq!(
        written[1..],
        ["POST /2015-03-31/event-source-mappings "],
        "{written:?}"
    );
    let lambda = aws_sdk_lambda::Client::new(&w.conf);
    let mappings = lambda
        .list_event_source_mappings()
        .function_name("worker")
        .send()
        .await
        .unwrap()
        .event_source_mappings
        .unwrap();
    assert_eq!(mappings.len(), 1);
    let m = &mappings[0];
    assert_eq!(
        m.event_source_arn.as_deref(),
        Some("arn:aws:sqs:us-east-1:123456789012:inbox")
    );
    assert_eq!(m.batch_size, Some(20));
    assert_eq!(m.maximum_batching_window_in_seconds, Some(5));
    assert_eq!(
        m.function_response_types.as_ref().unwrap()[0].as_str(),
        "ReportBatchItemFailures"
    );
    let pattern: Value = serde_json::from_str(
        m.filter_criteria
            .as_ref()
            .unwrap()
            .filters
            .as_ref()
            .unwrap()[0]
            .pattern
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(pattern, serde_json::json!({"body": {"kind": ["order"]}}));
    assert_eq!(
        m.scaling_config.as_ref().unwrap().maximum_concurrency,
        Some(4)
    );

    let (again, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new(), "{}", again.stdout);

    w.rules(&rules(50));
    let (plan, _) = w.deploy(&["--plan", "--function-role", FUNCTION_ROLE]);
    assert!(
        plan.stdout.contains(
            "~ event-source mapping worker@arn:aws:sqs:us-east-1:123456789012:inbox\n    BatchSize: 20 -> 50\n"
        ),
        "{}",
        plan.stdout
    );
    let (apply, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let written = writes(&calls);
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(
        written[0].starts_with("PUT /2015-03-31/event-source-mappings/"),
        "{written:?}"
    );

    // The function leaves the files: its mapping first, then the function.
    w.rules("rules: []\n");
    let (gone, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(gone.code, 0, "{}{}", gone.stdout, gone.stderr);
    let written = writes(&calls);
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(
        written[0].starts_with("DELETE /2015-03-31/event-source-mappings/"),
        "{written:?}"
    );
    assert_eq!(written[1], "DELETE /2015-03-31/functions/worker ");
}

/// `--adopt` takes over a same-named rule trigd did not create: tagged, then updated; from
/// then on it is the deployment's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adopt_takes_over_a_same_named_rule() {
    let w = World::new().await;
    let queue = w.moto.queue("orders").await;
    let events = w.events();
    events
        .put_rule()
        .name("orders")
        .event_pattern(r#"{"source":["old"]}"#)
        .send()
        .await
        .unwrap();
    w.rules(&format!(
        "rules:\n  - name: orders\n    pattern: {{source: [shop]}}\n    targets:\n      - id: q\n        sqs: {queue}\n"
    ));
    let (plan, _) = w.deploy(&["--plan"]);
    assert_eq!(plan.code, 1, "a conflict without --adopt: {}", plan.stdout);
    let (plan, calls) = w.deploy(&["--plan", "--adopt"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new());
    assert!(
        plan.stdout
            .contains("~ rule orders\n    (tags): (none) -> "),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("    EventPattern.source: [\"old\"] -> [\"shop\"]\n"),
        "{}",
        plan.stdout
    );
    let (apply, calls) = w.deploy(&["--adopt"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(
        writes(&calls),
        [
            "POST / SetQueueAttributes",
            "POST / TagResource",
            "POST / PutRule",
            "POST / PutTargets"
        ]
    );
    let (again, calls) = w.deploy(&["--plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "now ours, without --adopt: {}", again.stdout);
    assert_eq!(writes(&calls), Vec::<String>::new());
}

/// The destinations of `function` targets become the deployed function's event invoke config.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_destinations_become_its_event_invoke_config() {
    let w = World::new().await;
    create_function(&w, "scratch").await;
    let queue = w.moto.queue("done").await;
    let code = w.dir.path().join("shop/fn/work");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("app.py"),
        "def handler(event, context):\n    return 1\n",
    )
    .unwrap();
    w.rules(&format!(
        "functions:\n  work:\n    runtime: python3.12\n    handler: app.handler\n    code: fn/work\n    max_retry_attempts: 1\n    max_event_age: 1h\nrules:\n  - name: orders\n    pattern: {{source: [shop]}}\n    targets:\n      - id: f\n        function: work\n        on_success: {{sqs: {queue}}}\n        on_failure: {{bus: true}}\n"
    ));
    let (apply, _) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let config = aws_sdk_lambda::Client::new(&w.conf)
        .get_function_event_invoke_config()
        .function_name("work")
        .send()
        .await
        .unwrap();
    assert_eq!(config.maximum_retry_attempts, Some(1));
    assert_eq!(config.maximum_event_age_in_seconds, Some(3600));
    let d = config.destination_config.unwrap();
    assert_eq!(
        d.on_success.unwrap().destination.as_deref(),
        Some("arn:aws:sqs:us-east-1:123456789012:done")
    );
    assert_eq!(
        d.on_failure.unwrap().destination.as_deref(),
        Some("arn:aws:events:us-east-1:123456789012:event-bus/default")
    );
    let (again, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new(), "{}", again.stdout);
}

/// An `sns` trigger on an `sns` source: the function subscribed to each topic, with the
/// permission SNS needs; removing the trigger removes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sns_triggers_deploy_as_subscriptions() {
    let w = World::new().await;
    create_function(&w, "scratch").await;
    let sns = aws_sdk_sns::Client::new(&w.conf);
    let topic = sns
        .create_topic()
        .name("alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let code = w.dir.path().join("shop/fn/pager");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("app.py"),
        "def handler(event, context):\n    return 1\n",
    )
    .unwrap();
    let function = |triggers: &str| {
        format!(
            "sources:\n  alerts:\n    sns: {{topic_arns: [{topic}]}}\nfunctions:\n  pager:\n    runtime: python3.12\n    handler: app.handler\n    code: fn/pager\n{triggers}rules: []\n"
        )
    };
    w.rules(&function("    triggers:\n      - sns: {source: alerts}\n"));
    let (apply, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let written = writes(&calls);
    assert_eq!(written.len(), 3, "{written:?}");
    assert_eq!(written[0], "POST /2015-03-31/functions ");
    assert!(
        written[1].ends_with("/policy "),
        "the permission first: {written:?}"
    );
    assert_eq!(written[2], "POST / Subscribe");
    let subs = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap()
        .subscriptions
        .unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].protocol.as_deref(), Some("lambda"));
    assert_eq!(
        subs[0].endpoint.as_deref(),
        Some("arn:aws:lambda:us-east-1:123456789012:function:pager")
    );
    let sids = policy_sids(&w, "pager").await;
    assert_eq!(sids.len(), 1, "{sids:?}");
    assert!(
        sids[0].0.ends_with("-sns-alerts") && sids[0].1 == topic,
        "{sids:?}"
    );

    let (again, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new(), "{}", again.stdout);

    // The trigger goes; the function stays.
    w.rules(&function(""));
    let (apply, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let written = writes(&calls);
    assert_eq!(written.len(), 2, "{written:?}");
    assert_eq!(written[0], "POST / Unsubscribe");
    assert!(
        written[1].starts_with("DELETE ") && written[1].contains("/policy/"),
        "{written:?}"
    );
    let subs = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap()
        .subscriptions
        .unwrap_or_default();
    assert!(subs.is_empty(), "{subs:?}");
}

/// A function's layer directory becomes a layer version the function uses; new content is a
/// new version, and the function moves to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_layers_deploy_as_layer_versions() {
    let w = World::new().await;
    create_function(&w, "scratch").await;
    let base = w.dir.path().join("shop/fn");
    std::fs::create_dir_all(base.join("work")).unwrap();
    std::fs::create_dir_all(base.join("libs/python")).unwrap();
    std::fs::write(
        base.join("work/app.py"),
        "import helper\ndef handler(e, c):\n    return helper.X\n",
    )
    .unwrap();
    std::fs::write(base.join("libs/python/helper.py"), "X = 1\n").unwrap();
    w.rules("functions:\n  work:\n    runtime: python3.12\n    handler: app.handler\n    code: fn/work\n    layers: [fn/libs]\nrules: []\n");
    let (apply, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let written = writes(&calls);
    assert!(
        written[0].starts_with("POST /2018-10-31/layers/trigd-")
            && written[0].ends_with("-work-0/versions "),
        "{written:?}"
    );
    assert_eq!(written[1], "POST /2015-03-31/functions ", "{written:?}");
    let lambda = aws_sdk_lambda::Client::new(&w.conf);
    let layer_arn = |f: aws_sdk_lambda::operation::get_function::GetFunctionOutput| {
        f.configuration.unwrap().layers.unwrap()[0]
            .arn
            .clone()
            .unwrap()
    };
    let first = layer_arn(
        lambda
            .get_function()
            .function_name("work")
            .send()
            .await
            .unwrap(),
    );
    assert!(first.ends_with("-work-0:1"), "{first}");

    let (again, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new(), "{}", again.stdout);

    std::fs::write(base.join("libs/python/helper.py"), "X = 2\n").unwrap();
    let (apply, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let written = writes(&calls);
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(written[0].ends_with("-work-0/versions "), "{written:?}");
    assert_eq!(written[1], "PUT /2015-03-31/functions/work/configuration ");
    let second = layer_arn(
        lambda
            .get_function()
            .function_name("work")
            .send()
            .await
            .unwrap(),
    );
    assert!(second.ends_with("-work-0:2"), "{second}");

    w.rules("rules: []\n");
    let (gone, calls) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(gone.code, 0, "{}{}", gone.stdout, gone.stderr);
    let written = writes(&calls);
    assert_eq!(
        written[0], "DELETE /2015-03-31/functions/work ",
        "{written:?}"
    );
    assert_eq!(written.len(), 3, "both versions go: {written:?}");
}

/// An `http` target of a schedule rule: the schedule puts an event on the bus, and a rule of
/// the deployment sends it to the API destination, rebuilding trigd's payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_targets_of_schedules_hop_through_the_bus() {
    let w = World::new().await;
    w.rules("rules:\n  - name: tick\n    schedule: rate(1 hour)\n    targets:\n      - id: hook\n        http: https://hooks.example.com/tick\n        input: {ping: true}\n");
    let (apply, calls) = w.deploy(&["--events-role", EVENTS_ROLE]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(
        writes(&calls),
        [
            "POST /schedule-groups/trigd-shop ",
            "POST / CreateConnection",
            "POST / CreateApiDestination",
            "POST / PutRule",
            "POST / PutTargets",
            "POST /schedules/tick.hook ",
        ]
    );
    let s = w
        .scheduler()
        .get_schedule()
        .name("tick.hook")
        .group_name("trigd-shop")
        .send()
        .await
        .unwrap();
    let target = s.target().unwrap();
    assert_eq!(
        target.arn,
        "arn:aws:events:us-east-1:123456789012:event-bus/default"
    );
    assert_eq!(
        target.event_bridge_parameters.as_ref().unwrap().source,
        "trigd.schedule"
    );
    let events = w.events();
    let rules = events.list_rules().send().await.unwrap().rules.unwrap();
    let hop = rules
        .iter()
        .find(|r| {
            r.name
                .as_deref()
                .unwrap_or_default()
                .contains("-hop-tick.hook")
        })
        .unwrap_or_else(|| panic!("{rules:?}"));
    let targets = events
        .list_targets_by_rule()
        .rule(hop.name.as_deref().unwrap())
        .send()
        .await
        .unwrap()
        .targets
        .unwrap();
    assert!(targets[0].arn.contains(":api-destination/"), "{targets:?}");
    assert_eq!(
        targets[0]
            .input_transformer
            .as_ref()
            .unwrap()
            .input_template,
        r#"{"ping":true}"#
    );
    let (again, calls) = w.deploy(&["--events-role", EVENTS_ROLE]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(writes(&calls), Vec::<String>::new(), "{}", again.stdout);
}

/// A change AWS refuses is reported with the resource and where it is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_change_names_its_resource_and_line() {
    let w = World::new().await;
    create_function(&w, "scratch").await;
    let code = w.dir.path().join("shop/fn/pager");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("app.py"),
        "def handler(event, context):\n    return 1\n",
    )
    .unwrap();
    // A topic that does not exist: the subscription is refused.
    w.rules("sources:\n  alerts:\n    sns: {topic_arns: ['arn:aws:sns:us-east-1:123456789012:nowhere']}\nfunctions:\n  pager:\n    runtime: python3.12\n    handler: app.handler\n    code: fn/pager\n    triggers:\n      - sns: {source: alerts}\nrules: []\n");
    let (apply, _) = w.deploy(&["--function-role", FUNCTION_ROLE]);
    assert_eq!(apply.code, 2, "{}{}", apply.stdout, apply.stderr);
    assert!(
        apply.stderr.contains(
            "trigd: error: subscription pager@arn:aws:sns:us-east-1:123456789012:nowhere (shop/r.yaml:10:9): Subscribe failed"
        ),
        "{}",
        apply.stderr
    );
}

/// The examples' local functions export as SAM functions whose code is their directory and
/// whose triggers are SAM events; what AWS cannot run is named, and left out only when asked.
#[test]
fn the_examples_functions_export_as_sam_functions_with_their_triggers() {
    let root = crate::util::root();
    let refused = crate::util::run_in(&root, &["export", "rules", "--format", "sam"], None);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("rules/schedules.yaml:20:9: undeployable: target `append`"),
        "{}",
        refused.stderr
    );
    let run = crate::util::run_in(
        &root,
        &["export", "rules", "--format", "sam", "--skip-undeployable"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let t: Value = serde_json::from_str(&run.stdout).unwrap();
    let functions: Vec<&Value> = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .collect();
    let hello = functions
        .iter()
        .find(|f| f["Properties"]["CodeUri"] == "functions/hello")
        .expect("the hello function");
    assert_eq!(hello["Properties"]["Handler"], "app.handler");
    let mut routes: Vec<(String, String, String)> = hello["Properties"]["Events"]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let p = &e["Properties"];
            (
                p["Method"].as_str().unwrap().to_owned(),
                p["Path"].as_str().unwrap().to_owned(),
                p["PayloadFormatVersion"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            ("ANY".to_owned(), "/items/{id}".to_owned(), "1.0".to_owned()),
            ("GET".to_owned(), "/hello".to_owned(), "2.0".to_owned())
        ]
    );
    let alarm = functions
        .iter()
        .find(|f| f["Properties"]["CodeUri"] == "functions/alarm")
        .expect("the alarm function");
    let schedule = alarm["Properties"]["Events"]
        .as_object()
        .unwrap()
        .values()
        .find(|e| e["Type"] == "ScheduleV2")
        .expect("its schedule trigger");
    assert_eq!(
        schedule["Properties"]["ScheduleExpression"],
        "cron(0 7 ? * MON-FRI *)"
    );
    assert_eq!(
        schedule["Properties"]["ScheduleExpressionTimezone"],
        "America/New_York"
    );
    assert_eq!(schedule["Properties"]["Input"], r#"{"message":"WAKE UP"}"#);
    assert!(
        t["Description"].as_str().unwrap().contains("sam build"),
        "{}",
        t["Description"]
    );
}
