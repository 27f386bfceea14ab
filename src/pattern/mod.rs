//! EventBridge event patterns: parsing with AWS's validation, one compiled matcher over all
//! rules, and explanations of non-matches.
//!
//! * [`parse`] turns a pattern's JSON into a [`Pattern`] (disjunctive normal form), refusing
//!   what EventBridge refuses, with its reason and the JSON path of the offending node.
//! * [`Matcher`] compiles many patterns into one structure and matches event text against all
//!   of them at once, reading only the fields some pattern names.
//! * [`explain`] says why a pattern does not match an event, naming the first failing field.
//!
//! Nothing here does IO or reads the clock.

mod ast;
mod blocks;
mod cidr;
mod eval;
mod matcher;
mod parse;
mod reference;
mod scan;
mod wildcard;

pub use ast::{Alt, AnythingBut, Bound, Branch, Condition, Literal, NumericRange, Pattern};
pub use matcher::{Matcher, RuleId, Scratch};
pub use parse::{
    MAX_COMBINATIONS, MAX_PATTERN_LEN, PathSeg, PatternError, display_path, parse, parse_all,
};
pub use reference::{explain, matches as reference_matches};
pub use scan::{EventError, MAX_DEPTH, ValidJson};

#[cfg(test)]
mod tests;
