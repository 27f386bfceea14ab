//! `at(yyyy-mm-ddThh:mm:ss)` one-time expressions (EventBridge Scheduler).
//!
//! The argument is a local wall-clock time in the schedule's time zone: exactly
//! `yyyy-mm-ddThh:mm:ss` with a 4-digit year and upper-case `T`, no zone suffix and no fractional
//! seconds. It fires once, at the first instant the local clock shows that time; a local time
//! inside a DST gap never exists and therefore never fires.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::error::{ScheduleError, ScheduleErrorKind};
use super::tz;

/// The shape of the argument: `d` is an ASCII digit, anything else must match literally.
const SHAPE: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";

/// Offset of the time part in the argument.
const TIME_OFFSET: usize = 11;

/// Parses the text between `at(` and `)`; `base` is its byte offset in the whole expression.
pub(super) fn parse(inner: &str, base: usize) -> Result<NaiveDateTime, ScheduleError> {
    let err = |offset: usize, kind| ScheduleError::new(base + offset, kind);
    if let Some(at) = shape_mismatch(inner) {
        return Err(err(
            at,
            ScheduleErrorKind::AtFormat {
                found: inner.to_owned(),
            },
        ));
    }
    if inner.len() > SHAPE.len() {
        let found = inner[SHAPE.len()..].to_owned();
        return Err(err(SHAPE.len(), ScheduleErrorKind::AtSuffix { found }));
    }
    let number = |range: std::ops::Range<usize>| {
        inner.as_bytes()[range]
            .iter()
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'))
    };
    let year = number(0..4) as i32;
    let date = NaiveDate::from_ymd_opt(year, number(5..7), number(8..10)).ok_or_else(|| {
        let found = inner[..10].to_owned();
        err(0, ScheduleErrorKind::AtInvalidDate { found })
    })?;
    let time = NaiveTime::from_hms_opt(number(11..13), number(14..16), number(17..19)).ok_or_else(
        || {
            let found = inner[TIME_OFFSET..].to_owned();
            err(TIME_OFFSET, ScheduleErrorKind::AtInvalidTime { found })
        },
    )?;
    Ok(date.and_time(time))
}

/// Offset of the first byte that does not fit [`SHAPE`] (or the end, when too short).
fn shape_mismatch(inner: &str) -> Option<usize> {
    let bytes = inner.as_bytes();
    let mismatch = SHAPE.iter().enumerate().find(|&(i, &want)| {
        bytes.get(i).is_none_or(|&b| {
            if want == b'd' {
                !b.is_ascii_digit()
            } else {
                b != want
            }
        })
    });
    mismatch.map(|(i, _)| i)
}

/// The fire of a one-time schedule if it is strictly after `after`.
pub(super) fn next_after(
    local: NaiveDateTime,
    after: DateTime<Utc>,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    tz::first_occurrence(tz, local).filter(|&fire| fire > after)
}
