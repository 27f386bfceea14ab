//! `http` targets: a connection (authorisation, secret headers) and an API destination each.

use super::*;

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
pub(super) fn resolve(text: &str, env: &Env) -> Result<String, Vec<String>> {
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
pub(super) fn http_target(
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
