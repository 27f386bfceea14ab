//! Turns the JSON form of an event pattern into a [`Pattern`], refusing every form that
//! EventBridge refuses, with EventBridge's reason text and the JSON path of the offending
//! node (so callers can point at the exact place in a rule file).

use std::fmt;

use serde_json::{Map, Value};

use super::ast::fold_case;
use super::ast::{Alt, AnythingBut, Bound, Branch, Condition, Literal, NumericRange, Pattern};
use super::cidr::Cidr;
use super::wildcard::Wildcard;

/// EventBridge's default limit on the length of a pattern's JSON text.
pub const MAX_PATTERN_LEN: usize = 2048;
/// EventBridge refuses patterns whose `$or`s expand to more combinations than this.
pub const MAX_COMBINATIONS: usize = 1000;

/// One step of a path into the pattern's JSON, for locating errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A pattern EventBridge would refuse, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}{}", at_suffix(.path))]
pub struct PatternError {
    /// Path from the pattern's root to the offending node (empty for the root).
    pub path: Vec<PathSeg>,
    /// EventBridge's reason text (without its trailing period).
    pub reason: String,
    /// When the offending node is an unknown operator name (the last step of `path`), the
    /// names accepted in its place, so that a caller can suggest the one meant; else empty.
    pub expected: &'static [&'static str],
}

fn at_suffix(path: &[PathSeg]) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" (at {})", display_path(path))
    }
}

/// `detail.object.key[0].prefix`
pub fn display_path(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

impl fmt::Display for PathSeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSeg::Key(k) => f.write_str(k),
            PathSeg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Operator names; they may not be used as field names inside `$or` objects.
const OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
];

/// Words EventBridge reserves for future operators.
const RESERVED: &[&str] = &[
    "regex",
    "not-wildcard",
    "date-after",
    "ip-address-in-range",
    "=",
    "<",
    "<=",
    ">",
    ">=",
];

/// The operators `anything-but` accepts in an object.
const ANYTHING_BUT_OPERATORS: &[&str] = &["prefix", "suffix", "equals-ignore-case", "wildcard"];

/// The operator `prefix` and `suffix` accept in an object.
const AFFIX_OPERATORS: &[&str] = &["equals-ignore-case"];

/// Parses and validates a pattern, stopping at its first problem (see [`parse_all`]).
pub fn parse(value: &Value) -> Result<Pattern, PatternError> {
    parse_all(value).map_err(|mut errors| errors.swap_remove(0))
}

/// Parses and validates a pattern, reporting every problem in it, in document order (never an
/// empty list). The first is the one [`parse`] reports.
pub fn parse_all(value: &Value) -> Result<Pattern, Vec<PatternError>> {
    let Value::Object(obj) = value else {
        return Err(vec![err(&[], "Filter is not an object")]);
    };
    let len = value.to_string().chars().count();
    if len > MAX_PATTERN_LEN {
        return Err(vec![err(
            &[],
            format!(
                "Event pattern is {len} characters long; EventBridge allows at most {MAX_PATTERN_LEN}"
            ),
        )]);
    }
    let mut loc = Vec::new();
    let mut errors = Vec::new();
    match parse_object(obj, "", &mut loc, false, &mut errors) {
        Some(branches) if errors.is_empty() => Ok(Pattern {
            branches: branches
                .into_iter()
                .map(|conditions| Branch { conditions })
                .collect(),
        }),
        _ if errors.is_empty() => Err(vec![err(&[], "Filter is not valid")]),
        _ => Err(errors),
    }
}

fn err(path: &[PathSeg], reason: impl Into<String>) -> PatternError {
    PatternError {
        path: path.to_vec(),
        reason: reason.into(),
        expected: &[],
    }
}

/// An unknown operator name at `path`, where `expected` are accepted.
fn unknown(
    path: &[PathSeg],
    reason: impl Into<String>,
    expected: &'static [&'static str],
) -> PatternError {
    PatternError {
        expected,
        ..err(path, reason)
    }
}

type Dnf = Vec<Vec<Condition>>;

/// Parses one object level into disjunctive normal form. Every problem goes to `errors` and
/// parsing goes on with the next key, so that all are reported; `None` when this level (or
/// one below it) has a problem.
fn parse_object(
    obj: &Map<String, Value>,
    prefix: &str,
    loc: &mut Vec<PathSeg>,
    in_or: bool,
    errors: &mut Vec<PatternError>,
) -> Option<Dnf> {
    if obj.is_empty() {
        errors.push(err(loc, "Empty objects are not allowed"));
        return None;
    }
    let mut acc: Option<Dnf> = Some(vec![Vec::new()]);
    for (key, value) in obj {
        loc.push(PathSeg::Key(key.clone()));
        let part = if in_or
            && (OPERATORS.contains(&key.as_str()) || RESERVED.contains(&key.as_str()))
        {
            errors.push(err(
                loc,
                format!("\"{key}\" is an operator name and cannot be a field name inside $or"),
            ));
            None
        } else if key == "$or" && value.is_array() {
            parse_or(value, prefix, loc, errors)
        } else {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Object(inner) => parse_object(inner, &path, loc, false, errors),
                Value::Array(items) => parse_leaf(items, path, loc, errors).map(|c| vec![vec![c]]),
                _ => {
                    errors.push(err(loc, format!("\"{key}\" must be an object or an array")));
                    None
                }
            }
        };
        acc = match (acc, part) {
            (Some(a), Some(p)) => match product(a, p, loc) {
                Ok(dnf) => Some(dnf),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            _ => None,
        };
        loc.pop();
    }
    acc
}

fn parse_or(
    value: &Value,
    prefix: &str,
    loc: &mut Vec<PathSeg>,
    errors: &mut Vec<PatternError>,
) -> Option<Dnf> {
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.len() < 2 {
        errors.push(err(
            loc,
            "There must have at least 2 Objects in $or relationship",
        ));
        return None;
    }
    let mut out = Some(Vec::new());
    for (i, item) in items.iter().enumerate() {
        loc.push(PathSeg::Index(i));
        let part = match item {
            Value::Object(obj) => parse_object(obj, prefix, loc, true, errors),
            _ => {
                errors.push(err(
                    loc,
                    "Only JSON object is allowed in array of $or relationship",
                ));
                None
            }
        };
        out = match (out, part) {
            (Some(mut acc), Some(part)) => {
                acc.extend(part);
                if acc.len() > MAX_COMBINATIONS {
                    errors.push(too_many(loc));
                    loc.pop();
                    return None;
                }
                Some(acc)
            }
            _ => None,
        };
        loc.pop();
    }
    out
}

fn too_many(loc: &[PathSeg]) -> PatternError {
    err(
        loc,
        format!("The $or operators expand to more than {MAX_COMBINATIONS} combinations"),
    )
}

/// AND of two DNFs: every branch of `a` combined with every branch of `b`.
fn product(a: Dnf, b: Dnf, loc: &[PathSeg]) -> Result<Dnf, PatternError> {
    if a.len().saturating_mul(b.len()) > MAX_COMBINATIONS {
        return Err(too_many(loc));
    }
    if a.len() == 1 && b.len() == 1 {
        let mut a = a;
        let mut b = b;
        let (mut x, y) = (a.remove(0), b.remove(0));
        x.extend(y);
        return Ok(vec![x]);
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in &a {
        for y in &b {
            let mut c = x.clone();
            c.extend(y.iter().cloned());
            out.push(c);
        }
    }
    Ok(out)
}

/// One field's list of match values; a problem in each value is reported.
fn parse_leaf(
    items: &[Value],
    path: String,
    loc: &mut Vec<PathSeg>,
    errors: &mut Vec<PatternError>,
) -> Option<Condition> {
    if items.is_empty() {
        errors.push(err(loc, "Empty arrays are not allowed"));
        return None;
    }
    let mut alts = Vec::with_capacity(items.len());
    let before = errors.len();
    let depth = loc.len();
    for (i, item) in items.iter().enumerate() {
        loc.push(PathSeg::Index(i));
        match parse_match_value(item, loc) {
            Ok(alt) => alts.push(alt),
            Err(e) => errors.push(e),
        }
        // An error leaves the operator's steps on `loc`.
        loc.truncate(depth);
    }
    (errors.len() == before).then_some(Condition { path, alts })
}

fn parse_match_value(item: &Value, loc: &mut Vec<PathSeg>) -> Result<Alt, PatternError> {
    match item {
        Value::String(s) => Ok(Alt::Exact(Literal::Str(s.clone()))),
        Value::Number(n) => Ok(Alt::Exact(Literal::Num(number(n)))),
        Value::Bool(b) => Ok(Alt::Exact(Literal::Bool(*b))),
        Value::Null => Ok(Alt::Exact(Literal::Null)),
        Value::Array(_) => Err(err(
            loc,
            "Match value must be String, number, true, false, or null",
        )),
        Value::Object(op) => {
            if op.len() != 1 {
                return Err(err(loc, "Only one key allowed in match expression"));
            }
            let Some((name, arg)) = op.iter().next() else {
                return Err(err(loc, "Only one key allowed in match expression"));
            };
            loc.push(PathSeg::Key(name.clone()));
            let alt = parse_operator(name, arg, loc)?;
            loc.pop();
            Ok(alt)
        }
    }
}

fn number(n: &serde_json::Number) -> f64 {
    // Every JSON number has an f64 reading; `as_f64` fails only for arbitrary precision, which
    // is not enabled.
    n.as_f64().unwrap_or(f64::NAN)
}

fn parse_operator(name: &str, arg: &Value, loc: &mut Vec<PathSeg>) -> Result<Alt, PatternError> {
    match name {
        "prefix" => parse_affix(arg, loc, "prefix", Alt::Prefix, Alt::PrefixIgnoreCase),
        "suffix" => parse_affix(arg, loc, "suffix", Alt::Suffix, Alt::SuffixIgnoreCase),
        "equals-ignore-case" => match arg {
            Value::String(s) => Ok(Alt::EqualsIgnoreCase(fold_case(s))),
            _ => Err(err(
                loc,
                "equals-ignore-case match pattern must be a string",
            )),
        },
        "wildcard" => match arg {
            Value::String(s) => wildcard(s, loc).map(Alt::Wildcard),
            _ => Err(err(loc, "wildcard match pattern must be a string")),
        },
        "anything-but" => parse_anything_but(arg, loc).map(Alt::AnythingBut),
        "numeric" => parse_numeric(arg, loc).map(Alt::Numeric),
        "exists" => match arg {
            Value::Bool(b) => Ok(Alt::Exists(*b)),
            _ => Err(err(
                loc,
                "exists match pattern must be either true or false",
            )),
        },
        "cidr" => match arg {
            Value::String(s) => Cidr::parse(s)
                .map(Alt::Cidr)
                .map_err(|e| err(loc, e.to_string())),
            _ => Err(err(loc, "cidr match pattern must be a string")),
        },
        other => Err(unknown(
            loc,
            format!("Unrecognized match type {other}"),
            OPERATORS,
        )),
    }
}

fn wildcard(s: &str, loc: &[PathSeg]) -> Result<Wildcard, PatternError> {
    Wildcard::parse(s).map_err(|e| err(loc, e.to_string()))
}

fn parse_affix(
    arg: &Value,
    loc: &mut Vec<PathSeg>,
    op: &str,
    plain: fn(String) -> Alt,
    ignore_case: fn(String) -> Alt,
) -> Result<Alt, PatternError> {
    match arg {
        Value::String(s) => Ok(plain(s.clone())),
        Value::Object(inner) if inner.len() == 1 => match inner.iter().next() {
            Some((k, Value::String(s))) if k == "equals-ignore-case" => {
                Ok(ignore_case(fold_case(s)))
            }
            Some((k, _)) if k == "equals-ignore-case" => {
                loc.push(PathSeg::Key(k.clone()));
                Err(err(
                    loc,
                    "equals-ignore-case match pattern must be a string",
                ))
            }
            Some((k, _)) => {
                loc.push(PathSeg::Key(k.clone()));
                Err(unknown(
                    loc,
                    format!("Unsupported {op} pattern: {k}"),
                    AFFIX_OPERATORS,
                ))
            }
            None => Err(err(loc, format!("{op} match pattern must be a string"))),
        },
        _ => Err(err(loc, format!("{op} match pattern must be a string"))),
    }
}

fn parse_anything_but(arg: &Value, loc: &mut Vec<PathSeg>) -> Result<AnythingBut, PatternError> {
    match arg {
        Value::String(s) => Ok(AnythingBut::Strings(vec![s.clone()])),
        Value::Number(n) => Ok(AnythingBut::Numbers(vec![number(n)])),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(err(loc, "Empty arrays are not allowed"));
            }
            if items.iter().all(Value::is_string) {
                Ok(AnythingBut::Strings(strings(items)))
            } else if items.iter().all(Value::is_number) {
                Ok(AnythingBut::Numbers(
                    items.iter().filter_map(Value::as_f64).collect(),
                ))
            } else {
                Err(err(
                    loc,
                    "Inside anything but list, either all values are number or string, mixed type is not supported",
                ))
            }
        }
        Value::Object(inner) => {
            if inner.len() != 1 {
                return Err(err(loc, "Only one key allowed in match expression"));
            }
            let Some((op, value)) = inner.iter().next() else {
                return Err(err(loc, "Only one key allowed in match expression"));
            };
            loc.push(PathSeg::Key(op.clone()));
            let out = match op.as_str() {
                "prefix" => affix_list(value, loc, "prefix").map(AnythingBut::Prefixes),
                "suffix" => affix_list(value, loc, "suffix").map(AnythingBut::Suffixes),
                "equals-ignore-case" => string_list(value, loc, "equals-ignore-case")
                    .map(|v| AnythingBut::IgnoreCase(v.iter().map(|s| fold_case(s)).collect())),
                "wildcard" => {
                    let pats = string_list(value, loc, "wildcard")?;
                    let mut out = Vec::with_capacity(pats.len());
                    for p in pats {
                        out.push(wildcard(&p, loc)?);
                    }
                    Ok(AnythingBut::Wildcards(out))
                }
                other => Err(unknown(
                    loc,
                    format!("Unsupported anything-but pattern: {other}"),
                    ANYTHING_BUT_OPERATORS,
                )),
            };
            loc.pop();
            out
        }
        Value::Null | Value::Bool(_) => Err(err(
            loc,
            "Value of anything-but must be an array or single string/number value",
        )),
    }
}

fn strings(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// A string or a non-empty list of strings.
fn string_list(value: &Value, loc: &[PathSeg], op: &str) -> Result<Vec<String>, PatternError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
            Ok(strings(items))
        }
        Value::Array(items) if items.is_empty() => Err(err(loc, "Empty arrays are not allowed")),
        _ => Err(err(loc, format!("{op} match pattern must be a string"))),
    }
}

fn affix_list(value: &Value, loc: &[PathSeg], op: &str) -> Result<Vec<String>, PatternError> {
    let list = string_list(value, loc, op)?;
    if list.iter().any(String::is_empty) {
        return Err(err(loc, format!("Null {op} not allowed")));
    }
    Ok(list)
}

fn parse_numeric(arg: &Value, loc: &[PathSeg]) -> Result<NumericRange, PatternError> {
    let Value::Array(items) = arg else {
        return Err(err(loc, "Value of numeric must be an array"));
    };
    if items.is_empty() {
        return Err(err(loc, "Empty arrays are not allowed"));
    }
    if items.len() > 4 {
        return Err(err(loc, "Too many elements in numeric expression"));
    }
    let mut terms: Vec<(&str, f64)> = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let op = match &items[i] {
            Value::String(s) if matches!(s.as_str(), "=" | "<" | "<=" | ">" | ">=") => s.as_str(),
            Value::String(s) => {
                return Err(err(
                    loc,
                    format!("Unrecognized numeric range operator: {s}"),
                ));
            }
            other => {
                return Err(err(
                    loc,
                    format!("Invalid member in numeric match: {other}"),
                ));
            }
        };
        let value = match items.get(i + 1) {
            Some(Value::Number(n)) => number(n),
            _ => return Err(err(loc, format!("Value of {op} must be numeric"))),
        };
        terms.push((op, value));
        i += 2;
    }
    match terms.as_slice() {
        [("=", v)] => {
            let b = Bound {
                value: *v,
                inclusive: true,
            };
            Ok(NumericRange {
                lower: Some(b),
                upper: Some(b),
            })
        }
        [(op, v)] => {
            let b = Bound {
                value: *v,
                inclusive: op.ends_with('='),
            };
            if op.starts_with('>') {
                Ok(NumericRange {
                    lower: Some(b),
                    upper: None,
                })
            } else {
                Ok(NumericRange {
                    lower: None,
                    upper: Some(b),
                })
            }
        }
        [(lo_op, lo), (hi_op, hi)] => {
            if !lo_op.starts_with('>') {
                return Err(err(loc, format!("Bad numeric range operator: {lo_op}")));
            }
            if !hi_op.starts_with('<') {
                return Err(err(loc, format!("Bad numeric range operator: {hi_op}")));
            }
            if lo >= hi {
                return Err(err(loc, "Bottom must be less than top"));
            }
            Ok(NumericRange {
                lower: Some(Bound {
                    value: *lo,
                    inclusive: lo_op.ends_with('='),
                }),
                upper: Some(Bound {
                    value: *hi,
                    inclusive: hi_op.ends_with('='),
                }),
            })
        }
        _ => Err(err(loc, "Too many terms in numeric range expression")),
    }
}
