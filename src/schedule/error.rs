//! Typed parse errors for schedule expressions.
//!
//! Every error carries the byte offset into the original expression text where the problem
//! starts, so callers can turn it into a `file:line:column` position. The `Display` text is a
//! lowercase message without a trailing period that says what is wrong and what to write instead.

use std::fmt;

use thiserror::Error;

/// A schedule expression that AWS would reject, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind}")]
pub struct ScheduleError {
    /// Byte offset into the input text where the problem starts.
    pub offset: usize,
    /// What is wrong.
    pub kind: ScheduleErrorKind,
}

impl ScheduleError {
    /// Creates an error of `kind` at byte `offset`.
    pub(super) fn new(offset: usize, kind: ScheduleErrorKind) -> Self {
        Self { offset, kind }
    }
}

/// One of the six fields of a `cron(...)` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    /// Minutes, 0-59.
    Minute,
    /// Hours, 0-23.
    Hour,
    /// Day of the month, 1-31.
    DayOfMonth,
    /// Month, 1-12 or JAN-DEC.
    Month,
    /// Day of the week, 1-7 (1 = Sunday) or SUN-SAT.
    DayOfWeek,
    /// Year, 1970-2199.
    Year,
}

impl CronField {
    /// Smallest value of the field.
    #[must_use]
    pub fn min(self) -> u32 {
        match self {
            CronField::Minute | CronField::Hour => 0,
            CronField::DayOfMonth | CronField::Month | CronField::DayOfWeek => 1,
            CronField::Year => 1970,
        }
    }

    /// Largest value of the field.
    #[must_use]
    pub fn max(self) -> u32 {
        match self {
            CronField::Minute => 59,
            CronField::Hour => 23,
            CronField::DayOfMonth => 31,
            CronField::Month => 12,
            CronField::DayOfWeek => 7,
            CronField::Year => 2199,
        }
    }

    /// Number of distinct values (also the largest allowed step).
    #[must_use]
    pub fn span(self) -> u32 {
        self.max() - self.min() + 1
    }

    /// What a value of this field may look like, for error messages.
    fn expected(self) -> &'static str {
        match self {
            CronField::Minute => "0-59",
            CronField::Hour => "0-23",
            CronField::DayOfMonth => "1-31, `L`, `LW` or `nW`",
            CronField::Month => "1-12 or JAN-DEC",
            CronField::DayOfWeek => "1-7 or SUN-SAT",
            CronField::Year => "1970-2199",
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        })
    }
}

/// Which fields accept a special character, for error messages.
fn special_hint(ch: char) -> &'static str {
    match ch {
        '?' => "only day-of-month or day-of-week can be `?`",
        'L' => "only day-of-month and day-of-week accept `L`",
        'W' => "only day-of-month accepts `W`",
        '#' => "only day-of-week accepts `#`",
        _ => "it is not a cron special character",
    }
}

/// The reason a schedule expression is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleErrorKind {
    /// The text is empty.
    #[error("empty schedule expression: write `rate(...)`, `cron(...)` or `at(...)`")]
    Empty,
    /// The text is longer than AWS allows.
    #[error("schedule expression is {len} characters long: the maximum is 256")]
    TooLong {
        /// Length in characters.
        len: usize,
    },
    /// Whitespace before or after the expression.
    #[error("unexpected whitespace around the expression: remove it")]
    SurroundingWhitespace,
    /// Not `rate(`, `cron(` or `at(`.
    #[error(
        "unknown schedule expression `{found}`: expected `rate(...)`, `cron(...)` or `at(...)`"
    )]
    UnknownKind {
        /// The text before `(` (or the whole text).
        found: String,
    },
    /// `RATE(`, `Cron(` and the like.
    #[error("`{found}` must be lower case: write `{expected}`")]
    KeywordCase {
        /// The keyword as written.
        found: String,
        /// The keyword in lower case.
        expected: &'static str,
    },
    /// No `)` at the end.
    #[error("missing closing `)`")]
    MissingParen,
    /// Something after the closing `)`.
    #[error("unexpected text `{found}` after the closing `)`: remove it")]
    TrailingText {
        /// The text after the first `)`.
        found: String,
    },
    /// `rate()`.
    #[error("rate(): expected `rate(value unit)`, e.g. `rate(5 minutes)`")]
    RateEmpty,
    /// Spaces or other whitespace in the wrong place inside `rate(...)`.
    #[error(
        "unexpected whitespace in rate(): write exactly one space between value and unit, e.g. `rate(5 minutes)`"
    )]
    RateSpacing,
    /// `rate(10)`.
    #[error(
        "rate({value}): missing unit: write `rate(value unit)` with unit minute(s), hour(s) or day(s)"
    )]
    RateMissingUnit {
        /// The value as written.
        value: String,
    },
    /// `rate(foo minutes)`, `rate(-1 minutes)`.
    #[error("rate value `{found}` is not a positive integer: write e.g. `rate(5 minutes)`")]
    RateValueNotNumber {
        /// The value as written.
        found: String,
    },
    /// `rate(0 minutes)`.
    #[error("rate value must be at least 1: write e.g. `rate(1 minute)`")]
    RateValueZero,
    /// `rate(05 minutes)`.
    #[error("rate value `{found}` has a leading zero: write `{expected}`")]
    RateLeadingZero {
        /// The value as written.
        found: String,
        /// The value without leading zeros.
        expected: String,
    },
    /// A value that does not fit in 32 bits.
    #[error("rate value `{found}` is too large: the maximum is 4294967295")]
    RateValueTooLarge {
        /// The value as written.
        found: String,
    },
    /// `rate(10 seconds)`.
    #[error("unknown rate unit `{found}`: expected minute(s), hour(s) or day(s)")]
    RateUnknownUnit {
        /// The unit as written.
        found: String,
    },
    /// `rate(10 MINUTES)`.
    #[error("rate unit `{found}` must be lower case: write `{expected}`")]
    RateUnitCase {
        /// The unit as written.
        found: String,
        /// The unit in lower case.
        expected: &'static str,
    },
    /// `rate(1 minutes)`.
    #[error("rate({value} {found}): use the singular `{expected}` when the value is 1")]
    RateNeedsSingular {
        /// The value as written.
        value: String,
        /// The unit as written.
        found: String,
        /// The singular unit.
        expected: &'static str,
    },
    /// `rate(10 minute)`.
    #[error("rate({value} {found}): use the plural `{expected}` when the value is not 1")]
    RateNeedsPlural {
        /// The value as written.
        value: String,
        /// The unit as written.
        found: String,
        /// The plural unit.
        expected: &'static str,
    },
    /// Not exactly six fields.
    #[error(
        "cron expression has {found} field{}: expected 6 (minutes hours day-of-month month day-of-week year)",
        if *.found == 1 { "" } else { "s" }
    )]
    CronFieldCount {
        /// Number of fields found.
        found: usize,
    },
    /// Fields not separated by exactly one space.
    #[error("cron fields must be separated by exactly one space")]
    CronSpacing,
    /// `1,,2` or a trailing `,`.
    #[error("empty {field} term: remove the extra `,`")]
    CronEmptyTerm {
        /// The field.
        field: CronField,
    },
    /// A number outside the field's range.
    #[error("{field} {found} is out of range {}-{}", .field.min(), .field.max())]
    CronOutOfRange {
        /// The field.
        field: CronField,
        /// The number as written.
        found: String,
    },
    /// A token that is not a value of the field.
    #[error("unknown {field} `{found}`: expected {}", .field.expected())]
    CronUnknownValue {
        /// The field.
        field: CronField,
        /// The token as written.
        found: String,
    },
    /// A step that is not a number in `1..=span`.
    #[error("{field} step `{found}` must be a number from 1 to {}", .field.span())]
    CronBadStep {
        /// The field.
        field: CronField,
        /// The step as written.
        found: String,
    },
    /// `?`, `L`, `W` or `#` in a field that does not accept it.
    #[error("`{found}` is not allowed in the {field} field: {}", special_hint(*.found))]
    CronSpecialNotAllowed {
        /// The field.
        field: CronField,
        /// The special character.
        found: char,
    },
    /// `?`, `L`, `LW`, `nW`, `nL` or `d#n` combined with lists, ranges or steps.
    #[error(
        "`{found}` must be the only term of the {field} field: it cannot be combined with lists, ranges or steps"
    )]
    CronSpecialNotAlone {
        /// The field.
        field: CronField,
        /// The special term as written.
        found: String,
    },
    /// Neither day field is `?`.
    #[error("day-of-month and day-of-week cannot both be set: one of them must be `?`")]
    CronBothDays,
    /// Both day fields are `?`.
    #[error("day-of-month and day-of-week cannot both be `?`: set one of them, e.g. `*`")]
    CronNoDays,
    /// `d#n` with `n` outside 1-5.
    #[error("occurrence `{found}` after `#` is out of range 1-5")]
    CronNthOutOfRange {
        /// The occurrence as written.
        found: String,
    },
    /// `2025-2020` in the year field.
    #[error("year range `{found}` is reversed: write the earlier year first")]
    CronReversedYears {
        /// The range as written.
        found: String,
    },
    /// An `at(...)` argument not shaped like `yyyy-mm-ddThh:mm:ss`.
    #[error(
        "invalid at() time `{found}`: expected `yyyy-mm-ddThh:mm:ss`, e.g. `at(2030-01-01T09:00:00)`"
    )]
    AtFormat {
        /// The argument as written.
        found: String,
    },
    /// A zone or fraction after the seconds.
    #[error(
        "at() takes a local time without zone or fractional seconds: remove `{found}` and set the time zone separately"
    )]
    AtSuffix {
        /// The text after the seconds.
        found: String,
    },
    /// `2030-02-30`.
    #[error("`{found}` is not a valid calendar date")]
    AtInvalidDate {
        /// The date as written.
        found: String,
    },
    /// `25:00:00`.
    #[error(
        "`{found}` is not a valid time of day: expected hours 00-23, minutes and seconds 00-59"
    )]
    AtInvalidTime {
        /// The time as written.
        found: String,
    },
}
