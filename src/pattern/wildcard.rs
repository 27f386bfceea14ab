//! The `wildcard` operator: `*` matches any run of characters (including none), `\*` is a
//! literal star and `\\` a literal backslash; the match is anchored at both ends.
//!
//! A pattern is split into literal segments at its stars. Matching is the classic greedy
//! algorithm for star-only globs: the first segment is a prefix, the last a suffix, and each
//! middle segment is found leftmost after the previous one. It never backtracks, so its cost
//! is linear in the length of the value.

use memchr::memmem;

/// A compiled wildcard pattern.
#[derive(Debug, Clone)]
pub struct Wildcard {
    text: String,
    /// Literal segments between stars; `segments.len() == stars + 1`.
    segments: Vec<String>,
}

impl PartialEq for Wildcard {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Why a wildcard pattern was refused (texts follow EventBridge's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WildcardError {
    #[error("Consecutive wildcard characters at pos {0}")]
    Consecutive(usize),
    #[error("Invalid escape character at pos {0}")]
    BadEscape(usize),
    #[error(
        "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character"
    )]
    TooComplex,
}

/// More stars than this is refused as too complex. EventBridge does not publish its limit;
/// this bound refuses the cases it is known to refuse and accepts the ones it accepts.
const MAX_STARS: usize = 5;

impl Wildcard {
    /// Parses and validates a wildcard pattern.
    pub fn parse(text: &str) -> Result<Wildcard, WildcardError> {
        let mut segments = vec![String::new()];
        let mut chars = text.char_indices().peekable();
        let mut prev_star = false;
        while let Some((pos, c)) = chars.next() {
            match c {
                '*' => {
                    if prev_star {
                        return Err(WildcardError::Consecutive(pos));
                    }
                    segments.push(String::new());
                    prev_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '\\'))) => push_char(&mut segments, e),
                    _ => return Err(WildcardError::BadEscape(pos)),
                },
                c => push_char(&mut segments, c),
            }
            prev_star = false;
        }
        let stars = segments.len() - 1;
        if stars > MAX_STARS || repeats_after_star(&segments) {
            return Err(WildcardError::TooComplex);
        }
        Ok(Wildcard {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `value` matches the whole pattern.
    pub fn matches(&self, value: &str) -> bool {
        let v = value.as_bytes();
        let segs = &self.segments;
        if segs.len() == 1 {
            return v == segs[0].as_bytes();
        }
        let first = segs[0].as_bytes();
        let last = segs[segs.len() - 1].as_bytes();
        if v.len() < first.len() + last.len() || !v.starts_with(first) || !v.ends_with(last) {
            return false;
        }
        let mut rest = &v[first.len()..v.len() - last.len()];
        for seg in &segs[1..segs.len() - 1] {
            match memmem::find(rest, seg.as_bytes()) {
                Some(i) => rest = &rest[i + seg.len()..],
                None => return false,
            }
        }
        true
    }
}

fn push_char(segments: &mut [String], c: char) {
    if let Some(last) = segments.last_mut() {
        last.push(c);
    }
}

/// EventBridge refuses wildcards whose automaton would blow up, such as
/// `*:*:*:*:*:event-bus/*`: many stars each followed by the same short literal. We refuse a
/// pattern where three or more middle segments repeat one literal.
fn repeats_after_star(segments: &[String]) -> bool {
    if segments.len() < 4 {
        return false;
    }
    let middle = &segments[1..segments.len() - 1];
    middle
        .iter()
        .any(|s| !s.is_empty() && middle.iter().filter(|t| *t == s).count() >= 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("/Users/*/doc.txt", "/Users/u/a/b/doc.txt", true),
            ("/Users/*/doc.txt", "/Users/u/notmatchingdoc.txt", false),
            ("a*b", "ab", true),
            ("a*b", "axxb", true),
            ("a*b", "axxbc", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("a\\\\b", "a\\b", true),
            ("", "", true),
            ("", "x", false),
            ("*", "", true),
            ("*", "anything", true),
            ("*.png", "a.png", true),
            ("*.png", "a.jpg", false),
            ("*Title*", "My Title Here", true),
            ("aa*aa", "aaa", false),
            ("aa*aa", "aaaa", true),
            ("2*0*1*7", "2607117", true),
            ("*218", "2607218", true),
            ("3*5*2", "3745012", true),
            ("VA*IL", "VACSTWIL", true),
            ("a*b*c", "acb", false),
            ("*/dir/*", "dir/init/file", false),
            ("*/dir/*", "a/dir/b", true),
        ];
        for (p, v, want) in cases {
            let w = Wildcard::parse(p).unwrap();
            assert_eq!(w.matches(v), *want, "{p:?} vs {v:?}");
        }
    }

    #[test]
    fn invalid() {
        assert_eq!(Wildcard::parse("a**b"), Err(WildcardError::Consecutive(2)));
        assert_eq!(Wildcard::parse("a\\b"), Err(WildcardError::BadEscape(1)));
        assert_eq!(Wildcard::parse("a\\"), Err(WildcardError::BadEscape(1)));
        assert_eq!(
            Wildcard::parse("*:*:*:*:*:event-bus/*"),
            Err(WildcardError::TooComplex)
        );
        assert!(Wildcard::parse("arn:aws:events:us-east-1:*:event-bus/*").is_ok());
    }
}
