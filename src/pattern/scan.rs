//! A lazy JSON scanner: it reads an event's bytes once, validates them, and reports only the
//! scalars at paths some pattern names. Everything else is skipped without building values.
//!
//! This is what makes matching fast: building a `serde_json::Value` costs more than the whole
//! match. The scanner walks a [`PathTrie`] of the named paths alongside the JSON; a key the
//! trie does not know is skipped by a tight, iterative validator.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::eval::Leaf;
use super::reference::Step;

/// Deepest nesting of arrays and objects accepted in an event.
pub const MAX_DEPTH: usize = 512;

/// A malformed event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {what}")]
pub struct EventError {
    pub offset: usize,
    pub what: &'static str,
}

/// The paths named by patterns, as a trie of dot-separated segments.
///
/// Paths are compared after splitting on `.`, so the event key `state.status` under `detail`
/// reaches the same node as the nested keys `state` → `status`, as EventBridge does.
#[derive(Debug, Default)]
pub(super) struct PathTrie {
    nodes: Vec<PathNode>,
}

#[derive(Debug, Default)]
struct PathNode {
    children: Children,
    /// The field id when a pattern names this exact path.
    field: Option<u32>,
}

/// Most levels name a handful of keys, where a linear scan beats hashing; a level with many
/// (thousands of rules on distinct fields) switches to a hash map.
#[derive(Debug)]
enum Children {
    Few(Vec<(Box<[u8]>, u32)>),
    Many(FxHashMap<Box<[u8]>, u32>),
}

const FEW: usize = 8;

impl Default for Children {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl Children {
    #[inline]
    fn get(&self, key: &[u8]) -> Option<u32> {
        match self {
            Children::Few(v) => v.iter().find(|(k, _)| **k == *key).map(|(_, n)| *n),
            Children::Many(m) => m.get(key).copied(),
        }
    }

    fn insert(&mut self, key: &[u8], node: u32) {
        match self {
            Children::Few(v) if v.len() < FEW => v.push((key.into(), node)),
            Children::Few(v) => {
                let mut m: FxHashMap<Box<[u8]>, u32> = v.drain(..).collect();
                m.insert(key.into(), node);
                *self = Children::Many(m);
            }
            Children::Many(m) => {
                m.insert(key.into(), node);
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Children::Few(v) => v.is_empty(),
            Children::Many(m) => m.is_empty(),
        }
    }
}

/// The root of every trie.
pub(super) const ROOT: u32 = 0;

impl PathTrie {
    pub(super) fn new() -> Self {
        PathTrie {
            nodes: vec![PathNode::default()],
        }
    }

    /// Registers `path` as field `field`, returning the existing field id if it is known.
    pub(super) fn insert(&mut self, path: &str, field: u32) -> u32 {
        let mut node = ROOT;
        for seg in path.split('.') {
            node = match self.nodes[node as usize].children.get(seg.as_bytes()) {
                Some(n) => n,
                None => {
                    let id = self.nodes.len() as u32;
                    self.nodes.push(PathNode::default());
                    self.nodes[node as usize]
                        .children
                        .insert(seg.as_bytes(), id);
                    id
                }
            };
        }
        *self.nodes[node as usize].field.get_or_insert(field)
    }

    /// The node reached from `node` by an event key (which may itself contain dots).
    #[inline]
    fn step(&self, node: u32, key: &[u8]) -> Option<u32> {
        let children = &self.nodes[node as usize].children;
        if memchr::memchr(b'.', key).is_none() {
            return children.get(key);
        }
        let mut cur = node;
        for seg in key.split(|&b| b == b'.') {
            cur = self.nodes[cur as usize].children.get(seg)?;
        }
        Some(cur)
    }

    fn field(&self, node: u32) -> Option<u32> {
        self.nodes[node as usize].field
    }

    fn has_children(&self, node: u32) -> bool {
        !self.nodes[node as usize].children.is_empty()
    }
}

/// Receives the scalars found at named paths.
pub(super) trait Sink {
    /// A scalar at the path of `field`; `trail` names the array elements it sits in.
    fn leaf(&mut self, field: u32, leaf: Leaf<'_>, trail: &[Step]);
}

/// Buffers reused from one scan to the next.
#[derive(Debug, Default)]
pub(super) struct ScanScratch {
    stack: Vec<u8>,
    trail: Vec<Step>,
}

/// Scans `json`, which must hold one JSON object, reporting named scalars to `sink`.
pub(super) fn scan(
    json: &str,
    trie: &PathTrie,
    sink: &mut impl Sink,
    scratch: &mut ScanScratch,
) -> Result<(), EventError> {
    scratch.stack.clear();
    scratch.trail.clear();
    let mut s = Scanner {
        text: json,
        b: json.as_bytes(),
        pos: 0,
        arrays: 0,
        depth: 0,
        trie,
        scratch,
    };
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(s.fail("an event must be a JSON object"));
    }
    s.object(ROOT, sink)?;
    s.ws();
    if s.pos != s.b.len() {
        return Err(s.fail("trailing characters after the event"));
    }
    Ok(())
}

struct Scanner<'a, 's> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    arrays: u32,
    depth: usize,
    trie: &'s PathTrie,
    scratch: &'s mut ScanScratch,
}

/// Bytes that end the fast part of a string: quote, backslash, control characters.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
const THREES: u64 = 0x3030_3030_3030_3030;

/// Eight bytes at `i`, little-endian, when there are eight.
#[inline]
fn word_at(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The high bit set in each byte of `x` that is zero (exact for the lowest such byte).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The high bit set in each byte that ends the fast part of a string: `"`, `\\` or a control
/// character (exact for the lowest such byte).
#[inline]
fn string_stops(x: u64) -> u64 {
    zero_bytes(x ^ (ONES * u64::from(b'"')))
        | zero_bytes(x ^ (ONES * u64::from(b'\\')))
        | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS)
}

/// The end of the number starting at `i`, validated per the JSON grammar; on error, the
/// offset of the offending byte.
#[inline]
fn number_end(b: &[u8], mut i: usize) -> Result<usize, usize> {
    /// Skips ASCII digits, eight bytes at a time: a byte is a digit when its high nibble is 3
    /// and adding 6 keeps it there. The lowest flagged byte is the first non-digit (a carry
    /// can only corrupt the flags of bytes after it).
    #[inline]
    fn digits(b: &[u8], mut i: usize) -> usize {
        while let Some(x) = word_at(b, i) {
            let flags = ((x & HIGH_NIBBLES) ^ THREES)
                | ((x.wrapping_add(ONES * 6) & HIGH_NIBBLES) ^ THREES);
            if flags != 0 {
                return i + (flags.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    }
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(b, i + 1),
        _ => return Err(i),
    }
    if b.get(i) == Some(&b'.') {
        let end = digits(b, i + 1);
        if end == i + 1 {
            return Err(end);
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let end = digits(b, i);
        if end == i {
            return Err(end);
        }
        i = end;
    }
    Ok(i)
}

impl<'a> Scanner<'a, '_> {
    fn fail(&self, what: &'static str) -> EventError {
        EventError {
            offset: self.pos,
            what,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), EventError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.fail(what))
        }
    }

    fn enter(&mut self) -> Result<(), EventError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail("nesting is too deep"));
        }
        Ok(())
    }

    /// An object whose keys are looked up under trie node `node`; positioned at `{`.
    fn object(&mut self, node: u32, sink: &mut impl Sink) -> Result<(), EventError> {
        self.enter()?;
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.expect(b'"', "expected a string key")?;
            let key = self.string()?;
            self.ws();
            self.expect(b':', "expected `:` after a key")?;
            self.ws();
            match self.trie.step(node, key.as_bytes()) {
                Some(child) => self.value(child, sink)?,
                None => self.skip_value()?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.fail("expected `,` or `}` in an object")),
            }
        }
    }

    /// A value at trie node `node`.
    fn value(&mut self, node: u32, sink: &mut impl Sink) -> Result<(), EventError> {
        let leaf = match self.peek() {
            Some(b'{') => {
                return if self.trie.has_children(node) {
                    self.object(node, sink)
                } else {
                    self.skip_value()
                };
            }
            Some(b'[') => return self.array(node, sink),
            Some(b'"') => {
                self.pos += 1;
                let s = self.string()?;
                if let Some(field) = self.trie.field(node) {
                    sink.leaf(field, Leaf::Str(&s), &self.scratch.trail);
                }
                return Ok(());
            }
            Some(b'-' | b'0'..=b'9') => {
                let text = self.number()?;
                if self.trie.field(node).is_none() {
                    return Ok(());
                }
                Leaf::Num(text.parse::<f64>().unwrap_or(f64::NAN))
            }
            Some(b't') => {
                self.literal(b"true")?;
                Leaf::Bool(true)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Leaf::Bool(false)
            }
            Some(b'n') => {
                self.literal(b"null")?;
                Leaf::Null
            }
            _ => return Err(self.fail("expected a value")),
        };
        if let Some(field) = self.trie.field(node) {
            sink.leaf(field, leaf, &self.scratch.trail);
        }
        Ok(())
    }

    /// An array at trie node `node`: every element sits at the same path.
    fn array(&mut self, node: u32, sink: &mut impl Sink) -> Result<(), EventError> {
        self.enter()?;
        let id = self.arrays;
        self.arrays += 1;
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut index = 0u32;
        loop {
            self.scratch.trail.push((id, index));
            self.value(node, sink)?;
            self.scratch.trail.pop();
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                    index += 1;
                }
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.fail("expected `,` or `]` in an array")),
            }
        }
    }

    /// The rest of a string whose opening quote was consumed; borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, EventError> {
        let start = self.pos;
        self.skip_plain();
        match self.peek() {
            Some(b'"') => {
                let s = self.slice(start, self.pos)?;
                self.pos += 1;
                Ok(Cow::Borrowed(s))
            }
            Some(b'\\') => self.string_with_escapes(start),
            Some(_) => Err(self.fail("control character in a string")),
            None => Err(self.fail("unterminated string")),
        }
    }

    fn slice(&self, start: usize, end: usize) -> Result<&'a str, EventError> {
        self.text.get(start..end).ok_or(EventError {
            offset: start,
            what: "string is not valid UTF-8",
        })
    }

    #[inline]
    fn skip_plain(&mut self) {
        let b = self.b;
        let mut i = self.pos;
        while let Some(x) = word_at(b, i) {
            let stops = string_stops(x);
            if stops != 0 {
                self.pos = i + (stops.trailing_zeros() / 8) as usize;
                return;
            }
            i += 8;
        }
        while i < b.len() && !STRING_STOP[b[i] as usize] {
            i += 1;
        }
        self.pos = i;
    }

    fn string_with_escapes(&mut self, start: usize) -> Result<Cow<'a, str>, EventError> {
        let mut out = String::from(self.slice(start, self.pos)?);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    out.push(c);
                }
                Some(c) if c < 0x20 => return Err(self.fail("control character in a string")),
                Some(_) => {
                    let from = self.pos;
                    self.skip_plain();
                    out.push_str(self.slice(from, self.pos)?);
                }
                None => return Err(self.fail("unterminated string")),
            }
        }
    }

    /// One escape sequence after its backslash.
    fn escape(&mut self) -> Result<char, EventError> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let hi = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(self.fail("lone surrogate in a \\u escape"));
                    }
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(self.fail("lone surrogate in a \\u escape"));
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err(self.fail("lone surrogate in a \\u escape"));
                } else {
                    hi
                };
                return char::from_u32(code).ok_or(self.fail("invalid \\u escape"));
            }
            _ => return Err(self.fail("invalid escape in a string")),
        };
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, EventError> {
        let digits = self
            .b
            .get(self.pos..self.pos + 4)
            .ok_or(self.fail("invalid \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
            let x = (d as char)
                .to_digit(16)
                .ok_or(self.fail("invalid \\u escape"))?;
            v = v * 16 + x;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Skips a string whose opening quote was consumed, validating it as [`Self::string`]
    /// does (escapes, surrogate pairs, control characters) without building it.
    #[inline]
    fn skip_string(&mut self) -> Result<(), EventError> {
        loop {
            self.skip_plain();
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    // Validated as a named string's escapes are: a lone surrogate is refused
                    // here too, so that a skipped value is no less checked than a read one.
                    self.pos += 1;
                    self.escape()?;
                }
                Some(_) => return Err(self.fail("control character in a string")),
                None => return Err(self.fail("unterminated string")),
            }
        }
    }

    /// A number per the JSON grammar; returns its text.
    fn number(&mut self) -> Result<&'a str, EventError> {
        let start = self.pos;
        self.pos = number_end(self.b, start).map_err(|at| EventError {
            offset: at,
            what: "invalid number",
        })?;
        self.slice(start, self.pos)
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), EventError> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.fail("invalid literal"))
        }
    }

    /// Skips one whole value, validating it, without recursion.
    fn skip_value(&mut self) -> Result<(), EventError> {
        let base = self.scratch.stack.len();
        loop {
            // Expecting a value.
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        self.push_container(b'}', base)?;
                        self.key_colon()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        self.push_container(b']', base)?;
                        continue;
                    }
                }
                Some(b'"') => {
                    self.pos += 1;
                    self.skip_string()?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.pos = number_end(self.b, self.pos).map_err(|at| EventError {
                        offset: at,
                        what: "invalid number",
                    })?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => return Err(self.fail("expected a value")),
            }
            // After a value: close containers or move to the next element.
            loop {
                if self.scratch.stack.len() == base {
                    return Ok(());
                }
                self.ws();
                let close = self.scratch.stack[self.scratch.stack.len() - 1];
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.ws();
                        if close == b'}' {
                            self.key_colon()?;
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.pos += 1;
                        self.scratch.stack.pop();
                    }
                    _ => return Err(self.fail("expected `,` or the end of a container")),
                }
            }
        }
    }

    fn push_container(&mut self, close: u8, base: usize) -> Result<(), EventError> {
        if self.depth + self.scratch.stack.len() - base >= MAX_DEPTH {
            return Err(self.fail("nesting is too deep"));
        }
        self.scratch.stack.push(close);
        Ok(())
    }

    /// `"key" :` followed by whitespace, inside a skipped object.
    #[inline]
    fn key_colon(&mut self) -> Result<(), EventError> {
        self.expect(b'"', "expected a string key")?;
        self.skip_string()?;
        self.ws();
        self.expect(b':', "expected `:` after a key")?;
        self.ws();
        Ok(())
    }
}
