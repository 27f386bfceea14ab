//! A lazy JSON scanner: it reads an event's bytes once, validates them, and reports only the
//! scalars at paths some pattern names. Everything else is skipped without building values.
//!
//! This is what makes matching fast: building a `serde_json::Value` costs more than the whole
//! match. The scanner walks a [`PathTrie`] of the named paths alongside the JSON; a key the
//! trie does not know is skipped by a tight, iterative validator.
//!
//! Text that trigd serialised itself from a parsed value ([`ValidJson`]) was validated when it
//! was parsed, so there the scanner skips an unnamed array or object by its structure alone
//! ([`blocks`](super::blocks)), three times as fast; what it reads, it still checks.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use serde_json::Value;

use super::blocks;
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

/// JSON text that is valid by construction: serde_json wrote it from a parsed [`Value`]. The
/// matcher does not check its grammar again where no pattern looks
/// ([`Matcher::matches_valid`](super::Matcher::matches_valid)).
///
/// It can only be made from a `Value`, so text read from outside (a file, a request body)
/// cannot reach the matcher as trusted without having been parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidJson(String);

impl ValidJson {
    /// `value`, compact, its keys in their order.
    pub fn of(value: &Value) -> ValidJson {
        // Serialising a `Value` cannot fail: its map keys are strings and its numbers finite.
        ValidJson(serde_json::to_string(value).unwrap_or_default())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for ValidJson {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
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
        // Keys are short: a plain search beats a call into memchr's SIMD search here.
        if !key.contains(&b'.') {
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
    trail: Vec<Step>,
}

/// Scans `json`, which must hold one JSON object, reporting named scalars to `sink`. With
/// `TRUSTED`, `json` is known to be valid ([`ValidJson`]) and unnamed containers are skipped
/// without being checked.
pub(super) fn scan<const TRUSTED: bool>(
    json: &str,
    trie: &PathTrie,
    sink: &mut impl Sink,
    scratch: &mut ScanScratch,
) -> Result<(), EventError> {
    scratch.trail.clear();
    let mut s = Scanner::<TRUSTED> {
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

struct Scanner<'a, 's, const TRUSTED: bool> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    arrays: u32,
    depth: usize,
    trie: &'s PathTrie,
    scratch: &'s mut ScanScratch,
}

/// Bytes that end the plain part of a string: quote, backslash, control characters.
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

/// How far a string is followed byte by byte before its end is searched for.
const SHORT_STRING: usize = 16;

/// The end of the plain bytes of a string from `i`: the first quote, backslash or control
/// character, or the end of the input.
///
/// Most strings in events are short (keys, ids, names), and a byte loop ends them soonest: the
/// branch predictor runs ahead of it, where a word-at-a-time search waits on each word's load
/// and bit arithmetic before it knows where the next word is (measured: the byte loop skips the
/// citylots2 events' geometry ~30 % faster). A string still going after [`SHORT_STRING`] bytes
/// is long, and memchr's SIMD search finds its quote or backslash; the span before that is then
/// checked for control characters eight bytes at a time, a check that pipelines because every
/// word's position is known in advance.
#[inline(always)]
fn plain_end(b: &[u8], mut i: usize) -> usize {
    let short = b.len().min(i + SHORT_STRING);
    while i < short && !STRING_STOP[b[i] as usize] {
        i += 1;
    }
    if i < short || i == b.len() {
        return i;
    }
    let end = memchr::memchr2(b'"', b'\\', &b[i..]).map_or(b.len(), |n| i + n);
    first_control(b, i, end).unwrap_or(end)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The first control character (below 0x20) in `b[from..to]`, if any, byte by byte: for the
/// rare word that has one, and the tail.
#[cold]
#[inline(never)]
fn first_control_slow(b: &[u8], from: usize, to: usize) -> Option<usize> {
    (from..to).find(|&i| b[i] < 0x20)
}

/// The first control character (below 0x20) in `b[from..to]`, if any.
#[inline]
fn first_control(b: &[u8], from: usize, to: usize) -> Option<usize> {
    let span = &b[from..to];
    let mut words = span.chunks_exact(8);
    for (n, w) in words.by_ref().enumerate() {
        // `chunks_exact` gives eight bytes; the fallback is never used.
        let x = u64::from_le_bytes(w.try_into().unwrap_or([0xFF; 8]));
        // Nonzero when a byte is below 0x20 (exact for whether any is; bytes of 0x80 and
        // above, UTF-8's, never borrow into a flag).
        if x.wrapping_sub(ONES * 0x20) & !x & HIGHS != 0 {
            return first_control_slow(b, from + 8 * n, from + 8 * n + 8);
        }
    }
    let tail = to - words.remainder().len();
    first_control_slow(b, tail, to)
}

/// The end of a run of ASCII digits from `i`, followed byte by byte: for the short runs of
/// integer parts and exponents, a loop the branch predictor runs ahead of (as in
/// [`plain_end`]).
#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    i
}

const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
const THREES: u64 = 0x3030_3030_3030_3030;

/// The end of a run of ASCII digits from `i`, eight bytes at a time: for fractions, which are
/// long (floats are written with up to 17 significant digits), so that a few word steps beat
/// a byte loop and the misprediction at its end. Measured on the citylots2 coordinates: byte
/// loops everywhere skip ~18 % slower than this split.
///
/// A byte is a digit when its high nibble is 3 and adding 6 keeps it there. The lowest flagged
/// byte is the first non-digit (a carry can only corrupt the flags of bytes after it).
#[inline(always)]
fn fraction_digits(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        // Eight bytes by the slice's range; the fallback (all non-digits) is never used.
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let flags =
            ((x & HIGH_NIBBLES) ^ THREES) | ((x.wrapping_add(ONES * 6) & HIGH_NIBBLES) ^ THREES);
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    digits(b, i)
}

/// The end of the number starting at `i`, validated per the JSON grammar; on error, the
/// offset of the offending byte.
#[inline(always)]
fn number_end(b: &[u8], mut i: usize) -> Result<usize, usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(b, i + 1),
        _ => return Err(i),
    }
    if b.get(i) == Some(&b'.') {
        let end = fraction_digits(b, i + 1);
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

/// JSON's four whitespace bytes.
static WHITESPACE: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[b'\t' as usize] = true;
    t
};

/// The first byte from `i` that is not whitespace (or the end of the input).
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && WHITESPACE[b[i] as usize] {
        i += 1;
    }
    i
}

fn event_error(offset: usize, what: &'static str) -> EventError {
    EventError { offset, what }
}

/// Four hex digits at `i`: their value.
fn hex4(b: &[u8], i: usize) -> Result<u32, EventError> {
    let digits = b
        .get(i..i + 4)
        .ok_or(event_error(i, "invalid \\u escape"))?;
    let mut v = 0u32;
    for &d in digits {
        let x = (d as char)
            .to_digit(16)
            .ok_or(event_error(i, "invalid \\u escape"))?;
        v = v * 16 + x;
    }
    Ok(v)
}

/// One escape sequence whose backslash is just before `i`: the character it stands for, and
/// where the string goes on. A `\u` escape of a surrogate must be half of a pair.
fn escape(b: &[u8], i: usize) -> Result<(char, usize), EventError> {
    let c = match b.get(i) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => {
            let hi = hex4(b, i + 1)?;
            let mut next = i + 5;
            let code = if (0xD800..0xDC00).contains(&hi) {
                if b.get(next..next + 2) != Some(b"\\u") {
                    return Err(event_error(next, "lone surrogate in a \\u escape"));
                }
                let lo = hex4(b, next + 2)?;
                if !(0xDC00..0xE000).contains(&lo) {
                    return Err(event_error(next + 6, "lone surrogate in a \\u escape"));
                }
                next += 6;
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            } else if (0xDC00..0xE000).contains(&hi) {
                return Err(event_error(next, "lone surrogate in a \\u escape"));
            } else {
                hi
            };
            let c = char::from_u32(code).ok_or(event_error(next, "invalid \\u escape"))?;
            return Ok((c, next));
        }
        _ => return Err(event_error(i, "invalid escape in a string")),
    };
    Ok((c, i + 1))
}

/// The end of the string whose opening quote is just before `i` (after its closing quote),
/// validated as [`Scanner::string`] validates a string it reads, without building it.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Result<usize, EventError> {
    loop {
        i = plain_end(b, i);
        match b.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => i = escape(b, i + 1)?.1,
            Some(_) => return Err(event_error(i, "control character in a string")),
            None => return Err(event_error(i, "unterminated string")),
        }
    }
}

/// `"key" :` and the whitespace after it, inside a skipped object: where its value starts.
#[inline(always)]
fn skip_key(b: &[u8], i: usize) -> Result<usize, EventError> {
    if b.get(i) != Some(&b'"') {
        return Err(event_error(i, "expected a string key"));
    }
    let i = skip_ws(b, string_end(b, i + 1)?);
    if b.get(i) != Some(&b':') {
        return Err(event_error(i, "expected `:` after a key"));
    }
    Ok(skip_ws(b, i + 1))
}

/// Skips the whole value at `i` (no whitespace before it), validating every byte of it as the
/// scanner validates what it reads; returns where it ends. At most `room` containers may
/// open inside it (what is left of [`MAX_DEPTH`]).
///
/// Iterative: the open containers are a stack of bits (set for an object), so that no value,
/// however deep, costs a call per level or an allocation.
fn skip_value(b: &[u8], mut i: usize, room: usize) -> Result<usize, EventError> {
    let mut objects = [0u64; MAX_DEPTH.div_ceil(64)];
    let mut depth = 0usize;
    loop {
        // Expecting a value.
        match b.get(i) {
            Some(b'"') => i = string_end(b, i + 1)?,
            Some(b'-' | b'0'..=b'9') => {
                i = number_end(b, i).map_err(|at| event_error(at, "invalid number"))?;
            }
            Some(&open @ (b'{' | b'[')) => {
                i = skip_ws(b, i + 1);
                // `}` is `{` + 2, and `]` is `[` + 2.
                if b.get(i) == Some(&(open + 2)) {
                    i += 1;
                } else {
                    if depth >= room {
                        return Err(event_error(i, "nesting is too deep"));
                    }
                    let bit = 1u64 << (depth % 64);
                    if open == b'{' {
                        objects[depth / 64] |= bit;
                        i = skip_key(b, i)?;
                    } else {
                        objects[depth / 64] &= !bit;
                    }
                    depth += 1;
                    continue;
                }
            }
            Some(b't') => i = literal(b, i, b"true")?,
            Some(b'f') => i = literal(b, i, b"false")?,
            Some(b'n') => i = literal(b, i, b"null")?,
            _ => return Err(event_error(i, "expected a value")),
        }
        // After a value: close containers, or go on to the next element.
        loop {
            if depth == 0 {
                return Ok(i);
            }
            i = skip_ws(b, i);
            let top = depth - 1;
            let object = objects[top / 64] & (1u64 << (top % 64)) != 0;
            match b.get(i) {
                Some(b',') => {
                    i = skip_ws(b, i + 1);
                    if object {
                        i = skip_key(b, i)?;
                    }
                    break;
                }
                Some(b'}') if object => {
                    i += 1;
                    depth -= 1;
                }
                Some(b']') if !object => {
                    i += 1;
                    depth -= 1;
                }
                _ => return Err(event_error(i, "expected `,` or the end of a container")),
            }
        }
    }
}

/// The end of `word` at `i`.
#[inline]
fn literal(b: &[u8], i: usize, word: &'static [u8]) -> Result<usize, EventError> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(event_error(i, "invalid literal"))
    }
}

impl<'a, const TRUSTED: bool> Scanner<'a, '_, TRUSTED> {
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
        self.pos = skip_ws(self.b, self.pos);
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
        self.pos = plain_end(self.b, self.pos);
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
        let (c, next) = escape(self.b, self.pos)?;
        self.pos = next;
        Ok(c)
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
        self.pos = literal(self.b, self.pos, word)?;
        Ok(())
    }

    /// Skips one whole value: an array or object of trusted text by its structure, anything
    /// else validated (see [`skip_value`]).
    fn skip_value(&mut self) -> Result<(), EventError> {
        if TRUSTED && matches!(self.peek(), Some(b'{' | b'[')) {
            self.pos = blocks::container_end(self.b, self.pos);
            return Ok(());
        }
        self.pos = skip_value(self.b, self.pos, MAX_DEPTH - self.depth)?;
        Ok(())
    }
}
