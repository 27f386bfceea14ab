//! The `trigd` command line: parses arguments, calls the library, maps outcomes to exit codes.
//! Nothing else lives here.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// mimalloc rather than glibc's malloc: the daemon allocates small, short-lived buffers per
/// event on every thread (HTTP, JSON, SQLite rows), where glibc's arenas spent about 14 % of
/// the daemon's CPU at saturation (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use chrono::{DateTime, Utc};
use clap::{ArgGroup, Parser, Subcommand, ValueEnum};

use trigd::config::{self, LoadError};
use trigd::rules::{RuleSet, Settings};
use trigd::{diff, dry_run, next, replay, rule_tests, schema};

/// A self-hosted, EventBridge-compatible event-trigger router.
#[derive(Parser)]
#[command(name = "trigd", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate rule files: exit 0 when valid, 1 when problems were found, 2 on usage or I/O errors.
    Check {
        /// A directory of rule files (searched recursively), or one file.
        rules: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Dry-run an event: which rules match, why the others don't, and each target's payload.
    /// With `--events`, replay a file of recorded events instead.
    #[command(group(ArgGroup::new("input").required(true).args(["event", "events"])))]
    Match {
        rules: PathBuf,
        /// The event as a JSON file, or `-` for standard input.
        #[arg(long)]
        event: Option<PathBuf>,
        /// With `--event`: the file is a webhook body posted to `/events/SOURCE`, not an event;
        /// it is matched as the event the daemon makes of it (source SOURCE, detail-type
        /// Webhook, the body as detail). Authentication is not checked.
        #[arg(long, value_name = "SOURCE")]
        source: Option<String>,
        /// Recorded events as JSON lines, one event per line (gzip is read transparently), or
        /// `-` for standard input. Bad lines are reported on stderr as `line N: <reason>`.
        #[arg(long)]
        events: Option<PathBuf>,
        /// `text` (default) or `json` with `--event`; `jsonl` (default: one object per event)
        /// or `summary` (match counts per rule) with `--events`.
        #[arg(long, value_enum)]
        format: Option<MatchFormat>,
        /// With `--events` and `jsonl`: add each matched target's payload.
        #[arg(long)]
        payloads: bool,
    },
    /// Replay recorded events against two rule sets: which events route differently, and what
    /// targets would receive differently.
    Diff {
        /// The rules as they are.
        old: PathBuf,
        /// The rules as proposed.
        new: PathBuf,
        /// Recorded events as JSON lines (gzip is read transparently), or `-` for standard input.
        #[arg(long)]
        events: PathBuf,
        /// `text`, or `json`: one object with the changes, the totals and each rule's gains and
        /// losses (documented in the `trigd::diff` module).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Exit 1 when any event routes differently or any payload changed.
        #[arg(long)]
        exit_code: bool,
    },
    /// Run the rule tests (`*.test.yaml`) beside the rules; exit 1 on any failure.
    Test { rules: PathBuf },
    /// Show the upcoming fires of schedule rules, in each rule's time zone and in UTC, with
    /// fires next to a DST change flagged.
    Next {
        rules: PathBuf,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// How many fires per rule.
        #[arg(short = 'n', default_value_t = 5)]
        count: usize,
        /// Fires strictly after this instant (RFC 3339); default now. `rate` schedules are
        /// anchored here.
        #[arg(long)]
        after: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of rule files (or of rule tests), for editors.
    Schema {
        #[arg(value_enum, default_value_t = SchemaKind::Rules)]
        kind: SchemaKind,
    },
    /// Run the daemon: HTTP ingest, schedules, the durable outbox and its dispatcher.
    /// Configuration problems exit 64 before anything is bound.
    Run {
        rules: PathBuf,
        /// Daemon settings (trigd.yaml); flags below override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address [default: 127.0.0.1:8787].
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The HTTP API listener's address, for the functions' `api` triggers [default:
        /// `api.listen` in trigd.yaml, else 127.0.0.1:3000 when the rules have `api`
        /// triggers].
        #[arg(long)]
        api_listen: Option<std::net::SocketAddr>,
        /// Where the outbox and dead letters live [default: ./.trigd-state].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Record every accepted event under STATE_DIR/archive/ for replay (limits and a
        /// pattern filter: `archive:` in trigd.yaml).
        #[arg(long)]
        archive: bool,
    },
    /// The event archive written by `trigd run --archive`.
    Archive {
        #[command(subcommand)]
        action: ArchiveAction,
        /// The daemon's state directory.
        #[arg(long, global = true, default_value = ".trigd-state")]
        state_dir: PathBuf,
    },
    /// Dead letters: list, show, or put back into the outbox (also while the daemon runs).
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
        /// The daemon's state directory.
        #[arg(long, global = true, default_value = ".trigd-state")]
        state_dir: PathBuf,
    },
    /// Invoke a local function once, with no daemon (the console's Test button). The result
    /// goes to standard output, the function's log and REPORT line to standard error; exit 0
    /// when the function succeeded, 1 on a function error, 2 on usage or I/O errors.
    Invoke {
        rules: PathBuf,
        /// The function's name (`functions:` in a rule file).
        function: String,
        /// The event as a JSON file, or `-` for standard input [default: {}].
        #[arg(long)]
        event: Option<PathBuf>,
    },
    /// Print a sample event to start a test from: the shape AWS sends for KIND.
    Event {
        #[arg(value_enum)]
        kind: EventKind,
    },
    /// Deploy the rules to AWS's own engine: pattern rules as EventBridge rules on one bus,
    /// schedule rules as EventBridge Scheduler schedules; idempotent, owning only what it
    /// created (tags per --deployment). With --plan, only show what would change. Exit 0 done
    /// (or no changes), 1 problems (undeployable features, conflicts, errors), 2 with
    /// --detailed-exitcode when the plan has changes.
    Deploy(DeployArgs),
    /// Write a CloudFormation (or SAM) template of what `trigd deploy` would create.
    Export {
        rules: PathBuf,
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(long, default_value = "default")]
        bus: String,
        #[arg(long)]
        deployment: Option<String>,
        /// Leave out what cannot be deployed (listed on standard error) instead of refusing.
        #[arg(long)]
        skip_undeployable: bool,
        /// Use this role for the schedules instead of the one the template declares.
        #[arg(long, value_name = "ARN")]
        scheduler_role: Option<String>,
        /// Use this role for API destinations instead of the one the template declares.
        #[arg(long, value_name = "ARN")]
        events_role: Option<String>,
        /// The local functions' execution role [default: a template parameter, FunctionRole].
        #[arg(long, value_name = "ARN")]
        function_role: Option<String>,
    },
    /// Post an event (an EventBridge envelope: source, detail-type, detail) to a running
    /// daemon through its PutEvents endpoint.
    Send {
        /// The event as a JSON file, or `-` for standard input.
        event: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        url: String,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// One line per dead letter: id, rule/target, attempts, error.
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// One dead letter in full (JSON).
    Show { id: String },
    /// Put dead letters back into the outbox: the given ids, or all with --all.
    Redrive {
        ids: Vec<String>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Subcommand)]
enum ArchiveAction {
    /// Write archived events as JSON lines (for `match --events` and `diff`).
    Export {
        /// Only events whose `time` is at or after this instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only events whose `time` is before this instant (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Write here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
}

/// `trigd event KIND`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EventKind {
    /// An EventBridge Scheduled Event (a `rate`/`cron` rule's event).
    Scheduled,
    /// An S3 ObjectCreated:Put notification, as a function trigger gets it.
    S3Put,
    /// A batch of SQS messages, as Lambda's event-source mapping sends it.
    Sqs,
    /// An SNS notification, as a function subscribed to a topic gets it.
    Sns,
    /// An EventBridge event.
    Eventbridge,
    /// An API Gateway REST API (payload format 1.0) proxy request.
    ApiGatewayV1,
    /// An API Gateway HTTP API (payload format 2.0) request.
    ApiGatewayV2,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// `trigd match --format`: the first two for `--event`, the last two for `--events`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MatchFormat {
    Text,
    Json,
    Jsonl,
    Summary,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Cloudformation,
    Sam,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SchemaKind {
    Rules,
    Tests,
}

/// Exit statuses with a meaning.
const EXIT_FOUND_PROBLEMS: u8 = 1;
const EXIT_ERROR: u8 = 2;
/// `trigd deploy --plan --detailed-exitcode`: the plan has changes (Terraform's convention).
const EXIT_PLAN_CHANGES: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("trigd: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { rules, format } => check(&rules, format),
        Command::Match {
            rules,
            event,
            source,
            events,
            format,
            payloads,
        } => match (event, events) {
            (Some(event), _) => {
                if payloads {
                    anyhow::bail!("--payloads needs --events (`--event` always shows payloads)");
                }
                let format = match format {
                    None | Some(MatchFormat::Text) => Format::Text,
                    Some(MatchFormat::Json) => Format::Json,
                    Some(MatchFormat::Jsonl | MatchFormat::Summary) => {
                        anyhow::bail!("--format jsonl and summary need --events; use text or json")
                    }
                };
                match_event(&rules, &event, source.as_deref(), format)
            }
            (None, Some(events)) => {
                if source.is_some() {
                    anyhow::bail!("--source needs --event (one webhook body)");
                }
                let format = match format {
                    None | Some(MatchFormat::Jsonl) => replay::MatchFormat::Jsonl,
                    Some(MatchFormat::Summary) => replay::MatchFormat::Summary,
                    Some(MatchFormat::Text | MatchFormat::Json) => {
                        anyhow::bail!("--format text and json need --event; use jsonl or summary")
                    }
                };
                if payloads && format == replay::MatchFormat::Summary {
                    anyhow::bail!("--payloads needs --format jsonl");
                }
                match_events(&rules, &events, format, payloads)
            }
            (None, None) => anyhow::bail!("give --event or --events"),
        },
        Command::Diff {
            old,
            new,
            events,
            format,
            exit_code,
        } => diff(&old, &new, &events, format, exit_code),
        Command::Test { rules } => test(&rules),
        Command::Next {
            rules,
            rule,
            count,
            after,
            format,
        } => next_fires(&rules, rule.as_deref(), count, after.as_deref(), format),
        Command::Schema { kind } => {
            let s = match kind {
                SchemaKind::Rules => schema::rules(),
                SchemaKind::Tests => schema::tests(),
            };
            print(&format!("{}\n", serde_json::to_string_pretty(&s)?))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            rules,
            config,
            listen,
            api_listen,
            state_dir,
            log_format,
            archive,
        } => run_daemon(
            rules,
            config,
            Listen {
                main: listen,
                api: api_listen,
            },
            state_dir,
            log_format,
            archive,
        ),
        Command::Archive { action, state_dir } => archive_cmd(action, &state_dir),
        Command::Dlq { action, state_dir } => dlq(action, &state_dir),
        Command::Send { event, url } => send(&event, &url),
        Command::Deploy(args) => deploy(args),
        Command::Export {
            rules,
            format,
            bus,
            deployment,
            skip_undeployable,
            scheduler_role,
            events_role,
            function_role,
        } => export(
            &rules,
            format,
            &bus,
            deployment,
            skip_undeployable,
            (
                scheduler_role.as_deref(),
                events_role.as_deref(),
                function_role.as_deref(),
            ),
        ),
        Command::Invoke {
            rules,
            function,
            event,
        } => invoke(&rules, &function, event.as_deref()),
        Command::Event { kind } => {
            let name = kind
                .to_possible_value()
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            let text = trigd::functions::samples::sample(&name)
                .with_context(|| format!("no sample event for {name}"))?;
            print(text)?;
            if !text.ends_with('\n') {
                print("\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `trigd invoke`: one invocation of a local function, with no daemon.
fn invoke(rules: &Path, function: &str, event: Option<&Path>) -> anyhow::Result<ExitCode> {
    let set = match config::load_rules(rules, Settings::default()) {
        Ok(set) => set,
        Err(LoadError::Invalid(diags)) => {
            eprintln!("{diags}\n{} problem(s) found", diags.0.len());
            return Ok(ExitCode::from(EXIT_ERROR));
        }
        Err(e) => return Err(e.into()),
    };
    if set.function(function).is_none() {
        let names: Vec<&str> = set.functions.iter().map(|f| f.name.as_str()).collect();
        eprintln!(
            "trigd: no function `{function}` in {}; declared: {}",
            rules.display(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let payload = match event {
        Some(path) => read_input(path)?,
        None => "{}".to_owned(),
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&payload) {
        eprintln!("trigd: the event is not JSON: {e}");
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let outcome = with_host(&set, |host| async move {
        Ok(host
            .invoke(function, trigd::functions::Invocation::new(payload))
            .await?)
    })?;
    let (body, code) = match outcome.result {
        Ok(body) => (body, ExitCode::SUCCESS),
        Err(e) => (e.body, ExitCode::from(EXIT_FOUND_PROBLEMS)),
    };
    print(&format!("{}\n", String::from_utf8_lossy(&body)))?;
    Ok(code)
}

/// Runs `f` with a host of the rule set's local functions (state in a temporary directory,
/// logs to stderr), then stops every environment.
fn with_host<T, F, Fut>(set: &trigd::rules::RuleSet, f: F) -> anyhow::Result<T>
where
    F: FnOnce(std::sync::Arc<trigd::functions::Host>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let state = std::env::temp_dir().join(format!("trigd-functions-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let host = trigd::functions::Host::new(trigd::functions::HostOptions {
            state_dir: state.clone(),
            region: set.settings.region.clone(),
            account: set.settings.account.clone(),
            lambda_endpoint: None,
            aws_endpoint: std::env::var("AWS_ENDPOINT_URL").ok(),
            log: trigd::functions::LogSink::Stderr,
            idle_timeout: std::time::Duration::from_secs(60),
            metrics: None,
        })?;
        host.update(&set.functions);
        let result = f(std::sync::Arc::clone(&host)).await;
        host.shutdown();
        result
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&state);
    result
}

/// EX_USAGE: the configuration is invalid; nothing was started.
const EXIT_CONFIG: u8 = 64;

/// Listen addresses given on the command line.
struct Listen {
    main: Option<std::net::SocketAddr>,
    api: Option<std::net::SocketAddr>,
}

fn run_daemon(
    rules: PathBuf,
    config: Option<PathBuf>,
    listen: Listen,
    state_dir: Option<PathBuf>,
    log_format: LogFormat,
    archive: bool,
) -> anyhow::Result<ExitCode> {
    init_tracing(log_format);
    let mut settings = match &config {
        Some(path) => match trigd::config::settings::load(path) {
            Ok(s) => s,
            Err(LoadError::Invalid(d)) => {
                eprintln!("trigd: invalid configuration:\n{d}");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            Err(e) => {
                eprintln!("trigd: {:#}", anyhow::Error::from(e));
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
        },
        None => trigd::config::settings::DaemonSettings::default(),
    };
    let settings_file = config.map(|path| (path, settings.clone()));
    if let Some(l) = listen.main {
        settings.listen = l;
    }
    if let Some(l) = listen.api {
        settings.api.get_or_insert_with(Default::default).listen = l;
    }
    if let Some(d) = state_dir {
        settings.state_dir = d;
    }
    if archive && settings.archive.is_none() {
        settings.archive = Some(trigd::archive::ArchiveConfig::default());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let opts = trigd::daemon::Options {
        rules_dir: rules,
        settings,
        settings_file,
    };
    let result = runtime.block_on(async {
        // Registered before anything starts, so a SIGTERM right after READY is handled.
        let shutdown = shutdown_signals().context("installing signal handlers")?;
        anyhow::Ok(trigd::daemon::run(opts, shutdown).await)
    });
    // The daemon bounded its own stop; a blocking task still running (an outbox read stuck
    // on a dead disk) must not hold the process past it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let result = result?;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(
            e @ (trigd::daemon::DaemonError::Config(_) | trigd::daemon::DaemonError::ConfigIo(_)),
        ) => {
            eprintln!("trigd: {:#}", anyhow::Error::from(e));
            Ok(ExitCode::from(EXIT_CONFIG))
        }
        Err(e) => Err(e.into()),
    }
}

fn archive_cmd(action: ArchiveAction, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let ArchiveAction::Export {
        since,
        until,
        output,
    } = action;
    let instant = |s: Option<String>, flag: &str| -> anyhow::Result<Option<DateTime<Utc>>> {
        s.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .with_context(|| format!("{flag} {s:?} is not an RFC 3339 timestamp"))
        })
        .transpose()
    };
    let since = instant(since, "--since")?;
    let until = instant(until, "--until")?;
    let n = match &output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            trigd::archive::export(state_dir, since, until, &mut std::io::BufWriter::new(file))?
        }
        None => trigd::archive::export(state_dir, since, until, &mut std::io::stdout().lock())?,
    };
    eprintln!("exported {n} event(s)");
    Ok(ExitCode::SUCCESS)
}

/// Installs the SIGTERM and SIGINT handlers now; the future completes on either.
fn shutdown_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        // Without the module path as `target`: flattened, it would hide the `target` field
        // (a rule's target id) of delivery lines.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_target(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn dlq(action: DlqAction, state_dir: &Path) -> anyhow::Result<ExitCode> {
    use trigd::delivery::store;
    match action {
        DlqAction::List { format } => {
            let letters = store::list_dead_letters(state_dir)
                .with_context(|| format!("reading dead letters in {}", state_dir.display()))?;
            let text: String = match format {
                Format::Json => letters
                    .iter()
                    .map(|l| format!("{}\n", l.to_json()))
                    .collect(),
                Format::Text => {
                    if letters.is_empty() {
                        "no dead letters\n".to_owned()
                    } else {
                        letters
                            .iter()
                            .map(|l| {
                                let j = l.to_json();
                                format!(
                                    "{}  {}/{}  attempts={}  {}: {}\n",
                                    j["id"].as_str().unwrap_or_default(),
                                    j["rule"].as_str().unwrap_or_default(),
                                    j["target"].as_str().unwrap_or_default(),
                                    j["attempts"],
                                    j["error_code"].as_str().unwrap_or_default(),
                                    j["last_error"].as_str().unwrap_or_default()
                                )
                            })
                            .collect()
                    }
                }
            };
            print(&text)?;
        }
        DlqAction::Show { id } => {
            let l = store::read_dead_letter(state_dir, &id)
                .with_context(|| format!("reading dead letter {id}"))?;
            print(&format!(
                "{}\n",
                serde_json::to_string_pretty(&l.to_json())?
            ))?;
        }
        DlqAction::Redrive { ids, all } => {
            if ids.is_empty() && !all {
                anyhow::bail!("name the dead letters to redrive, or pass --all");
            }
            let n = store::redrive(state_dir, &ids, Utc::now().timestamp_millis())
                .context("redriving dead letters")?;
            print(&format!("redrove {n} dead letter(s)\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Posts an event through PutEvents, the way the AWS CLI would with an endpoint override.
fn send(event: &Path, url: &str) -> anyhow::Result<ExitCode> {
    let text = read_input(event)?;
    let ev: serde_json::Value =
        serde_json::from_str(&text).context("the event is not valid JSON")?;
    let field = |k: &str| ev.get(k).and_then(serde_json::Value::as_str);
    let (Some(source), Some(detail_type)) = (field("source"), field("detail-type")) else {
        anyhow::bail!("the event needs `source` and `detail-type` (an EventBridge envelope)");
    };
    let detail = ev
        .get("detail")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    let mut entry = serde_json::json!({
        "Source": source,
        "DetailType": detail_type,
        "Detail": detail.to_string(),
    });
    if let Some(r) = ev.get("resources") {
        entry["Resources"] = r.clone();
    }
    let body = serde_json::json!({"Entries": [entry]}).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let response = runtime.block_on(async {
        let client = reqwest::Client::new();
        let r = client
            .post(url)
            .header("X-Amz-Target", "AWSEvents.PutEvents")
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        Ok::<_, reqwest::Error>((status, text))
    });
    let (status, text) = response.with_context(|| format!("posting to {url}"))?;
    if !status.is_success() {
        anyhow::bail!("the daemon answered {status}: {text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text).context("unexpected answer")?;
    if v["FailedEntryCount"].as_u64().unwrap_or(0) > 0 {
        anyhow::bail!("the event was refused: {}", v["Entries"][0]["ErrorMessage"]);
    }
    print(&format!(
        "{}\n",
        v["Entries"][0]["EventId"].as_str().unwrap_or_default()
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Loads rules; invalid rules are printed and turned into exit status 1.
fn load(rules: &Path, format: Format) -> anyhow::Result<Result<RuleSet, ExitCode>> {
    match config::load_rules(rules, Settings::default()) {
        Ok(set) => Ok(Ok(set)),
        Err(LoadError::Invalid(diags)) => {
            match format {
                Format::Json => print(&format!("{}\n", diags.to_json()))?,
                Format::Text => eprintln!("{diags}\n{} problem(s) found", diags.0.len()),
            }
            Ok(Err(ExitCode::from(EXIT_FOUND_PROBLEMS)))
        }
        Err(e @ LoadError::Io { .. }) => Err(e.into()),
    }
}

fn check(rules: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let set = match load(rules, format)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    // Rule tests are checked too, so that a test naming a renamed rule is caught.
    let tests = match rule_tests::load(rules, &set) {
        Ok(t) => t,
        Err(LoadError::Invalid(diags)) => {
            match format {
                Format::Json => print(&format!("{}\n", diags.to_json()))?,
                Format::Text => eprintln!("{diags}\n{} problem(s) found", diags.0.len()),
            }
            return Ok(ExitCode::from(EXIT_FOUND_PROBLEMS));
        }
        Err(e) => return Err(e.into()),
    };
    // What would fail only at the first event on this machine: warnings, not problems.
    let path = std::env::var_os("PATH");
    let dir = std::env::current_dir().context("reading the working directory")?;
    let host = config::environment::Host {
        path: path.as_deref(),
        dir: &dir,
    };
    let warnings = config::environment::warnings(rules, &host)?;
    match format {
        Format::Json if warnings.is_empty() => {
            print(&format!("{}\n", serde_json::json!({"errors": []})))?;
        }
        Format::Json => {
            let warnings = config::diag::Diagnostics(warnings).to_json()["errors"].take();
            print(&format!(
                "{}\n",
                serde_json::json!({"errors": [], "warnings": warnings})
            ))?;
        }
        Format::Text => {
            for w in &warnings {
                eprintln!("{}:{}:{}: warning: {}", w.file, w.line, w.column, w.message);
            }
            let schedules = set
                .rules
                .iter()
                .filter(|r| matches!(r.trigger, trigd::rules::Trigger::Schedule(_)))
                .count();
            let functions = match set.functions.len() {
                0 => String::new(),
                n => format!(", {n} functions"),
            };
            print(&format!(
                "ok: {} rules ({} pattern, {} schedule), {} sources{functions}, {} tests\n",
                set.rules.len(),
                set.rules.len() - schedules,
                schedules,
                set.sources.len(),
                tests.len()
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the event from standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn match_event(
    rules: &Path,
    event: &Path,
    source: Option<&str>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let set = match load(rules, format)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let text = read_input(event)?;
    let report = match source {
        None => dry_run::run(&set, &text, Utc::now()),
        Some(source) => dry_run::run_webhook(&set, source, &text, Utc::now()),
    }
    .with_context(|| format!("matching {}", event.display()))?;
    match format {
        Format::Json => print(&format!("{}\n", report.to_json()))?,
        Format::Text => print(&report.to_text())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Options for the replay pipeline: every core, and a progress line on a terminal.
fn replay_options() -> replay::Options {
    replay::Options {
        progress: std::io::stderr().is_terminal(),
        ..replay::Options::default()
    }
}

fn match_events(
    rules: &Path,
    events: &Path,
    format: replay::MatchFormat,
    payloads: bool,
) -> anyhow::Result<ExitCode> {
    let set = match load(rules, Format::Text)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let opts = replay::MatchOptions {
        format,
        payloads,
        now: Utc::now(),
    };
    replay::match_events(
        &set,
        &replay::Input::from_arg(events),
        &replay_options(),
        &opts,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn diff(
    old: &Path,
    new: &Path,
    events: &Path,
    format: Format,
    exit_code: bool,
) -> anyhow::Result<ExitCode> {
    // Both sets are checked, so that every problem is reported at once; in JSON, the new set
    // only when the old one is valid, so that the output is one document.
    let old = load(old, format)?;
    if let (Err(code), Format::Json) = (&old, format) {
        return Ok(*code);
    }
    let (old, new) = match (old, load(new, format)?) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(code), _) | (_, Err(code)) => return Ok(code),
    };
    let opts = diff::DiffOptions {
        format: match format {
            Format::Text => diff::DiffFormat::Text,
            Format::Json => diff::DiffFormat::Json,
        },
        now: Utc::now(),
    };
    let summary = diff::run(
        &old,
        &new,
        &replay::Input::from_arg(events),
        &replay_options(),
        &opts,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(if exit_code && summary.changed > 0 {
        ExitCode::from(EXIT_FOUND_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

fn test(rules: &Path) -> anyhow::Result<ExitCode> {
    let set = match load(rules, Format::Text)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let tests = match rule_tests::load(rules, &set) {
        Ok(t) => t,
        Err(LoadError::Invalid(diags)) => {
            eprintln!("{diags}\n{} problem(s) found", diags.0.len());
            return Ok(ExitCode::from(EXIT_FOUND_PROBLEMS));
        }
        Err(e) => return Err(e.into()),
    };
    let mut outcomes = rule_tests::run(&set, &tests, Utc::now());
    if tests.iter().any(|t| t.function.is_some()) {
        let tests = &tests;
        outcomes.extend(with_host(&set, |host| async move {
            Ok(rule_tests::run_functions(&host, tests).await)
        })?);
    }
    let color = std::io::stdout().is_terminal();
    let (ok, fail) = if color {
        ("\x1b[32mok\x1b[0m  ", "\x1b[31mFAIL\x1b[0m")
    } else {
        ("ok  ", "FAIL")
    };
    let mut out = String::new();
    let mut failed = 0;
    for o in &outcomes {
        if o.failures.is_empty() {
            out.push_str(&format!("{ok} {}\n", o.name));
        } else {
            failed += 1;
            out.push_str(&format!("{fail} {} ({}:{})\n", o.name, o.file, o.line));
            for f in &o.failures {
                out.push_str(&format!("      {f}\n"));
            }
        }
    }
    let uncovered = rule_tests::uncovered(&set, &tests);
    if !uncovered.is_empty() {
        out.push_str(&format!(
            "\nrules no test exercises: {}\n",
            uncovered.join(", ")
        ));
    }
    out.push_str(&format!(
        "\n{} passed, {failed} failed\n",
        outcomes.len() - failed
    ));
    print(&out)?;
    Ok(if failed > 0 {
        ExitCode::from(EXIT_FOUND_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

fn next_fires(
    rules: &Path,
    only: Option<&str>,
    count: usize,
    after: Option<&str>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let set = match load(rules, format)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let after: DateTime<Utc> = match after {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--after {s:?} is not an RFC 3339 timestamp"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    if let Some(name) = only
        && set.rule(name).is_none()
    {
        anyhow::bail!("no rule is named `{name}`");
    }
    let previews = next::preview(&set, only, count, after);
    if only.is_some() && previews.is_empty() {
        anyhow::bail!("rule `{}` has no schedule", only.unwrap_or_default());
    }
    let text: String = match format {
        Format::Json => previews
            .iter()
            .map(|p| format!("{}\n", p.to_json()))
            .collect(),
        Format::Text => previews.iter().map(next::Preview::to_text).collect(),
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `trigd deploy`'s arguments.
#[derive(clap::Args)]
struct DeployArgs {
    rules: PathBuf,
    /// Show what would change; make no write call.
    #[arg(long)]
    plan: bool,
    /// With --plan: exit 2 when there are changes, 0 when there are none.
    #[arg(long, requires = "plan")]
    detailed_exitcode: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The event bus of the pattern rules.
    #[arg(long, default_value = "default")]
    bus: String,
    /// The deployment's name: what it creates is tagged with it, and only that is ever
    /// changed or deleted [default: the rules directory's name].
    #[arg(long)]
    deployment: Option<String>,
    /// Deploy what can be deployed and list what was left out, instead of refusing.
    #[arg(long)]
    skip_undeployable: bool,
    /// Take over same-named rules and functions that trigd did not create (they are
    /// tagged for this deployment, then updated), instead of reporting conflicts.
    #[arg(long)]
    adopt: bool,
    /// The IAM role EventBridge Scheduler assumes to reach schedule rules' targets.
    #[arg(long, value_name = "ARN")]
    scheduler_role: Option<String>,
    /// The IAM role EventBridge assumes to call `http` targets' API destinations.
    #[arg(long, value_name = "ARN")]
    events_role: Option<String>,
    /// The execution role of the Lambda functions made from local functions.
    #[arg(long, value_name = "ARN")]
    function_role: Option<String>,
    /// Send every connection's secrets again (they cannot be read back, so a changed
    /// secret alone is not seen as a change).
    #[arg(long)]
    update_secrets: bool,
    /// The AWS region [default: the SDK's chain: AWS_REGION, the profile].
    #[arg(long)]
    region: Option<String>,
}

/// The deployment's name: as given, else the rules directory's name.
fn deployment_name(rules: &Path, given: Option<String>) -> anyhow::Result<String> {
    if let Some(d) = given {
        return Ok(d);
    }
    let full =
        std::fs::canonicalize(rules).with_context(|| format!("reading {}", rules.display()))?;
    let dir = if full.is_file() {
        full.parent().map(Path::to_path_buf).unwrap_or(full)
    } else {
        full
    };
    Ok(dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rules".to_owned()))
}

fn print_findings(findings: &[trigd::deploy::Finding]) {
    for f in findings {
        eprintln!("{f}");
    }
}

fn deploy(a: DeployArgs) -> anyhow::Result<ExitCode> {
    use trigd::deploy::session::{self, Outcome};
    use trigd::deploy::{self, desired, plan};
    let set = match load(&a.rules, a.format)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let deployment = deployment_name(&a.rules, a.deployment)?;
    let sources = deploy::RuleSources::read(&set);
    // `${VAR}` header values are copied into connections' secrets from here.
    let env = desired::Env::Values(std::env::vars().collect());
    let packages = session::packages(&set)?;
    let make_ctx = |region: String, account: String| deploy::Context {
        region,
        account,
        bus: a.bus.clone(),
        deployment: deployment.clone(),
        scheduler_role_arn: a.scheduler_role.clone(),
        events_role_arn: a.events_role.clone(),
        env: env.clone(),
        function_role_arn: a.function_role.clone(),
        packages: packages.clone(),
        template: None,
    };
    let opts = session::Options {
        apply: !a.plan,
        skip_undeployable: a.skip_undeployable,
        adopt: a.adopt,
        update_secrets: a.update_secrets,
        region: a.region.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(session::run(
        &set,
        &sources,
        make_ctx,
        &opts,
        chrono::Utc::now,
    ))?;
    let show = |p: &plan::Plan| -> anyhow::Result<()> {
        match a.format {
            Format::Json => print(&format!("{}\n", plan::render_json(p))),
            Format::Text => print(&plan::render_text(p)),
        }
    };
    match outcome {
        Outcome::Refused(offline) => {
            match a.format {
                Format::Json => show(&plan::Plan {
                    findings: offline.findings,
                    ..plan::Plan::default()
                })?,
                Format::Text => {
                    print_findings(&offline.findings);
                    eprintln!(
                        "nothing applied: fix the problems above{}",
                        if a.skip_undeployable {
                            ""
                        } else {
                            ", or leave undeployable parts out with --skip-undeployable"
                        }
                    );
                }
            }
            Ok(ExitCode::from(EXIT_FOUND_PROBLEMS))
        }
        Outcome::Planned(the_plan) => {
            show(&the_plan)?;
            let errors = the_plan.has_errors(a.skip_undeployable);
            if errors && !a.plan {
                eprintln!("nothing applied: resolve the problems and conflicts above");
            }
            Ok(if errors {
                ExitCode::from(EXIT_FOUND_PROBLEMS)
            } else if a.plan && a.detailed_exitcode && the_plan.has_changes() {
                ExitCode::from(EXIT_PLAN_CHANGES)
            } else {
                ExitCode::SUCCESS
            })
        }
        Outcome::Applied {
            plan: the_plan,
            writes,
            remaining,
        } => {
            if a.format == Format::Text {
                print_findings(&the_plan.findings);
            }
            if remaining.has_changes() {
                show(&remaining)?;
                eprintln!(
                    "applied with {writes} write call(s), but AWS still differs from the rules \
                     as shown above (eventual consistency, or a change made meanwhile): run again"
                );
                return Ok(ExitCode::from(EXIT_FOUND_PROBLEMS));
            }
            let (add, change, delete) = the_plan.change_count();
            match a.format {
                Format::Json => print(&format!(
                    "{}\n",
                    serde_json::json!({
                        "applied": plan::render_json(&the_plan),
                        "writes": writes,
                    })
                ))?,
                Format::Text => print(&format!(
                    "{}applied: {add} added, {change} changed, {delete} deleted ({writes} write calls)\n",
                    plan::render_text(&plan::Plan {
                        findings: Vec::new(),
                        ..the_plan.clone()
                    })
                ))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn export(
    rules: &Path,
    format: ExportFormat,
    bus: &str,
    deployment: Option<String>,
    skip_undeployable: bool,
    (scheduler_role, events_role, function_role): (Option<&str>, Option<&str>, Option<&str>),
) -> anyhow::Result<ExitCode> {
    use trigd::deploy::{self, desired, export};
    let set = match load(rules, Format::Text)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let deployment = deployment_name(rules, deployment)?;
    let sources = deploy::RuleSources::read(&set);
    let format = match format {
        ExportFormat::Cloudformation => export::Format::CloudFormation,
        ExportFormat::Sam => export::Format::Sam,
    };
    // Code directories are written relative to the rules directory, as the loader resolved it.
    let rules_dir = std::path::absolute(rules).unwrap_or_else(|_| rules.to_owned());
    let ctx = export::context(
        bus,
        &deployment,
        (scheduler_role, events_role, function_role),
        &rules_dir,
        format,
    );
    let wanted = desired::build(&set, &sources, &ctx);
    let problems: Vec<_> = wanted
        .findings
        .iter()
        .filter(|f| f.severity >= deploy::Severity::Warning)
        .cloned()
        .collect();
    print_findings(&problems);
    if wanted.blocks(skip_undeployable) {
        eprintln!(
            "no template written: fix the problems above, or leave undeployable parts out with --skip-undeployable"
        );
        return Ok(ExitCode::from(EXIT_FOUND_PROBLEMS));
    }
    let template = export::template(&wanted, &ctx, format);
    print(&format!("{}\n", serde_json::to_string_pretty(&template)?))?;
    Ok(ExitCode::SUCCESS)
}
