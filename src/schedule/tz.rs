//! Local wall-clock time <-> UTC mapping with the EventBridge Scheduler DST rules, and the
//! DST-change note shown next to upcoming fires.

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use super::error::CronField;

/// The first instant at which the wall clock of `tz` shows `local`.
///
/// `None` when `local` does not exist (skipped by a spring-forward change); for a local time that
/// occurs twice (repeated by a fall-back change) the earlier instant.
pub(super) fn first_occurrence(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The first whole local minute (seconds zero) of `tz` that is strictly later than the local
/// time at `after`.
///
/// Every local time before it first occurs at or before `after`, so it is where the search for
/// the next fire starts. `None` when `after` is past the supported range (after 2200 UTC, which
/// is after 2199 in every zone); before the range (1970) the search starts at 1969-01-01 local.
/// Both bounds keep extreme instants from overflowing the local time.
pub(super) fn first_local_minute_after(tz: Tz, after: DateTime<Utc>) -> Option<NaiveDateTime> {
    let first_year = CronField::Year.min() as i32;
    if after.year() > CronField::Year.max() as i32 + 1 {
        return None;
    }
    if after.year() < first_year - 1 {
        return NaiveDate::from_ymd_opt(first_year - 1, 1, 1)?.and_hms_opt(0, 0, 0);
    }
    let local = after.with_timezone(&tz).naive_local();
    local
        .with_second(0)?
        .with_nanosecond(0)?
        .checked_add_signed(TimeDelta::minutes(1))
}

/// A note when the UTC offset of `tz` changes within 24 hours either side of `instant`, e.g.
/// `"DST change: UTC-04:00 -> UTC-05:00 on 2026-11-01"` (the date is local, after the change).
#[must_use]
pub fn dst_note(tz: Tz, instant: DateTime<Utc>) -> Option<String> {
    let day = TimeDelta::hours(24);
    let before = instant.checked_sub_signed(day)?;
    let after = instant.checked_add_signed(day)?;
    let change = find_change(tz, before, instant).or_else(|| find_change(tz, instant, after))?;
    let (old, new) = (
        offset_at(tz, change - TimeDelta::seconds(1)),
        offset_at(tz, change),
    );
    Some(format!(
        "DST change: {} -> {} on {}",
        format_offset(old),
        format_offset(new),
        change.with_timezone(&tz).date_naive()
    ))
}

/// UTC offset of `tz` at `instant`, in seconds east of UTC.
fn offset_at(tz: Tz, instant: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&instant.naive_utc())
        .fix()
        .local_minus_utc()
}

/// The first instant (to the second) in `(from, to]` with a different offset than at `from`,
/// assuming at most one change in the interval; `None` if the offsets at both ends are equal.
fn find_change(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let start_offset = offset_at(tz, from);
    if offset_at(tz, to) == start_offset {
        return None;
    }
    let (mut lo, mut hi) = (from.timestamp(), to.timestamp());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let mid_time = DateTime::from_timestamp(mid, 0)?;
        if offset_at(tz, mid_time) == start_offset {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// `UTC+05:30`, `UTC-04:00`, `UTC+00:00` (seconds only when not zero).
fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    if s == 0 {
        format!("UTC{sign}{h:02}:{m:02}")
    } else {
        format!("UTC{sign}{h:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America::New_York, Asia::Kolkata, Australia::Lord_Howe, Europe::London};

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn dst_note_new_york_fall_back() {
        let note = dst_note(New_York, utc("2026-11-01T05:30:00Z"));
        assert_eq!(
            note.as_deref(),
            Some("DST change: UTC-04:00 -> UTC-05:00 on 2026-11-01")
        );
        // 23 hours before the change (06:00Z) still notes it; 25 hours before does not.
        assert!(dst_note(New_York, utc("2026-10-31T07:00:00Z")).is_some());
        assert!(dst_note(New_York, utc("2026-10-31T05:00:00Z")).is_none());
        assert!(dst_note(New_York, utc("2026-11-02T05:59:00Z")).is_some());
        assert!(dst_note(New_York, utc("2026-11-02T06:01:00Z")).is_none());
    }

    #[test]
    fn dst_note_other_zones() {
        assert_eq!(
            dst_note(London, utc("2026-03-29T12:00:00Z")).as_deref(),
            Some("DST change: UTC+00:00 -> UTC+01:00 on 2026-03-29")
        );
        assert_eq!(
            dst_note(Lord_Howe, utc("2026-04-05T00:00:00Z")).as_deref(),
            Some("DST change: UTC+11:00 -> UTC+10:30 on 2026-04-05")
        );
        assert_eq!(dst_note(Kolkata, utc("2026-03-29T12:00:00Z")), None);
        assert_eq!(dst_note(Tz::UTC, utc("2026-03-29T12:00:00Z")), None);
    }

    #[test]
    fn offsets_are_formatted_with_sign() {
        assert_eq!(format_offset(0), "UTC+00:00");
        assert_eq!(format_offset(19800), "UTC+05:30");
        assert_eq!(format_offset(-14400), "UTC-04:00");
        assert_eq!(format_offset(-2670), "UTC-00:44:30");
    }

    #[test]
    fn first_occurrence_gap_and_fold() {
        let local = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap();
        assert_eq!(first_occurrence(New_York, local("2026-03-08T02:30")), None);
        assert_eq!(
            first_occurrence(New_York, local("2026-11-01T01:30")),
            Some(utc("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn first_local_minute_is_strictly_later() {
        let start = |s| {
            first_local_minute_after(Tz::UTC, utc(s))
                .unwrap()
                .to_string()
        };
        assert_eq!(start("2024-01-01T12:00:00Z"), "2024-01-01 12:01:00");
        assert_eq!(start("2024-01-01T12:00:30Z"), "2024-01-01 12:01:00");
        assert_eq!(
            first_local_minute_after(Tz::UTC, utc("2201-01-01T00:00:00Z")),
            None
        );
    }
}
