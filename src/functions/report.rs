//! How invocations end, in Lambda's words: the error payloads a caller gets (reference §1.5,
//! §1.6) and the `REPORT` line (§2.5).

use std::process::ExitStatus;
use std::time::Duration;

use axum::body::Bytes;

use super::FunctionError;

/// Why an invocation failed, before it is put in Lambda's words.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The handler failed and the runtime said so (`/error`): the body goes on untouched.
    Function { body: Bytes, error_type: String },
    /// Init failed (`/init/error`): the triggering invocation gets that body.
    Init { body: Bytes, error_type: String },
    /// The runtime did not answer in time; its process group was killed.
    Timeout { timeout: Duration },
    /// Init did not finish within Lambda's 10 s.
    InitTimeout,
    /// The runtime exited (or could not be reached) without answering.
    Exit { message: String },
    /// The environment went past its memory; it was killed.
    OutOfMemory { message: String },
    /// Over Lambda's process limit; the environment was killed.
    Processes { message: String },
    /// The response was over 6 MB.
    TooLarge,
    /// The runtime could not be started at all.
    Start { message: String },
}

impl Failure {
    pub(crate) fn exit(id: &str, status: Option<ExitStatus>) -> Failure {
        let reason = match status {
            None => "Runtime exited without providing a reason".to_owned(),
            Some(s) if s.success() => "Runtime exited without providing a reason".to_owned(),
            Some(s) => format!("Runtime exited with error: {}", describe(s)),
        };
        Failure::Exit {
            message: prefixed(id, &reason),
        }
    }

    pub(crate) fn out_of_memory(id: &str) -> Failure {
        Failure::OutOfMemory {
            message: prefixed(id, "Runtime exited with error: signal: killed"),
        }
    }

    pub(crate) fn too_many_processes(id: &str, n: usize) -> Failure {
        Failure::Processes {
            message: prefixed(
                id,
                &format!(
                    "Runtime exited with error: signal: killed ({n} processes; the limit is 1024)"
                ),
            ),
        }
    }

    pub(crate) fn too_large() -> Failure {
        Failure::TooLarge
    }

    pub(crate) fn init_timeout() -> Failure {
        Failure::InitTimeout
    }

    /// The platform line the function's log gets, if any.
    pub(crate) fn log_line(&self, id: &str) -> Option<String> {
        match self {
            Failure::Timeout { timeout } => Some(format!(
                "{} {id} Task timed out after {:.2} seconds",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                timeout.as_secs_f64()
            )),
            Failure::Exit { message }
            | Failure::OutOfMemory { message }
            | Failure::Processes { message }
            | Failure::Start { message } => Some(message.clone()),
            Failure::InitTimeout => Some("INIT_REPORT Status: timeout".to_owned()),
            Failure::Function { .. } | Failure::Init { .. } | Failure::TooLarge => None,
        }
    }

    /// The payload and error type the caller gets.
    pub(crate) fn into_error(self, id: &str) -> FunctionError {
        let built = |error_type: &str, message: String| {
            let body = serde_json::json!({"errorType": error_type, "errorMessage": message});
            (Bytes::from(body.to_string()), error_type.to_owned())
        };
        let (kind, (body, error_type)) = match self {
            Failure::Function { body, error_type } => (ErrorKind::Handled, (body, error_type)),
            Failure::Init { body, error_type } => (ErrorKind::Init, (body, error_type)),
            Failure::Timeout { timeout } => (
                ErrorKind::Timeout,
                built(
                    "Sandbox.Timedout",
                    format!(
                        "RequestId: {id} Error: Task timed out after {:.2} seconds",
                        timeout.as_secs_f64()
                    ),
                ),
            ),
            Failure::InitTimeout => (
                ErrorKind::Timeout,
                built(
                    "Sandbox.Timedout",
                    format!("RequestId: {id} Error: Init timed out after 10.00 seconds"),
                ),
            ),
            Failure::Exit { message } => (ErrorKind::Crash, built("Runtime.ExitError", message)),
            Failure::Processes { message } => {
                (ErrorKind::Crash, built("Runtime.ExitError", message))
            }
            Failure::OutOfMemory { message } => (
                ErrorKind::OutOfMemory,
                built("Runtime.OutOfMemory", message),
            ),
            Failure::TooLarge => (
                ErrorKind::Handled,
                built(
                    "Function.ResponseSizeTooLarge",
                    format!(
                        "Response payload size exceeded maximum allowed payload size ({} bytes).",
                        super::runtime_api::MAX_RESPONSE
                    ),
                ),
            ),
            Failure::Start { message } => (
                ErrorKind::Crash,
                built("Runtime.InvalidEntrypoint", message),
            ),
        };
        FunctionError {
            body,
            error_type,
            kind,
        }
    }
}

/// How a failed invocation failed, for metrics and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The handler raised, or its result could not be sent.
    Handled,
    /// Init failed.
    Init,
    Timeout,
    /// The runtime exited or could not start.
    Crash,
    OutOfMemory,
}

impl ErrorKind {
    /// The label of `trigd_function_invocations_total{outcome}`.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Handled => "error",
            ErrorKind::Init => "init_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Crash => "crash",
            ErrorKind::OutOfMemory => "out_of_memory",
        }
    }
}

fn prefixed(id: &str, reason: &str) -> String {
    if id.is_empty() {
        format!("Error: {reason}")
    } else {
        format!("RequestId: {id} Error: {reason}")
    }
}

/// An exit status as Go's `os.ProcessState` prints it, which is what Lambda shows.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(9) => "signal: killed".to_owned(),
        Some(11) => "signal: segmentation fault".to_owned(),
        Some(6) => "signal: aborted".to_owned(),
        Some(15) => "signal: terminated".to_owned(),
        Some(n) => format!("signal: {n}"),
        None => "unknown".to_owned(),
    }
}

/// `REPORT RequestId: … Duration: 3.01 ms Billed Duration: 4 ms Memory Size: 128 MB Max Memory
/// Used: 36 MB Init Duration: 110.10 ms`, tab-separated, Init Duration last and only on an
/// environment's first invocation.
pub(crate) fn report_line(
    id: &str,
    duration: Duration,
    memory_mb: u32,
    max_used_mb: Option<u64>,
    init: Option<Duration>,
) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    let billed = (ms.ceil() as u64).max(1);
    let used = max_used_mb.map_or_else(|| "?".to_owned(), |m| m.to_string());
    let mut line = format!(
        "REPORT RequestId: {id}\tDuration: {ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {used} MB"
    );
    if let Some(init) = init {
        line.push_str(&format!(
            "\tInit Duration: {:.2} ms",
            init.as_secs_f64() * 1000.0
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt as _;

    #[test]
    fn report_lines_read_as_lambdas() {
        let line = report_line(
            "id",
            Duration::from_micros(3_010),
            128,
            Some(36),
            Some(Duration::from_micros(110_100)),
        );
        assert_eq!(
            line,
            "REPORT RequestId: id\tDuration: 3.01 ms\tBilled Duration: 4 ms\tMemory Size: 128 MB\tMax Memory Used: 36 MB\tInit Duration: 110.10 ms"
        );
        let warm = report_line("id", Duration::from_micros(2_900), 256, Some(40), None);
        assert!(
            warm.ends_with("Billed Duration: 3 ms\tMemory Size: 256 MB\tMax Memory Used: 40 MB"),
            "{warm}"
        );
    }

    #[test]
    fn exits_are_described_as_lambda_does() {
        let f = Failure::exit("r1", Some(ExitStatus::from_raw(3 << 8)));
        let e = f.into_error("r1");
        assert_eq!(e.error_type, "Runtime.ExitError");
        let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(
            body["errorMessage"],
            "RequestId: r1 Error: Runtime exited with error: exit status 3"
        );
        let clean = Failure::exit("r1", Some(ExitStatus::from_raw(0))).into_error("r1");
        let body: serde_json::Value = serde_json::from_slice(&clean.body).unwrap();
        assert_eq!(
            body["errorMessage"],
            "RequestId: r1 Error: Runtime exited without providing a reason"
        );
        let killed = Failure::exit("r1", Some(ExitStatus::from_raw(9))).into_error("r1");
        assert!(String::from_utf8_lossy(&killed.body).contains("signal: killed"));
    }

    #[test]
    fn timeouts_print_two_decimals() {
        let e = Failure::Timeout {
            timeout: Duration::from_secs(1),
        }
        .into_error("abc");
        assert_eq!(e.error_type, "Sandbox.Timedout");
        assert_eq!(e.kind, ErrorKind::Timeout);
        let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(
            body["errorMessage"],
            "RequestId: abc Error: Task timed out after 1.00 seconds"
        );
    }
}
