//! `input_template`: compiled once, rendered per event with AWS's substitution rules.
//!
//! A placeholder is `<` name `>` where the name is one or more of `A-Z a-z 0-9 _ . -`; any other
//! `<` (as in `a < b`, `<<`, `</b>` or `<a b>`) is literal text.
//!
//! A template whose first non-whitespace character is `{` or `[` is a *JSON template*: each
//! placeholder is either a whole JSON value (outside string literals) or part of a string literal,
//! and the template must be valid JSON once unquoted placeholders are replaced by `null` and quoted
//! ones by nothing. Anything else is a *free-text template*, delivered as written (including any
//! surrounding quote characters and newlines).
//!
//! | value              | JSON, unquoted    | JSON, inside a string | free text                |
//! |--------------------|-------------------|-----------------------|--------------------------|
//! | string `abc`       | `"abc"` (escaped) | `abc` (raw)           | `abc`                    |
//! | object / array     | compact JSON      | compact JSON (raw)    | compact JSON without `"` |
//! | number, bool, null | JSON text         | JSON text             | JSON text                |
//! | missing path       | `""`              | nothing               | nothing                  |
//!
//! Raw insertion inside strings can break the JSON (a value holding `"`, `\`, a control character,
//! or an object or array): the rendered text is then checked and [`RenderError::InvalidJson`] is
//! returned, where AWS silently drops the event. Values made only of other characters are known to
//! keep the JSON valid and skip that check. Values are not escaped (AWS documents the same), so
//! a value can also inject JSON that stays valid (`a","b":"c`): that is delivered.
//!
//! Reserved variables need no `input_paths` entry: `<aws.events.rule-name>`,
//! `<aws.events.rule-arn>` and `<aws.events.event.ingestion-time>` are strings;
//! `<aws.events.event>` (the envelope without `detail`, with the key `detailType` as AWS writes it)
//! and `<aws.events.event.json>` (the whole event) may only be unquoted values of a JSON template.

use std::borrow::Cow;
use std::fmt::{self, Write};

use serde_json::Value;
use thiserror::Error;

use super::{RenderContext, RenderError};

/// Maximum length of a template, in characters (the AWS `InputTemplate` limit).
pub const MAX_TEMPLATE_CHARS: usize = 8192;

/// Names of the reserved variables, usable as placeholders without an `input_paths` entry.
pub const RESERVED_NAMES: [&str; 5] = [
    "aws.events.rule-name",
    "aws.events.rule-arn",
    "aws.events.event",
    "aws.events.event.json",
    "aws.events.event.ingestion-time",
];

/// Envelope fields copied into `<aws.events.event>`, with the key AWS uses for each.
const ENVELOPE_FIELDS: [(&str, &str); 8] = [
    ("version", "version"),
    ("id", "id"),
    ("detail-type", "detailType"),
    ("source", "source"),
    ("account", "account"),
    ("time", "time"),
    ("region", "region"),
    ("resources", "resources"),
];

/// How many bytes of rendered output to show on each side of a JSON error.
const EXCERPT_RADIUS: usize = 40;

/// A template that failed to compile: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid input_template at offset {offset}: {message}")]
pub struct TemplateError {
    /// Byte offset in the template text of the character the error is about.
    pub offset: usize,
    /// Lowercase explanation that says what to write instead, without a trailing period.
    pub message: String,
}

impl TemplateError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        TemplateError {
            offset,
            message: message.into(),
        }
    }
}

/// What a template is filled from for one event.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The value of each `input_paths` entry for this event, in the order of the `names` given
    /// to [`Template::parse`]; `None` when the path selects nothing.
    pub paths: &'a [Option<Cow<'a, Value>>],
    /// The matched event, for `<aws.events.event>` and `<aws.events.event.json>`.
    pub event: &'a Value,
    /// Rule name, rule ARN and ingestion time.
    pub context: RenderContext<'a>,
}

/// A reserved variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reserved {
    RuleName,
    RuleArn,
    Event,
    EventJson,
    IngestionTime,
}

impl Reserved {
    fn from_name(name: &str) -> Option<Reserved> {
        const ALL: [Reserved; 5] = [
            Reserved::RuleName,
            Reserved::RuleArn,
            Reserved::Event,
            Reserved::EventJson,
            Reserved::IngestionTime,
        ];
        RESERVED_NAMES
            .iter()
            .zip(ALL)
            .find_map(|(reserved, variable)| (*reserved == name).then_some(variable))
    }

    fn is_json_only(self) -> bool {
        matches!(self, Reserved::Event | Reserved::EventJson)
    }
}

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Index into [`Values::paths`].
    Path(usize),
    Reserved(Reserved),
}

/// Where a placeholder sits, which decides how its value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// A whole value of a JSON template.
    JsonValue,
    /// Inside a string literal of a JSON template.
    JsonString,
    /// Anywhere in a free-text template.
    Text,
}

/// A piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    Slot { source: Source, position: Position },
}

/// A compiled `input_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: Box<str>,
    json: bool,
    parts: Box<[Part]>,
    path_count: usize,
}

impl Template {
    /// Compiles `text`; `names` are the `input_paths` names defined for the target, in the order
    /// their values will be given in [`Values::paths`].
    ///
    /// Fails, with the byte offset of the problem, when the template is empty or longer than
    /// [`MAX_TEMPLATE_CHARS`], uses an undefined placeholder, uses a placeholder as an object key,
    /// puts `<aws.events.event>` or `<aws.events.event.json>` anywhere but as a JSON value, or is a
    /// JSON template that is not valid JSON.
    pub fn parse(text: &str, names: &[&str]) -> Result<Template, TemplateError> {
        check_length(text)?;
        let json = is_json_template(text);
        let parts = Scanner::new(text, names, json).scan()?;
        if json {
            check_json_shape(text, &parts)?;
        }
        Ok(Template {
            text: text.into(),
            json,
            parts: parts.into_boxed_slice(),
            path_count: names.len(),
        })
    }

    /// Fills the template for one event.
    ///
    /// Fails when `values.paths` does not hold one entry per name given to [`Template::parse`],
    /// or when a JSON template renders invalid JSON.
    pub fn render(&self, values: &Values<'_>) -> Result<String, RenderError> {
        if values.paths.len() != self.path_count {
            return Err(RenderError::ValueCount {
                expected: self.path_count,
                got: values.paths.len(),
            });
        }
        let mut out = String::with_capacity(self.text.len() + 64);
        let mut needs_check = false;
        for part in &*self.parts {
            match part {
                Part::Literal(literal) => out.push_str(literal),
                Part::Slot { source, position } => {
                    needs_check |= push_slot(&mut out, *source, *position, values);
                }
            }
        }
        if needs_check {
            check_rendered_json(&out)?;
        }
        Ok(out)
    }

    /// The template as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a JSON template (first non-whitespace character `{` or `[`).
    #[must_use]
    pub fn is_json(&self) -> bool {
        self.json
    }
}

/// Enforces 1..=[`MAX_TEMPLATE_CHARS`] characters.
fn check_length(text: &str) -> Result<(), TemplateError> {
    if text.is_empty() {
        return Err(TemplateError::new(
            0,
            "template is empty: write at least one character",
        ));
    }
    match text.char_indices().nth(MAX_TEMPLATE_CHARS) {
        Some((offset, _)) => Err(TemplateError::new(
            offset,
            format!("template is longer than {MAX_TEMPLATE_CHARS} characters: shorten it"),
        )),
        None => Ok(()),
    }
}

/// Whether the first non-whitespace character is `{` or `[`.
fn is_json_template(text: &str) -> bool {
    matches!(
        text.trim_start_matches(is_json_whitespace)
            .as_bytes()
            .first(),
        Some(b'{' | b'[')
    )
}

fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// The placeholder name if a placeholder starts at byte `at` (which holds `<`).
fn placeholder_at(text: &str, at: usize) -> Option<&str> {
    let rest = text.get(at + 1..)?;
    let len = rest.bytes().take_while(|b| is_name_byte(*b)).count();
    rest.get(..len)
        .filter(|name| !name.is_empty() && rest.as_bytes().get(len) == Some(&b'>'))
}

/// Whether the next non-whitespace character at or after `at` is `:` (an object key ended).
fn followed_by_colon(text: &str, at: usize) -> bool {
    text.get(at..)
        .map(|rest| rest.trim_start_matches(is_json_whitespace))
        .is_some_and(|rest| rest.starts_with(':'))
}

/// Splits a template into literals and placeholders, checking each placeholder.
struct Scanner<'t> {
    text: &'t str,
    names: &'t [&'t str],
    json: bool,
    parts: Vec<Part>,
    literal_start: usize,
    /// Offset of the first placeholder of the string literal being scanned, if any.
    string_placeholder: Option<usize>,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str, names: &'t [&'t str], json: bool) -> Self {
        Scanner {
            text,
            names,
            json,
            parts: Vec::new(),
            literal_start: 0,
            string_placeholder: None,
        }
    }

    fn scan(mut self) -> Result<Vec<Part>, TemplateError> {
        let bytes = self.text.as_bytes();
        let mut in_string = false;
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            i = match b {
                b'"' if self.json => {
                    in_string = !in_string;
                    if !in_string {
                        self.end_string(i + 1)?;
                    }
                    i + 1
                }
                b'\\' if self.json && in_string => self.escape(i)?,
                b'<' => self.placeholder(i, in_string)?,
                _ => i + 1,
            };
        }
        self.flush(self.text.len());
        Ok(self.parts)
    }

    /// Checks `\u` escapes (so a placeholder cannot split one) and skips the escaped character.
    fn escape(&self, at: usize) -> Result<usize, TemplateError> {
        let bytes = self.text.as_bytes();
        if bytes.get(at + 1) == Some(&b'u') {
            let hex = bytes.get(at + 2..at + 6);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Err(TemplateError::new(
                    at,
                    r"invalid \u escape: write four hex digits such as \u00e9",
                ));
            }
            return Ok(at + 6);
        }
        Ok(at + 2)
    }

    /// Rejects placeholders inside a string literal that turns out to be an object key.
    fn end_string(&mut self, after: usize) -> Result<(), TemplateError> {
        match self.string_placeholder.take() {
            Some(offset) if followed_by_colon(self.text, after) => Err(self.key_error(offset)),
            _ => Ok(()),
        }
    }

    fn placeholder(&mut self, at: usize, in_string: bool) -> Result<usize, TemplateError> {
        let Some(name) = placeholder_at(self.text, at) else {
            return Ok(at + 1);
        };
        let end = at + name.len() + 2;
        let position = match (self.json, in_string) {
            (false, _) => Position::Text,
            (true, true) => Position::JsonString,
            (true, false) => Position::JsonValue,
        };
        let source = self.resolve(name, at, position)?;
        match position {
            Position::JsonValue if followed_by_colon(self.text, end) => {
                return Err(self.key_error(at));
            }
            Position::JsonString => {
                self.string_placeholder.get_or_insert(at);
            }
            _ => {}
        }
        self.flush(at);
        self.parts.push(Part::Slot { source, position });
        self.literal_start = end;
        Ok(end)
    }

    fn resolve(&self, name: &str, at: usize, position: Position) -> Result<Source, TemplateError> {
        if let Some(reserved) = Reserved::from_name(name) {
            return match position {
                Position::JsonString if reserved.is_json_only() => Err(TemplateError::new(
                    at,
                    format!(
                        "<{name}> can only be used as a JSON value, not inside a string: \
                         remove the quotes around it"
                    ),
                )),
                Position::Text if reserved.is_json_only() => Err(TemplateError::new(
                    at,
                    format!(
                        "<{name}> can only be used as a value in a JSON template: \
                         write a template starting with {{ or ["
                    ),
                )),
                _ => Ok(Source::Reserved(reserved)),
            };
        }
        match self.names.iter().position(|defined| *defined == name) {
            Some(index) => Ok(Source::Path(index)),
            None => Err(TemplateError::new(
                at,
                format!(
                    "undefined placeholder <{name}>: define it in input_paths or use one of {}",
                    RESERVED_NAMES
                        .map(|reserved| format!("<{reserved}>"))
                        .join(", ")
                ),
            )),
        }
    }

    fn key_error(&self, at: usize) -> TemplateError {
        let name = placeholder_at(self.text, at).unwrap_or_default();
        TemplateError::new(
            at,
            format!(
                "placeholder <{name}> is used as an object key: \
                 placeholders may only stand for values, write a fixed key"
            ),
        )
    }

    fn flush(&mut self, end: usize) {
        if let Some(literal) = self
            .text
            .get(self.literal_start..end)
            .filter(|l| !l.is_empty())
        {
            self.parts.push(Part::Literal(literal.into()));
        }
    }
}

/// A run of the dummy text built by [`check_json_shape`].
struct DummyPiece {
    /// Where the run starts in the dummy text.
    dummy_start: usize,
    /// Where what it stands for starts in the template.
    template_start: usize,
    /// Whether it stands for a placeholder (then it maps to the placeholder's start).
    placeholder: bool,
}

impl DummyPiece {
    /// The template offset of dummy offset `at`, which lies in this piece.
    fn template_offset(&self, at: usize) -> usize {
        if self.placeholder {
            self.template_start
        } else {
            self.template_start + (at - self.dummy_start)
        }
    }
}

/// Checks that a JSON template is valid JSON with unquoted placeholders read as `null` and
/// quoted ones as nothing, reporting the offset in the template.
fn check_json_shape(text: &str, parts: &[Part]) -> Result<(), TemplateError> {
    let mut dummy = String::with_capacity(text.len());
    let mut pieces = Vec::with_capacity(parts.len());
    let mut template_start = 0;
    for part in parts {
        let (replacement, width) = match part {
            Part::Literal(literal) => (&**literal, literal.len()),
            Part::Slot { position, .. } => {
                let width = placeholder_at(text, template_start).map_or(0, str::len) + 2;
                let null = *position == Position::JsonValue;
                (if null { "null" } else { "" }, width)
            }
        };
        pieces.push(DummyPiece {
            dummy_start: dummy.len(),
            template_start,
            placeholder: matches!(part, Part::Slot { .. }),
        });
        dummy.push_str(replacement);
        template_start += width;
    }
    let Err(error) = serde_json::from_str::<Value>(&dummy) else {
        return Ok(());
    };
    let at = error_offset(&dummy, &error);
    let offset = if error.is_eof() {
        text.len()
    } else {
        pieces
            .iter()
            .rev()
            .find(|piece| piece.dummy_start <= at)
            .map_or(0, |piece| piece.template_offset(at))
    };
    Err(TemplateError::new(
        text.floor_char_boundary(offset),
        format!(
            "template starts with {{ or [ but is not valid JSON ({}): fix the JSON, \
             or start the template with a quote to make it free text",
            describe(&error)
        ),
    ))
}

/// Byte offset in `text` of the character a `serde_json` error is about.
fn error_offset(text: &str, error: &serde_json::Error) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(error.line().saturating_sub(1))
        .map(str::len)
        .sum();
    // A column of 0 means the newline ending the previous line.
    text.floor_char_boundary((line_start + error.column()).saturating_sub(1))
}

/// A `serde_json` error message without its position, lowercase.
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    message.replace("EOF", "end of text")
}

/// Writes one placeholder's value; returns whether the output must be checked as JSON.
fn push_slot(out: &mut String, source: Source, position: Position, values: &Values<'_>) -> bool {
    let context = &values.context;
    match source {
        Source::Path(index) => {
            let value = values.paths.get(index).and_then(Option::as_deref);
            push_value(out, value, position)
        }
        Source::Reserved(Reserved::RuleName) => push_string(out, context.rule_name, position),
        Source::Reserved(Reserved::RuleArn) => push_string(out, context.rule_arn, position),
        Source::Reserved(Reserved::IngestionTime) => {
            push_string(out, context.ingestion_time, position)
        }
        Source::Reserved(Reserved::Event) => {
            push_envelope(out, values.event);
            position == Position::JsonString
        }
        Source::Reserved(Reserved::EventJson) => {
            push_json(out, values.event);
            position == Position::JsonString
        }
    }
}

/// Writes a selected value (or nothing selected) according to where it sits.
fn push_value(out: &mut String, value: Option<&Value>, position: Position) -> bool {
    match (value, position) {
        (None, Position::JsonValue) => {
            out.push_str("\"\"");
            false
        }
        (None, _) => false,
        (Some(Value::String(text)), _) => push_string(out, text, position),
        (Some(nested @ (Value::Object(_) | Value::Array(_))), Position::Text) => {
            // Writing to a String cannot fail.
            let _ = write!(WithoutQuotes(out), "{nested}");
            false
        }
        (Some(value), _) => {
            push_json(out, value);
            position == Position::JsonString && matches!(value, Value::Object(_) | Value::Array(_))
        }
    }
}

/// Writes a string value: JSON-encoded as a JSON value, raw elsewhere.
fn push_string(out: &mut String, text: &str, position: Position) -> bool {
    match position {
        Position::JsonValue => {
            push_json_string(out, text);
            false
        }
        Position::JsonString => {
            out.push_str(text);
            !is_plain_string_content(text)
        }
        Position::Text => {
            out.push_str(text);
            false
        }
    }
}

/// Whether `text` can sit raw inside a JSON string literal whatever surrounds it.
fn is_plain_string_content(text: &str) -> bool {
    !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Writes `value` as compact JSON.
fn push_json(out: &mut String, value: &Value) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
}

/// Writes `text` as a JSON string literal, escaping like `serde_json`.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c < ' ' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `<aws.events.event>`: the envelope fields present, without `detail`.
fn push_envelope(out: &mut String, event: &Value) {
    out.push('{');
    let present = ENVELOPE_FIELDS
        .iter()
        .filter_map(|(field, key)| event.get(field).map(|value| (key, value)));
    for (index, (key, value)) in present.enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_json_string(out, key);
        out.push(':');
        push_json(out, value);
    }
    out.push('}');
}

/// A writer that drops every `"`, for objects and arrays in free-text templates.
struct WithoutQuotes<'a>(&'a mut String);

impl Write for WithoutQuotes<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        text.split('"').for_each(|piece| self.0.push_str(piece));
        Ok(())
    }
}

/// Checks rendered output of a JSON template.
fn check_rendered_json(out: &str) -> Result<(), RenderError> {
    let Err(error) = serde_json::from_str::<Value>(out) else {
        return Ok(());
    };
    let offset = error_offset(out, &error);
    let start = out.floor_char_boundary(offset.saturating_sub(EXCERPT_RADIUS));
    let end = out.floor_char_boundary(offset + EXCERPT_RADIUS);
    Err(RenderError::InvalidJson {
        message: describe(&error),
        offset,
        excerpt: out.get(start..end).unwrap_or_default().to_owned(),
    })
}
