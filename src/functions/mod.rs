//! Local functions: Lambda handlers run on this machine, warm, with Lambda's contract.
//!
//! A [`Host`] keeps one pool per declared function. A pool holds up to `concurrency`
//! execution environments; each environment is one runtime process tree (trigd's own
//! Python or Node runtime client, or the function's `bootstrap`) that talks to its own
//! Runtime API on loopback, runs one invocation at a time and is reused until it times out,
//! crashes, exceeds its memory or sits idle. Invocations past the limit wait their turn.
//!
//! The three ways in (the `function:` target, the Invoke API, `trigd invoke`) all come down to
//! [`Host::invoke`], which never fails for a function's misbehaviour: a handler's exception,
//! a timeout, a crash or an out-of-memory kill is an [`Outcome`] with Lambda's error payload.
//!
//! Arrows: this room uses the rule model (`rules::Function`) and metrics, and nothing of the
//! daemon, the sources or the targets.

mod environment;
pub mod invoke_api;
mod pool;
mod report;
mod runtime_api;
pub mod samples;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;

pub use report::ErrorKind;

use crate::metrics::Metrics;
use crate::rules::Function;

/// File names of trigd's runtime clients, written under the host's runtime directory.
pub(crate) const PYTHON_BOOTSTRAP: &str = "bootstrap.py";
pub(crate) const NODE_BOOTSTRAP: &str = "bootstrap.js";
const PYTHON_SOURCE: &str = include_str!("runtimes/bootstrap.py");
const NODE_SOURCE: &str = include_str!("runtimes/bootstrap.js");

/// Where function output and the START/END/REPORT lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// trigd's log, one event per line, with the function and request id.
    Tracing,
    /// Standard error, as the lines are (`trigd invoke`).
    Stderr,
}

/// How a [`Host`] runs functions.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Environments' private directories and the runtime clients live under
    /// `state_dir/functions`.
    pub state_dir: PathBuf,
    pub region: String,
    pub account: String,
    /// trigd's Invoke API (`http://127.0.0.1:8787`), given to handlers as
    /// `AWS_ENDPOINT_URL_LAMBDA` so their own Lambda clients reach local functions.
    pub lambda_endpoint: Option<String>,
    /// The AWS endpoint trigd itself uses (`endpoint_url:` or `AWS_ENDPOINT_URL`), given to
    /// handlers as `AWS_ENDPOINT_URL` so that their SDK clients reach the same emulator.
    pub aws_endpoint: Option<String>,
    pub log: LogSink,
    /// How long an unused environment is kept warm.
    pub idle_timeout: Duration,
    pub metrics: Option<Arc<Metrics>>,
}

/// What every environment of a host shares.
#[derive(Debug)]
pub(crate) struct Setup {
    pub runtime_dir: PathBuf,
    pub envs_dir: PathBuf,
    pub region: String,
    pub account: String,
    pub lambda_endpoint: Option<String>,
    pub log: LogSink,
    /// The daemon's `PATH`, after the layers' `bin`.
    pub path: String,
    /// AWS credentials given to handlers: the daemon's own when it has them in its
    /// environment, else placeholders so that SDK clients pointed at trigd can sign.
    pub credentials: Vec<(String, String)>,
    pub idle_timeout: Duration,
    pub metrics: Option<Arc<Metrics>>,
}

impl Setup {
    /// The function's ARN, as the context's `invoked_function_arn` shows it.
    pub(crate) fn arn_prefix_for(&self, name: &str) -> Arc<str> {
        function_arn(&self.region, &self.account, name).into()
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
pub fn function_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

/// One invocation's input.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Lambda's request id: `context.aws_request_id`, the Invoke API's `x-amzn-RequestId`.
    pub request_id: Arc<str>,
    pub payload: Bytes,
    /// Client context JSON (already decoded from the caller's base64).
    pub client_context: Option<String>,
    /// Keep the last 4 KB of the invocation's log (`X-Amz-Log-Type: Tail`).
    pub tail: bool,
}

impl Invocation {
    /// An invocation with a new request id.
    pub fn new(payload: impl Into<Bytes>) -> Invocation {
        Invocation::with_id(&uuid::Uuid::new_v4().to_string(), payload)
    }

    /// An invocation with the given request id (a retried delivery keeps its id, as Lambda
    /// keeps the request id across the retries of an asynchronous invocation).
    pub fn with_id(request_id: &str, payload: impl Into<Bytes>) -> Invocation {
        Invocation {
            request_id: request_id.into(),
            payload: payload.into(),
            client_context: None,
            tail: false,
        }
    }
}

/// How an invocation ended.
#[derive(Debug)]
pub struct Outcome {
    pub request_id: Arc<str>,
    /// The handler's result (JSON text from managed runtimes), or Lambda's error.
    pub result: Result<Bytes, FunctionError>,
    pub duration: Duration,
    /// Set on an environment's first invocation.
    pub init_duration: Option<Duration>,
    pub max_memory_mb: Option<u64>,
    /// The last 4 KB of the invocation's log, when asked for.
    pub log_tail: Option<String>,
}

/// A failed invocation, as the caller sees it (with `X-Amz-Function-Error: Unhandled`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// The error payload: the runtime's own, passed on untouched, or Lambda's for a timeout,
    /// a crash or an out-of-memory kill.
    pub body: Bytes,
    /// `errorType`: `Sandbox.Timedout`, `Runtime.ExitError`, the exception's class, ...
    pub error_type: String,
    pub kind: ErrorKind,
}

impl FunctionError {
    /// `errorType: errorMessage`, for logs and dead letters.
    pub fn summary(&self) -> String {
        let message = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|b| b.get("errorMessage")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        format!("{}: {message}", self.error_type)
    }
}

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot write the runtime clients to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why an invocation was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("function not found: {0}")]
    NotFound(String),
}

/// The local functions, each with its pool of environments.
#[derive(Debug)]
pub struct Host {
    setup: Arc<Setup>,
    pools: RwLock<HashMap<String, Arc<pool::Pool>>>,
}

impl Host {
    /// Writes the runtime clients under `state_dir/functions` and clears environments left
    /// by an earlier run.
    pub fn new(opts: HostOptions) -> Result<Arc<Host>, HostError> {
        let root = opts.state_dir.join("functions");
        let runtime_dir = root.join("runtime");
        let envs_dir = root.join("environments");
        let write = |path: PathBuf, text: &str| {
            std::fs::create_dir_all(&runtime_dir)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|source| HostError::Write { path, source })
        };
        write(runtime_dir.join(PYTHON_BOOTSTRAP), PYTHON_SOURCE)?;
        write(runtime_dir.join(NODE_BOOTSTRAP), NODE_SOURCE)?;
        // Environments do not outlive the process that started them.
        let _ = std::fs::remove_dir_all(&envs_dir);
        let from_env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let credentials = match (
            from_env("AWS_ACCESS_KEY_ID"),
            from_env("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(id), Some(secret)) => {
                let mut c = vec![
                    ("AWS_ACCESS_KEY_ID".to_owned(), id),
                    ("AWS_SECRET_ACCESS_KEY".to_owned(), secret),
                ];
                if let Some(token) = from_env("AWS_SESSION_TOKEN") {
                    c.push(("AWS_SESSION_TOKEN".to_owned(), token));
                }
                c
            }
            _ => vec![
                ("AWS_ACCESS_KEY_ID".to_owned(), "trigd-local".to_owned()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), "trigd-local".to_owned()),
            ],
        };
        let mut credentials = credentials;
        if let Some(endpoint) = opts.aws_endpoint {
            credentials.push(("AWS_ENDPOINT_URL".to_owned(), endpoint));
        }
        let setup = Setup {
            runtime_dir,
            envs_dir,
            region: opts.region,
            account: opts.account,
            lambda_endpoint: opts.lambda_endpoint,
            log: opts.log,
            path: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            credentials,
            idle_timeout: opts.idle_timeout,
            metrics: opts.metrics,
        };
        Ok(Arc::new(Host {
            setup: Arc::new(setup),
            pools: RwLock::new(HashMap::new()),
        }))
    }

    /// Makes the host run exactly `functions`: a function whose settings, code or layers
    /// changed gets a new pool (its old environments finish what they run and stop); a
    /// removed one is dropped.
    pub fn update(&self, functions: &[Function]) {
        let mut pools = self
            .pools
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = HashMap::with_capacity(functions.len());
        for f in functions {
            let stamp = pool::code_stamp(f);
            let keep = pools
                .get(&f.name)
                .filter(|p| p.function() == f && p.stamp() == stamp)
                .cloned();
            let pool =
                keep.unwrap_or_else(|| pool::Pool::new(f.clone(), Arc::clone(&self.setup), stamp));
            next.insert(f.name.clone(), pool);
        }
        *pools = next;
    }

    /// Whether a function of that name is loaded.
    pub fn has(&self, name: &str) -> bool {
        self.pool(name).is_some()
    }

    fn pool(&self, name: &str) -> Option<Arc<pool::Pool>> {
        self.pools
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The function's ARN in trigd's region and account.
    pub fn function_arn(&self, name: &str) -> String {
        function_arn(&self.setup.region, &self.setup.account, name)
    }

    /// Runs one invocation of function `name`, waiting for a free environment when all
    /// `concurrency` of them are busy.
    pub async fn invoke(&self, name: &str, inv: Invocation) -> Result<Outcome, InvokeError> {
        let pool = self
            .pool(name)
            .ok_or_else(|| InvokeError::NotFound(name.to_owned()))?;
        Ok(pool.invoke(inv).await)
    }

    /// Stops every environment (idle ones at once; busy ones when their invocation ends).
    pub fn shutdown(&self) {
        self.pools
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}
