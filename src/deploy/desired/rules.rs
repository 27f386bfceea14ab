//! Pattern rules: EventBridge rules with their targets, and the Lambda permissions they need.

use super::*;

/// The AWS target of a pattern rule's target (EventBridge `Target`), or why there is none.
pub(super) fn rule_target(
    rule: &Rule,
    t: &Target,
    ctx: &Context,
    at: &Option<Origin>,
    out: &mut Desired,
) -> Option<Value> {
    let mut v = Map::new();
    v.insert("Id".into(), json!(t.id));
    let who = format!("target `{}` of rule `{}`", t.id, rule.name);
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
                        "{who} invokes with `RequestResponse`: EventBridge always invokes Lambda \
                         asynchronously; remove `invocation_type` (a function error is then \
                         Lambda's to retry) or keep this rule on a trigd instance"
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
                         function (its event invoke config), which this version of `trigd \
                         deploy` does not set; remove them, or set the function's destinations \
                         with `aws lambda put-function-event-invoke-config`"
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
                note(
                    out,
                    Severity::Warning,
                    at,
                    format!(
                        "{who}: the FIFO queue must have content-based deduplication on AWS \
                         (identical bodies within 5 minutes are delivered once)"
                    ),
                );
            }
        }
        TargetKind::Sns { topic_arn, subject } => {
            if subject.is_some() {
                undeployable(
                    out,
                    at,
                    format!(
                        "{who} sets `subject`: EventBridge's SNS targets have no subject; \
                         remove it"
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
            let forwards = source.is_none()
                && detail_type.is_none()
                && matches!(&t.input, InputSpec::Path(p) if p.as_str() == "$.detail");
            if !forwards {
                undeployable(
                    out,
                    at,
                    format!(
                        "{who}: AWS forwards the matched event to another bus unchanged, while \
                         trigd puts the target's input as the detail of a new event; write \
                         `input_path: $.detail` and drop `source`/`detail_type` to forward"
                    ),
                );
                return None;
            }
            v.insert("Arn".into(), json!(bus_arn(bus, ctx)));
            // Forwarded whole: no input fields.
            v.insert("RetryPolicy".into(), retry_policy(&t.retry));
            dead_letter(t, ctx, at, out, &mut v)?;
            return Some(Value::Object(v));
        }
        TargetKind::Http {
            url,
            method,
            headers,
            timeout,
        } => {
            let name = http_target(rule, &t.id, url, method, headers, *timeout, ctx, at, out)?;
            v.insert("Arn".into(), json!(format!("{API_DESTINATION}{name}")));
            v.insert(
                "RoleArn".into(),
                json!(ctx.events_role_arn.clone().unwrap_or_default()),
            );
            let plain: Map<String, Value> = headers
                .iter()
                .filter(|(_, value)| !value.contains("${"))
                .map(|(k, value)| (k.clone(), json!(value)))
                .collect();
            if !plain.is_empty() {
                v.insert(
                    "HttpParameters".into(),
                    json!({ "HeaderParameters": plain }),
                );
            }
        }
        TargetKind::Command { .. } => {
            undeployable(
                out,
                at,
                format!(
                    "{who} is a `command` target: commands run programs on the trigd host and \
                     AWS has no equivalent; keep this rule on a trigd instance, or replace it \
                     with a lambda or http target"
                ),
            );
            return None;
        }
        TargetKind::Log => {
            undeployable(
                out,
                at,
                format!(
                    "{who} is a `log` target: it writes trigd's own log; on AWS use a \
                     CloudWatch Logs group through a lambda target, or keep this rule on a \
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
    match &t.input {
        InputSpec::WholeEvent => {}
        InputSpec::Constant(text) => {
            let parsed = serde_json::from_str(text).unwrap_or(Value::String(text.clone()));
            v.insert("Input".into(), parsed);
        }
        InputSpec::Path(p) => {
            let Some(dotted) = dot_path(p.as_str()) else {
                undeployable(
                    out,
                    at,
                    format!(
                        "{who}: `input_path: {}` needs bracket notation, which EventBridge \
                         does not take in target paths; use a path of plain names",
                        p.as_str()
                    ),
                );
                return None;
            };
            v.insert("InputPath".into(), json!(dotted));
        }
        InputSpec::Transformer { paths, template } => {
            let mut map = Map::new();
            for (name, path) in paths {
                let Some(dotted) = dot_path(path.as_str()) else {
                    undeployable(
                        out,
                        at,
                        format!(
                            "{who}: input_paths `{name}: {}` needs bracket notation, which \
                             EventBridge does not take; use a path of plain names",
                            path.as_str()
                        ),
                    );
                    return None;
                };
                map.insert(name.clone(), json!(dotted));
            }
            let mut tr = Map::new();
            if !map.is_empty() {
                tr.insert("InputPathsMap".into(), Value::Object(map));
            }
            tr.insert("InputTemplate".into(), json!(template.as_str()));
            v.insert("InputTransformer".into(), Value::Object(tr));
        }
    }
    v.insert("RetryPolicy".into(), retry_policy(&t.retry));
    dead_letter(t, ctx, at, out, &mut v)?;
    Some(Value::Object(v))
}

pub(super) fn dead_letter(
    t: &Target,
    ctx: &Context,
    at: &Option<Origin>,
    out: &mut Desired,
    v: &mut Map<String, Value>,
) -> Option<()> {
    if let Some(d) = &t.dead_letter {
        match dead_letter_arn(d, ctx) {
            Ok(arn) => {
                v.insert("DeadLetterConfig".into(), json!({ "Arn": arn }));
            }
            Err(why) => {
                undeployable(out, at, format!("target `{}`: {why}", t.id));
                return None;
            }
        }
    }
    Some(())
}

/// `$.a.b`, `$['a'].b` → `$.a.b`; `None` when a step cannot be written with dots.
pub fn dot_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix('$')?;
    let mut out = String::from("$");
    let mut chars = rest;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    while !chars.is_empty() {
        if let Some(r) = chars.strip_prefix("['") {
            let end = r.find("']")?;
            let name = &r[..end];
            if !plain(name) {
                return None;
            }
            out.push('.');
            out.push_str(name);
            chars = &r[end + 2..];
        } else if let Some(r) = chars.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return None;
            }
            out.push('.');
            out.push_str(name);
            chars = &r[end..];
        } else if let Some(r) = chars.strip_prefix('[') {
            // An index, `[0]`: EventBridge takes these as they are.
            let end = r.find(']')?;
            if !r[..end].bytes().all(|b| b.is_ascii_digit()) || end == 0 {
                return None;
            }
            out.push('[');
            out.push_str(&r[..end]);
            out.push(']');
            chars = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(out)
}

pub(super) fn pattern_rule(
    rule: &Rule,
    sources: &RuleSources,
    ctx: &Context,
    at: Option<Origin>,
    out: &mut Desired,
) {
    let Some(pattern) = sources.pattern(&rule.name) else {
        out.findings.push(Finding {
            severity: Severity::Error,
            origin: at,
            message: format!(
                "the pattern of rule `{}` could not be read again from its file (did it change \
                 while loading?); run the command again",
                rule.name
            ),
        });
        return;
    };
    if let Some(source) = trigd_only_source(pattern) {
        undeployable(
            out,
            &at,
            format!(
                "rule `{}` matches `source: {source}` events, which only trigd's own sources make \
                 (SNS envelopes and raw SQS messages): on AWS no such event reaches a bus; keep \
                 this rule on a trigd instance, or have the producer put events on the bus",
                rule.name
            ),
        );
        return;
    }
    let text = event::compact(pattern);
    let chars = text.chars().count();
    if chars > PATTERN_QUOTA {
        note(
            out,
            Severity::Warning,
            &at,
            format!(
                "the pattern of rule `{}` is {chars} characters as compact JSON: over \
                 EventBridge's default quota of {PATTERN_QUOTA} (\"Event pattern size\"); ask \
                 AWS to raise it before applying",
                rule.name
            ),
        );
    }
    if rule.targets.len() > MAX_TARGETS {
        out.findings.push(Finding {
            severity: Severity::Error,
            origin: at.clone(),
            message: format!(
                "rule `{}` has {} targets: EventBridge allows at most {MAX_TARGETS}; split it",
                rule.name,
                rule.targets.len()
            ),
        });
        return;
    }
    let mut targets = Map::new();
    for t in &rule.targets {
        let t_at = sources.target(&rule.name, &t.id).cloned().or(at.clone());
        if t.concurrency != crate::rules::Defaults::default().concurrency {
            note(
                out,
                Severity::Info,
                &t_at,
                format!(
                    "target `{}`: `concurrency` has no equivalent on AWS and is not deployed",
                    t.id
                ),
            );
        }
        if let Some(v) = rule_target(rule, t, ctx, &t_at, out) {
            targets.insert(t.id.clone(), v);
        }
    }
    if targets.is_empty() {
        note(
            out,
            Severity::Info,
            &at,
            format!(
                "rule `{}` has no target that can be deployed: it is left out",
                rule.name
            ),
        );
        return;
    }
    let mut spec = Map::new();
    spec.insert("Name".into(), json!(rule.name));
    spec.insert("EventBusName".into(), json!(ctx.bus));
    if let Some(d) = &rule.description {
        spec.insert("Description".into(), json!(d));
    }
    spec.insert(
        "State".into(),
        json!(if rule.enabled { "ENABLED" } else { "DISABLED" }),
    );
    spec.insert("EventPattern".into(), pattern.clone());
    let mut functions: Vec<String> = targets
        .values()
        .filter_map(|t| t.get("Arn").and_then(Value::as_str))
        .filter(|arn| arn.starts_with("arn:aws:lambda:"))
        .map(str::to_owned)
        .collect();
    spec.insert("Targets".into(), Value::Object(targets));
    out.resources.push(Resource {
        kind: Kind::Rule,
        name: rule.name.clone(),
        spec: Value::Object(spec),
        origin: at.clone(),
    });
    functions.sort();
    functions.dedup();
    for function in functions {
        out.resources
            .push(permission(&rule.name, &function, ctx, at.clone()));
    }
}

/// The permission that lets EventBridge invoke `function` for rule `rule`.
pub fn permission(rule: &str, function: &str, ctx: &Context, origin: Option<Origin>) -> Resource {
    let sid = statement_id(ctx, rule);
    Resource {
        kind: Kind::Permission,
        name: format!("{sid}@{function}"),
        spec: json!({
            "FunctionName": function,
            "StatementId": sid,
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "SourceArn": ctx.rule_arn(rule),
        }),
        origin,
    }
}

/// The trigd-invented source (`aws.sns`, `aws.sqs`) a pattern is limited to, if every branch of
/// it names only such sources.
pub(super) fn trigd_only_source(pattern: &Value) -> Option<&'static str> {
    const ONLY_TRIGD: [&str; 2] = ["aws.sns", "aws.sqs"];
    let branches: Vec<&Value> = match pattern.get("$or").and_then(Value::as_array) {
        Some(alts) => alts.iter().collect(),
        None => vec![pattern],
    };
    let mut found = None;
    for b in branches {
        let values = b.get("source")?.as_array()?;
        for v in values {
            let s = v.as_str()?;
            found = Some(*ONLY_TRIGD.iter().find(|o| **o == s)?);
        }
    }
    found
}
