//! Running the real binary in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `trigd` binary cargo built for these tests.
pub fn trigd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trigd"))
}

/// The repository root, for fixtures such as `rules/` and `tests/data/`.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A finished run: exit code, stdout and stderr as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `trigd args...` in `cwd`, with `stdin` as standard input.
pub fn run_in(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = trigd();
    cmd.args(args)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("trigd starts");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // trigd may exit before reading its input (invalid rules); that is not a test failure.
        if let Err(e) = pipe.write_all(input.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    child.wait_with_output().expect("trigd finishes").into()
}

/// Runs `trigd args...` at the repository root.
pub fn run(args: &[&str]) -> Run {
    run_in(&root(), args, None)
}

/// A temporary rules directory holding `files` (name, contents).
pub fn rules_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write fixture");
    }
    dir
}
