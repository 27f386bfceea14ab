//! `trigd export`, pure: the desired state as a CloudFormation template (JSON, which
//! CloudFormation reads as it reads YAML), or the same resources under SAM's transform header.
//! Deterministic: resources in file order under logical ids derived from their names, no
//! timestamps, the account and region as CloudFormation's pseudo parameters.
//!
//! Resources: `AWS::Events::Rule` (targets inline), `AWS::Lambda::Permission` for each Lambda
//! target of a rule, `AWS::Scheduler::ScheduleGroup` and `AWS::Scheduler::Schedule`, and, when
//! no role is given, the `AWS::IAM::Role` Scheduler assumes, allowed exactly its targets.

use serde_json::{Map, Value, json};

use super::desired::{Context, DEPLOYMENT_TAG, Desired, MANAGED_BY};
use super::{Kind, Resource};

/// The template formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    CloudFormation,
    Sam,
}

/// Stand-ins for the account and region while the desired state is built; each string that
/// holds one becomes an `Fn::Sub` of the pseudo parameter.
pub const ACCOUNT: &str = "TRIGDEXPORTACCOUNT0";
pub const REGION: &str = "TRIGDEXPORTREGION0";

/// The context `export` builds the desired state in: the pseudo parameters' stand-ins, and
/// the role resource's ARN stand-in unless a role is given.
pub fn context(
    bus: &str,
    deployment: &str,
    scheduler_role_arn: Option<&str>,
    events_role_arn: Option<&str>,
) -> Context {
    Context {
        region: REGION.to_owned(),
        account: ACCOUNT.to_owned(),
        bus: bus.to_owned(),
        deployment: deployment.to_owned(),
        scheduler_role_arn: Some(scheduler_role_arn.unwrap_or(ROLE_STAND_IN).to_owned()),
        events_role_arn: Some(events_role_arn.unwrap_or(EVENTS_ROLE_STAND_IN).to_owned()),
        env: super::desired::Env::Names,
        function_role_arn: None,
        packages: Default::default(),
    }
}

const ROLE_STAND_IN: &str = "TRIGDEXPORTSCHEDULERROLE0";
const EVENTS_ROLE_STAND_IN: &str = "TRIGDEXPORTEVENTSROLE0";
const ROLE_ID: &str = "SchedulerRole";
const EVENTS_ROLE_ID: &str = "EventsRole";
const GROUP_ID: &str = "ScheduleGroup";

/// A logical id: `Prefix` + the name's letters and digits in PascalCase + 8 hex digits of the
/// name's hash (names differing only in punctuation stay apart).
pub fn logical_id(prefix: &str, name: &str) -> String {
    keyed_id(prefix, name, name)
}

/// A logical id from a readable part and the key whose hash keeps it unique.
fn keyed_id(prefix: &str, readable: &str, key: &str) -> String {
    use sha2::Digest as _;
    let name = key;
    let mut out = String::from(prefix);
    for part in readable.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    let hash = sha2::Sha256::digest(name.as_bytes());
    out.push_str(&hex::encode(hash)[..8]);
    out
}

/// Every string holding a stand-in becomes an `Fn::Sub` (other `${` escaped as `${!`); the
/// role's stand-in becomes the role resource's ARN.
fn substitute(v: Value) -> Value {
    match v {
        Value::String(s) if s == ROLE_STAND_IN => json!({"Fn::GetAtt": [ROLE_ID, "Arn"]}),
        Value::String(s) if s == EVENTS_ROLE_STAND_IN => {
            json!({"Fn::GetAtt": [EVENTS_ROLE_ID, "Arn"]})
        }
        Value::String(s) if s.starts_with(super::desired::API_DESTINATION) => {
            let name = &s[super::desired::API_DESTINATION.len()..];
            json!({"Fn::GetAtt": [logical_id("ApiDestination", name), "Arn"]})
        }
        Value::String(s) if s.contains(ACCOUNT) || s.contains(REGION) => {
            let escaped = s
                .replace("${", "${!")
                .replace(ACCOUNT, "${AWS::AccountId}")
                .replace(REGION, "${AWS::Region}");
            json!({ "Fn::Sub": escaped })
        }
        Value::Array(a) => Value::Array(a.into_iter().map(substitute).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, substitute(v))).collect()),
        other => other,
    }
}

fn text(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        other => json!(crate::event::compact(other)),
    }
}

fn tags(ctx: &Context) -> Value {
    json!([
        {"Key": MANAGED_BY.0, "Value": MANAGED_BY.1},
        {"Key": DEPLOYMENT_TAG, "Value": ctx.deployment},
    ])
}

/// The template of `desired`.
pub fn template(desired: &Desired, ctx: &Context, format: Format) -> Value {
    let mut resources = Map::new();
    let schedules: Vec<&Resource> = desired
        .resources
        .iter()
        .filter(|r| r.kind == Kind::Schedule)
        .collect();
    let mut role_statements: Vec<(&'static str, String)> = Vec::new();
    let mut parameters = Map::new();
    let mut api_destinations: Vec<String> = Vec::new();
    for r in &desired.resources {
        match r.kind {
            // Written beside each rule, with the rule's ARN from CloudFormation.
            Kind::Permission => {}
            // They replace a queue's or topic's whole policy: the description says so.
            Kind::QueuePolicy => {
                let mut parts = r.name.rsplit(':');
                let name = parts.next().unwrap_or_default();
                let account = parts.next().unwrap_or_default();
                let url = format!("https://sqs.{REGION}.amazonaws.com/{account}/{name}");
                resources.insert(
                    keyed_id("QueuePolicy", name, &r.name),
                    json!({"Type": "AWS::SQS::QueuePolicy", "Properties": {
                        "Queues": [url],
                        "PolicyDocument": {"Version": "2012-10-17", "Statement": [r.spec.clone()]},
                    }}),
                );
            }
            Kind::TopicPolicy => {
                resources.insert(
                    keyed_id(
                        "TopicPolicy",
                        r.name.rsplit(':').next().unwrap_or_default(),
                        &r.name,
                    ),
                    json!({"Type": "AWS::SNS::TopicPolicy", "Properties": {
                        "Topics": [r.name],
                        "PolicyDocument": {"Version": "2012-10-17", "Statement": [r.spec.clone()]},
                    }}),
                );
            }
            // Never built here: export packages no code (the build warns).
            Kind::Layer | Kind::Function | Kind::EventSourceMapping | Kind::Subscription => {}
            Kind::Connection => connection(r, desired, &mut resources, &mut parameters),
            Kind::ApiDestination => {
                let id = logical_id("ApiDestination", &r.name);
                let mut props = r.spec.clone();
                if let Some(m) = props.as_object_mut() {
                    let conn = m.remove("ConnectionName").unwrap_or_default();
                    let conn = logical_id("Connection", conn.as_str().unwrap_or_default());
                    m.insert("ConnectionArn".into(), json!({"Fn::GetAtt": [conn, "Arn"]}));
                }
                api_destinations.push(id.clone());
                resources.insert(
                    id,
                    json!({"Type": "AWS::Events::ApiDestination", "Properties": props}),
                );
            }
            Kind::Rule => rule(r, ctx, &mut resources),
            Kind::Schedule => {
                let target = r.spec.get("Target").cloned().unwrap_or_default();
                let arn = target
                    .get("Arn")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                role_statements.push((action_for(arn), arn.to_owned()));
                if let Some(dlq) = target
                    .get("DeadLetterConfig")
                    .and_then(|d| d.get("Arn"))
                    .and_then(Value::as_str)
                {
                    role_statements.push(("sqs:SendMessage", dlq.to_owned()));
                }
                let mut props = Map::new();
                for (k, v) in r.spec.as_object().into_iter().flatten() {
                    match k.as_str() {
                        // Not in every revision of the resource type; NONE is the default.
                        "ActionAfterCompletion" => {}
                        "GroupName" => {
                            props.insert(k.clone(), json!({"Ref": GROUP_ID}));
                        }
                        _ => {
                            props.insert(k.clone(), v.clone());
                        }
                    }
                }
                resources.insert(
                    logical_id("Schedule", &r.name),
                    json!({"Type": "AWS::Scheduler::Schedule", "Properties": props}),
                );
            }
        }
    }
    if !schedules.is_empty() {
        resources.insert(
            GROUP_ID.to_owned(),
            json!({"Type": "AWS::Scheduler::ScheduleGroup",
                   "Properties": {"Name": ctx.group(), "Tags": tags(ctx)}}),
        );
        if ctx.scheduler_role_arn.as_deref() == Some(ROLE_STAND_IN) {
            resources.insert(ROLE_ID.to_owned(), role(&role_statements));
        }
    }
    if !api_destinations.is_empty() && ctx.events_role_arn.as_deref() == Some(EVENTS_ROLE_STAND_IN)
    {
        resources.insert(EVENTS_ROLE_ID.to_owned(), events_role(&api_destinations));
    }
    let mut out = Map::new();
    out.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
    if format == Format::Sam {
        out.insert("Transform".into(), json!("AWS::Serverless-2016-10-31"));
    }
    out.insert(
        "Description".into(),
        json!(format!(
            "trigd deployment {}: written by `trigd export`; regenerate rather than edit. \
             WARNING: its AWS::SQS::QueuePolicy and AWS::SNS::TopicPolicy resources replace the \
             queues' and topics' whole policies (CloudFormation has no resource for one \
             statement): merge in the statements others need first. Local functions are not \
             included (their code must be uploaded: use trigd deploy).",
            ctx.deployment
        )),
    );
    if !parameters.is_empty() {
        out.insert("Parameters".into(), Value::Object(parameters));
    }
    out.insert("Resources".into(), substitute(Value::Object(resources)));
    Value::Object(out)
}

fn action_for(arn: &str) -> &'static str {
    if arn.starts_with("arn:aws:lambda:") {
        "lambda:InvokeFunction"
    } else if arn.starts_with("arn:aws:sqs:") {
        "sqs:SendMessage"
    } else if arn.starts_with("arn:aws:sns:") {
        "sns:Publish"
    } else {
        "events:PutEvents"
    }
}

/// The role Scheduler assumes: trusted by `scheduler.amazonaws.com` for this account only,
/// allowed exactly the schedules' targets and dead-letter queues.
fn role(statements: &[(&'static str, String)]) -> Value {
    let mut actions: Vec<&str> = statements.iter().map(|(a, _)| *a).collect();
    actions.sort_unstable();
    actions.dedup();
    let allow: Vec<Value> = actions
        .into_iter()
        .map(|a| {
            let mut arns: Vec<&str> = statements
                .iter()
                .filter(|(x, _)| *x == a)
                .map(|(_, arn)| arn.as_str())
                .collect();
            arns.sort_unstable();
            arns.dedup();
            json!({"Effect": "Allow", "Action": a, "Resource": arns})
        })
        .collect();
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "scheduler.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
                }],
            },
            "Policies": [{
                "PolicyName": "trigd-scheduler-targets",
                "PolicyDocument": {"Version": "2012-10-17", "Statement": allow},
            }],
        },
    })
}

fn rule(r: &Resource, ctx: &Context, resources: &mut Map<String, Value>) {
    let id = logical_id("Rule", &r.name);
    let mut props = Map::new();
    let mut targets = Vec::new();
    for (k, v) in r.spec.as_object().into_iter().flatten() {
        if k == "Targets" {
            for t in v.as_object().into_iter().flatten().map(|(_, t)| t) {
                let mut t = t.clone();
                if let Some(obj) = t.as_object_mut()
                    && let Some(input) = obj.get("Input").map(text)
                {
                    obj.insert("Input".into(), input);
                }
                let arn = t.get("Arn").and_then(Value::as_str).unwrap_or_default();
                if arn.starts_with("arn:aws:lambda:") {
                    let tid = t.get("Id").and_then(Value::as_str).unwrap_or_default();
                    resources.insert(
                        logical_id("Permission", &format!("{}.{tid}", r.name)),
                        json!({
                            "Type": "AWS::Lambda::Permission",
                            "Properties": {
                                "Action": "lambda:InvokeFunction",
                                "FunctionName": arn,
                                "Principal": "events.amazonaws.com",
                                "SourceArn": {"Fn::GetAtt": [id, "Arn"]},
                            },
                        }),
                    );
                }
                targets.push(t);
            }
        } else {
            props.insert(k.clone(), v.clone());
        }
    }
    props.insert("Targets".into(), Value::Array(targets));
    let _ = ctx;
    resources.insert(
        id,
        json!({"Type": "AWS::Events::Rule", "Properties": props}),
    );
}

/// A connection, its secrets as `NoEcho` parameters (never in the template).
fn connection(
    r: &Resource,
    desired: &Desired,
    resources: &mut Map<String, Value>,
    parameters: &mut Map<String, Value>,
) {
    let spec = &r.spec;
    let field = |k: &str| spec.get(k).cloned().unwrap_or_default();
    let mut param = |key: &str, what: String| {
        let id = logical_id("Secret", &format!("{}/{key}", r.name));
        parameters.insert(
            id.clone(),
            json!({"Type": "String", "NoEcho": true, "Description": what}),
        );
        json!({ "Ref": id })
    };
    let mut auth = Map::new();
    if field("AuthorizationType") == "BASIC" {
        let password = param(
            "Password",
            format!("the password of connection {} (from its URL)", r.name),
        );
        auth.insert(
            "BasicAuthParameters".into(),
            json!({"Username": field("Username"), "Password": password}),
        );
    } else {
        auth.insert(
            "ApiKeyAuthParameters".into(),
            json!({"ApiKeyName": field("ApiKeyName"), "ApiKeyValue": "none"}),
        );
    }
    let secrets = desired.secrets.0.get(&r.name).cloned().unwrap_or_default();
    let headers: Vec<Value> = secrets
        .iter()
        .filter_map(|(k, written)| {
            let header = k.strip_prefix("header:")?;
            // `written` is the header's value as written (`Bearer ${TOKEN}`): the names only.
            let value = param(
                k,
                format!(
                    "header {header} of connection {} (written `{written}`)",
                    r.name
                ),
            );
            Some(json!({"Key": header, "Value": value, "IsValueSecret": true}))
        })
        .collect();
    if !headers.is_empty() {
        auth.insert(
            "InvocationHttpParameters".into(),
            json!({ "HeaderParameters": headers }),
        );
    }
    resources.insert(
        logical_id("Connection", &r.name),
        json!({
            "Type": "AWS::Events::Connection",
            "Properties": {
                "Name": r.name,
                "Description": field("Description"),
                "AuthorizationType": field("AuthorizationType"),
                "AuthParameters": auth,
            },
        }),
    );
}

/// The role EventBridge assumes to call the API destinations, allowed exactly those.
fn events_role(api_destinations: &[String]) -> Value {
    let arns: Vec<Value> = api_destinations
        .iter()
        .map(|id| json!({"Fn::GetAtt": [id, "Arn"]}))
        .collect();
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }],
            },
            "Policies": [{
                "PolicyName": "trigd-api-destinations",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Action": "events:InvokeApiDestination",
                        "Resource": arns,
                    }],
                },
            }],
        },
    })
}
