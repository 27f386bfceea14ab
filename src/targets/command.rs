//! The `command` target: runs a program (argv, never a shell) with the payload on its standard
//! input, and maps how it ended to an [`Outcome`].
//!
//! Decisions, in one place:
//! * **Environment**: ours, plus the rule's `env`, plus `TRIGD_RULE`, `TRIGD_TARGET`,
//!   `TRIGD_EVENT_ID`, `TRIGD_DELIVERY_ID` and `TRIGD_ATTEMPT` (set last, so a configured `env`
//!   cannot make them lie). Working directory: `cwd` when set, else ours.
//! * **Standard input**: the payload, then end of file. A program that exits without reading
//!   it is fine (the broken pipe is ignored): the exit status decides.
//! * **Output**: stdout and stderr are drained concurrently, so a chatty program never blocks
//!   on a full pipe, and only their last [`TAIL`] bytes are kept, so it never costs us memory.
//!   On success they are returned for the log when the attempt asks ([`Attempt::keep_output`]).
//! * **Process group**: the program leads a new process group. On timeout the whole group is
//!   killed with `SIGKILL` (the program and everything it started and did not move to another
//!   group or session), then the program is reaped: `TIMEOUT`, retried.
//! * **The attempt ends when the program exits.** Processes it left running in the background
//!   are not ours to kill once it has reported its result; we keep reading the output they may
//!   still hold open for at most [`OUTPUT_GRACE`], then close our ends of the pipes.
//! * **Results**: exit 0 is delivered; when the target has an `on_success` destination, its
//!   standard output (up to [`MAX_RESPONSE`] bytes, else none) is the response passed on. A non-zero exit or death by a signal is `TARGET_ERROR`,
//!   retried, with the status and the tail of stderr (of stdout when stderr is empty) as the
//!   error. A missing program (or `cwd`) is `NO_RESOURCE` and a program we may not execute is
//!   `NO_PERMISSIONS`, neither retried; a file that is not an executable format is
//!   `INVALID_PARAMETER`; other failures to start (out of processes or file descriptors) are
//!   retried as `TARGET_ERROR`.

use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::{Attempt, ErrorCode, MAX_RESPONSE, Outcome, Output, Response};

/// Bytes of output kept per stream: the end, where programs say why they failed.
pub const TAIL: usize = 2048;

/// How long we keep reading output that outlives the program (held open by a background
/// process it started).
pub const OUTPUT_GRACE: Duration = Duration::from_millis(250);

/// One `command` target's configuration, borrowed from the rule.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The program and its arguments; the loader guarantees a non-empty program.
    pub argv: &'a [String],
    pub timeout: Duration,
    pub cwd: Option<&'a Path>,
    pub env: &'a [(String, String)],
    /// Keep standard output whole (up to [`MAX_RESPONSE`]) as the response, for `on_success`.
    pub capture: bool,
}

/// One attempt: runs the program to its end or its timeout.
pub async fn deliver(invocation: &Invocation<'_>, attempt: &Attempt<'_>) -> Outcome {
    let Some((program, args)) = invocation.argv.split_first() else {
        return Outcome::Fail {
            code: ErrorCode::InvalidParameter,
            error: "the command is empty".to_owned(),
        };
    };
    let deadline = Instant::now() + invocation.timeout;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(invocation.env.iter().map(|(k, v)| (k, v)))
        .env("TRIGD_RULE", attempt.rule)
        .env("TRIGD_TARGET", attempt.target)
        .env("TRIGD_EVENT_ID", attempt.event_id)
        .env("TRIGD_DELIVERY_ID", attempt.delivery_id)
        .env("TRIGD_ATTEMPT", attempt.attempt.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // If this future is dropped (shutdown), the program does not outlive it.
        .kill_on_drop(true);
    if let Some(cwd) = invocation.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return spawn_error(program, invocation.cwd, &e).await,
    };
    // Declared after `child`, so dropped before it: the group is killed while the program is
    // still unreaped and its pid (the group id) cannot have been reused.
    let mut group = GroupGuard::new(&child);
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut out = Tail::new(TAIL);
    let mut err = Tail::new(TAIL);
    let mut captured = invocation.capture.then(Head::default);

    let ended = {
        let io = async {
            tokio::join!(
                feed(stdin, attempt.payload),
                drain(stdout, &mut out, captured.as_mut()),
                drain(stderr, &mut err, None),
            )
        };
        tokio::pin!(io);
        let mut io_done = false;
        let ended = loop {
            tokio::select! {
                _ = &mut io, if !io_done => io_done = true,
                status = child.wait() => break Some(status),
                () = tokio::time::sleep_until(deadline) => break None,
            }
        };
        if ended.is_some() {
            // Reaped (or lost): from now on the group id may be reused, and what the program
            // left running is not ours to kill.
            group.disarm();
        }
        if ended.is_some() && !io_done {
            let grace = deadline.min(Instant::now() + OUTPUT_GRACE);
            // Output still held open past the grace period is left unread.
            let _ = tokio::time::timeout_at(grace, &mut io).await;
        }
        ended
        // Dropping `io` closes our ends of the pipes.
    };
    let Some(status) = ended else {
        kill_group(&mut child).await;
        group.disarm();
        return Outcome::Retry {
            code: ErrorCode::Timeout,
            error: format!(
                "`{program}` did not finish within {}s and was killed{}",
                invocation.timeout.as_secs_f64(),
                tail_suffix(&err, &out),
            ),
            retry_after: None,
        };
    };
    match status {
        Ok(status) if status.success() => {
            let response = captured.map(|head| Response {
                status: 0,
                body: head.into_text(),
            });
            // The dispatcher logs it with the delivery's rule, target and id.
            let output = attempt.keep_output.then(|| Output {
                stdout: out.text(),
                stderr: err.text(),
            });
            Outcome::Delivered { response, output }
        }
        Ok(status) => Outcome::Retry {
            code: ErrorCode::TargetError,
            error: format!(
                "`{program}` failed ({}){}",
                describe(status),
                tail_suffix(&err, &out)
            ),
            retry_after: None,
        },
        Err(e) => Outcome::Retry {
            code: ErrorCode::TargetError,
            error: format!("cannot wait for `{program}`: {e}"),
            retry_after: None,
        },
    }
}

/// Writes the payload to the program's standard input and closes it.
async fn feed(stdin: Option<tokio::process::ChildStdin>, payload: &str) {
    let Some(mut stdin) = stdin else { return };
    let written = stdin.write_all(payload.as_bytes()).await;
    let result = match written {
        Ok(()) => stdin.shutdown().await,
        Err(e) => Err(e),
    };
    match result {
        // The program exited, or closed its input, without reading all of it: its exit status
        // says whether that was right.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => tracing::debug!(message = "Cannot write the payload to the command.", error = %e),
        Ok(()) => {}
    }
    // Dropping `stdin` closes the pipe: the program sees end of file.
}

/// Reads a stream to its end, keeping its tail.
async fn drain(
    stream: Option<impl AsyncRead + Unpin>,
    tail: &mut Tail,
    mut head: Option<&mut Head>,
) {
    let Some(mut stream) = stream else { return };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                tail.push(&buf[..n]);
                if let Some(head) = head.as_deref_mut() {
                    head.push(&buf[..n]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// A whole stream up to [`MAX_RESPONSE`] bytes: the response a destination receives. Output
/// beyond the limit is not cut (a cut document would mislead): the response is dropped.
#[derive(Debug, Default)]
pub struct Head {
    buf: Vec<u8>,
    overflowed: bool,
}

impl Head {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.overflowed || self.buf.len() + bytes.len() > MAX_RESPONSE {
            self.overflowed = true;
            self.buf = Vec::new();
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The stream as text (lossy UTF-8), or `None` when it was over the limit.
    pub fn into_text(self) -> Option<String> {
        if self.overflowed {
            return None;
        }
        Some(match String::from_utf8(self.buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

/// Kills the program's process group if the attempt is dropped before the program was reaped
/// (the daemon shutting down mid-delivery): `kill_on_drop` alone would reach the program but
/// not what it started.
struct GroupGuard {
    group: Option<Pid>,
}

impl GroupGuard {
    fn new(child: &Child) -> GroupGuard {
        GroupGuard {
            group: group_of(child),
        }
    }

    /// Called once the program is reaped: from then on its pid may belong to someone else.
    fn disarm(&mut self) {
        self.group = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.group.take() {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
    }
}

/// The program's process group: it leads one, so the group id is its pid.
fn group_of(child: &Child) -> Option<Pid> {
    child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
}

/// Kills the program's process group and reaps the program.
async fn kill_group(child: &mut Child) {
    // The program is not reaped yet (only `wait` reaps it), so its pid, which is the group's
    // id, cannot have been reused.
    let killed = match group_of(child) {
        Some(pid) => rustix::process::kill_process_group(pid, Signal::KILL),
        None => Err(Errno::SRCH),
    };
    if let Err(e) = killed
        && e != Errno::SRCH
    {
        tracing::warn!(message = "Cannot kill the command's process group.", error = %e);
        // At least the program itself.
        let _ = child.start_kill();
    }
    if let Err(e) = child.wait().await {
        tracing::warn!(message = "Cannot reap the command.", error = %e);
    }
}

/// The outcome of a program that could not start.
async fn spawn_error(program: &str, cwd: Option<&Path>, e: &io::Error) -> Outcome {
    let (code, error) = match e.kind() {
        io::ErrorKind::NotFound => {
            let cwd_missing = match cwd {
                Some(dir) => !tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir()),
                None => false,
            };
            match cwd {
                Some(dir) if cwd_missing => (
                    ErrorCode::NoResource,
                    format!("working directory `{}` does not exist", dir.display()),
                ),
                _ => (ErrorCode::NoResource, format!("`{program}` not found: {e}")),
            }
        }
        io::ErrorKind::PermissionDenied => (
            ErrorCode::NoPermissions,
            format!("`{program}` cannot be executed: {e}"),
        ),
        _ if Errno::from_io_error(e) == Some(Errno::NOEXEC) => (
            ErrorCode::InvalidParameter,
            format!("`{program}` is not an executable: {e}"),
        ),
        _ => {
            return Outcome::Retry {
                code: ErrorCode::TargetError,
                error: format!("cannot start `{program}`: {e}"),
                retry_after: None,
            };
        }
    };
    Outcome::Fail { code, error }
}

/// "exit status 3" or "killed by signal 9".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// `": <stderr tail>"`, else `": <stdout tail>"`, else nothing.
fn tail_suffix(err: &Tail, out: &Tail) -> String {
    let pick = if err.is_empty() { out } else { err };
    let text = pick.text();
    let text = text.trim_end();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// The last `cap` bytes of a stream, and whether anything came before them.
#[derive(Debug)]
pub struct Tail {
    cap: usize,
    /// Holds up to `2 * cap` bytes between trims, so trimming is amortised O(1) per byte.
    buf: Vec<u8>,
    dropped: bool,
}

impl Tail {
    pub fn new(cap: usize) -> Tail {
        Tail {
            cap,
            buf: Vec::new(),
            dropped: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.cap {
            self.dropped |= !self.buf.is_empty() || bytes.len() > self.cap;
            self.buf.clear();
            self.buf.extend_from_slice(&bytes[bytes.len() - self.cap..]);
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 2 * self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
            self.dropped = true;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The kept bytes as text (lossy UTF-8), at most `cap` bytes of the stream, starting with
    /// "…" when earlier output was dropped.
    pub fn text(&self) -> String {
        let start = self.buf.len().saturating_sub(self.cap);
        let mut bytes = &self.buf[start..];
        let dropped = self.dropped || start > 0;
        if dropped {
            // Skip a UTF-8 sequence cut at its start (at most three continuation bytes).
            let skip = bytes
                .iter()
                .take(3)
                .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
                .count();
            bytes = &bytes[skip..];
        }
        let text = String::from_utf8_lossy(bytes);
        if dropped {
            format!("…{text}")
        } else {
            text.into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_keeps_everything_up_to_the_limit_or_nothing() {
        let mut h = Head::default();
        h.push(b"{\"ok\":");
        h.push(b"true}");
        assert_eq!(h.into_text().as_deref(), Some("{\"ok\":true}"));
        let mut h = Head::default();
        h.push(&vec![b'x'; MAX_RESPONSE]);
        assert_eq!(h.into_text().map(|t| t.len()), Some(MAX_RESPONSE));
        let mut h = Head::default();
        h.push(&vec![b'x'; MAX_RESPONSE]);
        h.push(b"y");
        h.push(b"z");
        assert_eq!(h.into_text(), None);
        let mut h = Head::default();
        h.push(b"caf\xc3");
        assert_eq!(h.into_text().as_deref(), Some("caf\u{FFFD}"));
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::new(4);
        assert!(t.is_empty());
        t.push(b"ab");
        assert_eq!(t.text(), "ab");
        t.push(b"cd");
        assert_eq!(t.text(), "abcd");
        t.push(b"e");
        assert_eq!(t.text(), "…bcde");
        for _ in 0..100 {
            t.push(b"xyz");
        }
        assert!(t.buf.len() <= 8);
        assert_eq!(t.text(), "…zxyz");
        t.push(b"0123456789");
        assert_eq!(t.text(), "…6789");
        let mut t = Tail::new(4);
        t.push(b"0123");
        assert_eq!(t.text(), "0123");
        t.push(b"4567");
        assert_eq!(t.text(), "…4567");
    }

    #[test]
    fn tail_skips_a_cut_character() {
        let mut t = Tail::new(4);
        t.push("aé€".as_bytes()); // 1 + 2 + 3 bytes: the tail starts inside `é`
        assert_eq!(t.text(), "…€");
    }
}
