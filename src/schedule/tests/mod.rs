//! Tests of the schedule module: syntax tables, next-fire tables, DST behaviour and a property
//! test against a brute-force evaluator.

mod dst;
mod next;
mod parse;
mod prop;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::ScheduleExpr;

/// Parses a test expression, panicking with the error message when it is invalid.
fn expr(text: &str) -> ScheduleExpr {
    ScheduleExpr::parse(text).unwrap_or_else(|e| panic!("{text}: {e} (offset {})", e.offset))
}

/// Parses an RFC 3339 UTC instant such as `2024-01-01T12:00:00Z`.
fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// An anchor far in the past, for expressions that ignore it.
fn no_anchor() -> DateTime<Utc> {
    utc("1970-01-01T00:00:00Z")
}

/// The first `n` fires of `text` in `tz` strictly after `after`, as RFC 3339 strings.
fn first_fires(text: &str, tz: Tz, after: &str, n: usize) -> Vec<String> {
    super::fires(&expr(text), tz, no_anchor(), utc(after))
        .take(n)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

/// The next fire of `text` in UTC strictly after `after`, as an RFC 3339 string.
fn next_utc(text: &str, after: &str) -> Option<String> {
    first_fires(text, Tz::UTC, after, 1).pop()
}
