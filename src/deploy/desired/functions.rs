//! Local functions: Lambda functions with their layers and destinations, and their `sqs` and
//! `sns` triggers.

use super::*;

/// A local function as a Lambda function: its code (zipped), runtime, handler, timeout,
/// memory, environment, description; reserved concurrency when `concurrency` is written;
/// the asynchronous retry settings when they are not Lambda's defaults.
pub(super) fn function(
    set: &RuleSet,
    f: &crate::rules::Function,
    sources: &RuleSources,
    ctx: &Context,
    out: &mut Desired,
) {
    let at = Some(Origin {
        file: f.file.clone(),
        line: f.line,
        column: f.column,
    });
    let code = match (&ctx.template, ctx.packages.get(&f.name)) {
        (Some(t), _) => ("Code", relative_path(&f.code, &t.rules_dir)),
        (None, Some(package)) => ("CodeSha256", package.sha256.clone()),
        (None, None) => {
            note(
                out,
                Severity::Warning,
                &at,
                format!(
                    "function `{}` is not in the template: its code must be uploaded; deploy it \
                 with `trigd deploy`",
                    f.name
                ),
            );
            return;
        }
    };
    if ctx.function_role_arn.is_none() {
        out.findings.push(Finding {
            severity: Severity::Error,
            origin: at.clone(),
            message: format!(
                "function `{}` needs an execution role for Lambda: give it with \
                 --function-role ARN",
                f.name
            ),
        });
    }
    if f.interpreter.is_some() {
        note(
            out,
            Severity::Info,
            &at,
            format!(
                "function `{}`: `interpreter` has no effect on AWS (Lambda runs {})",
                f.name,
                f.runtime.id()
            ),
        );
    }
    let mut spec = Map::new();
    spec.insert("FunctionName".into(), json!(f.name));
    spec.insert("FunctionArn".into(), json!(function_arn(&f.name, ctx)));
    spec.insert("Runtime".into(), json!(f.runtime.id()));
    spec.insert("Handler".into(), json!(f.handler));
    spec.insert("Timeout".into(), json!(f.timeout.as_secs()));
    spec.insert("MemorySize".into(), json!(f.memory_mb));
    spec.insert(
        "Role".into(),
        json!(ctx.function_role_arn.clone().unwrap_or_default()),
    );
    spec.insert(code.0.into(), json!(code.1));
    let mut layers = Vec::new();
    for (i, dir) in f.layers.iter().enumerate() {
        let name = layer_name(ctx, &f.name, i);
        let content = if let Some(t) = &ctx.template {
            layers.push(json!(format!("{LAYER}{name}")));
            json!({"LayerName": name, "Content": relative_path(dir, &t.rules_dir)})
        } else {
            let Some(p) = ctx.packages.get(&layer_package(&f.name, i)) else {
                continue;
            };
            layers.push(json!(format!("{LAYER}{name}@{}", p.sha256)));
            json!({"LayerName": name, "CodeSha256": p.sha256})
        };
        out.resources.push(Resource {
            kind: Kind::Layer,
            name: name.clone(),
            spec: content,
            origin: at.clone(),
        });
    }
    if !layers.is_empty() {
        spec.insert("Layers".into(), Value::Array(layers));
    }
    if let Some(d) = &f.description {
        spec.insert("Description".into(), json!(d));
    }
    if !f.environment.is_empty() {
        let vars: Map<String, Value> = f
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        spec.insert("Environment".into(), Value::Object(vars));
    }
    if sources.concurrency_written(&f.name) {
        spec.insert("ReservedConcurrentExecutions".into(), json!(f.concurrency));
    }
    let (on_success, on_failure) = match function_destinations(set, &f.name, ctx) {
        Ok(pair) => pair,
        Err(why) => {
            undeployable(out, &at, why);
            return;
        }
    };
    if f.retry != crate::rules::FUNCTION_RETRY || on_success.is_some() || on_failure.is_some() {
        let mut config = Map::new();
        config.insert("MaximumRetryAttempts".into(), json!(f.retry.max_attempts));
        config.insert(
            "MaximumEventAgeInSeconds".into(),
            json!(f.retry.max_event_age.as_secs()),
        );
        if let Some(arn) = on_success {
            config.insert("OnSuccess".into(), json!(arn));
        }
        if let Some(arn) = on_failure {
            config.insert("OnFailure".into(), json!(arn));
        }
        if config.contains_key("OnSuccess") || config.contains_key("OnFailure") {
            note(
                out,
                Severity::Info,
                &at,
                format!(
                    "function `{}`: its destinations get Lambda's invocation records (source \
                     `lambda`), not trigd's `Destination` events, and its execution role must be \
                     allowed to send to them",
                    f.name
                ),
            );
        }
        spec.insert("EventInvokeConfig".into(), Value::Object(config));
    }
    out.resources.push(Resource {
        kind: Kind::Function,
        name: f.name.clone(),
        spec: Value::Object(spec),
        origin: at,
    });
}

/// An `sns` trigger on an `sns` source as the function's subscription to each of the source's
/// topics, with the permission SNS needs to invoke it.
pub(super) fn sns_trigger(
    set: &RuleSet,
    t: &crate::rules::FunctionTrigger,
    source: &str,
    ctx: &Context,
    out: &mut Desired,
) {
    let at = trigger_origin(t);
    if !out.has_function(&t.function) {
        return;
    }
    let topics = match set
        .sources
        .iter()
        .find(|s| s.name == source)
        .map(|s| &s.kind)
    {
        Some(crate::rules::SourceKind::Sns { topic_arns, .. }) if !topic_arns.is_empty() => {
            topic_arns.clone()
        }
        _ => {
            undeployable(
                out,
                &at,
                format!(
                    "the `sns` trigger of `{}` takes its messages from source `{source}`, which \
                     names no topic: on AWS the function subscribes to topics; list them in an \
                     `sns` source's `topic_arns`",
                    t.function
                ),
            );
            return;
        }
    };
    let function = function_arn(&t.function, ctx);
    for topic in topics {
        let sid = fit(
            format!(
                "{}sns-{}",
                statement_prefix(ctx),
                topic.rsplit(':').next().unwrap_or_default()
            ),
            MAX_STATEMENT_ID,
        );
        out.resources.push(Resource {
            kind: Kind::Permission,
            name: format!("{sid}@{function}"),
            spec: json!({
                "FunctionName": function,
                "StatementId": sid,
                "Action": "lambda:InvokeFunction",
                "Principal": "sns.amazonaws.com",
                "SourceArn": topic,
            }),
            origin: at.clone(),
        });
        out.resources.push(Resource {
            kind: Kind::Subscription,
            name: format!("{}@{topic}", t.function),
            spec: json!({"TopicArn": topic, "Protocol": "lambda", "Endpoint": function}),
            origin: at.clone(),
        });
    }
}

/// An `sqs` trigger as the function's event-source mapping on the source's queue.
pub(super) fn sqs_trigger(
    set: &RuleSet,
    t: &crate::rules::FunctionTrigger,
    m: &crate::rules::SqsMapping,
    sources: &RuleSources,
    ctx: &Context,
    out: &mut Desired,
) {
    let at = trigger_origin(t);
    // Mapped only with its function (a function that cannot be deployed is reported as such).
    if !out.has_function(&t.function) {
        return;
    }
    let Some(queue_url) = set.sources.iter().find_map(|s| match &s.kind {
        crate::rules::SourceKind::Sqs { queue_url, .. } if s.name == m.source => Some(queue_url),
        _ => None,
    }) else {
        return;
    };
    let arn = crate::rules::queue_arn(queue_url, &ctx.region);
    let mut spec = Map::new();
    spec.insert("FunctionName".into(), json!(t.function));
    spec.insert("EventSourceArn".into(), json!(arn));
    spec.insert("BatchSize".into(), json!(m.batch_size));
    spec.insert(
        "MaximumBatchingWindowInSeconds".into(),
        json!(m.batch_window.as_secs()),
    );
    if m.report_batch_item_failures {
        spec.insert(
            "FunctionResponseTypes".into(),
            json!(["ReportBatchItemFailures"]),
        );
    }
    let filters = sources.sqs_filters(&t.function, &m.source);
    if !filters.is_empty() {
        spec.insert("Filters".into(), Value::Array(filters.to_vec()));
    }
    if (2..=1000).contains(&m.max_concurrency) {
        spec.insert("MaximumConcurrency".into(), json!(m.max_concurrency));
    } else {
        note(
            out,
            Severity::Warning,
            &at,
            format!(
                "the `sqs` trigger of `{}`: Lambda's maximum concurrency is 2 to 1000, so {} is \
                 left at Lambda's default",
                t.function, m.max_concurrency
            ),
        );
    }
    note(
        out,
        Severity::Info,
        &at,
        format!(
            "the `sqs` trigger of `{}`: its execution role must be allowed sqs:ReceiveMessage, \
             sqs:DeleteMessage and sqs:GetQueueAttributes on `{arn}`",
            t.function
        ),
    );
    out.resources.push(Resource {
        kind: Kind::EventSourceMapping,
        name: format!("{}@{arn}", t.function),
        spec: Value::Object(spec),
        origin: at,
    });
}

/// How a function names its layer versions in the desired state (`layer:NAME@CODE_SHA256`):
/// a version's ARN is known only once it is published.
pub const LAYER: &str = "layer:";

/// The key of a function's `index`-th layer in [`Context::packages`].
pub fn layer_package(function: &str, index: usize) -> String {
    format!("{function}/layer/{index}")
}

/// The name of a function's `index`-th layer: the deployment's prefix, the function, the index.
pub fn layer_name(ctx: &Context, function: &str, index: usize) -> String {
    format!("{}{function}-{index}", statement_prefix(ctx))
}

/// The ARN a destination names on AWS, or why it has none.
pub fn destination_arn(d: &crate::rules::Destination, ctx: &Context) -> Result<String, String> {
    use crate::rules::Destination;
    match d {
        Destination::Bus => Ok(bus_arn(&ctx.bus, ctx)),
        Destination::Target(kind) => match kind {
            TargetKind::Sqs { queue_url, .. } => {
                Ok(crate::rules::queue_arn(queue_url, &ctx.region))
            }
            TargetKind::Sns { topic_arn, .. } => Ok(topic_arn.clone()),
            TargetKind::Lambda { function, .. } => Ok(function_arn(function, ctx)),
            TargetKind::Function { name, .. } => Ok(function_arn(name, ctx)),
            TargetKind::EventBridge { bus, .. } => Ok(bus_arn(bus, ctx)),
            other => Err(format!(
                "a `{}` destination: Lambda's destinations are queues, topics, functions and \
                 buses; use one of those",
                other.name()
            )),
        },
    }
}

/// The destinations the rules give function `name` (through `function` targets): on AWS they
/// belong to the function, so every target must agree. `Err` names the disagreement.
pub(super) fn function_destinations(
    set: &RuleSet,
    name: &str,
    ctx: &Context,
) -> Result<(Option<String>, Option<String>), String> {
    let mut found: Option<(Option<String>, Option<String>, String)> = None;
    for rule in &set.rules {
        for t in &rule.targets {
            let TargetKind::Function {
                name: n,
                on_success,
                on_failure,
            } = &t.kind
            else {
                continue;
            };
            if n != name {
                continue;
            }
            let arn = |d: &Option<Box<crate::rules::Destination>>| {
                d.as_deref().and_then(|d| destination_arn(d, ctx).ok())
            };
            let pair = (arn(on_success), arn(on_failure));
            match &found {
                None => found = Some((pair.0, pair.1, rule.name.clone())),
                Some((s, f, first)) if (s, f) != (&pair.0, &pair.1) => {
                    return Err(format!(
                        "rules `{first}` and `{}` give function `{name}` different destinations: \
                         on AWS destinations belong to the function; give every target of it \
                         the same `on_success`/`on_failure`",
                        rule.name
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(found.map(|(s, f, _)| (s, f)).unwrap_or_default())
}
