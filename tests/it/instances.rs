//! Several trigd instances side by side: each needs its own state directory, and `trigd run`
//! refuses to start a second instance on a directory another one holds.

use std::process::{Command, Stdio};

use crate::harness::{Daemon, write_rules};

#[test]
fn a_second_daemon_on_the_same_state_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_rules(
        &rules,
        "r.yaml",
        "rules:\n  - name: r\n    pattern: {source: [shop]}\n    targets:\n      - id: l\n        log: true\n",
    );
    let state = dir.path().join("state");
    let first = Daemon::start(&rules, &state, &[]);
    let first_pid = first.child.id();

    let second = Command::new(env!("CARGO_BIN_EXE_trigd"))
        .arg("run")
        .arg(&rules)
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("another trigd (pid {first_pid}) already runs")),
        "{stderr}"
    );
    assert!(stderr.contains(&state.display().to_string()), "{stderr}");

    // A second instance with its own state directory runs beside the first.
    let other_state = dir.path().join("state-2");
    let second = Daemon::start(&rules, &other_state, &[]);
    assert_eq!(second.stop(), 0);

    // Once the first has stopped, the directory is free again.
    assert_eq!(first.stop(), 0);
    let again = Daemon::start(&rules, &state, &[]);
    assert_eq!(again.stop(), 0);
}
