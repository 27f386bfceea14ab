//! Skipping a container of JSON that is known to be valid, 64 bytes at a time.
//!
//! Text trigd serialised itself ([`ValidJson`](super::ValidJson)) needs no second check of its
//! grammar, so a container no pattern names can be skipped by its structure alone: find the
//! bracket that closes it, ignoring brackets inside strings. Each 64-byte block is classified
//! into four bit masks (quotes, backslashes, opening and closing brackets); the quotes that
//! are not escaped give, by a prefix XOR, the bytes inside strings; and the brackets outside
//! strings are counted. A block whose closing brackets are fewer than the containers still
//! open cannot hold the end, so it is passed with two population counts; only the block that
//! does is walked bracket by bracket.
//!
//! On x86-64 the classification is four SSE2 compares per 16 bytes (SSE2 is part of the
//! x86-64 baseline; `safe_arch` wraps the intrinsics safely). Elsewhere a byte loop builds the
//! same masks. Measured on the citylots2 events (BENCHMARKS.md): 7.7 GB/s, against 2.5 GB/s for
//! the validating skipper.
//!
//! On text that is not valid JSON the result is meaningless but the skipper still ends, within
//! the text, and never panics: the scanner only calls it on text it may trust.

/// Where the structural bytes of a block are: bit `n` stands for byte `n`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{` and `[`.
    open: u64,
    /// `}` and `]`.
    close: u64,
}

const BLOCK: usize = 64;

/// Classifies a block byte by byte: the portable path, and the reference the SIMD path is
/// tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn classify_bytes(block: &[u8; BLOCK]) -> Masks {
    let mut m = Masks::default();
    for (n, &c) in block.iter().enumerate() {
        let bit = 1u64 << n;
        match c {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'[' => m.open |= bit,
            b'}' | b']' => m.close |= bit,
            _ => {}
        }
    }
    m
}

/// Classifies a block sixteen bytes at a time with SSE2. `{` and `[` differ only in bit 5
/// (0x7B, 0x5B), as do `}` and `]` (0x7D, 0x5D), so setting that bit makes one compare find
/// both; no other byte becomes 0x7B or 0x7D that way.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(block: &[u8; BLOCK]) -> Masks {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let quote = set_splat_i8_m128i(b'"' as i8);
    let backslash = set_splat_i8_m128i(b'\\' as i8);
    let bit5 = set_splat_i8_m128i(0x20);
    let open = set_splat_i8_m128i(b'{' as i8);
    let close = set_splat_i8_m128i(b'}' as i8);
    let mut m = Masks::default();
    let (chunks, _) = block.as_chunks::<16>();
    for (k, chunk) in chunks.iter().enumerate() {
        let v = load_unaligned_m128i(chunk);
        let folded = bitor_m128i(v, bit5);
        // The mask's low 16 bits are one per byte.
        let bits = |x: m128i| u64::from(move_mask_i8_m128i(x) as u16) << (16 * k);
        m.quote |= bits(cmp_eq_mask_i8_m128i(v, quote));
        m.backslash |= bits(cmp_eq_mask_i8_m128i(v, backslash));
        m.open |= bits(cmp_eq_mask_i8_m128i(folded, open));
        m.close |= bits(cmp_eq_mask_i8_m128i(folded, close));
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify(block: &[u8; BLOCK]) -> Masks {
    classify_bytes(block)
}

/// Each bit set when an odd number of bits at or below it are set in `x`: the bytes from an
/// opening quote up to (not including) its closing quote.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The bytes a backslash escapes in a block. `carry` says whether the block's first byte is
/// escaped (the previous block ended in an escaping backslash) and is set for the next block.
/// Backslashes are rare in events, so this walks them one by one.
#[cold]
#[inline(never)]
fn escaped(backslash: u64, carry: &mut bool) -> u64 {
    let mut escaped = u64::from(std::mem::take(carry));
    let mut rest = backslash;
    while rest != 0 {
        let n = rest.trailing_zeros();
        rest &= rest - 1;
        if escaped & (1u64 << n) != 0 {
            // An escaped backslash escapes nothing.
            continue;
        }
        match n {
            63 => *carry = true,
            _ => escaped |= 1u64 << (n + 1),
        }
    }
    escaped
}

/// The end (one past the closing bracket) of the array or object opening at `b[start]`, in
/// text known to be valid JSON; the end of the text if it does not close.
pub(super) fn container_end(b: &[u8], start: usize) -> usize {
    let mut at = start;
    let mut open: u32 = 0;
    let mut in_string = 0u64;
    let mut carry = false;
    let mut tail = [b' '; BLOCK];
    loop {
        let block: &[u8; BLOCK] = match b.get(at..at + BLOCK).and_then(|s| s.try_into().ok()) {
            Some(block) => block,
            None => {
                // The last, partial block, padded with spaces (which are not structural).
                // It is the last block: `at` passes the end below.
                let rest = b.get(at..).unwrap_or_default();
                tail[..rest.len()].copy_from_slice(rest);
                &tail
            }
        };
        let m = classify(block);
        let mut quotes = m.quote;
        if m.backslash != 0 || carry {
            quotes &= !escaped(m.backslash, &mut carry);
        }
        let strings = prefix_xor(quotes) ^ in_string;
        in_string = ((strings as i64) >> 63) as u64;
        let opens = m.open & !strings;
        let closes = m.close & !strings;
        if closes.count_ones() < open {
            open = open + opens.count_ones() - closes.count_ones();
        } else {
            let mut brackets = opens | closes;
            while brackets != 0 {
                let n = brackets.trailing_zeros();
                brackets &= brackets - 1;
                if opens & (1u64 << n) != 0 {
                    open += 1;
                } else {
                    // `open` is at least 1 here: the first bracket seen is the opening one,
                    // and the walk stops when the count returns to 0.
                    open = open.saturating_sub(1);
                    if open == 0 {
                        return (at + n as usize + 1).min(b.len());
                    }
                }
            }
        }
        at += BLOCK;
        if at >= b.len() {
            return b.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small generator, so the tests need no dependency and are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn classification_agrees_with_the_byte_loop() {
        let mut rng = Rng(17);
        let alphabet = b"\"\\{}[]ab 01:,\x7b\x7d\x5b\x5d\x3b\x3d\x80\xff\xfb\xfd";
        for _ in 0..20_000 {
            let mut block = [0u8; BLOCK];
            for x in block.iter_mut() {
                *x = alphabet[rng.next() as usize % alphabet.len()];
            }
            assert_eq!(classify(&block), classify_bytes(&block), "{block:?}");
        }
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(BLOCK) {
            let block: [u8; BLOCK] = chunk.try_into().unwrap();
            assert_eq!(classify(&block), classify_bytes(&block));
        }
    }

    /// The end of the container at `start` found with serde_json, which reads it fully.
    fn serde_end(text: &str, start: usize) -> usize {
        let mut values =
            serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde::de::IgnoredAny>();
        values.next().unwrap().unwrap();
        start + values.byte_offset()
    }

    #[test]
    fn ends_where_the_container_ends() {
        let cases = [
            r#"{}"#,
            r#"[]"#,
            r#"{"a":[1,2,{"b":"}]"}],"c":"\\"}"#,
            r#"{"a":"\"}\\\"]"}"#,
            r#"[[[[["x"]]]],{"y":{"z":[]}}]"#,
            r#"{"k":"é]}\u005d","n":-1.5e+10}"#,
        ];
        for case in cases {
            for pad in 0..130 {
                let text = format!("{}{case} , 1", " ".repeat(pad));
                assert_eq!(
                    container_end(text.as_bytes(), pad),
                    pad + case.len(),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn ends_where_serde_ends_on_generated_values() {
        let mut rng = Rng(99);
        for _ in 0..3_000 {
            let v = value(&mut rng, 0);
            let wrapped = serde_json::json!({ "v": v, "after": [v] });
            let text = wrapped.to_string();
            for (n, _) in text.match_indices(['{', '[']) {
                if in_string(&text, n) {
                    continue;
                }
                assert_eq!(
                    container_end(text.as_bytes(), n),
                    serde_end(&text, n),
                    "{text} at {n}"
                );
            }
        }
    }

    /// Whether byte `n` of valid JSON `text` is inside a string, by a plain walk.
    fn in_string(text: &str, n: usize) -> bool {
        let (mut inside, mut escape) = (false, false);
        for &c in &text.as_bytes()[..n] {
            match (inside, escape, c) {
                (true, true, _) => escape = false,
                (true, false, b'\\') => escape = true,
                (_, false, b'"') => inside = !inside,
                _ => {}
            }
        }
        inside
    }

    fn value(rng: &mut Rng, depth: u32) -> serde_json::Value {
        use serde_json::Value;
        let pick = if depth > 5 {
            rng.next() % 4
        } else {
            rng.next() % 6
        };
        match pick {
            0 => Value::from(rng.next() as f64 / 7.0 - 1e6),
            1 => {
                let pieces = [
                    "\\", "\"", "{", "]", "a", "é", "\\\\", "\\\"", "}", "[", "\u{1}",
                ];
                let n = rng.next() % 80;
                Value::from(
                    (0..n)
                        .map(|_| pieces[rng.next() as usize % pieces.len()])
                        .collect::<String>(),
                )
            }
            2 => Value::Null,
            3 => Value::Bool(rng.next().is_multiple_of(2)),
            4 => Value::Array((0..rng.next() % 6).map(|_| value(rng, depth + 1)).collect()),
            _ => Value::Object(
                (0..rng.next() % 6)
                    .map(|i| (format!("k{i}\"]"), value(rng, depth + 1)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn never_runs_past_the_text_on_invalid_input() {
        let mut rng = Rng(5);
        for _ in 0..20_000 {
            let n = rng.next() as usize % 300;
            let mut text: Vec<u8> = (0..n)
                .map(|_| b"\"\\{}[]a "[rng.next() as usize % 8])
                .collect();
            text.insert(0, b'{');
            let end = container_end(&text, 0);
            assert!(end <= text.len());
        }
    }
}
