//! The layer rule, kept by a test (as rust-analyzer's `tidy.rs` keeps its own): every
//! `crate::` path in a module's code (tests excluded) must point at a module of its own layer
//! or a lower one, and no two modules may reach each other.
//!
//! ```text
//! daemon ─► sources ─► http shell ─► intake ─► delivery ─► targets ─► services ─► config ─► core
//! tools (offline) ─► config, core
//! ```
//!
//! A new module must be given a layer in [`LAYERS`]; a module missing from it fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules by layer, lowest first. A module may use its own layer and lower ones.
const LAYERS: &[(&str, &[&str])] = &[
    // Pure: no IO, no network; the model and what is computed from it.
    (
        "core",
        &[
            "pattern",
            "schedule",
            "transform",
            "rules",
            "event",
            "outcome",
            "route",
            "lambda_events",
        ],
    ),
    // Rule files and settings, read into the core model.
    ("config", &["config"]),
    // What targets and sources are built on: clients, processes, counters, files.
    (
        "services",
        &["aws", "functions", "metrics", "archive", "sd_notify"],
    ),
    ("targets", &["targets"]),
    ("delivery", &["delivery"]),
    ("intake", &["ingest", "intake"]),
    // The offline tools (`check`, `match`, `test`, `next`, `schema`, replay, diff) and the
    // HTTP listener's shell, which sources bring their routes to.
    (
        "tools and the listener",
        &[
            "dry_run",
            "rule_tests",
            "next",
            "schema",
            "replay",
            "diff",
            "tools",
            "deploy",
            "server",
        ],
    ),
    ("sources", &["sources"]),
    // Start, serve, stop. (Rooms still to come have their layer already: `deploy`, rules to
    // AWS, sits with the tools; the API trigger, `sources/api`, with the sources.)
    ("daemon", &["daemon"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The code of a file without its `#[cfg(test)]` modules and comments.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    let mut pending_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if skip_depth.is_none() && trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        if pending_test {
            pending_test = false;
            if trimmed.starts_with("mod ") && opens > 0 {
                skip_depth = Some(depth);
            } else if trimmed.starts_with("mod ") {
                // `mod tests;` in its own file: nothing here to skip.
                depth = depth + opens - closes.min(depth + opens);
                continue;
            }
        }
        depth = (depth + opens).saturating_sub(closes);
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules a piece of code names through `crate::`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let mut names = Vec::new();
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d}`: the first segment of each item.
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                names.push(item.trim().split("::").next().unwrap_or("").to_owned());
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
        out.extend(names.into_iter().filter(|n| !n.is_empty()));
    }
    out
}

/// Top-level module → the top-level modules its code uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = crate::util::root().join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        let top = top_module(rel);
        if top == "main" || top == "lib" || rel.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&path).unwrap());
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(uses(&code).into_iter().filter(|m| *m != top));
    }
    graph
}

fn top_module(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn arrows_point_down_and_never_round() {
    let graph = graph();
    let mut problems = Vec::new();
    for (module, used) in &graph {
        let Some(from) = layer_of(module) else {
            problems.push(format!(
                "`{module}` has no layer: give it one in tests/it/tidy.rs"
            ));
            continue;
        };
        for target in used {
            match layer_of(target) {
                Some(to) if to > from => problems.push(format!(
                    "`{module}` ({}) uses `{target}` ({}), a higher layer",
                    LAYERS[from].0, LAYERS[to].0
                )),
                Some(_) => {}
                None => problems.push(format!("`{target}` (used by `{module}`) has no layer")),
            }
        }
    }
    // No two modules reach each other, whatever their layers.
    for (module, used) in &graph {
        for target in used {
            if reaches(&graph, target, module) {
                problems.push(format!(
                    "`{module}` and `{target}` reach each other: a cycle"
                ));
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The core reads no clock and does no IO: time and data come in as arguments.
#[test]
fn the_core_reads_no_clock_and_does_no_io() {
    const FORBIDDEN: &[&str] = &[
        "tokio::",
        "std::fs",
        // Addresses are data; sockets are IO.
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "std::process",
        "Utc::now",
        "Instant::now",
        "SystemTime",
        "std::env",
    ];
    let src = crate::util::root().join("src");
    let mut problems = Vec::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        if path.extension().is_none_or(|e| e != "rs")
            || layer_of(&top_module(rel)) != Some(0)
            || rel.components().any(|c| c.as_os_str() == "tests")
        {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&path).unwrap());
        for f in FORBIDDEN {
            if code.contains(f) {
                problems.push(format!("{} uses `{f}`", rel.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(m) = stack.pop() {
        if m == to {
            return true;
        }
        if seen.insert(m.clone())
            && let Some(next) = graph.get(&m)
        {
            stack.extend(next.iter().cloned());
        }
    }
    false
}

#[test]
fn the_tidy_reader_sees_uses_and_skips_tests_and_comments() {
    let code = code_of(
        "use crate::{a, b::c};\n// crate::commented\nfn f() { crate::d::e(); }\n#[cfg(test)]\nmod tests {\n    use crate::t;\n}\nfn g() { crate::h(); }\n",
    );
    let got: Vec<String> = uses(&code).into_iter().collect();
    assert_eq!(got, ["a", "b", "d", "h"]);
}
