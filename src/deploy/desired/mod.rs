//! The desired state, pure: what a loaded [`RuleSet`] becomes on AWS, as resources in AWS's own
//! field names (normalised, so that they compare equal to what AWS reads back), plus every
//! finding: what cannot be deployed (at `file:line:column`, with the reason and what to do
//! instead), what maps only approximately, and the quotas and ranges AWS would refuse at apply
//! time. No IO, no clock.
//!
//! By kind: `rules` (pattern rules and their Lambda permissions), `schedules` (Scheduler
//! schedules and their inputs, the `http` bus hop), `http` (connections and API
//! destinations), `functions` (Lambda functions, layers, destinations, triggers), `grants`
//! (queue and topic policies); this file holds the context, the findings and `build`.

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

mod functions;
mod grants;
mod http;
mod rules;
mod schedules;

pub use functions::*;
pub use grants::*;
pub use http::*;
pub use rules::*;
pub use schedules::*;

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
    /// none: it names the code directories instead (`template`).
    pub packages: std::collections::BTreeMap<String, super::package::Package>,
    /// Set by `trigd export`: functions carry their code directory (relative to the rules
    /// directory) instead of a package, for `sam deploy` / `aws cloudformation package`.
    pub template: Option<Template>,
}

/// What `trigd export` builds the desired state for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The rules directory, absolute: code directories are written relative to it.
    pub rules_dir: std::path::PathBuf,
    /// SAM (which can hold `api` triggers as `HttpApi` events) rather than plain CloudFormation.
    pub sam: bool,
}

/// An `api` trigger as SAM's `HttpApi` event (only built for a SAM template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub function: String,
    /// `None` with `path` `None`: `$default`.
    pub method: Option<String>,
    pub path: Option<String>,
    /// `1.0` or `2.0`.
    pub payload_format: &'static str,
    pub origin: Option<Origin>,
}

/// `path` relative to `root`, with `/` (`..` where it lies outside); `.` when equal.
pub fn relative_path(path: &std::path::Path, root: &std::path::Path) -> String {
    let p: Vec<_> = path.components().collect();
    let r: Vec<_> = root.components().collect();
    let common = p.iter().zip(&r).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = Vec::new();
    parts.extend(std::iter::repeat_n("..".to_owned(), r.len() - common));
    parts.extend(
        p[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
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
    /// `api` triggers, for a SAM template only (deploy creates no API).
    pub routes: Vec<Route>,
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
        let at = trigger_origin(t);
        if let (crate::rules::FunctionTriggerKind::Api(route), Some(tpl)) = (&t.kind, &ctx.template)
            && tpl.sam
        {
            if out.has_function(&t.function) {
                out.routes.push(api_route(&t.function, route, at));
            }
            continue;
        }
        if matches!(t.kind, crate::rules::FunctionTriggerKind::S3 { .. }) && ctx.template.is_some()
        {
            undeployable(
                &mut out,
                &at,
                format!(
                    "the `s3` trigger of function `{}` is not exported: SAM's S3 event needs the \
                     bucket in the same template, and a bucket's notification configuration is \
                     one document that a template would replace; add the function to the \
                     bucket's notifications by hand (`aws s3api \
                     put-bucket-notification-configuration`, `aws lambda add-permission`)",
                    t.function
                ),
            );
            continue;
        }
        out.findings.push(Finding {
            severity: Severity::Undeployable,
            origin: at,
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

/// An `api` trigger as SAM's `HttpApi` event.
fn api_route(function: &str, route: &crate::rules::ApiRoute, origin: Option<Origin>) -> Route {
    use crate::lambda_events::RouteKey;
    let (method, path) = match &route.route {
        RouteKey::Default => (None, None),
        RouteKey::Route { method, .. } => {
            let text = route.route.to_string();
            let path = text.split_once(' ').map(|(_, p)| p.to_owned());
            (
                Some(method.clone().unwrap_or_else(|| "ANY".to_owned())),
                path,
            )
        }
    };
    Route {
        function: function.to_owned(),
        method,
        path,
        payload_format: match route.payload_format {
            crate::rules::PayloadFormat::V1 => "1.0",
            crate::rules::PayloadFormat::V2 => "2.0",
        },
        origin,
    }
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

/// Where a function trigger is written.
fn trigger_origin(t: &crate::rules::FunctionTrigger) -> Option<Origin> {
    Some(Origin {
        file: t.file.clone(),
        line: t.line,
        column: t.column,
    })
}

impl Desired {
    /// Whether the local function `name` is deployed (one that cannot be is reported as such,
    /// and its triggers are left out with it).
    fn has_function(&self, name: &str) -> bool {
        self.resources
            .iter()
            .any(|r| r.kind == Kind::Function && r.name == name)
    }
}

fn undeployable(out: &mut Desired, at: &Option<Origin>, message: String) {
    note(out, Severity::Undeployable, at, message);
}

/// The ARN a rule's or a schedule's `function` target invokes: the Lambda function deploy
/// makes of the local function. Its destinations go on that function (see
/// `functions::function`); here a destination AWS cannot take is reported, and `None`
/// returned.
fn local_function_target(
    out: &mut Desired,
    at: &Option<Origin>,
    who: &str,
    name: &str,
    destinations: [&Option<Box<crate::rules::Destination>>; 2],
    ctx: &Context,
) -> Option<String> {
    for d in destinations.into_iter().flatten() {
        if let Err(why) = destination_arn(d, ctx) {
            undeployable(out, at, format!("{who}: {why}"));
            return None;
        }
    }
    Some(function_arn(name, ctx))
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
