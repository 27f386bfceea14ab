//! The pure parts of deploy: the desired state, its findings and the plan, through one
//! helper that loads rule text the way `trigd deploy` does.

use serde_json::{Value, json};

use super::desired::{self, Context, Severity};
use super::plan::{self, Action, Actual, Existing, Owner};
use super::{Desired, Kind, Resource, RuleSources};
use crate::rules::{RuleSet, Settings};

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn ctx() -> Context {
    Context {
        region: "eu-west-2".to_owned(),
        account: "111122223333".to_owned(),
        bus: "default".to_owned(),
        deployment: "shop".to_owned(),
        scheduler_role_arn: Some("arn:aws:iam::111122223333:role/sched".to_owned()),
        events_role_arn: Some("arn:aws:iam::111122223333:role/events".to_owned()),
        env: desired::Env::Values(
            [("HOOK_TOKEN".to_owned(), "tok-secret-1".to_owned())]
                .into_iter()
                .collect(),
        ),
        function_role_arn: Some("arn:aws:iam::111122223333:role/fn".to_owned()),
        packages: Default::default(),
        template: None,
    }
}

/// Loads `text` as one rule file and builds its desired state in `ctx`.
#[track_caller]
fn check_in(text: &str, ctx: &Context) -> (Desired, RuleSet) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yaml");
    std::fs::write(&path, text).unwrap();
    let set = crate::config::load_rules(dir.path(), Settings::default())
        .unwrap_or_else(|e| panic!("the rules load: {e}"));
    let sources = RuleSources::read(&set);
    (desired::build(&set, &sources, ctx), set)
}

#[track_caller]
fn check(text: &str) -> Desired {
    check_in(text, &ctx()).0
}

fn resource<'a>(d: &'a Desired, kind: Kind, name: &str) -> &'a Value {
    &d.resources
        .iter()
        .find(|r| r.kind == kind && r.name == name)
        .unwrap_or_else(|| panic!("no {kind:?} {name}: {:?}", d.resources))
        .spec
}

/// Findings as `line:column severity: message`, for compact assertions.
fn findings(d: &Desired, at_least: Severity) -> Vec<String> {
    d.findings
        .iter()
        .filter(|f| f.severity >= at_least)
        .map(|f| {
            let at = f
                .origin
                .as_ref()
                .map(|o| format!("{}:{} ", o.line, o.column))
                .unwrap_or_default();
            format!("{at}{}: {}", f.severity.label(), f.message)
        })
        .collect()
}

#[test]
fn a_pattern_rule_becomes_a_rule_with_its_targets_in_awss_field_names() {
    let d = check(
        r#"
rules:
  - name: orders
    description: New orders
    enabled: false
    pattern: {source: [shop], detail: {total: [{numeric: [">", 100]}]}}
    retry: {max_attempts: 3, max_event_age: 1h}
    dead_letter: {sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/dlq}
    targets:
      - id: q
        sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/orders.fifo
        message_group_id: shop
        input_transformer:
          input_paths: {id: "$['detail'].id"}
          input_template: '{"order": <id>}'
      - id: fn
        lambda: resize
        input_path: $.detail
      - id: topic
        sns: arn:aws:sns:eu-west-2:111122223333:orders
        input: {kind: order}
      - id: other-bus
        eventbridge: audit
        input_path: $.detail
"#,
    );
    assert_eq!(findings(&d, Severity::Undeployable), Vec::<String>::new());
    let dlq = json!({"Arn": "arn:aws:sqs:eu-west-2:111122223333:dlq"});
    let retry = json!({"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600});
    assert_eq!(
        resource(&d, Kind::Rule, "orders"),
        &json!({
            "Name": "orders",
            "EventBusName": "default",
            "Description": "New orders",
            "State": "DISABLED",
            "EventPattern": {"source": ["shop"], "detail": {"total": [{"numeric": [">", 100]}]}},
            "Targets": {
                "q": {
                    "Id": "q",
                    "Arn": "arn:aws:sqs:eu-west-2:111122223333:orders.fifo",
                    "SqsParameters": {"MessageGroupId": "shop"},
                    "InputTransformer": {
                        "InputPathsMap": {"id": "$.detail.id"},
                        "InputTemplate": "{\"order\": <id>}",
                    },
                    "RetryPolicy": retry,
                    "DeadLetterConfig": dlq,
                },
                "fn": {
                    "Id": "fn",
                    "Arn": "arn:aws:lambda:eu-west-2:111122223333:function:resize",
                    "InputPath": "$.detail",
                    "RetryPolicy": retry,
                    "DeadLetterConfig": dlq,
                },
                "topic": {
                    "Id": "topic",
                    "Arn": "arn:aws:sns:eu-west-2:111122223333:orders",
                    "Input": {"kind": "order"},
                    "RetryPolicy": retry,
                    "DeadLetterConfig": dlq,
                },
                "other-bus": {
                    "Id": "other-bus",
                    "Arn": "arn:aws:events:eu-west-2:111122223333:event-bus/audit",
                    "RetryPolicy": retry,
                    "DeadLetterConfig": dlq,
                },
            },
        })
    );
    // The FIFO target's caveat is a warning, not a refusal.
    assert!(
        findings(&d, Severity::Warning)
            .iter()
            .any(|f| f.contains("content-based deduplication")),
        "{:?}",
        d.findings
    );
}

#[test]
fn every_undeployable_feature_is_reported_at_its_target_with_what_to_do_instead() {
    let text = r#"
sources:
  hooks:
    webhook: {}
rules:
  - name: mixed
    pattern: {source: [shop]}
    targets:
      - id: ok
        lambda: resize
      - id: run
        command: [echo, hi]
  - name: more
    pattern: {source: [shop]}
    targets:
      - id: sync
        lambda: resize
        invocation_type: RequestResponse
      - id: hook
        http: http://hooks.example.com/x
      - id: logged
        log: true
      - id: subj
        sns: arn:aws:sns:eu-west-2:111122223333:t
        subject: hello
      - id: put
        eventbridge: audit
        source: trigd.shop
"#;
    let d = check(text);
    let found = findings(&d, Severity::Undeployable);
    let expect = [
        (
            "11:9",
            "target `run` of rule `mixed` is a `command` target",
            "keep this rule on a trigd instance",
        ),
        (
            "16:9",
            "invokes with `RequestResponse`",
            "remove `invocation_type`",
        ),
        ("19:9", "calls a plain `http://` URL", "use https"),
        (
            "21:9",
            "is a `log` target",
            "keep this rule on a trigd instance",
        ),
        ("23:9", "sets `subject`", "remove it"),
        (
            "26:9",
            "forwards the matched event",
            "write `input_path: $.detail`",
        ),
    ];
    assert_eq!(found.len(), expect.len(), "{found:#?}");
    for ((at, what, instead), f) in expect.iter().zip(&found) {
        assert!(
            f.starts_with(&format!("{at} undeployable: "))
                && f.contains(what)
                && f.contains(instead),
            "expected {at} {what} … {instead}, got {f}"
        );
    }
    // Apply refuses while one remains, unless they are skipped; then nothing of theirs is
    // in the desired state.
    assert!(d.blocks(false));
    assert!(!d.blocks(true));
    let kept: Vec<&str> = d.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        kept,
        [
            "mixed",
            "trigd-8d9001d3-mixed@arn:aws:lambda:eu-west-2:111122223333:function:resize"
        ],
        "only the deployable target's rule, and its function's permission"
    );
    assert_eq!(
        d.resources[0].spec["Targets"].as_object().unwrap().len(),
        1,
        "without the command target"
    );
    // The webhook source is noted: deploy makes no ingress.
    assert!(
        findings(&d, Severity::Info)
            .iter()
            .any(|f| f.starts_with("3:3 info: source `hooks` (webhook) is not deployed")),
        "{:?}",
        d.findings
    );
}

/// What trigd delivers for a fire at a real time with a real id, with that id and time then
/// replaced by Scheduler's placeholders.
fn trigd_payload(rule_yaml_input: &str) -> (String, String) {
    let ctx = ctx();
    let (d, set) = check_in(
        &format!(
            "rules:\n  - name: tick\n    schedule: rate(5 minutes)\n    targets:\n      - id: q\n        sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/q\n{rule_yaml_input}"
        ),
        &ctx,
    );
    let schedule = resource(&d, Kind::Schedule, "tick.q");
    let input = schedule["Target"]["Input"].as_str().unwrap().to_owned();
    let settings = Settings {
        region: ctx.region.clone(),
        account: ctx.account.clone(),
        ..Settings::default()
    };
    let arn = format!("arn:aws:events:{}:{}:rule/tick", ctx.region, ctx.account);
    let time = chrono::DateTime::parse_from_rfc3339("2026-03-01T07:05:00Z")
        .unwrap()
        .to_utc();
    let event = crate::event::scheduled_event(&settings, &arn, time, "the-event-id");
    let text = crate::event::compact(&event);
    let rule = set.rule("tick").unwrap();
    let rendered = crate::route::render_rule(&set, rule, &text, &event, "2026-03-01T07:05:00Z")
        .targets[0]
        .payload
        .clone()
        .unwrap();
    // `render_rule` uses the rule set's own settings for the ARN; make them the context's.
    let rendered = rendered
        .replace(&set.rule_arn("tick"), &arn)
        .replace("the-event-id", desired::EXECUTION_ID)
        .replace("2026-03-01T07:05:00Z", desired::SCHEDULED_TIME);
    (input, rendered)
}

#[test]
fn schedule_inputs_are_what_trigd_delivers_with_schedulers_placeholders() {
    for input in [
        "",
        "        input: {message: WAKE UP}\n",
        "        input_path: $.time\n",
        "        input_path: $.detail\n",
        "        input_transformer:\n          input_paths: {t: $.time, id: $.id}\n          input_template: '{\"at\": <t>, \"id\": <id>, \"rule\": <aws.events.rule-name>, \"arn\": <aws.events.rule-arn>, \"seen\": <aws.events.event.ingestion-time>}'\n",
        "        input_transformer:\n          input_paths: {}\n          input_template: '{\"whole\": <aws.events.event>}'\n",
    ] {
        let (deployed, trigd) = trigd_payload(input);
        assert_eq!(deployed, trigd, "input option:\n{input}");
    }
    let (whole, _) = trigd_payload("");
    assert_eq!(
        whole,
        r#"{"version":"0","id":"<aws.scheduler.execution-id>","detail-type":"Scheduled Event","source":"aws.events","account":"111122223333","time":"<aws.scheduler.scheduled-time>","region":"eu-west-2","resources":["arn:aws:events:eu-west-2:111122223333:rule/tick"],"detail":{}}"#
    );
}

#[test]
fn schedules_keep_time_zone_start_end_and_jitter_as_written() {
    let d = check(
        r#"
rules:
  - name: nightly
    description: Nightly report
    schedule: cron(0 3 * * ? *)
    timezone: Europe/Paris
    start: 2027-01-01T00:00:00Z
    end: 2027-12-31T23:00:00Z
    jitter: 10m
    retry: {max_attempts: 0, max_event_age: 60s}
    targets:
      - id: fn
        lambda: arn:aws:lambda:eu-west-2:111122223333:function:report:live
  - name: once
    schedule: at(2027-06-01T09:00:00)
    start: 2027-01-01T00:00:00Z
    jitter: 90s
    targets:
      - id: bus
        eventbridge: audit
        source: trigd.schedule
"#,
    );
    let nightly = resource(&d, Kind::Schedule, "nightly.fn");
    assert_eq!(nightly["GroupName"], "trigd-shop");
    assert_eq!(nightly["ScheduleExpression"], "cron(0 3 * * ? *)");
    assert_eq!(nightly["ScheduleExpressionTimezone"], "Europe/Paris");
    assert_eq!(nightly["StartDate"], "2027-01-01T00:00:00Z");
    assert_eq!(nightly["EndDate"], "2027-12-31T23:00:00Z");
    assert_eq!(
        nightly["FlexibleTimeWindow"],
        json!({"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 10})
    );
    assert_eq!(nightly["State"], "ENABLED");
    assert_eq!(nightly["ActionAfterCompletion"], "NONE");
    assert_eq!(
        nightly["Target"]["Arn"],
        "arn:aws:lambda:eu-west-2:111122223333:function:report:live"
    );
    assert_eq!(
        nightly["Target"]["RoleArn"],
        "arn:aws:iam::111122223333:role/sched"
    );
    assert_eq!(
        nightly["Target"]["RetryPolicy"],
        json!({"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60})
    );

    // at(): one-shot, never deleted after firing (so never re-created), start ignored; a
    // 90 s jitter is a 2-minute window, with a warning.
    let once = resource(&d, Kind::Schedule, "once.bus");
    assert_eq!(once["ScheduleExpression"], "at(2027-06-01T09:00:00)");
    assert_eq!(once["ScheduleExpressionTimezone"], "UTC");
    assert_eq!(once["ActionAfterCompletion"], "NONE");
    assert!(once.get("StartDate").is_none(), "{once}");
    assert_eq!(once["FlexibleTimeWindow"]["MaximumWindowInMinutes"], 2);
    assert_eq!(
        once["Target"]["EventBridgeParameters"],
        json!({"Source": "trigd.schedule", "DetailType": "Scheduled Event"})
    );
    assert!(
        findings(&d, Severity::Warning)
            .iter()
            .any(|f| f.contains("rounded up to 2 whole minutes")),
        "{:?}",
        d.findings
    );
}

#[test]
fn schedule_names_past_64_characters_are_shortened_with_a_hash() {
    assert_eq!(desired::schedule_name("r", "t"), "r.t");
    let long_rule = "r".repeat(60);
    let name = desired::schedule_name(&long_rule, "target");
    assert_eq!(name.len(), 64, "{name}");
    assert!(name.starts_with(&"r".repeat(55)), "{name}");
    assert_ne!(name, desired::schedule_name(&long_rule, "target2"));
    assert_eq!(name, desired::schedule_name(&long_rule, "target"));
}

#[test]
fn the_context_and_the_role_are_checked_before_any_call() {
    let text = "rules:\n  - name: tick\n    schedule: rate(1 hour)\n    targets:\n      - id: fn\n        lambda: f\n";
    let mut c = ctx();
    c.scheduler_role_arn = None;
    c.deployment = "x".repeat(60);
    c.bus = "no spaces allowed".to_owned();
    let (d, _) = check_in(text, &c);
    let errors = findings(&d, Severity::Error);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("cannot name a schedule group"),
        "{errors:?}"
    );
    assert!(errors[1].contains("not an event bus name"), "{errors:?}");
    assert!(
        errors[2].starts_with("2:11 error: schedule rule `tick` needs an IAM role"),
        "{errors:?}"
    );
    assert!(d.blocks(true), "errors block even with --skip-undeployable");
}

#[test]
fn input_paths_in_bracket_notation_are_rewritten_with_dots_or_refused() {
    assert_eq!(desired::dot_path("$.a.b").as_deref(), Some("$.a.b"));
    assert_eq!(
        desired::dot_path("$['a']['b-c']").as_deref(),
        Some("$.a.b-c")
    );
    assert_eq!(desired::dot_path("$.a[0].b").as_deref(), Some("$.a[0].b"));
    assert_eq!(desired::dot_path("$").as_deref(), Some("$"));
    assert_eq!(desired::dot_path("$['a b']"), None);
    assert_eq!(desired::dot_path("$['a.b']"), None);
}

fn existing(r: &Resource, owner: Owner) -> Existing {
    Existing {
        resource: r.clone(),
        owner,
    }
}

const TWO_RULES: &str = r#"
rules:
  - name: a
    pattern: {source: [shop]}
    targets:
      - id: fn
        sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/q
        retry: {max_attempts: 3}
  - name: b
    pattern: {source: [other]}
    targets:
      - id: fn
        sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/q
"#;

#[test]
fn the_plan_lists_creates_updates_with_their_fields_deletes_and_conflicts() {
    let mut d = check(TWO_RULES);
    // The rules alone (the queue's policy statement has its own test).
    d.resources.retain(|r| r.kind == Kind::Rule);
    // Nothing on AWS: everything is created.
    let p = plan::diff(&d, &Actual::default(), now());
    assert_eq!(p.change_count(), (2, 0, 0));
    assert!(plan::render_text(&p).ends_with("2 to add, 0 to change, 0 to delete\n"));

    // Everything as desired: no changes.
    let same = Actual {
        resources: d.resources.iter().map(|r| existing(r, Owner::Us)).collect(),
        ..Actual::default()
    };
    let p = plan::diff(&d, &same, now());
    assert!(!p.has_changes());
    assert_eq!(plan::render_text(&p), "no changes\n");

    // One field changed by hand: exactly one update, with that field only.
    let mut drifted = same.clone();
    drifted.resources[0].resource.spec["Targets"]["fn"]["RetryPolicy"]["MaximumRetryAttempts"] =
        json!(185);
    let p = plan::diff(&d, &drifted, now());
    assert_eq!(p.change_count(), (0, 1, 0));
    let Action::Update(fields) = &p.changes[0].action else {
        panic!("{:?}", p.changes)
    };
    assert_eq!(fields.len(), 1);
    assert_eq!(
        fields[0].path,
        "Targets.fn.RetryPolicy.MaximumRetryAttempts"
    );
    assert_eq!(
        (fields[0].before.clone(), fields[0].after.clone()),
        (Some(json!(185)), Some(json!(3)))
    );
    let text = plan::render_text(&p);
    assert_eq!(
        text.matches("\n~ ").count() + usize::from(text.starts_with("~ ")),
        1,
        "{text}"
    );
    assert!(
        text.contains("~ rule a\n    Targets.fn.RetryPolicy.MaximumRetryAttempts: 185 -> 3\n"),
        "{text}"
    );

    // A rule of ours no longer written is deleted; a foreign rule with a wanted name is a
    // conflict; another deployment's rule is a conflict; a foreign rule not wanted is not
    // even listed.
    let mut gone = d.resources[0].clone();
    gone.name = "old".to_owned();
    let mut unrelated = d.resources[0].clone();
    unrelated.name = "theirs".to_owned();
    let mixed = Actual {
        resources: vec![
            existing(&d.resources[0], Owner::Foreign),
            existing(&d.resources[1], Owner::OtherDeployment("prod".to_owned())),
            existing(&gone, Owner::Us),
            existing(&unrelated, Owner::Foreign),
        ],
        ..Actual::default()
    };
    let p = plan::diff(&d, &mixed, now());
    let lines: Vec<String> = p
        .changes
        .iter()
        .map(|c| match &c.action {
            Action::Conflict(why) => format!("! {} {why}", c.name),
            Action::Delete => format!("- {}", c.name),
            other => format!("{other:?} {}", c.name),
        })
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].starts_with("! a a rule with this name exists and was not created by trigd"));
    assert!(lines[1].starts_with("! b a rule with this name belongs to trigd deployment `prod`"));
    assert_eq!(lines[2], "- old");
    assert!(p.has_errors(true), "conflicts are errors");
    assert_eq!(
        plan::render_json(&p)["summary"],
        json!({"add": 0, "change": 0, "delete": 1, "conflict": 2})
    );
}

#[test]
fn the_plan_warns_past_300_rules_on_the_bus() {
    let d = check(TWO_RULES);
    let crowded = Actual {
        rules_on_bus: 299,
        ..Actual::default()
    };
    let p = plan::diff(&d, &crowded, now());
    assert!(
        p.findings
            .iter()
            .any(|f| f.severity == Severity::Warning && f.message.contains("301 rules")),
        "{:?}",
        p.findings
    );
}

#[test]
fn the_export_is_deterministic_and_declares_every_resource() {
    let text = r#"
rules:
  - name: orders
    pattern: {source: [shop]}
    targets:
      - id: fn
        lambda: resize
      - id: q
        sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/q
        input: {price: "${not-a-variable}"}
  - name: nightly
    schedule: cron(0 3 * * ? *)
    targets:
      - id: fn
        lambda: report
"#;
    let ctx = super::export::context(
        "default",
        "shop",
        (None, None, None),
        std::path::Path::new("/rules"),
        super::export::Format::CloudFormation,
    );
    let (d, _) = check_in(text, &ctx);
    let one = super::export::template(&d, &ctx, super::export::Format::CloudFormation);
    let two = super::export::template(
        &check_in(text, &ctx).0,
        &ctx,
        super::export::Format::CloudFormation,
    );
    assert_eq!(
        serde_json::to_string_pretty(&one).unwrap(),
        serde_json::to_string_pretty(&two).unwrap()
    );
    let resources = one["Resources"].as_object().unwrap();
    let types: Vec<(&str, &str)> = resources
        .iter()
        .map(|(id, r)| (id.as_str(), r["Type"].as_str().unwrap()))
        .collect();
    let rule_id = super::export::logical_id("Rule", "orders");
    let queue_policy = types
        .iter()
        .find(|(id, _)| id.starts_with("QueuePolicyQ"))
        .map(|(id, _)| (*id).to_owned())
        .unwrap_or_default();
    assert_eq!(
        types,
        vec![
            (
                super::export::logical_id("Permission", "orders.fn").as_str(),
                "AWS::Lambda::Permission"
            ),
            (rule_id.as_str(), "AWS::Events::Rule"),
            (
                super::export::logical_id("Schedule", "nightly.fn").as_str(),
                "AWS::Scheduler::Schedule"
            ),
            (queue_policy.as_str(), "AWS::SQS::QueuePolicy"),
            ("ScheduleGroup", "AWS::Scheduler::ScheduleGroup"),
            ("SchedulerRole", "AWS::IAM::Role"),
        ]
    );
    let rule = &resources[&rule_id]["Properties"];
    assert_eq!(rule["EventPattern"], json!({"source": ["shop"]}));
    assert_eq!(
        rule["Targets"][0]["Arn"],
        json!({"Fn::Sub": "arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:resize"})
    );
    // Input is text; a `${` of the user's own is escaped from Fn::Sub's substitution.
    assert_eq!(
        rule["Targets"][1]["Input"],
        json!("{\"price\":\"${not-a-variable}\"}")
    );
    let schedule = &resources[&super::export::logical_id("Schedule", "nightly.fn")]["Properties"];
    assert_eq!(schedule["GroupName"], json!({"Ref": "ScheduleGroup"}));
    assert_eq!(
        schedule["Target"]["RoleArn"],
        json!({"Fn::GetAtt": ["SchedulerRole", "Arn"]})
    );
    let input = schedule["Target"]["Input"]["Fn::Sub"].as_str().unwrap();
    assert!(
        input.contains(r#""account":"${AWS::AccountId}""#),
        "{input}"
    );
    let policy = &resources[&queue_policy]["Properties"];
    assert_eq!(
        policy["Queues"],
        json!([{"Fn::Sub": "https://sqs.${AWS::Region}.amazonaws.com/111122223333/q"}])
    );
    assert_eq!(
        policy["PolicyDocument"]["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!([{"Fn::Sub": "arn:aws:events:${AWS::Region}:${AWS::AccountId}:rule/orders"}])
    );
    assert!(
        one["Description"]
            .as_str()
            .unwrap()
            .contains("replace the queues' and topics' whole policies")
    );
    let sam = super::export::template(&d, &ctx, super::export::Format::Sam);
    assert_eq!(sam["Transform"], "AWS::Serverless-2016-10-31");
    assert_eq!(sam["Resources"], one["Resources"]);
}

#[test]
fn lambda_targets_get_one_permission_per_rule_and_function() {
    let d = check(
        r#"
rules:
  - name: a
    pattern: {source: [shop]}
    targets:
      - id: one
        lambda: f
      - id: two
        lambda: arn:aws:lambda:eu-west-2:111122223333:function:f
      - id: other
        lambda: g
"#,
    );
    let perms: Vec<&Resource> = d
        .resources
        .iter()
        .filter(|r| r.kind == Kind::Permission)
        .collect();
    assert_eq!(perms.len(), 2, "{perms:#?}");
    let sid = desired::statement_id(&ctx(), "a");
    assert!(
        sid.starts_with("trigd-") && sid.ends_with("-a") && sid.len() == 6 + 8 + 2,
        "{sid}"
    );
    assert_eq!(
        perms[0].spec,
        json!({
            "FunctionName": "arn:aws:lambda:eu-west-2:111122223333:function:f",
            "StatementId": sid,
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "SourceArn": "arn:aws:events:eu-west-2:111122223333:rule/a",
        })
    );
    // Another deployment's prefix is never a prefix of ours.
    let mut other = ctx();
    other.deployment = "shop-x".to_owned();
    assert!(!desired::statement_id(&other, "a").starts_with(&desired::statement_prefix(&ctx())));
    // On a custom bus, the rule's ARN names the bus.
    let mut bus = ctx();
    bus.bus = "orders".to_owned();
    assert_eq!(
        bus.rule_arn("a"),
        "arn:aws:events:eu-west-2:111122223333:rule/orders/a"
    );

    // A function that does not exist: a warning, and no permission to add until it does.
    let missing = Actual {
        missing: vec!["arn:aws:lambda:eu-west-2:111122223333:function:g".to_owned()],
        ..Actual::default()
    };
    let p = plan::diff(&d, &missing, now());
    assert_eq!(p.change_count(), (2, 0, 0), "the rule and f's permission");
    assert!(
        p.findings
            .iter()
            .any(|f| f.severity == Severity::Warning
                && f.message.contains("function:g` does not exist")),
        "{:?}",
        p.findings
    );
}

#[test]
fn rules_on_events_only_trigd_makes_are_undeployable() {
    let d = check(
        r#"
rules:
  - name: sns-only
    pattern: {source: [aws.sns], detail: {Message: {severity: [high]}}}
    targets:
      - id: q
        sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/q
  - name: mixed-sources
    pattern: {source: [aws.sqs, shop]}
    targets:
      - id: q
        sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/q
"#,
    );
    let found = findings(&d, Severity::Undeployable);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("3:11 undeployable: rule `sns-only` matches `source: aws.sns` events"),
        "{found:?}"
    );
    let kept: Vec<&str> = d
        .resources
        .iter()
        .filter(|r| r.kind == Kind::Rule)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        kept,
        ["mixed-sources"],
        "a rule that also matches real events is deployed"
    );
}

#[test]
fn a_start_that_has_passed_is_not_sent_and_not_compared() {
    let text = "rules:\n  - name: tick\n    schedule: rate(1 hour)\n    start: 2026-01-01T00:00:00Z\n    targets:\n      - id: fn\n        lambda: f\n";
    let d = check(text);
    // Before the start: sent as written.
    let early = chrono::DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let p = plan::diff(&d, &Actual::default(), early);
    let sent = &p.changes[0].desired.as_ref().unwrap().spec;
    assert_eq!(sent["StartDate"], "2026-01-01T00:00:00Z");
    // After it: left out, with a note.
    let p = plan::diff(&d, &Actual::default(), now());
    let created = p.changes[0].desired.clone().unwrap();
    assert!(created.spec.get("StartDate").is_none(), "{}", created.spec);
    assert!(
        p.findings
            .iter()
            .any(|f| f.message.contains("its `start` has passed")),
        "{:?}",
        p.findings
    );
    // What AWS then holds (no start, or the past one sent earlier) is no change.
    for held in [created.clone(), d.resources[0].clone()] {
        let actual = Actual {
            resources: vec![existing(&held, Owner::Us)],
            group_exists: true,
            ..Actual::default()
        };
        assert!(
            !plan::diff(&d, &actual, now()).has_changes(),
            "{}",
            held.spec
        );
    }
}

#[test]
fn queues_and_topics_get_one_statement_each_listing_their_rules() {
    let d = check(
        r#"
rules:
  - name: b
    pattern: {source: [shop]}
    dead_letter: {sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/dlq}
    targets:
      - id: q
        sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/q
  - name: a
    pattern: {source: [other]}
    targets:
      - id: q
        sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/q
      - id: t
        sns: arn:aws:sns:eu-west-2:111122223333:topic
"#,
    );
    let policies: Vec<(Kind, &str, &Value)> = d
        .resources
        .iter()
        .filter(|r| matches!(r.kind, Kind::QueuePolicy | Kind::TopicPolicy))
        .map(|r| (r.kind, r.name.as_str(), &r.spec))
        .collect();
    let sid = desired::policy_sid(&ctx());
    let rule = |n: &str| format!("arn:aws:events:eu-west-2:111122223333:rule/{n}");
    let dlq = "arn:aws:sqs:eu-west-2:111122223333:dlq";
    let q = "arn:aws:sqs:eu-west-2:111122223333:q";
    let topic = "arn:aws:sns:eu-west-2:111122223333:topic";
    assert_eq!(
        policies,
        [
            (
                Kind::QueuePolicy,
                dlq,
                &desired::policy_spec(dlq, "sqs:SendMessage", &sid, &[rule("b")])
            ),
            (
                Kind::QueuePolicy,
                q,
                &desired::policy_spec(q, "sqs:SendMessage", &sid, &[rule("a"), rule("b")])
            ),
            (
                Kind::TopicPolicy,
                topic,
                &desired::policy_spec(topic, "sns:Publish", &sid, &[rule("a")])
            ),
        ]
    );
    assert_eq!(
        policies[1].2["Condition"],
        json!({"ArnEquals": {"aws:SourceArn": [rule("a"), rule("b")]}})
    );
    assert_eq!(
        policies[1].2["Principal"],
        json!({"Service": "events.amazonaws.com"})
    );
}

const HTTP_RULE: &str = r#"
rules:
  - name: hooked
    pattern: {source: [shop]}
    targets:
      - id: hook
        http: https://ada:pa55%21w0rd@hooks.example.com/orders?x=1
        method: PUT
        headers: {X-Plain: visible, Authorization: "Bearer ${HOOK_TOKEN}"}
        input_path: $.detail
      - id: open
        http: https://open.example.com/
"#;

#[test]
fn http_targets_become_a_connection_and_an_api_destination_with_secrets_kept_apart() {
    let d = check(HTTP_RULE);
    assert_eq!(findings(&d, Severity::Undeployable), Vec::<String>::new());
    let name = desired::http_name(&ctx(), "hooked", "hook");
    assert!(name.starts_with(&desired::statement_prefix(&ctx())) && name.ends_with("hooked.hook"));
    assert_eq!(
        resource(&d, Kind::Connection, &name),
        &json!({
            "Name": name,
            "Description": "trigd deployment shop",
            "AuthorizationType": "BASIC",
            "Username": "ada",
            "SecretHeaders": ["Authorization"],
        })
    );
    assert_eq!(
        resource(&d, Kind::ApiDestination, &name),
        &json!({
            "Name": name,
            "Description": "trigd deployment shop",
            "ConnectionName": name,
            "InvocationEndpoint": "https://hooks.example.com/orders?x=1",
            "HttpMethod": "PUT",
            "InvocationRateLimitPerSecond": 300,
        })
    );
    assert_eq!(
        resource(&d, Kind::Rule, "hooked")["Targets"]["hook"],
        json!({
            "Id": "hook",
            "Arn": format!("api-destination:{name}"),
            "RoleArn": "arn:aws:iam::111122223333:role/events",
            "HttpParameters": {"HeaderParameters": {"X-Plain": "visible"}},
            "InputPath": "$.detail",
            "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
        })
    );
    // The secrets: decoded password, resolved header; only in `secrets`, never in Debug.
    assert_eq!(
        d.secrets.0[&name],
        [
            ("Password".to_owned(), "pa55!w0rd".to_owned()),
            (
                "header:Authorization".to_owned(),
                "Bearer tok-secret-1".to_owned()
            ),
        ]
    );
    let open = desired::http_name(&ctx(), "hooked", "open");
    assert_eq!(
        resource(&d, Kind::Connection, &open)["AuthorizationType"],
        "API_KEY"
    );
    assert_eq!(
        resource(&d, Kind::Connection, &open)["ApiKeyName"],
        "x-trigd-no-auth"
    );
    let shown = format!("{d:?}{:?}", plan::diff(&d, &Actual::default(), now()));
    for secret in ["pa55", "tok-secret-1"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let text = plan::render_text(&plan::diff(&d, &Actual::default(), now()));
    assert!(
        !text.contains("pa55") && !text.contains("tok-secret"),
        "{text}"
    );

    // Without the variable, or without the role: errors, before any call.
    let mut bare = ctx();
    bare.env = desired::Env::default();
    bare.events_role_arn = None;
    let (d, _) = check_in(HTTP_RULE, &bare);
    let errors = findings(&d, Severity::Error);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("needs `HOOK_TOKEN` from the environment")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("--events-role ARN")),
        "{errors:?}"
    );
}

#[test]
fn exported_connections_take_their_secrets_as_noecho_parameters() {
    let ctx = super::export::context(
        "default",
        "shop",
        (None, None, None),
        std::path::Path::new("/rules"),
        super::export::Format::CloudFormation,
    );
    let (d, _) = check_in(HTTP_RULE, &ctx);
    assert_eq!(findings(&d, Severity::Undeployable), Vec::<String>::new());
    let t = super::export::template(&d, &ctx, super::export::Format::CloudFormation);
    let text = serde_json::to_string_pretty(&t).unwrap();
    assert!(!text.contains("pa55"), "{text}");
    let params = t["Parameters"].as_object().unwrap();
    assert_eq!(params.len(), 2, "the password and the header: {params:?}");
    assert!(params.values().all(|p| p["NoEcho"] == true), "{params:?}");
    let name = desired::http_name(&ctx, "hooked", "hook");
    let conn = &t["Resources"][super::export::logical_id("Connection", &name)];
    assert_eq!(conn["Type"], "AWS::Events::Connection");
    assert!(
        conn["Properties"]["AuthParameters"]["BasicAuthParameters"]["Password"]["Ref"].is_string()
    );
    let dest_id = super::export::logical_id("ApiDestination", &name);
    assert_eq!(
        t["Resources"][&dest_id]["Type"],
        "AWS::Events::ApiDestination"
    );
    let rule = &t["Resources"][super::export::logical_id("Rule", "hooked")]["Properties"];
    assert_eq!(
        rule["Targets"][0]["Arn"],
        json!({"Fn::GetAtt": [dest_id, "Arn"]})
    );
    assert_eq!(
        rule["Targets"][0]["RoleArn"],
        json!({"Fn::GetAtt": ["EventsRole", "Arn"]})
    );
    assert_eq!(t["Resources"]["EventsRole"]["Type"], "AWS::IAM::Role");
}

#[test]
fn destinations_of_function_targets_go_on_the_function_and_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("fn")).unwrap();
    std::fs::write(dir.path().join("fn/app.py"), "def h(e, c): pass\n").unwrap();
    let text = |second_success: &str| {
        format!(
            "functions:\n  work:\n    runtime: python3.12\n    handler: app.h\n    code: fn\nrules:\n  - name: a\n    pattern: {{source: [a]}}\n    targets:\n      - id: f\n        function: work\n        on_success: {{sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/done}}\n        on_failure: {{bus: true}}\n  - name: b\n    pattern: {{source: [b]}}\n    targets:\n      - id: f\n        function: work\n        on_success: {second_success}\n        on_failure: {{bus: true}}\n"
        )
    };
    let build = |text: &str| {
        std::fs::write(dir.path().join("r.yaml"), text).unwrap();
        let set = crate::config::load_rules(dir.path(), Settings::default()).unwrap();
        let mut c = ctx();
        c.packages.insert(
            "work".to_owned(),
            super::package::package(&dir.path().join("fn")).unwrap(),
        );
        desired::build(&set, &RuleSources::read(&set), &c)
    };
    let d = build(&text(
        "{sqs: https://sqs.eu-west-2.amazonaws.com/111122223333/done}",
    ));
    assert_eq!(findings(&d, Severity::Undeployable), Vec::<String>::new());
    assert_eq!(
        resource(&d, Kind::Function, "work")["EventInvokeConfig"],
        json!({
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 21600,
            "OnSuccess": "arn:aws:sqs:eu-west-2:111122223333:done",
            "OnFailure": "arn:aws:events:eu-west-2:111122223333:event-bus/default",
        })
    );
    let d = build(&text("{sns: arn:aws:sns:eu-west-2:111122223333:other}"));
    let found = findings(&d, Severity::Undeployable);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("rules `a` and `b` give function `work` different destinations"),
        "{found:?}"
    );
    assert!(d.resources.iter().all(|r| r.kind != Kind::Function));
}

#[test]
fn http_targets_of_schedules_hop_through_the_bus() {
    let d = check(
        "rules:\n  - name: tick\n    schedule: rate(1 hour)\n    targets:\n      - id: hook\n        http: https://hooks.example.com/tick\n        input_transformer:\n          input_paths: {t: $.time, id: $.id}\n          input_template: '{\"at\": <t>, \"id\": <id>}'\n",
    );
    assert_eq!(findings(&d, Severity::Undeployable), Vec::<String>::new());
    let schedule = resource(&d, Kind::Schedule, "tick.hook");
    assert_eq!(
        schedule["Target"]["Arn"],
        "arn:aws:events:eu-west-2:111122223333:event-bus/default"
    );
    assert_eq!(
        schedule["Target"]["Input"],
        r#"{"rule":"tick","target":"hook","time":"<aws.scheduler.scheduled-time>"}"#
    );
    assert_eq!(
        schedule["Target"]["EventBridgeParameters"],
        json!({"Source": "trigd.schedule", "DetailType": "Scheduled Event"})
    );
    let hop = desired::http_name(&ctx(), "hop-tick", "hook");
    let rule = resource(&d, Kind::Rule, &hop);
    assert_eq!(
        rule["EventPattern"],
        json!({"source": ["trigd.schedule"], "detail-type": ["Scheduled Event"],
               "detail": {"rule": ["tick"], "target": ["hook"]}})
    );
    let target = &rule["Targets"]["hook"];
    assert_eq!(
        target["Arn"],
        format!(
            "api-destination:{}",
            desired::http_name(&ctx(), "tick", "hook")
        )
    );
    // What trigd delivers, with the hop event's id and scheduled time filled in by EventBridge.
    assert_eq!(
        target["InputTransformer"],
        json!({
            "InputPathsMap": {"id": "$.id", "time": "$.detail.time"},
            "InputTemplate": r#"{"at": "<time>", "id": "<id>"}"#,
        })
    );
    assert!(d.resources.iter().any(|r| r.kind == Kind::ApiDestination));
}

#[test]
fn catch_up_is_noted_only_where_it_is_written() {
    let d = check(
        "rules:\n  - name: a\n    schedule: rate(1 hour)\n    targets:\n      - id: fn\n        lambda: f\n  - name: b\n    schedule: rate(1 hour)\n    catch_up: {policy: once, within: 1h}\n    targets:\n      - id: fn\n        lambda: f\n",
    );
    let notes: Vec<String> = findings(&d, Severity::Info)
        .into_iter()
        .filter(|f| f.contains("catch_up"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("rule `b`"), "{notes:?}");
}

#[test]
fn names_past_their_limits_are_shortened_with_a_hash() {
    let long = "x".repeat(150);
    let fitted = desired::fit(long.clone(), desired::MAX_STATEMENT_ID);
    assert_eq!(fitted.len(), 100);
    assert_ne!(
        fitted,
        desired::fit(format!("{long}y"), desired::MAX_STATEMENT_ID)
    );
    assert_eq!(desired::fit("short".to_owned(), 100), "short");
    let name = desired::http_name(&ctx(), &"r".repeat(64), "target");
    assert!(name.len() <= desired::MAX_NAME, "{name}");
    assert!(name.starts_with(&desired::statement_prefix(&ctx())));
}

#[test]
fn descriptions_and_event_fields_past_awss_limits_are_errors_before_any_call() {
    let long = "d".repeat(513);
    let d = check(&format!(
        "rules:\n  - name: a\n    description: {long}\n    pattern: {{source: [x]}}\n    targets:\n      - id: fn\n        lambda: f\n  - name: b\n    schedule: rate(1 hour)\n    targets:\n      - id: bus\n        eventbridge: audit\n        source: trigd.x\n        detail_type: {}\n",
        "t".repeat(129)
    ));
    let errors = findings(&d, Severity::Error);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("2:11 error: the description of rule `a` is 513 characters"),
        "{errors:?}"
    );
    assert!(errors[1].contains("too long for Scheduler"), "{errors:?}");
    assert!(d.blocks(true));
}

#[test]
fn a_one_shot_whose_time_has_passed_is_not_created_again() {
    let d = check(
        "rules:\n  - name: once\n    schedule: at(2026-12-05T13:30:00)\n    timezone: Europe/Paris\n    targets:\n      - id: fn\n        lambda: f\n",
    );
    // now() is 12:00 UTC: 13:30 in Paris is 12:30 UTC, still to come.
    let p = plan::diff(&d, &Actual::default(), now());
    assert_eq!(p.change_count(), (1, 0, 0));
    let later = chrono::DateTime::parse_from_rfc3339("2026-12-05T12:31:00Z")
        .unwrap()
        .to_utc();
    let p = plan::diff(&d, &Actual::default(), later);
    assert_eq!(p.change_count(), (0, 0, 0));
    assert!(!p.create_group, "no group for nothing to create");
    assert!(
        p.findings.iter().any(|f| f
            .message
            .starts_with("= schedule `once.fn`: its `at()` time has passed")),
        "{:?}",
        p.findings
    );
    // Still on AWS: compared as any schedule (no change).
    let held = Actual {
        resources: d.resources.iter().map(|r| existing(r, Owner::Us)).collect(),
        group_exists: true,
        group_owned: true,
        ..Actual::default()
    };
    assert!(!plan::diff(&d, &held, later).has_changes());
}

/// Loads `text` with a `fn` code directory and a `lib` layer, and exports it in `format`.
#[track_caller]
fn export_functions(text: &str, format: super::export::Format) -> (Value, Desired) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("fn")).unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("fn/app.py"), "def h(e, c):\n    return e\n").unwrap();
    std::fs::write(dir.path().join("r.yaml"), text).unwrap();
    let set = crate::config::load_rules(dir.path(), Settings::default())
        .unwrap_or_else(|e| panic!("the rules load: {e}"));
    let sources = RuleSources::read(&set);
    let root = std::path::absolute(dir.path()).unwrap();
    let ctx = super::export::context("default", "shop", (None, None, None), &root, format);
    let d = desired::build(&set, &sources, &ctx);
    (super::export::template(&d, &ctx, format), d)
}

const FUNCTION_RULES: &str = "sources:\n  orders:\n    sqs: {queue_url: \"https://sqs.eu-west-2.amazonaws.com/111122223333/orders\"}\n  alerts:\n    sns: {topic_arns: [\"arn:aws:sns:eu-west-2:111122223333:alerts\"]}\nfunctions:\n  work:\n    runtime: python3.12\n    handler: app.h\n    code: fn\n    layers: [lib]\n    timeout: 30\n    memory: 256\n    concurrency: 3\n    environment: {MODE: prod}\n    triggers:\n      - sqs: {source: orders, batch_size: 5, report_batch_item_failures: true}\n      - sns: {source: alerts}\n      - api: {route: GET /hello}\n      - schedule: {expression: rate(5 minutes), input: {message: WAKE}}\n";

#[test]
fn exported_cloudformation_has_local_functions_with_code_paths_and_triggers() {
    use super::export::{Format, logical_id};
    let (t, d) = export_functions(FUNCTION_RULES, Format::CloudFormation);
    let (again, _) = export_functions(FUNCTION_RULES, Format::CloudFormation);
    assert_eq!(t, again, "deterministic");
    let r = &t["Resources"];
    let f = &r[logical_id("Function", "work")];
    assert_eq!(f["Type"], "AWS::Lambda::Function");
    let p = &f["Properties"];
    assert_eq!(p["Code"], "fn");
    assert_eq!(p["Handler"], "app.h");
    assert_eq!(p["Runtime"], "python3.12");
    assert_eq!(p["Timeout"], 30);
    assert_eq!(p["MemorySize"], 256);
    assert_eq!(p["ReservedConcurrentExecutions"], 3);
    assert_eq!(p["Environment"], json!({"Variables": {"MODE": "prod"}}));
    assert_eq!(p["Role"], json!({"Ref": "FunctionRole"}));
    assert_eq!(t["Parameters"]["FunctionRole"]["Type"], "String");
    let layer_ref = &p["Layers"][0]["Ref"];
    let layer = &r[layer_ref.as_str().unwrap()];
    assert_eq!(layer["Type"], "AWS::Lambda::LayerVersion");
    assert_eq!(layer["Properties"]["Content"], "lib");
    let of_type = |ty: &str| -> Vec<&Value> {
        r.as_object()
            .unwrap()
            .values()
            .filter(|v| v["Type"] == ty)
            .map(|v| &v["Properties"])
            .collect()
    };
    let esm = of_type("AWS::Lambda::EventSourceMapping");
    assert_eq!(esm.len(), 1);
    assert_eq!(esm[0]["BatchSize"], 5);
    assert_eq!(
        esm[0]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(
        esm[0]["FunctionName"],
        json!({"Ref": logical_id("Function", "work")})
    );
    let sub = of_type("AWS::SNS::Subscription");
    assert_eq!(sub.len(), 1);
    assert_eq!(sub[0]["Protocol"], "lambda");
    assert!(
        of_type("AWS::Lambda::Permission")
            .iter()
            .any(|p| p["Principal"] == "sns.amazonaws.com")
    );
    // The schedule trigger is a Scheduler schedule targeting the function's resource.
    let schedules = of_type("AWS::Scheduler::Schedule");
    assert_eq!(schedules.len(), 1);
    assert_eq!(
        schedules[0]["Target"]["Arn"],
        json!({"Fn::GetAtt": [logical_id("Function", "work"), "Arn"]})
    );
    // The api trigger cannot be in plain CloudFormation: reported.
    assert!(
        d.findings
            .iter()
            .any(|f| f.severity == Severity::Undeployable && f.message.contains("`api` trigger"))
    );
    assert!(
        t["Description"]
            .as_str()
            .unwrap()
            .contains("aws cloudformation package")
    );
}

#[test]
fn exported_sam_has_functions_with_events() {
    use super::export::{Format, logical_id};
    let (t, d) = export_functions(FUNCTION_RULES, Format::Sam);
    assert_eq!(t["Transform"], "AWS::Serverless-2016-10-31");
    let f = &t["Resources"][logical_id("Function", "work")];
    assert_eq!(f["Type"], "AWS::Serverless::Function");
    let p = &f["Properties"];
    assert_eq!(p["CodeUri"], "fn");
    let layer = &t["Resources"][p["Layers"][0]["Ref"].as_str().unwrap()];
    assert_eq!(layer["Type"], "AWS::Serverless::LayerVersion");
    assert_eq!(layer["Properties"]["ContentUri"], "lib");
    let events: Vec<&Value> = p["Events"].as_object().unwrap().values().collect();
    let of = |ty: &str| {
        *events
            .iter()
            .find(|e| e["Type"] == ty)
            .unwrap_or_else(|| panic!("no {ty}: {events:?}"))
    };
    assert_eq!(
        of("SQS")["Properties"]["Queue"],
        json!({"Fn::Sub": "arn:aws:sqs:${AWS::Region}:111122223333:orders"})
    );
    assert_eq!(of("SQS")["Properties"]["BatchSize"], 5);
    assert_eq!(
        of("SNS")["Properties"]["Topic"],
        "arn:aws:sns:eu-west-2:111122223333:alerts"
    );
    assert_eq!(
        of("HttpApi")["Properties"],
        json!({"Method": "GET", "Path": "/hello", "PayloadFormatVersion": "2.0"})
    );
    let schedule = &of("ScheduleV2")["Properties"];
    assert_eq!(schedule["ScheduleExpression"], "rate(5 minutes)");
    assert!(schedule["Input"].as_str().unwrap().contains("WAKE"));
    // Nothing left for SAM to make twice.
    for ty in [
        "AWS::Lambda::EventSourceMapping",
        "AWS::SNS::Subscription",
        "AWS::Scheduler::Schedule",
    ] {
        assert!(
            !t["Resources"]
                .as_object()
                .unwrap()
                .values()
                .any(|v| v["Type"] == ty),
            "{ty}"
        );
    }
    assert!(!d.blocks(false), "{:?}", d.findings);
}

#[test]
fn exported_s3_triggers_are_reported_not_exported() {
    let text = "sources:\n  up:\n    sqs: {queue_url: \"https://sqs.eu-west-2.amazonaws.com/111122223333/up\"}\nfunctions:\n  work:\n    runtime: python3.12\n    handler: app.h\n    code: fn\n    triggers:\n      - s3: {source: up}\n";
    let (_, d) = export_functions(text, super::export::Format::Sam);
    assert!(
        d.findings
            .iter()
            .any(|f| f.severity == Severity::Undeployable
                && f.message.contains("not exported")
                && f.message.contains("same template"))
    );
}

#[test]
fn relative_code_paths() {
    use std::path::Path;
    assert_eq!(
        desired::relative_path(Path::new("/r/fn/a"), Path::new("/r")),
        "fn/a"
    );
    assert_eq!(
        desired::relative_path(Path::new("/x/fn"), Path::new("/r/s")),
        "../../x/fn"
    );
    assert_eq!(
        desired::relative_path(Path::new("/r"), Path::new("/r")),
        "."
    );
}
