//! `rate(value unit)` expressions: parsing and fixed-interval fires.
//!
//! Syntax (AWS): `value` is a positive integer without sign or leading zeros, `unit` is one of
//! `minute|minutes|hour|hours|day|days` in lower case, singular exactly when the value is 1, with
//! exactly one space between them and no other whitespace.
//!
//! A rate is a fixed interval in absolute time: a day is 24 hours, so DST changes do not move it.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use super::error::{ScheduleError, ScheduleErrorKind};

/// A parsed `rate(value unit)` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// How many units between fires (at least 1 when parsed).
    pub value: u32,
    /// The unit of `value`.
    pub unit: RateUnit,
}

/// The unit of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateUnit {
    /// 60 seconds.
    Minute,
    /// 3600 seconds.
    Hour,
    /// 86400 seconds (DST-independent).
    Day,
}

impl RateUnit {
    /// Length of one unit in seconds.
    fn seconds(self) -> i64 {
        match self {
            RateUnit::Minute => 60,
            RateUnit::Hour => 3_600,
            RateUnit::Day => 86_400,
        }
    }

    /// The singular spelling, e.g. `minute`.
    fn singular(self) -> &'static str {
        match self {
            RateUnit::Minute => "minute",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        }
    }

    /// The plural spelling, e.g. `minutes`.
    fn plural(self) -> &'static str {
        match self {
            RateUnit::Minute => "minutes",
            RateUnit::Hour => "hours",
            RateUnit::Day => "days",
        }
    }

    /// The unit and whether the spelling is plural, for an exact lower-case spelling.
    fn from_spelling(text: &str) -> Option<(RateUnit, bool)> {
        [RateUnit::Minute, RateUnit::Hour, RateUnit::Day]
            .into_iter()
            .find_map(|unit| {
                if text == unit.singular() {
                    Some((unit, false))
                } else if text == unit.plural() {
                    Some((unit, true))
                } else {
                    None
                }
            })
    }
}

impl Rate {
    /// The interval between fires.
    #[must_use]
    pub fn period(&self) -> TimeDelta {
        // At most u32::MAX days (about 3.7e14 s), well inside TimeDelta's range.
        TimeDelta::try_seconds(i64::from(self.value) * self.unit.seconds())
            .unwrap_or(TimeDelta::MAX)
    }

    /// The first fire strictly after `after`, where fires are `anchor + k * period` for `k >= 0`
    /// (so `anchor` itself fires when `after < anchor`). `None` on overflow or a zero value.
    pub(super) fn next_after(
        &self,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if after < anchor {
            return Some(anchor);
        }
        let period = i128::from(self.value) * i128::from(self.unit.seconds()) * NANOS_PER_SECOND;
        if period == 0 {
            return None;
        }
        let elapsed = nanos(after - anchor);
        let periods = elapsed / period + 1;
        let seconds = i64::try_from(periods * period / NANOS_PER_SECOND).ok()?;
        anchor.checked_add_signed(TimeDelta::try_seconds(seconds)?)
    }
}

/// Nanoseconds in a second, for exact interval arithmetic.
const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// A non-negative duration in nanoseconds, without the overflow of `num_nanoseconds`.
fn nanos(delta: TimeDelta) -> i128 {
    i128::from(delta.num_seconds()) * NANOS_PER_SECOND + i128::from(delta.subsec_nanos())
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.value == 1 {
            self.unit.singular()
        } else {
            self.unit.plural()
        };
        write!(f, "rate({} {unit})", self.value)
    }
}

/// Parses the text between `rate(` and `)`; `base` is its byte offset in the whole expression.
pub(super) fn parse(inner: &str, base: usize) -> Result<Rate, ScheduleError> {
    let err = |offset: usize, kind| ScheduleError::new(base + offset, kind);
    if inner.is_empty() {
        return Err(err(0, ScheduleErrorKind::RateEmpty));
    }
    if let Some(at) = misplaced_whitespace(inner) {
        return Err(err(at, ScheduleErrorKind::RateSpacing));
    }
    let Some((value_text, unit_text)) = inner.split_once(' ') else {
        parse_value(inner).map_err(|kind| err(0, kind))?;
        let kind = ScheduleErrorKind::RateMissingUnit {
            value: inner.to_owned(),
        };
        return Err(err(inner.len(), kind));
    };
    let value = parse_value(value_text).map_err(|kind| err(0, kind))?;
    let unit = parse_unit(value, unit_text).map_err(|kind| err(value_text.len() + 1, kind))?;
    Ok(Rate { value, unit })
}

/// Offset of the first whitespace that is not the single space between value and unit.
fn misplaced_whitespace(inner: &str) -> Option<usize> {
    let mut spaces = inner.char_indices().filter(|(_, c)| c.is_whitespace());
    let (first, c) = spaces.next()?;
    if c != ' ' || first == 0 || first + 1 == inner.len() {
        return Some(first);
    }
    spaces.next().map(|(at, _)| at)
}

/// Parses the value: ASCII digits, no leading zeros, 1..=u32::MAX.
fn parse_value(text: &str) -> Result<u32, ScheduleErrorKind> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScheduleErrorKind::RateValueNotNumber {
            found: text.to_owned(),
        });
    }
    let value: u32 = text
        .parse()
        .map_err(|_| ScheduleErrorKind::RateValueTooLarge {
            found: text.to_owned(),
        })?;
    if value == 0 {
        return Err(ScheduleErrorKind::RateValueZero);
    }
    if text.starts_with('0') {
        let expected = value.to_string();
        return Err(ScheduleErrorKind::RateLeadingZero {
            found: text.to_owned(),
            expected,
        });
    }
    Ok(value)
}

/// Parses the unit and checks that its number agrees with `value`.
fn parse_unit(value: u32, text: &str) -> Result<RateUnit, ScheduleErrorKind> {
    let Some((unit, plural)) = RateUnit::from_spelling(text) else {
        let lower = text.to_ascii_lowercase();
        return Err(match RateUnit::from_spelling(&lower) {
            Some((unit, true)) => ScheduleErrorKind::RateUnitCase {
                found: text.to_owned(),
                expected: unit.plural(),
            },
            Some((unit, false)) => ScheduleErrorKind::RateUnitCase {
                found: text.to_owned(),
                expected: unit.singular(),
            },
            None => ScheduleErrorKind::RateUnknownUnit {
                found: text.to_owned(),
            },
        });
    };
    let found = text.to_owned();
    match (value == 1, plural) {
        (true, true) => Err(ScheduleErrorKind::RateNeedsSingular {
            value: value.to_string(),
            found,
            expected: unit.singular(),
        }),
        (false, false) => Err(ScheduleErrorKind::RateNeedsPlural {
            value: value.to_string(),
            found,
            expected: unit.plural(),
        }),
        _ => Ok(unit),
    }
}
