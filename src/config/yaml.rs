//! A YAML document as a tree of nodes that remember where they were written.
//!
//! serde-based YAML loaders report positions for syntax errors only; trigd reports every
//! semantic error (a bad pattern operator deep inside a rule, an unknown key, an invalid
//! schedule) at its `line:column`, so it builds this tree from the parser's events and
//! validates from it. Plain scalars are resolved with the YAML 1.2 core schema (`yes` is a
//! string, not a boolean).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A position in a file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    /// Where the node starts (for a quoted scalar: its opening quote).
    pub pos: Pos,
    /// For a one-line scalar, how many characters precede its value (1 for the opening quote
    /// of a quoted scalar), so that an offset inside the value maps to a column.
    inline: Option<u8>,
}

/// A node's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; duplicate keys are kept (callers decide what they mean).
    Map(Vec<(Node, Node)>),
}

/// A syntax error. `message` carries a hint for the usual cause where one is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    /// A short name of the node's type, for messages ("expected a list, got a string").
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) | Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// The position of the character at byte `offset` of a string scalar's value, when it can
    /// be known (one-line scalars); otherwise the node's own position.
    pub fn pos_at(&self, offset: usize) -> Pos {
        match (&self.kind, self.inline) {
            (Kind::Str(s), Some(shift)) => {
                let chars = s.get(..offset).map_or(0, |p| p.chars().count());
                Pos {
                    line: self.pos.line,
                    column: self.pos.column + usize::from(shift) + chars,
                }
            }
            _ => self.pos,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar as a key: strings as they are, other scalars as written.
    pub fn key_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Null => Some("null".to_owned()),
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Seq(_) | Kind::Map(_) => None,
        }
    }

    /// Converts to JSON. Duplicate mapping keys: the last one wins (as EventBridge does for
    /// patterns). Keys that are not scalars are refused.
    pub fn to_json(&self) -> Result<serde_json::Value, YamlError> {
        use serde_json::Value;
        Ok(match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| YamlError {
                    pos: self.pos,
                    message: format!("{f} cannot be represented in JSON"),
                })?,
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => {
                Value::Array(items.iter().map(Node::to_json).collect::<Result<_, _>>()?)
            }
            Kind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = k.key_text().ok_or_else(|| YamlError {
                        pos: k.pos,
                        message: "a mapping key must be a scalar".to_owned(),
                    })?;
                    map.insert(key, v.to_json()?);
                }
                Value::Object(map)
            }
        })
    }
}

/// Parses one YAML document. An empty file is `Null`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut builder = Builder::default();
    let mut docs = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let info = e.info();
            // The usual cause: `{route: GET /items/{id}}`, where YAML ends the flow mapping
            // at the first `}`.
            let hint = if info.contains("flow mapping") || info.contains("flow sequence") {
                "; inside `{...}` or `[...]`, a value holding `{`, `}`, `[`, `]` or `,` must be quoted, e.g. `{route: \"GET /items/{id}\"}`"
            } else {
                ""
            };
            YamlError {
                pos: Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                message: format!("{info}{hint}"),
            }
        })?;
        if let Event::DocumentStart(_) = event {
            docs += 1;
            if docs > 1 {
                return Err(YamlError {
                    pos: pos(&span),
                    message: "a file may hold one YAML document; put the rules of this one in another file"
                        .to_owned(),
                });
            }
        }
        builder.event(event, span)?;
    }
    Ok(builder.root.unwrap_or(Node {
        kind: Kind::Null,
        pos: Pos { line: 1, column: 1 },
        inline: None,
    }))
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// Deepest nesting accepted in a rule file.
const MAX_DEPTH: usize = 128;

#[derive(Default)]
struct Builder {
    stack: Vec<(Node, Option<usize>)>,
    /// A mapping key waiting for its value, per open mapping.
    pending_keys: Vec<Option<Node>>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let at = pos(&span);
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let one_line = span.start.line() == span.end.line();
                let inline = match style {
                    ScalarStyle::Plain if one_line => Some(0),
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted if one_line => Some(1),
                    _ => None,
                };
                let kind = if style == ScalarStyle::Plain && !forced_str {
                    resolve_plain(&value)
                } else {
                    Kind::Str(value.into_owned())
                };
                self.push_value(
                    Node {
                        kind,
                        pos: at,
                        inline,
                    },
                    Some(anchor),
                )
            }
            Event::SequenceStart(anchor, _) => self.open(Kind::Seq(Vec::new()), at, anchor),
            Event::MappingStart(anchor, _) => {
                self.pending_keys.push(None);
                self.open(Kind::Map(Vec::new()), at, anchor)
            }
            Event::SequenceEnd => self.close(),
            Event::MappingEnd => {
                self.pending_keys.pop();
                self.close()
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let mut node = node.clone();
                    node.pos = at;
                    self.push_value(node, None)
                }
                None => Err(YamlError {
                    pos: at,
                    message: "alias to an unknown anchor".to_owned(),
                }),
            },
            _ => Ok(()),
        }
    }

    fn open(&mut self, kind: Kind, at: Pos, anchor: usize) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError {
                pos: at,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        let anchor = (anchor > 0).then_some(anchor);
        self.stack.push((
            Node {
                kind,
                pos: at,
                inline: None,
            },
            anchor,
        ));
        Ok(())
    }

    fn close(&mut self) -> Result<(), YamlError> {
        match self.stack.pop() {
            Some((node, anchor)) => self.push_value(node, anchor),
            None => Ok(()),
        }
    }

    fn push_value(&mut self, node: Node, anchor: Option<usize>) -> Result<(), YamlError> {
        if let Some(id) = anchor.filter(|&a| a > 0) {
            self.anchors.insert(id, node.clone());
        }
        let Some((parent, _)) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut parent.kind {
            Kind::Seq(items) => items.push(node),
            Kind::Map(entries) => {
                let slot = self.pending_keys.last_mut().ok_or_else(|| YamlError {
                    pos: node.pos,
                    message: "internal: mapping without a key slot".to_owned(),
                })?;
                match slot.take() {
                    None => *slot = Some(node),
                    Some(key) => entries.push((key, node)),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(s: &str) -> Kind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    if is_int(s) {
        if let Ok(i) = s.parse::<i64>() {
            return Kind::Int(i);
        }
        if let Ok(f) = s.parse::<f64>() {
            return Kind::Float(f);
        }
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Kind::Int(i);
    }
    if let Some(oct) = s.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Kind::Int(i);
    }
    if is_float(s)
        && let Ok(f) = s.parse::<f64>()
    {
        return Kind::Float(f);
    }
    Kind::Str(s.to_owned())
}

fn is_int(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
                && (!int.is_empty() || !frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exp_ok = exp.is_none_or(|e| {
        let d = e.strip_prefix(['-', '+']).unwrap_or(e);
        !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_resolve_with_the_core_schema() {
        let n = parse("a: yes\nb: true\nc: 3\nd: 3.5\ne: ~\nf: '3'\ng: 0x1F\nh: 1e3\ni: .5\nj: Object Created\n").unwrap();
        let Kind::Map(entries) = n.kind else { panic!() };
        let kinds: Vec<&Kind> = entries.iter().map(|(_, v)| &v.kind).collect();
        assert_eq!(kinds[0], &Kind::Str("yes".into()));
        assert_eq!(kinds[1], &Kind::Bool(true));
        assert_eq!(kinds[2], &Kind::Int(3));
        assert_eq!(kinds[3], &Kind::Float(3.5));
        assert_eq!(kinds[4], &Kind::Null);
        assert_eq!(kinds[5], &Kind::Str("3".into()));
        assert_eq!(kinds[6], &Kind::Int(31));
        assert_eq!(kinds[7], &Kind::Float(1000.0));
        assert_eq!(kinds[8], &Kind::Float(0.5));
        assert_eq!(kinds[9], &Kind::Str("Object Created".into()));
    }

    #[test]
    fn positions_are_one_based() {
        let n = parse("rules:\n  - name: x\n    pattern: {source: [a]}\n").unwrap();
        let Kind::Map(entries) = &n.kind else {
            panic!()
        };
        let Kind::Seq(rules) = &entries[0].1.kind else {
            panic!()
        };
        assert_eq!(rules[0].pos, Pos { line: 2, column: 5 });
        let Kind::Map(rule) = &rules[0].kind else {
            panic!()
        };
        assert_eq!(rule[1].0.pos, Pos { line: 3, column: 5 });
        assert_eq!(
            rule[1].1.pos,
            Pos {
                line: 3,
                column: 14
            }
        );
    }

    #[test]
    fn anchors_and_aliases() {
        let n = parse("a: &x {k: [1]}\nb: *x\n").unwrap();
        let j = n.to_json().unwrap();
        assert_eq!(j, serde_json::json!({"a": {"k": [1]}, "b": {"k": [1]}}));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 2);
    }

    #[test]
    fn duplicate_keys_last_wins_in_json() {
        let n = parse("{l: [1], l: [2]}").unwrap();
        assert_eq!(n.to_json().unwrap(), serde_json::json!({"l": [2]}));
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(parse("").unwrap().kind, Kind::Null);
        assert_eq!(parse("# only a comment\n").unwrap().kind, Kind::Null);
    }
}
