//! The validated rule set: what `trigd check` accepts and what every other command runs on.
//!
//! Values of these types exist only after validation (`config::load_rules`), so downstream
//! code never re-checks them: a `Rule` has 1–5 targets with unique ids, a compiled pattern or
//! a parsed schedule, and targets whose input options are compiled.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::pattern::{Matcher, Pattern};
use crate::schedule::ScheduleExpr;
use crate::transform::InputSpec;

/// Where rules run: these fill the envelope fields and ARNs that AWS would fill, and give the
/// delivery settings of targets that do not set their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub region: String,
    pub account: String,
    pub defaults: Defaults,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            region: "us-east-1".to_owned(),
            account: "123456789012".to_owned(),
            defaults: Defaults::default(),
        }
    }
}

/// Delivery settings for targets that do not set their own (`defaults:` in trigd.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub retry: RetryPolicy,
    pub concurrency: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            retry: RetryPolicy::default(),
            concurrency: 16,
        }
    }
}

/// All rules and sources of a rules directory, plus the matcher compiled over the pattern
/// rules.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub sources: Vec<Source>,
    /// Local functions (`functions:`), by name in file order.
    pub functions: Vec<Function>,
    /// The functions' triggers (`triggers:`), in file order. A `schedule` trigger is also a
    /// schedule rule in `rules` (see [`FunctionTriggerKind::Schedule`]).
    pub triggers: Vec<FunctionTrigger>,
    pub settings: Settings,
    /// One target per function, for invocations that come through the Invoke API with
    /// `InvocationType: Event`: they wait in the outbox as deliveries of [`INVOKE_RULE`].
    invoke_targets: Vec<Target>,
    /// Compiled over the pattern rules; rule ids index `pattern_rules`.
    matcher: Matcher,
    /// Indexes into `rules` of the rules with a pattern, in matcher order.
    pattern_rules: Vec<usize>,
    /// Rule name → index into `rules`: every delivery looks its rule up by name, so the cost
    /// must not grow with the number of rules.
    by_name: HashMap<String, usize>,
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>, sources: Vec<Source>, settings: Settings) -> RuleSet {
        let pattern_rules: Vec<usize> = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.trigger, Trigger::Pattern(_)))
            .map(|(i, _)| i)
            .collect();
        let matcher = Matcher::new(
            pattern_rules
                .iter()
                .filter_map(|&i| match &rules[i].trigger {
                    Trigger::Pattern(p) => Some(p),
                    Trigger::Schedule(_) => None,
                }),
        );
        let by_name = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        RuleSet {
            rules,
            sources,
            functions: Vec::new(),
            triggers: Vec::new(),
            invoke_targets: Vec::new(),
            settings,
            matcher,
            pattern_rules,
            by_name,
        }
    }

    /// Adds the local functions, and the targets that asynchronous invocations through the
    /// Invoke API are delivered to.
    pub fn with_functions(mut self, functions: Vec<Function>) -> RuleSet {
        self.invoke_targets = functions
            .iter()
            .map(|f| Target {
                id: f.name.clone(),
                kind: TargetKind::Function {
                    name: f.name.clone(),
                    on_success: None,
                    on_failure: None,
                },
                input: InputSpec::WholeEvent,
                retry: f.retry,
                dead_letter: None,
                concurrency: f.concurrency,
                log_output: false,
            })
            .collect();
        self.functions = functions;
        self
    }

    /// With the functions' triggers.
    pub fn with_triggers(mut self, triggers: Vec<FunctionTrigger>) -> RuleSet {
        self.triggers = triggers;
        self
    }

    /// The triggers that take their events from the source named `source`.
    pub fn triggers_on<'a>(&'a self, source: &'a str) -> impl Iterator<Item = &'a FunctionTrigger> {
        self.triggers
            .iter()
            .filter(move |t| t.kind.source() == Some(source))
    }

    /// The local function named `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The target an asynchronous invocation of function `name` is delivered to.
    pub fn invoke_target(&self, name: &str) -> Option<&Target> {
        self.invoke_targets.iter().find(|t| t.id == name)
    }

    /// The compiled matcher over the pattern rules.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The index in `rules` of the rule behind a matcher result.
    pub fn rule_index(&self, id: crate::pattern::RuleId) -> Option<usize> {
        self.pattern_rules.get(id as usize).copied()
    }

    /// The rule named `name`, found through an index built with the set (`rules` is public:
    /// if it was changed since, the index is checked and a scan answers instead).
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        match self.by_name.get(name).and_then(|&i| self.rules.get(i)) {
            Some(r) if r.name == name => Some(r),
            _ => self.rules.iter().find(|r| r.name == name),
        }
    }

    /// The ARN EventBridge would give the rule (default bus).
    pub fn rule_arn(&self, rule: &str) -> String {
        format!(
            "arn:aws:events:{}:{}:rule/{rule}",
            self.settings.region, self.settings.account
        )
    }
}

/// One rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    pub trigger: Trigger,
    pub targets: Vec<Target>,
    /// A disabled rule is validated and listed but never fires.
    pub enabled: bool,
    /// Where the rule's name is written, for messages.
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// What makes a rule fire.
// One per rule, built once at load: the size of the larger variant costs nothing that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Trigger {
    Pattern(Pattern),
    Schedule(Schedule),
}

/// A schedule rule's timing.
#[derive(Debug)]
pub struct Schedule {
    pub expr: ScheduleExpr,
    /// IANA time zone for cron and at (rate is absolute time).
    pub timezone: chrono_tz::Tz,
    /// No fires before this instant.
    pub start: Option<DateTime<Utc>>,
    /// No fires after this instant.
    pub end: Option<DateTime<Utc>>,
    /// Each fire happens at a random point within this window after its scheduled time.
    pub jitter: Option<Duration>,
    pub catch_up: CatchUp,
}

/// What to do with fires missed while the daemon was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Forget them.
    Skip,
    /// Fire once on start-up if the latest missed fire is younger than `within`.
    Once { within: Duration },
}

/// One target of a rule.
#[derive(Debug)]
pub struct Target {
    pub id: String,
    pub kind: TargetKind,
    pub input: InputSpec,
    pub retry: RetryPolicy,
    pub dead_letter: Option<DeadLetter>,
    /// Most deliveries to this target in flight at once.
    pub concurrency: u32,
    /// Log each successful delivery at info, with a command's output (`log_output: true`);
    /// otherwise successes are logged at debug. Failures are always logged.
    pub log_output: bool,
}

/// Where a target delivers, with the options of its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    Lambda {
        function: String,
        invocation_type: InvocationType,
        on_success: Option<Box<Destination>>,
        on_failure: Option<Box<Destination>>,
    },
    Sqs {
        queue_url: String,
        message_group_id: Option<String>,
    },
    Sns {
        topic_arn: String,
        subject: Option<String>,
    },
    EventBridge {
        bus: String,
        source: Option<String>,
        detail_type: Option<String>,
    },
    Http {
        url: HttpUrl,
        method: String,
        /// Values may hold `${VAR}` references, resolved from the environment at delivery.
        headers: Vec<(String, String)>,
        timeout: Duration,
    },
    Command {
        argv: Vec<String>,
        timeout: Duration,
        cwd: Option<PathBuf>,
        env: Vec<(String, String)>,
        on_success: Option<Box<Destination>>,
        on_failure: Option<Box<Destination>>,
    },
    Log,
    /// A local function (`functions:` in a rule file), run by trigd as Lambda runs it.
    Function {
        name: String,
        on_success: Option<Box<Destination>>,
        on_failure: Option<Box<Destination>>,
    },
}

/// An `http` target's URL: the text as written in the rule (for messages and ARNs), turned
/// once, when the rule is loaded, into what each request needs: the request URI, and the
/// `Authorization` header for credentials written in the URL (`https://user:pass@host/`, sent
/// as HTTP Basic authentication, as curl and reqwest do). The fragment is never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    text: String,
    /// Boxed: rules hold many targets, most of them not `http`.
    request: Box<RequestParts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestParts {
    uri: http::Uri,
    basic_auth: Option<http::HeaderValue>,
}

impl HttpUrl {
    /// Parses an `http://` or `https://` URL; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let parsed = url::Url::parse(text).map_err(|e| e.to_string())?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "the scheme must be http or https, not {}",
                parsed.scheme()
            ));
        }
        // The URL's normalised, ASCII form, without credentials and fragment.
        let request_uri = format!(
            "{}://{}",
            parsed.scheme(),
            &parsed[url::Position::BeforeHost..url::Position::AfterQuery]
        );
        let uri = http::Uri::try_from(request_uri)
            .map_err(|e| format!("cannot be sent as an HTTP request: {e}"))?;
        Ok(HttpUrl {
            text: text.to_owned(),
            request: Box::new(RequestParts {
                uri,
                basic_auth: basic_auth(&parsed)?,
            }),
        })
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The request URI: scheme, host, port, path and query.
    pub fn uri(&self) -> &http::Uri {
        &self.request.uri
    }

    /// `Basic ...` for the credentials in the URL, if it has any (marked sensitive).
    pub fn basic_auth(&self) -> Option<&http::HeaderValue> {
        self.request.basic_auth.as_ref()
    }
}

/// The `Authorization` value for the user and password in `url`, percent-decoded.
fn basic_auth(url: &url::Url) -> Result<Option<http::HeaderValue>, String> {
    use base64::Engine as _;
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "the user or password is not UTF-8 once percent-decoded".to_owned())
    };
    if url.username().is_empty() && url.password().is_none() {
        return Ok(None);
    }
    let credentials = format!(
        "{}:{}",
        decode(url.username())?,
        decode(url.password().unwrap_or(""))?
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = http::HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| "the credentials do not make a valid header".to_owned())?;
    value.set_sensitive(true);
    Ok(Some(value))
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl TargetKind {
    /// The key that names this kind in a rule file.
    pub fn name(&self) -> &'static str {
        match self {
            TargetKind::Lambda { .. } => "lambda",
            TargetKind::Sqs { .. } => "sqs",
            TargetKind::Sns { .. } => "sns",
            TargetKind::EventBridge { .. } => "eventbridge",
            TargetKind::Http { .. } => "http",
            TargetKind::Command { .. } => "command",
            TargetKind::Log => "log",
            TargetKind::Function { .. } => "function",
        }
    }
}

/// Lambda's invocation types that a target may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// Asynchronous, as EventBridge invokes: a function error is Lambda's to retry.
    Event,
    /// Synchronous: a function error is a failed attempt.
    RequestResponse,
}

/// Where a target's result goes (`on_success` / `on_failure`).
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    Target(TargetKind),
    /// trigd's own bus: the record becomes an event other rules can match.
    Bus,
}

/// EventBridge's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt: 0–185.
    pub max_attempts: u32,
    /// 60 s – 24 h.
    pub max_event_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 185,
            max_event_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Where deliveries that cannot succeed go, besides the local dead-letter directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetter {
    Sqs(String),
}

/// An event source declared in a rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// The kinds of sources.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Sqs {
        queue_url: String,
        format: QueueFormat,
        concurrency: u32,
    },
    /// SNS HTTP(S) subscriptions, received at `POST /sns/{name}`.
    Sns {
        /// Topics whose messages are accepted; empty: any topic.
        topic_arns: Vec<String>,
        /// Hosts, besides AWS's SNS hosts, trusted to serve signing certificates and
        /// subscription URLs.
        trusted_cert_hosts: Vec<TrustedHost>,
        /// Messages whose `Timestamp` is older than this are refused as replays.
        max_age: Duration,
    },
    Webhook {
        /// Environment variable holding the bearer token the sender must present.
        bearer_token_env: Option<String>,
        /// Environment variable holding the HMAC-SHA256 secret of the body signature.
        hmac_secret_env: Option<String>,
        hmac_header: String,
        /// `request: true`: the event's `detail` is the whole request (method, path, query,
        /// headers without secrets, body), not just the body.
        request: bool,
    },
}

/// A host an `sns` source trusts, besides AWS's `sns.REGION.amazonaws.com[.cn]`, to serve
/// signing certificates and subscription URLs (`trusted_cert_hosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedHost {
    /// Plain `http`; validation allows it only for loopback hosts. Otherwise `https`.
    pub http: bool,
    /// Lower case; an IP address in its canonical form (IPv6 without brackets); `*.` in front
    /// stands for any subdomain.
    pub host: String,
    /// `None`: any port.
    pub port: Option<u16>,
}

/// Why a `trusted_cert_hosts` entry is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustedHostError {
    #[error("the scheme must be https (or http for a loopback host)")]
    Scheme,
    #[error("it must be a host and an optional port, without a path")]
    NotJustHost,
    #[error("`{0}` is not an IPv6 address")]
    Ipv6(String),
    #[error("`{0}` is not a port number")]
    Port(String),
    #[error("`{0}` is not a host name (IPv6 addresses go in brackets)")]
    Host(String),
    #[error("plain http is allowed only for loopback hosts (127.0.0.1, ::1, localhost)")]
    HttpNotLoopback,
}

impl std::str::FromStr for TrustedHost {
    type Err = TrustedHostError;

    /// `[https://|http://]HOST[:PORT]`: HOST is a DNS name (`*.` in front for any subdomain)
    /// or an IP address (IPv6 in brackets). No scheme means https.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (http, rest) = if let Some(rest) = spec.strip_prefix("http://") {
            (true, rest)
        } else if let Some(rest) = spec.strip_prefix("https://") {
            (false, rest)
        } else if spec.contains("://") {
            return Err(TrustedHostError::Scheme);
        } else {
            (false, spec)
        };
        if rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace) {
            return Err(TrustedHostError::NotJustHost);
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner
                .split_once(']')
                .ok_or_else(|| TrustedHostError::Ipv6(inner.to_owned()))?;
            let ip: std::net::Ipv6Addr = addr
                .parse()
                .map_err(|_| TrustedHostError::Ipv6(addr.to_owned()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| TrustedHostError::Port(p.to_owned()))?,
                ),
            };
            (ip.to_string(), port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (rest.to_ascii_lowercase(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(TrustedHostError::Port(p.to_owned())),
            },
        };
        let ip = host.parse::<std::net::IpAddr>().ok();
        if ip.is_none() {
            let name = host.strip_prefix("*.").unwrap_or(&host);
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if name.is_empty() || !name.split('.').all(label_ok) {
                return Err(TrustedHostError::Host(host));
            }
        }
        let loopback = host == "localhost" || ip.is_some_and(|ip| ip.is_loopback());
        if http && !loopback {
            return Err(TrustedHostError::HttpNotLoopback);
        }
        Ok(TrustedHost { http, host, port })
    }
}

/// How old an SNS message may be before it is refused as a replay, by default.
pub const DEFAULT_SNS_MAX_AGE: Duration = Duration::from_secs(3600);

/// What the messages on a queue carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFormat {
    Auto,
    S3,
    Sns,
    EventBridge,
    Raw,
}

#[cfg(test)]
mod tests {
    use super::HttpUrl;

    #[test]
    fn http_urls_become_request_uris() {
        let url = HttpUrl::parse("https://Hook.Example.com/a%20b/c?x=1&y=%2F#part").unwrap();
        assert_eq!(
            url.as_str(),
            "https://Hook.Example.com/a%20b/c?x=1&y=%2F#part"
        );
        assert_eq!(url.uri(), "https://hook.example.com/a%20b/c?x=1&y=%2F");
        assert_eq!(url.basic_auth(), None);

        // Credentials leave the URI for a sensitive `Authorization` header.
        let url = HttpUrl::parse("http://al%69ce:s%3Acret@127.0.0.1:8080/").unwrap();
        assert_eq!(url.uri(), "http://127.0.0.1:8080/");
        let auth = url.basic_auth().unwrap();
        assert_eq!(auth, "Basic YWxpY2U6czpjcmV0"); // "alice:s:cret"
        assert!(auth.is_sensitive());
        let user_only = HttpUrl::parse("http://bob@[::1]/").unwrap();
        assert_eq!(user_only.uri(), "http://[::1]/");
        assert_eq!(user_only.basic_auth().unwrap(), "Basic Ym9iOg=="); // "bob:"

        // Non-ASCII hosts are sent in their ASCII (punycode) form.
        let url = HttpUrl::parse("http://bücher.example/").unwrap();
        assert_eq!(url.uri(), "http://xn--bcher-kva.example/");

        for (bad, why) in [
            ("ftp://example.com/", "scheme"),
            ("http://example.com:99999/", "port"),
            ("not a url", "relative URL"),
        ] {
            let err = HttpUrl::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}

/// The rule name under which asynchronous invocations of local functions (the Invoke API's
/// `InvocationType: Event`) wait in the outbox; the target id is the function's name. Rule
/// names are `[A-Za-z0-9._-]`, so no rule in a file can take it.
pub const INVOKE_RULE: &str = "$invoke";

/// A local function (`functions:` in a rule file): a Lambda handler that trigd runs itself,
/// warm, with Lambda's runtime contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub runtime: FunctionRuntime,
    /// `module.function` (Python), `file.export` (Node); informational for `provided`.
    pub handler: String,
    /// The code directory, absolute (`LAMBDA_TASK_ROOT`).
    pub code: PathBuf,
    /// Layer directories, absolute, in the order written (later layers win).
    pub layers: Vec<PathBuf>,
    /// 1 s to 900 s.
    pub timeout: Duration,
    /// 128 to 10,240 MB.
    pub memory_mb: u32,
    /// Most environments (and so invocations) at once.
    pub concurrency: u32,
    /// The user's variables, in the order written.
    pub environment: Vec<(String, String)>,
    pub description: Option<String>,
    /// The interpreter to run, when pinned (`interpreter:`); else `python3` or `node`.
    pub interpreter: Option<PathBuf>,
    /// Lambda's asynchronous retry settings: `max_attempts` is `MaximumRetryAttempts` (0–2,
    /// default 2), `max_event_age` is `MaximumEventAgeInSeconds` (60 s – 6 h, default 6 h).
    pub retry: RetryPolicy,
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// A function's runtime, by Lambda's identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionRuntime {
    /// `python3.x`: the version after `python`, e.g. `3.12`.
    Python(String),
    /// `nodejsNN.x`: the major version, e.g. `20`.
    Node(String),
    /// `provided.al2023` or `provided.al2`: runs `code/bootstrap`.
    Provided(String),
}

impl FunctionRuntime {
    /// Parses Lambda's identifier (`python3.12`, `nodejs20.x`, `provided.al2023`).
    pub fn parse(id: &str) -> Option<FunctionRuntime> {
        if let Some(v) = id.strip_prefix("python3.") {
            return (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| FunctionRuntime::Python(format!("3.{v}")));
        }
        if let Some(v) = id.strip_prefix("nodejs").and_then(|v| v.strip_suffix(".x")) {
            return (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| FunctionRuntime::Node(v.to_owned()));
        }
        match id {
            "provided.al2023" | "provided.al2" | "provided" => {
                Some(FunctionRuntime::Provided(id.to_owned()))
            }
            _ => None,
        }
    }

    /// Lambda's identifier.
    pub fn id(&self) -> String {
        match self {
            FunctionRuntime::Python(v) => format!("python{v}"),
            FunctionRuntime::Node(v) => format!("nodejs{v}.x"),
            FunctionRuntime::Provided(id) => id.clone(),
        }
    }
}

/// A trigger attached to a local function (`triggers:`), as Lambda's console adds them: the
/// function receives each event in that trigger's own shape (see [`crate::lambda_events`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionTrigger {
    /// The function it invokes.
    pub function: String,
    pub kind: FunctionTriggerKind,
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// The kinds of function triggers.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionTriggerKind {
    /// A route of the HTTP API listener (`api:` in `trigd.yaml`), answered with the function's
    /// result.
    Api(ApiRoute),
    /// An event-source mapping on an `sqs` source: batches, invoked synchronously, deleted on
    /// success.
    Sqs(SqsMapping),
    /// S3 notifications arriving on an `sqs` or `sns` source, as `{"Records": [...]}`,
    /// invoked asynchronously (through the outbox).
    S3 { source: String },
    /// SNS notifications arriving on an `sns` source (or an `sqs` source subscribed to a
    /// topic), as `{"Records": [{"EventSource": "aws:sns", ...}]}`, invoked asynchronously.
    Sns { source: String },
    /// A schedule, as EventBridge Scheduler invokes a function. It runs as the schedule rule
    /// named `rule` (in [`RuleSet::rules`]), whose one target is the function.
    Schedule { rule: String },
}

impl FunctionTriggerKind {
    /// The source the trigger takes its events from, if any.
    pub fn source(&self) -> Option<&str> {
        match self {
            FunctionTriggerKind::Sqs(m) => Some(&m.source),
            FunctionTriggerKind::S3 { source } | FunctionTriggerKind::Sns { source } => {
                Some(source)
            }
            FunctionTriggerKind::Api(_) | FunctionTriggerKind::Schedule { .. } => None,
        }
    }

    /// The key that names the kind in a rule file.
    pub fn name(&self) -> &'static str {
        match self {
            FunctionTriggerKind::Api(_) => "api",
            FunctionTriggerKind::Sqs(_) => "sqs",
            FunctionTriggerKind::S3 { .. } => "s3",
            FunctionTriggerKind::Sns { .. } => "sns",
            FunctionTriggerKind::Schedule { .. } => "schedule",
        }
    }
}

/// An `api` trigger: one route of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    pub route: crate::lambda_events::RouteKey,
    pub payload_format: PayloadFormat,
}

/// API Gateway's payload format versions for Lambda proxy integrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// `1.0`: REST API proxy integration (`httpMethod`, `multiValueHeaders`, ...).
    V1,
    /// `2.0`: HTTP API and function URLs (`rawPath`, `cookies`, ...); the default.
    V2,
}

/// An `sqs` trigger: Lambda's SQS event-source mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsMapping {
    /// The `sqs` source whose queue it consumes (rules no longer receive that queue's
    /// messages).
    pub source: String,
    /// 1–10,000 (FIFO queues: 1–10); default 10.
    pub batch_size: u32,
    /// How long to gather a batch (`MaximumBatchingWindowInSeconds`), 0–300 s; at least 1 s
    /// when `batch_size` is over 10.
    pub batch_window: Duration,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// Filter criteria: a record is handed to the function if it matches any of these (none:
    /// every record); one that matches none is deleted, as Lambda does.
    pub filters: Vec<Pattern>,
    /// Most batches in flight at once (`ScalingConfig.MaximumConcurrency`), at most the
    /// function's concurrency.
    pub max_concurrency: u32,
}

/// What a function's asynchronous retries default to, as in Lambda.
pub const FUNCTION_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 2,
    max_event_age: Duration::from_secs(6 * 3600),
};

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` from a queue URL (`.../ACCOUNT/NAME`).
pub fn queue_arn(queue_url: &str, region: &str) -> String {
    let mut parts = queue_url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    format!("arn:aws:sqs:{region}:{account}:{name}")
}

/// Limits of the event archive (`archive:` in trigd.yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveConfig {
    /// A file is closed and a new one started past this size.
    pub max_file_bytes: u64,
    /// The oldest files are deleted past this total.
    pub max_total_bytes: u64,
    /// Files whose newest event is older than this are deleted.
    pub retention: Duration,
    /// Only events matching this pattern are archived.
    pub pattern: Option<Pattern>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            max_file_bytes: 64 * 1024 * 1024,
            max_total_bytes: 1024 * 1024 * 1024,
            retention: Duration::from_secs(7 * 86_400),
            pattern: None,
        }
    }
}
