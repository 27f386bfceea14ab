//! What one match value means for one event leaf: the per-operator semantics, shared by the
//! compiled matcher (for operators it does not index) and the reference evaluator.

use std::cell::OnceCell;

use super::ast::{Alt, AnythingBut, Literal, fold_case};

/// A scalar found in an event at some path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Leaf<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Null,
}

/// A leaf with its case-folded form computed at most once.
pub(super) struct LeafView<'a> {
    pub leaf: Leaf<'a>,
    folded: OnceCell<String>,
}

impl<'a> LeafView<'a> {
    pub(super) fn new(leaf: Leaf<'a>) -> Self {
        LeafView {
            leaf,
            folded: OnceCell::new(),
        }
    }

    /// The case-folded string, or `None` for non-strings.
    pub(super) fn folded(&self) -> Option<&str> {
        match self.leaf {
            Leaf::Str(s) => Some(self.folded.get_or_init(|| fold_case(s))),
            _ => None,
        }
    }
}

/// Whether one alternative of a leaf array matches one event leaf.
///
/// `Exists(true)` matches every leaf, `Exists(false)` none: absence is decided per condition,
/// not per leaf.
pub(super) fn alt_matches(alt: &Alt, view: &LeafView<'_>) -> bool {
    let leaf = view.leaf;
    match alt {
        Alt::Exact(lit) => literal_eq(lit, leaf),
        Alt::Prefix(p) => matches!(leaf, Leaf::Str(s) if s.starts_with(p.as_str())),
        Alt::Suffix(p) => matches!(leaf, Leaf::Str(s) if s.ends_with(p.as_str())),
        Alt::PrefixIgnoreCase(p) => view.folded().is_some_and(|s| s.starts_with(p.as_str())),
        Alt::SuffixIgnoreCase(p) => view.folded().is_some_and(|s| s.ends_with(p.as_str())),
        Alt::EqualsIgnoreCase(p) => view.folded().is_some_and(|s| s == p),
        Alt::Wildcard(w) => matches!(leaf, Leaf::Str(s) if w.matches(s)),
        Alt::Numeric(r) => matches!(leaf, Leaf::Num(n) if r.contains(n)),
        Alt::Exists(present) => *present,
        Alt::Cidr(c) => matches!(leaf, Leaf::Str(s) if c.contains_str(s)),
        Alt::AnythingBut(ab) => anything_but(ab, view),
    }
}

/// Exact equality; numbers by value.
pub(super) fn literal_eq(lit: &Literal, leaf: Leaf<'_>) -> bool {
    match (lit, leaf) {
        (Literal::Str(a), Leaf::Str(b)) => a == b,
        (Literal::Num(a), Leaf::Num(b)) => *a == b,
        (Literal::Bool(a), Leaf::Bool(b)) => *a == b,
        (Literal::Null, Leaf::Null) => true,
        _ => false,
    }
}

/// `anything-but`: a present value that none of the excluded values matches. A value of
/// another type than the form excludes (null, a number against a string form) is "anything
/// but" the excluded values, so it matches.
fn anything_but(ab: &AnythingBut, view: &LeafView<'_>) -> bool {
    match (ab, view.leaf) {
        (AnythingBut::Strings(list), Leaf::Str(s)) => !list.iter().any(|x| x == s),
        (AnythingBut::Numbers(list), Leaf::Num(n)) => !list.contains(&n),
        (AnythingBut::Prefixes(list), Leaf::Str(s)) => {
            !list.iter().any(|p| s.starts_with(p.as_str()))
        }
        (AnythingBut::Suffixes(list), Leaf::Str(s)) => {
            !list.iter().any(|p| s.ends_with(p.as_str()))
        }
        (AnythingBut::IgnoreCase(list), Leaf::Str(_)) => {
            let folded = view.folded().unwrap_or_default();
            !list.iter().any(|x| x == folded)
        }
        (AnythingBut::Wildcards(list), Leaf::Str(s)) => !list.iter().any(|w| w.matches(s)),
        _ => true,
    }
}
