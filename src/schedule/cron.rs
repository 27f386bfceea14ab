//! Compiled `cron(...)` expressions: matching a local time and finding the next match.
//!
//! The search jumps field by field (year, month, day, hour, minute) using bit sets, so finding
//! the next fire costs at most a few thousand cheap month steps even when the expression never
//! fires again; it never walks minute by minute. Local wall-clock times are mapped to UTC with the
//! EventBridge Scheduler DST rules in [`CronExpr::next_after`].

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use super::bitset::BitSet;
use super::days::DayRule;
use super::error::CronField;
use super::tz;

/// A parsed and compiled `cron(min hour day-of-month month day-of-week year)` expression.
///
/// Each field is a bit set of allowed values (years stored as `year - 1970`); the two day fields
/// are compiled into a single day rule because exactly one of them is `?`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CronExpr {
    minutes: BitSet,
    hours: BitSet,
    days: DayRule,
    months: BitSet,
    years: BitSet,
    /// The six fields as written, names and letters in upper case, single-space separated.
    text: Box<str>,
}

impl CronExpr {
    /// Assembles a compiled expression; the parser guarantees that no set is empty.
    pub(super) fn new(fields: CompiledFields, text: String) -> Self {
        Self {
            minutes: fields.minutes,
            hours: fields.hours,
            days: fields.days,
            months: fields.months,
            years: fields.years,
            text: text.into_boxed_str(),
        }
    }

    /// Whether local wall-clock time `t` matches, at minute resolution (seconds are ignored).
    #[must_use]
    pub fn matches_local(&self, t: NaiveDateTime) -> bool {
        self.minutes.contains(t.minute())
            && self.hours.contains(t.hour())
            && self.months.contains(t.month())
            && year_index(t.year()).is_some_and(|y| self.years.contains(y))
            && self.days.mask(t.year(), t.month()) & (1 << t.day()) != 0
    }

    /// The first fire strictly after `after`, evaluating the expression in the local time of `tz`.
    ///
    /// A matching local time that does not exist (skipped by a spring-forward change) does not
    /// fire; a matching local time that occurs twice (repeated by a fall-back change) fires once,
    /// at its first occurrence. Returns `None` when no fire exists up to the end of year 2199.
    pub(super) fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut from = tz::first_local_minute_after(tz, after)?;
        loop {
            let local = self.next_local_match(from)?;
            match tz::first_occurrence(tz, local) {
                Some(fire) if fire > after => return Some(fire),
                // In a DST gap, or already fired before `after` (the first pass of a fold).
                _ => from = local.checked_add_signed(TimeDelta::minutes(1))?,
            }
        }
    }

    /// The first matching local time at or after `from` (whose seconds must be zero).
    pub(super) fn next_local_match(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let date = self.next_date(from.date())?;
        let from_minute = if date == from.date() {
            from.hour() * 60 + from.minute()
        } else {
            0
        };
        if let Some(time) = self.first_time_from(from_minute) {
            return Some(date.and_time(time));
        }
        let date = self.next_date(date.succ_opt()?)?;
        self.first_time_from(0).map(|time| date.and_time(time))
    }

    /// The first matching time of day at or after minute-of-day `from_minute`.
    fn first_time_from(&self, from_minute: u32) -> Option<NaiveTime> {
        let (hour, minute) = (from_minute / 60, from_minute % 60);
        let first_hour = self.hours.next_from(hour)?;
        if first_hour == hour
            && let Some(m) = self.minutes.next_from(minute)
        {
            return NaiveTime::from_hms_opt(hour, m, 0);
        }
        let next_hour = if first_hour == hour {
            self.hours.next_from(hour + 1)?
        } else {
            first_hour
        };
        NaiveTime::from_hms_opt(next_hour, self.minutes.next_from(0)?, 0)
    }

    /// The first matching date at or after `from`, or `None` past year 2199.
    fn next_date(&self, from: NaiveDate) -> Option<NaiveDate> {
        let (mut year, mut month, mut day) = (from.year(), from.month(), from.day());
        if year < CronField::Year.min() as i32 {
            (year, month, day) = (CronField::Year.min() as i32, 1, 1);
        }
        loop {
            let index = year_index(year)?;
            let next_year = self.years.next_from(index)?;
            if next_year != index {
                (year, month, day) = (year_from_index(next_year), 1, 1);
            }
            let Some(next_month) = self.months.next_from(month) else {
                (year, month, day) = (year + 1, 1, 1);
                continue;
            };
            if next_month != month {
                (month, day) = (next_month, 1);
            }
            let days = self.days.mask(year, month) & !((1u32 << day) - 1);
            if days != 0 {
                return NaiveDate::from_ymd_opt(year, month, days.trailing_zeros());
            }
            (year, month, day) = if month == 12 {
                (year + 1, 1, 1)
            } else {
                (year, month + 1, 1)
            };
        }
    }
}

/// The compiled fields handed from the parser to [`CronExpr::new`].
pub(super) struct CompiledFields {
    /// Minutes 0-59.
    pub(super) minutes: BitSet,
    /// Hours 0-23.
    pub(super) hours: BitSet,
    /// The day-of-month or day-of-week rule.
    pub(super) days: DayRule,
    /// Months 1-12.
    pub(super) months: BitSet,
    /// Years as offsets from 1970.
    pub(super) years: BitSet,
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron({})", self.text)
    }
}

/// The bit index of `year` in the year set, if it is within 1970-2199.
fn year_index(year: i32) -> Option<u32> {
    let index = u32::try_from(year)
        .ok()?
        .checked_sub(CronField::Year.min())?;
    (index < CronField::Year.span()).then_some(index)
}

/// The year stored at bit `index` of the year set.
fn year_from_index(index: u32) -> i32 {
    (CronField::Year.min() + index) as i32
}
