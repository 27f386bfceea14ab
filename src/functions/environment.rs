//! One execution environment: a runtime process tree with its own Runtime API, private
//! `TMPDIR`, clean environment variables and limits, reused for invocation after invocation
//! until it times out, crashes, runs out of memory or sits idle too long.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::body::Bytes;
use tokio::io::Interest;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch};

use super::report::{self, Failure};
use super::runtime_api::{Answer, Event, RuntimeApi};
use super::{Invocation, LogSink, Outcome, Setup};
use crate::rules::{Function, FunctionRuntime};

/// Lambda's limit on init (on-demand functions).
const INIT_LIMIT: Duration = Duration::from_secs(10);
/// How often a running invocation's memory and process count are sampled, where no cgroup
/// enforces them (see [`memory`]).
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Lambda's limit on processes and threads per environment.
const MAX_PROCESSES: usize = 1024;
/// The most output logged per invocation; the rest is read and dropped with one note.
const MAX_LOG_PER_INVOCATION: usize = 1024 * 1024;
/// The longest line logged as one; longer ones are cut into pieces.
const MAX_LINE: usize = 64 * 1024;
/// `X-Amz-Log-Result` carries the last 4 KB of the invocation's log.
pub(crate) const TAIL_BYTES: usize = 4 * 1024;

/// Why an environment could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot serve the Runtime API")]
    Api(#[source] std::io::Error),
    #[error("cannot create the environment's directory {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// A started environment.
pub(crate) struct Environment {
    api: RuntimeApi,
    pid: i32,
    exited: watch::Receiver<Option<ExitStatus>>,
    waiter: tokio::task::JoinHandle<()>,
    output: OutputHandle,
    started: Instant,
    /// Init's duration, until the first invocation has reported it.
    init_duration: Option<Duration>,
    initialised: bool,
    memory_mb: u32,
    pub tmp: PathBuf,
}

/// What became of the environment after an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Ready for the next invocation.
    Warm,
    /// Dead or killed: start another.
    Gone,
}

impl Environment {
    /// Starts the runtime process for `f`. Init runs in the background; the first invocation
    /// waits for it.
    pub(super) async fn start(
        f: &Function,
        setup: &Setup,
        interpreter: Option<&Path>,
        tmp: PathBuf,
        log_stream: &str,
    ) -> Result<Environment, StartError> {
        std::fs::create_dir_all(&tmp).map_err(|source| StartError::Dir {
            path: tmp.clone(),
            source,
        })?;
        let api = RuntimeApi::start().await.map_err(StartError::Api)?;
        let (program, args) = command_line(f, setup, interpreter);
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args)
            .env_clear()
            .envs(variables(f, setup, &api.addr.to_string(), &tmp, log_stream))
            .current_dir(&f.code)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let (out_tx, out_rx) = pipe::pipe().map_err(StartError::Api)?;
        let (err_tx, err_rx) = pipe::pipe().map_err(StartError::Api)?;
        cmd.stdout(Stdio::from(
            out_tx.into_blocking_fd().map_err(StartError::Api)?,
        ))
        .stderr(Stdio::from(
            err_tx.into_blocking_fd().map_err(StartError::Api)?,
        ));
        let mut child = cmd.spawn().map_err(|source| StartError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        // Dropping `cmd` closes our copies of the pipes' write ends, so the reader sees the end
        // of output when the runtime's tree has exited.
        drop(cmd);
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let (exit_tx, exited) = watch::channel(None);
        let waiter = tokio::spawn(async move {
            // Owns the child: dropping this task (abort) kills it (kill_on_drop).
            if let Ok(status) = child.wait().await {
                let _ = exit_tx.send(Some(status));
            }
        });
        let output = spawn_output(out_rx, err_rx, f.name.clone(), setup.log);
        Ok(Environment {
            api,
            pid,
            exited,
            waiter,
            output,
            started: Instant::now(),
            init_duration: None,
            initialised: false,
            memory_mb: f.memory_mb,
            tmp,
        })
    }

    /// Runs one invocation. Never fails: every way an invocation can end is an [`Outcome`].
    pub(super) async fn invoke(
        &mut self,
        f: &Function,
        setup: &Setup,
        inv: &Invocation,
    ) -> (Outcome, Fate) {
        let id = Arc::clone(&inv.request_id);
        self.output.begin(&id, inv.tail);
        let init_error = if self.initialised {
            None
        } else {
            self.wait_for_init().await
        };
        if let Some(failure) = init_error {
            self.kill();
            return (self.finish(f, inv, Err(failure), None).await, Fate::Gone);
        }
        let started = Instant::now();
        let deadline = started + f.timeout;
        let wall_deadline = chrono::Utc::now().timestamp_millis()
            + i64::try_from(f.timeout.as_millis()).unwrap_or(0);
        let event = Event {
            request_id: Arc::clone(&id),
            payload: inv.payload.clone(),
            deadline_ms: wall_deadline,
            function_arn: Arc::clone(&setup.arn_prefix_for(&f.name)),
            trace_id: trace_id(&id),
            client_context: inv.client_context.clone(),
        };
        let Some(answer) = self.api.send(event) else {
            return (
                self.finish(f, inv, Err(Failure::exit(&id, None)), None)
                    .await,
                Fate::Gone,
            );
        };
        let ended = self.wait_for_answer(answer, deadline, f.timeout, &id).await;
        let duration = started.elapsed();
        self.api.clear();
        let (result, fate) = match ended {
            Ok(Answer::Response(body)) => (Ok(body), Fate::Warm),
            Ok(Answer::Error { body, error_type }) => {
                (Err(Failure::Function { body, error_type }), Fate::Warm)
            }
            Ok(Answer::TooLarge) => (Err(Failure::too_large()), Fate::Warm),
            Err(failure) => (Err(failure), Fate::Gone),
        };
        // Memory past the limit that the sampler missed (a short spike) still fails the
        // invocation, as the kernel would have on Lambda.
        let peak = memory::peak_mb(self.pid);
        let over = peak.is_some_and(|p| p > u64::from(self.memory_mb));
        let (result, fate) = if over && matches!(result, Ok(_) | Err(Failure::Function { .. })) {
            (Err(Failure::out_of_memory(&id)), Fate::Gone)
        } else {
            (result, fate)
        };
        if fate == Fate::Gone {
            self.kill();
        }
        (
            self.finish(f, inv, result, Some((duration, peak))).await,
            fate,
        )
    }

    /// Waits for the runtime's first `next`; `Some` when init failed.
    async fn wait_for_init(&mut self) -> Option<Failure> {
        let limit = self.started + INIT_LIMIT;
        let mut ready = self.api.ready.clone();
        let mut exited = self.exited.clone();
        let failure = loop {
            if let Some(at) = *ready.borrow_and_update() {
                self.initialised = true;
                self.init_duration = Some(at.saturating_duration_since(self.started));
                return None;
            }
            tokio::select! {
                changed = ready.changed() => if changed.is_err() { break Failure::exit("", None) },
                Some(e) = self.api.init_error.recv() => {
                    break Failure::Init { body: e.body, error_type: e.error_type };
                }
                status = exited.wait_for(Option::is_some) => {
                    let status = status.ok().and_then(|s| *s);
                    // An init error posted just before the exit wins over the exit.
                    if let Ok(e) = self.api.init_error.try_recv() {
                        break Failure::Init { body: e.body, error_type: e.error_type };
                    }
                    break Failure::exit("", status);
                }
                () = tokio::time::sleep_until(limit) => break Failure::init_timeout(),
            }
        };
        self.init_duration = Some(self.started.elapsed());
        Some(failure)
    }

    async fn wait_for_answer(
        &mut self,
        answer: oneshot::Receiver<Answer>,
        deadline: Instant,
        timeout: Duration,
        id: &str,
    ) -> Result<Answer, Failure> {
        tokio::pin!(answer);
        let mut exited = self.exited.clone();
        let mut sample = tokio::time::interval_at(Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                a = &mut answer => return a.map_err(|_| Failure::exit(id, None)),
                status = exited.wait_for(Option::is_some) => {
                    let status = status.ok().and_then(|s| *s);
                    // An answer posted just before the exit still counts.
                    if let Ok(a) = answer.try_recv() {
                        return Ok(a);
                    }
                    return Err(Failure::exit(id, status));
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.kill();
                    return Err(Failure::Timeout { timeout });
                }
                _ = sample.tick() => {
                    match memory::sample(self.pid) {
                        Some(s) if s.rss_mb > u64::from(self.memory_mb) => {
                            self.kill();
                            return Err(Failure::out_of_memory(id));
                        }
                        Some(s) if s.processes > MAX_PROCESSES => {
                            self.kill();
                            return Err(Failure::too_many_processes(id, s.processes));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Logs END and REPORT, collects the tail, and builds the outcome.
    async fn finish(
        &mut self,
        f: &Function,
        inv: &Invocation,
        result: Result<Bytes, Failure>,
        measured: Option<(Duration, Option<u64>)>,
    ) -> Outcome {
        let id = &inv.request_id;
        if let Err(failure) = &result
            && let Some(line) = failure.log_line(id)
        {
            self.output.note(&line);
        }
        let (duration, peak) = measured.unwrap_or((Duration::ZERO, None));
        let init = self.init_duration.take();
        let report = report::report_line(id, duration, f.memory_mb, peak, init);
        let mut tail = self
            .output
            .end(&[format!("END RequestId: {id}"), report])
            .await;
        if !inv.tail {
            tail = None;
        }
        Outcome {
            request_id: Arc::clone(id),
            result: result.map_err(|failure| failure.into_error(id)),
            duration,
            init_duration: init,
            max_memory_mb: peak,
            log_tail: tail,
        }
    }

    /// Kills the whole process group (the runtime and anything it started).
    pub(super) fn kill(&self) {
        if self.exited.borrow().is_some() && !memory::group_alive(self.pid) {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.kill();
        self.waiter.abort();
    }
}

/// The program and arguments that start `f`'s runtime; `interpreter` is the resolved one
/// (see [`resolve_interpreter`]), when known.
fn command_line(f: &Function, setup: &Setup, interpreter: Option<&Path>) -> (PathBuf, Vec<String>) {
    let bootstrap = |file: &str| setup.runtime_dir.join(file).display().to_string();
    let program = |default: &str| {
        interpreter
            .map(Path::to_owned)
            .or_else(|| f.interpreter.clone())
            .unwrap_or_else(|| default.into())
    };
    match &f.runtime {
        FunctionRuntime::Python(_) => {
            (program("python3"), vec![bootstrap(super::PYTHON_BOOTSTRAP)])
        }
        FunctionRuntime::Node(_) => (program("node"), vec![bootstrap(super::NODE_BOOTSTRAP)]),
        FunctionRuntime::Provided(_) => (f.code.join("bootstrap"), Vec::new()),
    }
}

/// The interpreter binary behind `python3` or `node` (or `interpreter:`), asked of the
/// interpreter itself in the code directory, once per function: version managers (pyenv,
/// asdf, nvm shims) put a script in front of it that costs 40–150 ms on every start, more than
/// the interpreter's own start-up. `None` for `provided` runtimes, or when the interpreter
/// cannot say (then every start goes through the name as written).
pub(crate) async fn resolve_interpreter(f: &Function, setup: &Setup) -> Option<PathBuf> {
    let (default, probe): (&str, &[&str]) = match &f.runtime {
        FunctionRuntime::Python(_) => ("python3", &["-c", "import sys; print(sys.executable)"]),
        FunctionRuntime::Node(_) => ("node", &["-p", "process.execPath"]),
        FunctionRuntime::Provided(_) => return None,
    };
    let program = f.interpreter.clone().unwrap_or_else(|| default.into());
    let probe = tokio::process::Command::new(&program)
        .args(probe)
        .env_clear()
        .env("PATH", &setup.path)
        .current_dir(&f.code)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(INIT_LIMIT, probe).await.ok()?.ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_absolute() && path.is_file()).then_some(path)
}

/// The environment variables a runtime sees: Lambda's (§2.1 of the reference), the layers'
/// search paths, then the user's. Nothing of the daemon's own environment leaks in but
/// `PATH` and the AWS credentials it was given (Lambda gives the execution role's).
fn variables(
    f: &Function,
    setup: &Setup,
    api: &str,
    tmp: &Path,
    log_stream: &str,
) -> Vec<(String, String)> {
    let join = |parts: Vec<PathBuf>, rest: Option<&str>| -> String {
        let mut s: Vec<String> = parts.iter().map(|p| p.display().to_string()).collect();
        if let Some(r) = rest.filter(|r| !r.is_empty()) {
            s.push(r.to_owned());
        }
        s.join(":")
    };
    // Later layers win, so they come first on the search paths.
    let layers: Vec<&PathBuf> = f.layers.iter().rev().collect();
    let mut v: Vec<(String, String)> = Vec::with_capacity(32);
    let mut set = |k: &str, val: String| v.push((k.to_owned(), val));
    set("_HANDLER", f.handler.clone());
    set("LAMBDA_TASK_ROOT", f.code.display().to_string());
    set(
        "LAMBDA_RUNTIME_DIR",
        setup.runtime_dir.display().to_string(),
    );
    set("AWS_LAMBDA_RUNTIME_API", api.to_owned());
    set("AWS_LAMBDA_FUNCTION_NAME", f.name.clone());
    set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned());
    set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f.memory_mb.to_string());
    set(
        "AWS_LAMBDA_FUNCTION_TIMEOUT",
        f.timeout.as_secs().to_string(),
    );
    set(
        "AWS_LAMBDA_LOG_GROUP_NAME",
        format!("/aws/lambda/{}", f.name),
    );
    set("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned());
    set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned());
    set("AWS_REGION", setup.region.clone());
    set("AWS_DEFAULT_REGION", setup.region.clone());
    set("TZ", ":UTC".to_owned());
    set("LANG", "en_US.UTF-8".to_owned());
    set("TMPDIR", tmp.display().to_string());
    match &f.runtime {
        FunctionRuntime::Python(version) => {
            set("AWS_EXECUTION_ENV", format!("AWS_Lambda_python{version}"));
            let mut paths = Vec::new();
            for l in &layers {
                paths.push(l.join("python"));
                paths.push(l.join(format!("python/lib/python{version}/site-packages")));
            }
            set("PYTHONPATH", join(paths, None));
            // Bytecode goes beside the environments, not into the code directory (read-only
            // on Lambda), where it would look like a change to the rules directory's watcher.
            set(
                "PYTHONPYCACHEPREFIX",
                setup
                    .envs_dir
                    .with_file_name("pycache")
                    .display()
                    .to_string(),
            );
        }
        FunctionRuntime::Node(major) => {
            set("AWS_EXECUTION_ENV", format!("AWS_Lambda_nodejs{major}.x"));
            let mut paths = Vec::new();
            for l in &layers {
                paths.push(l.join(format!("nodejs/node{major}/node_modules")));
                paths.push(l.join("nodejs/node_modules"));
            }
            set("NODE_PATH", join(paths, None));
        }
        FunctionRuntime::Provided(_) => {}
    }
    let bins: Vec<PathBuf> = layers.iter().map(|l| l.join("bin")).collect();
    set("PATH", join(bins, Some(&setup.path)));
    let mut libs: Vec<PathBuf> = layers.iter().map(|l| l.join("lib")).collect();
    libs.push(f.code.clone());
    libs.push(f.code.join("lib"));
    set("LD_LIBRARY_PATH", join(libs, None));
    if let Some(endpoint) = &setup.lambda_endpoint {
        set("AWS_ENDPOINT_URL_LAMBDA", endpoint.clone());
    }
    v.extend(setup.credentials.iter().cloned());
    v.extend(f.environment.iter().cloned());
    v
}

/// An X-Ray trace header for the invocation, derived from its id (nothing reads it but the
/// runtime, which copies it into `_X_AMZN_TRACE_ID`).
fn trace_id(request_id: &str) -> String {
    let hex: String = request_id.chars().filter(char::is_ascii_hexdigit).collect();
    let secs = chrono::Utc::now().timestamp();
    let root = hex.get(..24).unwrap_or("000000000000000000000000");
    let parent = hex.get(16..32).unwrap_or("0000000000000000");
    format!("Root=1-{secs:08x}-{root};Parent={parent};Sampled=0")
}

/// The environment's end of its output: the current invocation's id, tail and budget, shared
/// with the task that reads the pipes.
struct OutputHandle {
    shared: Arc<Mutex<OutputState>>,
    flush: mpsc::Sender<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

struct OutputState {
    function: Arc<str>,
    sink: LogSink,
    request_id: Option<Arc<str>>,
    tail: Option<String>,
    logged: usize,
    cut: bool,
}

impl OutputState {
    fn emit(&mut self, line: &str, platform: bool) {
        if !platform {
            if self.cut {
                return;
            }
            self.logged += line.len() + 1;
            if self.logged > MAX_LOG_PER_INVOCATION {
                self.cut = true;
                let note = format!(
                    "(trigd: over {} KiB of output in this invocation; the rest is dropped)",
                    MAX_LOG_PER_INVOCATION / 1024
                );
                self.emit(&note, true);
                return;
            }
        }
        let id = self.request_id.as_deref().unwrap_or("");
        match self.sink {
            LogSink::Tracing => {
                tracing::info!(target: "trigd::function", message = %line, function = %self.function, request_id = %id);
            }
            LogSink::Stderr => {
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
        if let Some(t) = self.tail.as_mut() {
            t.push_str(line);
            t.push('\n');
            if t.len() > 4 * TAIL_BYTES {
                let cut = t.len() - TAIL_BYTES;
                let at = (cut..t.len())
                    .find(|&i| t.is_char_boundary(i))
                    .unwrap_or(t.len());
                t.drain(..at);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl OutputHandle {
    /// Starts an invocation's log: START, and the tail when asked for.
    fn begin(&self, id: &Arc<str>, tail: bool) {
        let mut s = lock(&self.shared);
        s.request_id = Some(Arc::clone(id));
        s.tail = tail.then(String::new);
        s.logged = 0;
        s.cut = false;
        s.emit(&format!("START RequestId: {id} Version: $LATEST"), true);
    }

    /// A platform line (a timeout, an exit).
    fn note(&self, line: &str) {
        lock(&self.shared).emit(line, true);
    }

    /// Reads what the runtime wrote before it answered, then logs `lines` (END, REPORT) and
    /// returns the tail: the last [`TAIL_BYTES`] of the invocation's log.
    async fn end(&self, lines: &[String]) -> Option<String> {
        let (tx, rx) = oneshot::channel();
        if self.flush.send(tx).await.is_ok() {
            // Everything the runtime wrote before posting its answer is in the pipe by now;
            // the reader takes it without waiting for more.
            let _ = rx.await;
        }
        let mut s = lock(&self.shared);
        for l in lines {
            s.emit(l, true);
        }
        s.request_id = None;
        s.tail.take().map(|mut t| {
            if t.len() > TAIL_BYTES {
                let cut = t.len() - TAIL_BYTES;
                let at = (cut..t.len())
                    .find(|&i| t.is_char_boundary(i))
                    .unwrap_or(t.len());
                t.drain(..at);
            }
            t
        })
    }
}

impl Drop for OutputHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spawn_output(
    out: pipe::Receiver,
    err: pipe::Receiver,
    function: String,
    sink: LogSink,
) -> OutputHandle {
    let shared = Arc::new(Mutex::new(OutputState {
        function: function.into(),
        sink,
        request_id: None,
        tail: None,
        logged: 0,
        cut: false,
    }));
    let (flush_tx, flush_rx) = mpsc::channel(1);
    let task = tokio::spawn(read_output(out, err, Arc::clone(&shared), flush_rx));
    OutputHandle {
        shared,
        flush: flush_tx,
        task,
    }
}

/// One output pipe and the unfinished line read from it.
struct Stream {
    pipe: pipe::Receiver,
    pending: Vec<u8>,
    open: bool,
}

impl Stream {
    /// Reads what is in the pipe now, logging each whole line.
    fn drain(&mut self, shared: &Mutex<OutputState>) {
        let mut chunk = [0u8; 16 * 1024];
        while self.open {
            match self.pipe.try_read(&mut chunk) {
                Ok(0) => {
                    self.open = false;
                    if !self.pending.is_empty() {
                        let rest = std::mem::take(&mut self.pending);
                        lock(shared).emit(&String::from_utf8_lossy(&rest), false);
                    }
                }
                Ok(n) => {
                    self.pending.extend_from_slice(&chunk[..n]);
                    self.lines(shared);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.open = false,
            }
        }
    }

    fn lines(&mut self, shared: &Mutex<OutputState>) {
        let mut start = 0;
        let mut s = lock(shared);
        while let Some(i) = memchr::memchr(b'\n', &self.pending[start..]) {
            let line = &self.pending[start..start + i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            for piece in line.chunks(MAX_LINE) {
                s.emit(&String::from_utf8_lossy(piece), false);
            }
            start += i + 1;
        }
        self.pending.drain(..start);
        while self.pending.len() >= MAX_LINE {
            let piece: Vec<u8> = self.pending.drain(..MAX_LINE).collect();
            s.emit(&String::from_utf8_lossy(&piece), false);
        }
    }
}

async fn read_output(
    out: pipe::Receiver,
    err: pipe::Receiver,
    shared: Arc<Mutex<OutputState>>,
    mut flush: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let mut streams = [
        Stream {
            pipe: out,
            pending: Vec::new(),
            open: true,
        },
        Stream {
            pipe: err,
            pending: Vec::new(),
            open: true,
        },
    ];
    loop {
        let [a, b] = &mut streams;
        tokio::select! {
            r = a.pipe.ready(Interest::READABLE), if a.open => {
                if r.is_err() { a.open = false } else { a.drain(&shared) }
            }
            r = b.pipe.ready(Interest::READABLE), if b.open => {
                if r.is_err() { b.open = false } else { b.drain(&shared) }
            }
            ack = flush.recv() => match ack {
                Some(ack) => {
                    for s in &mut streams {
                        s.drain(&shared);
                    }
                    let _ = ack.send(());
                }
                None => return,
            },
        }
    }
}

/// Memory and process counts from `/proc`, for hosts where no cgroup enforces the limit
/// (RLIMIT_AS is the wrong tool: runtimes reserve far more address space than they use).
mod memory {
    /// Peak resident memory of the runtime process (`VmHWM`), in MB rounded up.
    pub(super) fn peak_mb(pid: i32) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb.div_ceil(1024))
    }

    pub(super) struct Sample {
        pub rss_mb: u64,
        pub processes: usize,
    }

    /// The resident memory and the number of processes of process group `pgid`.
    pub(super) fn sample(pgid: i32) -> Option<Sample> {
        let page = rustix::param::page_size() as u64;
        let mut rss = 0u64;
        let mut processes = 0usize;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the command name, which may itself hold spaces and parentheses.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let fields: Vec<&str> = after.split_whitespace().collect();
            // state(3) ppid(4) pgrp(5) ... rss(24): index = field number - 3.
            if fields.get(2).and_then(|g| g.parse::<i32>().ok()) != Some(pgid) {
                continue;
            }
            processes += 1;
            rss += fields
                .get(21)
                .and_then(|r| r.parse::<u64>().ok())
                .unwrap_or(0)
                * page;
        }
        Some(Sample {
            rss_mb: rss.div_ceil(1024 * 1024),
            processes,
        })
    }

    /// Whether any process is left in group `pgid`.
    pub(super) fn group_alive(pgid: i32) -> bool {
        sample(pgid).is_some_and(|s| s.processes > 0)
    }
}
