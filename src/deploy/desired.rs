//! The desired state, pure: what a loaded [`RuleSet`] becomes on AWS, as resources in AWS's own
//! field names (normalised, so that they compare equal to what AWS reads back), plus every
//! finding: what cannot be deployed (at `file:line:column`, with the reason and what to do
//! instead), what maps only approximately, and the quotas and ranges AWS would refuse at apply
//! time. No IO, no clock.

use serde_json::{Map, Value, json};

use super::source::{Origin, RuleSources};
use super::{Kind, Resource};
use crate::event;
use crate::rules::{
    CatchUp, DeadLetter, InvocationType, RetryPolicy, Rule, RuleSet, Schedule, Settings, Target,
    TargetKind, Trigger,
};
use crate::schedule::ScheduleExpr;
use crate::transform::{InputSpec, RenderContext};

/// Where and as whom the rules are deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub region: String,
    pub account: String,
    /// The event bus the pattern rules go on (`default`, or a custom bus's name).
    pub bus: String,
    /// The deployment's name: rules are tagged with it, schedules live in `trigd-<name>`.
    pub deployment: String,
    /// The IAM role EventBridge Scheduler assumes to reach the targets (required when there
    /// are schedule rules).
    pub scheduler_role_arn: Option<String>,
    /// The IAM role EventBridge assumes to invoke API destinations (required when there are
    /// `http` targets).
    pub events_role_arn: Option<String>,
    /// The deployer's environment, where `${VAR}` header values are resolved.
    pub env: Env,
    /// The execution role of the Lambda functions deploy creates from local functions.
    pub function_role_arn: Option<String>,
    /// The local functions' code, zipped (`package`), by function name. `trigd export` has
    /// none: it leaves functions out.
    pub packages: std::collections::BTreeMap<String, super::package::Package>,
}

/// Where `${VAR}` values come from.
#[derive(Clone, PartialEq, Eq)]
pub enum Env {
    /// The deployer's environment (values never printed: `Debug` shows the names only).
    Values(std::collections::BTreeMap<String, String>),
    /// No values: each secret stays a reference (`trigd export` makes it a parameter).
    Names,
}

impl Default for Env {
    fn default() -> Self {
        Env::Values(Default::default())
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Env::Values(v) => f.debug_list().entries(v.keys()).finish(),
            Env::Names => f.write_str("Names"),
        }
    }
}

/// Secret values to send with connections, by connection name: `(key, value)` where the key is
/// `Password`, `ApiKeyValue` or `header:NAME`. `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(pub std::collections::BTreeMap<String, Vec<(String, String)>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(k, v)| (k, v.iter().map(|(n, _)| n).collect::<Vec<_>>())),
            )
            .finish()
    }
}

impl Context {
    /// The schedule group of this deployment.
    pub fn group(&self) -> String {
        format!("trigd-{}", self.deployment)
    }

    /// The ARN of rule `name` on the deployment's bus (the bus is part of it unless it is the
    /// default bus).
    pub fn rule_arn(&self, name: &str) -> String {
        if self.bus == "default" {
            format!(
                "arn:aws:events:{}:{}:rule/{name}",
                self.region, self.account
            )
        } else {
            format!(
                "arn:aws:events:{}:{}:rule/{}/{name}",
                self.region, self.account, self.bus
            )
        }
    }
}

/// The tag every resource trigd creates carries.
pub const MANAGED_BY: (&str, &str) = ("managed-by", "trigd");
/// The tag naming the deployment.
pub const DEPLOYMENT_TAG: &str = "trigd:deployment";

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A note: something that has no effect on AWS.
    Info,
    /// Maps, with a difference the user should know about.
    Warning,
    /// Cannot be deployed; apply refuses unless `--skip-undeployable`, which leaves it out.
    Undeployable,
    /// Nothing can be deployed until it is fixed.
    Error,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Undeployable => "undeployable",
            Severity::Error => "error",
        }
    }
}

/// One thing found while mapping the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub origin: Option<Origin>,
    /// Lowercase, no trailing period: what, why, and what to do instead.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(o) = &self.origin {
            write!(f, "{o}: ")?;
        }
        write!(f, "{}: {}", self.severity.label(), self.message)
    }
}

/// The desired state and what was found while building it.
#[derive(Debug, Default)]
pub struct Desired {
    /// Rules (each with its targets) and schedules, in file order.
    pub resources: Vec<Resource>,
    pub findings: Vec<Finding>,
    /// What connections send and nobody may read: kept out of `resources`.
    pub secrets: Secrets,
}

impl Desired {
    /// True when apply must refuse: an error, or an undeployable feature that is not skipped.
    pub fn blocks(&self, skip_undeployable: bool) -> bool {
        self.findings.iter().any(|f| {
            f.severity == Severity::Error
                || (f.severity == Severity::Undeployable && !skip_undeployable)
        })
    }
}

/// EventBridge's default event-pattern size quota, in characters (adjustable).
pub const PATTERN_QUOTA: usize = 2048;
/// EventBridge's default rules-per-bus quota (adjustable; 100 in a few regions).
pub const RULES_PER_BUS_QUOTA: usize = 300;
/// Descriptions of rules and schedules.
pub const MAX_DESCRIPTION: usize = 512;
/// Names of rules, targets, schedules and groups.
pub const MAX_NAME: usize = 64;
/// Targets per rule.
pub const MAX_TARGETS: usize = 5;
/// Scheduler's longest flexible window, in minutes.
pub const MAX_WINDOW_MINUTES: u64 = 1440;

/// Builds the desired state of `set` in `ctx`.
pub fn build(set: &RuleSet, sources: &RuleSources, ctx: &Context) -> Desired {
    let mut out = Desired::default();
    check_context(ctx, &mut out.findings);
    for rule in &set.rules {
        let at = Some(Origin {
            file: rule.file.clone(),
            line: rule.line,
            column: rule.column,
        });
        if let Some(d) = &rule.description
            && d.chars().count() > MAX_DESCRIPTION
        {
            out.findings.push(Finding {
                severity: Severity::Error,
                origin: at.clone(),
                message: format!(
                    "the description of rule `{}` is {} characters: EventBridge and Scheduler \
                     take at most {MAX_DESCRIPTION}; shorten it",
                    rule.name,
                    d.chars().count()
                ),
            });
            continue;
        }
        match &rule.trigger {
            Trigger::Pattern(_) => pattern_rule(rule, sources, ctx, at, &mut out),
            Trigger::Schedule(s) => schedule_rule(rule, s, sources, ctx, at, &mut out),
        }
    }
    for f in &set.functions {
        function(set, f, sources, ctx, &mut out);
    }
    for t in &set.triggers {
        if matches!(t.kind, crate::rules::FunctionTriggerKind::Schedule { .. }) {
            continue; // Reported as the schedule rule it runs as.
        }
        if let crate::rules::FunctionTriggerKind::Sqs(m) = &t.kind {
            sqs_trigger(set, t, m, sources, ctx, &mut out);
            continue;
        }
        if let crate::rules::FunctionTriggerKind::Sns { source } = &t.kind {
            sns_trigger(set, t, source, ctx, &mut out);
            continue;
        }
        out.findings.push(Finding {
            severity: Severity::Undeployable,
            origin: Some(Origin {
                file: t.file.clone(),
                line: t.line,
                column: t.column,
            }),
            message: match &t.kind {
                crate::rules::FunctionTriggerKind::Api(_) => format!(
                    "the `api` trigger of function `{}` is not deployed: deploy creates no API \
                     Gateway; put an HTTP API with a Lambda proxy integration, or a function URL, \
                     in front of the function",
                    t.function
                ),
                _ => format!(
                    "the `s3` trigger of function `{}` is not deployed: S3 sends to Lambda from \
                     the bucket's notification configuration, which is one document per bucket \
                     that deploy does not rewrite; add the function to the bucket's \
                     notifications (`aws s3api put-bucket-notification-configuration`) and let \
                     s3.amazonaws.com invoke it (`aws lambda add-permission`)",
                    t.function
                ),
            },
        });
    }
    policies(&mut out, ctx);
    for s in &set.sources {
        out.findings.push(Finding {
            severity: Severity::Info,
            origin: Some(Origin {
                file: s.file.clone(),
                line: s.line,
                column: s.column,
            }),
            message: source_note(&s.name, &s.kind),
        });
    }
    out
}

/// A local function as a Lambda function: its code (zipped), runtime, handler, timeout,
/// memory, environment, description; reserved concurrency when `concurrency` is written;
/// the asynchronous retry settings when they are not Lambda's defaults.
fn function(
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
    let Some(package) = ctx.packages.get(&f.name) else {
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
    spec.insert("CodeSha256".into(), json!(package.sha256));
    let mut layers = Vec::new();
    for (i, _) in f.layers.iter().enumerate() {
        let Some(p) = ctx.packages.get(&layer_package(&f.name, i)) else {
            continue;
        };
        let name = layer_name(ctx, &f.name, i);
        layers.push(json!(format!("{LAYER}{name}@{}", p.sha256)));
        out.resources.push(Resource {
            kind: Kind::Layer,
            name: name.clone(),
            spec: json!({"LayerName": name, "CodeSha256": p.sha256}),
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
fn sns_trigger(
    set: &RuleSet,
    t: &crate::rules::FunctionTrigger,
    source: &str,
    ctx: &Context,
    out: &mut Desired,
) {
    let at = Some(Origin {
        file: t.file.clone(),
        line: t.line,
        column: t.column,
    });
    if !out
        .resources
        .iter()
        .any(|r| r.kind == Kind::Function && r.name == t.function)
    {
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
fn sqs_trigger(
    set: &RuleSet,
    t: &crate::rules::FunctionTrigger,
    m: &crate::rules::SqsMapping,
    sources: &RuleSources,
    ctx: &Context,
    out: &mut Desired,
) {
    let at = Some(Origin {
        file: t.file.clone(),
        line: t.line,
        column: t.column,
    });
    // Mapped only with its function (a function that cannot be deployed is reported as such).
    if !out
        .resources
        .iter()
        .any(|r| r.kind == Kind::Function && r.name == t.function)
    {
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
fn function_destinations(
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

/// What becomes of a source on AWS: deploy creates no ingress.
fn source_note(name: &str, kind: &crate::rules::SourceKind) -> String {
    use crate::rules::SourceKind;
    match kind {
        SourceKind::Sqs { .. } => format!(
            "source `{name}` is not deployed: on AWS the events must reach the bus another way \
             (S3: turn on EventBridge notifications on the bucket; EventBridge producers: \
             PutEvents to the bus)"
        ),
        SourceKind::Sns { .. } => format!(
            "source `{name}` is not deployed: SNS cannot target an event bus, so rules on \
             `aws.sns` events will not fire on AWS"
        ),
        SourceKind::Webhook { .. } => format!(
            "source `{name}` (webhook) is not deployed: put API Gateway's EventBridge-PutEvents \
             integration or a Lambda function URL in front of the bus; the bearer/HMAC check \
             needs code there"
        ),
    }
}

fn check_context(ctx: &Context, findings: &mut Vec<Finding>) {
    let group = ctx.group();
    if group.len() > MAX_NAME
        || !group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        findings.push(Finding {
            severity: Severity::Error,
            origin: None,
            message: format!(
                "deployment name `{}` cannot name a schedule group (`{group}`): use at most {} \
                 characters of A-Z a-z 0-9 - _ . (--deployment NAME)",
                ctx.deployment,
                MAX_NAME - "trigd-".len()
            ),
        });
    }
    if ctx.bus.is_empty()
        || ctx.bus.len() > 256
        || !ctx
            .bus
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
    {
        findings.push(Finding {
            severity: Severity::Error,
            origin: None,
            message: format!("`{}` is not an event bus name (--bus NAME)", ctx.bus),
        });
    }
}

fn undeployable(out: &mut Desired, at: &Option<Origin>, message: String) {
    out.findings.push(Finding {
        severity: Severity::Undeployable,
        origin: at.clone(),
        message,
    });
}

fn note(out: &mut Desired, severity: Severity, at: &Option<Origin>, message: String) {
    out.findings.push(Finding {
        severity,
        origin: at.clone(),
        message,
    });
}

fn retry_policy(r: &RetryPolicy) -> Value {
    json!({
        "MaximumRetryAttempts": r.max_attempts,
        "MaximumEventAgeInSeconds": r.max_event_age.as_secs(),
    })
}

fn function_arn(function: &str, ctx: &Context) -> String {
    if function.starts_with("arn:") {
        function.to_owned()
    } else {
        format!(
            "arn:aws:lambda:{}:{}:function:{function}",
            ctx.region, ctx.account
        )
    }
}

fn bus_arn(bus: &str, ctx: &Context) -> String {
    if bus.starts_with("arn:") {
        bus.to_owned()
    } else {
        format!(
            "arn:aws:events:{}:{}:event-bus/{bus}",
            ctx.region, ctx.account
        )
    }
}

/// The dead-letter queue's ARN, or why it cannot be used.
fn dead_letter_arn(d: &DeadLetter, ctx: &Context) -> Result<String, String> {
    let DeadLetter::Sqs(url) = d;
    let arn = crate::rules::queue_arn(url, &ctx.region);
    if arn.ends_with(".fifo") {
        return Err(format!(
            "the dead-letter queue `{url}` is a FIFO queue: AWS takes only standard queues as \
             dead-letter queues; use a standard queue"
        ));
    }
    Ok(arn)
}

/// The AWS target of a pattern rule's target (EventBridge `Target`), or why there is none.
fn rule_target(
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
            // Destinations go on the function deploy makes (see `function`); here only what
            // cannot be one.
            for d in [on_success, on_failure].into_iter().flatten() {
                if let Err(why) = destination_arn(d, ctx) {
                    undeployable(out, at, format!("{who}: {why}"));
                    return None;
                }
            }
            // The Lambda function deploy makes of the local function.
            v.insert("Arn".into(), json!(function_arn(name, ctx)));
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

fn dead_letter(
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

/// How a desired `http` target names its API destination, whose ARN (with a UUID AWS picks)
/// is known only once it exists; targets read back are written the same way.
pub const API_DESTINATION: &str = "api-destination:";

/// The name of the connection and API destination of an `http` target: the deployment's
/// prefix (so that they are found by prefix: they cannot be tagged) + `<rule>.<target>`,
/// shortened with a hash past 64 characters.
pub fn http_name(ctx: &Context, rule: &str, target: &str) -> String {
    let prefix = statement_prefix(ctx);
    let full = format!("{prefix}{rule}.{target}");
    if full.len() <= MAX_NAME {
        return full;
    }
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(full.as_bytes());
    let head: String = full.chars().take(MAX_NAME - 9).collect();
    format!("{head}-{}", &hex::encode(hash)[..8])
}

/// `${NAME}` references in `text` replaced from `env`; the names that are not set.
fn resolve(text: &str, env: &Env) -> Result<String, Vec<String>> {
    let env = match env {
        Env::Values(v) => v,
        Env::Names => return Ok(text.to_owned()),
    };
    let mut out = String::new();
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        match env.get(name) {
            Some(v) => out.push_str(v),
            None => missing.push(name.to_owned()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// The connection and API destination of an `http` target of a pattern rule; their name.
#[allow(clippy::too_many_arguments)]
fn http_target(
    rule: &Rule,
    id: &str,
    url: &crate::rules::HttpUrl,
    method: &str,
    headers: &[(String, String)],
    timeout: std::time::Duration,
    ctx: &Context,
    at: &Option<Origin>,
    out: &mut Desired,
) -> Option<String> {
    let who = format!("target `{id}` of rule `{}`", rule.name);
    if url.uri().scheme_str() != Some("https") {
        undeployable(
            out,
            at,
            format!(
                "{who} calls a plain `http://` URL: API destinations call HTTPS endpoints; use \
                 https, or keep this rule on a trigd instance"
            ),
        );
        return None;
    }
    if ctx.events_role_arn.is_none() {
        out.findings.push(Finding {
            severity: Severity::Error,
            origin: at.clone(),
            message: format!(
                "{who} is an `http` target: EventBridge needs an IAM role allowed \
                 `events:InvokeApiDestination` to call it; give it with --events-role ARN"
            ),
        });
    }
    if timeout > std::time::Duration::from_secs(5) {
        note(
            out,
            Severity::Info,
            at,
            format!("{who}: API destinations give every request 5 s, whatever `timeout` says"),
        );
    }
    let name = http_name(ctx, &rule.name, id);
    let mut secrets = Vec::new();
    let mut spec = Map::new();
    spec.insert("Name".into(), json!(name));
    spec.insert(
        "Description".into(),
        json!(format!("trigd deployment {}", ctx.deployment)),
    );
    // Credentials in the URL are sent as Basic authentication, as trigd sends them.
    let parsed = url::Url::parse(url.as_str()).ok();
    let user = parsed
        .as_ref()
        .map(|u| u.username().to_owned())
        .unwrap_or_default();
    let password = parsed
        .as_ref()
        .and_then(|u| u.password().map(str::to_owned));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    if !user.is_empty() || password.is_some() {
        spec.insert("AuthorizationType".into(), json!("BASIC"));
        spec.insert("Username".into(), json!(decode(&user)));
        secrets.push((
            "Password".to_owned(),
            decode(password.as_deref().unwrap_or_default()),
        ));
    } else {
        // A connection must authorise somehow: a header the endpoint can ignore.
        spec.insert("AuthorizationType".into(), json!("API_KEY"));
        spec.insert("ApiKeyName".into(), json!(NO_AUTH_HEADER));
        secrets.push(("ApiKeyValue".to_owned(), "none".to_owned()));
        note(
            out,
            Severity::Info,
            at,
            format!(
                "{who}: its connection sends `{NO_AUTH_HEADER}: none` (AWS has no connection \
                 without authorisation)"
            ),
        );
    }
    let mut secret_headers = Vec::new();
    for (key, value) in headers.iter().filter(|(_, v)| v.contains("${")) {
        match resolve(value, &ctx.env) {
            Ok(resolved) => {
                secret_headers.push(json!(key));
                secrets.push((format!("header:{key}"), resolved));
            }
            Err(missing) => out.findings.push(Finding {
                severity: Severity::Error,
                origin: at.clone(),
                message: format!(
                    "{who}: header `{key}` needs {} from the environment, which is not set \
                     here; deploy copies its value into the connection's secret",
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }
    if !secret_headers.is_empty() {
        spec.insert("SecretHeaders".into(), Value::Array(secret_headers));
    }
    out.secrets.0.insert(name.clone(), secrets);
    out.resources.push(Resource {
        kind: Kind::Connection,
        name: name.clone(),
        spec: Value::Object(spec),
        origin: at.clone(),
    });
    out.resources.push(Resource {
        kind: Kind::ApiDestination,
        name: name.clone(),
        spec: json!({
            "Name": name,
            "Description": format!("trigd deployment {}", ctx.deployment),
            "ConnectionName": name,
            "InvocationEndpoint": url.uri().to_string(),
            "HttpMethod": method,
            "InvocationRateLimitPerSecond": API_DESTINATION_RATE,
        }),
        origin: at.clone(),
    });
    Some(name)
}

/// The header a connection without credentials authorises with.
pub const NO_AUTH_HEADER: &str = "x-trigd-no-auth";
/// Invocations per second of an API destination (AWS's default).
pub const API_DESTINATION_RATE: u32 = 300;

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

fn pattern_rule(
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

/// The statement id of rule `rule`'s permission: `trigd-` + 8 hex digits of the deployment's
/// name (fixed length, so that one deployment's prefix is never another's) + `-` + the rule.
pub fn statement_id(ctx: &Context, rule: &str) -> String {
    format!("{}{rule}", statement_prefix(ctx))
}

/// The prefix of every statement id this deployment writes.
pub fn statement_prefix(ctx: &Context) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(ctx.deployment.as_bytes());
    format!("trigd-{}-", &hex::encode(hash)[..8])
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
fn trigd_only_source(pattern: &Value) -> Option<&'static str> {
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

/// Lambda's longest statement id.
pub const MAX_STATEMENT_ID: usize = 100;

/// `name`, or, when longer than `max`, its head, `-` and 8 hex digits of its SHA-256.
pub fn fit(name: String, max: usize) -> String {
    if name.len() <= max {
        return name;
    }
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(name.as_bytes());
    let head: String = name.chars().take(max - 9).collect();
    format!("{head}-{}", &hex::encode(hash)[..8])
}

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

fn schedule_rule(
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

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The Scheduler target of a schedule rule's target, or why there is none.
fn schedule_target(
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
            // Destinations go on the function deploy makes (see `function`); here only what
            // cannot be one.
            for d in [on_success, on_failure].into_iter().flatten() {
                if let Err(why) = destination_arn(d, ctx) {
                    undeployable(out, at, format!("{who}: {why}"));
                    return None;
                }
            }
            // The Lambda function deploy makes of the local function.
            v.insert("Arn".into(), json!(function_arn(name, ctx)));
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
fn http_hop(
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

/// The statement id of this deployment's statement in queue and topic policies.
pub fn policy_sid(ctx: &Context) -> String {
    statement_prefix(ctx).trim_end_matches('-').to_owned()
}

/// One statement per queue (targets and dead-letter queues) and per topic that the rules send
/// to, listing the ARNs of those rules: one statement per rule would overflow the policy's
/// size limit.
fn policies(out: &mut Desired, ctx: &Context) {
    use std::collections::BTreeMap;
    let mut queues: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut topics: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in out.resources.iter().filter(|r| r.kind == Kind::Rule) {
        let rule_arn = ctx.rule_arn(&r.name);
        for t in r
            .spec
            .get("Targets")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            let arn = t.get("Arn").and_then(Value::as_str).unwrap_or_default();
            if arn.starts_with("arn:aws:sqs:") {
                queues
                    .entry(arn.to_owned())
                    .or_default()
                    .push(rule_arn.clone());
            } else if arn.starts_with("arn:aws:sns:") {
                topics
                    .entry(arn.to_owned())
                    .or_default()
                    .push(rule_arn.clone());
            }
            if let Some(dlq) = t
                .get("DeadLetterConfig")
                .and_then(|d| d.get("Arn"))
                .and_then(Value::as_str)
            {
                queues
                    .entry(dlq.to_owned())
                    .or_default()
                    .push(rule_arn.clone());
            }
        }
    }
    for (kind, action, map) in [
        (Kind::QueuePolicy, "sqs:SendMessage", queues),
        (Kind::TopicPolicy, "sns:Publish", topics),
    ] {
        for (arn, mut rules) in map {
            rules.sort();
            rules.dedup();
            out.resources.push(Resource {
                kind,
                name: arn.clone(),
                spec: policy_spec(&arn, action, &policy_sid(ctx), &rules),
                origin: None,
            });
        }
    }
}

/// This deployment's statement, normalised: the source ARNs sorted.
pub fn policy_spec(arn: &str, action: &str, sid: &str, rules: &[String]) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": action,
        "Resource": arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rules}},
    })
}
