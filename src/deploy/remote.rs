//! The AWS side of deploy: reading what the deployment owns (and same-named resources it does
//! not), normalised like the desired state; and applying a plan in dependency order: the
//! schedule group, rules (`PutRule`, then `PutTargets` checked entry by entry, then
//! `RemoveTargets` of targets no longer written), schedules (full `CreateSchedule` /
//! `UpdateSchedule`), then deletions (a rule's targets first, always with the bus name).
//!
//! Throttling is retried by the SDK's standard retry policy (with backoff). Nothing without
//! trigd's tags (rules) or outside the deployment's schedule group (schedules) is written.

use std::collections::HashSet;

use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata};
use serde_json::{Map, Value, json};

use super::desired::{Context, DEPLOYMENT_TAG, MANAGED_BY};
use super::plan::{Action, Actual, Existing, Owner, Plan};
use super::{Kind, Resource};

/// The clients deploy uses.
#[derive(Debug, Clone)]
pub struct Clients {
    pub events: aws_sdk_eventbridge::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub sts: aws_sdk_sts::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    /// Write calls made so far (for the report: a second apply must make none).
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Why talking to AWS failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{op} failed: {message}")]
    Call { op: &'static str, message: String },
    #[error("PutTargets on rule `{rule}` failed for {entries}")]
    PartialTargets { rule: String, entries: String },
    /// A change failed: which, written where, and why.
    #[error("{what}")]
    Change {
        what: String,
        source: Box<RemoteError>,
    },
    #[error("no region: set AWS_REGION (or give --region)")]
    NoRegion,
    #[error("cannot build the {what} request: {message}")]
    Build { what: &'static str, message: String },
}

fn call<E>(op: &'static str) -> impl FnOnce(E) -> RemoteError
where
    E: std::error::Error + 'static,
{
    move |e| RemoteError::Call {
        op,
        message: DisplayErrorContext(&e).to_string(),
    }
}

fn build<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> RemoteError {
    move |e| RemoteError::Build {
        what,
        message: e.to_string(),
    }
}

impl Clients {
    /// Clients from the usual chain (credentials, `AWS_REGION` or the profile's region,
    /// `AWS_ENDPOINT_URL`); `region` overrides the chain's.
    pub async fn load(region: Option<&str>) -> Result<(Clients, String), RemoteError> {
        // Throttling and transient failures are retried with exponential backoff; a control
        // plane under a burst of writes throttles more than the default 3 attempts absorb.
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(6));
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_owned()));
        }
        let conf = loader.load().await;
        let region = conf
            .region()
            .map(|r| r.to_string())
            .ok_or(RemoteError::NoRegion)?;
        Ok((
            Clients {
                events: aws_sdk_eventbridge::Client::new(&conf),
                scheduler: aws_sdk_scheduler::Client::new(&conf),
                sts: aws_sdk_sts::Client::new(&conf),
                lambda: aws_sdk_lambda::Client::new(&conf),
                sqs: aws_sdk_sqs::Client::new(&conf),
                sns: aws_sdk_sns::Client::new(&conf),
                writes: Default::default(),
            },
            region,
        ))
    }

    /// The account the credentials belong to (STS `GetCallerIdentity`).
    pub async fn account(&self) -> Result<String, RemoteError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(call("GetCallerIdentity"))?;
        Ok(out.account.unwrap_or_default())
    }

    /// Write calls made through these clients so far.
    pub fn writes(&self) -> usize {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn wrote(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn is_not_found<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code().is_some_and(|c| c.contains("NotFound"))
}

/// Reads the deployment's state: every rule on the bus with its tags (owned ones with their
/// targets; others only when a desired rule has their name), and the schedules of the
/// deployment's group.
pub async fn read(c: &Clients, ctx: &Context, wanted: &[Resource]) -> Result<Actual, RemoteError> {
    let wanted_rules: HashSet<&str> = wanted
        .iter()
        .filter(|r| r.kind == Kind::Rule)
        .map(|r| r.name.as_str())
        .collect();
    let mut actual = Actual::default();
    let mut token: Option<String> = None;
    let mut rules = Vec::new();
    loop {
        let out = c
            .events
            .list_rules()
            .event_bus_name(&ctx.bus)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(call("ListRules"))?;
        rules.extend(out.rules.unwrap_or_default());
        match out.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    actual.rules_on_bus = rules.len();
    for rule in rules {
        let (Some(name), Some(arn)) = (rule.name.clone(), rule.arn.clone()) else {
            continue;
        };
        let tags = c
            .events
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(call("ListTagsForResource"))?
            .tags
            .unwrap_or_default();
        let tag = |k: &str| tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
        let owner = match (tag(MANAGED_BY.0).as_deref(), tag(DEPLOYMENT_TAG)) {
            (Some("trigd"), Some(d)) if d == ctx.deployment => Owner::Us,
            (Some("trigd"), Some(d)) => Owner::OtherDeployment(d),
            _ => Owner::Foreign,
        };
        if owner != Owner::Us && !wanted_rules.contains(name.as_str()) {
            continue;
        }
        // In full for a foreign rule of a wanted name too: `--adopt` diffs it.
        let spec = if !matches!(owner, Owner::OtherDeployment(_)) {
            let targets = list_targets(c, ctx, &name).await?;
            rule_spec(&rule, ctx, &targets)
        } else {
            json!({"Name": name})
        };
        actual.resources.push(Existing {
            resource: Resource {
                kind: Kind::Rule,
                name,
                spec,
                origin: None,
            },
            owner,
        });
    }

    read_layers(c, ctx, &mut actual).await?;
    read_functions(c, ctx, wanted, &mut actual).await?;
    read_mappings(c, &mut actual).await?;
    read_subscriptions(c, &mut actual).await?;
    read_permissions(c, ctx, wanted, &mut actual).await?;
    read_policies(c, ctx, wanted, &mut actual).await?;
    read_http(c, ctx, &mut actual).await?;

    let group = ctx.group();
    match c.scheduler.get_schedule_group().name(&group).send().await {
        Ok(out) => {
            actual.group_exists = true;
            let tags = c
                .scheduler
                .list_tags_for_resource()
                .resource_arn(out.arn.unwrap_or_default())
                .send()
                .await
                .map_err(call("ListTagsForResource"))?
                .tags
                .unwrap_or_default();
            actual.group_owned = tags
                .iter()
                .any(|t| t.key == MANAGED_BY.0 && t.value == MANAGED_BY.1)
                && tags
                    .iter()
                    .any(|t| t.key == DEPLOYMENT_TAG && t.value == ctx.deployment);
        }
        Err(e) if is_not_found(&e) => return Ok(actual),
        Err(e) => return Err(call("GetScheduleGroup")(e)),
    }
    let mut token: Option<String> = None;
    let mut names = Vec::new();
    loop {
        let out = c
            .scheduler
            .list_schedules()
            .group_name(&group)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(call("ListSchedules"))?;
        names.extend(out.schedules.into_iter().filter_map(|s| s.name));
        match out.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    for name in names {
        let s = c
            .scheduler
            .get_schedule()
            .name(&name)
            .group_name(&group)
            .send()
            .await
            .map_err(call("GetSchedule"))?;
        actual.resources.push(Existing {
            resource: Resource {
                kind: Kind::Schedule,
                name,
                spec: schedule_spec(&s, &group),
                origin: None,
            },
            owner: Owner::Us,
        });
    }
    Ok(actual)
}

/// The statements this deployment wrote in the policies of the functions it wants to reach
/// or its rules reach; functions that do not exist are listed as missing.
async fn read_permissions(
    c: &Clients,
    ctx: &Context,
    wanted: &[Resource],
    actual: &mut Actual,
) -> Result<(), RemoteError> {
    let mut functions: Vec<String> = wanted
        .iter()
        .filter(|r| r.kind == Kind::Permission)
        .filter_map(|r| r.spec.get("FunctionName").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    for e in actual.resources.iter().filter(|e| e.owner == Owner::Us) {
        // The deployment's own functions, whose statements may all be stale.
        if e.resource.kind == Kind::Function
            && let Some(arn) = str_at(&e.resource.spec, "FunctionArn")
        {
            functions.push(arn.to_owned());
        }
        for t in e
            .resource
            .spec
            .get("Targets")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            if let Some(arn) = t.get("Arn").and_then(Value::as_str)
                && arn.starts_with("arn:aws:lambda:")
            {
                functions.push(arn.to_owned());
            }
        }
    }
    functions.sort();
    functions.dedup();
    let prefix = super::desired::statement_prefix(ctx);
    for function in functions {
        match c
            .lambda
            .get_function()
            .function_name(&function)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {
                actual.missing.push(function);
                continue;
            }
            Err(e) => return Err(call("GetFunction")(e)),
        }
        let policy = match c.lambda.get_policy().function_name(&function).send().await {
            Ok(out) => out.policy.unwrap_or_default(),
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(call("GetPolicy")(e)),
        };
        let policy: Value = serde_json::from_str(&policy).unwrap_or_default();
        for st in policy
            .get("Statement")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(sid) = st.get("Sid").and_then(Value::as_str) else {
                continue;
            };
            if !sid.starts_with(&prefix) {
                continue;
            }
            let principal = match st.get("Principal") {
                Some(Value::Object(p)) => p.get("Service").cloned().unwrap_or_default(),
                Some(other) => other.clone(),
                None => Value::Null,
            };
            let source_arn = st
                .get("Condition")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.values())
                .find_map(|cond| {
                    cond.as_object()?
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("AWS:SourceArn"))
                        .map(|(_, v)| v.clone())
                })
                .unwrap_or_default();
            actual.resources.push(Existing {
                resource: Resource {
                    kind: Kind::Permission,
                    name: format!("{sid}@{function}"),
                    spec: json!({
                        "FunctionName": function,
                        "StatementId": sid,
                        "Action": st.get("Action").cloned().unwrap_or_default(),
                        "Principal": principal,
                        "SourceArn": source_arn,
                    }),
                    origin: None,
                },
                owner: Owner::Us,
            });
        }
    }
    Ok(())
}

/// The queues and topics whose policies may hold this deployment's statement: those the rules
/// want, and those the deployment's rules on AWS send to (targets and dead-letter queues).
async fn read_policies(
    c: &Clients,
    ctx: &Context,
    wanted: &[Resource],
    actual: &mut Actual,
) -> Result<(), RemoteError> {
    let mut arns: Vec<String> = wanted
        .iter()
        .filter(|r| matches!(r.kind, Kind::QueuePolicy | Kind::TopicPolicy))
        .map(|r| r.name.clone())
        .collect();
    for e in actual.resources.iter().filter(|e| e.owner == Owner::Us) {
        for t in e
            .resource
            .spec
            .get("Targets")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            let dlq = t.get("DeadLetterConfig").and_then(|d| d.get("Arn"));
            for arn in [t.get("Arn"), dlq]
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if arn.starts_with("arn:aws:sqs:") || arn.starts_with("arn:aws:sns:") {
                    arns.push(arn.to_owned());
                }
            }
        }
    }
    arns.sort();
    arns.dedup();
    let sid = super::desired::policy_sid(ctx);
    for arn in arns {
        let (kind, action) = if arn.starts_with("arn:aws:sqs:") {
            (Kind::QueuePolicy, "sqs:SendMessage")
        } else {
            (Kind::TopicPolicy, "sns:Publish")
        };
        let Some(policy) = get_policy_document(c, kind, &arn).await? else {
            actual.missing.push(arn);
            continue;
        };
        let Some(st) = statements(&policy)
            .iter()
            .find(|st| st.get("Sid").and_then(Value::as_str) == Some(sid.as_str()))
            .cloned()
        else {
            continue;
        };
        let mut sources: Vec<String> = match st
            .get("Condition")
            .and_then(|c| c.get("ArnEquals"))
            .and_then(|c| c.get("aws:SourceArn"))
        {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        sources.sort();
        let mut spec = super::desired::policy_spec(&arn, action, &sid, &sources);
        // What AWS holds, where it differs from ours, shows as a change.
        for key in ["Effect", "Principal", "Action", "Resource"] {
            let held = match st.get(key) {
                Some(Value::Array(a)) if a.len() == 1 => a[0].clone(),
                Some(v) => v.clone(),
                None => Value::Null,
            };
            spec[key] = held;
        }
        actual.resources.push(Existing {
            resource: Resource {
                kind,
                name: arn,
                spec,
                origin: None,
            },
            owner: Owner::Us,
        });
    }
    Ok(())
}

/// Lambda functions tagged for this deployment (with their full settings), and functions of a
/// wanted name that are not (conflicts).
async fn read_functions(
    c: &Clients,
    ctx: &Context,
    wanted: &[Resource],
    actual: &mut Actual,
) -> Result<(), RemoteError> {
    let wanted: HashSet<&str> = wanted
        .iter()
        .filter(|r| r.kind == Kind::Function)
        .map(|r| r.name.as_str())
        .collect();
    let mut configs = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = c
            .lambda
            .list_functions()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(call("ListFunctions"))?;
        configs.extend(out.functions.unwrap_or_default());
        match out.next_marker {
            Some(m) if !m.is_empty() => marker = Some(m),
            _ => break,
        }
    }
    for f in configs {
        let (Some(name), Some(arn)) = (f.function_name.clone(), f.function_arn.clone()) else {
            continue;
        };
        let tags = c
            .lambda
            .list_tags()
            .resource(&arn)
            .send()
            .await
            .map_err(call("ListTags"))?
            .tags
            .unwrap_or_default();
        let owner = match (
            tags.get(MANAGED_BY.0).map(String::as_str),
            tags.get(DEPLOYMENT_TAG),
        ) {
            (Some("trigd"), Some(d)) if *d == ctx.deployment => Owner::Us,
            (Some("trigd"), Some(d)) => Owner::OtherDeployment(d.clone()),
            _ => Owner::Foreign,
        };
        if owner != Owner::Us && !wanted.contains(name.as_str()) {
            continue;
        }
        let spec = match owner {
            Owner::Us | Owner::Foreign => function_spec(c, &f).await?,
            Owner::OtherDeployment(_) => json!({ "FunctionName": name }),
        };
        actual.resources.push(Existing {
            resource: Resource {
                kind: Kind::Function,
                name,
                spec,
                origin: None,
            },
            owner,
        });
    }
    Ok(())
}

/// The deployment's layers (by their names' prefix), each as its latest version.
async fn read_layers(c: &Clients, ctx: &Context, actual: &mut Actual) -> Result<(), RemoteError> {
    let prefix = super::desired::statement_prefix(ctx);
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = c
            .lambda
            .list_layers()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(call("ListLayers"))?;
        names.extend(
            page.layers
                .unwrap_or_default()
                .into_iter()
                .filter_map(|l| l.layer_name)
                .filter(|n| n.starts_with(&prefix)),
        );
        match page.next_marker {
            Some(m) if !m.is_empty() => marker = Some(m),
            _ => break,
        }
    }
    for name in names {
        let Some(latest) = layer_versions(c, &name)
            .await?
            .into_iter()
            .max_by_key(|v| v.version)
        else {
            continue;
        };
        let sha = layer_sha(c, latest.layer_version_arn.as_deref().unwrap_or_default()).await?;
        actual.resources.push(Existing {
            resource: Resource {
                kind: Kind::Layer,
                name: name.clone(),
                spec: json!({"LayerName": name, "CodeSha256": sha}),
                origin: None,
            },
            owner: Owner::Us,
        });
    }
    Ok(())
}

async fn layer_versions(
    c: &Clients,
    name: &str,
) -> Result<Vec<aws_sdk_lambda::types::LayerVersionsListItem>, RemoteError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = c
            .lambda
            .list_layer_versions()
            .layer_name(name)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(call("ListLayerVersions"))?;
        out.extend(page.layer_versions.unwrap_or_default());
        match page.next_marker {
            Some(m) if !m.is_empty() => marker = Some(m),
            _ => break,
        }
    }
    Ok(out)
}

/// The code hash of a layer version, by its ARN (`arn:aws:lambda:R:A:layer:NAME:VERSION`).
async fn layer_sha(c: &Clients, version_arn: &str) -> Result<String, RemoteError> {
    let mut parts = version_arn.rsplit(':');
    let version: i64 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    let out = c
        .lambda
        .get_layer_version()
        .layer_name(name)
        .version_number(version)
        .send()
        .await
        .map_err(call("GetLayerVersion"))?;
    Ok(out.content.and_then(|c| c.code_sha256).unwrap_or_default())
}

/// The version ARNs for a function's `layer:NAME@SHA` references: the newest version of each
/// layer with that code.
async fn layer_arns(c: &Clients, spec: &Value) -> Result<Vec<String>, RemoteError> {
    let mut out = Vec::new();
    for r in spec
        .get("Layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let Some((name, sha)) = r
            .strip_prefix(super::desired::LAYER)
            .and_then(|r| r.split_once('@'))
        else {
            continue;
        };
        let mut versions = layer_versions(c, name).await?;
        versions.sort_by_key(|v| std::cmp::Reverse(v.version));
        for v in versions {
            let arn = v.layer_version_arn.unwrap_or_default();
            if layer_sha(c, &arn).await? == sha {
                out.push(arn);
                break;
            }
        }
    }
    Ok(out)
}

/// The SNS subscriptions of the deployment's functions.
async fn read_subscriptions(c: &Clients, actual: &mut Actual) -> Result<(), RemoteError> {
    let functions: Vec<(String, String)> = actual
        .resources
        .iter()
        .filter(|e| e.owner == Owner::Us && e.resource.kind == Kind::Function)
        .map(|e| {
            (
                e.resource.name.clone(),
                str_at(&e.resource.spec, "FunctionArn")
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    if functions.is_empty() {
        return Ok(());
    }
    for sub in list_subscriptions(c).await? {
        let (Some(endpoint), Some(topic)) = (sub.endpoint.as_deref(), sub.topic_arn.as_deref())
        else {
            continue;
        };
        let Some((name, _)) = functions.iter().find(|(_, arn)| arn == endpoint) else {
            continue;
        };
        actual.resources.push(Existing {
            resource: Resource {
                kind: Kind::Subscription,
                name: format!("{name}@{topic}"),
                spec: json!({
                    "TopicArn": topic,
                    "Protocol": sub.protocol.as_deref().unwrap_or_default(),
                    "Endpoint": endpoint,
                }),
                origin: None,
            },
            owner: Owner::Us,
        });
    }
    Ok(())
}

async fn list_subscriptions(
    c: &Clients,
) -> Result<Vec<aws_sdk_sns::types::Subscription>, RemoteError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .sns
            .list_subscriptions()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(call("ListSubscriptions"))?;
        out.extend(page.subscriptions.unwrap_or_default());
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(out)
}

/// The event-source mappings of the deployment's functions.
async fn read_mappings(c: &Clients, actual: &mut Actual) -> Result<(), RemoteError> {
    let functions: Vec<String> = actual
        .resources
        .iter()
        .filter(|e| e.owner == Owner::Us && e.resource.kind == Kind::Function)
        .map(|e| e.resource.name.clone())
        .collect();
    for function in functions {
        for m in list_mappings(c, &function, None).await? {
            let arn = m.event_source_arn.clone().unwrap_or_default();
            let mut spec = Map::new();
            spec.insert("FunctionName".into(), json!(function));
            spec.insert("EventSourceArn".into(), json!(arn));
            spec.insert("BatchSize".into(), json!(m.batch_size.unwrap_or(10)));
            spec.insert(
                "MaximumBatchingWindowInSeconds".into(),
                json!(m.maximum_batching_window_in_seconds.unwrap_or(0)),
            );
            let types: Vec<Value> = m
                .function_response_types
                .iter()
                .flatten()
                .map(|t| json!(t.as_str()))
                .collect();
            if !types.is_empty() {
                spec.insert("FunctionResponseTypes".into(), Value::Array(types));
            }
            let filters: Vec<Value> = m
                .filter_criteria
                .as_ref()
                .and_then(|f| f.filters.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|f| f.pattern.as_deref())
                .map(json_or_text)
                .collect();
            if !filters.is_empty() {
                spec.insert("Filters".into(), Value::Array(filters));
            }
            if let Some(n) = m
                .scaling_config
                .as_ref()
                .and_then(|s| s.maximum_concurrency)
            {
                spec.insert("MaximumConcurrency".into(), json!(n));
            }
            actual.resources.push(Existing {
                resource: Resource {
                    kind: Kind::EventSourceMapping,
                    name: format!("{function}@{arn}"),
                    spec: Value::Object(spec),
                    origin: None,
                },
                owner: Owner::Us,
            });
        }
    }
    Ok(())
}

/// The event-source mappings of `function` (on `source`, if given).
async fn list_mappings(
    c: &Clients,
    function: &str,
    source: Option<&str>,
) -> Result<Vec<aws_sdk_lambda::types::EventSourceMappingConfiguration>, RemoteError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = c
            .lambda
            .list_event_source_mappings()
            .function_name(function)
            .set_event_source_arn(source.map(str::to_owned))
            .set_marker(marker.take())
            .send()
            .await
            .map_err(call("ListEventSourceMappings"))?;
        out.extend(page.event_source_mappings.unwrap_or_default());
        match page.next_marker {
            Some(m) if !m.is_empty() => marker = Some(m),
            _ => break,
        }
    }
    Ok(out)
}

/// Creates or updates an event-source mapping (all its settings).
async fn put_mapping(c: &Clients, r: &Resource, create: bool) -> Result<(), RemoteError> {
    use aws_sdk_lambda::types::{Filter, FilterCriteria, FunctionResponseType, ScalingConfig};
    let s = &r.spec;
    let function = str_at(s, "FunctionName").unwrap_or_default();
    let source = str_at(s, "EventSourceArn").unwrap_or_default();
    let filters: Vec<Filter> = s
        .get("Filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| Filter::builder().pattern(as_text(p)).build())
        .collect();
    let criteria = FilterCriteria::builder().set_filters(Some(filters)).build();
    let types: Vec<FunctionResponseType> = s
        .get("FunctionResponseTypes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(FunctionResponseType::from)
        .collect();
    let scaling = int_at(s, &["MaximumConcurrency"])
        .map(|n| ScalingConfig::builder().maximum_concurrency(n).build());
    if create {
        c.wrote();
        c.lambda
            .create_event_source_mapping()
            .function_name(function)
            .event_source_arn(source)
            .set_batch_size(int_at(s, &["BatchSize"]))
            .set_maximum_batching_window_in_seconds(int_at(s, &["MaximumBatchingWindowInSeconds"]))
            .set_function_response_types(Some(types))
            .filter_criteria(criteria)
            .set_scaling_config(scaling)
            .send()
            .await
            .map_err(call("CreateEventSourceMapping"))?;
        return Ok(());
    }
    for m in list_mappings(c, function, Some(source)).await? {
        let Some(uuid) = m.uuid else { continue };
        c.wrote();
        c.lambda
            .update_event_source_mapping()
            .uuid(uuid)
            .set_batch_size(int_at(s, &["BatchSize"]))
            .set_maximum_batching_window_in_seconds(int_at(s, &["MaximumBatchingWindowInSeconds"]))
            .set_function_response_types(Some(types.clone()))
            .filter_criteria(criteria.clone())
            .set_scaling_config(scaling.clone())
            .send()
            .await
            .map_err(call("UpdateEventSourceMapping"))?;
    }
    Ok(())
}

/// A function read from Lambda, in the desired state's shape.
async fn function_spec(
    c: &Clients,
    f: &aws_sdk_lambda::types::FunctionConfiguration,
) -> Result<Value, RemoteError> {
    let name = f.function_name.clone().unwrap_or_default();
    let mut spec = Map::new();
    spec.insert("FunctionName".into(), json!(name));
    spec.insert(
        "FunctionArn".into(),
        json!(f.function_arn.as_deref().unwrap_or_default()),
    );
    if let Some(r) = &f.runtime {
        spec.insert("Runtime".into(), json!(r.as_str()));
    }
    spec.insert(
        "Handler".into(),
        json!(f.handler.as_deref().unwrap_or_default()),
    );
    spec.insert("Timeout".into(), json!(f.timeout.unwrap_or(3)));
    spec.insert("MemorySize".into(), json!(f.memory_size.unwrap_or(128)));
    spec.insert("Role".into(), json!(f.role.as_deref().unwrap_or_default()));
    spec.insert(
        "CodeSha256".into(),
        json!(f.code_sha256.as_deref().unwrap_or_default()),
    );
    if let Some(d) = nonempty(f.description.as_deref()) {
        spec.insert("Description".into(), json!(d));
    }
    if let Some(vars) = f
        .environment
        .as_ref()
        .and_then(|e| e.variables.as_ref())
        .filter(|v| !v.is_empty())
    {
        let mut sorted: Vec<_> = vars.iter().collect();
        sorted.sort();
        spec.insert(
            "Environment".into(),
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect(),
            ),
        );
    }
    let mut layers = Vec::new();
    for l in f.layers.iter().flatten() {
        let arn = l.arn.as_deref().unwrap_or_default();
        // `arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION`.
        let name = arn.rsplit(':').nth(1).unwrap_or_default();
        let sha = layer_sha(c, arn).await?;
        layers.push(json!(format!("{}{name}@{sha}", super::desired::LAYER)));
    }
    if !layers.is_empty() {
        spec.insert("Layers".into(), Value::Array(layers));
    }
    let reserved = c
        .lambda
        .get_function_concurrency()
        .function_name(&name)
        .send()
        .await
        .map_err(call("GetFunctionConcurrency"))?
        .reserved_concurrent_executions;
    if let Some(n) = reserved {
        spec.insert("ReservedConcurrentExecutions".into(), json!(n));
    }
    match c
        .lambda
        .get_function_event_invoke_config()
        .function_name(&name)
        .send()
        .await
    {
        Ok(e) => {
            let mut config = Map::new();
            config.insert(
                "MaximumRetryAttempts".into(),
                json!(e.maximum_retry_attempts.unwrap_or(2)),
            );
            config.insert(
                "MaximumEventAgeInSeconds".into(),
                json!(e.maximum_event_age_in_seconds.unwrap_or(21600)),
            );
            let d = e.destination_config.as_ref();
            if let Some(arn) = d
                .and_then(|d| d.on_success.as_ref())
                .and_then(|o| o.destination.as_deref())
            {
                config.insert("OnSuccess".into(), json!(arn));
            }
            if let Some(arn) = d
                .and_then(|d| d.on_failure.as_ref())
                .and_then(|o| o.destination.as_deref())
            {
                config.insert("OnFailure".into(), json!(arn));
            }
            spec.insert("EventInvokeConfig".into(), Value::Object(config));
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(call("GetFunctionEventInvokeConfig")(e)),
    }
    Ok(Value::Object(spec))
}

fn environment(spec: &Value) -> aws_sdk_lambda::types::Environment {
    let vars: std::collections::HashMap<String, String> = spec
        .get("Environment")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    aws_sdk_lambda::types::Environment::builder()
        .set_variables(Some(vars))
        .build()
}

/// Waits until a function takes the next change (Lambda refuses one while an update is in
/// progress), for at most a minute.
async fn wait_ready(c: &Clients, name: &str) -> Result<(), RemoteError> {
    use aws_sdk_lambda::types::{LastUpdateStatus, State};
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let f = c
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(call("GetFunctionConfiguration"))?;
        let busy = f.state == Some(State::Pending)
            || f.last_update_status == Some(LastUpdateStatus::InProgress);
        if !busy || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Creates or updates a function: code, settings, reserved concurrency, retry settings, each
/// only when it changed.
async fn put_function(
    c: &Clients,
    ctx: &Context,
    r: &Resource,
    create: bool,
    changed: &[&str],
) -> Result<(), RemoteError> {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{FunctionCode, Runtime};
    let s = &r.spec;
    let zip = ctx
        .packages
        .get(&r.name)
        .map(|p| p.zip.clone())
        .unwrap_or_default();
    let touched = |field: &str| {
        create
            || changed
                .iter()
                .any(|p| *p == field || p.starts_with(&format!("{field}.")))
    };
    let layers = layer_arns(c, s).await?;
    if create {
        let mut req = c
            .lambda
            .create_function()
            .set_layers((!layers.is_empty()).then(|| layers.clone()))
            .function_name(&r.name)
            .runtime(Runtime::from(str_at(s, "Runtime").unwrap_or_default()))
            .role(str_at(s, "Role").unwrap_or_default())
            .handler(str_at(s, "Handler").unwrap_or_default())
            .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
            .set_timeout(int_at(s, &["Timeout"]))
            .set_memory_size(int_at(s, &["MemorySize"]))
            .description(str_at(s, "Description").unwrap_or_default())
            .environment(environment(s));
        for (k, v) in [
            (MANAGED_BY.0, MANAGED_BY.1),
            (DEPLOYMENT_TAG, ctx.deployment.as_str()),
        ] {
            req = req.tags(k, v);
        }
        c.wrote();
        req.send().await.map_err(call("CreateFunction"))?;
        wait_ready(c, &r.name).await?;
    } else {
        if touched("CodeSha256") {
            c.wrote();
            c.lambda
                .update_function_code()
                .function_name(&r.name)
                .zip_file(Blob::new(zip))
                .send()
                .await
                .map_err(call("UpdateFunctionCode"))?;
            wait_ready(c, &r.name).await?;
        }
        let settings = [
            "Runtime",
            "Handler",
            "Timeout",
            "MemorySize",
            "Role",
            "Description",
            "Environment",
            "Layers",
        ];
        if settings.iter().any(|f| touched(f)) {
            c.wrote();
            c.lambda
                .update_function_configuration()
                .set_layers(Some(layers.clone()))
                .function_name(&r.name)
                .runtime(Runtime::from(str_at(s, "Runtime").unwrap_or_default()))
                .role(str_at(s, "Role").unwrap_or_default())
                .handler(str_at(s, "Handler").unwrap_or_default())
                .set_timeout(int_at(s, &["Timeout"]))
                .set_memory_size(int_at(s, &["MemorySize"]))
                .description(str_at(s, "Description").unwrap_or_default())
                .environment(environment(s))
                .send()
                .await
                .map_err(call("UpdateFunctionConfiguration"))?;
            wait_ready(c, &r.name).await?;
        }
    }
    let reserved = int_at(s, &["ReservedConcurrentExecutions"]);
    // A new function has no reservation to remove.
    if touched("ReservedConcurrentExecutions") && !(create && reserved.is_none()) {
        c.wrote();
        match reserved {
            Some(n) => {
                c.lambda
                    .put_function_concurrency()
                    .function_name(&r.name)
                    .reserved_concurrent_executions(n)
                    .send()
                    .await
                    .map_err(call("PutFunctionConcurrency"))?;
            }
            None => {
                c.lambda
                    .delete_function_concurrency()
                    .function_name(&r.name)
                    .send()
                    .await
                    .map_err(call("DeleteFunctionConcurrency"))?;
            }
        }
    }
    if touched("EventInvokeConfig") {
        if !create {
            // Replaced rather than updated: a second put is appended by some emulators.
            c.wrote();
            match c
                .lambda
                .delete_function_event_invoke_config()
                .function_name(&r.name)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(call("DeleteFunctionEventInvokeConfig")(e)),
            }
        }
        if let Some(config) = s.get("EventInvokeConfig") {
            use aws_sdk_lambda::types::{DestinationConfig, OnFailure, OnSuccess};
            let destinations = DestinationConfig::builder()
                .set_on_success(
                    str_at(config, "OnSuccess")
                        .map(|a| OnSuccess::builder().destination(a).build()),
                )
                .set_on_failure(
                    str_at(config, "OnFailure")
                        .map(|a| OnFailure::builder().destination(a).build()),
                )
                .build();
            c.wrote();
            c.lambda
                .put_function_event_invoke_config()
                .function_name(&r.name)
                .destination_config(destinations)
                .set_maximum_retry_attempts(int_at(
                    s,
                    &["EventInvokeConfig", "MaximumRetryAttempts"],
                ))
                .set_maximum_event_age_in_seconds(int_at(
                    s,
                    &["EventInvokeConfig", "MaximumEventAgeInSeconds"],
                ))
                .send()
                .await
                .map_err(call("PutFunctionEventInvokeConfig"))?;
        }
    }
    Ok(())
}

/// The deployment's connections and API destinations, found by their names' prefix.
async fn read_http(c: &Clients, ctx: &Context, actual: &mut Actual) -> Result<(), RemoteError> {
    let prefix = super::desired::statement_prefix(ctx);
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = c
            .events
            .list_connections()
            .name_prefix(&prefix)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(call("ListConnections"))?;
        names.extend(
            out.connections
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.name)
                // moto takes the prefix as a pattern: checked again.
                .filter(|n| n.starts_with(&prefix)),
        );
        match out.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    for name in names {
        let d = c
            .events
            .describe_connection()
            .name(&name)
            .send()
            .await
            .map_err(call("DescribeConnection"))?;
        let mut spec = Map::new();
        spec.insert("Name".into(), json!(name));
        if let Some(desc) = nonempty(d.description.as_deref()) {
            spec.insert("Description".into(), json!(desc));
        }
        if let Some(t) = &d.authorization_type {
            spec.insert("AuthorizationType".into(), json!(t.as_str()));
        }
        // Only what is not secret: AWS does not give the secrets back.
        let auth = d.auth_parameters.as_ref();
        if let Some(u) = auth
            .and_then(|a| a.basic_auth_parameters.as_ref())
            .and_then(|b| b.username.as_deref())
        {
            spec.insert("Username".into(), json!(u));
        }
        if let Some(k) = auth
            .and_then(|a| a.api_key_auth_parameters.as_ref())
            .and_then(|k| k.api_key_name.as_deref())
        {
            spec.insert("ApiKeyName".into(), json!(k));
        }
        let secret_headers: Vec<Value> = auth
            .and_then(|a| a.invocation_http_parameters.as_ref())
            .and_then(|h| h.header_parameters.as_ref())
            .into_iter()
            .flatten()
            .filter(|h| h.is_value_secret)
            .filter_map(|h| h.key.clone())
            .map(Value::String)
            .collect();
        if !secret_headers.is_empty() {
            spec.insert("SecretHeaders".into(), Value::Array(secret_headers));
        }
        actual.resources.push(Existing {
            resource: Resource {
                kind: Kind::Connection,
                name,
                spec: Value::Object(spec),
                origin: None,
            },
            owner: Owner::Us,
        });
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = c
            .events
            .list_api_destinations()
            .name_prefix(&prefix)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(call("ListApiDestinations"))?;
        names.extend(
            out.api_destinations
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| d.name)
                .filter(|n| n.starts_with(&prefix)),
        );
        match out.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    for name in names {
        let d = c
            .events
            .describe_api_destination()
            .name(&name)
            .send()
            .await
            .map_err(call("DescribeApiDestination"))?;
        let connection = d
            .connection_arn
            .as_deref()
            .and_then(|a| a.split_once(":connection/"))
            .and_then(|(_, rest)| rest.split('/').next())
            .unwrap_or_default()
            .to_owned();
        let mut spec = Map::new();
        spec.insert("Name".into(), json!(name));
        if let Some(desc) = nonempty(d.description.as_deref()) {
            spec.insert("Description".into(), json!(desc));
        }
        spec.insert("ConnectionName".into(), json!(connection));
        spec.insert(
            "InvocationEndpoint".into(),
            json!(d.invocation_endpoint.as_deref().unwrap_or_default()),
        );
        spec.insert(
            "HttpMethod".into(),
            json!(
                d.http_method
                    .as_ref()
                    .map(|m| m.as_str())
                    .unwrap_or_default()
            ),
        );
        spec.insert(
            "InvocationRateLimitPerSecond".into(),
            json!(
                d.invocation_rate_limit_per_second
                    .unwrap_or(super::desired::API_DESTINATION_RATE as i32)
            ),
        );
        actual.resources.push(Existing {
            resource: Resource {
                kind: Kind::ApiDestination,
                name,
                spec: Value::Object(spec),
                origin: None,
            },
            owner: Owner::Us,
        });
    }
    Ok(())
}

/// Creates or updates a connection with its secrets.
async fn put_connection(
    c: &Clients,
    r: &Resource,
    secrets: &[(String, String)],
    create: bool,
) -> Result<(), RemoteError> {
    use aws_sdk_eventbridge::types as t;
    let s = &r.spec;
    let secret = |k: &str| {
        secrets
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let headers: Vec<t::ConnectionHeaderParameter> = secrets
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("header:")?;
            Some(
                t::ConnectionHeaderParameter::builder()
                    .key(key)
                    .value(v)
                    .is_value_secret(true)
                    .build(),
            )
        })
        .collect();
    let http = (!headers.is_empty()).then(|| {
        t::ConnectionHttpParameters::builder()
            .set_header_parameters(Some(headers))
            .build()
    });
    let basic = str_at(s, "AuthorizationType") == Some("BASIC");
    let auth_type = if basic {
        t::ConnectionAuthorizationType::Basic
    } else {
        t::ConnectionAuthorizationType::ApiKey
    };
    let username = str_at(s, "Username").unwrap_or_default();
    let key_name = str_at(s, "ApiKeyName").unwrap_or_default();
    c.wrote();
    if create {
        let mut auth = t::CreateConnectionAuthRequestParameters::builder()
            .set_invocation_http_parameters(http);
        auth = if basic {
            auth.basic_auth_parameters(
                t::CreateConnectionBasicAuthRequestParameters::builder()
                    .username(username)
                    .password(secret("Password"))
                    .build()
                    .map_err(build("BasicAuthParameters"))?,
            )
        } else {
            auth.api_key_auth_parameters(
                t::CreateConnectionApiKeyAuthRequestParameters::builder()
                    .api_key_name(key_name)
                    .api_key_value(secret("ApiKeyValue"))
                    .build()
                    .map_err(build("ApiKeyAuthParameters"))?,
            )
        };
        c.events
            .create_connection()
            .name(&r.name)
            .description(str_at(s, "Description").unwrap_or_default())
            .authorization_type(auth_type)
            .auth_parameters(auth.build())
            .send()
            .await
            .map_err(call("CreateConnection"))?;
    } else {
        let mut auth = t::UpdateConnectionAuthRequestParameters::builder()
            .set_invocation_http_parameters(http);
        auth = if basic {
            auth.basic_auth_parameters(
                t::UpdateConnectionBasicAuthRequestParameters::builder()
                    .username(username)
                    .password(secret("Password"))
                    .build(),
            )
        } else {
            auth.api_key_auth_parameters(
                t::UpdateConnectionApiKeyAuthRequestParameters::builder()
                    .api_key_name(key_name)
                    .api_key_value(secret("ApiKeyValue"))
                    .build(),
            )
        };
        c.events
            .update_connection()
            .name(&r.name)
            .description(str_at(s, "Description").unwrap_or_default())
            .authorization_type(auth_type)
            .auth_parameters(auth.build())
            .send()
            .await
            .map_err(call("UpdateConnection"))?;
    }
    Ok(())
}

/// Creates or updates an API destination, on its connection.
async fn put_api_destination(c: &Clients, r: &Resource, create: bool) -> Result<(), RemoteError> {
    use aws_sdk_eventbridge::types::ApiDestinationHttpMethod;
    let s = &r.spec;
    let connection = c
        .events
        .describe_connection()
        .name(str_at(s, "ConnectionName").unwrap_or_default())
        .send()
        .await
        .map_err(call("DescribeConnection"))?
        .connection_arn
        .unwrap_or_default();
    let method = ApiDestinationHttpMethod::from(str_at(s, "HttpMethod").unwrap_or("POST"));
    let rate = int_at(s, &["InvocationRateLimitPerSecond"]);
    let endpoint = str_at(s, "InvocationEndpoint").unwrap_or_default();
    let description = str_at(s, "Description").unwrap_or_default();
    c.wrote();
    if create {
        c.events
            .create_api_destination()
            .name(&r.name)
            .description(description)
            .connection_arn(connection)
            .invocation_endpoint(endpoint)
            .http_method(method)
            .set_invocation_rate_limit_per_second(rate)
            .send()
            .await
            .map_err(call("CreateApiDestination"))?;
    } else {
        c.events
            .update_api_destination()
            .name(&r.name)
            .description(description)
            .connection_arn(connection)
            .invocation_endpoint(endpoint)
            .http_method(method)
            .set_invocation_rate_limit_per_second(rate)
            .send()
            .await
            .map_err(call("UpdateApiDestination"))?;
    }
    Ok(())
}

/// The statements of a policy document.
fn statements(policy: &Value) -> Vec<Value> {
    match policy.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` → (ACCOUNT, NAME).
fn queue_parts(arn: &str) -> (&str, &str) {
    let mut parts = arn.rsplit(':');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    (account, name)
}

async fn queue_url(c: &Clients, arn: &str) -> Result<Option<String>, RemoteError> {
    let (account, name) = queue_parts(arn);
    match c
        .sqs
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
    {
        Ok(out) => Ok(out.queue_url),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(call("GetQueueUrl")(e)),
    }
}

fn is_missing<E: ProvideErrorMetadata>(e: &E) -> bool {
    is_not_found(e) || e.code().is_some_and(|c| c.contains("NonExistent"))
}

/// A queue's or topic's policy document (empty when it has none); `None` when the queue or
/// topic does not exist.
async fn get_policy_document(
    c: &Clients,
    kind: Kind,
    arn: &str,
) -> Result<Option<Value>, RemoteError> {
    let text = if kind == Kind::QueuePolicy {
        let Some(url) = queue_url(c, arn).await? else {
            return Ok(None);
        };
        let out = c
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
            .send()
            .await
            .map_err(call("GetQueueAttributes"))?;
        out.attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::Policy))
            .unwrap_or_default()
    } else {
        match c.sns.get_topic_attributes().topic_arn(arn).send().await {
            Ok(out) => out
                .attributes
                .and_then(|mut a| a.remove("Policy"))
                .unwrap_or_default(),
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(call("GetTopicAttributes")(e)),
        }
    };
    Ok(Some(serde_json::from_str(&text).unwrap_or_else(
        |_| json!({"Version": "2012-10-17", "Statement": []}),
    )))
}

/// Read, modify, write: this deployment's statement in a queue's or topic's policy replaced by
/// `statement` (or removed), every other statement kept.
async fn write_policy(
    c: &Clients,
    ctx: &Context,
    kind: Kind,
    arn: &str,
    statement: Option<&Value>,
) -> Result<(), RemoteError> {
    let sid = super::desired::policy_sid(ctx);
    let Some(mut policy) = get_policy_document(c, kind, arn).await? else {
        return Ok(()); // Gone: nothing to grant or revoke.
    };
    let mut kept: Vec<Value> = statements(&policy)
        .into_iter()
        .filter(|st| st.get("Sid").and_then(Value::as_str) != Some(sid.as_str()))
        .collect();
    kept.extend(statement.cloned());
    if !policy.is_object() {
        policy = json!({});
    }
    policy["Version"] = json!("2012-10-17");
    policy["Statement"] = Value::Array(kept);
    let text = crate::event::compact(&policy);
    c.wrote();
    if kind == Kind::QueuePolicy {
        let Some(url) = queue_url(c, arn).await? else {
            return Ok(());
        };
        c.sqs
            .set_queue_attributes()
            .queue_url(url)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, text)
            .send()
            .await
            .map_err(call("SetQueueAttributes"))?;
    } else {
        c.sns
            .set_topic_attributes()
            .topic_arn(arn)
            .attribute_name("Policy")
            .attribute_value(text)
            .send()
            .await
            .map_err(call("SetTopicAttributes"))?;
    }
    Ok(())
}

/// Removes the subscriptions of an endpoint to a topic.
async fn unsubscribe(c: &Clients, r: &Resource) -> Result<(), RemoteError> {
    let topic = str_at(&r.spec, "TopicArn").unwrap_or_default();
    let endpoint = str_at(&r.spec, "Endpoint").unwrap_or_default();
    for sub in list_subscriptions(c).await? {
        if sub.topic_arn.as_deref() != Some(topic) || sub.endpoint.as_deref() != Some(endpoint) {
            continue;
        }
        let Some(arn) = sub.subscription_arn else {
            continue;
        };
        c.wrote();
        c.sns
            .unsubscribe()
            .subscription_arn(arn)
            .send()
            .await
            .map_err(call("Unsubscribe"))?;
    }
    Ok(())
}

async fn add_permission(c: &Clients, r: &Resource) -> Result<(), RemoteError> {
    let s = &r.spec;
    c.wrote();
    c.lambda
        .add_permission()
        .function_name(str_at(s, "FunctionName").unwrap_or_default())
        .statement_id(str_at(s, "StatementId").unwrap_or_default())
        .action(str_at(s, "Action").unwrap_or_default())
        .principal(str_at(s, "Principal").unwrap_or_default())
        .source_arn(str_at(s, "SourceArn").unwrap_or_default())
        .send()
        .await
        .map_err(call("AddPermission"))?;
    Ok(())
}

async fn remove_permission(c: &Clients, r: &Resource) -> Result<(), RemoteError> {
    let s = &r.spec;
    c.wrote();
    match c
        .lambda
        .remove_permission()
        .function_name(str_at(s, "FunctionName").unwrap_or_default())
        .statement_id(str_at(s, "StatementId").unwrap_or_default())
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Already gone: what deletion wants.
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(call("RemovePermission")(e)),
    }
}

async fn list_targets(
    c: &Clients,
    ctx: &Context,
    rule: &str,
) -> Result<Vec<aws_sdk_eventbridge::types::Target>, RemoteError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .events
            .list_targets_by_rule()
            .rule(rule)
            .event_bus_name(&ctx.bus)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(call("ListTargetsByRule"))?;
        out.extend(page.targets.unwrap_or_default());
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(out)
}

/// JSON text as its parsed value (so formatting never shows as a change), else the text.
fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// A rule read from EventBridge, in the desired state's shape.
fn rule_spec(
    rule: &aws_sdk_eventbridge::types::Rule,
    ctx: &Context,
    targets: &[aws_sdk_eventbridge::types::Target],
) -> Value {
    let prefix = super::desired::statement_prefix(ctx);
    let mut spec = Map::new();
    spec.insert(
        "Name".into(),
        json!(rule.name.as_deref().unwrap_or_default()),
    );
    spec.insert("EventBusName".into(), json!(ctx.bus));
    if let Some(d) = nonempty(rule.description.as_deref()) {
        spec.insert("Description".into(), json!(d));
    }
    if let Some(s) = &rule.state {
        spec.insert("State".into(), json!(s.as_str()));
    }
    if let Some(p) = nonempty(rule.event_pattern.as_deref()) {
        spec.insert("EventPattern".into(), json_or_text(p));
    }
    if let Some(s) = nonempty(rule.schedule_expression.as_deref()) {
        spec.insert("ScheduleExpression".into(), json!(s));
    }
    let mut ts = Map::new();
    for t in targets {
        let mut v = Map::new();
        v.insert("Id".into(), json!(t.id));
        // Our API destinations by name: their ARNs end in a UUID AWS picks.
        let arn = match t.arn.split_once(":api-destination/") {
            Some((_, rest)) => match rest.split('/').next() {
                Some(name) if name.starts_with(&prefix) => {
                    format!("{}{name}", super::desired::API_DESTINATION)
                }
                _ => t.arn.clone(),
            },
            None => t.arn.clone(),
        };
        v.insert("Arn".into(), json!(arn));
        if let Some(r) = nonempty(t.role_arn.as_deref()) {
            v.insert("RoleArn".into(), json!(r));
        }
        if let Some(h) = t
            .http_parameters
            .as_ref()
            .and_then(|h| h.header_parameters.as_ref())
            .filter(|h| !h.is_empty())
        {
            let mut sorted: Vec<_> = h.iter().collect();
            sorted.sort();
            v.insert(
                "HttpParameters".into(),
                json!({"HeaderParameters": sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<Map<String, Value>>()}),
            );
        }
        if let Some(i) = nonempty(t.input.as_deref()) {
            v.insert("Input".into(), json_or_text(i));
        }
        if let Some(p) = nonempty(t.input_path.as_deref()) {
            v.insert("InputPath".into(), json!(p));
        }
        if let Some(tr) = &t.input_transformer {
            let mut m = Map::new();
            if let Some(paths) = tr.input_paths_map.as_ref().filter(|p| !p.is_empty()) {
                let mut sorted: Vec<_> = paths.iter().collect();
                sorted.sort();
                m.insert(
                    "InputPathsMap".into(),
                    Value::Object(
                        sorted
                            .into_iter()
                            .map(|(k, v)| (k.clone(), json!(v)))
                            .collect(),
                    ),
                );
            }
            m.insert("InputTemplate".into(), json!(tr.input_template));
            v.insert("InputTransformer".into(), Value::Object(m));
        }
        let retry = t.retry_policy.as_ref();
        v.insert(
            "RetryPolicy".into(),
            json!({
                "MaximumRetryAttempts": retry.and_then(|r| r.maximum_retry_attempts).unwrap_or(185),
                "MaximumEventAgeInSeconds": retry.and_then(|r| r.maximum_event_age_in_seconds).unwrap_or(86400),
            }),
        );
        if let Some(arn) = t.dead_letter_config.as_ref().and_then(|d| d.arn.as_deref()) {
            v.insert("DeadLetterConfig".into(), json!({ "Arn": arn }));
        }
        if let Some(g) = t
            .sqs_parameters
            .as_ref()
            .and_then(|s| s.message_group_id.as_deref())
        {
            v.insert("SqsParameters".into(), json!({ "MessageGroupId": g }));
        }
        ts.insert(t.id.clone(), Value::Object(v));
    }
    spec.insert("Targets".into(), Value::Object(ts));
    Value::Object(spec)
}

fn rfc3339(t: &aws_sdk_scheduler::primitives::DateTime) -> String {
    chrono::DateTime::from_timestamp(t.secs(), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A schedule read from Scheduler, in the desired state's shape (defaults filled in: time
/// zone UTC, retry 185/86400, action after completion NONE).
fn schedule_spec(
    s: &aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput,
    group: &str,
) -> Value {
    let mut spec = Map::new();
    spec.insert("Name".into(), json!(s.name.as_deref().unwrap_or_default()));
    spec.insert("GroupName".into(), json!(group));
    if let Some(e) = &s.schedule_expression {
        spec.insert("ScheduleExpression".into(), json!(e));
    }
    spec.insert(
        "ScheduleExpressionTimezone".into(),
        json!(nonempty(s.schedule_expression_timezone.as_deref()).unwrap_or("UTC")),
    );
    if let Some(d) = &s.start_date {
        spec.insert("StartDate".into(), json!(rfc3339(d)));
    }
    if let Some(d) = &s.end_date {
        spec.insert("EndDate".into(), json!(rfc3339(d)));
    }
    if let Some(d) = nonempty(s.description.as_deref()) {
        spec.insert("Description".into(), json!(d));
    }
    if let Some(st) = &s.state {
        spec.insert("State".into(), json!(st.as_str()));
    }
    if let Some(w) = &s.flexible_time_window {
        let mut m = Map::new();
        m.insert("Mode".into(), json!(w.mode.as_str()));
        if w.mode == aws_sdk_scheduler::types::FlexibleTimeWindowMode::Flexible
            && let Some(n) = w.maximum_window_in_minutes
        {
            m.insert("MaximumWindowInMinutes".into(), json!(n));
        }
        spec.insert("FlexibleTimeWindow".into(), Value::Object(m));
    }
    spec.insert(
        "ActionAfterCompletion".into(),
        json!(
            s.action_after_completion
                .as_ref()
                .map(|a| a.as_str())
                .unwrap_or("NONE")
        ),
    );
    if let Some(t) = &s.target {
        let mut v = Map::new();
        v.insert("Arn".into(), json!(t.arn));
        v.insert("RoleArn".into(), json!(t.role_arn));
        if let Some(i) = &t.input {
            v.insert("Input".into(), json!(i));
        }
        let retry = t.retry_policy.as_ref();
        v.insert(
            "RetryPolicy".into(),
            json!({
                "MaximumRetryAttempts": retry.and_then(|r| r.maximum_retry_attempts).unwrap_or(185),
                "MaximumEventAgeInSeconds": retry.and_then(|r| r.maximum_event_age_in_seconds).unwrap_or(86400),
            }),
        );
        if let Some(arn) = t.dead_letter_config.as_ref().and_then(|d| d.arn.as_deref()) {
            v.insert("DeadLetterConfig".into(), json!({ "Arn": arn }));
        }
        if let Some(g) = t
            .sqs_parameters
            .as_ref()
            .and_then(|s| s.message_group_id.as_deref())
        {
            v.insert("SqsParameters".into(), json!({ "MessageGroupId": g }));
        }
        if let Some(p) = &t.event_bridge_parameters {
            v.insert(
                "EventBridgeParameters".into(),
                json!({"Source": p.source, "DetailType": p.detail_type}),
            );
        }
        spec.insert("Target".into(), Value::Object(v));
    }
    Value::Object(spec)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn int_at(v: &Value, path: &[&str]) -> Option<i32> {
    let mut cur = v;
    for k in path {
        cur = cur.get(*k)?;
    }
    cur.as_i64().and_then(|n| i32::try_from(n).ok())
}

/// JSON held as a value, as the text sent to AWS (compact); text as it is.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => crate::event::compact(other),
    }
}

fn sdk_rule_target(
    v: &Value,
    destinations: &std::collections::HashMap<String, String>,
) -> Result<aws_sdk_eventbridge::types::Target, RemoteError> {
    use aws_sdk_eventbridge::types as t;
    let arn = str_at(v, "Arn").unwrap_or_default();
    let arn = match arn.strip_prefix(super::desired::API_DESTINATION) {
        Some(name) => destinations.get(name).map(String::as_str).unwrap_or(arn),
        None => arn,
    };
    let mut b = t::Target::builder()
        .id(str_at(v, "Id").unwrap_or_default())
        .arn(arn);
    if let Some(r) = str_at(v, "RoleArn") {
        b = b.role_arn(r);
    }
    if let Some(Value::Object(h)) = v
        .get("HttpParameters")
        .and_then(|h| h.get("HeaderParameters"))
    {
        let mut hb = t::HttpParameters::builder();
        for (k, value) in h {
            hb = hb.header_parameters(k, value.as_str().unwrap_or_default());
        }
        b = b.http_parameters(hb.build());
    }
    if let Some(i) = v.get("Input") {
        b = b.input(as_text(i));
    }
    if let Some(p) = str_at(v, "InputPath") {
        b = b.input_path(p);
    }
    if let Some(tr) = v.get("InputTransformer") {
        let mut tb = t::InputTransformer::builder()
            .input_template(str_at(tr, "InputTemplate").unwrap_or_default());
        if let Some(Value::Object(m)) = tr.get("InputPathsMap") {
            for (k, p) in m {
                tb = tb.input_paths_map(k, p.as_str().unwrap_or_default());
            }
        }
        b = b.input_transformer(tb.build().map_err(build("InputTransformer"))?);
    }
    b = b.retry_policy(
        t::RetryPolicy::builder()
            .set_maximum_retry_attempts(int_at(v, &["RetryPolicy", "MaximumRetryAttempts"]))
            .set_maximum_event_age_in_seconds(int_at(
                v,
                &["RetryPolicy", "MaximumEventAgeInSeconds"],
            ))
            .build(),
    );
    if let Some(arn) = v.get("DeadLetterConfig").and_then(|d| str_at(d, "Arn")) {
        b = b.dead_letter_config(t::DeadLetterConfig::builder().arn(arn).build());
    }
    if let Some(g) = v
        .get("SqsParameters")
        .and_then(|d| str_at(d, "MessageGroupId"))
    {
        b = b.sqs_parameters(t::SqsParameters::builder().message_group_id(g).build());
    }
    b.build().map_err(build("Target"))
}

async fn put_rule(
    c: &Clients,
    ctx: &Context,
    r: &Resource,
    create: bool,
) -> Result<(), RemoteError> {
    use aws_sdk_eventbridge::types::{RuleState, Tag};
    let spec = &r.spec;
    let state = if str_at(spec, "State") == Some("DISABLED") {
        RuleState::Disabled
    } else {
        RuleState::Enabled
    };
    let mut req = c
        .events
        .put_rule()
        .name(&r.name)
        .event_bus_name(&ctx.bus)
        .state(state)
        .event_pattern(spec.get("EventPattern").map(as_text).unwrap_or_default())
        .description(str_at(spec, "Description").unwrap_or_default());
    if create {
        for (k, v) in [
            (MANAGED_BY.0, MANAGED_BY.1),
            (DEPLOYMENT_TAG, ctx.deployment.as_str()),
        ] {
            req = req.tags(
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(build("Tag"))?,
            );
        }
    }
    c.wrote();
    req.send().await.map_err(call("PutRule"))?;
    Ok(())
}

fn targets_of(spec: Option<&Value>) -> Map<String, Value> {
    spec.and_then(|s| s.get("Targets"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Puts the targets that are new or changed, then removes those no longer written.
async fn sync_targets(
    c: &Clients,
    ctx: &Context,
    name: &str,
    want: &Map<String, Value>,
    have: &Map<String, Value>,
) -> Result<(), RemoteError> {
    let put: Vec<&Value> = want
        .iter()
        .filter(|(id, v)| have.get(*id) != Some(*v))
        .map(|(_, v)| v)
        .collect();
    if !put.is_empty() {
        let mut destinations = std::collections::HashMap::new();
        for v in &put {
            if let Some(d) =
                str_at(v, "Arn").and_then(|a| a.strip_prefix(super::desired::API_DESTINATION))
            {
                let out = c
                    .events
                    .describe_api_destination()
                    .name(d)
                    .send()
                    .await
                    .map_err(call("DescribeApiDestination"))?;
                destinations.insert(d.to_owned(), out.api_destination_arn.unwrap_or_default());
            }
        }
        let mut pending: Vec<aws_sdk_eventbridge::types::Target> = put
            .iter()
            .map(|v| sdk_rule_target(v, &destinations))
            .collect::<Result<_, _>>()?;
        // A 200 with failed entries is a partial failure: the failed entries are put again
        // (after 1 s, then 2 s) while they fail for reasons that pass.
        let mut attempt = 0;
        let out = loop {
            c.wrote();
            let out = c
                .events
                .put_targets()
                .rule(name)
                .event_bus_name(&ctx.bus)
                .set_targets(Some(pending.clone()))
                .send()
                .await
                .map_err(call("PutTargets"))?;
            let failed = out.failed_entries.clone().unwrap_or_default();
            let transient = failed.iter().all(|e| {
                matches!(
                    e.error_code.as_deref(),
                    Some(
                        "ConcurrentModificationException"
                            | "InternalException"
                            | "ThrottlingException"
                    )
                )
            });
            attempt += 1;
            if out.failed_entry_count == 0 || !transient || attempt == 3 {
                break out;
            }
            let ids: Vec<&str> = failed
                .iter()
                .filter_map(|e| e.target_id.as_deref())
                .collect();
            pending.retain(|t| ids.contains(&t.id.as_str()));
            tokio::time::sleep(std::time::Duration::from_secs(1 << (attempt - 1))).await;
        };
        if out.failed_entry_count > 0 {
            let entries = out
                .failed_entries
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    format!(
                        "`{}` ({}: {})",
                        e.target_id.as_deref().unwrap_or("?"),
                        e.error_code.as_deref().unwrap_or("?"),
                        e.error_message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(RemoteError::PartialTargets {
                rule: name.to_owned(),
                entries,
            });
        }
    }
    let remove: Vec<String> = have
        .keys()
        .filter(|id| !want.contains_key(*id))
        .cloned()
        .collect();
    remove_targets(c, ctx, name, remove).await
}

async fn remove_targets(
    c: &Clients,
    ctx: &Context,
    name: &str,
    ids: Vec<String>,
) -> Result<(), RemoteError> {
    if ids.is_empty() {
        return Ok(());
    }
    c.wrote();
    let out = c
        .events
        .remove_targets()
        .rule(name)
        .event_bus_name(&ctx.bus)
        .set_ids(Some(ids))
        .send()
        .await
        .map_err(call("RemoveTargets"))?;
    if out.failed_entry_count > 0 {
        return Err(RemoteError::PartialTargets {
            rule: name.to_owned(),
            entries: format!("{} removal(s)", out.failed_entry_count),
        });
    }
    Ok(())
}

fn sdk_schedule_target(v: &Value) -> Result<aws_sdk_scheduler::types::Target, RemoteError> {
    use aws_sdk_scheduler::types as t;
    let mut b = t::Target::builder()
        .arn(str_at(v, "Arn").unwrap_or_default())
        .role_arn(str_at(v, "RoleArn").unwrap_or_default());
    if let Some(i) = str_at(v, "Input") {
        b = b.input(i);
    }
    b = b.retry_policy(
        t::RetryPolicy::builder()
            .set_maximum_retry_attempts(int_at(v, &["RetryPolicy", "MaximumRetryAttempts"]))
            .set_maximum_event_age_in_seconds(int_at(
                v,
                &["RetryPolicy", "MaximumEventAgeInSeconds"],
            ))
            .build(),
    );
    if let Some(arn) = v.get("DeadLetterConfig").and_then(|d| str_at(d, "Arn")) {
        b = b.dead_letter_config(t::DeadLetterConfig::builder().arn(arn).build());
    }
    if let Some(g) = v
        .get("SqsParameters")
        .and_then(|d| str_at(d, "MessageGroupId"))
    {
        b = b.sqs_parameters(t::SqsParameters::builder().message_group_id(g).build());
    }
    if let Some(p) = v.get("EventBridgeParameters") {
        b = b.event_bridge_parameters(
            t::EventBridgeParameters::builder()
                .source(str_at(p, "Source").unwrap_or_default())
                .detail_type(str_at(p, "DetailType").unwrap_or_default())
                .build()
                .map_err(build("EventBridgeParameters"))?,
        );
    }
    b.build().map_err(build("schedule Target"))
}

fn date(v: &Value, key: &str) -> Option<aws_sdk_scheduler::primitives::DateTime> {
    let text = str_at(v, key)?;
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(aws_sdk_scheduler::primitives::DateTime::from_secs(
        t.timestamp(),
    ))
}

/// Creates or (fully) updates a schedule.
async fn put_schedule(c: &Clients, r: &Resource, create: bool) -> Result<(), RemoteError> {
    use aws_sdk_scheduler::types as t;
    let s = &r.spec;
    let window = s.get("FlexibleTimeWindow").cloned().unwrap_or_default();
    let window = if str_at(&window, "Mode") == Some("FLEXIBLE") {
        t::FlexibleTimeWindow::builder()
            .mode(t::FlexibleTimeWindowMode::Flexible)
            .set_maximum_window_in_minutes(int_at(&window, &["MaximumWindowInMinutes"]))
            .build()
    } else {
        t::FlexibleTimeWindow::builder()
            .mode(t::FlexibleTimeWindowMode::Off)
            .build()
    }
    .map_err(build("FlexibleTimeWindow"))?;
    let state = if str_at(s, "State") == Some("DISABLED") {
        t::ScheduleState::Disabled
    } else {
        t::ScheduleState::Enabled
    };
    let target = sdk_schedule_target(s.get("Target").unwrap_or(&Value::Null))?;
    let group = str_at(s, "GroupName").unwrap_or_default();
    let expr = str_at(s, "ScheduleExpression").unwrap_or_default();
    let tz = str_at(s, "ScheduleExpressionTimezone").unwrap_or("UTC");
    let description = str_at(s, "Description").map(str::to_owned);
    c.wrote();
    // Both calls take every field: UpdateSchedule resets what it is not given.
    if create {
        c.scheduler
            .create_schedule()
            .name(&r.name)
            .group_name(group)
            .schedule_expression(expr)
            .schedule_expression_timezone(tz)
            .set_start_date(date(s, "StartDate"))
            .set_end_date(date(s, "EndDate"))
            .set_description(description)
            .state(state)
            .flexible_time_window(window)
            .action_after_completion(t::ActionAfterCompletion::None)
            .target(target)
            .send()
            .await
            .map_err(call("CreateSchedule"))?;
    } else {
        c.scheduler
            .update_schedule()
            .name(&r.name)
            .group_name(group)
            .schedule_expression(expr)
            .schedule_expression_timezone(tz)
            .set_start_date(date(s, "StartDate"))
            .set_end_date(date(s, "EndDate"))
            .set_description(description)
            .state(state)
            .flexible_time_window(window)
            .action_after_completion(t::ActionAfterCompletion::None)
            .target(target)
            .send()
            .await
            .map_err(call("UpdateSchedule"))?;
    }
    Ok(())
}

/// An error of one change, with the resource and where it is written.
fn at(ch: &super::plan::Change, e: RemoteError) -> RemoteError {
    let origin = ch
        .desired
        .as_ref()
        .and_then(|d| d.origin.as_ref())
        .map(|o| format!(" ({o})"))
        .unwrap_or_default();
    RemoteError::Change {
        what: format!("{} {}{origin}", ch.kind.label(), ch.name),
        source: Box::new(e),
    }
}

/// Tags a resource trigd did not create for this deployment (`--adopt`).
async fn adopt(
    c: &Clients,
    ctx: &Context,
    kind: Kind,
    name: &str,
    want: &Resource,
) -> Result<(), RemoteError> {
    let tags = [
        (MANAGED_BY.0, MANAGED_BY.1),
        (DEPLOYMENT_TAG, ctx.deployment.as_str()),
    ];
    c.wrote();
    match kind {
        Kind::Rule => {
            let mut req = c.events.tag_resource().resource_arn(ctx.rule_arn(name));
            for (k, v) in tags {
                req = req.tags(
                    aws_sdk_eventbridge::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .map_err(build("Tag"))?,
                );
            }
            req.send().await.map_err(call("TagResource"))?;
        }
        Kind::Function => {
            let mut req = c
                .lambda
                .tag_resource()
                .resource(str_at(&want.spec, "FunctionArn").unwrap_or_default());
            for (k, v) in tags {
                req = req.tags(k, v);
            }
            req.send().await.map_err(call("TagResource"))?;
        }
        _ => {}
    }
    Ok(())
}

/// Applies `plan`: the group, creates and updates (rules, then schedules), then deletes
/// (schedules, then rules: targets first). Conflicts are never touched.
pub async fn apply(c: &Clients, ctx: &Context, plan: &Plan) -> Result<(), RemoteError> {
    if plan.create_group {
        use aws_sdk_scheduler::types::Tag;
        let mut req = c.scheduler.create_schedule_group().name(ctx.group());
        for (k, v) in [
            (MANAGED_BY.0, MANAGED_BY.1),
            (DEPLOYMENT_TAG, ctx.deployment.as_str()),
        ] {
            req = req.tags(
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(build("Tag"))?,
            );
        }
        c.wrote();
        req.send().await.map_err(call("CreateScheduleGroup"))?;
    }
    // Permissions and policies first, so that a new target can be reached at once.
    for kind in [
        Kind::Layer,
        Kind::Function,
        Kind::EventSourceMapping,
        Kind::Connection,
        Kind::ApiDestination,
        Kind::Permission,
        Kind::QueuePolicy,
        Kind::TopicPolicy,
        Kind::Subscription,
        Kind::Rule,
        Kind::Schedule,
    ] {
        for ch in plan.changes.iter().filter(|ch| ch.kind == kind) {
            let result: Result<(), RemoteError> = async {
                let (create, fields) = match &ch.action {
                    Action::Create => (true, Vec::new()),
                    Action::Update(fields) => {
                        (false, fields.iter().map(|f| f.path.as_str()).collect())
                    }
                    Action::Delete | Action::Conflict(_) => return Ok(()),
                };
                let Some(want) = &ch.desired else {
                    return Ok(());
                };
                if ch.adopt {
                    adopt(c, ctx, kind, &ch.name, want).await?;
                }
                match kind {
                    Kind::Rule => {
                        let rule_fields_changed = create
                            || fields
                                .iter()
                                .any(|p| *p != "Targets" && !p.starts_with("Targets."));
                        if rule_fields_changed {
                            put_rule(c, ctx, want, create).await?;
                        }
                        sync_targets(
                            c,
                            ctx,
                            &ch.name,
                            &targets_of(Some(&want.spec)),
                            &targets_of(ch.actual.as_ref().map(|a| &a.spec)),
                        )
                        .await?;
                    }
                    Kind::Schedule => put_schedule(c, want, create).await?,
                    Kind::QueuePolicy | Kind::TopicPolicy => {
                        write_policy(c, ctx, kind, &ch.name, Some(&want.spec)).await?;
                    }
                    Kind::Connection => {
                        let secrets = plan.secrets.0.get(&ch.name).cloned().unwrap_or_default();
                        put_connection(c, want, &secrets, create).await?;
                    }
                    Kind::ApiDestination => put_api_destination(c, want, create).await?,
                    Kind::Function => put_function(c, ctx, want, create, &fields).await?,
                    // A new version; older ones stay for whoever still uses them.
                    Kind::Layer => {
                        let package = ctx.packages.iter().find(|(_, p)| {
                            Some(p.sha256.as_str()) == str_at(&want.spec, "CodeSha256")
                        });
                        let zip = package.map(|(_, p)| p.zip.clone()).unwrap_or_default();
                        c.wrote();
                        c.lambda
                            .publish_layer_version()
                            .layer_name(&ch.name)
                            .description(format!("trigd deployment {}", ctx.deployment))
                            .content(
                                aws_sdk_lambda::types::LayerVersionContentInput::builder()
                                    .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                                    .build(),
                            )
                            .send()
                            .await
                            .map_err(call("PublishLayerVersion"))?;
                    }
                    Kind::EventSourceMapping => put_mapping(c, want, create).await?,
                    // Its fields are what it is: a change is a new subscription.
                    Kind::Subscription => {
                        if let (false, Some(old)) = (create, &ch.actual) {
                            unsubscribe(c, old).await?;
                        }
                        c.wrote();
                        c.sns
                            .subscribe()
                            .topic_arn(str_at(&want.spec, "TopicArn").unwrap_or_default())
                            .protocol(str_at(&want.spec, "Protocol").unwrap_or_default())
                            .endpoint(str_at(&want.spec, "Endpoint").unwrap_or_default())
                            .send()
                            .await
                            .map_err(call("Subscribe"))?;
                    }
                    Kind::Permission => {
                        // A statement cannot be changed in place: replaced.
                        if let (false, Some(old)) = (create, &ch.actual) {
                            remove_permission(c, old).await?;
                        }
                        add_permission(c, want).await?;
                    }
                }
                Ok(())
            }
            .await;
            result.map_err(|e| at(ch, e))?;
        }
    }
    for kind in [
        Kind::Subscription,
        Kind::Schedule,
        Kind::Rule,
        Kind::Permission,
        Kind::QueuePolicy,
        Kind::TopicPolicy,
        Kind::ApiDestination,
        Kind::Connection,
        Kind::EventSourceMapping,
        Kind::Function,
        Kind::Layer,
    ] {
        for ch in plan
            .changes
            .iter()
            .filter(|ch| ch.kind == kind && ch.action == Action::Delete)
        {
            let result: Result<(), RemoteError> = async {
                match kind {
                    Kind::Schedule => {
                        c.wrote();
                        c.scheduler
                            .delete_schedule()
                            .name(&ch.name)
                            .group_name(ctx.group())
                            .send()
                            .await
                            .map_err(call("DeleteSchedule"))?;
                    }
                    Kind::Rule => {
                        let ids: Vec<String> = targets_of(ch.actual.as_ref().map(|a| &a.spec))
                            .keys()
                            .cloned()
                            .collect();
                        remove_targets(c, ctx, &ch.name, ids).await?;
                        c.wrote();
                        c.events
                            .delete_rule()
                            .name(&ch.name)
                            .event_bus_name(&ctx.bus)
                            .send()
                            .await
                            .map_err(call("DeleteRule"))?;
                    }
                    Kind::Permission => {
                        if let Some(old) = &ch.actual {
                            remove_permission(c, old).await?;
                        }
                    }
                    Kind::QueuePolicy | Kind::TopicPolicy => {
                        write_policy(c, ctx, kind, &ch.name, None).await?;
                    }
                    Kind::ApiDestination => {
                        c.wrote();
                        c.events
                            .delete_api_destination()
                            .name(&ch.name)
                            .send()
                            .await
                            .map_err(call("DeleteApiDestination"))?;
                    }
                    Kind::Subscription => {
                        if let Some(old) = &ch.actual {
                            unsubscribe(c, old).await?;
                        }
                    }
                    Kind::EventSourceMapping => {
                        let s = ch.actual.as_ref().map(|a| &a.spec).unwrap_or(&Value::Null);
                        let function = str_at(s, "FunctionName").unwrap_or_default();
                        let source = str_at(s, "EventSourceArn");
                        for m in list_mappings(c, function, source).await? {
                            let Some(uuid) = m.uuid else { continue };
                            c.wrote();
                            c.lambda
                                .delete_event_source_mapping()
                                .uuid(uuid)
                                .send()
                                .await
                                .map_err(call("DeleteEventSourceMapping"))?;
                        }
                    }
                    Kind::Layer => {
                        for v in layer_versions(c, &ch.name).await? {
                            c.wrote();
                            c.lambda
                                .delete_layer_version()
                                .layer_name(&ch.name)
                                .version_number(v.version)
                                .send()
                                .await
                                .map_err(call("DeleteLayerVersion"))?;
                        }
                    }
                    Kind::Function => {
                        c.wrote();
                        c.lambda
                            .delete_function()
                            .function_name(&ch.name)
                            .send()
                            .await
                            .map_err(call("DeleteFunction"))?;
                    }
                    Kind::Connection => {
                        c.wrote();
                        c.events
                            .delete_connection()
                            .name(&ch.name)
                            .send()
                            .await
                            .map_err(call("DeleteConnection"))?;
                    }
                }
                Ok(())
            }
            .await;
            result.map_err(|e| at(ch, e))?;
        }
    }
    if plan.delete_group {
        c.wrote();
        c.scheduler
            .delete_schedule_group()
            .name(ctx.group())
            .send()
            .await
            .map_err(call("DeleteScheduleGroup"))?;
    }
    Ok(())
}
