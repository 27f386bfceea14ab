//! The small JSONPath subset EventBridge accepts in `input_path` and `input_paths`.
//!
//! Grammar (byte offsets of every error are reported in [`PathError`]):
//!
//! ```text
//! path     = "$" segment*
//! segment  = "." name | ".*" | "[" index "]" | "[*]" | "['" text "']" | "[\"" text "\"]"
//! name     = one or more characters other than . [ ] * ' " \ and whitespace or control characters
//! index    = one or more ASCII digits (a non-negative array index)
//! text     = any characters; \\ and \' or \" escape the backslash and the quote
//! ```
//!
//! Decisions on points AWS does not document:
//! - Bracket-quoted names (`$['detail-type']`) are accepted even though the AWS documentation says
//!   `InputPathsMap` does not support them: they are the only way to reach keys containing dots or
//!   spaces, and accepting more than AWS does not break configurations written for AWS.
//! - Dot names are permissive: anything but the structural characters listed above, so keys such
//!   as `a-b_c`, `a/b`, `ns:key`, `@type` or `$ref` work without brackets.
//! - Negative indices (`[-1]`), slices, unions, filters and recursive descent (`..`) are rejected.
//! - Paths are at most 256 characters long (the AWS `InputPath` limit), counted in characters.
//! - A path containing a wildcard (`[*]` or `.*`, both meaning "every element of an array or every
//!   value of an object") always selects a JSON array holding the matches in document order, which
//!   is empty when nothing matches; a path without wildcard selects one value or nothing.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use thiserror::Error;

/// Maximum length of a path, in characters (the AWS `InputPath` limit).
pub const MAX_PATH_CHARS: usize = 256;

/// A path that failed to compile: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid JSONPath at offset {offset}: {message}")]
pub struct PathError {
    /// Byte offset in the path text of the character the error is about.
    pub offset: usize,
    /// Lowercase explanation that says what to write instead, without a trailing period.
    pub message: String,
}

impl PathError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        PathError {
            offset,
            message: message.into(),
        }
    }
}

/// One step of a compiled path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// An object member.
    Name(Box<str>),
    /// An array element.
    Index(usize),
    /// Every array element or every object value.
    Wildcard,
}

/// A compiled EventBridge JSONPath such as `$.detail.items[0].id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: Box<str>,
    segments: Box<[Segment]>,
    singular: bool,
}

impl JsonPath {
    /// Compiles `text`, reporting the byte offset of the first problem.
    pub fn parse(text: &str) -> Result<JsonPath, PathError> {
        check_length(text)?;
        let segments = Parser::new(text).parse()?;
        let singular = !segments.contains(&Segment::Wildcard);
        Ok(JsonPath {
            text: text.into(),
            segments: segments.into_boxed_slice(),
            singular,
        })
    }

    /// Applies the path to `event`.
    ///
    /// A path without wildcard borrows the selected value (`None` when it is missing). A path
    /// with wildcards returns an owned array of the matches (possibly empty), never `None`.
    pub fn select<'a>(&self, event: &'a Value) -> Option<Cow<'a, Value>> {
        if self.singular {
            select_one(&self.segments, event).map(Cow::Borrowed)
        } else {
            let mut matches = Vec::new();
            collect(&self.segments, event, &mut matches);
            Some(Cow::Owned(Value::Array(matches)))
        }
    }

    /// The path as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path selects at most one value (it has no wildcard).
    #[must_use]
    pub fn is_singular(&self) -> bool {
        self.singular
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for JsonPath {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        JsonPath::parse(text)
    }
}

/// Rejects paths longer than [`MAX_PATH_CHARS`], pointing at the first character too many.
fn check_length(text: &str) -> Result<(), PathError> {
    match text.char_indices().nth(MAX_PATH_CHARS) {
        Some((offset, _)) => Err(PathError::new(
            offset,
            format!("path is longer than {MAX_PATH_CHARS} characters: shorten it"),
        )),
        None => Ok(()),
    }
}

/// Follows a wildcard-free path without copying anything.
fn select_one<'a>(segments: &[Segment], value: &'a Value) -> Option<&'a Value> {
    segments
        .iter()
        .try_fold(value, |current, segment| match (segment, current) {
            (Segment::Name(name), Value::Object(map)) => map.get(&**name),
            (Segment::Index(index), Value::Array(items)) => items.get(*index),
            _ => None,
        })
}

/// Pushes a copy of every value `segments` reaches from `value` onto `out`, in document order.
fn collect(segments: &[Segment], value: &Value, out: &mut Vec<Value>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(value.clone());
        return;
    };
    match (first, value) {
        (Segment::Name(name), Value::Object(map)) => {
            if let Some(child) = map.get(&**name) {
                collect(rest, child, out);
            }
        }
        (Segment::Index(index), Value::Array(items)) => {
            if let Some(child) = items.get(*index) {
                collect(rest, child, out);
            }
        }
        (Segment::Wildcard, Value::Array(items)) => {
            for child in items {
                collect(rest, child, out);
            }
        }
        (Segment::Wildcard, Value::Object(map)) => {
            for child in map.values() {
                collect(rest, child, out);
            }
        }
        _ => {}
    }
}

/// An error at `offset`.
fn fail<T>(offset: usize, message: impl Into<String>) -> Result<T, PathError> {
    Err(PathError::new(offset, message))
}

/// Whether `c` may appear in a dot-notation name.
fn is_name_char(c: char) -> bool {
    !matches!(c, '.' | '[' | ']' | '*' | '\'' | '"' | '\\') && !c.is_whitespace() && !c.is_control()
}

/// Recursive-descent parser over the path text.
struct Parser<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Self {
        Parser { text, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..)?.chars().next()
    }

    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    fn parse(mut self) -> Result<Vec<Segment>, PathError> {
        if self.peek() != Some('$') {
            return fail(0, "a path must start with $: write for example $.detail");
        }
        self.pos = 1;
        let mut segments = Vec::new();
        while let Some(c) = self.peek() {
            let segment = match c {
                '.' => self.dot_segment()?,
                '[' => self.bracket_segment()?,
                _ => return self.unexpected_after_segment(c),
            };
            segments.push(segment);
        }
        Ok(segments)
    }

    fn unexpected_after_segment<T>(&self, c: char) -> Result<T, PathError> {
        let message = if c.is_whitespace() {
            "unexpected whitespace: remove it, or quote names with spaces as ['a b']".to_owned()
        } else {
            format!("unexpected {c:?}: write .name or [index] after $ and after each segment")
        };
        fail(self.pos, message)
    }

    fn dot_segment(&mut self) -> Result<Segment, PathError> {
        let dot = self.pos;
        self.pos += 1;
        match self.peek() {
            None => fail(
                dot,
                "trailing dot: add a field name after it or remove the dot",
            ),
            Some('.') => fail(
                dot,
                "recursive descent (..) is not supported: write the full path such as $.a.b",
            ),
            Some('[') => fail(
                dot,
                "unexpected dot before [: write $.a[0] or $['a'] without the dot",
            ),
            Some('*') => self.star_after_dot(),
            Some(_) => self.name(),
        }
    }

    fn star_after_dot(&mut self) -> Result<Segment, PathError> {
        self.pos += 1;
        match self.peek() {
            Some(c) if is_name_char(c) => fail(
                self.pos - 1,
                "* must be a whole segment: write .* for every value, or ['a*b'] for a name with *",
            ),
            _ => Ok(Segment::Wildcard),
        }
    }

    fn name(&mut self) -> Result<Segment, PathError> {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|c| is_name_char(*c)) {
            self.bump(c);
        }
        match self.peek() {
            Some('*') => fail(
                self.pos,
                "* must be a whole segment: write .* for every value, or ['a*b'] for a name with *",
            ),
            Some(c) if start == self.pos || !matches!(c, '.' | '[') => fail(
                self.pos,
                format!("{c:?} is not allowed in a field name: quote the name as ['...']"),
            ),
            _ => Ok(Segment::Name(
                self.text.get(start..self.pos).unwrap_or_default().into(),
            )),
        }
    }

    fn bracket_segment(&mut self) -> Result<Segment, PathError> {
        let open = self.pos;
        self.pos += 1;
        let segment = match self.peek() {
            None => return unclosed(open),
            Some(quote @ ('\'' | '"')) => self.quoted_name(open, quote)?,
            Some('*') => {
                self.pos += 1;
                Segment::Wildcard
            }
            Some(c) if c.is_ascii_digit() => self.index(open)?,
            Some(c) => return bad_bracket(open, c),
        };
        match self.peek() {
            Some(']') => {
                self.pos += 1;
                Ok(segment)
            }
            None => unclosed(open),
            Some(':') => slice_unsupported(open),
            Some(',') => fail(
                self.pos,
                "unions are not supported: use one index or name per bracket, or [*] for all",
            ),
            Some(c) => fail(
                self.pos,
                format!("unexpected {c:?}: close the bracket with ]"),
            ),
        }
    }

    fn index(&mut self, open: usize) -> Result<Segment, PathError> {
        let start = self.pos;
        let mut index: usize = 0;
        while let Some(digit) = self.peek().and_then(|c| c.to_digit(10)) {
            index = index
                .checked_mul(10)
                .and_then(|i| i.checked_add(digit as usize))
                .ok_or_else(|| {
                    PathError::new(start, "array index is too large: use a smaller index")
                })?;
            self.pos += 1;
        }
        match self.peek() {
            Some(c) if c.is_alphanumeric() || c == '_' => bad_bracket(open, c),
            _ => Ok(Segment::Index(index)),
        }
    }

    fn quoted_name(&mut self, open: usize, quote: char) -> Result<Segment, PathError> {
        self.pos += 1;
        let mut name = String::new();
        loop {
            match self.peek() {
                None => return unclosed_quote(open, quote),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(Segment::Name(name.into_boxed_str()));
                }
                Some('\\') => {
                    let escape = self.pos;
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ ('\\' | '\'' | '"')) => {
                            name.push(c);
                            self.pos += 1;
                        }
                        None => return unclosed_quote(open, quote),
                        Some(_) => {
                            return fail(
                                escape,
                                r#"unsupported escape: only \\, \' and \" are allowed in quoted names"#,
                            );
                        }
                    }
                }
                Some(c) => {
                    name.push(c);
                    self.bump(c);
                }
            }
        }
    }
}

/// A `[` at `open` is never closed.
fn unclosed<T>(open: usize) -> Result<T, PathError> {
    fail(
        open,
        "unclosed bracket: add ] after the index or quoted name",
    )
}

/// A quoted name in the bracket at `open` is never closed.
fn unclosed_quote<T>(open: usize, quote: char) -> Result<T, PathError> {
    fail(open, format!("unclosed quoted name: end it with {quote}]"))
}

/// A slice in the bracket at `open`.
fn slice_unsupported<T>(open: usize) -> Result<T, PathError> {
    fail(
        open,
        "array slices are not supported: select one element such as [0] or all with [*]",
    )
}

/// The bracket at `open` holds `c` where an index, `*` or a quote should start.
fn bad_bracket<T>(open: usize, c: char) -> Result<T, PathError> {
    match c {
        '?' => fail(
            open,
            "filter expressions are not supported: select the array with [*] and filter in the rule pattern",
        ),
        '-' => fail(
            open,
            "negative indices are not supported: use a non-negative index such as [0]",
        ),
        ':' => slice_unsupported(open),
        ']' => fail(
            open,
            "empty brackets: write an index such as [0], [*] or a quoted name such as ['a']",
        ),
        _ => fail(open, "unquoted name in brackets: write ['name'] or .name"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_paths() {
        let cases: &[(&str, &[Segment])] = &[
            ("$", &[]),
            ("$.a", &[Segment::Name("a".into())]),
            (
                "$.a.b",
                &[Segment::Name("a".into()), Segment::Name("b".into())],
            ),
            ("$.a-b_c", &[Segment::Name("a-b_c".into())]),
            ("$.a/b:c@d", &[Segment::Name("a/b:c@d".into())]),
            ("$.$ref", &[Segment::Name("$ref".into())]),
            ("$.é", &[Segment::Name("é".into())]),
            ("$.0", &[Segment::Name("0".into())]),
            ("$.a[0]", &[Segment::Name("a".into()), Segment::Index(0)]),
            ("$.a[12]", &[Segment::Name("a".into()), Segment::Index(12)]),
            ("$[3]", &[Segment::Index(3)]),
            ("$.a[*]", &[Segment::Name("a".into()), Segment::Wildcard]),
            ("$.a.*", &[Segment::Name("a".into()), Segment::Wildcard]),
            ("$.*", &[Segment::Wildcard]),
            ("$[*]", &[Segment::Wildcard]),
            ("$['a b']", &[Segment::Name("a b".into())]),
            ("$[\"a.b\"]", &[Segment::Name("a.b".into())]),
            ("$['']", &[Segment::Name("".into())]),
            (r"$['it\'s']", &[Segment::Name("it's".into())]),
            (r#"$["a\\b"]"#, &[Segment::Name(r"a\b".into())]),
            ("$['a]b']", &[Segment::Name("a]b".into())]),
            (
                "$.a['b'][0].c",
                &[
                    Segment::Name("a".into()),
                    Segment::Name("b".into()),
                    Segment::Index(0),
                    Segment::Name("c".into()),
                ],
            ),
            (
                "$.detail.items[*].id",
                &[
                    Segment::Name("detail".into()),
                    Segment::Name("items".into()),
                    Segment::Wildcard,
                    Segment::Name("id".into()),
                ],
            ),
        ];
        for (text, expected) in cases {
            let path = JsonPath::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(&*path.segments, *expected, "{text}");
            assert_eq!(path.as_str(), *text);
            assert_eq!(path.to_string(), *text);
        }
    }

    #[test]
    fn invalid_paths() {
        let long = format!("$.{}", "a".repeat(255));
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "must start with $"),
            ("a.b", 0, "must start with $"),
            (".a", 0, "must start with $"),
            ("$a", 1, "unexpected 'a'"),
            ("$.", 1, "trailing dot"),
            ("$.a.", 3, "trailing dot"),
            ("$..a", 1, "recursive descent"),
            ("$.a..b", 3, "recursive descent"),
            ("$.a.[0]", 3, "dot before ["),
            ("$.a[", 3, "unclosed bracket"),
            ("$.a[0", 3, "unclosed bracket"),
            ("$.a[*", 3, "unclosed bracket"),
            ("$.a['b'", 3, "unclosed bracket"),
            ("$.a['b", 3, "unclosed quoted name"),
            ("$.a[\"b'", 3, "end it with \"]"),
            ("$.a[]", 3, "empty brackets"),
            ("$.a[-1]", 3, "negative indices"),
            ("$.a[1:2]", 3, "slices"),
            ("$.a[:2]", 3, "slices"),
            ("$.a[0,1]", 5, "unions"),
            ("$.a[?(@.b)]", 3, "filter expressions"),
            ("$.a[b]", 3, "unquoted name"),
            ("$.a[0b]", 3, "unquoted name"),
            ("$.a[0 ]", 5, "close the bracket"),
            ("$.a[99999999999999999999999]", 4, "too large"),
            ("$.a b", 3, "' ' is not allowed"),
            ("$. a", 2, "' ' is not allowed"),
            (" $.a", 0, "must start with $"),
            ("$.a ", 3, "' ' is not allowed"),
            ("$ ", 1, "whitespace"),
            ("$.a'b", 3, "'\\'' is not allowed"),
            ("$.a*", 3, "whole segment"),
            ("$.*a", 2, "whole segment"),
            ("$.a]", 3, "']' is not allowed"),
            (r"$['a\n']", 4, "unsupported escape"),
            (&long, 256, "longer than 256"),
        ];
        for (text, offset, fragment) in cases {
            let error = JsonPath::parse(text).expect_err(text);
            assert_eq!(error.offset, *offset, "{text}: {error}");
            assert!(error.message.contains(fragment), "{text}: {error}");
            assert!(!error.message.ends_with('.'), "{text}: {error}");
            assert!(
                error.message.contains(':'),
                "{text}: says what to write: {error}"
            );
        }
    }

    #[test]
    fn longest_allowed_path() {
        let text = format!("$.{}", "é".repeat(254));
        assert!(JsonPath::parse(&text).is_ok());
    }

    #[test]
    fn selects_singular_paths_by_reference() {
        let event = json!({"detail": {"a-b": [10, {"c": "x"}], "n": null}, "k.k": 1});
        let cases: &[(&str, Option<Value>)] = &[
            ("$", Some(event.clone())),
            ("$.detail.a-b[0]", Some(json!(10))),
            ("$.detail.a-b[1].c", Some(json!("x"))),
            ("$.detail.n", Some(Value::Null)),
            ("$['k.k']", Some(json!(1))),
            ("$.detail.missing", None),
            ("$.detail.a-b[2]", None),
            ("$.detail.a-b.c", None),
            ("$.detail[0]", None),
            ("$.detail.n.x", None),
        ];
        for (text, expected) in cases {
            let path = JsonPath::parse(text).unwrap();
            assert!(path.is_singular());
            let selected = path.select(&event);
            assert!(matches!(selected, None | Some(Cow::Borrowed(_))), "{text}");
            assert_eq!(selected.map(Cow::into_owned), *expected, "{text}");
        }
    }

    #[test]
    fn wildcards_collect_matches_into_an_array() {
        let event = json!({
            "detail": {
                "items": [{"id": 1}, {"other": 2}, {"id": 3}],
                "map": {"x": "a", "y": ["b"]},
                "scalar": 5
            }
        });
        let cases: &[(&str, Value)] = &[
            ("$.detail.items[*].id", json!([1, 3])),
            ("$.detail.items.*.id", json!([1, 3])),
            ("$.detail.map.*", json!(["a", ["b"]])),
            ("$.detail.map[*]", json!(["a", ["b"]])),
            ("$.detail.map.*[0]", json!(["b"])),
            ("$.detail.scalar[*]", json!([])),
            ("$.detail.missing[*]", json!([])),
            ("$.*.scalar", json!([5])),
        ];
        for (text, expected) in cases {
            let path = JsonPath::parse(text).unwrap();
            assert!(!path.is_singular());
            assert_eq!(
                path.select(&event).map(Cow::into_owned),
                Some(expected.clone()),
                "{text}"
            );
        }
    }

    #[test]
    fn from_str_parses() {
        let path: JsonPath = "$.a".parse().unwrap();
        assert_eq!(path.as_str(), "$.a");
        assert!("a".parse::<JsonPath>().is_err());
    }
}
