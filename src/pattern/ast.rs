//! The parsed form of an event pattern: a disjunction of branches, each a conjunction of
//! conditions on flattened field paths.
//!
//! `$or` is expanded at parse time, so a [`Pattern`] is already in disjunctive normal form:
//! it matches when any [`Branch`] matches, and a branch matches when every one of its
//! [`Condition`]s is satisfied by a leaf of the event (all leaves drawn from the same array
//! elements, see `matcher`). A condition is satisfied when any of its [`Alt`]ernatives
//! matches.

use std::fmt;

use super::wildcard::Wildcard;
use crate::pattern::cidr::Cidr;

/// A validated event pattern in disjunctive normal form.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// At least one branch; more than one only when the pattern uses `$or`.
    pub branches: Vec<Branch>,
}

/// One `$or` combination: every condition must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// Conditions in the order their fields appear in the pattern text.
    pub conditions: Vec<Condition>,
}

/// A leaf array of a pattern: the field at `path` must match one of `alts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Dot-joined path (`detail.object.key`), the same way the event is flattened.
    pub path: String,
    /// The match values of the leaf array, OR-ed.
    pub alts: Vec<Alt>,
}

impl Condition {
    /// True when one of the alternatives is `{"exists": false}`, which the absence of the
    /// field satisfies.
    pub fn allows_absence(&self) -> bool {
        self.alts.iter().any(|a| matches!(a, Alt::Exists(false)))
    }
}

/// A JSON scalar as a pattern or an event holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    /// Numbers compare by value (`300` equals `300.0`), as current EventBridge does.
    Num(f64),
    Bool(bool),
    Null,
}

/// One match value of a leaf array.
#[derive(Debug, Clone, PartialEq)]
pub enum Alt {
    Exact(Literal),
    Prefix(String),
    /// Stored case-folded.
    PrefixIgnoreCase(String),
    Suffix(String),
    /// Stored case-folded.
    SuffixIgnoreCase(String),
    /// Stored case-folded.
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(NumericRange),
    Exists(bool),
    Cidr(Cidr),
}

/// The forms of `anything-but`. All of them require the field to be present.
#[derive(Debug, Clone, PartialEq)]
pub enum AnythingBut {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    /// Stored case-folded.
    IgnoreCase(Vec<String>),
    Wildcards(Vec<Wildcard>),
}

/// A numeric interval; `None` bounds are open-ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericRange {
    pub lower: Option<Bound>,
    pub upper: Option<Bound>,
}

/// One end of a [`NumericRange`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

impl NumericRange {
    /// Whether `x` lies in the range.
    pub fn contains(&self, x: f64) -> bool {
        let lower_ok = match self.lower {
            None => true,
            Some(b) if b.inclusive => x >= b.value,
            Some(b) => x > b.value,
        };
        let upper_ok = match self.upper {
            None => true,
            Some(b) if b.inclusive => x <= b.value,
            Some(b) => x < b.value,
        };
        lower_ok && upper_ok
    }
}

/// Case folding used by every `equals-ignore-case` form, applied to both sides.
pub(super) fn fold_case(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Literal::Num(n) => write!(f, "{}", format_number(*n)),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

/// Formats a number the way it would be written in JSON (`300`, not `300.0`).
pub(super) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn quoted_list(items: &[String]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|s| serde_json::Value::String(s.clone()).to_string())
        .collect();
    format!("[{}]", parts.join(", "))
}

impl fmt::Display for Alt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        match self {
            Alt::Exact(l) => write!(f, "{l}"),
            Alt::Prefix(p) => write!(f, "prefix {}", q(p)),
            Alt::PrefixIgnoreCase(p) => write!(f, "prefix (ignoring case) {}", q(p)),
            Alt::Suffix(p) => write!(f, "suffix {}", q(p)),
            Alt::SuffixIgnoreCase(p) => write!(f, "suffix (ignoring case) {}", q(p)),
            Alt::EqualsIgnoreCase(p) => write!(f, "equals-ignore-case {}", q(p)),
            Alt::Wildcard(w) => write!(f, "wildcard {}", q(w.as_str())),
            Alt::AnythingBut(ab) => match ab {
                AnythingBut::Strings(v) => write!(f, "anything-but {}", quoted_list(v)),
                AnythingBut::Numbers(v) => {
                    let parts: Vec<String> = v.iter().map(|n| format_number(*n)).collect();
                    write!(f, "anything-but [{}]", parts.join(", "))
                }
                AnythingBut::Prefixes(v) => write!(f, "anything-but prefix {}", quoted_list(v)),
                AnythingBut::Suffixes(v) => write!(f, "anything-but suffix {}", quoted_list(v)),
                AnythingBut::IgnoreCase(v) => {
                    write!(f, "anything-but (ignoring case) {}", quoted_list(v))
                }
                AnythingBut::Wildcards(v) => {
                    let parts: Vec<String> = v.iter().map(|w| w.as_str().to_owned()).collect();
                    write!(f, "anything-but wildcard {}", quoted_list(&parts))
                }
            },
            Alt::Numeric(r) => {
                f.write_str("numeric")?;
                if let (Some(lo), Some(hi)) = (r.lower, r.upper)
                    && lo.inclusive
                    && hi.inclusive
                    && lo.value == hi.value
                {
                    return write!(f, " = {}", format_number(lo.value));
                }
                if let Some(b) = r.lower {
                    let op = if b.inclusive { ">=" } else { ">" };
                    write!(f, " {op} {}", format_number(b.value))?;
                }
                if let Some(b) = r.upper {
                    let op = if b.inclusive { "<=" } else { "<" };
                    write!(f, " {op} {}", format_number(b.value))?;
                }
                Ok(())
            }
            Alt::Exists(b) => write!(f, "exists {b}"),
            Alt::Cidr(c) => write!(f, "cidr {}", q(c.as_str())),
        }
    }
}
