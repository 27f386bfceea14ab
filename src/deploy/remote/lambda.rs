//! Lambda: the deployment's functions (code, settings, reserved concurrency, event invoke
//! config), layers, event-source mappings, and statements in functions' policies.

use super::*;

/// The statements this deployment wrote in the policies of the functions it wants to reach
/// or its rules reach; functions that do not exist are listed as missing.
pub(super) async fn read_permissions(
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
    let prefix = super::super::desired::statement_prefix(ctx);
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

/// Lambda functions tagged for this deployment (with their full settings), and functions of a
/// wanted name that are not (conflicts).
pub(super) async fn read_functions(
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
    let configs = all_pages(|marker| async move {
        let out = c
            .lambda
            .list_functions()
            .set_marker(marker)
            .send()
            .await
            .map_err(call("ListFunctions"))?;
        Ok((out.functions.unwrap_or_default(), out.next_marker))
    })
    .await?;
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
pub(super) async fn read_layers(
    c: &Clients,
    ctx: &Context,
    actual: &mut Actual,
) -> Result<(), RemoteError> {
    let prefix = super::super::desired::statement_prefix(ctx);
    let prefix = prefix.as_str();
    let names = all_pages(|marker| async move {
        let page = c
            .lambda
            .list_layers()
            .set_marker(marker)
            .send()
            .await
            .map_err(call("ListLayers"))?;
        let names: Vec<String> = page
            .layers
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| l.layer_name)
            .filter(|n| n.starts_with(prefix))
            .collect();
        Ok((names, page.next_marker))
    })
    .await?;
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

pub(super) async fn layer_versions(
    c: &Clients,
    name: &str,
) -> Result<Vec<aws_sdk_lambda::types::LayerVersionsListItem>, RemoteError> {
    all_pages(|marker| async move {
        let page = c
            .lambda
            .list_layer_versions()
            .layer_name(name)
            .set_marker(marker)
            .send()
            .await
            .map_err(call("ListLayerVersions"))?;
        Ok((page.layer_versions.unwrap_or_default(), page.next_marker))
    })
    .await
}

/// The code hash of a layer version, by its ARN (`arn:aws:lambda:R:A:layer:NAME:VERSION`).
pub(super) async fn layer_sha(c: &Clients, version_arn: &str) -> Result<String, RemoteError> {
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
pub(super) async fn layer_arns(c: &Clients, spec: &Value) -> Result<Vec<String>, RemoteError> {
    let mut out = Vec::new();
    for r in spec
        .get("Layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let Some((name, sha)) = r
            .strip_prefix(super::super::desired::LAYER)
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

/// The event-source mappings of the deployment's functions.
pub(super) async fn read_mappings(c: &Clients, actual: &mut Actual) -> Result<(), RemoteError> {
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
pub(super) async fn list_mappings(
    c: &Clients,
    function: &str,
    source: Option<&str>,
) -> Result<Vec<aws_sdk_lambda::types::EventSourceMappingConfiguration>, RemoteError> {
    all_pages(|marker| async move {
        let page = c
            .lambda
            .list_event_source_mappings()
            .function_name(function)
            .set_event_source_arn(source.map(str::to_owned))
            .set_marker(marker)
            .send()
            .await
            .map_err(call("ListEventSourceMappings"))?;
        Ok((
            page.event_source_mappings.unwrap_or_default(),
            page.next_marker,
        ))
    })
    .await
}

/// Creates or updates an event-source mapping (all its settings).
pub(super) async fn put_mapping(
    c: &Clients,
    r: &Resource,
    create: bool,
) -> Result<(), RemoteError> {
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
pub(super) async fn function_spec(
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
        spec.insert("Environment".into(), Value::Object(sorted_object(vars)));
    }
    let mut layers = Vec::new();
    for l in f.layers.iter().flatten() {
        let arn = l.arn.as_deref().unwrap_or_default();
        // `arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION`.
        let name = arn.rsplit(':').nth(1).unwrap_or_default();
        let sha = layer_sha(c, arn).await?;
        layers.push(json!(format!(
            "{}{name}@{sha}",
            super::super::desired::LAYER
        )));
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

pub(super) fn environment(spec: &Value) -> aws_sdk_lambda::types::Environment {
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
pub(super) async fn wait_ready(c: &Clients, name: &str) -> Result<(), RemoteError> {
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
pub(super) async fn put_function(
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
        for (k, v) in our_tags(ctx) {
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

pub(super) async fn add_permission(c: &Clients, r: &Resource) -> Result<(), RemoteError> {
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

pub(super) async fn remove_permission(c: &Clients, r: &Resource) -> Result<(), RemoteError> {
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
