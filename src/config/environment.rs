//! What `trigd check` can tell about valid rules from the machine it runs on: a `command`
//! target whose program is not on `PATH` (or, written as a path, does not exist or is not
//! executable), and a `cwd` that is not a directory. Each would otherwise show only at the
//! first event, as a `NO_RESOURCE` dead letter.
//!
//! These are warnings, not errors: the daemon may run on another machine, or in another
//! directory, than `check`. Relative paths are taken from the directory `check` runs in, as
//! the daemon takes them from its own. The rule files are read again here rather than kept
//! in the [`RuleSet`](crate::rules::RuleSet), which has no positions to point at.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::diag::{Diagnostic, did_you_mean};
use super::yaml::{self, Kind, Node, Pos};
use super::{LoadError, is_rule_file, read_files};

/// The machine as a `command` target would find it.
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    /// The `PATH` programs are looked up in (a target's own `env: {PATH: ...}` wins).
    pub path: Option<&'a OsStr>,
    /// Where relative programs and `cwd`s start: the daemon's working directory.
    pub dir: &'a Path,
}

/// Warnings for every `command` target (and `command` destination) under `root`, in file
/// order. Files that do not parse are skipped: loading the rules reports them.
pub fn warnings(root: &Path, host: &Host<'_>) -> Result<Vec<Diagnostic>, LoadError> {
    let mut out = Vec::new();
    for (path, text) in read_files(root, is_rule_file)? {
        let Ok(doc) = yaml::parse(&text) else {
            continue;
        };
        let file = path.display().to_string();
        let mut warn = |pos: Pos, message: String| {
            out.push(Diagnostic {
                file: file.clone(),
                line: pos.line,
                column: pos.column,
                message,
            });
        };
        let file_dir = path.parent().unwrap_or(Path::new("."));
        for function in functions(&doc) {
            check_function(function, file_dir, host, &mut warn);
        }
        for target in targets(&doc) {
            check_target(target, host, &mut warn);
            for key in ["on_success", "on_failure"] {
                if let Some(dest) = get(target, key) {
                    check_target(dest, host, &mut warn);
                }
            }
        }
    }
    Ok(out)
}

/// Every function under `functions:`.
fn functions(doc: &Node) -> impl Iterator<Item = &Node> {
    let entries: &[(Node, Node)] = match get(doc, "functions").map(|n| &n.kind) {
        Some(Kind::Map(entries)) => entries,
        _ => &[],
    };
    entries.iter().map(|(_, v)| v)
}

/// A local function's interpreter: found, and of the version its `runtime` names. Handlers run
/// with the interpreter found whatever its version, so a difference is a warning.
fn check_function(
    function: &Node,
    file_dir: &Path,
    host: &Host<'_>,
    warn: &mut impl FnMut(Pos, String),
) {
    let Some(runtime) = get(function, "runtime") else {
        return;
    };
    let Some(rt) = runtime
        .as_str()
        .and_then(crate::rules::FunctionRuntime::parse)
    else {
        return;
    };
    let (default, wanted) = match &rt {
        crate::rules::FunctionRuntime::Python(v) => ("python3", v.clone()),
        crate::rules::FunctionRuntime::Node(v) => ("node", v.clone()),
        crate::rules::FunctionRuntime::Provided(_) => return,
    };
    let pinned = get(function, "interpreter");
    let program = pinned.and_then(Node::as_str).unwrap_or(default);
    let at = pinned.unwrap_or(runtime).pos;
    if let Some(problem) = find_program(program, file_dir, host.path) {
        warn(at, problem.replace("every delivery", "every invocation"));
        return;
    }
    let Some(found) = interpreter_version(program, file_dir) else {
        return;
    };
    // `3.12` against `Python 3.12.4`; `20` against `v20.11.0`.
    let same = match &rt {
        crate::rules::FunctionRuntime::Python(_) => found
            .strip_prefix(&wanted)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.')),
        _ => found.split('.').next() == Some(wanted.as_str()),
    };
    if !same {
        warn(
            at,
            format!(
                "`{program}` here is version {found}, not the {} the function names; handlers run with it all the same (pin another with `interpreter:`)",
                runtime.as_str().unwrap_or_default()
            ),
        );
    }
}

/// `python3 --version` → `3.11.7`; `node --version` → `20.20.2`.
fn interpreter_version(program: &str, dir: &Path) -> Option<String> {
    let out = std::process::Command::new(program)
        .arg("--version")
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .trim()
    .to_owned();
    let version = text
        .strip_prefix("Python ")
        .or_else(|| text.strip_prefix('v'))?;
    Some(version.to_owned())
}

/// Every mapping under `rules[*].targets[*]`.
fn targets(doc: &Node) -> impl Iterator<Item = &Node> {
    items(get(doc, "rules"))
        .flat_map(|rule| items(get(rule, "targets")))
        .filter(|t| matches!(t.kind, Kind::Map(_)))
}

fn items(node: Option<&Node>) -> std::slice::Iter<'_, Node> {
    match node.map(|n| &n.kind) {
        Some(Kind::Seq(items)) => items.iter(),
        _ => [].iter(),
    }
}

/// The value of `key` in a mapping.
fn get<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Checks one mapping that may hold `command`, `cwd` and `env`.
fn check_target(target: &Node, host: &Host<'_>, warn: &mut impl FnMut(Pos, String)) {
    let Some(program) = get(target, "command")
        .and_then(|c| items(Some(c)).next())
        .filter(|p| p.as_str().is_some_and(|s| !s.is_empty()))
    else {
        return;
    };
    let name = program.as_str().unwrap_or_default();
    let mut base = host.dir.to_owned();
    if let Some(cwd) = get(target, "cwd")
        && let Some(dir) = cwd.as_str()
    {
        base = host.dir.join(dir);
        if !base.is_dir() {
            warn(
                cwd.pos,
                format!(
                    "`cwd` `{dir}` is not a directory here ({}), so every delivery would fail (NO_RESOURCE)",
                    base.display()
                ),
            );
            if name.contains('/') && !Path::new(name).is_absolute() {
                // Relative to a directory that is not there: nothing more to tell.
                return;
            }
        }
    }
    let own_path = get(target, "env")
        .and_then(|env| get(env, "PATH"))
        .and_then(Node::as_str)
        .map(OsString::from);
    let path = own_path.as_deref().or(host.path);
    if let Some(problem) = find_program(name, &base, path) {
        warn(program.pos, problem);
    }
}

/// Why `program` cannot be started from `dir` with `path`, as `execvp` looks it up; `None`
/// when it can.
fn find_program(program: &str, dir: &Path, path: Option<&OsStr>) -> Option<String> {
    if program.contains('/') {
        let full = dir.join(program);
        return match std::fs::metadata(&full) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => None,
            Ok(m) if m.is_file() => Some(format!(
                "`{program}` is not executable ({}), so every delivery would fail (NO_PERMISSIONS)",
                full.display()
            )),
            _ => Some(format!(
                "`{program}` does not exist here ({}), so every delivery would fail (NO_RESOURCE)",
                full.display()
            )),
        };
    }
    let dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    let found = dirs.iter().any(|d| {
        // An empty entry is the working directory.
        let d = if d.as_os_str().is_empty() { dir } else { d };
        std::fs::metadata(d.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    if found {
        return None;
    }
    let mut message =
        format!("`{program}` is not on PATH, so every delivery would fail (NO_RESOURCE)");
    let names: BTreeSet<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().take(10_000))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Some(meant) = did_you_mean(program, &names) {
        message.push_str(&format!("; did you mean `{meant}`?"));
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn executable(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A PATH directory holding `python3`, a working directory holding `bin/ok` and a
    /// non-executable `bin/plain`, and the rules `rules` in `r.yaml`.
    fn check(rules: &str) -> Vec<String> {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("path-bin");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(work.join("bin")).unwrap();
        executable(&bin.join("python3"));
        executable(&work.join("bin/ok"));
        std::fs::write(work.join("bin/plain"), "").unwrap();
        let dir = tmp.path().join("rules");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("r.yaml"), rules).unwrap();
        let host = Host {
            path: Some(bin.as_os_str()),
            dir: &work,
        };
        warnings(&dir, &host)
            .unwrap()
            .iter()
            .map(|d| {
                let message = d.message.replace(&tmp.path().display().to_string(), "TMP");
                format!("{}:{}: {message}", d.line, d.column)
            })
            .collect()
    }

    #[test]
    fn a_program_that_is_not_on_path_is_named_with_the_one_meant() {
        let got = check(
            "rules:
  - name: a
    pattern: {source: [x]}
    targets:
      - {id: typo, command: [pyhton3, handler.py]}
      - {id: fine, command: [python3, handler.py]}
      - {id: own-path, command: [python3], env: {PATH: /nowhere}}
",
        );
        assert_eq!(
            got,
            [
                "5:30: `pyhton3` is not on PATH, so every delivery would fail (NO_RESOURCE); did you mean `python3`?",
                "7:34: `python3` is not on PATH, so every delivery would fail (NO_RESOURCE)",
            ]
        );
    }

    #[test]
    fn relative_programs_and_cwds_are_taken_from_the_working_directory() {
        let got = check(
            "rules:
  - name: a
    pattern: {source: [x]}
    targets:
      - {id: ok, command: [./bin/ok]}
      - {id: missing, command: [./bin/gone]}
      - {id: plain, command: [bin/plain]}
      - {id: in-cwd, command: [./ok], cwd: bin}
      - {id: no-cwd, command: [python3], cwd: /does/not/exist}
      - {id: dest, log: true, on_success: {command: [nope-nope-nope]}}
",
        );
        assert_eq!(
            got,
            [
                "6:33: `./bin/gone` does not exist here (TMP/work/./bin/gone), so every delivery would fail (NO_RESOURCE)",
                "7:31: `bin/plain` is not executable (TMP/work/bin/plain), so every delivery would fail (NO_PERMISSIONS)",
                "9:47: `cwd` `/does/not/exist` is not a directory here (/does/not/exist), so every delivery would fail (NO_RESOURCE)",
                "10:54: `nope-nope-nope` is not on PATH, so every delivery would fail (NO_RESOURCE)",
            ]
        );
    }

    #[test]
    fn rules_without_commands_have_nothing_to_say() {
        assert!(
            check("rules:\n  - {name: a, pattern: {source: [x]}, targets: [{id: t, log: true}]}\n")
                .is_empty()
        );
    }
}
