//! Snapshot tests of what `trigd check` says about invalid rule files: every problem, each at
//! `file:line:column`, with a hint. Review changes with `cargo insta review`.

use crate::util::{root, run_in};

#[track_caller]
fn check_snapshot(name: &str, path: &str) {
    let run = run_in(&root().join("tests/data"), &["check", path], None);
    assert_eq!(run.code, 1, "{path} must be refused: {}", run.stderr);
    assert!(run.stdout.is_empty(), "problems go to stderr");
    insta::assert_snapshot!(name, run.stderr);
}

#[test]
fn yaml_syntax() {
    check_snapshot("yaml_syntax", "invalid/yaml-syntax.yaml");
}

#[test]
fn unknown_keys() {
    check_snapshot("unknown_keys", "invalid/unknown-keys.yaml");
}

#[test]
fn patterns() {
    check_snapshot("patterns", "invalid/patterns.yaml");
}

#[test]
fn schedules() {
    check_snapshot("schedules", "invalid/schedules.yaml");
}

#[test]
fn targets() {
    check_snapshot("targets", "invalid/targets.yaml");
}

#[test]
fn duplicate_names_across_files() {
    check_snapshot("duplicates", "duplicates");
}

#[test]
fn all_files_of_a_directory_are_reported_at_once() {
    let run = run_in(&root().join("tests/data"), &["check", "invalid"], None);
    assert_eq!(run.code, 1);
    for file in [
        "yaml-syntax",
        "unknown-keys",
        "patterns",
        "schedules",
        "targets",
    ] {
        assert!(
            run.stderr.contains(&format!("invalid/{file}.yaml:")),
            "{file} missing from:\n{}",
            run.stderr
        );
    }
}

#[test]
fn json_format() {
    let run = run_in(
        &root().join("tests/data"),
        &["check", "invalid/patterns.yaml", "--format", "json"],
        None,
    );
    assert_eq!(run.code, 1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    let errors = v["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 9, "{}", run.stdout);
    let first = &errors[0];
    assert_eq!(first["file"], "invalid/patterns.yaml");
    assert_eq!(first["line"], 3);
    assert!(first["column"].as_u64().is_some());
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("Empty arrays are not allowed")
    );
}

#[test]
fn function_triggers() {
    check_snapshot("triggers", "triggers");
}
