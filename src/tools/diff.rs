//! The semantic diff of two rule sets over recorded events (`trigd diff OLD NEW --events FILE`):
//! which events would route differently, and what targets would receive differently.
//!
//! For each event, the enabled pattern rules of both sets that match it are compared by name:
//! a rule only the new set matches is *added* (`+rule`), one only the old set matches is
//! *removed* (`-rule`). For a rule that matches in both, each target's payload is compared,
//! targets paired by id; a target present on one side only is a payload change too. Because
//! this compares outcomes, not rule text, a reformatted but equivalent rule file shows no
//! change.
//!
//! Both sets' patterns are compiled into one [`Matcher`], so each event is scanned once;
//! an event is parsed for rendering only when it matches, in both sets, a rule whose targets'
//! input options differ between the sets. The work runs on the [`replay`](crate::replay)
//! pipeline: parallel, in input order, in bounded memory.
//!
//! # Output
//!
//! Text: each changed event as `line N: <excerpt of the event, ≤ 120 characters>`, then
//! `  + rule`, `  - rule`, and `  ~ rule/target` followed by the old (`-`) and new (`+`)
//! payload, clipped around the first difference; then a summary with, per rule, how many
//! events it gains and loses and in how many its payloads changed.
//!
//! JSON: one object, streamed, so memory does not grow with the number of changes:
//!
//! ```text
//! {"changes":[
//! {"line":N,"excerpt":"...","added":["rule",...],"removed":["rule",...],
//!  "payloads":[{"rule":"r","target":"t","old":P,"new":P}]},
//! ...
//! ],"events":N,"changed":N,"errors":N,
//!  "rules":{"RULE":{"gained":N,"lost":N,"payloads":N},...}}
//! ```
//!
//! Each change sits on one line. `P` is the payload text, `null` when the target does not exist
//! on that side, or `{"error":"reason"}` when it cannot be rendered. `events` counts the
//! events examined, `changed` those with any change, `errors` the lines that are not events
//! (each also reported on the error stream as `line N: <reason>`). `rules` lists every pattern
//! rule of either set: the new set's in order, then those only the old set has.

use std::collections::HashMap;
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::dry_run;
use crate::pattern::{Matcher, Pattern, RuleId, Scratch};
use crate::replay::{
    self, Batch, BatchOutput, Input, Options, PatternRules, ReplayError, parse_event,
};
use crate::rules::{Rule, RuleSet, Trigger};

/// Longest event excerpt shown with a change, in characters.
pub const EXCERPT_CHARS: usize = 120;

/// Widest payload shown in the text form, in characters.
const PAYLOAD_CHARS: usize = 100;

/// How `trigd diff` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffFormat {
    /// Changes and a summary table, for people.
    Text,
    /// One JSON object (see the module documentation).
    Json,
}

/// What `trigd diff` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffOptions {
    /// Text for people, JSON for programs.
    pub format: DiffFormat,
    /// Stands in for the ingestion time of events without a `time` field (the same on both
    /// sides, so it never shows as a change).
    pub now: DateTime<Utc>,
}

/// The totals of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffSummary {
    /// Lines that are events.
    pub events: u64,
    /// Events whose routing or payloads changed.
    pub changed: u64,
    /// Lines that are not events.
    pub errors: u64,
    /// Every pattern rule of either set: the new set's in order, then the old set's others.
    pub rules: Vec<RuleChanges>,
}

/// How one rule's routing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChanges {
    /// The rule's name.
    pub rule: String,
    /// Events the rule matches in the new set and not in the old.
    pub gained: u64,
    /// Events the rule matches in the old set and not in the new.
    pub lost: u64,
    /// Events the rule matches in both sets with some payload changed.
    pub payloads: u64,
}

impl DiffSummary {
    /// The JSON `rules` object.
    fn rules_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .rules
            .iter()
            .map(|r| {
                (
                    r.rule.clone(),
                    json!({"gained": r.gained, "lost": r.lost, "payloads": r.payloads}),
                )
            })
            .collect();
        Value::Object(map)
    }

    /// The summary of the text form.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let errors = match self.errors {
            0 => String::new(),
            n => format!(" ({n} bad line(s) skipped)"),
        };
        if self.changed == 0 {
            out.push_str(&format!(
                "{} events examined, none changed{errors}\n",
                self.events
            ));
            return out;
        }
        out.push_str(&format!(
            "{} events examined, {} changed{errors}\n",
            self.events, self.changed
        ));
        let shown: Vec<&RuleChanges> = self
            .rules
            .iter()
            .filter(|r| r.gained + r.lost + r.payloads > 0)
            .collect();
        let width = shown
            .iter()
            .map(|r| r.rule.chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        out.push_str(&format!(
            "  {:<width$}  {:>8}  {:>8}  {:>8}\n",
            "rule", "gained", "lost", "payloads"
        ));
        for r in shown {
            out.push_str(&format!(
                "  {:<width$}  {:>8}  {:>8}  {:>8}\n",
                r.rule,
                format!("+{}", r.gained),
                format!("-{}", r.lost),
                r.payloads
            ));
        }
        out
    }
}

/// Compares the routing of `old` and `new` over the events of `input`, printing the changes
/// and the summary on `out` (see the module documentation) and bad lines on `err`.
pub fn run(
    old: &RuleSet,
    new: &RuleSet,
    input: &Input,
    options: &Options,
    opts: &DiffOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<DiffSummary, ReplayError> {
    let plan = Plan::new(old, new, opts);
    let mut out = io::BufWriter::with_capacity(256 * 1024, out);
    let json = opts.format == DiffFormat::Json;
    if json {
        out.write_all(b"{\"changes\":[")
            .map_err(ReplayError::Write)?;
    }
    let mut first = true;
    let states = replay::run_batches(
        input,
        options,
        || plan.worker(),
        |w, batch| plan.batch(w, batch),
        |result: BatchOutput, reporter| {
            // Each JSON change starts with `,\n`; the first one's comma is dropped.
            let text = if json && first && !result.text.is_empty() {
                first = false;
                &result.text[1..]
            } else {
                &result.text[..]
            };
            out.write_all(text)?;
            for (line, reason) in &result.errors {
                reporter.line_error(*line, reason);
            }
            Ok(())
        },
        err,
    )?;
    let mut summary = DiffSummary {
        events: 0,
        changed: 0,
        errors: 0,
        rules: plan
            .names
            .iter()
            .map(|name| RuleChanges {
                rule: name.clone(),
                gained: 0,
                lost: 0,
                payloads: 0,
            })
            .collect(),
    };
    for w in states {
        summary.events += w.events;
        summary.changed += w.changed;
        summary.errors += w.errors;
        for (i, r) in summary.rules.iter_mut().enumerate() {
            r.gained += w.gained[i];
            r.lost += w.lost[i];
            r.payloads += w.payloads[i];
        }
    }
    let tail = if json {
        format!(
            "\n],\"events\":{},\"changed\":{},\"errors\":{},\"rules\":{}}}\n",
            summary.events,
            summary.changed,
            summary.errors,
            summary.rules_json()
        )
    } else {
        let sep = if summary.changed > 0 { "\n" } else { "" };
        format!("{sep}{}", summary.to_text())
    };
    out.write_all(tail.as_bytes()).map_err(ReplayError::Write)?;
    out.flush().map_err(ReplayError::Write)?;
    Ok(summary)
}

/// Both sets, compiled together.
struct Plan<'a> {
    old: &'a RuleSet,
    new: &'a RuleSet,
    /// The old set's patterns, then the new set's.
    matcher: Matcher,
    /// Matcher ids below this are the old set's.
    split: usize,
    /// Per matcher id.
    slots: Vec<Slot>,
    /// Rule names across both sets; indexes are "unified" ids.
    names: Vec<String>,
    /// Per unified id: the rule's index in each set, when it is a pattern rule there.
    old_rule: Vec<Option<usize>>,
    new_rule: Vec<Option<usize>>,
    /// Per unified id: the rule has the same targets with the same input options in both
    /// sets, so its payloads cannot differ and need not be rendered.
    same_targets: Vec<bool>,
    opts: &'a DiffOptions,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    unified: u32,
    enabled: bool,
}

fn patterns<'s>(set: &'s RuleSet, rules: &PatternRules) -> Vec<&'s Pattern> {
    rules
        .index
        .iter()
        .filter_map(|&i| match &set.rules[i].trigger {
            Trigger::Pattern(p) => Some(p),
            Trigger::Schedule(_) => None,
        })
        .collect()
}

/// Same target ids, each with the same input options.
fn same_targets(a: &Rule, b: &Rule) -> bool {
    a.targets.len() == b.targets.len()
        && a.targets
            .iter()
            .all(|t| b.targets.iter().any(|u| u.id == t.id && u.input == t.input))
}

impl<'a> Plan<'a> {
    fn new(old: &'a RuleSet, new: &'a RuleSet, opts: &'a DiffOptions) -> Plan<'a> {
        let old_p = PatternRules::of(old);
        let new_p = PatternRules::of(new);
        let mut names: Vec<String> = Vec::new();
        let mut by_name: HashMap<&str, u32> = HashMap::new();
        let mut old_rule = Vec::new();
        let mut new_rule = Vec::new();
        for &i in &new_p.index {
            by_name.insert(&new.rules[i].name, names.len() as u32);
            names.push(new.rules[i].name.clone());
            new_rule.push(Some(i));
            old_rule.push(None);
        }
        let mut slots = Vec::with_capacity(old_p.index.len() + new_p.index.len());
        for (k, &i) in old_p.index.iter().enumerate() {
            let name = old.rules[i].name.as_str();
            let unified = match by_name.get(name) {
                Some(&u) => u,
                None => {
                    let u = names.len() as u32;
                    by_name.insert(name, u);
                    names.push(name.to_owned());
                    new_rule.push(None);
                    old_rule.push(None);
                    u
                }
            };
            old_rule[unified as usize] = Some(i);
            slots.push(Slot {
                unified,
                enabled: old_p.enabled[k],
            });
        }
        for (k, _) in new_p.index.iter().enumerate() {
            slots.push(Slot {
                unified: k as u32,
                enabled: new_p.enabled[k],
            });
        }
        let same = (0..names.len())
            .map(|u| match (old_rule[u], new_rule[u]) {
                (Some(o), Some(n)) => same_targets(&old.rules[o], &new.rules[n]),
                _ => true,
            })
            .collect();
        let matcher = Matcher::new(
            patterns(old, &old_p)
                .into_iter()
                .chain(patterns(new, &new_p)),
        );
        Plan {
            old,
            new,
            matcher,
            split: old_p.index.len(),
            slots,
            names,
            old_rule,
            new_rule,
            same_targets: same,
            opts,
        }
    }

    fn worker(&self) -> Worker {
        let n = self.names.len();
        Worker {
            scratch: self.matcher.scratch(),
            ids: Vec::new(),
            old_u: Vec::new(),
            new_u: Vec::new(),
            events: 0,
            changed: 0,
            errors: 0,
            gained: vec![0; n],
            lost: vec![0; n],
            payloads: vec![0; n],
        }
    }

    fn batch(&self, w: &mut Worker, batch: &Batch) -> BatchOutput {
        let mut out = BatchOutput::default();
        for (number, line) in batch.lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    w.errors += 1;
                    out.errors.push((number, e.to_string()));
                    continue;
                }
            };
            if let Err(e) = self.matcher.matches(line, &mut w.scratch, &mut w.ids) {
                w.errors += 1;
                out.errors.push((number, e.to_string()));
                continue;
            }
            w.events += 1;
            if let Some(change) = self.compare(w, number, line) {
                w.changed += 1;
                for &u in &change.added {
                    w.gained[u as usize] += 1;
                }
                for &u in &change.removed {
                    w.lost[u as usize] += 1;
                }
                let mut last = None;
                for p in &change.payloads {
                    if last != Some(p.rule) {
                        w.payloads[p.rule as usize] += 1;
                        last = Some(p.rule);
                    }
                }
                match self.opts.format {
                    DiffFormat::Text => self.write_text(&change, line, &mut out.text),
                    DiffFormat::Json => self.write_json(&change, line, &mut out.text),
                }
            }
        }
        out
    }

    /// The change for one event whose matcher results are in `w.ids`, if any.
    fn compare(&self, w: &mut Worker, number: u64, line: &str) -> Option<Change> {
        w.old_u.clear();
        w.new_u.clear();
        for &id in &w.ids {
            let slot = self.slots[id as usize];
            if !slot.enabled {
                continue;
            }
            if (id as usize) < self.split {
                w.old_u.push(slot.unified);
            } else {
                w.new_u.push(slot.unified);
            }
        }
        w.old_u.sort_unstable();
        w.new_u.sort_unstable();
        if w.old_u == w.new_u && w.old_u.iter().all(|&u| self.same_targets[u as usize]) {
            return None;
        }
        let mut change = Change {
            line: number,
            added: Vec::new(),
            removed: Vec::new(),
            payloads: Vec::new(),
        };
        let mut event: Option<Result<(Value, String), String>> = None;
        let (mut i, mut j) = (0, 0);
        while i < w.old_u.len() || j < w.new_u.len() {
            let (o, n) = (w.old_u.get(i).copied(), w.new_u.get(j).copied());
            match (o, n) {
                (Some(o), Some(n)) if o == n => {
                    i += 1;
                    j += 1;
                    if !self.same_targets[o as usize] {
                        let parsed = event
                            .get_or_insert_with(|| parse_event(line).map_err(|e| e.to_string()));
                        self.payload_changes(o, parsed, &mut change.payloads);
                    }
                }
                (Some(o), Some(n)) if o < n => {
                    change.removed.push(o);
                    i += 1;
                }
                (Some(o), None) => {
                    change.removed.push(o);
                    i += 1;
                }
                (_, Some(n)) => {
                    change.added.push(n);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        if change.added.is_empty() && change.removed.is_empty() && change.payloads.is_empty() {
            return None;
        }
        Some(change)
    }

    /// Compares what each target of rule `u` receives in the two sets.
    fn payload_changes(
        &self,
        u: u32,
        event: &Result<(Value, String), String>,
        out: &mut Vec<PayloadChange>,
    ) {
        let (Some(o), Some(n)) = (self.old_rule[u as usize], self.new_rule[u as usize]) else {
            return;
        };
        let old = self.render(self.old, &self.old.rules[o], event);
        let new = self.render(self.new, &self.new.rules[n], event);
        for (id, payload) in &new {
            let before = old.iter().find(|(i, _)| i == id).map(|(_, p)| p);
            if before != Some(payload) {
                out.push(PayloadChange {
                    rule: u,
                    target: id.clone(),
                    old: before.cloned(),
                    new: Some(payload.clone()),
                });
            }
        }
        for (id, payload) in old {
            if !new.iter().any(|(i, _)| *i == id) {
                out.push(PayloadChange {
                    rule: u,
                    target: id,
                    old: Some(payload),
                    new: None,
                });
            }
        }
    }

    /// Each target's id and payload, as `trigd match --event` renders them.
    fn render(
        &self,
        set: &RuleSet,
        rule: &Rule,
        event: &Result<(Value, String), String>,
    ) -> Vec<(String, Result<String, String>)> {
        match event {
            Ok((value, compact)) => {
                let ingestion = dry_run::ingestion_time(value, self.opts.now);
                crate::route::render_rule(set, rule, compact, value, &ingestion)
                    .targets
                    .into_iter()
                    .map(|p| (p.id, p.payload))
                    .collect()
            }
            Err(reason) => rule
                .targets
                .iter()
                .map(|t| (t.id.clone(), Err(reason.clone())))
                .collect(),
        }
    }

    fn write_text(&self, c: &Change, line: &str, out: &mut Vec<u8>) {
        let mut s = format!("line {}: {}\n", c.line, excerpt(line, EXCERPT_CHARS));
        for &u in &c.added {
            s.push_str(&format!("  + {}\n", self.names[u as usize]));
        }
        for &u in &c.removed {
            s.push_str(&format!("  - {}\n", self.names[u as usize]));
        }
        for p in &c.payloads {
            let (old, new) = clip_pair(&shown(&p.old), &shown(&p.new), PAYLOAD_CHARS);
            s.push_str(&format!(
                "  ~ {}/{}\n      - {old}\n      + {new}\n",
                self.names[p.rule as usize], p.target
            ));
        }
        out.extend_from_slice(s.as_bytes());
    }

    fn write_json(&self, c: &Change, line: &str, out: &mut Vec<u8>) {
        let names = |list: &[u32]| -> Vec<&str> {
            list.iter()
                .map(|&u| self.names[u as usize].as_str())
                .collect()
        };
        let payloads: Vec<Value> = c
            .payloads
            .iter()
            .map(|p| {
                json!({
                    "rule": self.names[p.rule as usize],
                    "target": p.target,
                    "old": payload_json(&p.old),
                    "new": payload_json(&p.new),
                })
            })
            .collect();
        let v = json!({
            "line": c.line,
            "excerpt": excerpt(line, EXCERPT_CHARS),
            "added": names(&c.added),
            "removed": names(&c.removed),
            "payloads": payloads,
        });
        out.extend_from_slice(b",\n");
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &v);
    }
}

struct Worker {
    scratch: Scratch,
    ids: Vec<RuleId>,
    /// Unified ids of the enabled rules matching the current event, per side.
    old_u: Vec<u32>,
    new_u: Vec<u32>,
    events: u64,
    changed: u64,
    errors: u64,
    gained: Vec<u64>,
    lost: Vec<u64>,
    payloads: Vec<u64>,
}

/// How one event's routing changed; rules are unified ids.
struct Change {
    line: u64,
    added: Vec<u32>,
    removed: Vec<u32>,
    payloads: Vec<PayloadChange>,
}

/// A payload: `None` when the target does not exist on that side.
type Side = Option<Result<String, String>>;

struct PayloadChange {
    rule: u32,
    target: String,
    old: Side,
    new: Side,
}

fn payload_json(p: &Side) -> Value {
    match p {
        None => Value::Null,
        Some(Ok(text)) => Value::String(text.clone()),
        Some(Err(e)) => json!({ "error": e }),
    }
}

fn shown(p: &Side) -> String {
    match p {
        None => "(no such target)".to_owned(),
        Some(Ok(text)) => text.clone(),
        Some(Err(e)) => format!("(cannot render: {e})"),
    }
}

/// The event's text, trimmed, cut to `max` characters (an ellipsis marks the cut).
pub fn excerpt(line: &str, max: usize) -> String {
    let t = line.trim();
    if t.chars().count() <= max {
        t.to_owned()
    } else {
        let mut s: String = t.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// Both texts cut to `width` characters around their first difference.
fn clip_pair(a: &str, b: &str, width: usize) -> (String, String) {
    if a.chars().count() <= width && b.chars().count() <= width {
        return (a.to_owned(), b.to_owned());
    }
    let first_diff = a
        .chars()
        .zip(b.chars())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.chars().count().min(b.chars().count()));
    let start = first_diff.saturating_sub(width / 4);
    let clip = |s: &str| {
        let mut out = String::new();
        if start > 0 {
            out.push('…');
        }
        let mut chars = s.chars().skip(start);
        out.extend(chars.by_ref().take(width));
        if chars.next().is_some() {
            out.push('…');
        }
        out
    };
    (clip(a), clip(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_at_most_120_characters() {
        assert_eq!(excerpt("  {\"a\":1}\r", 120), "{\"a\":1}");
        let long = format!("{{\"k\":\"{}\"}}", "é".repeat(300));
        let e = excerpt(&long, 120);
        assert_eq!(e.chars().count(), 120);
        assert!(e.ends_with('…'));
    }

    #[test]
    fn long_payloads_are_clipped_around_the_difference() {
        let a = format!("{}A{}", "x".repeat(500), "y".repeat(500));
        let b = format!("{}B{}", "x".repeat(500), "y".repeat(500));
        let (ca, cb) = clip_pair(&a, &b, 100);
        assert!(ca.starts_with('…') && ca.ends_with('…'), "{ca}");
        assert!(ca.contains('A') && cb.contains('B'));
        assert!(ca.chars().count() <= 102);
        assert_eq!(clip_pair("a", "b", 100), ("a".to_owned(), "b".to_owned()));
    }
}
