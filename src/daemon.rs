//! `trigd run`: wires the parts together and owns their lifetimes.
//!
//! Start: load and validate rules and settings (problems end the start before anything is
//! bound), open the outbox, bind the listener (and the HTTP API listener, when `api:` is set
//! or the rules have `api` triggers), start the dispatcher, the schedules, the SQS sources and
//! the reloader, then report READY. Run: reload on SIGHUP or a change under the
//! rules directory (a bad rule set is refused whole and the old one keeps running; SQS sources
//! follow the new set; `trigd.yaml` changes are reported as waiting for a restart). Stop (SIGTERM/SIGINT):
//! refuse new events (503), stop schedules, let deliveries in flight finish within the grace
//! period, leave the rest in the outbox, close it, exit 0.

pub mod state_lock;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::diag::Diagnostics;
use crate::config::settings::{ApiSettings, DaemonSettings};
use crate::config::{self, LoadError};
use crate::delivery::dispatcher::Dispatcher;
use crate::delivery::policy::Backoff;
use crate::delivery::store::{Outbox, StoreError};
use crate::event::{scheduled_event, stable_id};
use crate::intake::{Batch, Fire, Intake};
use crate::metrics::Metrics;
use crate::rules::{CatchUp, FunctionTriggerKind, RuleSet, Settings, Trigger};
use crate::sd_notify;
use crate::server::{self, AppState, Phase};
use crate::sources::schedule::{ScheduleEntry, TimeBase, Timer};
use crate::targets::Targets;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Rules or settings are invalid: nothing was started.
    #[error("invalid configuration:\n{0}")]
    Config(Diagnostics),
    /// A configuration file could not be read.
    #[error("cannot read the configuration")]
    ConfigIo(#[source] LoadError),
    /// Another daemon runs on the same state directory (or its lock file cannot be taken).
    #[error(transparent)]
    Locked(#[from] state_lock::LockError),
    #[error("the outbox failed")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the HTTP clients")]
    Targets(#[source] crate::targets::TargetsError),
    #[error("cannot start the SNS subscription client")]
    SnsClient(#[source] reqwest::Error),
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error("cannot open the event archive")]
    Archive(#[source] crate::archive::ArchiveError),
    #[error("cannot prepare local functions")]
    Functions(#[source] crate::functions::HostError),
    /// A task the daemon cannot run without ended while it was running (the dispatcher, the
    /// listener, the schedules, the reloader, a source): the daemon drained and stopped, so
    /// that its service manager starts it afresh.
    #[error("{task} stopped: {cause}")]
    Fatal { task: String, cause: String },
}

/// A task that ended while the daemon was running, and why.
#[derive(Debug)]
struct Fatal {
    task: String,
    cause: String,
}

/// The daemon's long-running tasks. Each runs on its own; a watcher per task reports it when
/// it ends (returns or panics) before the daemon asked it to stop, and the daemon then stops
/// with an error rather than run on with a part missing.
#[derive(Clone)]
struct Supervisor {
    tasks: TaskTracker,
    stop: CancellationToken,
    fatal: mpsc::UnboundedSender<Fatal>,
}

impl Supervisor {
    /// Spawns `future`, named `task` in the report should it end too soon.
    fn spawn(&self, task: impl Into<String>, future: impl Future<Output = ()> + Send + 'static) {
        let task = task.into();
        let handle = tokio::spawn(future);
        let stop = self.stop.clone();
        let fatal = self.fatal.clone();
        self.tasks.spawn(async move {
            let ended = handle.await;
            if !stop.is_cancelled() {
                let cause = match ended {
                    Ok(()) => "it ended".to_owned(),
                    Err(e) => ended_because(e),
                };
                let _ = fatal.send(Fatal { task, cause });
            }
        });
    }

    /// Reports `task` as failed with `cause` (for tasks that report their own failure).
    fn reporter(&self, task: &str) -> impl FnOnce(String) + Send + 'static {
        let fatal = self.fatal.clone();
        let task = task.to_owned();
        move |cause| {
            let _ = fatal.send(Fatal { task, cause });
        }
    }
}

/// Pollers (SQS sources and triggers) end by themselves when a reload retires them; one that
/// panics is a task the daemon cannot run without.
impl crate::sources::pollers::Spawn for Supervisor {
    fn spawn(&self, name: &str, task: crate::sources::pollers::PollerTask) {
        let handle = tokio::spawn(task);
        let stop = self.stop.clone();
        let fatal = self.fatal.clone();
        let task = format!("the poller of {name}");
        self.tasks.spawn(async move {
            if let Err(e) = handle.await
                && !stop.is_cancelled()
            {
                let _ = fatal.send(Fatal {
                    task,
                    cause: ended_because(e),
                });
            }
        });
    }
}

/// Why a task's join failed: its panic message, or that it was cancelled.
fn ended_because(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let panic = e.into_panic();
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("it panicked: {text}")
}

/// What the stop may take beyond the grace period that deliveries in flight get: sources,
/// the listener and the outbox's last commit. Past it, the process ends anyway and what did
/// not finish stays in the outbox.
const STOP_SLACK: Duration = Duration::from_secs(3);

/// How long a local function's unused environment stays warm (LocalStack keeps them 10
/// minutes too; Lambda does not document its own).
const FUNCTION_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// What `trigd run` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub rules_dir: PathBuf,
    pub settings: DaemonSettings,
    /// `trigd.yaml`'s path and what it held at start (before command-line overrides): a reload
    /// reads it again and reports the settings that changed, which take a restart.
    pub settings_file: Option<(PathBuf, DaemonSettings)>,
}

/// Loads and checks the rules the daemon can run.
pub fn load_rules(dir: &Path, settings: &DaemonSettings) -> Result<RuleSet, DaemonError> {
    let s = Settings {
        region: settings.region.clone(),
        account: settings.account.clone(),
        defaults: settings.defaults,
    };
    match config::load_rules(dir, s) {
        Ok(r) => Ok(r),
        Err(LoadError::Invalid(d)) => Err(DaemonError::Config(d)),
        Err(e @ LoadError::Io { .. }) => Err(DaemonError::ConfigIo(e)),
    }
}

/// Whether the rules have `api` triggers, which the HTTP API listener serves.
fn has_api_triggers(rules: &RuleSet) -> bool {
    rules
        .triggers
        .iter()
        .any(|t| matches!(t.kind, FunctionTriggerKind::Api(_)))
}

/// The HTTP API listener's settings: `api:` as written, else the default address when the
/// rules have `api` triggers, else none (nothing is bound).
fn api_settings(settings: &DaemonSettings, rules: &RuleSet) -> Option<ApiSettings> {
    settings
        .api
        .clone()
        .or_else(|| has_api_triggers(rules).then(ApiSettings::default))
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, DaemonError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind { addr, source })
}

/// Runs the daemon until `shutdown` completes.
pub async fn run(opts: Options, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let rules = Arc::new(load_rules(&opts.rules_dir, &opts.settings)?);
    // Held until `run` returns: one daemon per state directory.
    let _state_lock = state_lock::StateLock::acquire(&opts.settings.state_dir)?;
    let outbox = Outbox::open(&opts.settings.state_dir)?;
    let listener = bind(opts.settings.listen).await?;
    let addr = listener.local_addr().map_err(|source| DaemonError::Bind {
        addr: opts.settings.listen,
        source,
    })?;
    let api_settings = api_settings(&opts.settings, &rules);
    let api_listener = match &api_settings {
        Some(a) => {
            let l = bind(a.listen).await?;
            let local = l.local_addr().map_err(|source| DaemonError::Bind {
                addr: a.listen,
                source,
            })?;
            Some((l, local))
        }
        None => None,
    };
    let api_addr = api_listener.as_ref().map(|(_, a)| *a);
    // Always built, so a reload may add AWS targets: the region is explicit and credentials
    // resolve on first use, so this touches no network.
    let aws =
        crate::aws::Aws::new(&opts.settings.region, opts.settings.endpoint_url.as_deref()).await;
    let metrics = Arc::new(Metrics::new());
    let functions = crate::functions::Host::new(crate::functions::HostOptions {
        state_dir: opts.settings.state_dir.clone(),
        region: opts.settings.region.clone(),
        account: opts.settings.account.clone(),
        lambda_endpoint: Some(format!("http://{addr}")),
        aws_endpoint: opts
            .settings
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok()),
        log: crate::functions::LogSink::Tracing,
        idle_timeout: FUNCTION_IDLE_TIMEOUT,
        metrics: Some(Arc::clone(&metrics)),
    })
    .map_err(DaemonError::Functions)?;
    functions.update(&rules.functions);
    let targets = Arc::new(
        Targets::new()
            .map_err(DaemonError::Targets)?
            .with_aws(aws.clone())
            .with_functions(Arc::clone(&functions)),
    );
    metrics.set("trigd_rules", &[], rules.rules.len() as f64);
    let (rules_tx, rules_rx) = watch::channel(Arc::clone(&rules));
    let archive = match &opts.settings.archive {
        Some(config) => Some(
            crate::archive::Archive::open(&opts.settings.state_dir, config.clone())
                .map_err(DaemonError::Archive)?,
        ),
        None => None,
    };
    // The one door for every source's events.
    let intake = Intake::new(
        rules_rx.clone(),
        outbox.clone(),
        Arc::clone(&metrics),
        archive,
    );
    let state = Arc::new(AppState {
        intake: intake.clone(),
        outbox: outbox.clone(),
        metrics: Arc::clone(&metrics),
        phase: AtomicU8::new(Phase::Starting as u8),
    });

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (fatal_tx, mut fatal_rx) = mpsc::unbounded_channel();
    let sup = Supervisor {
        tasks: tasks.clone(),
        stop: stop.clone(),
        fatal: fatal_tx,
    };

    // The listener stops accepting when `stop_http` fires, after the drain has begun.
    let stop_http = CancellationToken::new();
    let sns = crate::sources::sns_http::SnsHttp::new().map_err(DaemonError::SnsClient)?;
    let app = server::router(Arc::clone(&state), opts.settings.max_body_bytes)
        .merge(crate::sources::sns_http::routes(
            Arc::clone(&state),
            sns,
            opts.settings.max_body_bytes,
        ))
        .merge(crate::functions::invoke_api::routes(
            crate::functions::invoke_api::InvokeApi {
                host: Arc::clone(&functions),
                events: Arc::new(outbox.clone()),
                metrics: Arc::clone(&metrics),
            },
        ));
    // The HTTP API listener stops with the main one: requests in flight are answered.
    let api = match (api_listener, &api_settings) {
        (Some((l, _)), Some(settings)) => Some((
            l,
            Arc::new(crate::sources::api::Api::new(
                intake.clone(),
                Arc::clone(&functions),
                Arc::clone(&metrics),
                settings,
            )),
        )),
        _ => None,
    };
    let http_stop = stop_http.clone();
    let mut server = tokio::spawn(async move {
        let api_stop = http_stop.clone();
        let main = axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_stop.cancelled().await });
        let api = async move {
            match api {
                Some((l, api)) => {
                    crate::sources::api::serve(l, api, async move { api_stop.cancelled().await })
                        .await
                }
                None => Ok(()),
            }
        };
        tokio::try_join!(main.into_future(), api).map(|_| ())
    });

    let dispatcher = Dispatcher::new(
        outbox.clone(),
        rules_rx.clone(),
        targets,
        Arc::new(intake.clone()),
        Arc::clone(&metrics),
        Backoff::default(),
    );
    let grace = opts.settings.grace_period;
    let dispatch_stop = stop.clone();
    let dispatch_failed = sup.reporter("the dispatcher");
    let mut dispatch = tokio::spawn(async move {
        dispatcher
            .run(dispatch_stop, grace, |e| dispatch_failed(e.to_string()))
            .await
    });

    sup.spawn(
        "the schedules",
        schedules(
            rules_rx.clone(),
            outbox.clone(),
            intake.clone(),
            stop.clone(),
        ),
    );
    // The watcher and the SIGHUP handler exist before READY: no change or reload request after
    // READY is missed, and a SIGHUP never meets the default action (terminate).
    let (changed_tx, changed_rx) = mpsc::channel::<()>(1);
    let watcher = watch_dir(&opts.rules_dir, changed_tx);
    let hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(message = "Cannot listen for SIGHUP; reload on file changes only.", error = %e);
            None
        }
    };
    // SQS sources as the rules declare them; the reloader then keeps them in step.
    let pollers: Arc<dyn crate::sources::pollers::Spawn> = Arc::new(sup.clone());
    let mut sqs = crate::sources::sqs::SqsSources::new(
        aws.sqs.clone(),
        intake.clone(),
        stop.clone(),
        Arc::clone(&pollers),
    );
    sqs.apply(&rules);
    // sqs triggers (Lambda's event-source mappings) likewise.
    let mut sqs_triggers = crate::sources::sqs_trigger::SqsTriggers::new(
        aws.sqs.clone(),
        Arc::clone(&functions),
        Arc::clone(&metrics),
        opts.settings.region.clone(),
        stop.clone(),
        pollers,
    );
    sqs_triggers.apply(&rules);
    sup.spawn(
        "the reloader",
        reloader(
            Reload {
                dir: opts.rules_dir.clone(),
                settings: opts.settings.clone(),
                settings_file: opts.settings_file.clone(),
                rules_tx,
                sqs,
                sqs_triggers,
                functions: Arc::clone(&functions),
                api_listening: api_addr.is_some(),
            },
            Arc::clone(&metrics),
            Triggers {
                _watcher: watcher,
                changed: changed_rx,
                hup,
            },
            stop.clone(),
        ),
    );
    let watchdog = sd_notify::watchdog_interval();
    if let Some(every) = watchdog {
        let stop = stop.clone();
        sup.spawn("the systemd watchdog", async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => sd_notify::notify("WATCHDOG=1"),
                    () = stop.cancelled() => return,
                }
            }
        });
    }

    state.set_phase(Phase::Running);
    sd_notify::notify("READY=1");
    tracing::info!(
        message = "trigd is ready.",
        listen = %addr,
        api = api_addr.map(|a| a.to_string()),
        rules = rules.rules.len(),
        state_dir = %opts.settings.state_dir.display()
    );

    // Until a stop is asked for, or a task the daemon cannot run without ends.
    let mut dispatched = None;
    let mut served = None;
    let fatal = tokio::select! {
        () = shutdown => None,
        Some(f) = fatal_rx.recv() => Some(f),
        d = &mut dispatch => {
            let cause = match &d {
                Ok(Ok(())) => "it ended".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "it panicked".to_owned(),
            };
            dispatched = Some(d);
            Some(Fatal { task: "the dispatcher".to_owned(), cause })
        }
        r = &mut server => {
            let cause = match &r {
                Ok(Ok(())) => "it ended".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "it panicked".to_owned(),
            };
            served = Some(r);
            Some(Fatal { task: "the HTTP listener".to_owned(), cause })
        }
    };
    match &fatal {
        None => tracing::info!(
            message = "Shutting down: draining deliveries in flight.",
            grace_secs = grace.as_secs()
        ),
        Some(f) => tracing::error!(
            message = "A task trigd cannot run without has stopped: refusing events, draining, then exiting with an error for the service manager to restart trigd.",
            task = %f.task,
            cause = %f.cause,
            grace_secs = grace.as_secs()
        ),
    }
    sd_notify::notify("STOPPING=1");
    state.set_phase(Phase::Draining);
    stop.cancel();
    tasks.close();
    // The whole stop is bounded: a source stuck in an SDK call, a target that never
    // answers or a command that runs on cannot hold it past the grace period and a little.
    let drain = async {
        tasks.wait().await;
        let dispatched = match dispatched {
            Some(d) => d,
            None => dispatch.await,
        };
        stop_http.cancel();
        let served = match served {
            Some(s) => s,
            None => server.await,
        };
        (dispatched, served)
    };
    let limit = grace + STOP_SLACK;
    let (dispatched, served) = match tokio::time::timeout(limit, drain).await {
        Ok((d, s)) => (Some(d), Some(s)),
        Err(_) => {
            tracing::warn!(
                message = "The stop took longer than the grace period allows; what did not finish stays in the outbox.",
                limit_secs = limit.as_secs()
            );
            (None, None)
        }
    };
    functions.shutdown();
    if tokio::time::timeout(STOP_SLACK, outbox.close())
        .await
        .is_err()
    {
        tracing::warn!(
            message = "The outbox did not close in time; its last commit is fsync'd or not made, never half made."
        );
    }
    if let Some(f) = fatal {
        return Err(DaemonError::Fatal {
            task: f.task,
            cause: f.cause,
        });
    }
    if let Some(Ok(Err(e))) = dispatched {
        return Err(DaemonError::Store(e));
    }
    if let Some(Ok(Err(e))) = served {
        return Err(DaemonError::Serve(e));
    }
    tracing::info!(message = "Stopped.");
    Ok(())
}

/// A stable numeric id for a schedule rule, so that fires emitted across a reload still name
/// the right rule.
fn schedule_id(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fires schedule rules: catch-up on start, then the timer, rebuilt on every reload. The
/// outbox is read for the rules' last fires; fires go to the intake.
async fn schedules(
    mut rules_rx: watch::Receiver<Arc<RuleSet>>,
    outbox: Outbox,
    intake: Intake,
    stop: CancellationToken,
) {
    let rules = rules_rx.borrow_and_update().clone();
    let now = Utc::now();
    let marks = load_marks(&outbox, &rules).await;
    for (name, at) in catch_up(&rules, &marks, now) {
        fire(&rules, &name, at, &intake).await;
    }
    let (timer, handle) = Timer::new(TimeBase::now(), entries(&rules, &marks, now));
    let (tx, mut rx) = mpsc::channel(256);
    let timer_stop = stop.clone();
    let timer_task = tokio::spawn(timer.run(tx, async move { timer_stop.cancelled().await }));
    loop {
        tokio::select! {
            Some(f) = rx.recv() => {
                let rules = rules_rx.borrow().clone();
                if let Some(rule) = rules.rules.iter().find(|r| schedule_id(&r.name) == f.id) {
                    let name = rule.name.clone();
                    fire(&rules, &name, f.scheduled, &intake).await;
                }
            }
            Ok(()) = rules_rx.changed() => {
                let rules = rules_rx.borrow_and_update().clone();
                let marks = load_marks(&outbox, &rules).await;
                handle.reload(entries(&rules, &marks, Utc::now()));
            }
            () = stop.cancelled() => break,
        }
    }
    let _ = timer_task.await;
}

async fn load_marks(outbox: &Outbox, rules: &RuleSet) -> HashMap<String, DateTime<Utc>> {
    let mut out = HashMap::new();
    for r in &rules.rules {
        if matches!(r.trigger, Trigger::Schedule(_)) {
            match outbox.schedule_mark(&r.name).await {
                Ok(Some(ms)) => {
                    if let Some(t) = Utc.timestamp_millis_opt(ms).single() {
                        out.insert(r.name.clone(), t);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(message = "Cannot read a schedule's last fire.", rule = %r.name, error = %e)
                }
            }
        }
    }
    out
}

/// Timer entries for the enabled schedule rules. Rate schedules continue their cadence from
/// the last recorded fire (or `start`), else start now.
fn entries(
    rules: &RuleSet,
    marks: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<ScheduleEntry> {
    rules
        .rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| match &r.trigger {
            Trigger::Schedule(s) => Some(ScheduleEntry {
                id: schedule_id(&r.name),
                expr: s.expr.clone(),
                tz: s.timezone,
                anchor: marks.get(&r.name).copied().or(s.start).unwrap_or(now),
            }),
            Trigger::Pattern(_) => None,
        })
        .collect()
}

/// The fires to make up for on start: per rule, at most the latest one missed since its last
/// recorded fire, when the rule's policy is `once` and it is recent enough.
pub fn catch_up(
    rules: &RuleSet,
    marks: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<(String, DateTime<Utc>)> {
    let mut out = Vec::new();
    for r in rules.rules.iter().filter(|r| r.enabled) {
        let (Trigger::Schedule(s), Some(&last)) = (&r.trigger, marks.get(&r.name)) else {
            continue;
        };
        let CatchUp::Once { within } = s.catch_up else {
            continue;
        };
        let mut latest = None;
        let mut cursor = last;
        // Bounded: a minute-rate schedule down for a year is ~525k steps; stop well before.
        for _ in 0..1_000_000 {
            match s.expr.next_after(cursor, s.timezone, last) {
                Some(t) if t <= now => {
                    latest = Some(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        if let Some(t) = latest {
            let age = (now - t).to_std().unwrap_or_default();
            let in_window = s.start.is_none_or(|st| t >= st) && s.end.is_none_or(|en| t <= en);
            if age <= within && in_window {
                out.push((r.name.clone(), t));
            }
        }
    }
    out
}

/// One fire of a schedule rule: its Scheduled Event goes to the intake, which stores its
/// deliveries together with the rule's last-fire mark, in one transaction.
async fn fire(rules: &RuleSet, name: &str, scheduled: DateTime<Utc>, intake: &Intake) {
    let Some(rule) = rules.rule(name) else {
        return;
    };
    let Trigger::Schedule(s) = &rule.trigger else {
        return;
    };
    if !rule.enabled
        || s.start.is_some_and(|st| scheduled < st)
        || s.end.is_some_and(|en| scheduled > en)
    {
        return;
    }
    let now = Utc::now();
    let scheduled = Utc
        .timestamp_opt(scheduled.timestamp(), 0)
        .single()
        .unwrap_or(scheduled);
    let arn = rules.rule_arn(name);
    let id = stable_id(&format!("{arn}@{}", scheduled.timestamp()));
    let event: Value = scheduled_event(&rules.settings, &arn, scheduled, &id);
    let due = match s.jitter {
        Some(window) => {
            let offset = window.mul_f64(rand::random::<f64>());
            now + chrono::Duration::from_std(offset).unwrap_or_default()
        }
        None => now,
    };
    let metrics = intake.metrics();
    metrics.inc("trigd_schedule_fires_total", &[("rule", name)]);
    metrics.observe(
        "trigd_schedule_lateness_seconds",
        &[("rule", name)],
        ((now - scheduled).num_milliseconds().max(0) as f64) / 1000.0,
    );
    let fire = Fire {
        rule,
        due,
        mark_ms: scheduled.timestamp_millis(),
    };
    match intake.accept(rules, Batch::fire(event, fire), now).await {
        // Stored with its mark; the intake logged the dead letter it could not write.
        Ok(()) | Err(crate::intake::IntakeError::DeadLetter(_)) => {}
        Err(e) => {
            tracing::error!(message = "A schedule fire could not be stored; it will be caught up on restart.", rule = name, error = %e);
        }
    }
}

/// What makes the reloader reload.
struct Triggers {
    /// Kept alive as long as the reloader: dropping it stops the watching.
    _watcher: Option<notify::RecommendedWatcher>,
    /// A nudge per change under the rules directory.
    changed: mpsc::Receiver<()>,
    hup: Option<tokio::signal::unix::Signal>,
}

/// What a reload reads and what it changes.
struct Reload {
    dir: PathBuf,
    /// The settings in effect (read at start, with command-line overrides).
    settings: DaemonSettings,
    /// `trigd.yaml` and what it held at start, see [`Options::settings_file`].
    settings_file: Option<(PathBuf, DaemonSettings)>,
    rules_tx: watch::Sender<Arc<RuleSet>>,
    sqs: crate::sources::sqs::SqsSources,
    sqs_triggers: crate::sources::sqs_trigger::SqsTriggers,
    /// The local functions: updated before the triggers that invoke them start.
    functions: Arc<crate::functions::Host>,
    /// Whether the HTTP API listener runs (it is bound at start only).
    api_listening: bool,
}

/// How a reload ended, as counted in `trigd_reloads_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReloadResult {
    Success,
    /// The rules were applied, but `trigd.yaml` changed too and its settings wait for a
    /// restart.
    RestartNeeded,
    Failure,
}

impl ReloadResult {
    fn label(self) -> &'static str {
        match self {
            ReloadResult::Success => "success",
            ReloadResult::RestartNeeded => "restart_needed",
            ReloadResult::Failure => "failure",
        }
    }
}

impl Reload {
    /// One reload: `trigd.yaml` (when there is one) and the rules are read and checked whole
    /// (either invalid refuses the reload); then the rules are swapped in and the SQS sources
    /// follow them. Settings changed in `trigd.yaml` are logged as waiting for a restart.
    fn run(&mut self, reason: &str, metrics: &Metrics) -> ReloadResult {
        let pending = match &self.settings_file {
            Some((path, at_start)) => match config::settings::load(path) {
                Ok(now) => {
                    // A setting a command-line flag overrides would not change after a
                    // restart either.
                    let overridden = config::settings::changed(at_start, &self.settings);
                    let mut keys = config::settings::changed(at_start, &now);
                    keys.retain(|k| !overridden.contains(k));
                    keys
                }
                Err(e) => {
                    let e = match e {
                        LoadError::Invalid(d) => DaemonError::Config(d),
                        e => DaemonError::ConfigIo(e),
                    };
                    tracing::error!(message = "Reload refused; the previous rules keep running.", reason, error = %e);
                    return ReloadResult::Failure;
                }
            },
            None => Vec::new(),
        };
        let new = match load_rules(&self.dir, &self.settings) {
            Ok(new) => Arc::new(new),
            Err(e) => {
                tracing::error!(message = "Reload refused; the previous rules keep running.", reason, error = %e);
                return ReloadResult::Failure;
            }
        };
        let count = new.rules.len();
        metrics.set("trigd_rules", &[], count as f64);
        self.functions.update(&new.functions);
        self.rules_tx.send_replace(Arc::clone(&new));
        for (source, change) in self.sqs.apply(&new) {
            tracing::info!(message = "SQS source changed by the reload.", source = %source, change = change.as_str());
        }
        for (trigger, change) in self.sqs_triggers.apply(&new) {
            tracing::info!(message = "sqs trigger changed by the reload.", trigger = %trigger, change = change.as_str());
        }
        tracing::info!(message = "Rules reloaded.", reason, rules = count);
        if !self.api_listening && has_api_triggers(&new) {
            tracing::warn!(
                message = "The rules now have api triggers, but the HTTP API listener was not started; restart trigd to serve them."
            );
        }
        if pending.is_empty() {
            return ReloadResult::Success;
        }
        tracing::warn!(
            message = "trigd.yaml changed; these settings take effect only after a restart.",
            settings = %pending.join(", ")
        );
        ReloadResult::RestartNeeded
    }
}

/// Reloads on SIGHUP and on changes under the rules directory (debounced).
async fn reloader(
    mut reload: Reload,
    metrics: Arc<Metrics>,
    triggers: Triggers,
    stop: CancellationToken,
) {
    let Triggers {
        _watcher,
        changed: mut changed_rx,
        mut hup,
    } = triggers;
    loop {
        let reason = tokio::select! {
            Some(()) = changed_rx.recv() => {
                // Editors write files in several steps: wait for them to settle.
                tokio::time::sleep(Duration::from_millis(300)).await;
                while changed_rx.try_recv().is_ok() {}
                "file change"
            }
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            () = stop.cancelled() => return,
        };
        sd_notify::notify("RELOADING=1");
        let result = reload.run(reason, &metrics);
        metrics.inc("trigd_reloads_total", &[("result", result.label())]);
        sd_notify::notify("READY=1");
    }
}

/// Watches `dir` recursively; every event is a nudge on `tx`. `None` when watching is not
/// possible (SIGHUP still works).
fn watch_dir(dir: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !matches!(ev.kind, notify::EventKind::Access(_))
        {
            let _ = tx.try_send(());
        }
    };
    match notify::recommended_watcher(handler) {
        Ok(mut w) => match w.watch(dir, notify::RecursiveMode::Recursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(message = "Cannot watch the rules directory; reload with SIGHUP.", error = %e);
                None
            }
        },
        Err(e) => {
            tracing::warn!(message = "Cannot watch the rules directory; reload with SIGHUP.", error = %e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_poller_that_panics_is_fatal_and_one_that_ends_is_not() {
        use crate::sources::pollers::Spawn;
        let (fatal, mut reports) = mpsc::unbounded_channel();
        let sup = Supervisor {
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            fatal,
        };
        Spawn::spawn(&sup, "orders", Box::pin(async {}));
        Spawn::spawn(
            &sup,
            "uploads",
            Box::pin(async { panic!("a poller's bug") }),
        );
        sup.tasks.close();
        sup.tasks.wait().await;
        let report = reports.try_recv().unwrap();
        assert_eq!(report.task, "the poller of uploads");
        assert_eq!(report.cause, "it panicked: a poller's bug");
        assert!(reports.try_recv().is_err(), "only the panic is reported");
    }

    fn rules(catch_up: &str) -> RuleSet {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "rules:\n  - name: tick\n    schedule: rate(10 minutes)\n    catch_up: {catch_up}\n    targets: [{{id: t, log: true}}]\n"
        );
        std::fs::write(dir.path().join("r.yaml"), text).unwrap();
        config::load_rules(dir.path(), Settings::default()).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn catch_up_fires_the_latest_missed_fire_once() {
        let now = at("2026-11-23T12:00:00Z");
        let marks = HashMap::from([("tick".to_owned(), at("2026-11-23T11:25:00Z"))]);
        // Missed: 11:35, 11:45, 11:55; only the latest is made up for.
        assert_eq!(
            catch_up(&rules("once"), &marks, now),
            vec![("tick".to_owned(), at("2026-11-23T11:55:00Z"))]
        );
        assert_eq!(catch_up(&rules("skip"), &marks, now), vec![]);
        // Older than the window: nothing.
        assert_eq!(
            catch_up(&rules("{policy: once, within: 2m}"), &marks, now),
            vec![]
        );
        // Never fired before (a new rule): nothing to catch up.
        assert_eq!(catch_up(&rules("once"), &HashMap::new(), now), vec![]);
        // Nothing missed.
        let recent = HashMap::from([("tick".to_owned(), at("2026-11-23T11:55:00Z"))]);
        assert_eq!(catch_up(&rules("once"), &recent, now), vec![]);
    }

    #[test]
    fn the_api_listener_runs_when_asked_or_when_there_are_api_triggers() {
        let bare = RuleSet::new(Vec::new(), Vec::new(), Settings::default());
        let with_route =
            RuleSet::new(Vec::new(), Vec::new(), Settings::default()).with_triggers(vec![
                crate::rules::FunctionTrigger {
                    function: "f".into(),
                    kind: FunctionTriggerKind::Api(crate::rules::ApiRoute {
                        route: crate::lambda_events::RouteKey::Default,
                        payload_format: crate::rules::PayloadFormat::V2,
                    }),
                    file: "f.yaml".into(),
                    line: 1,
                    column: 1,
                },
            ]);
        let unset = DaemonSettings::default();
        assert_eq!(api_settings(&unset, &bare), None);
        assert_eq!(
            api_settings(&unset, &with_route),
            Some(ApiSettings::default()),
            "sam's port"
        );
        let set = DaemonSettings {
            api: Some(ApiSettings {
                listen: "127.0.0.1:4000".parse().unwrap(),
                cors: None,
            }),
            ..DaemonSettings::default()
        };
        assert_eq!(api_settings(&set, &bare), set.api);
        assert_eq!(api_settings(&set, &with_route), set.api);
    }

    #[test]
    fn schedule_ids_are_stable_and_distinct() {
        assert_eq!(schedule_id("a"), schedule_id("a"));
        assert_ne!(schedule_id("a"), schedule_id("b"));
    }
}
