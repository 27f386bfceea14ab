//! Local functions with real Python and Node processes: the Runtime API contract, the context
//! and variables, warm reuse, concurrency, limits, errors in Lambda's shapes, layers, AWS's own
//! runtime client, and the three ways in (the library's `Host`, the Invoke API through boto3,
//! a rule's `function` target, `trigd invoke`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use trigd::functions::{ErrorKind, Host, HostOptions, Invocation, LogSink, Outcome};

use crate::harness::{Daemon, Recorder, wait_dead_letter, wait_for, write_rules};
use crate::util::{rules_dir, run_in};

/// A rules directory with files, loaded, and a host running its functions.
struct Fixture {
    dir: tempfile::TempDir,
    _state: tempfile::TempDir,
    host: Arc<Host>,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        Fixture::with(rules_dir(files))
    }

    /// A host over a rules directory already written.
    fn with(dir: tempfile::TempDir) -> Fixture {
        let state = tempfile::tempdir().unwrap();
        let host = host_with_idle(dir.path(), state.path(), Duration::from_secs(60));
        Fixture {
            dir,
            _state: state,
            host,
        }
    }

    async fn invoke(&self, name: &str, payload: Value) -> Outcome {
        self.host
            .invoke(name, Invocation::new(payload.to_string()))
            .await
            .unwrap()
    }

    /// Invokes and returns the JSON result, failing the test on a function error.
    async fn ok(&self, name: &str, payload: Value) -> Value {
        let o = self.invoke(name, payload).await;
        match o.result {
            Ok(body) => serde_json::from_slice(&body).unwrap(),
            Err(e) => panic!("{name} failed: {}", e.summary()),
        }
    }

    /// Invokes and returns the error payload, failing the test on success.
    async fn err(&self, name: &str, payload: Value) -> (ErrorKind, String, Value) {
        let o = self.invoke(name, payload).await;
        match o.result {
            Ok(body) => panic!("{name} succeeded: {}", String::from_utf8_lossy(&body)),
            Err(e) => (
                e.kind,
                e.error_type.clone(),
                serde_json::from_slice(&e.body).unwrap(),
            ),
        }
    }
}

pub(crate) fn python_function(name: &str, handler: &str, extra: &str) -> String {
    format!("  {name}:\n    runtime: python3.12\n    handler: {handler}\n    code: fn\n{extra}")
}

/// The Python of this machine, named as a pinned interpreter: the test runs whatever version
/// is installed while the rule names python3.12.
pub(crate) fn functions_file(functions: &[String]) -> String {
    let python = which("python3");
    let mut out = String::from("functions:\n");
    for f in functions {
        out.push_str(f);
        out.push_str(&format!("    interpreter: {}\n", python.display()));
    }
    out
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{program} is not on PATH: the function tests need it"))
}

const APP: &str = r#"
import os, sys, time, json
count = 0

def context(event, ctx):
    return {
        "function_name": ctx.function_name,
        "function_version": ctx.function_version,
        "invoked_function_arn": ctx.invoked_function_arn,
        "memory_limit_in_mb": ctx.memory_limit_in_mb,
        "memory_is_str": isinstance(ctx.memory_limit_in_mb, str),
        "aws_request_id": ctx.aws_request_id,
        "log_group_name": ctx.log_group_name,
        "log_stream_name": ctx.log_stream_name,
        "remaining": ctx.get_remaining_time_in_millis(),
        "identity": [ctx.identity.cognito_identity_id, ctx.identity.cognito_identity_pool_id],
        "client_context": None if ctx.client_context is None else {"custom": ctx.client_context.custom},
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "event": event,
    }

def counter(event, ctx):
    global count
    count += 1
    return {"count": count, "pid": os.getpid()}

def slow(event, ctx):
    start = time.time()
    time.sleep(event.get("sleep", 0.3))
    return {"pid": os.getpid(), "start": start, "end": time.time()}

def sleepy(event, ctx):
    with open(os.path.join(os.environ["TMPDIR"], "mark"), "w") as f:
        f.write("kept")
    if event.get("check"):
        return {"pid": os.getpid(), "mark": open(os.path.join(os.environ["TMPDIR"], "mark")).read()}
    time.sleep(30)

def hog(event, ctx):
    block = bytearray(event["mb"] * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(event.get("hold", 0))
    return {"len": len(block)}

def fails(event, ctx):
    raise ValueError("no such thing")

def exits(event, ctx):
    os._exit(event["code"])

def big(event, ctx):
    return "x" * (7 * 1024 * 1024)

def unserialisable(event, ctx):
    return {"when": object()}

def noisy(event, ctx):
    out = sys.stdout.buffer
    out.write(b"\xff\xfe binary \x00 bytes\n")
    for i in range(event["lines"]):
        out.write(b"y" * 1000 + b"\n")
    out.flush()
    print("last line")
    return {"ok": True}

def layered(event, ctx):
    import shared_lib
    import subprocess
    tool = subprocess.run(["layer-tool"], capture_output=True, text=True).stdout.strip()
    return {"lib": shared_lib.VALUE, "tool": tool}
"#;

#[tokio::test]
async fn the_context_and_variables_are_lambdas() {
    let f = Fixture::new(&[
        (
            "functions.yaml",
            &functions_file(&[python_function(
                "ctx",
                "app.context",
                "    memory: 256\n    timeout: 7s\n    environment: {GREETING: hello}\n",
            )]),
        ),
        ("fn/app.py", APP),
    ]);
    let inv = Invocation::with_id("c0ffee00-0000-4000-8000-000000000001", r#"{"k":"v"}"#);
    let o = f.host.invoke("ctx", inv).await.unwrap();
    let v: Value = serde_json::from_slice(o.result.as_ref().unwrap()).unwrap();
    assert_eq!(v["function_name"], "ctx");
    assert_eq!(v["function_version"], "$LATEST");
    assert_eq!(
        v["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:ctx"
    );
    assert_eq!(v["memory_limit_in_mb"], "256");
    assert_eq!(v["memory_is_str"], true);
    assert_eq!(v["aws_request_id"], "c0ffee00-0000-4000-8000-000000000001");
    assert_eq!(v["log_group_name"], "/aws/lambda/ctx");
    let stream = v["log_stream_name"].as_str().unwrap();
    assert!(
        stream.contains("/[$LATEST]") && stream.len() == "2026/12/04/[$LATEST]".len() + 32,
        "{stream}"
    );
    let remaining = v["remaining"].as_i64().unwrap();
    assert!(remaining > 5_000 && remaining <= 7_000, "{remaining}");
    assert_eq!(v["identity"], json!([null, null]));
    assert_eq!(v["client_context"], Value::Null);
    assert_eq!(v["event"], json!({"k": "v"}));
    let code = std::fs::canonicalize(f.dir.path().join("fn")).unwrap();
    assert_eq!(
        std::fs::canonicalize(v["cwd"].as_str().unwrap()).unwrap(),
        code
    );
    let env = &v["env"];
    assert_eq!(env["_HANDLER"], "app.context");
    assert_eq!(
        std::fs::canonicalize(env["LAMBDA_TASK_ROOT"].as_str().unwrap()).unwrap(),
        code
    );
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "ctx");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/ctx");
    assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_EXECUTION_ENV"], "AWS_Lambda_python3.12");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["GREETING"], "hello");
    assert!(
        env["AWS_LAMBDA_RUNTIME_API"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(env["TMPDIR"].as_str().unwrap().contains("functions"));
    // Nothing of the test process's own environment leaks in but PATH.
    assert!(env.get("HOME").is_none(), "{env}");
    assert!(env.get("CARGO_MANIFEST_DIR").is_none(), "{env}");
    assert!(o.init_duration.is_some());
}

#[tokio::test]
async fn environments_stay_warm_and_init_once() {
    let f = Fixture::new(&[
        (
            "functions.yaml",
            &functions_file(&[python_function("counter", "app.counter", "")]),
        ),
        ("fn/app.py", APP),
    ]);
    let first = f.invoke("counter", json!({})).await;
    let second = f.invoke("counter", json!({})).await;
    let a: Value = serde_json::from_slice(first.result.as_ref().unwrap()).unwrap();
    let b: Value = serde_json::from_slice(second.result.as_ref().unwrap()).unwrap();
    assert_eq!(a["count"], 1);
    assert_eq!(
        b["count"], 2,
        "the module's globals survive: the same environment"
    );
    assert_eq!(a["pid"], b["pid"]);
    assert!(first.init_duration.is_some(), "a cold start reports init");
    assert!(second.init_duration.is_none(), "a warm one does not");
    assert!(second.max_memory_mb.is_some_and(|m| m > 1));
}

#[tokio::test]
async fn concurrency_is_capped_and_the_rest_wait_their_turn() {
    let f = Fixture::new(&[
        (
            "functions.yaml",
            &functions_file(&[python_function("slow", "app.slow", "    concurrency: 2\n")]),
        ),
        ("fn/app.py", APP),
    ]);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let host = Arc::clone(&f.host);
        tasks.spawn(async move {
            let o = host
                .invoke("slow", Invocation::new(r#"{"sleep": 0.4}"#))
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&o.result.unwrap()).unwrap()
        });
    }
    let runs: Vec<Value> = tasks.join_all().await;
    let pids: std::collections::BTreeSet<i64> =
        runs.iter().map(|r| r["pid"].as_i64().unwrap()).collect();
    assert_eq!(pids.len(), 2, "two environments, reused: {runs:?}");
    // At no instant did more than two run at once, and two did run at once.
    let mut most = 0;
    for r in &runs {
        let t = r["start"].as_f64().unwrap() + 0.01;
        let running = runs
            .iter()
            .filter(|o| o["start"].as_f64().unwrap() <= t && t < o["end"].as_f64().unwrap())
            .count();
        most = most.max(running);
    }
    assert_eq!(most, 2, "{runs:?}");
}

#[tokio::test]
async fn a_timeout_kills_the_environment_and_keeps_tmp() {
    let f = Fixture::new(&[
        (
            "functions.yaml",
            &functions_file(&[python_function("sleepy", "app.sleepy", "    timeout: 1s\n")]),
        ),
        ("fn/app.py", APP),
    ]);
    let started = tokio::time::Instant::now();
    let (kind, error_type, body) = f.err("sleepy", json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(kind, ErrorKind::Timeout);
    assert_eq!(error_type, "Sandbox.Timedout");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("RequestId: ")
            && message.ends_with("Task timed out after 1.00 seconds"),
        "{message}"
    );
    // The next invocation gets a new environment, with the same TMPDIR contents.
    let after = f.invoke("sleepy", json!({"check": true})).await;
    assert!(
        after.init_duration.is_some(),
        "re-initialised after the timeout"
    );
    let v: Value = serde_json::from_slice(after.result.as_ref().unwrap()).unwrap();
    assert_eq!(v["mark"], "kept");
}

#[tokio::test]
async fn memory_past_the_limit_kills_the_environment() {
    let f = Fixture::new(&[
        (
            "functions.yaml",
            &functions_file(&[python_function(
                "hog",
                "app.hog",
                "    memory: 128\n    timeout: 10s\n",
            )]),
        ),
        ("fn/app.py", APP),
    ]);
    let ok = f.ok("hog", json!({"mb": 16})).await;
    assert_eq!(ok["len"], 16 * 1024 * 1024);
    // Held long enough for the sampler, and a short spike caught by the peak after it.
    for hold in [1.0, 0.0] {
        let (kind, error_type, body) = f.err("hog", json!({"mb": 300, "hold": hold})).await;
        assert_eq!(kind, ErrorKind::OutOfMemory, "{body}");
        assert_eq!(error_type, "Runtime.OutOfMemory");
        assert!(
            body["errorMessage"]
                .as_str()
                .unwrap()
                .ends_with("Runtime exited with error: signal: killed")
        );
        let again = f.invoke("hog", json!({"mb": 1})).await;
        assert!(again.result.is_ok());
        assert!(again.init_duration.is_some(), "a new environment");
    }
}

#[tokio::test]
async fn errors_come_in_lambdas_shapes() {
    let files = [
        (
            "functions.yaml",
            functions_file(&[
                python_function("fails", "app.fails", ""),
                python_function("exits", "app.exits", ""),
                python_function("big", "app.big", ""),
                python_function("unserialisable", "app.unserialisable", ""),
                python_function("missing", "app.not_there", ""),
                python_function("broken", "broken.handler", ""),
                python_function("quits", "quits.handler", ""),
            ]),
        ),
        ("fn/quits.py", "import os\nos._exit(2)\n".to_owned()),
        ("fn/app.py", APP.to_owned()),
        (
            "fn/broken.py",
            "raise RuntimeError('cannot start')\ndef handler(e, c):\n    return 1\n".to_owned(),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let f = Fixture::new(&files);

    let (kind, t, body) = f.err("fails", json!({})).await;
    assert_eq!((kind, t.as_str()), (ErrorKind::Handled, "ValueError"));
    assert_eq!(body["errorMessage"], "no such thing");
    assert!(body["stackTrace"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(body["requestId"].is_string());

    let (kind, t, body) = f.err("exits", json!({"code": 3})).await;
    assert_eq!((kind, t.as_str()), (ErrorKind::Crash, "Runtime.ExitError"));
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Error: Runtime exited with error: exit status 3"),
        "{body}"
    );
    let (_, _, body) = f.err("exits", json!({"code": 0})).await;
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited without providing a reason"),
        "{body}"
    );

    let (_, t, body) = f.err("big", json!({})).await;
    assert_eq!(t, "Function.ResponseSizeTooLarge");
    assert_eq!(
        body["errorMessage"],
        "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
    );
    // The environment answered 413 and lives on.
    assert!(f.invoke("big", json!({})).await.init_duration.is_none());

    let (_, t, body) = f.err("unserialisable", json!({})).await;
    assert_eq!(t, "Runtime.MarshalError", "{body}");

    let (kind, t, body) = f.err("missing", json!({})).await;
    assert_eq!(
        (kind, t.as_str()),
        (ErrorKind::Init, "Runtime.HandlerNotFound")
    );
    assert!(body["errorMessage"].as_str().unwrap().contains("not_there"));

    let (kind, t, body) = f.err("broken", json!({})).await;
    assert_eq!((kind, t.as_str()), (ErrorKind::Init, "RuntimeError"));
    assert_eq!(body["errorMessage"], "cannot start");

    // Exiting during init, without a word.
    let (kind, t, body) = f.err("quits", json!({})).await;
    assert_eq!((kind, t.as_str()), (ErrorKind::Crash, "Runtime.ExitError"));
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 2"),
        "{body}"
    );
}

#[tokio::test]
async fn a_flood_of_output_and_binary_bytes_are_contained() {
    let f = Fixture::new(&[
        (
            "functions.yaml",
            &functions_file(&[python_function("noisy", "app.noisy", "    timeout: 20s\n")]),
        ),
        ("fn/app.py", APP),
    ]);
    let mut inv = Invocation::new(json!({"lines": 5000}).to_string());
    inv.tail = true;
    let o = f.host.invoke("noisy", inv).await.unwrap();
    assert!(o.result.is_ok());
    let tail = o.log_tail.unwrap();
    assert!(tail.len() <= 4096, "{}", tail.len());
    assert!(tail.contains("REPORT RequestId:"), "{tail}");
    // 5 MB of output: the log keeps the first MiB and says so; the invocation is unharmed.
    assert!(tail.contains("the rest is dropped"), "{tail}");
    assert!(f.ok("noisy", json!({"lines": 1})).await["ok"] == true);
}

#[tokio::test]
async fn layers_put_libraries_and_tools_on_the_paths() {
    let tool = "#!/bin/sh\necho from-the-layer\n";
    let f = Fixture::new(&[
        (
            "functions.yaml",
            &functions_file(&[python_function(
                "layered",
                "app.layered",
                "    layers: [layers/old, layers/new]\n",
            )]),
        ),
        ("fn/app.py", APP),
        ("layers/old/python/shared_lib.py", "VALUE = 'old'\n"),
        ("layers/new/python/shared_lib.py", "VALUE = 'new'\n"),
        ("layers/new/bin/layer-tool", tool),
    ]);
    make_executable(f.dir.path(), "layers/new/bin/layer-tool");
    let v = f.ok("layered", json!({})).await;
    assert_eq!(v["lib"], "new", "a later layer wins");
    assert_eq!(v["tool"], "from-the-layer");
}

const NODE_APP: &str = r#"
let count = 0;
exports.handler = async (event, context) => {
  count += 1;
  console.log("node says", event.name);
  return {
    count,
    functionName: context.functionName,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    remaining: context.getRemainingTimeInMillis(),
    arn: context.invokedFunctionArn,
  };
};
exports.fails = async () => { throw new TypeError("bad input"); };
exports.callback = (event, context, callback) => { callback(null, {via: "callback"}); };
"#;

#[tokio::test]
async fn node_handlers_run_with_their_context() {
    let node = which("node");
    let f = Fixture::new(&[
        (
            "functions.yaml",
            &format!(
                "functions:\n  js:\n    runtime: nodejs20.x\n    handler: index.handler\n    code: js\n    interpreter: {n}\n  jsfail:\n    runtime: nodejs20.x\n    handler: index.fails\n    code: js\n    interpreter: {n}\n  jscb:\n    runtime: nodejs20.x\n    handler: index.callback\n    code: js\n    interpreter: {n}\n  esm:\n    runtime: nodejs20.x\n    handler: mod.handler\n    code: js\n    interpreter: {n}\n",
                n = node.display()
            ),
        ),
        ("js/index.js", NODE_APP),
        (
            "js/mod.mjs",
            "export const handler = async (event) => ({ esm: true, got: event });\n",
        ),
    ]);
    let a = f.ok("js", json!({"name": "n"})).await;
    let b = f.ok("js", json!({"name": "n"})).await;
    assert_eq!(a["count"], 1);
    assert_eq!(b["count"], 2);
    assert_eq!(a["functionName"], "js");
    assert_eq!(a["memoryLimitInMB"], "128");
    assert!(a["awsRequestId"].as_str().is_some_and(|s| s.len() == 36));
    assert!(a["remaining"].as_i64().is_some_and(|r| r > 0 && r <= 3000));
    assert_eq!(
        a["arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:js"
    );
    let (kind, t, body) = f.err("jsfail", json!({})).await;
    assert_eq!((kind, t.as_str()), (ErrorKind::Handled, "TypeError"));
    assert_eq!(body["errorMessage"], "bad input");
    assert!(
        body["trace"].is_array(),
        "Node's client sends `trace`: {body}"
    );
    assert_eq!(f.ok("jscb", json!({})).await, json!({"via": "callback"}));
    assert_eq!(
        f.ok("esm", json!({"x": 1})).await,
        json!({"esm": true, "got": {"x": 1}})
    );
}

/// AWS's own runtime interface client (awslambdaric, installed by scripts/test into the
/// virtualenv beside moto's server), started by a `provided` function's bootstrap.
fn venv_python() -> PathBuf {
    let moto = std::env::var("MOTO_SERVER")
        .expect("MOTO_SERVER is not set: run the tests through scripts/test, which installs the Python tools");
    let python = Path::new(&moto).with_file_name("python");
    assert!(python.exists(), "no python beside {moto}");
    python
}

#[tokio::test]
async fn awslambdaric_runs_unchanged_against_the_runtime_api() {
    let python = venv_python();
    let bootstrap = format!(
        "#!/bin/sh\nexec {} -m awslambdaric app.counter\n",
        python.display()
    );
    let f = {
        let dir = rules_dir(&[
            (
                "functions.yaml",
                "functions:\n  ric:\n    runtime: provided.al2023\n    code: fn\n  ricfail:\n    runtime: provided.al2023\n    code: failfn\n",
            ),
            ("fn/app.py", APP),
            ("fn/bootstrap", &bootstrap),
            ("failfn/app.py", APP),
            (
                "failfn/bootstrap",
                &format!(
                    "#!/bin/sh\nexec {} -m awslambdaric app.fails\n",
                    python.display()
                ),
            ),
        ]);
        for b in ["fn/bootstrap", "failfn/bootstrap"] {
            make_executable(dir.path(), b);
        }
        Fixture::with(dir)
    };
    assert_eq!(f.ok("ric", json!({})).await["count"], 1);
    assert_eq!(f.ok("ric", json!({})).await["count"], 2);
    let (kind, t, body) = f.err("ricfail", json!({})).await;
    assert_eq!((kind, t.as_str()), (ErrorKind::Handled, "ValueError"));
    assert_eq!(body["errorMessage"], "no such thing");
}

#[test]
fn trigd_invoke_prints_the_result_and_exits_by_outcome() {
    let dir = rules_dir(&[
        (
            "functions.yaml",
            &functions_file(&[
                python_function("counter", "app.counter", ""),
                python_function("fails", "app.fails", ""),
            ]),
        ),
        ("fn/app.py", APP),
        ("event.json", r#"{"hello": "world"}"#),
    ]);
    let ok = run_in(
        dir.path(),
        &["invoke", ".", "counter", "--event", "event.json"],
        None,
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let v: Value = serde_json::from_str(ok.stdout.trim()).unwrap();
    assert_eq!(v["count"], 1);
    assert!(ok.stderr.contains("START RequestId: "), "{}", ok.stderr);
    assert!(ok.stderr.contains("REPORT RequestId: "), "{}", ok.stderr);
    assert!(ok.stderr.contains("Init Duration: "), "{}", ok.stderr);

    let stdin = run_in(
        dir.path(),
        &["invoke", ".", "counter", "--event", "-"],
        Some("{}"),
    );
    assert_eq!(stdin.code, 0, "{}", stdin.stderr);

    let failed = run_in(dir.path(), &["invoke", ".", "fails"], None);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let e: Value = serde_json::from_str(failed.stdout.trim()).unwrap();
    assert_eq!(e["errorType"], "ValueError");

    let unknown = run_in(dir.path(), &["invoke", ".", "nope"], None);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("declared: counter, fails"),
        "{}",
        unknown.stderr
    );

    let bad_event = run_in(
        dir.path(),
        &["invoke", ".", "counter", "--event", "-"],
        Some("{"),
    );
    assert_eq!(bad_event.code, 2);
}

#[test]
fn trigd_event_prints_each_sample() {
    for kind in [
        "scheduled",
        "s3-put",
        "sqs",
        "sns",
        "eventbridge",
        "api-gateway-v1",
        "api-gateway-v2",
    ] {
        let r = crate::util::run(&["event", kind]);
        assert_eq!(r.code, 0, "{kind}: {}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(v.is_object(), "{kind}");
    }
    assert_eq!(crate::util::run(&["event", "kafka"]).code, 2);
}

#[test]
fn check_reports_function_problems_where_they_are_written() {
    let dir = rules_dir(&[
        (
            "rules.yaml",
            "functions:\n  a:\n    runtime: python3.99x\n    handler: app.handler\n    code: fn\n  b:\n    runtime: python3.12\n    handler: nothere.handler\n    code: fn\n  c:\n    runtime: nodejs20.x\n    handler: index.handler\n    code: missing-dir\n  d:\n    runtime: python3.12\n    handler: app.handler\n    code: fn\n    memory: 64\n    environment: {AWS_REGION: x}\nrules:\n  - name: r\n    pattern: {source: [x]}\n    targets:\n      - id: t\n        function: thumbnial\n",
        ),
        ("fn/app.py", "def handler(e, c):\n    return 1\n"),
    ]);
    let r = run_in(dir.path(), &["check", "."], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    for want in [
        "rules.yaml:3:14: unknown runtime `python3.99x`",
        "rules.yaml:8:14: handler `nothere.handler`: no module `nothere`",
        "rules.yaml:13:11: `code` `missing-dir` is not a directory",
        "rules.yaml:18:13: `memory` (MB) must be between 128 and 10240, got 64",
        "rules.yaml:19:19: `AWS_REGION` is set by the runtime",
        "rules.yaml:25:19: a target of this rule names function `thumbnial`, which is not declared",
    ] {
        assert!(
            r.stderr.contains(want),
            "missing {want:?} in:\n{}",
            r.stderr
        );
    }
}

/// The Invoke API through boto3, as a handler or a script would call it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoke_api_answers_boto3() {
    let python = venv_python();
    let state = tempfile::tempdir().unwrap();
    let rules = state.path().join("rules");
    let out_dir = state.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    write_rules(
        &rules,
        "functions.yaml",
        &functions_file(&[
            python_function("counter", "app.counter", ""),
            python_function("fails", "app.fails", ""),
            python_function("writer", "calls.writer", ""),
            python_function("caller", "calls.caller", ""),
        ]),
    );
    write_rules(&rules.join("fn"), "app.py", APP);
    write_rules(
        &rules.join("fn"),
        "calls.py",
        &format!(
            r#"
import json, os, sys
sys.path.insert(0, {site:?})
def writer(event, ctx):
    with open(os.path.join({out:?}, ctx.aws_request_id), "w") as f:
        json.dump(event, f)
    return "written"
def caller(event, ctx):
    import boto3
    client = boto3.client("lambda")
    answer = client.invoke(FunctionName="counter", Payload=b"{{}}")
    return {{"endpoint": os.environ.get("AWS_ENDPOINT_URL_LAMBDA"), "inner": json.loads(answer["Payload"].read())}}
"#,
            site = site_packages(&python),
            out = out_dir.display().to_string()
        ),
    );
    let d = Daemon::start(&rules, &state.path().join("state"), &[]);
    let script = format!(
        r#"
import base64, json, boto3, botocore
c = boto3.client("lambda", endpoint_url="{url}", region_name="us-east-1",
                 aws_access_key_id="x", aws_secret_access_key="x")
out = {{}}
r = c.invoke(FunctionName="counter", Payload=b'{{"a": 1}}', LogType="Tail")
out["sync"] = {{"status": r["StatusCode"], "payload": json.loads(r["Payload"].read()),
               "version": r.get("ExecutedVersion"), "error": r.get("FunctionError"),
               "log": base64.b64decode(r["LogResult"]).decode()}}
r = c.invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:fails")
out["error"] = {{"status": r["StatusCode"], "error": r.get("FunctionError"),
                "payload": json.loads(r["Payload"].read())}}
r = c.invoke(FunctionName="writer", InvocationType="Event", Payload=b'{{"async": true}}')
out["event"] = {{"status": r["StatusCode"], "id": r["ResponseMetadata"]["RequestId"]}}
r = c.invoke(FunctionName="counter", InvocationType="DryRun")
out["dry"] = r["StatusCode"]
try:
    c.invoke(FunctionName="nope")
    out["unknown"] = "no error"
except c.exceptions.ResourceNotFoundException as e:
    out["unknown"] = str(e)
r = c.invoke(FunctionName="caller")
out["caller"] = json.loads(r["Payload"].read())
print(json.dumps(out))
"#,
        url = d.url("")
    );
    let run = tokio::process::Command::new(&python)
        .args(["-c", &script])
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(out["sync"]["status"], 200);
    assert_eq!(out["sync"]["payload"]["count"], 1);
    assert_eq!(out["sync"]["version"], "$LATEST");
    assert_eq!(out["sync"]["error"], Value::Null);
    let log = out["sync"]["log"].as_str().unwrap();
    assert!(
        log.contains("START RequestId:") && log.contains("REPORT RequestId:"),
        "{log}"
    );
    assert_eq!(out["error"]["status"], 200);
    assert_eq!(out["error"]["error"], "Unhandled");
    assert_eq!(out["error"]["payload"]["errorType"], "ValueError");
    assert_eq!(out["event"]["status"], 202);
    assert_eq!(out["dry"], 204);
    assert!(
        out["unknown"]
            .as_str()
            .unwrap()
            .contains("Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope"),
        "{out}"
    );
    assert_eq!(out["caller"]["endpoint"], d.url(""));
    assert!(
        out["caller"]["inner"]["count"].as_i64().unwrap() >= 1,
        "{out}"
    );
    // The asynchronous invocation ran, with the request id the caller was given.
    let id = out["event"]["id"].as_str().unwrap().to_owned();
    let written = wait_for("the Event invocation", || {
        std::fs::read_to_string(out_dir.join(&id)).ok()
    });
    assert_eq!(
        serde_json::from_str::<Value>(&written).unwrap(),
        json!({"async": true})
    );
    let metrics = d.metrics().await;
    assert!(
        metrics
            .contains("trigd_function_invocations_total{function=\"counter\",outcome=\"success\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trigd_invoke_api_refused_total{reason=\"ResourceNotFoundException\"} 1")
    );
    assert_eq!(d.stop(), 0);
}

/// The virtualenv's site-packages, so a handler run by the machine's python3 finds boto3.
fn site_packages(python: &Path) -> String {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import boto3, os; print(os.path.dirname(os.path.dirname(boto3.__file__)))",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_delivers_to_a_function_with_retries_and_destinations() {
    let rec = Recorder::start(vec![]).await;
    let state = tempfile::tempdir().unwrap();
    let rules = state.path().join("rules");
    write_rules(
        &rules,
        "rules.yaml",
        &format!(
            "{}rules:\n  - name: flaky\n    pattern: {{source: [app]}}\n    targets:\n      - id: run\n        function: flaky\n        on_success: {{http: {url}}}\n  - name: hopeless\n    pattern: {{source: [app]}}\n    targets:\n      - id: run\n        function: fails\n",
            functions_file(&[
                python_function("flaky", "flaky.handler", ""),
                python_function("fails", "app.fails", "    max_retry_attempts: 1\n"),
            ]),
            url = rec.url()
        ),
    );
    write_rules(&rules.join("fn"), "app.py", APP);
    write_rules(
        &rules.join("fn"),
        "flaky.py",
        "calls = 0\ndef handler(event, ctx):\n    global calls\n    calls += 1\n    if calls < 3:\n        raise RuntimeError(f'attempt {calls}')\n    return {'attempts': calls, 'id': ctx.aws_request_id, 'detail': event['detail']}\n",
    );
    let d = Daemon::start(&rules, &state.path().join("state"), &[]);
    let client = reqwest::Client::new();
    let r = client
        .post(d.url("/events/app"))
        .body(r#"{"order": 7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Two failures, then success on the third attempt (Lambda's default: two retries); the
    // result goes to on_success as Lambda's destination record.
    let bodies = rec.wait_for(1).await;
    let record: Value = serde_json::from_str(&bodies[0]).unwrap();
    let payload = &record["responsePayload"];
    assert_eq!(payload["attempts"], 3, "{record}");
    assert_eq!(payload["detail"], json!({"order": 7}));
    assert_eq!(record["requestContext"]["condition"], "Success", "{record}");
    assert_eq!(
        record["requestContext"]["approximateInvokeCount"], 3,
        "{record}"
    );
    assert_eq!(
        record["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:flaky"
    );
    // `fails` gives up after 1 retry: 2 attempts, then the dead letter.
    let dl = wait_dead_letter(&state.path().join("state"), |v| v["rule"] == "hopeless");
    let text = dl.to_string();
    assert!(text.contains("ValueError: no such thing"), "{text}");
    assert!(
        text.contains("\"attempts\":2") || text.contains("\"attempts\": 2"),
        "{text}"
    );
    assert_eq!(d.stop(), 0);
}

/// `examples/aws-functions` against moto: an S3 upload, through the notification queue, runs
/// the Python handler, which reads the object and writes its thumbnail with boto3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_functions_example_makes_thumbnails() {
    use crate::aws_e2e::{bucket_notifying, s3};
    let moto = crate::aws::Moto::start();
    let uploads = moto.queue("uploads").await;
    bucket_notifying(&moto, "holiday", &uploads).await;
    // The example as shipped, with moto's queue URL and an interpreter that has boto3.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let example = crate::util::root().join("examples/aws-functions");
    let text = std::fs::read_to_string(example.join("uploads.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:5000/123456789012/uploads", &uploads)
        .replace(
            "    timeout: 10s\n",
            &format!(
                "    timeout: 10s\n    interpreter: {}\n",
                venv_python().display()
            ),
        );
    write_rules(&rules, "uploads.yaml", &text);
    write_rules(
        &rules.join("functions/thumbnail"),
        "app.py",
        &std::fs::read_to_string(example.join("functions/thumbnail/app.py")).unwrap(),
    );
    let d = Daemon::start_with_env(&rules, &dir.path().join("state"), &[], &moto.env());
    assert_eq!(
        s3(
            &moto,
            reqwest::Method::PUT,
            "/holiday/photos/cat.jpg",
            "meow"
        )
        .await,
        200
    );
    assert_eq!(
        s3(
            &moto,
            reqwest::Method::PUT,
            "/holiday/notes/readme.txt",
            "x"
        )
        .await,
        200
    );
    let get = || async {
        let r = reqwest::Client::new()
            .get(format!("{}/holiday/thumbnails/photos/cat.jpg", moto.url))
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .send()
            .await
            .unwrap();
        (r.status() == 200).then_some(r.text().await.unwrap())
    };
    crate::aws::wait_for_async("the thumbnail in S3", || async { get().await.is_some() }).await;
    assert_eq!(get().await.unwrap(), "thumbnail of 4 bytes");
    let metrics = d.metrics().await;
    assert!(
        metrics.contains(
            "trigd_function_invocations_total{function=\"thumbnail\",outcome=\"success\"} 1"
        ),
        "{metrics}"
    );
    assert_eq!(d.stop(), 0);
}

/// A host over a rules directory with a given idle timeout.
fn host_with_idle(dir: &Path, state: &Path, idle: Duration) -> Arc<Host> {
    let rules = trigd::config::load_rules(dir, trigd::rules::Settings::default()).unwrap();
    let host = Host::new(HostOptions {
        state_dir: state.to_owned(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        lambda_endpoint: None,
        aws_endpoint: None,
        log: LogSink::Tracing,
        idle_timeout: idle,
        metrics: None,
    })
    .unwrap();
    host.update(&rules.functions);
    host
}

/// Marks a file of a rules directory executable (a bootstrap, a layer's tool, a shim).
fn make_executable(dir: &Path, file: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_environments_are_stopped() {
    let dir = rules_dir(&[
        (
            "functions.yaml",
            &functions_file(&[python_function("counter", "app.counter", "")]),
        ),
        ("fn/app.py", APP),
    ]);
    let state = tempfile::tempdir().unwrap();
    let host = host_with_idle(dir.path(), state.path(), Duration::from_millis(300));
    let o = host.invoke("counter", Invocation::new("{}")).await.unwrap();
    let v: Value = serde_json::from_slice(o.result.as_ref().unwrap()).unwrap();
    let pid = v["pid"].as_i64().unwrap();
    assert!(alive(pid));
    wait_for("the idle environment to stop", || {
        (!alive(pid)).then_some(())
    });
    // The next invocation starts a new one.
    let o = host.invoke("counter", Invocation::new("{}")).await.unwrap();
    assert!(o.init_duration.is_some());
}

#[tokio::test]
async fn changed_code_gets_a_fresh_environment_on_update() {
    let dir = rules_dir(&[
        (
            "functions.yaml",
            &functions_file(&[python_function("v", "app.handler", "")]),
        ),
        ("fn/app.py", "def handler(e, c):\n    return 1\n"),
    ]);
    let state = tempfile::tempdir().unwrap();
    let host = host_with_idle(dir.path(), state.path(), Duration::from_secs(60));
    let first = host.invoke("v", Invocation::new("{}")).await.unwrap();
    assert_eq!(first.result.unwrap(), "1");
    // Unchanged: the warm environment is kept.
    let rules = trigd::config::load_rules(dir.path(), trigd::rules::Settings::default()).unwrap();
    host.update(&rules.functions);
    let warm = host.invoke("v", Invocation::new("{}")).await.unwrap();
    assert!(warm.init_duration.is_none());
    // The code changes (as a reload after an edit would see it): the next invocation runs it.
    let file = dir.path().join("fn/app.py");
    std::fs::write(&file, "def handler(e, c):\n    return 2\n").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    host.update(&rules.functions);
    let second = host.invoke("v", Invocation::new("{}")).await.unwrap();
    assert_eq!(second.result.unwrap(), "2");
    assert!(second.init_duration.is_some());
}

#[tokio::test]
async fn a_process_flood_is_stopped_at_lambdas_limit() {
    let f = Fixture::new(&[
        (
            "functions.yaml",
            &functions_file(&[python_function(
                "spawner",
                "spawn.handler",
                "    timeout: 60s\n    memory: 10240\n",
            )]),
        ),
        (
            "fn/spawn.py",
            "import subprocess\ndef handler(e, c):\n    kids = []\n    for _ in range(3000):\n        kids.append(subprocess.Popen(['sleep', '60']))\n    return len(kids)\n",
        ),
    ]);
    let (kind, t, body) = f.err("spawner", json!({})).await;
    assert_eq!(
        (kind, t.as_str()),
        (ErrorKind::Crash, "Runtime.ExitError"),
        "{body}"
    );
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("the limit is 1024"),
        "{body}"
    );
    // Every process of the environment was killed with it.
    let sleepers = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join("cmdline"))
                    .is_ok_and(|c| c == "sleep\x0060\x00")
            })
            .count()
    };
    wait_for("the environment's processes to be gone", || {
        (sleepers() == 0).then_some(())
    });
}

#[test]
fn check_warns_when_the_interpreter_is_missing_or_of_another_version() {
    let dir = rules_dir(&[
        (
            "rules.yaml",
            "functions:\n  old:\n    runtime: python3.99\n    handler: app.handler\n    code: fn\n  gone:\n    runtime: nodejs20.x\n    handler: app.handler\n    code: fn\n    interpreter: no-such-node\n",
        ),
        ("fn/app.py", "def handler(e, c):\n    return 1\n"),
        ("fn/app.js", "exports.handler = async () => 1;\n"),
    ]);
    let r = run_in(dir.path(), &["check", "."], None);
    assert_eq!(r.code, 0, "warnings do not fail the check: {}", r.stderr);
    assert!(
        r.stderr
            .contains("rules.yaml:3:14: warning: `python3` here is version 3.")
            && r.stderr.contains("not the python3.99 the function names"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("rules.yaml:10:18: warning: `no-such-node` is not on PATH"),
        "{}",
        r.stderr
    );
}

/// AWS's own Node runtime client (aws-lambda-ric, built by scripts/test into .node-ric),
/// started by a `provided` function's bootstrap.
#[tokio::test]
async fn aws_lambda_ric_for_node_runs_unchanged_against_the_runtime_api() {
    let ric = std::env::var("NODE_RIC").expect(
        "NODE_RIC is not set: run the tests through scripts/test, which builds AWS's Node runtime client",
    );
    assert!(Path::new(&ric).is_file(), "no {ric}");
    let bootstrap = format!(
        "#!/bin/sh\nexec {} {ric} index.handler\n",
        which("node").display()
    );
    let dir = rules_dir(&[
        (
            "functions.yaml",
            "functions:\n  noderic:\n    runtime: provided.al2023\n    code: fn\n    memory: 256\n",
        ),
        ("fn/index.js", NODE_APP),
        ("fn/bootstrap", &bootstrap),
    ]);
    make_executable(dir.path(), "fn/bootstrap");
    let state = tempfile::tempdir().unwrap();
    let host = host_with_idle(dir.path(), state.path(), Duration::from_secs(60));
    let a = host
        .invoke("noderic", Invocation::with_id("abc-1", r#"{"name": "x"}"#))
        .await
        .unwrap();
    let a: Value = serde_json::from_slice(&a.result.unwrap()).unwrap();
    assert_eq!(a["count"], 1);
    assert_eq!(a["functionName"], "noderic");
    assert_eq!(a["memoryLimitInMB"], "256");
    assert_eq!(a["awsRequestId"], "abc-1");
    assert!(
        a["remaining"].as_i64().is_some_and(|r| r > 0 && r <= 3000),
        "{a}"
    );
    let b = host.invoke("noderic", Invocation::new("{}")).await.unwrap();
    let b: Value = serde_json::from_slice(&b.result.unwrap()).unwrap();
    assert_eq!(b["count"], 2, "warm");
}

/// The Invoke API's edges, over plain HTTP: qualifiers, client context, limits, bad payloads,
/// and an asynchronous invocation that keeps failing (retried, then dead-lettered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoke_api_refuses_and_retries_as_lambda_does() {
    let state = tempfile::tempdir().unwrap();
    let rules = state.path().join("rules");
    write_rules(
        &rules,
        "functions.yaml",
        &functions_file(&[
            python_function("ctx", "app.context", ""),
            python_function("fails", "app.fails", ""),
        ]),
    );
    write_rules(&rules.join("fn"), "app.py", APP);
    let d = Daemon::start(&rules, &state.path().join("state"), &[]);
    let client = reqwest::Client::new();
    let call = |path: &str, body: Vec<u8>, headers: &[(&str, &str)]| {
        let mut r = client
            .post(d.url(&format!("/2015-03-31/functions/{path}")))
            .body(body);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let kind = r
                .headers()
                .get("x-amzn-errortype")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, kind, r.text().await.unwrap())
        }
    };
    let (status, _, body) = call("ctx:$LATEST/invocations", b"{}".to_vec(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = call("ctx/invocations?Qualifier=$LATEST", b"{}".to_vec(), &[]).await;
    assert_eq!(status, 200);
    let (status, kind, body) = call("ctx:live/invocations", b"{}".to_vec(), &[]).await;
    assert_eq!(
        (status, kind.as_deref()),
        (404, Some("ResourceNotFoundException"))
    );
    assert!(body.contains("function:ctx:live"), "{body}");
    let (status, kind, _) = call(
        "ctx:$LATEST/invocations?Qualifier=live",
        b"{}".to_vec(),
        &[],
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("InvalidParameterValueException"))
    );
    let (status, kind, _) = call("not%20a%20name/invocations", b"{}".to_vec(), &[]).await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("ValidationException"))
    );
    let (status, kind, _) = call("ctx/invocations", b"{not json".to_vec(), &[]).await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("InvalidRequestContentException"))
    );
    let big = format!("\"{}\"", "x".repeat(1024 * 1024 + 1));
    let (status, kind, _) = call(
        "ctx/invocations",
        big.clone().into_bytes(),
        &[("x-amz-invocation-type", "Event")],
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (413, Some("RequestTooLargeException"))
    );
    // The same payload is within the synchronous limit (6 MB).
    let (status, _, _) = call("ctx/invocations", big.into_bytes(), &[]).await;
    assert_eq!(status, 200);
    // A client context reaches the handler, decoded.
    use base64::Engine as _;
    let cc = base64::engine::general_purpose::STANDARD
        .encode(r#"{"custom": {"tenant": "t1"}, "env": {}, "client": {}}"#);
    let (status, _, body) = call(
        "ctx/invocations",
        b"{}".to_vec(),
        &[("x-amz-client-context", cc.as_str())],
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["client_context"],
        json!({"custom": {"tenant": "t1"}}),
        "{v}"
    );
    // An asynchronous invocation of a failing function: 202, three attempts (Lambda's two
    // retries), then a dead letter under the reserved rule `$invoke`.
    let (status, _, _) = call(
        "fails/invocations",
        br#"{"n": 1}"#.to_vec(),
        &[("x-amz-invocation-type", "Event")],
    )
    .await;
    assert_eq!(status, 202);
    let dl = wait_dead_letter(&state.path().join("state"), |v| v["rule"] == "$invoke");
    assert_eq!(dl["target"], "fails");
    let text = dl.to_string();
    assert!(text.contains("ValueError: no such thing"), "{text}");
    let metrics = d.metrics().await;
    assert!(
        metrics
            .contains("trigd_function_invocations_total{function=\"fails\",outcome=\"error\"} 3"),
        "{metrics}"
    );
    assert_eq!(d.stop(), 0);
}

/// A version manager's shim in front of the interpreter (pyenv, asdf) is asked once which
/// binary it runs; environments then start that binary, without the shim's cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interpreter_shim_is_resolved_once() {
    let calls = tempfile::NamedTempFile::new().unwrap();
    let shim = format!(
        "#!/bin/sh\necho called >> {}\nexec {} \"$@\"\n",
        calls.path().display(),
        which("python3").display()
    );
    let dir = rules_dir(&[
        (
            "functions.yaml",
            "functions:\n  slow:\n    runtime: python3.12\n    handler: app.slow\n    code: fn\n    interpreter: shim/python3\n    concurrency: 2\n",
        ),
        ("fn/app.py", APP),
        ("shim/python3", &shim),
    ]);
    make_executable(dir.path(), "shim/python3");
    let state = tempfile::tempdir().unwrap();
    let host = host_with_idle(dir.path(), state.path(), Duration::from_secs(60));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let host = Arc::clone(&host);
        tasks.spawn(async move {
            let o = host
                .invoke("slow", Invocation::new(r#"{"sleep": 0.3}"#))
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&o.result.unwrap()).unwrap()["pid"].clone()
        });
    }
    let pids: std::collections::BTreeSet<String> = tasks
        .join_all()
        .await
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(pids.len(), 2, "two environments");
    let shim_calls = std::fs::read_to_string(calls.path())
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        shim_calls, 1,
        "the shim ran once, to say which binary it runs"
    );
}
