//! DST behaviour (EventBridge Scheduler): skipped local times do not fire, repeated local times
//! fire once (first occurrence), rates ignore DST.
//!
//! 2026 transitions: New York 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z) and 2026-11-01
//! 02:00 EDT -> 01:00 EST (06:00Z); London 2026-03-29 01:00 GMT -> 02:00 BST (01:00Z) and
//! 2026-10-25 02:00 BST -> 01:00 GMT (01:00Z); Lord Howe 2026-04-05 02:00 -> 01:30 (15:00Z the
//! day before) and 2026-10-04 02:00 -> 02:30 (15:30Z the day before).

use chrono_tz::{America::New_York, Australia::Lord_Howe, Europe::London};

use super::super::fires;
use super::{expr, first_fires, no_anchor, utc};

#[test]
fn new_york_spring_forward_skips_the_missing_time() {
    assert_eq!(
        first_fires("cron(30 2 * * ? *)", New_York, "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z"
        ]
    );
    assert_eq!(
        first_fires("cron(0 2 * * ? *)", New_York, "2026-03-07T12:00:00Z", 1),
        ["2026-03-09T06:00:00Z"]
    );
}

#[test]
fn new_york_fall_back_fires_once_at_the_first_occurrence() {
    assert_eq!(
        first_fires("cron(30 1 * * ? *)", New_York, "2026-10-31T00:00:00Z", 3),
        [
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z"
        ]
    );
    // Starting inside the repeated hour (01:10 EST, second pass): 01:30 already fired.
    assert_eq!(
        first_fires("cron(30 1 * * ? *)", New_York, "2026-11-01T06:10:00Z", 1),
        ["2026-11-02T06:30:00Z"]
    );
}

#[test]
fn new_york_half_hours_around_spring_forward() {
    // Every real half hour fires; local 02:00 and 02:30 do not exist.
    assert_eq!(
        first_fires("cron(*/30 * * * ? *)", New_York, "2026-03-08T05:45:00Z", 5),
        [
            "2026-03-08T06:00:00Z", // 01:00 EST
            "2026-03-08T06:30:00Z", // 01:30 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT
            "2026-03-08T07:30:00Z", // 03:30 EDT
            "2026-03-08T08:00:00Z", // 04:00 EDT
        ]
    );
}

#[test]
fn new_york_half_hours_around_fall_back() {
    // 01:00 and 01:30 fire during the first pass (EDT) only, leaving a 90-minute gap.
    assert_eq!(
        first_fires("cron(*/30 * * * ? *)", New_York, "2026-11-01T04:00:00Z", 5),
        [
            "2026-11-01T04:30:00Z", // 00:30 EDT
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T05:30:00Z", // 01:30 EDT
            "2026-11-01T07:00:00Z", // 02:00 EST
            "2026-11-01T07:30:00Z", // 02:30 EST
        ]
    );
    // From inside the second pass the search resumes after the repeated hour.
    assert_eq!(
        first_fires("cron(*/30 * * * ? *)", New_York, "2026-11-01T06:10:00Z", 1),
        ["2026-11-01T07:00:00Z"]
    );
}

#[test]
fn london_both_transitions() {
    assert_eq!(
        first_fires("cron(30 1 * * ? *)", London, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z"
        ]
    );
    assert_eq!(
        first_fires("cron(30 1 * * ? *)", London, "2026-10-23T12:00:00Z", 3),
        [
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z"
        ]
    );
    assert_eq!(
        first_fires("cron(*/30 * * * ? *)", London, "2026-10-24T23:00:00Z", 4),
        [
            "2026-10-24T23:30:00Z", // 00:30 BST
            "2026-10-25T00:00:00Z", // 01:00 BST
            "2026-10-25T00:30:00Z", // 01:30 BST
            "2026-10-25T02:00:00Z", // 02:00 GMT
        ]
    );
    assert_eq!(
        first_fires("cron(*/30 * * * ? *)", London, "2026-03-29T00:15:00Z", 3),
        [
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:30:00Z"
        ]
    );
}

#[test]
fn lord_howe_half_hour_transitions() {
    // Spring forward 02:00 -> 02:30: 02:15 does not exist on 2026-10-04.
    assert_eq!(
        first_fires("cron(15 2 * * ? *)", Lord_Howe, "2026-10-02T12:00:00Z", 2),
        ["2026-10-02T15:45:00Z", "2026-10-04T15:15:00Z"]
    );
    // Fall back 02:00 -> 01:30: 01:45 repeats on 2026-04-05 and fires once (+11:00).
    assert_eq!(
        first_fires("cron(45 1 * * ? *)", Lord_Howe, "2026-04-03T12:00:00Z", 3),
        [
            "2026-04-03T14:45:00Z",
            "2026-04-04T14:45:00Z",
            "2026-04-05T15:15:00Z"
        ]
    );
}

#[test]
fn at_in_a_gap_never_fires_and_in_a_fold_fires_first() {
    let gap = expr("at(2026-03-08T02:30:00)");
    assert_eq!(
        gap.next_after(utc("2026-01-01T00:00:00Z"), New_York, no_anchor()),
        None
    );
    let fold = expr("at(2026-11-01T01:30:00)");
    assert_eq!(
        fold.next_after(utc("2026-01-01T00:00:00Z"), New_York, no_anchor()),
        Some(utc("2026-11-01T05:30:00Z"))
    );
    assert_eq!(
        fold.next_after(utc("2026-11-01T05:30:00Z"), New_York, no_anchor()),
        None
    );
}

#[test]
fn rates_ignore_dst() {
    let hourly = expr("rate(1 hour)");
    let anchor = utc("2026-11-01T04:00:00Z");
    let all: Vec<_> = fires(&hourly, New_York, anchor, anchor).take(4).collect();
    assert_eq!(
        all,
        [
            utc("2026-11-01T05:00:00Z"),
            utc("2026-11-01T06:00:00Z"),
            utc("2026-11-01T07:00:00Z"),
            utc("2026-11-01T08:00:00Z")
        ]
    );
    let daily = expr("rate(1 day)");
    let anchor = utc("2026-03-07T12:00:00Z");
    let all: Vec<_> = fires(&daily, New_York, anchor, anchor).take(2).collect();
    assert_eq!(
        all,
        [utc("2026-03-08T12:00:00Z"), utc("2026-03-09T12:00:00Z")]
    );
}

#[test]
fn dst_note_flags_fires_next_to_a_change() {
    let fire = utc("2026-11-01T05:30:00Z");
    assert_eq!(
        super::super::dst_note(New_York, fire).as_deref(),
        Some("DST change: UTC-04:00 -> UTC-05:00 on 2026-11-01")
    );
    assert_eq!(
        super::super::dst_note(New_York, utc("2026-03-08T12:00:00Z")).as_deref(),
        Some("DST change: UTC-05:00 -> UTC-04:00 on 2026-03-08")
    );
    assert_eq!(
        super::super::dst_note(New_York, utc("2026-07-01T00:00:00Z")),
        None
    );
    for extreme in [
        chrono::DateTime::<chrono::Utc>::MIN_UTC,
        chrono::DateTime::<chrono::Utc>::MAX_UTC,
    ] {
        assert_eq!(super::super::dst_note(New_York, extreme), None);
    }
}

#[test]
fn the_last_local_year_extends_past_2199_utc() {
    assert_eq!(
        first_fires(
            "cron(59 23 31 12 ? 2199)",
            New_York,
            "2200-01-01T02:00:00Z",
            2
        ),
        ["2200-01-01T04:59:00Z"]
    );
}
