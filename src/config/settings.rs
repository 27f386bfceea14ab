//! `trigd.yaml`: the daemon's settings (listen address, state directory, AWS region and
//! account, limits), validated like rule files: every problem at `file:line:column`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LoadError;
use super::diag::{Diagnostic, Diagnostics, Reporter};
use super::reader::{self, Fields};
use super::yaml::{self, Kind};
use crate::rules::ArchiveConfig;
use crate::rules::Defaults;

/// Keys of `trigd.yaml`.
pub const KEYS: &[&str] = &[
    "listen",
    "state_dir",
    "region",
    "account",
    "endpoint_url",
    "max_body_bytes",
    "grace_period",
    "archive",
    "defaults",
    "api",
];

/// Keys of the `api:` section.
pub const API_KEYS: &[&str] = &["listen", "cors"];

/// Keys of `api.cors`, as HTTP API's `CorsConfiguration` names them.
pub const CORS_KEYS: &[&str] = &[
    "allow_origins",
    "allow_methods",
    "allow_headers",
    "expose_headers",
    "max_age",
    "allow_credentials",
];

/// Where the HTTP API listener listens when `api:` does not say (`sam local start-api`'s
/// port).
pub const DEFAULT_API_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 3000);

/// Keys of the `defaults:` section.
pub const DEFAULTS_KEYS: &[&str] = &["retry", "concurrency"];

/// Keys of the `archive:` section.
pub const ARCHIVE_KEYS: &[&str] = &["max_file_bytes", "max_total_bytes", "retention", "pattern"];

/// The daemon's settings, with defaults for everything.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub region: String,
    pub account: String,
    /// Endpoint override for AWS clients (a local emulator); `AWS_ENDPOINT_URL` also works.
    pub endpoint_url: Option<String>,
    /// Largest request body accepted (EventBridge's 256 KiB by default).
    pub max_body_bytes: usize,
    /// How long in-flight deliveries may take to finish on shutdown.
    pub grace_period: Duration,
    /// Record accepted events for replay; `None` when off.
    pub archive: Option<ArchiveConfig>,
    /// Retry policy and concurrency of targets that do not set their own.
    pub defaults: Defaults,
    /// The HTTP API listener (`api:`); `None` when `trigd.yaml` does not set it, and then it
    /// listens on [`DEFAULT_API_LISTEN`] if the rules have `api` triggers.
    pub api: Option<ApiSettings>,
}

/// The HTTP API listener, which serves the functions' `api` triggers on an address of its
/// own, apart from the daemon's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    /// CORS as an HTTP API configures it; `None`: no CORS headers, preflights go to routes.
    pub cors: Option<Cors>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: DEFAULT_API_LISTEN,
            cors: None,
        }
    }
}

/// HTTP API's `CorsConfiguration`: the gateway answers preflights itself and adds these
/// headers to responses for an allowed origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Origins (`https://example.com`, `https://*.example.com`, or `*`).
    pub allow_origins: Vec<String>,
    /// Methods (`GET`, ..., or `*`).
    pub allow_methods: Vec<String>,
    /// Request headers (lower case, or `*`).
    pub allow_headers: Vec<String>,
    /// Response headers a browser may read.
    pub expose_headers: Vec<String>,
    /// Seconds a browser may cache a preflight's answer.
    pub max_age: Option<u32>,
    pub allow_credentials: bool,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            state_dir: PathBuf::from(".trigd-state"),
            region: "us-east-1".to_owned(),
            account: "123456789012".to_owned(),
            endpoint_url: None,
            max_body_bytes: 256 * 1024,
            grace_period: Duration::from_secs(30),
            archive: None,
            defaults: Defaults::default(),
            api: None,
        }
    }
}

/// The keys whose values differ between `old` and `new`, in [`KEYS`] order. The daemon reads
/// `trigd.yaml` at start only: a reload uses this to say which settings wait for a restart.
pub fn changed(old: &DaemonSettings, new: &DaemonSettings) -> Vec<&'static str> {
    // Destructured, so that a new setting cannot be forgotten here.
    let DaemonSettings {
        listen,
        state_dir,
        region,
        account,
        endpoint_url,
        max_body_bytes,
        grace_period,
        archive,
        defaults,
        api,
    } = old;
    [
        ("listen", *listen != new.listen),
        ("state_dir", *state_dir != new.state_dir),
        ("region", *region != new.region),
        ("account", *account != new.account),
        ("endpoint_url", *endpoint_url != new.endpoint_url),
        ("max_body_bytes", *max_body_bytes != new.max_body_bytes),
        ("grace_period", *grace_period != new.grace_period),
        ("archive", *archive != new.archive),
        ("defaults", *defaults != new.defaults),
        ("api", *api != new.api),
    ]
    .into_iter()
    .filter_map(|(key, differs)| differs.then_some(key))
    .collect()
}

/// Reads `path`; a missing file is an error (the caller decides whether the file is optional).
pub fn load(path: &Path) -> Result<DaemonSettings, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let shown = path.display().to_string();
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut r = Reporter::new(&shown, &mut diags);
    let settings = match yaml::parse(&text) {
        Ok(node) => read(&mut r, &node),
        Err(e) => {
            r.error(e.pos, format!("invalid YAML: {}", e.message));
            None
        }
    };
    match settings {
        Some(s) if diags.is_empty() => Ok(s),
        _ => Err(LoadError::Invalid(Diagnostics(diags))),
    }
}

fn read(r: &mut Reporter<'_>, node: &yaml::Node) -> Option<DaemonSettings> {
    let mut s = DaemonSettings::default();
    if node.kind == Kind::Null {
        return Some(s);
    }
    let f = Fields::new(r, node, "trigd.yaml", KEYS)?;
    if let Some(n) = f.get("listen") {
        match reader::string(r, n, "`listen`").map(str::parse::<SocketAddr>) {
            Some(Ok(a)) => s.listen = a,
            Some(Err(_)) => r.error(
                n.pos,
                "`listen` must be an address and port such as 127.0.0.1:8787",
            ),
            None => {}
        }
    }
    if let Some(n) = f.get("state_dir")
        && let Some(d) = reader::nonempty(r, n, "`state_dir`")
    {
        s.state_dir = PathBuf::from(d);
    }
    if let Some(n) = f.get("region")
        && let Some(v) = reader::nonempty(r, n, "`region`")
    {
        s.region = v.to_owned();
    }
    if let Some(n) = f.get("account") {
        let v = match &n.kind {
            Kind::Str(v) => Some(v.clone()),
            Kind::Int(i) => Some(format!("{i:012}")),
            _ => None,
        };
        match v {
            Some(v) if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) => s.account = v,
            _ => r.error(
                n.pos,
                "`account` must be a 12-digit AWS account id, quoted: \"123456789012\"",
            ),
        }
    }
    if let Some(n) = f.get("endpoint_url")
        && let Some(v) = reader::nonempty(r, n, "`endpoint_url`")
    {
        s.endpoint_url = Some(v.to_owned());
    }
    if let Some(n) = f.get("max_body_bytes")
        && let Some(v) = reader::integer(r, n, "`max_body_bytes`", 1024..=16 * 1024 * 1024)
    {
        s.max_body_bytes = v as usize;
    }
    if let Some(n) = f.get("grace_period")
        && let Some(d) = reader::duration_within(
            r,
            n,
            "`grace_period`",
            Duration::ZERO,
            Duration::from_secs(3600),
        )
    {
        s.grace_period = d;
    }
    if let Some(n) = f.get("archive") {
        s.archive = read_archive(r, n);
    }
    if let Some(n) = f.get("defaults")
        && let Some(g) = Fields::new(r, n, "`defaults`", DEFAULTS_KEYS)
    {
        if let Some(retry) = super::rule_file::read_retry(r, g.get("retry"), s.defaults.retry) {
            s.defaults.retry = retry;
        }
        if let Some(c) = g.get("concurrency")
            && let Some(c) = reader::integer(r, c, "`defaults.concurrency`", 1..=10_000)
        {
            s.defaults.concurrency = c as u32;
        }
    }
    if let Some(n) = f.get("api") {
        s.api = read_api(r, n);
    }
    Some(s)
}

/// `api: {listen, cors}`.
fn read_api(r: &mut Reporter<'_>, node: &yaml::Node) -> Option<ApiSettings> {
    let mut api = ApiSettings::default();
    let f = Fields::new(r, node, "`api`", API_KEYS)?;
    if let Some(n) = f.get("listen") {
        match reader::string(r, n, "`api.listen`").map(str::parse::<SocketAddr>) {
            Some(Ok(a)) => api.listen = a,
            Some(Err(_)) => r.error(
                n.pos,
                "`api.listen` must be an address and port such as 127.0.0.1:3000",
            ),
            None => {}
        }
    }
    if let Some(n) = f.get("cors") {
        api.cors = Some(read_cors(r, n)?);
    }
    Some(api)
}

/// `api.cors`, checked as API Gateway checks a `CorsConfiguration`.
fn read_cors(r: &mut Reporter<'_>, node: &yaml::Node) -> Option<Cors> {
    let mut cors = Cors::default();
    let f = Fields::new(r, node, "`api.cors`", CORS_KEYS)?;
    let list = |r: &mut Reporter<'_>, key: &str| -> Option<Vec<String>> {
        let n = f.get(key)?;
        reader::string_list(r, n, &format!("`api.cors.{key}`"))
    };
    cors.allow_origins = list(r, "allow_origins").unwrap_or_default();
    cors.allow_methods = list(r, "allow_methods")
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    cors.allow_headers = list(r, "allow_headers")
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    cors.expose_headers = list(r, "expose_headers").unwrap_or_default();
    if let Some(n) = f.get("max_age") {
        cors.max_age = reader::integer(r, n, "`api.cors.max_age`", 0..=86_400).map(|v| v as u32);
    }
    if let Some(n) = f.get("allow_credentials") {
        cors.allow_credentials = reader::boolean(r, n, "`api.cors.allow_credentials`")?;
    }
    if let Some(n) = f.get("allow_methods")
        && let Some(m) = cors
            .allow_methods
            .iter()
            .find(|m| *m != "*" && !crate::lambda_events::route_key::METHODS.contains(&m.as_str()))
    {
        r.error(
            n.pos,
            format!(
                "`{m}` is not a method for `api.cors.allow_methods`; use {} or `*`",
                crate::lambda_events::route_key::METHODS.join(", ")
            ),
        );
    }
    if cors.allow_credentials
        && cors.allow_origins.iter().any(|o| o == "*")
        && let Some(n) = f.get("allow_origins")
    {
        r.error(
            n.pos,
            "`api.cors.allow_origins` cannot be `*` with `allow_credentials: true` (browsers refuse it, and API Gateway too); list the origins",
        );
    }
    Some(cors)
}

/// `archive: true`, or a mapping of limits and an optional pattern.
fn read_archive(r: &mut Reporter<'_>, node: &yaml::Node) -> Option<ArchiveConfig> {
    let mut a = ArchiveConfig::default();
    match node.kind {
        Kind::Bool(true) => return Some(a),
        Kind::Bool(false) => return None,
        _ => {}
    }
    let f = Fields::new(r, node, "`archive`", ARCHIVE_KEYS)?;
    if let Some(n) = f.get("max_file_bytes") {
        a.max_file_bytes =
            reader::integer(r, n, "`archive.max_file_bytes`", 4096..=i64::MAX)? as u64;
    }
    if let Some(n) = f.get("max_total_bytes") {
        a.max_total_bytes =
            reader::integer(r, n, "`archive.max_total_bytes`", 4096..=i64::MAX)? as u64;
    }
    if let Some(n) = f.get("retention") {
        a.retention = reader::duration_within(
            r,
            n,
            "`archive.retention`",
            Duration::from_secs(60),
            Duration::from_secs(10 * 365 * 86_400),
        )?;
    }
    if let Some(n) = f.get("pattern") {
        a.pattern = Some(super::rule_file::read_pattern(r, n)?);
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{RetryPolicy, Settings};

    #[test]
    fn defaults_apply_to_targets_that_do_not_set_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("trigd.yaml");
        std::fs::write(
            &config,
            "defaults:\n  retry: {max_attempts: 3}\n  concurrency: 2\n",
        )
        .unwrap();
        let s = load(&config).unwrap();
        assert_eq!(
            s.defaults.retry,
            RetryPolicy {
                max_attempts: 3,
                max_event_age: Duration::from_secs(86_400)
            }
        );
        assert_eq!(s.defaults.concurrency, 2);
        let rules = "rules:
  - name: plain
    pattern: {source: [a]}
    targets: [{id: t, log: true}]
  - name: own
    pattern: {source: [b]}
    retry: {max_event_age: 1h}
    targets: [{id: t, log: true, concurrency: 5}]
";
        std::fs::write(dir.path().join("r.yaml"), rules).unwrap();
        let settings = Settings {
            defaults: s.defaults,
            ..Settings::default()
        };
        let set = crate::config::load_rules(dir.path(), settings).unwrap();
        let plain = &set.rule("plain").unwrap().targets[0];
        assert_eq!(plain.retry.max_attempts, 3);
        assert_eq!(plain.concurrency, 2);
        let own = &set.rule("own").unwrap().targets[0];
        assert_eq!(
            own.retry.max_attempts, 3,
            "unset fields inherit the defaults"
        );
        assert_eq!(own.retry.max_event_age, Duration::from_secs(3600));
        assert_eq!(own.concurrency, 5);
    }

    #[test]
    fn changed_names_the_keys_that_differ() {
        let old = DaemonSettings::default();
        assert_eq!(changed(&old, &old.clone()), Vec::<&str>::new());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("trigd.yaml");
        std::fs::write(
            &config,
            "listen: 127.0.0.1:9999\nstate_dir: /elsewhere\narchive: true\n",
        )
        .unwrap();
        let new = load(&config).unwrap();
        assert_eq!(changed(&old, &new), ["listen", "state_dir", "archive"]);
        assert_eq!(changed(&new, &old), ["listen", "state_dir", "archive"]);
    }

    #[test]
    fn problems_have_positions() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("trigd.yaml");
        std::fs::write(
            &config,
            "defaults:\n  retry: {max_attempts: 999}\n  concurency: 2\n",
        )
        .unwrap();
        let Err(LoadError::Invalid(d)) = load(&config) else {
            panic!("must be refused")
        };
        let text = d.to_string();
        assert!(
            text.contains("trigd.yaml:2:25: `retry.max_attempts` must be between 0 and 185"),
            "{text}"
        );
        assert!(text.contains("trigd.yaml:3:3: unknown key `concurency` in `defaults`; did you mean `concurrency`?"), "{text}");
    }

    #[test]
    fn api_reads_its_listener_and_cors() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("trigd.yaml");
        std::fs::write(
            &config,
            "api:\n  listen: 127.0.0.1:3001\n  cors:\n    allow_origins: [https://a.example, 'https://*.b.example']\n    allow_methods: [get, POST]\n    allow_headers: [Content-Type]\n    expose_headers: [X-Id]\n    max_age: 600\n    allow_credentials: true\n",
        )
        .unwrap();
        let s = load(&config).unwrap();
        let api = s.api.clone().unwrap();
        assert_eq!(api.listen, "127.0.0.1:3001".parse().unwrap());
        assert_eq!(
            api.cors,
            Some(Cors {
                allow_origins: vec!["https://a.example".into(), "https://*.b.example".into()],
                allow_methods: vec!["GET".into(), "POST".into()],
                allow_headers: vec!["content-type".into()],
                expose_headers: vec!["X-Id".into()],
                max_age: Some(600),
                allow_credentials: true,
            })
        );
        assert_eq!(changed(&DaemonSettings::default(), &s), ["api"]);
        // `api: {}` listens on sam's port.
        std::fs::write(&config, "api: {}\n").unwrap();
        assert_eq!(load(&config).unwrap().api, Some(ApiSettings::default()));
        assert_eq!(DaemonSettings::default().api, None);
    }

    #[test]
    fn api_problems_say_what_to_write() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("trigd.yaml");
        std::fs::write(
            &config,
            "api:\n  listen: localhost\n  cors:\n    allow_origins: ['*']\n    allow_methods: [FETCH]\n    max_age: 100000\n    allow_credentials: true\n    allow_origin: [x]\n",
        )
        .unwrap();
        let Err(LoadError::Invalid(d)) = load(&config) else {
            panic!("must be refused")
        };
        let text = d.to_string();
        for expected in [
            "trigd.yaml:2:11: `api.listen` must be an address and port",
            "trigd.yaml:5:20: `FETCH` is not a method",
            "trigd.yaml:6:14: `api.cors.max_age` must be between 0 and 86400",
            "trigd.yaml:4:20: `api.cors.allow_origins` cannot be `*` with `allow_credentials: true`",
            "trigd.yaml:8:5: unknown key `allow_origin` in `api.cors`; did you mean `allow_origins`?",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
    }
}
