//! The reference evaluator: a direct, unoptimised reading of the pattern semantics over a
//! parsed event. It explains why a rule does not match (for `trigd match`) and is the oracle
//! the compiled matcher is property-tested against.
//!
//! The semantics, in one place:
//! * the event is flattened into leaves `(path, scalar, trail)`, paths dot-joined, every element
//!   of an array a leaf at the array's path, the trail naming the array elements it sits in;
//! * a condition is satisfied by a leaf at its path that one of its alternatives matches, or by
//!   the absence of any leaf at its path when it has an `exists: false` alternative;
//! * a branch matches when its conditions can all be satisfied by leaves whose trails agree
//!   (two leaves agree unless they sit in different elements of the same array);
//! * a pattern matches when one of its branches does.

use serde_json::Value;

use super::ast::{Alt, Branch, Condition, Pattern};
use super::eval::{Leaf, LeafView, alt_matches};

/// One step of a trail: array number (in the order arrays are met) and element index.
pub(super) type Step = (u32, u32);

/// A scalar of a flattened event.
#[derive(Debug, Clone)]
pub(super) struct FlatLeaf<'a> {
    pub path: String,
    pub leaf: Leaf<'a>,
    pub trail: Vec<Step>,
}

/// Flattens an event into its leaves.
pub(super) fn flatten(event: &Value) -> Vec<FlatLeaf<'_>> {
    let mut out = Vec::new();
    let mut arrays = 0;
    walk(event, None, &mut Vec::new(), &mut arrays, &mut out);
    out
}

/// `path` is `None` at the root (a key may be the empty string, so "" is a real path).
fn walk<'a>(
    v: &'a Value,
    path: Option<String>,
    trail: &mut Vec<Step>,
    arrays: &mut u32,
    out: &mut Vec<FlatLeaf<'a>>,
) {
    let leaf = match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = match &path {
                    None => k.clone(),
                    Some(p) => format!("{p}.{k}"),
                };
                walk(child, Some(p), trail, arrays, out);
            }
            return;
        }
        Value::Array(items) => {
            let id = *arrays;
            *arrays += 1;
            for (i, child) in items.iter().enumerate() {
                trail.push((id, i as u32));
                walk(child, path.clone(), trail, arrays, out);
                trail.pop();
            }
            return;
        }
        Value::String(s) => Leaf::Str(s),
        Value::Number(n) => Leaf::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::Bool(b) => Leaf::Bool(*b),
        Value::Null => Leaf::Null,
    };
    if let Some(path) = path {
        out.push(FlatLeaf {
            path,
            leaf,
            trail: trail.clone(),
        });
    }
}

/// Whether two trails can belong to one match.
pub(super) fn trails_agree(a: &[Step], b: &[Step]) -> bool {
    a.iter()
        .all(|(arr, i)| b.iter().all(|(arr2, j)| arr != arr2 || i == j))
}

/// Whether the pattern matches the event.
pub fn matches(pattern: &Pattern, event: &Value) -> bool {
    let leaves = flatten(event);
    pattern
        .branches
        .iter()
        .any(|b| evaluate_branch(b, &leaves).is_ok())
}

/// Why a branch failed.
#[derive(Debug)]
enum Failure {
    /// Condition `index` has no satisfying leaf.
    Condition(usize),
    /// Every condition has satisfying leaves, but no choice of them agrees on array elements.
    Arrays,
}

/// Candidate leaves per condition; `None` where absence satisfies the condition.
fn evaluate_branch(branch: &Branch, leaves: &[FlatLeaf<'_>]) -> Result<(), Failure> {
    let mut candidates: Vec<Vec<&[Step]>> = Vec::with_capacity(branch.conditions.len());
    for (i, cond) in branch.conditions.iter().enumerate() {
        let at_path: Vec<&FlatLeaf<'_>> = leaves.iter().filter(|l| l.path == cond.path).collect();
        if at_path.is_empty() && cond.allows_absence() {
            candidates.push(vec![&[]]);
            continue;
        }
        let hits: Vec<&[Step]> = at_path
            .iter()
            .filter(|l| {
                let view = LeafView::new(l.leaf);
                cond.alts.iter().any(|a| alt_matches(a, &view))
            })
            .map(|l| l.trail.as_slice())
            .collect();
        if hits.is_empty() {
            return Err(Failure::Condition(i));
        }
        candidates.push(hits);
    }
    if choose(&candidates, &mut Vec::new()) {
        Ok(())
    } else {
        Err(Failure::Arrays)
    }
}

/// Backtracking search for one leaf per condition with pairwise agreeing trails (shared with
/// the compiled matcher, which calls it only for branches satisfied inside arrays).
pub(crate) fn choose<'a>(candidates: &[Vec<&'a [Step]>], chosen: &mut Vec<&'a [Step]>) -> bool {
    let Some((first, rest)) = candidates.split_first() else {
        return true;
    };
    for t in first {
        if chosen.iter().all(|c| trails_agree(c, t)) {
            chosen.push(t);
            if choose(rest, chosen) {
                return true;
            }
            chosen.pop();
        }
    }
    false
}

/// Why the pattern does not match the event, naming the first failing field; `None` when it
/// matches.
pub fn explain(pattern: &Pattern, event: &Value) -> Option<String> {
    let leaves = flatten(event);
    let mut best: Option<(usize, usize, &Branch, Failure)> = None;
    for (bi, branch) in pattern.branches.iter().enumerate() {
        match evaluate_branch(branch, &leaves) {
            Ok(()) => return None,
            Err(f) => {
                let progress = match f {
                    Failure::Condition(i) => i,
                    Failure::Arrays => branch.conditions.len(),
                };
                if best.as_ref().is_none_or(|(p, ..)| progress > *p) {
                    best = Some((progress, bi, branch, f));
                }
            }
        }
    }
    let (_, bi, branch, failure) = best?;
    let reason = match failure {
        Failure::Condition(i) => describe_failure(&branch.conditions[i], &leaves),
        Failure::Arrays => {
            let paths: Vec<&str> = branch.conditions.iter().map(|c| c.path.as_str()).collect();
            format!(
                "{}: no single array element satisfies all of these fields together",
                paths.join(", ")
            )
        }
    };
    if pattern.branches.len() > 1 {
        Some(format!(
            "$or branch {} of {}: {reason}",
            bi + 1,
            pattern.branches.len()
        ))
    } else {
        Some(reason)
    }
}

fn describe_failure(cond: &Condition, leaves: &[FlatLeaf<'_>]) -> String {
    let values: Vec<Leaf<'_>> = leaves
        .iter()
        .filter(|l| l.path == cond.path)
        .map(|l| l.leaf)
        .collect();
    let path = &cond.path;
    if values.is_empty() {
        return format!(
            "{path}: expected {}, but the field is missing",
            expected(cond)
        );
    }
    let got = describe_values(&values);
    if cond.alts.iter().all(|a| matches!(a, Alt::Numeric(_)))
        && values.iter().all(|v| !matches!(v, Leaf::Num(_)))
    {
        let ops: Vec<String> = cond.alts.iter().map(ToString::to_string).collect();
        return format!(
            "{path}: {} needs a number, got {got} ({})",
            ops.join(" or "),
            kinds(&values)
        );
    }
    if cond.alts.iter().all(|a| matches!(a, Alt::Exists(false))) {
        return format!("{path}: expected the field to be absent, got {got}");
    }
    format!("{path}: expected {}, got {got}", expected(cond))
}

fn expected(cond: &Condition) -> String {
    if let [Alt::Exists(true)] = cond.alts.as_slice() {
        return "the field to exist".to_owned();
    }
    let alts: Vec<String> = cond.alts.iter().map(ToString::to_string).collect();
    format!("one of [{}]", alts.join(", "))
}

const MAX_SHOWN: usize = 80;

fn describe_values(values: &[Leaf<'_>]) -> String {
    let shown: Vec<String> = values.iter().take(5).map(|v| describe_leaf(*v)).collect();
    if values.len() == 1 {
        shown.join("")
    } else {
        let more = if values.len() > 5 { ", ..." } else { "" };
        format!("[{}{more}]", shown.join(", "))
    }
}

fn describe_leaf(v: Leaf<'_>) -> String {
    match v {
        Leaf::Str(s) => {
            let mut text = Value::String(s.to_owned()).to_string();
            if text.chars().count() > MAX_SHOWN {
                text = text.chars().take(MAX_SHOWN).collect::<String>() + "…\"";
            }
            text
        }
        Leaf::Num(n) => super::ast::format_number(n),
        Leaf::Bool(b) => b.to_string(),
        Leaf::Null => "null".to_owned(),
    }
}

fn kinds(values: &[Leaf<'_>]) -> &'static str {
    match values.first() {
        Some(Leaf::Str(_)) if values.len() == 1 => "a string",
        Some(Leaf::Bool(_)) if values.len() == 1 => "a boolean",
        Some(Leaf::Null) if values.len() == 1 => "null",
        _ => "not numbers",
    }
}
