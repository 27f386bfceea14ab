//! The AWS side of deploy: reading what the deployment owns (and same-named resources it does
//! not), normalised like the desired state; and applying a plan in dependency order: the
//! schedule group, rules (`PutRule`, then `PutTargets` checked entry by entry, then
//! `RemoveTargets` of targets no longer written), schedules (full `CreateSchedule` /
//! `UpdateSchedule`), then deletions (a rule's targets first, always with the bus name).
//!
//! By service: `events` (rules, targets, connections, API destinations), `scheduler`,
//! `lambda` (functions, layers, mappings, permissions), `policies` (queue and topic
//! policies, subscriptions); this file holds the clients, the reading and the order of apply.
//!
//! Throttling is retried by the SDK's standard retry policy (with backoff). Nothing without
//! trigd's tags (rules) or outside the deployment's schedule group (schedules) is written.

use std::collections::HashSet;

use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata};
use serde_json::{Map, Value, json};

use super::desired::{Context, DEPLOYMENT_TAG, MANAGED_BY};
use super::plan::{Action, Actual, Existing, Owner, Plan};
use super::{Kind, Resource};

mod events;
mod lambda;
mod policies;
mod scheduler;

use events::*;
use lambda::*;
use policies::*;
use scheduler::*;

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

/// Every page of a listing: `page` is given the previous page's token (`None` first) and
/// returns its items with the next token; an absent or empty token ends the listing.
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, RemoteError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), RemoteError>>,
{
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let (page_items, next) = page(token.take()).await?;
        items.extend(page_items);
        match next {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(items),
        }
    }
}

/// The tags marking what trigd wrote for this deployment.
fn our_tags(ctx: &Context) -> [(&'static str, &str); 2] {
    [
        (MANAGED_BY.0, MANAGED_BY.1),
        (DEPLOYMENT_TAG, ctx.deployment.as_str()),
    ]
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
    let rules = all_pages(|token| async move {
        let out = c
            .events
            .list_rules()
            .event_bus_name(&ctx.bus)
            .set_next_token(token)
            .send()
            .await
            .map_err(call("ListRules"))?;
        Ok((out.rules.unwrap_or_default(), out.next_token))
    })
    .await?;
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
    let group_name = group.as_str();
    let names = all_pages(|token| async move {
        let out = c
            .scheduler
            .list_schedules()
            .group_name(group_name)
            .set_next_token(token)
            .send()
            .await
            .map_err(call("ListSchedules"))?;
        let names: Vec<String> = out.schedules.into_iter().filter_map(|s| s.name).collect();
        Ok((names, out.next_token))
    })
    .await?;
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

fn is_missing<E: ProvideErrorMetadata>(e: &E) -> bool {
    is_not_found(e) || e.code().is_some_and(|c| c.contains("NonExistent"))
}

/// JSON text as its parsed value (so formatting never shows as a change), else the text.
fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
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

/// A string map as a JSON object, in key order (so that AWS's order never shows as a change).
fn sorted_object(map: &std::collections::HashMap<String, String>) -> Map<String, Value> {
    let mut sorted: Vec<_> = map.iter().collect();
    sorted.sort();
    sorted
        .into_iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect()
}

/// A target's retry policy, AWS's defaults (185 attempts, 86400 s) filled in.
fn retry_json(attempts: Option<i32>, age: Option<i32>) -> Value {
    json!({
        "MaximumRetryAttempts": attempts.unwrap_or(185),
        "MaximumEventAgeInSeconds": age.unwrap_or(86400),
    })
}

/// JSON held as a value, as the text sent to AWS (compact); text as it is.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => crate::event::compact(other),
    }
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
    c.wrote();
    match kind {
        Kind::Rule => {
            c.events
                .tag_resource()
                .resource_arn(ctx.rule_arn(name))
                .set_tags(Some(rule_tags(ctx)?))
                .send()
                .await
                .map_err(call("TagResource"))?;
        }
        Kind::Function => {
            let mut req = c
                .lambda
                .tag_resource()
                .resource(str_at(&want.spec, "FunctionArn").unwrap_or_default());
            for (k, v) in our_tags(ctx) {
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
        for (k, v) in our_tags(ctx) {
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
