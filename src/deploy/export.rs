//! `trigd export`, pure: the desired state as a CloudFormation template (JSON, which
//! CloudFormation reads as it reads YAML), or the same resources under SAM's transform header.
//! Deterministic: resources in file order under logical ids derived from their names, no
//! timestamps, the account and region as CloudFormation's pseudo parameters.
//!
//! Resources: `AWS::Events::Rule` (targets inline), `AWS::Lambda::Permission` for each Lambda
//! target of a rule, `AWS::Scheduler::ScheduleGroup` and `AWS::Scheduler::Schedule`, and, when
//! no role is given, the `AWS::IAM::Role` Scheduler assumes, allowed exactly its targets.
//! Local functions with their code directory as a local path (`Code`/`CodeUri`, for `aws
//! cloudformation package` or `sam deploy`), their layers, event invoke config and triggers:
//! SAM `Events` (`SQS`, `SNS`, `HttpApi`, `ScheduleV2`), or event-source mappings, SNS
//! subscriptions with their permissions, and schedules.

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
    (scheduler_role_arn, events_role_arn, function_role_arn): (
        Option<&str>,
        Option<&str>,
        Option<&str>,
    ),
    rules_dir: &std::path::Path,
    format: Format,
) -> Context {
    Context {
        region: REGION.to_owned(),
        account: ACCOUNT.to_owned(),
        bus: bus.to_owned(),
        deployment: deployment.to_owned(),
        scheduler_role_arn: Some(scheduler_role_arn.unwrap_or(ROLE_STAND_IN).to_owned()),
        events_role_arn: Some(events_role_arn.unwrap_or(EVENTS_ROLE_STAND_IN).to_owned()),
        env: super::desired::Env::Names,
        function_role_arn: Some(
            function_role_arn
                .unwrap_or(FUNCTION_ROLE_STAND_IN)
                .to_owned(),
        ),
        packages: Default::default(),
        template: Some(super::desired::Template {
            rules_dir: rules_dir.to_owned(),
            sam: format == Format::Sam,
        }),
    }
}

const FUNCTION_ROLE_STAND_IN: &str = "TRIGDEXPORTFUNCTIONROLE0";
/// The parameter that names the functions' execution role when none is given.
pub const FUNCTION_ROLE_PARAMETER: &str = "FunctionRole";

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
fn substitute(v: Value, functions: &Map<String, Value>) -> Value {
    match v {
        Value::String(s) if s == ROLE_STAND_IN => json!({"Fn::GetAtt": [ROLE_ID, "Arn"]}),
        Value::String(s) if s == FUNCTION_ROLE_STAND_IN => json!({"Ref": FUNCTION_ROLE_PARAMETER}),
        Value::String(s) if functions.contains_key(&s) => functions[&s].clone(),
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
        Value::Array(a) => Value::Array(a.into_iter().map(|v| substitute(v, functions)).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, substitute(v, functions)))
                .collect(),
        ),
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
    // A local function's ARN, wherever it is written, becomes its resource's.
    let mut function_arns = Map::new();
    for r in desired
        .resources
        .iter()
        .filter(|r| r.kind == Kind::Function)
    {
        if let Some(arn) = r.spec.get("FunctionArn").and_then(Value::as_str) {
            function_arns.insert(
                arn.to_owned(),
                json!({"Fn::GetAtt": [logical_id("Function", &r.name), "Arn"]}),
            );
        }
    }
    let sam = format == Format::Sam;
    // SAM: each function's `Events`, by function name.
    let mut events: std::collections::BTreeMap<String, Map<String, Value>> = Default::default();
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
            Kind::Function => {
                let id = logical_id("Function", &r.name);
                let mut f = function(r, ctx, sam);
                if let Some(mut c) = f
                    .as_object_mut()
                    .and_then(|m| m.remove("EventInvokeConfig"))
                    && let Some(m) = c.as_object_mut()
                {
                    m.insert("FunctionName".into(), json!({"Ref": id}));
                    m.insert("Qualifier".into(), json!("$LATEST"));
                    resources.insert(
                        logical_id("InvokeConfig", &r.name),
                        json!({"Type": "AWS::Lambda::EventInvokeConfig", "Properties": c}),
                    );
                }
                resources.insert(id, f);
            }
            Kind::Layer => {
                let content = r.spec.get("Content").cloned().unwrap_or_default();
                let layer = if sam {
                    json!({"Type": "AWS::Serverless::LayerVersion", "Properties": {
                        "LayerName": r.name, "ContentUri": content,
                    }})
                } else {
                    json!({"Type": "AWS::Lambda::LayerVersion", "Properties": {
                        "LayerName": r.name, "Content": content,
                    }})
                };
                resources.insert(logical_id("Layer", &r.name), layer);
            }
            Kind::EventSourceMapping => {
                let (function, queue) = r.name.split_once('@').unwrap_or((&r.name, ""));
                let mut props = Map::new();
                for (k, v) in r.spec.as_object().into_iter().flatten() {
                    match k.as_str() {
                        "FunctionName" => {}
                        "EventSourceArn" if sam => {
                            props.insert("Queue".into(), v.clone());
                        }
                        "Filters" => {
                            let filters: Vec<Value> = v
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|p| json!({"Pattern": text(p)}))
                                .collect();
                            props.insert("FilterCriteria".into(), json!({"Filters": filters}));
                        }
                        "MaximumConcurrency" => {
                            props.insert("ScalingConfig".into(), json!({"MaximumConcurrency": v}));
                        }
                        _ => {
                            props.insert(k.clone(), v.clone());
                        }
                    }
                }
                let queue_name = queue.rsplit(':').next().unwrap_or_default();
                if sam {
                    events.entry(function.to_owned()).or_default().insert(
                        keyed_id("Sqs", queue_name, &r.name),
                        json!({"Type": "SQS", "Properties": props}),
                    );
                } else {
                    props.insert(
                        "FunctionName".into(),
                        json!({"Ref": logical_id("Function", function)}),
                    );
                    resources.insert(
                        keyed_id("Mapping", queue_name, &r.name),
                        json!({"Type": "AWS::Lambda::EventSourceMapping", "Properties": props}),
                    );
                }
            }
            Kind::Subscription => {
                let (function, topic) = r.name.split_once('@').unwrap_or((&r.name, ""));
                let topic_name = topic.rsplit(':').next().unwrap_or_default();
                if sam {
                    events.entry(function.to_owned()).or_default().insert(
                        keyed_id("Sns", topic_name, &r.name),
                        json!({"Type": "SNS", "Properties": {"Topic": topic}}),
                    );
                } else {
                    let arn = json!({"Fn::GetAtt": [logical_id("Function", function), "Arn"]});
                    resources.insert(
                        keyed_id("Subscription", topic_name, &r.name),
                        json!({"Type": "AWS::SNS::Subscription", "Properties": {
                            "TopicArn": topic, "Protocol": "lambda", "Endpoint": arn,
                        }}),
                    );
                    resources.insert(
                        keyed_id("SnsPermission", topic_name, &r.name),
                        json!({"Type": "AWS::Lambda::Permission", "Properties": {
                            "Action": "lambda:InvokeFunction",
                            "FunctionName": arn,
                            "Principal": "sns.amazonaws.com",
                            "SourceArn": topic,
                        }}),
                    );
                }
            }
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
                let local = desired.resources.iter().find(|f| {
                    f.kind == Kind::Function && f.spec.get("FunctionArn") == Some(&json!(arn))
                });
                if let (true, Some(f)) = (sam, local) {
                    events
                        .entry(f.name.clone())
                        .or_default()
                        .insert(logical_id("Schedule", &r.name), schedule_v2(props));
                } else {
                    resources.insert(
                        logical_id("Schedule", &r.name),
                        json!({"Type": "AWS::Scheduler::Schedule", "Properties": props}),
                    );
                }
            }
        }
    }
    if sam {
        for route in &desired.routes {
            let mut props = Map::new();
            if let Some(m) = &route.method {
                props.insert("Method".into(), json!(m));
            }
            if let Some(p) = &route.path {
                props.insert("Path".into(), json!(p));
            }
            props.insert("PayloadFormatVersion".into(), json!(route.payload_format));
            let key = format!(
                "{} {}",
                route.method.as_deref().unwrap_or("$default"),
                route.path.as_deref().unwrap_or_default()
            );
            events.entry(route.function.clone()).or_default().insert(
                keyed_id("Api", &key, &format!("{}@{key}", route.function)),
                json!({"Type": "HttpApi", "Properties": props}),
            );
        }
    }
    for (function, evs) in events {
        if let Some(props) = resources
            .get_mut(&logical_id("Function", &function))
            .and_then(|f| f.get_mut("Properties"))
            .and_then(Value::as_object_mut)
        {
            props.insert("Events".into(), Value::Object(evs));
        }
    }
    if ctx.function_role_arn.as_deref() == Some(FUNCTION_ROLE_STAND_IN)
        && desired.resources.iter().any(|r| r.kind == Kind::Function)
    {
        parameters.insert(
            FUNCTION_ROLE_PARAMETER.to_owned(),
            json!({"Type": "String", "Description":
                "the ARN of the local functions' execution role (trigd deploy's --function-role)"}),
        );
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
             statement): merge in the statements others need first. {}",
            ctx.deployment,
            if sam {
                "Local functions' code is named by directory: run `sam build` and `sam deploy` \
                 (or `sam package`) rather than deploying this file as it is."
            } else {
                "Local functions' code is named by directory: run `aws cloudformation package` \
                 first, and deploy the template it writes."
            }
        )),
    );
    if !parameters.is_empty() {
        out.insert("Parameters".into(), Value::Object(parameters));
    }
    out.insert(
        "Resources".into(),
        substitute(Value::Object(resources), &function_arns),
    );
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

/// A local function: `AWS::Lambda::Function` with its code directory as `Code` (for `aws
/// cloudformation package`), or `AWS::Serverless::Function` with it as `CodeUri`; its event
/// invoke config inline (SAM) or as `AWS::Lambda::EventInvokeConfig` beside it (not here: see
/// [`template`]).
fn function(r: &Resource, ctx: &Context, sam: bool) -> Value {
    let mut props = Map::new();
    for (k, v) in r.spec.as_object().into_iter().flatten() {
        match k.as_str() {
            "FunctionArn" => {}
            "Code" if sam => {
                props.insert("CodeUri".into(), v.clone());
            }
            "Environment" => {
                props.insert("Environment".into(), json!({ "Variables": v }));
            }
            "Layers" => {
                let layers: Vec<Value> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|l| {
                        let name = l.strip_prefix(super::desired::LAYER).unwrap_or(l);
                        json!({"Ref": logical_id("Layer", name)})
                    })
                    .collect();
                props.insert("Layers".into(), Value::Array(layers));
            }
            "EventInvokeConfig" => {
                let mut config = Map::new();
                let mut destinations = Map::new();
                for (ck, cv) in v.as_object().into_iter().flatten() {
                    match ck.as_str() {
                        "OnSuccess" | "OnFailure" => {
                            let arn = cv.as_str().unwrap_or_default();
                            let mut d = Map::new();
                            if sam {
                                d.insert("Type".into(), json!(destination_type(arn)));
                            }
                            d.insert("Destination".into(), cv.clone());
                            destinations.insert(ck.clone(), Value::Object(d));
                        }
                        _ => {
                            config.insert(ck.clone(), cv.clone());
                        }
                    }
                }
                if !destinations.is_empty() {
                    config.insert("DestinationConfig".into(), Value::Object(destinations));
                }
                props.insert("EventInvokeConfig".into(), Value::Object(config));
            }
            _ => {
                props.insert(k.clone(), v.clone());
            }
        }
    }
    let invoke = props.remove("EventInvokeConfig");
    if sam {
        if let Some(c) = invoke {
            props.insert("EventInvokeConfig".into(), c);
        }
        props.insert(
            "Tags".into(),
            json!({MANAGED_BY.0: MANAGED_BY.1, DEPLOYMENT_TAG: ctx.deployment}),
        );
        json!({"Type": "AWS::Serverless::Function", "Properties": props})
    } else {
        props.insert("Tags".into(), tags(ctx));
        let mut f = json!({"Type": "AWS::Lambda::Function", "Properties": props});
        if let (Some(c), Some(m)) = (invoke, f.as_object_mut()) {
            // Carried to `template`, which writes it as its own resource.
            m.insert("EventInvokeConfig".into(), c);
        }
        f
    }
}

/// SAM's destination `Type` of an ARN.
fn destination_type(arn: &str) -> &'static str {
    if arn.starts_with("arn:aws:sqs:") {
        "SQS"
    } else if arn.starts_with("arn:aws:sns:") {
        "SNS"
    } else if arn.starts_with("arn:aws:lambda:") {
        "Lambda"
    } else {
        "EventBridge"
    }
}

/// A schedule of a local function as SAM's `ScheduleV2` event: the schedule's fields, with its
/// target's input, role, retry policy and dead-letter queue, as `trigd deploy` sends them.
fn schedule_v2(schedule: Map<String, Value>) -> Value {
    let mut props = Map::new();
    for (k, v) in schedule {
        match k.as_str() {
            "Target" => {
                for (tk, tv) in v.as_object().into_iter().flatten() {
                    match tk.as_str() {
                        "Input" => {
                            props.insert("Input".into(), text(tv));
                        }
                        "RoleArn" | "RetryPolicy" | "DeadLetterConfig" => {
                            props.insert(tk.clone(), tv.clone());
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                props.insert(k, v);
            }
        }
    }
    json!({"Type": "ScheduleV2", "Properties": props})
}
