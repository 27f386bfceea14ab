//! Queue and topic policies (read-modify-write, keeping every statement trigd did not write),
//! and SNS subscriptions.

use super::*;

/// The queues and topics whose policies may hold this deployment's statement: those the rules
/// want, and those the deployment's rules on AWS send to (targets and dead-letter queues).
pub(super) async fn read_policies(
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
    let sid = super::super::desired::policy_sid(ctx);
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
        let mut spec = super::super::desired::policy_spec(&arn, action, &sid, &sources);
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

/// The SNS subscriptions of the deployment's functions.
pub(super) async fn read_subscriptions(
    c: &Clients,
    actual: &mut Actual,
) -> Result<(), RemoteError> {
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

pub(super) async fn list_subscriptions(
    c: &Clients,
) -> Result<Vec<aws_sdk_sns::types::Subscription>, RemoteError> {
    all_pages(|token| async move {
        let page = c
            .sns
            .list_subscriptions()
            .set_next_token(token)
            .send()
            .await
            .map_err(call("ListSubscriptions"))?;
        Ok((page.subscriptions.unwrap_or_default(), page.next_token))
    })
    .await
}

/// The statements of a policy document.
pub(super) fn statements(policy: &Value) -> Vec<Value> {
    match policy.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` → (ACCOUNT, NAME).
pub(super) fn queue_parts(arn: &str) -> (&str, &str) {
    let mut parts = arn.rsplit(':');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    (account, name)
}

pub(super) async fn queue_url(c: &Clients, arn: &str) -> Result<Option<String>, RemoteError> {
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

/// A queue's or topic's policy document (empty when it has none); `None` when the queue or
/// topic does not exist.
pub(super) async fn get_policy_document(
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
pub(super) async fn write_policy(
    c: &Clients,
    ctx: &Context,
    kind: Kind,
    arn: &str,
    statement: Option<&Value>,
) -> Result<(), RemoteError> {
    let sid = super::super::desired::policy_sid(ctx);
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
pub(super) async fn unsubscribe(c: &Clients, r: &Resource) -> Result<(), RemoteError> {
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
