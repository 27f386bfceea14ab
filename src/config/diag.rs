//! Diagnostics: every problem found in rule files, each at `file:line:column`, collected
//! rather than stopping at the first.

use std::fmt;

use super::yaml::Pos;

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it (relative paths stay relative).
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Lowercase, no trailing period; says what is wrong and, where it helps, what to write.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// All problems found, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Diagnostics {
    /// The JSON form printed by `trigd check --format json`.
    pub fn to_json(&self) -> serde_json::Value {
        let errors: Vec<serde_json::Value> = self
            .0
            .iter()
            .map(|d| {
                serde_json::json!({
                    "file": d.file,
                    "line": d.line,
                    "column": d.column,
                    "message": d.message,
                })
            })
            .collect();
        serde_json::json!({ "errors": errors })
    }
}

/// Collects diagnostics for one file.
pub struct Reporter<'a> {
    file: &'a str,
    out: &'a mut Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a str, out: &'a mut Vec<Diagnostic>) -> Self {
        Reporter { file, out }
    }

    pub fn file(&self) -> &str {
        self.file
    }

    /// Records a problem at `pos`.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.out.push(Diagnostic {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        });
    }

    /// How many problems were recorded so far (to tell whether a step added any).
    pub fn count(&self) -> usize {
        self.out.len()
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let w = norm(word);
    if let Some(exact) = candidates.iter().find(|c| norm(c) == w) {
        return Some(exact);
    }
    candidates
        .iter()
        .map(|c| (levenshtein(&w, &norm(c)), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        let keys = ["input", "input_path", "input_transformer", "id", "lambda"];
        assert_eq!(did_you_mean("inputPath", &keys), Some("input_path"));
        assert_eq!(did_you_mean("input-path", &keys), Some("input_path"));
        assert_eq!(did_you_mean("imput_path", &keys), Some("input_path"));
        assert_eq!(did_you_mean("lamda", &keys), Some("lambda"));
        assert_eq!(did_you_mean("zzzzzz", &keys), None);
    }
}
