//! What the validated model does not keep and deploy needs: each pattern rule's pattern as the
//! JSON it was written as (EventBridge takes the pattern text, not trigd's compiled form), and
//! where each target is written, so that a target that cannot be deployed is reported at its
//! own `file:line:column`. Read again from the rule files the rules were loaded from.

use std::collections::HashMap;

use serde_json::Value;

use crate::config::yaml::{self, Kind, Node, Pos};
use crate::rules::RuleSet;

/// Where one thing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The patterns and target positions of every rule, by rule name.
#[derive(Debug, Default)]
pub struct RuleSources {
    patterns: HashMap<String, Value>,
    targets: HashMap<(String, String), Origin>,
    /// Functions whose `concurrency` is written (only those reserve concurrency on AWS).
    concurrency_written: Vec<String>,
    /// Rules that write `catch_up` (it has no effect on AWS: worth a note only when written).
    catch_up_written: Vec<String>,
    /// The filters of `sqs` triggers as written, by (function, source).
    sqs_filters: HashMap<(String, String), Vec<Value>>,
}

impl RuleSources {
    /// Reads the files `set`'s rules came from. A file that cannot be read again (it changed or
    /// vanished since the rules were loaded) leaves its rules without patterns; the caller
    /// reports that.
    pub fn read(set: &RuleSet) -> RuleSources {
        let mut files: Vec<&str> = set
            .rules
            .iter()
            .map(|r| r.file.as_str())
            .chain(set.functions.iter().map(|f| f.file.as_str()))
            .collect();
        files.sort_unstable();
        files.dedup();
        let mut out = RuleSources::default();
        for file in files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            out.add_file(file, &text);
        }
        out
    }

    /// Adds the rules of one file's text.
    pub fn add_file(&mut self, file: &str, text: &str) {
        let Ok(root) = yaml::parse(text) else {
            return;
        };
        if let Some(Kind::Map(functions)) = get(&root, "functions").map(|n| &n.kind) {
            for (name, f) in functions {
                let Some(name) = name.as_str() else { continue };
                if get(f, "concurrency").is_some() {
                    self.concurrency_written.push(name.to_owned());
                }
                let Some(Kind::Seq(triggers)) = get(f, "triggers").map(|n| &n.kind) else {
                    continue;
                };
                for t in triggers {
                    let Some(sqs) = get(t, "sqs") else { continue };
                    let (Some(source), Some(Kind::Seq(filters))) = (
                        get(sqs, "source").and_then(Node::as_str),
                        get(sqs, "filter").map(|n| &n.kind),
                    ) else {
                        continue;
                    };
                    let filters = filters
                        .iter()
                        .filter_map(|p| match &p.kind {
                            Kind::Str(s) => serde_json::from_str(s).ok(),
                            _ => p.to_json().ok(),
                        })
                        .collect();
                    self.sqs_filters
                        .insert((name.to_owned(), source.to_owned()), filters);
                }
            }
        }
        let Some(Kind::Seq(rules)) = get(&root, "rules").map(|n| &n.kind) else {
            return;
        };
        for rule in rules {
            let Some(name) = get(rule, "name").and_then(Node::as_str) else {
                continue;
            };
            if get(rule, "catch_up").is_some() {
                self.catch_up_written.push(name.to_owned());
            }
            if let Some(p) = get(rule, "pattern") {
                let json = match &p.kind {
                    Kind::Str(s) => serde_json::from_str(s).ok(),
                    _ => p.to_json().ok(),
                };
                if let Some(json) = json {
                    self.patterns.insert(name.to_owned(), json);
                }
            }
            if let Some(Kind::Seq(targets)) = get(rule, "targets").map(|n| &n.kind) {
                for t in targets {
                    if let Some(id) = get(t, "id").and_then(Node::as_str) {
                        self.targets
                            .insert((name.to_owned(), id.to_owned()), origin(file, t.pos));
                    }
                }
            }
        }
    }

    /// The pattern of rule `name`, as written.
    pub fn pattern(&self, rule: &str) -> Option<&Value> {
        self.patterns.get(rule)
    }

    /// The filters of function `function`'s `sqs` trigger on source `source`, as written.
    pub fn sqs_filters(&self, function: &str, source: &str) -> &[Value] {
        self.sqs_filters
            .get(&(function.to_owned(), source.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether rule `name` writes `catch_up`.
    pub fn catch_up_written(&self, name: &str) -> bool {
        self.catch_up_written.iter().any(|n| n == name)
    }

    /// Whether function `name` writes its `concurrency`.
    pub fn concurrency_written(&self, name: &str) -> bool {
        self.concurrency_written.iter().any(|n| n == name)
    }

    /// Where target `id` of rule `rule` is written.
    pub fn target(&self, rule: &str, id: &str) -> Option<&Origin> {
        self.targets.get(&(rule.to_owned(), id.to_owned()))
    }
}

fn origin(file: &str, pos: Pos) -> Origin {
    Origin {
        file: file.to_owned(),
        line: pos.line,
        column: pos.column,
    }
}

/// The value of key `key` in a mapping node (the last one, if repeated).
fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_keep_their_json_and_targets_their_position() {
        let mut s = RuleSources::default();
        s.add_file(
            "r.yaml",
            "rules:\n  - name: a\n    pattern: {source: [shop], detail: {n: [{numeric: ['>', 1]}]}}\n    targets:\n      - id: t1\n        log: true\n  - name: b\n    pattern: '{\"source\":[\"x\"]}'\n    targets:\n      - id: t\n        log: true\n",
        );
        assert_eq!(
            s.pattern("a"),
            Some(
                &serde_json::json!({"source": ["shop"], "detail": {"n": [{"numeric": [">", 1]}]}})
            )
        );
        assert_eq!(s.pattern("b"), Some(&serde_json::json!({"source": ["x"]})));
        assert_eq!(s.target("a", "t1").unwrap().to_string(), "r.yaml:5:9");
        assert_eq!(s.target("a", "nope"), None);
    }
}
