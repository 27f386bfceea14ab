//! Typed reads from YAML nodes that report what was expected, where, and what to write
//! instead. Every helper records a diagnostic and returns `None` on a problem, so callers can
//! carry on and report all problems at once.

use std::time::Duration;

use super::diag::{Reporter, did_you_mean};
use super::yaml::{Kind, Node};

/// The entries of a mapping whose keys were checked against the allowed ones.
pub struct Fields<'n> {
    entries: &'n [(Node, Node)],
}

impl<'n> Fields<'n> {
    /// Checks that `node` is a mapping with only `allowed` keys, each at most once. `what`
    /// names the mapping in messages ("a rule", "a target").
    pub fn new(r: &mut Reporter<'_>, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Self> {
        let Kind::Map(entries) = &node.kind else {
            r.error(
                node.pos,
                format!("{what} must be a mapping, got {}", node.type_name()),
            );
            return None;
        };
        for (i, (k, _)) in entries.iter().enumerate() {
            let Some(key) = k.as_str() else {
                r.error(
                    k.pos,
                    format!("keys of {what} must be strings, got {}", k.type_name()),
                );
                continue;
            };
            if !allowed.contains(&key) {
                let hint = match did_you_mean(key, allowed) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => format!("; expected one of: {}", allowed.join(", ")),
                };
                r.error(k.pos, format!("unknown key `{key}` in {what}{hint}"));
            } else if entries[..i].iter().any(|(p, _)| p.as_str() == Some(key)) {
                r.error(k.pos, format!("`{key}` is given twice in {what}"));
            }
        }
        Some(Fields { entries })
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The keys present among `keys`.
    pub fn present<'k>(&self, keys: &[&'k str]) -> Vec<&'k str> {
        keys.iter().copied().filter(|k| self.has(k)).collect()
    }

    /// The key node of `key`, for positions.
    pub fn key_node(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k)
    }
}

/// A string value.
pub fn string<'n>(r: &mut Reporter<'_>, node: &'n Node, what: &str) -> Option<&'n str> {
    match &node.kind {
        Kind::Str(s) => Some(s),
        _ => {
            r.error(
                node.pos,
                format!("{what} must be a string, got {}", node.type_name()),
            );
            None
        }
    }
}

/// A non-empty string value.
pub fn nonempty<'n>(r: &mut Reporter<'_>, node: &'n Node, what: &str) -> Option<&'n str> {
    let s = string(r, node, what)?;
    if s.trim().is_empty() {
        r.error(node.pos, format!("{what} must not be empty"));
        return None;
    }
    Some(s)
}

pub fn boolean(r: &mut Reporter<'_>, node: &Node, what: &str) -> Option<bool> {
    match node.kind {
        Kind::Bool(b) => Some(b),
        _ => {
            r.error(
                node.pos,
                format!("{what} must be true or false, got {}", node.type_name()),
            );
            None
        }
    }
}

/// An integer within `range`.
pub fn integer(
    r: &mut Reporter<'_>,
    node: &Node,
    what: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Option<i64> {
    match node.kind {
        Kind::Int(i) if range.contains(&i) => Some(i),
        Kind::Int(i) => {
            r.error(
                node.pos,
                format!(
                    "{what} must be between {} and {}, got {i}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
        _ => {
            r.error(
                node.pos,
                format!("{what} must be a whole number, got {}", node.type_name()),
            );
            None
        }
    }
}

/// A list of strings.
pub fn string_list(r: &mut Reporter<'_>, node: &Node, what: &str) -> Option<Vec<String>> {
    let Kind::Seq(items) = &node.kind else {
        r.error(
            node.pos,
            format!("{what} must be a list of strings, got {}", node.type_name()),
        );
        return None;
    };
    let before = r.count();
    let out: Vec<String> = items
        .iter()
        .filter_map(|i| string(r, i, &format!("each item of {what}")).map(str::to_owned))
        .collect();
    (r.count() == before).then_some(out)
}

/// A mapping of strings to strings (headers, environment variables).
pub fn string_map(r: &mut Reporter<'_>, node: &Node, what: &str) -> Option<Vec<(String, String)>> {
    let Kind::Map(entries) = &node.kind else {
        r.error(
            node.pos,
            format!("{what} must be a mapping, got {}", node.type_name()),
        );
        return None;
    };
    let before = r.count();
    let mut out = Vec::new();
    for (k, v) in entries {
        let key = string(r, k, &format!("a key of {what}"));
        let value = match &v.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => v.key_text(),
            _ => {
                r.error(
                    v.pos,
                    format!("a value of {what} must be a string, got {}", v.type_name()),
                );
                None
            }
        };
        if let (Some(k), Some(v)) = (key, value) {
            out.push((k.to_owned(), v));
        }
    }
    (r.count() == before).then_some(out)
}

/// A duration: `90s`, `15m`, `24h`, `1h30m`, `2d`, or a whole number of seconds.
pub fn duration(r: &mut Reporter<'_>, node: &Node, what: &str) -> Option<Duration> {
    let parsed = match &node.kind {
        Kind::Int(i) if *i >= 0 => Some(Duration::from_secs(*i as u64)),
        Kind::Str(s) => parse_duration(s),
        _ => None,
    };
    if parsed.is_none() {
        r.error(
            node.pos,
            format!("{what} must be a duration such as `30s`, `15m`, `24h` or `1h30m`"),
        );
    }
    parsed
}

/// A duration within bounds, with a message naming them.
pub fn duration_within(
    r: &mut Reporter<'_>,
    node: &Node,
    what: &str,
    min: Duration,
    max: Duration,
) -> Option<Duration> {
    let d = duration(r, node, what)?;
    if d < min || d > max {
        r.error(
            node.pos,
            format!(
                "{what} must be between {} and {}",
                format_duration(min),
                format_duration(max)
            ),
        );
        return None;
    }
    Some(d)
}

/// Parses `1h30m`-style durations.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut saw_unit = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit: u64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                // Milliseconds round up to the next second only when nothing else is given.
                let n: u64 = num.parse().ok()?;
                num.clear();
                saw_unit = true;
                total = total.checked_add(n.div_ceil(1000))?;
                continue;
            }
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let n: u64 = num.parse().ok()?;
        num.clear();
        saw_unit = true;
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !num.is_empty() {
        if saw_unit {
            return None;
        }
        total = num.parse().ok()?;
    }
    Some(Duration::from_secs(total))
}

/// `90s` → `1m30s`
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("5 minutes"), None);
        assert_eq!(parse_duration("1h30"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("-5s"), None);
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(86400)), "1d");
    }
}
