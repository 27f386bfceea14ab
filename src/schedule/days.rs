//! The day part of a cron expression (day-of-month or day-of-week) and the calendar arithmetic
//! it needs.
//!
//! Exactly one of the two AWS day fields is set, so both are compiled into one [`DayRule`]. The
//! rule answers one question: which days of a given month match, as a bit mask (bit `d` set when
//! day `d` matches), which makes both matching and searching a matter of bit operations.
//!
//! Weekdays are numbered as AWS does: 1 = Sunday ... 7 = Saturday.

use super::bitset::BitSet;

/// AWS day-of-week number of Saturday.
pub(super) const SATURDAY: u32 = 7;
/// AWS day-of-week number of Sunday.
const SUNDAY: u32 = 1;

/// Which days of a month match, from either the day-of-month or the day-of-week field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum DayRule {
    /// Day-of-month values, lists, ranges, steps or `*` (members 1-31).
    MonthDays(BitSet),
    /// Day-of-month `L`: the last day of the month.
    LastDay,
    /// Day-of-month `LW`: the last Monday-Friday of the month.
    LastWeekday,
    /// Day-of-month `nW`: the Monday-Friday nearest day `n`, within the month. When the month is
    /// shorter than `n`, its last day is used instead of `n`.
    NearestWeekday(u32),
    /// Day-of-week values, lists, ranges or `*` (members 1-7, 1 = Sunday); `L` alone is Saturday.
    WeekDays(BitSet),
    /// Day-of-week `nL`: the last weekday `n` of the month.
    LastOfWeekday(u32),
    /// Day-of-week `d#n`: the `n`-th weekday `d` of the month (n in 1-5).
    NthWeekday {
        /// Weekday, 1 = Sunday.
        weekday: u32,
        /// Occurrence, 1-5.
        nth: u32,
    },
}

impl DayRule {
    /// The matching days of `month` in `year` as a bit mask: bit `d` is set when day `d` matches.
    pub(super) fn mask(&self, year: i32, month: u32) -> u32 {
        let last = days_in_month(year, month);
        let first_weekday = weekday(year, month, 1);
        match *self {
            DayRule::MonthDays(days) => days.low_word() as u32 & days_up_to(last),
            DayRule::LastDay => 1 << last,
            DayRule::LastWeekday => 1 << nearest_weekday(last, last, first_weekday),
            DayRule::NearestWeekday(day) => {
                1 << nearest_weekday(day.min(last), last, first_weekday)
            }
            DayRule::WeekDays(weekdays) => weekdays_mask(weekdays, last, first_weekday),
            DayRule::LastOfWeekday(wd) => {
                let last_weekday = weekday_of(last, first_weekday);
                1 << (last - (last_weekday + 7 - wd) % 7)
            }
            DayRule::NthWeekday { weekday: wd, nth } => {
                let day = first_day_with_weekday(wd, first_weekday) + 7 * (nth - 1);
                if day <= last { 1 << day } else { 0 }
            }
        }
    }
}

/// Bits 1..=`last` set.
fn days_up_to(last: u32) -> u32 {
    (((1u64 << (last + 1)) - 1) & !1) as u32
}

/// Days 1..=`last` whose weekday is in `weekdays`.
fn weekdays_mask(weekdays: BitSet, last: u32, first_weekday: u32) -> u32 {
    (1..=7)
        .filter(|&wd| weekdays.contains(wd))
        .flat_map(|wd| (first_day_with_weekday(wd, first_weekday)..=last).step_by(7))
        .fold(0, |mask, day| mask | 1 << day)
}

/// The first day of a month (1-7) falling on weekday `wd`, given the weekday of the 1st.
fn first_day_with_weekday(wd: u32, first_weekday: u32) -> u32 {
    1 + (wd + 7 - first_weekday) % 7
}

/// The weekday of `day`, given the weekday of the 1st of the same month.
fn weekday_of(day: u32, first_weekday: u32) -> u32 {
    (first_weekday - 1 + day - 1) % 7 + 1
}

/// The Monday-Friday nearest `day` without leaving the month (Quartz `W` semantics): Saturday
/// moves back to Friday unless that leaves the month (the 1st moves forward to Monday the 3rd),
/// Sunday moves forward to Monday unless that leaves the month (the last day moves back to
/// Friday).
fn nearest_weekday(day: u32, last: u32, first_weekday: u32) -> u32 {
    match weekday_of(day, first_weekday) {
        SATURDAY if day == 1 => 3,
        SATURDAY => day - 1,
        SUNDAY if day == last => day - 2,
        SUNDAY => day + 1,
        _ => day,
    }
}

/// Whether `year` is a Gregorian leap year.
fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Number of days in `month` (1-12) of `year`.
pub(super) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// AWS day-of-week (1 = Sunday ... 7 = Saturday) of a Gregorian date with `year >= 1`
/// (Sakamoto's method).
pub(super) fn weekday(year: i32, month: u32, day: u32) -> u32 {
    const OFFSETS: [u32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = (if month < 3 { year - 1 } else { year }).max(0) as u32;
    let index = (month.clamp(1, 12) - 1) as usize;
    (y + y / 4 - y / 100 + y / 400 + OFFSETS[index] + day) % 7 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};

    fn set(values: &[u32]) -> BitSet {
        let mut s = BitSet::default();
        values.iter().for_each(|&v| s.insert(v));
        s
    }

    fn days(mask: u32) -> Vec<u32> {
        (1..=31).filter(|d| mask & (1 << d) != 0).collect()
    }

    #[test]
    fn weekday_agrees_with_chrono() {
        let mut date = NaiveDate::from_ymd_opt(1969, 12, 1).unwrap();
        while date.year() < 2201 {
            let expected = date.weekday().num_days_from_sunday() + 1;
            assert_eq!(
                weekday(date.year(), date.month(), date.day()),
                expected,
                "{date}"
            );
            date = date.succ_opt().unwrap();
        }
    }

    #[test]
    fn days_in_month_agrees_with_chrono() {
        for year in [1970, 2000, 2023, 2024, 2100, 2199] {
            for month in 1..=12 {
                let next = if month == 12 {
                    NaiveDate::from_ymd_opt(year + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(year, month + 1, 1)
                };
                let last = next.unwrap().pred_opt().unwrap().day();
                assert_eq!(days_in_month(year, month), last, "{year}-{month}");
            }
        }
    }

    #[test]
    fn nearest_weekday_rules() {
        // June 2024: the 1st is a Saturday, the 30th a Sunday.
        let rule = |d| days(DayRule::NearestWeekday(d).mask(2024, 6));
        assert_eq!(rule(1), [3]);
        assert_eq!(rule(15), [14]); // Saturday -> Friday
        assert_eq!(rule(16), [17]); // Sunday -> Monday
        assert_eq!(rule(30), [28]); // last day Sunday -> Friday
        assert_eq!(rule(31), [28]); // 31W in a 30-day month: uses the 30th
        assert_eq!(rule(12), [12]);
        // August 2026: the 31st is a Monday; the 1st a Saturday.
        assert_eq!(days(DayRule::NearestWeekday(31).mask(2026, 8)), [31]);
        // February 2025 ends on a Friday.
        assert_eq!(days(DayRule::NearestWeekday(31).mask(2025, 2)), [28]);
    }

    #[test]
    fn last_day_rules() {
        assert_eq!(days(DayRule::LastDay.mask(2024, 2)), [29]);
        assert_eq!(days(DayRule::LastDay.mask(2023, 2)), [28]);
        // August 2026 ends Monday; May 2026 ends Sunday; Jan 2026 ends Saturday.
        assert_eq!(days(DayRule::LastWeekday.mask(2026, 8)), [31]);
        assert_eq!(days(DayRule::LastWeekday.mask(2026, 5)), [29]);
        assert_eq!(days(DayRule::LastWeekday.mask(2026, 1)), [30]);
    }

    #[test]
    fn weekday_rules() {
        // June 2024 starts on a Saturday.
        assert_eq!(
            days(DayRule::WeekDays(set(&[1])).mask(2024, 6)),
            [2, 9, 16, 23, 30]
        );
        assert_eq!(days(DayRule::LastOfWeekday(6).mask(2024, 6)), [28]);
        assert_eq!(days(DayRule::LastOfWeekday(1).mask(2024, 6)), [30]);
        assert_eq!(days(DayRule::LastOfWeekday(7).mask(2024, 6)), [29]);
        let nth = |weekday, nth| days(DayRule::NthWeekday { weekday, nth }.mask(2024, 6));
        assert_eq!(nth(3, 2), [11]);
        assert_eq!(nth(7, 1), [1]);
        assert_eq!(nth(7, 5), [29]);
        assert_eq!(nth(1, 5), [30]);
        assert!(nth(2, 5).is_empty());
    }

    #[test]
    fn month_days_are_clipped_to_the_month() {
        let all = set(&(1..=31).collect::<Vec<_>>());
        assert_eq!(days(DayRule::MonthDays(all).mask(2023, 2)).len(), 28);
        assert!(days(DayRule::MonthDays(set(&[30])).mask(2024, 2)).is_empty());
    }
}
