//! Schedule expressions: parsing `rate(...)`, `cron(...)` and `at(...)` exactly as AWS
//! EventBridge (rules) and EventBridge Scheduler accept them, and computing when they fire.
//!
//! This module owns the syntax, the validation errors (with byte offsets) and the pure
//! next-fire computation. It does no I/O and keeps no clock: callers pass the instant to search
//! from, the time zone and, for rates, the anchor.
//!
//! Semantics, including the points AWS leaves open:
//!
//! - **rate(value unit)**: a fixed interval in absolute time (a day is 24 hours, DST does not
//!   move it). Fires are `anchor + k * period` for `k >= 0`, so the anchor itself is the first
//!   fire (Scheduler's first tick is at `StartDate`). Values have no sign and no leading zeros.
//! - **cron(min hour dom month dow year)**: evaluated in the local wall-clock time of the time
//!   zone, minute resolution, years 1970-2199. Exactly six fields separated by single spaces.
//!   Month and day names and the letters `L`/`W` are case-insensitive (Quartz upper-cases the
//!   whole expression; unverified on AWS). Ranges wrap around the end of every field except the
//!   year (`20-2` hours, `NOV-FEB`, `FRI-MON`). `nW` in a month shorter than `n` uses the
//!   month's last day; `L`, `LW`, `nW`, `nL` and `d#n` must be the whole field.
//!   Numbers may have leading zeros (`05`); a step is 1 up to the number of values of the field
//!   (`0/60` minutes is accepted and fires at minute 0 only).
//! - **at(yyyy-mm-ddThh:mm:ss)**: one fire at that local time (any valid date with a 4-digit
//!   year; no zone suffix, no fractional seconds).
//! - **Whitespace** is never tolerated beyond the single separators (AWS rejects
//!   `rate( 5 minutes)` and ` rate(5 minutes)`); expressions are at most 256 characters.
//! - **DST** (cron and at): a local time skipped by spring-forward does not fire; a local time
//!   repeated by fall-back fires once, at its first occurrence. So `cron(*/30 * * * ? *)` fires
//!   at 01:00 and 01:30 only during the first pass through the repeated hour, and skips 02:00 and
//!   02:30 on a spring-forward day in New York.
//!
//! [`ScheduleExpr::next_after`] jumps field by field and gives up after 2199, so it is fast even
//! for expressions that never fire again. Pure: no IO, no clock (the time comes in); the timer
//! that runs schedules on the tokio clock is the schedule source's, `sources::schedule`.

mod at;
mod bitset;
mod cron;
mod cron_parse;
mod days;
mod error;
mod rate;
mod tz;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;

pub use cron::CronExpr;
pub use error::{CronField, ScheduleError, ScheduleErrorKind};
pub use rate::{Rate, RateUnit};
pub use tz::dst_note;

/// Longest expression AWS accepts, in characters.
const MAX_LEN: usize = 256;

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScheduleExpr {
    /// `rate(value unit)`: a fixed interval.
    Rate(Rate),
    /// `cron(...)`: wall-clock times in the schedule's time zone.
    Cron(CronExpr),
    /// `at(yyyy-mm-ddThh:mm:ss)`: one local time in the schedule's time zone.
    At(NaiveDateTime),
}

/// The expression keywords, as written before `(`.
const KEYWORDS: [&str; 3] = ["rate", "cron", "at"];

impl ScheduleExpr {
    /// Parses `rate(...)`, `cron(...)` or `at(...)` exactly as AWS accepts them.
    ///
    /// # Errors
    ///
    /// A [`ScheduleError`] with the byte offset of the first problem when AWS would reject the
    /// text (see [`ScheduleErrorKind`] for every reason).
    pub fn parse(text: &str) -> Result<ScheduleExpr, ScheduleError> {
        check_envelope(text)?;
        let open = text.find('(').ok_or_else(|| unknown_kind(text))?;
        let keyword = check_keyword(&text[..open])?;
        let close = open + text[open..].find(')').ok_or_else(|| missing_paren(text))?;
        if close + 1 != text.len() {
            let found = text[close + 1..].to_owned();
            return Err(ScheduleError::new(
                close + 1,
                ScheduleErrorKind::TrailingText { found },
            ));
        }
        let (inner, base) = (&text[open + 1..close], open + 1);
        Ok(match keyword {
            "rate" => ScheduleExpr::Rate(rate::parse(inner, base)?),
            "cron" => ScheduleExpr::Cron(cron_parse::parse(inner, base)?),
            _ => ScheduleExpr::At(at::parse(inner, base)?),
        })
    }

    /// The first fire strictly after `after`, in UTC.
    ///
    /// `tz` applies to cron and at (local wall-clock time, DST rules in the module docs). A rate
    /// fires at `anchor + k * period` for `k = 0, 1, 2, ...` and ignores `tz`. `None` when the
    /// schedule never fires again (cron searches up to the end of 2199).
    #[must_use]
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        tz: Tz,
        anchor: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            ScheduleExpr::Rate(rate) => rate.next_after(after, anchor),
            ScheduleExpr::Cron(cron) => cron.next_after(after, tz),
            ScheduleExpr::At(local) => at::next_after(*local, after, tz),
        }
    }
}

/// Successive fires of `expr` strictly after `after` (see [`ScheduleExpr::next_after`]).
pub fn fires(
    expr: &ScheduleExpr,
    tz: Tz,
    anchor: DateTime<Utc>,
    after: DateTime<Utc>,
) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    std::iter::successors(expr.next_after(after, tz, anchor), move |&fire| {
        expr.next_after(fire, tz, anchor)
    })
}

impl FromStr for ScheduleExpr {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ScheduleExpr::parse(text)
    }
}

impl fmt::Display for ScheduleExpr {
    /// The canonical text: what was parsed, with cron names and letters in upper case.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleExpr::Rate(rate) => rate.fmt(f),
            ScheduleExpr::Cron(cron) => cron.fmt(f),
            ScheduleExpr::At(local) => write!(f, "at({})", local.format("%Y-%m-%dT%H:%M:%S")),
        }
    }
}

/// Rejects empty, too long and whitespace-padded text.
fn check_envelope(text: &str) -> Result<(), ScheduleError> {
    if text.is_empty() {
        return Err(ScheduleError::new(0, ScheduleErrorKind::Empty));
    }
    let len = text.chars().count();
    if len > MAX_LEN {
        return Err(ScheduleError::new(0, ScheduleErrorKind::TooLong { len }));
    }
    if text.starts_with(char::is_whitespace) {
        return Err(ScheduleError::new(
            0,
            ScheduleErrorKind::SurroundingWhitespace,
        ));
    }
    let trimmed = text.trim_end();
    if trimmed.len() != text.len() {
        let kind = ScheduleErrorKind::SurroundingWhitespace;
        return Err(ScheduleError::new(trimmed.len(), kind));
    }
    Ok(())
}

/// Accepts `rate`, `cron` or `at` exactly; explains other spellings.
fn check_keyword(keyword: &str) -> Result<&'static str, ScheduleError> {
    if let Some(&exact) = KEYWORDS.iter().find(|&&k| k == keyword) {
        return Ok(exact);
    }
    match KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(keyword)) {
        Some(&expected) => {
            let found = keyword.to_owned();
            Err(ScheduleError::new(
                0,
                ScheduleErrorKind::KeywordCase { found, expected },
            ))
        }
        None => Err(unknown_kind(keyword)),
    }
}

/// The error for text that is not `rate(`, `cron(` or `at(`.
fn unknown_kind(found: &str) -> ScheduleError {
    let found = found.to_owned();
    ScheduleError::new(0, ScheduleErrorKind::UnknownKind { found })
}

/// The error for a missing `)`, located at the end of the text.
fn missing_paren(text: &str) -> ScheduleError {
    ScheduleError::new(text.len(), ScheduleErrorKind::MissingParen)
}
