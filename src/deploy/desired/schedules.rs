//! Schedule rules: one Scheduler schedule per target, its `Input` what trigd delivers; `http`
//! targets through a bus hop.

use super::*;

/// The name of the schedule for target `target` of rule `rule`: `<rule>.<target>`, or, when
/// that is longer than 64 characters, its first 55 characters, `-`, and 8 hex digits of its
/// SHA-256.
pub fn schedule_name(rule: &str, target: &str) -> String {
    let full = format!("{rule}.{target}");
    if full.len() <= MAX_NAME {
        return full;
    }
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(full.as_bytes());
    let head: String = full.chars().take(55).collect();
    format!("{head}-{}", &hex::encode(hash)[..8])
}

/// The Scheduler context attributes trigd's placeholders become.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";
pub const EXECUTION_ID: &str = "<aws.scheduler.execution-id>";

/// The `Input` of a schedule: what trigd would deliver for a fire of `rule` to `target`, with
/// the event's `id` and `time` (and the ingestion time) replaced by Scheduler's context
/// attributes, which Scheduler fills in at each invocation.
pub fn schedule_input(
    rule: &str,
    input: &InputSpec,
    ctx: &Context,
) -> Result<String, crate::transform::RenderError> {
    // The rule ARN trigd uses in the envelope: the default bus's form, as trigd runs it.
    let settings = Settings {
        region: ctx.region.clone(),
        account: ctx.account.clone(),
        ..Settings::default()
    };
    let arn = format!("arn:aws:events:{}:{}:rule/{rule}", ctx.region, ctx.account);
    let mut envelope = event::scheduled_event(&settings, &arn, chrono::DateTime::UNIX_EPOCH, "");
    envelope["id"] = json!(EXECUTION_ID);
    envelope["time"] = json!(SCHEDULED_TIME);
    let text = event::compact(&envelope);
    let context = RenderContext {
        rule_name: rule,
        rule_arn: &arn,
        ingestion_time: SCHEDULED_TIME,
    };
    input.render(&text, &envelope, &context)
}

/// A minute-rounded window: `ceil(jitter / 1 min)`.
pub fn window_minutes(jitter: std::time::Duration) -> u64 {
    jitter.as_secs().div_ceil(60)
}

pub(super) fn schedule_rule(
    rule: &Rule,
    s: &Schedule,
    sources: &RuleSources,
    ctx: &Context,
    at: Option<Origin>,
    out: &mut Desired,
) {
    if ctx.scheduler_role_arn.is_none() {
        out.findings.push(Finding {
            severity: Severity::Error,
            origin: at.clone(),
            message: format!(
                "schedule rule `{}` needs an IAM role that EventBridge Scheduler can assume to \
                 reach its targets: give it with --scheduler-role ARN (`trigd export` writes \
                 one)",
                rule.name
            ),
        });
    }
    if matches!(s.catch_up, CatchUp::Once { .. }) && sources.catch_up_written(&rule.name) {
        note(
            out,
            Severity::Info,
            &at,
            format!(
                "rule `{}`: `catch_up` has no effect on AWS (Scheduler has no downtime to catch \
                 up)",
                rule.name
            ),
        );
    }
    let window = match s.jitter {
        Some(j) => {
            let minutes = window_minutes(j);
            if minutes > MAX_WINDOW_MINUTES {
                out.findings.push(Finding {
                    severity: Severity::Error,
                    origin: at.clone(),
                    message: format!(
                        "rule `{}`: a jitter of {minutes} minutes is over Scheduler's flexible \
                         window of at most {MAX_WINDOW_MINUTES} minutes",
                        rule.name
                    ),
                });
                return;
            }
            if j.as_secs() % 60 != 0 {
                note(
                    out,
                    Severity::Warning,
                    &at,
                    format!(
                        "rule `{}`: the jitter is rounded up to {minutes} whole minutes (a \
                         flexible window)",
                        rule.name
                    ),
                );
            }
            json!({"Mode": "FLEXIBLE", "MaximumWindowInMinutes": minutes})
        }
        None => json!({"Mode": "OFF"}),
    };
    let is_at = matches!(s.expr, ScheduleExpr::At(_));
    if rule.targets.len() > 1 {
        note(
            out,
            Severity::Warning,
            &at,
            format!(
                "rule `{}` becomes {} schedules, one per target: their fires are independent",
                rule.name,
                rule.targets.len()
            ),
        );
    }
    for t in &rule.targets {
        let t_at = sources.target(&rule.name, &t.id).cloned().or(at.clone());
        let Some(target) = schedule_target(rule, t, ctx, &t_at, out) else {
            continue;
        };
        let name = schedule_name(&rule.name, &t.id);
        let mut spec = Map::new();
        spec.insert("Name".into(), json!(name));
        spec.insert("GroupName".into(), json!(ctx.group()));
        spec.insert("ScheduleExpression".into(), json!(s.expr.to_string()));
        spec.insert(
            "ScheduleExpressionTimezone".into(),
            json!(s.timezone.name()),
        );
        if !is_at {
            if let Some(start) = s.start {
                spec.insert("StartDate".into(), json!(rfc3339(start)));
            }
            if let Some(end) = s.end {
                spec.insert("EndDate".into(), json!(rfc3339(end)));
            }
        }
        if let Some(d) = &rule.description {
            spec.insert("Description".into(), json!(d));
        }
        spec.insert(
            "State".into(),
            json!(if rule.enabled { "ENABLED" } else { "DISABLED" }),
        );
        spec.insert("FlexibleTimeWindow".into(), window.clone());
        spec.insert("ActionAfterCompletion".into(), json!("NONE"));
        spec.insert("Target".into(), target);
        out.resources.push(Resource {
            kind: Kind::Schedule,
            name,
            spec: Value::Object(spec),
            origin: t_at,
        });
    }
}

pub(super) fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The Scheduler target of a schedule rule's target, or why there is none.
pub(super) fn schedule_target(
    rule: &Rule,
    t: &Target,
    ctx: &Context,
    at: &Option<Origin>,
    out: &mut Desired,
) -> Option<Value> {
    let who = format!("target `{}` of schedule rule `{}`", t.id, rule.name);
    let mut v = Map::new();
    match &t.kind {
        TargetKind::Lambda {
            function,
            invocation_type,
            on_success,
            on_failure,
        } => {
            if *invocation_type == InvocationType::RequestResponse {
                undeployable(
                    out,
                    at,
                    format!(
                        "{who} invokes with `RequestResponse`: Scheduler always invokes Lambda \
                         asynchronously; remove `invocation_type`"
                    ),
                );
                return None;
            }
            if on_success.is_some() || on_failure.is_some() {
                undeployable(
                    out,
                    at,
                    format!(
                        "{who} has `on_success`/`on_failure`: on AWS destinations belong to the \
                         function's event invoke config, which this version of `trigd deploy` \
                         does not set; remove them"
                    ),
                );
                return None;
            }
            v.insert("Arn".into(), json!(function_arn(function, ctx)));
        }
        TargetKind::Sqs {
            queue_url,
            message_group_id,
        } => {
            v.insert(
                "Arn".into(),
                json!(crate::rules::queue_arn(queue_url, &ctx.region)),
            );
            if let Some(g) = message_group_id {
                v.insert("SqsParameters".into(), json!({"MessageGroupId": g}));
            }
        }
        TargetKind::Sns { topic_arn, subject } => {
            if subject.is_some() {
                undeployable(
                    out,
                    at,
                    format!(
                        "{who} sets `subject`: Scheduler's SNS targets have no subject; remove it"
                    ),
                );
                return None;
            }
            v.insert("Arn".into(), json!(topic_arn));
        }
        TargetKind::EventBridge {
            bus,
            source,
            detail_type,
        } => {
            let detail = detail_type.as_deref().unwrap_or("Scheduled Event");
            if let Some(s) = source
                .as_deref()
                .filter(|s| s.len() > 256)
                .or(Some(detail).filter(|d| d.len() > 128))
            {
                out.findings.push(Finding {
                    severity: Severity::Error,
                    origin: at.clone(),
                    message: format!(
                        "{who}: `{s}` is too long for Scheduler (source at most 256 characters, \
                         detail-type at most 128)"
                    ),
                });
                return None;
            }
            let Some(source) = source.as_deref().filter(|s| !s.starts_with("aws.")) else {
                undeployable(
                    out,
                    at,
                    format!(
                        "{who}: Scheduler puts events with a source that may not start with \
                         `aws.`, and a Scheduled Event's is `aws.events`; set `source:` (e.g. \
                         `trigd.schedule`)"
                    ),
                );
                return None;
            };
            v.insert("Arn".into(), json!(bus_arn(bus, ctx)));
            v.insert(
                "EventBridgeParameters".into(),
                json!({
                    "Source": source,
                    "DetailType": detail_type.as_deref().unwrap_or("Scheduled Event"),
                }),
            );
        }
        TargetKind::Http {
            url,
            method,
            headers,
            timeout,
        } => {
            // Scheduler has no HTTP target: the bus hop.
            return http_hop(rule, t, (url, method, headers, *timeout), ctx, at, out);
        }
        TargetKind::Command { .. } => {
            undeployable(
                out,
                at,
                format!(
                    "{who} is a `command` target: commands run programs on the trigd host and \
                     AWS has no equivalent; keep this rule on a trigd instance, or replace it \
                     with a lambda target"
                ),
            );
            return None;
        }
        TargetKind::Log => {
            undeployable(
                out,
                at,
                format!(
                    "{who} is a `log` target: it writes trigd's own log; keep this rule on a \
                     trigd instance"
                ),
            );
            return None;
        }
        TargetKind::Function {
            name,
            on_success,
            on_failure,
        } => {
            let arn = local_function_target(out, at, &who, name, [on_success, on_failure], ctx)?;
            v.insert("Arn".into(), json!(arn));
        }
    }
    v.insert(
        "RoleArn".into(),
        json!(ctx.scheduler_role_arn.clone().unwrap_or_default()),
    );
    match schedule_input(&rule.name, &t.input, ctx) {
        Ok(text) => {
            v.insert("Input".into(), json!(text));
        }
        Err(e) => {
            undeployable(
                out,
                at,
                format!(
                    "{who}: its input cannot be rendered for a Scheduled Event ({e}), so every \
                     fire would fail; fix the input"
                ),
            );
            return None;
        }
    }
    v.insert("RetryPolicy".into(), retry_policy(&t.retry));
    if let Some(d) = &t.dead_letter {
        match dead_letter_arn(d, ctx) {
            Ok(arn) => {
                v.insert("DeadLetterConfig".into(), json!({ "Arn": arn }));
            }
            Err(why) => {
                undeployable(out, at, format!("{who}: {why}"));
                return None;
            }
        }
    }
    Some(Value::Object(v))
}

/// The source and detail-type of the events a schedule puts on the bus for an `http` target.
pub const HOP_SOURCE: &str = "trigd.schedule";

/// An `http` target of a schedule rule, as a bus hop: the schedule puts
/// `{"rule","target","time"}` on the deployment's bus (source `trigd.schedule`), and a rule
/// of the deployment matching exactly that sends it to the target's API destination, with an
/// input transformer that rebuilds what trigd delivers (the hop event's `id` as the event id,
/// and the scheduled time). The schedule's target, or why there is none.
pub(super) fn http_hop(
    rule: &Rule,
    t: &Target,
    (url, method, headers, timeout): (
        &crate::rules::HttpUrl,
        &str,
        &[(String, String)],
        std::time::Duration,
    ),
    ctx: &Context,
    at: &Option<Origin>,
    out: &mut Desired,
) -> Option<Value> {
    let who = format!("target `{}` of schedule rule `{}`", t.id, rule.name);
    let input = match schedule_input(&rule.name, &t.input, ctx) {
        Ok(text) => text,
        Err(e) => {
            undeployable(
                out,
                at,
                format!(
                    "{who}: its input cannot be rendered for a Scheduled Event ({e}), so every \
                     fire would fail; fix the input"
                ),
            );
            return None;
        }
    };
    let name = http_target(rule, &t.id, url, method, headers, timeout, ctx, at, out)?;
    let mut target = Map::new();
    target.insert("Id".into(), json!(t.id));
    target.insert("Arn".into(), json!(format!("{API_DESTINATION}{name}")));
    target.insert(
        "RoleArn".into(),
        json!(ctx.events_role_arn.clone().unwrap_or_default()),
    );
    let plain: Map<String, Value> = headers
        .iter()
        .filter(|(_, value)| !value.contains("${"))
        .map(|(k, value)| (k.clone(), json!(value)))
        .collect();
    if !plain.is_empty() {
        target.insert(
            "HttpParameters".into(),
            json!({ "HeaderParameters": plain }),
        );
    }
    target.insert(
        "InputTransformer".into(),
        json!({
            "InputPathsMap": {"id": "$.id", "time": "$.detail.time"},
            "InputTemplate": input
                .replace(EXECUTION_ID, "<id>")
                .replace(SCHEDULED_TIME, "<time>"),
        }),
    );
    target.insert("RetryPolicy".into(), retry_policy(&t.retry));
    if let Some(d) = &t.dead_letter {
        match dead_letter_arn(d, ctx) {
            Ok(arn) => {
                target.insert("DeadLetterConfig".into(), json!({ "Arn": arn }));
            }
            Err(why) => {
                undeployable(out, at, format!("{who}: {why}"));
                return None;
            }
        }
    }
    let hop = http_name(ctx, &format!("hop-{}", rule.name), &t.id);
    out.resources.push(Resource {
        kind: Kind::Rule,
        name: hop.clone(),
        spec: json!({
            "Name": hop,
            "EventBusName": ctx.bus,
            "Description": format!(
                "trigd: schedule rule {} to its http target {} (Scheduler cannot call HTTP)",
                rule.name, t.id
            ),
            "State": if rule.enabled { "ENABLED" } else { "DISABLED" },
            "EventPattern": {
                "source": [HOP_SOURCE],
                "detail-type": ["Scheduled Event"],
                "detail": {"rule": [rule.name], "target": [t.id]},
            },
            "Targets": { t.id.clone(): target },
        }),
        origin: at.clone(),
    });
    note(
        out,
        Severity::Info,
        at,
        format!(
            "{who}: Scheduler cannot call HTTP, so the schedule puts an event on bus `{}` and \
             rule `{hop}` sends it on; the Scheduler role must be allowed events:PutEvents there",
            ctx.bus
        ),
    );
    Some(json!({
        "Arn": bus_arn(&ctx.bus, ctx),
        "RoleArn": ctx.scheduler_role_arn.clone().unwrap_or_default(),
        "Input": crate::event::compact(&json!({
            "rule": rule.name,
            "target": t.id,
            "time": SCHEDULED_TIME,
        })),
        "EventBridgeParameters": {"Source": HOP_SOURCE, "DetailType": "Scheduled Event"},
        // The hop's own delivery is retried by EventBridge; the target's settings are on the
        // hop rule's target.
        "RetryPolicy": retry_policy(&crate::rules::RetryPolicy::default()),
    }))
}
