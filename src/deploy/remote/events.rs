//! EventBridge: rules and their targets (read, put, removed), connections and API
//! destinations.

use super::*;

/// The deployment's connections and API destinations, found by their names' prefix.
pub(super) async fn read_http(
    c: &Clients,
    ctx: &Context,
    actual: &mut Actual,
) -> Result<(), RemoteError> {
    let prefix = super::super::desired::statement_prefix(ctx);
    let prefix = prefix.as_str();
    let names = all_pages(|token| async move {
        let out = c
            .events
            .list_connections()
            .name_prefix(prefix)
            .set_next_token(token)
            .send()
            .await
            .map_err(call("ListConnections"))?;
        let names: Vec<String> = out
            .connections
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.name)
            // moto takes the prefix as a pattern: checked again.
            .filter(|n| n.starts_with(prefix))
            .collect();
        Ok((names, out.next_token))
    })
    .await?;
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
    let names = all_pages(|token| async move {
        let out = c
            .events
            .list_api_destinations()
            .name_prefix(prefix)
            .set_next_token(token)
            .send()
            .await
            .map_err(call("ListApiDestinations"))?;
        let names: Vec<String> = out
            .api_destinations
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| d.name)
            // Checked again, as for connections.
            .filter(|n| n.starts_with(prefix))
            .collect();
        Ok((names, out.next_token))
    })
    .await?;
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
                    .unwrap_or(super::super::desired::API_DESTINATION_RATE as i32)
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
pub(super) async fn put_connection(
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
pub(super) async fn put_api_destination(
    c: &Clients,
    r: &Resource,
    create: bool,
) -> Result<(), RemoteError> {
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
    // The create and update requests take the same fields (builders of two types).
    macro_rules! every_field {
        ($req:expr) => {
            $req.name(&r.name)
                .description(description)
                .connection_arn(connection)
                .invocation_endpoint(endpoint)
                .http_method(method)
                .set_invocation_rate_limit_per_second(rate)
        };
    }
    c.wrote();
    if create {
        every_field!(c.events.create_api_destination())
            .send()
            .await
            .map_err(call("CreateApiDestination"))?;
    } else {
        every_field!(c.events.update_api_destination())
            .send()
            .await
            .map_err(call("UpdateApiDestination"))?;
    }
    Ok(())
}

pub(super) async fn list_targets(
    c: &Clients,
    ctx: &Context,
    rule: &str,
) -> Result<Vec<aws_sdk_eventbridge::types::Target>, RemoteError> {
    all_pages(|token| async move {
        let page = c
            .events
            .list_targets_by_rule()
            .rule(rule)
            .event_bus_name(&ctx.bus)
            .set_next_token(token)
            .send()
            .await
            .map_err(call("ListTargetsByRule"))?;
        Ok((page.targets.unwrap_or_default(), page.next_token))
    })
    .await
}

/// A rule read from EventBridge, in the desired state's shape.
pub(super) fn rule_spec(
    rule: &aws_sdk_eventbridge::types::Rule,
    ctx: &Context,
    targets: &[aws_sdk_eventbridge::types::Target],
) -> Value {
    let prefix = super::super::desired::statement_prefix(ctx);
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
                    format!("{}{name}", super::super::desired::API_DESTINATION)
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
            v.insert(
                "HttpParameters".into(),
                json!({"HeaderParameters": sorted_object(h)}),
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
                m.insert("InputPathsMap".into(), Value::Object(sorted_object(paths)));
            }
            m.insert("InputTemplate".into(), json!(tr.input_template));
            v.insert("InputTransformer".into(), Value::Object(m));
        }
        let retry = t.retry_policy.as_ref();
        v.insert(
            "RetryPolicy".into(),
            retry_json(
                retry.and_then(|r| r.maximum_retry_attempts),
                retry.and_then(|r| r.maximum_event_age_in_seconds),
            ),
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

pub(super) fn sdk_rule_target(
    v: &Value,
    destinations: &std::collections::HashMap<String, String>,
) -> Result<aws_sdk_eventbridge::types::Target, RemoteError> {
    use aws_sdk_eventbridge::types as t;
    let arn = str_at(v, "Arn").unwrap_or_default();
    let arn = match arn.strip_prefix(super::super::desired::API_DESTINATION) {
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

pub(super) async fn put_rule(
    c: &Clients,
    ctx: &Context,
    r: &Resource,
    create: bool,
) -> Result<(), RemoteError> {
    use aws_sdk_eventbridge::types::RuleState;
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
        req = req.set_tags(Some(rule_tags(ctx)?));
    }
    c.wrote();
    req.send().await.map_err(call("PutRule"))?;
    Ok(())
}

/// [`our_tags`] as EventBridge tags.
pub(super) fn rule_tags(
    ctx: &Context,
) -> Result<Vec<aws_sdk_eventbridge::types::Tag>, RemoteError> {
    our_tags(ctx)
        .into_iter()
        .map(|(k, v)| {
            aws_sdk_eventbridge::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(build("Tag"))
        })
        .collect()
}

pub(super) fn targets_of(spec: Option<&Value>) -> Map<String, Value> {
    spec.and_then(|s| s.get("Targets"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Puts the targets that are new or changed, then removes those no longer written.
pub(super) async fn sync_targets(
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
            if let Some(d) = str_at(v, "Arn")
                .and_then(|a| a.strip_prefix(super::super::desired::API_DESTINATION))
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

pub(super) async fn remove_targets(
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
