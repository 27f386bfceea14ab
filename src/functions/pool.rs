//! One function's environments: at most `concurrency` at once, warm ones reused last-in
//! first-out (the most recently used is the most likely to be hot in caches), idle ones
//! stopped after the host's idle timeout by a task that sleeps until the next expiry.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use tokio::time::Instant;

use tokio::sync::{Notify, Semaphore};

use super::environment::{Environment, Fate};
use super::report::Failure;
use super::{Invocation, Outcome, Setup};
use crate::rules::Function;

/// How many files of a function's code and layers are looked at for changes, at most.
const STAMP_FILES: usize = 10_000;

pub(crate) struct Pool {
    function: Function,
    setup: Arc<Setup>,
    stamp: Option<SystemTime>,
    dir: PathBuf,
    permits: Semaphore,
    idle: Mutex<Vec<((Environment, Live), Instant)>>,
    idle_changed: Arc<Notify>,
    /// `/tmp` directories of environments that are gone, for their successors: Lambda keeps
    /// `/tmp` across a reset.
    free_tmp: Mutex<Vec<PathBuf>>,
    next_env: AtomicU64,
    environments: AtomicUsize,
    waiting: AtomicUsize,
    stop: tokio_util::sync::CancellationToken,
    /// The interpreter binary, resolved at the first start (see
    /// [`super::environment::resolve_interpreter`]).
    interpreter: tokio::sync::OnceCell<Option<PathBuf>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("function", &self.function.name)
            .field("environments", &self.environments)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The latest modification time among the function's code and layer files (`None` if none
/// could be read): a reload compares it to restart environments whose code changed.
pub(crate) fn code_stamp(f: &Function) -> Option<SystemTime> {
    let mut latest = None;
    let mut seen = 0usize;
    let mut dirs: Vec<PathBuf> = std::iter::once(f.code.clone())
        .chain(f.layers.iter().cloned())
        .collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > STAMP_FILES {
                return latest;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                // Bytecode caches change when code runs; they are not the code.
                if entry.file_name() != "__pycache__" {
                    dirs.push(entry.path());
                }
            } else if let Ok(m) = meta.modified() {
                latest = latest.max(Some(m));
            }
        }
    }
    latest
}

/// Decrements the environment count when an environment is gone, however it went.
struct Live {
    pool: Weak<Pool>,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(p) = self.pool.upgrade() {
            let n = p.environments.fetch_sub(1, Ordering::Relaxed) - 1;
            p.gauge("trigd_function_environments", n);
        }
    }
}

impl Pool {
    pub(super) fn new(
        function: Function,
        setup: Arc<Setup>,
        stamp: Option<SystemTime>,
    ) -> Arc<Pool> {
        static GENERATION: AtomicU64 = AtomicU64::new(0);
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let dir = setup
            .envs_dir
            .join(format!("{}-{generation}", function.name));
        let pool = Arc::new(Pool {
            permits: Semaphore::new(function.concurrency as usize),
            function,
            setup,
            stamp,
            dir,
            idle: Mutex::new(Vec::new()),
            idle_changed: Arc::new(Notify::new()),
            free_tmp: Mutex::new(Vec::new()),
            next_env: AtomicU64::new(0),
            environments: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            stop: tokio_util::sync::CancellationToken::new(),
            interpreter: tokio::sync::OnceCell::new(),
        });
        pool.gauge("trigd_function_environments", 0);
        pool.gauge("trigd_function_waiting", 0);
        tokio::spawn(reap_idle(Arc::downgrade(&pool), pool.stop.clone()));
        // The interpreter is resolved now, at load, so the first invocation does not wait
        // for it (it waits only if it comes before this is done).
        let weak = Arc::downgrade(&pool);
        tokio::spawn(async move {
            if let Some(p) = weak.upgrade() {
                p.interpreter
                    .get_or_init(|| super::environment::resolve_interpreter(&p.function, &p.setup))
                    .await;
            }
        });
        pool
    }

    pub(super) fn function(&self) -> &Function {
        &self.function
    }

    pub(super) fn stamp(&self) -> Option<SystemTime> {
        self.stamp
    }

    fn gauge(&self, name: &'static str, value: usize) {
        if let Some(m) = &self.setup.metrics {
            m.set(name, &[("function", &self.function.name)], value as f64);
        }
    }

    fn count(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        if let Some(m) = &self.setup.metrics {
            let mut all = vec![("function", self.function.name.as_str())];
            all.extend_from_slice(labels);
            m.inc(name, &all);
        }
    }

    pub(super) async fn invoke(self: &Arc<Self>, inv: Invocation) -> Outcome {
        let waiting = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        self.gauge("trigd_function_waiting", waiting);
        let permit = self.permits.acquire().await;
        let waiting = self.waiting.fetch_sub(1, Ordering::Relaxed) - 1;
        self.gauge("trigd_function_waiting", waiting);
        let taken = lock(&self.idle).pop();
        let (mut env, live) = match taken {
            Some((env, _)) => env,
            None => match self.start().await {
                Ok(started) => {
                    self.count("trigd_function_cold_starts_total", &[]);
                    started
                }
                Err(message) => {
                    drop(permit);
                    return self.failed_start(&inv, message);
                }
            },
        };
        let (outcome, fate) = env.invoke(&self.function, &self.setup, &inv).await;
        match fate {
            Fate::Warm => {
                lock(&self.idle).push(((env, live), Instant::now()));
                self.idle_changed.notify_one();
            }
            Fate::Gone => {
                lock(&self.free_tmp).push(env.tmp.clone());
                drop(env);
                drop(live);
            }
        }
        drop(permit);
        let label = match &outcome.result {
            Ok(_) => "success",
            Err(e) => e.kind.label(),
        };
        self.count("trigd_function_invocations_total", &[("outcome", label)]);
        if let Some(m) = &self.setup.metrics {
            m.observe(
                "trigd_function_duration_seconds",
                &[("function", &self.function.name)],
                outcome.duration.as_secs_f64(),
            );
        }
        outcome
    }

    async fn start(self: &Arc<Self>) -> Result<(Environment, Live), String> {
        let n = self.next_env.fetch_add(1, Ordering::Relaxed);
        let tmp = lock(&self.free_tmp)
            .pop()
            .unwrap_or_else(|| self.dir.join(format!("tmp-{n}")));
        let stream = format!(
            "{}/[$LATEST]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            uuid::Uuid::new_v4().simple()
        );
        let interpreter = self
            .interpreter
            .get_or_init(|| super::environment::resolve_interpreter(&self.function, &self.setup))
            .await;
        let env = Environment::start(
            &self.function,
            &self.setup,
            interpreter.as_deref(),
            tmp,
            &stream,
        )
        .await
        .map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(": ");
                message.push_str(&s.to_string());
                source = s.source();
            }
            message
        })?;
        let n = self.environments.fetch_add(1, Ordering::Relaxed) + 1;
        self.gauge("trigd_function_environments", n);
        Ok((
            env,
            Live {
                pool: Arc::downgrade(self),
            },
        ))
    }

    fn failed_start(&self, inv: &Invocation, message: String) -> Outcome {
        tracing::error!(message = "A function's runtime could not be started.", function = %self.function.name, error = %message);
        let error = Failure::Start { message }.into_error(&inv.request_id);
        self.count(
            "trigd_function_invocations_total",
            &[("outcome", error.kind.label())],
        );
        Outcome {
            request_id: Arc::clone(&inv.request_id),
            result: Err(error),
            duration: std::time::Duration::ZERO,
            init_duration: None,
            max_memory_mb: None,
            log_tail: None,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.cancel();
        lock(&self.idle).clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stops environments idle for longer than the host's idle timeout. Sleeps until the oldest
/// idle environment expires, or until the idle list changes.
async fn reap_idle(pool: Weak<Pool>, stop: tokio_util::sync::CancellationToken) {
    loop {
        let Some(p) = pool.upgrade() else { return };
        let timeout = p.setup.idle_timeout;
        let now = Instant::now();
        let expired: Vec<_> = {
            let mut idle = lock(&p.idle);
            let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|(_, at)| now.duration_since(*at) >= timeout);
            *idle = keep;
            old
        };
        for ((env, live), _) in expired {
            lock(&p.free_tmp).push(env.tmp.clone());
            drop(env);
            drop(live);
        }
        let next = lock(&p.idle).iter().map(|(_, at)| *at + timeout).min();
        let notify = Arc::clone(&p.idle_changed);
        drop(p);
        let changed = notify.notified();
        tokio::select! {
            () = stop.cancelled() => return,
            () = changed => {}
            () = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}
