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
];

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
    Some(s)
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
}
