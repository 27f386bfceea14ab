//! Next-fire tables in UTC: every cron feature, rate anchoring, at(), year bounds and speed.

use chrono::{Datelike, Weekday};
use chrono_tz::{Europe::Berlin, Tz};

use super::super::fires;
use super::{expr, first_fires, next_utc, no_anchor, utc};

#[test]
fn next_fire_table() {
    let table: &[(&str, &str, Option<&str>)] = &[
        (
            "cron(0 12 * * ? *)",
            "2024-01-01T12:00:30Z",
            Some("2024-01-02T12:00:00Z"),
        ),
        (
            "cron(0 12 * * ? *)",
            "2024-01-01T11:59:59Z",
            Some("2024-01-01T12:00:00Z"),
        ),
        (
            "cron(0 12 * * ? *)",
            "2024-01-01T12:00:00Z",
            Some("2024-01-02T12:00:00Z"),
        ),
        (
            "cron(0 18 ? * MON-FRI *)",
            "2024-06-01T00:00:00Z",
            Some("2024-06-03T18:00:00Z"),
        ),
        (
            "cron(0 8 1W * ? *)",
            "2024-06-01T00:00:00Z",
            Some("2024-06-03T08:00:00Z"),
        ),
        (
            "cron(0 8 15W * ? *)",
            "2024-06-01T00:00:00Z",
            Some("2024-06-14T08:00:00Z"),
        ),
        (
            "cron(0 8 16W * ? *)",
            "2024-06-01T00:00:00Z",
            Some("2024-06-17T08:00:00Z"),
        ),
        (
            "cron(0 8 31W * ? *)",
            "2024-06-01T00:00:00Z",
            Some("2024-06-28T08:00:00Z"),
        ),
        (
            "cron(0 8 31W * ? *)",
            "2024-04-01T00:00:00Z",
            Some("2024-04-30T08:00:00Z"),
        ),
        (
            "cron(0 8 L * ? *)",
            "2024-02-01T00:00:00Z",
            Some("2024-02-29T08:00:00Z"),
        ),
        (
            "cron(0 8 L * ? *)",
            "2023-02-01T00:00:00Z",
            Some("2023-02-28T08:00:00Z"),
        ),
        (
            "cron(0 8 L * ? *)",
            "2024-02-29T08:00:00Z",
            Some("2024-03-31T08:00:00Z"),
        ),
        (
            "cron(0 2 ? * 3#2 *)",
            "2024-01-01T00:00:00Z",
            Some("2024-01-09T02:00:00Z"),
        ),
        (
            "cron(0 2 ? * 3#2 *)",
            "2024-01-09T02:00:00Z",
            Some("2024-02-13T02:00:00Z"),
        ),
        (
            "cron(0 2 ? * 3#2 *)",
            "2024-02-13T02:00:00Z",
            Some("2024-03-12T02:00:00Z"),
        ),
        (
            "cron(0 2 ? * SAT#3 *)",
            "2024-06-01T00:00:00Z",
            Some("2024-06-15T02:00:00Z"),
        ),
        (
            "cron(0 0 ? * L *)",
            "2024-06-03T00:00:00Z",
            Some("2024-06-08T00:00:00Z"),
        ),
        (
            "cron(0 0 ? * 1 *)",
            "2024-06-03T00:00:00Z",
            Some("2024-06-09T00:00:00Z"),
        ),
        (
            "cron(0 0 ? * SUN *)",
            "2024-06-03T00:00:00Z",
            Some("2024-06-09T00:00:00Z"),
        ),
        (
            "cron(0 0 ? * 2 *)",
            "2024-06-03T00:00:00Z",
            Some("2024-06-10T00:00:00Z"),
        ),
        (
            "cron(0 0 29 2 ? *)",
            "2024-03-01T00:00:00Z",
            Some("2028-02-29T00:00:00Z"),
        ),
        (
            "cron(0 0 29 2 ? *)",
            "2096-03-01T00:00:00Z",
            Some("2104-02-29T00:00:00Z"),
        ),
        ("cron(0 0 30 2 ? *)", "2024-01-01T00:00:00Z", None),
        ("cron(0 0 31 4,6,9,11 ? *)", "2024-01-01T00:00:00Z", None),
        (
            "cron(0 0 31 * ? *)",
            "2024-04-01T00:00:00Z",
            Some("2024-05-31T00:00:00Z"),
        ),
        ("cron(0 0 * * ? 2000-2010)", "2024-01-01T00:00:00Z", None),
        (
            "cron(0 0 * * ? 2000-2010)",
            "1960-05-05T00:00:00Z",
            Some("2000-01-01T00:00:00Z"),
        ),
        ("cron(0 0 * * ? *)", "2199-12-31T00:00:00Z", None),
        (
            "cron(0 0 * * ? *)",
            "2199-12-30T23:59:59Z",
            Some("2199-12-31T00:00:00Z"),
        ),
        (
            "cron(59 23 31 12 ? 2199)",
            "2024-01-01T00:00:00Z",
            Some("2199-12-31T23:59:00Z"),
        ),
        ("cron(59 23 31 12 ? 2199)", "2199-12-31T23:59:00Z", None),
        ("cron(0 0 1 1 ? *)", "2250-01-01T00:00:00Z", None),
        (
            "cron(0 0 ? * 6#5 2026)",
            "2026-01-31T00:00:00Z",
            Some("2026-05-29T00:00:00Z"),
        ),
        ("cron(0 0 ? * 6#5 2026)", "2026-10-30T00:00:00Z", None),
        (
            "cron(0 0 ? * 2#5 2026)",
            "2026-01-01T00:00:00Z",
            Some("2026-03-30T00:00:00Z"),
        ),
        (
            "cron(0 0 ? FEB 1#5 *)",
            "2024-01-01T00:00:00Z",
            Some("2032-02-29T00:00:00Z"),
        ),
        (
            "cron(0 9 ? JAN-MAR,NOV/1 1 2024)",
            "2024-04-01T00:00:00Z",
            Some("2024-11-03T09:00:00Z"),
        ),
        (
            "cron(30 23 28-3 * ? *)",
            "2024-02-28T23:30:00Z",
            Some("2024-02-29T23:30:00Z"),
        ),
        (
            "cron(30 23 28-3 * ? *)",
            "2024-03-03T23:30:00Z",
            Some("2024-03-28T23:30:00Z"),
        ),
        (
            "cron(0 0 1 NOV-FEB ? *)",
            "2024-02-01T00:00:00Z",
            Some("2024-11-01T00:00:00Z"),
        ),
        (
            "cron(0 0 ? * FRI-MON *)",
            "2024-06-04T00:00:00Z",
            Some("2024-06-07T00:00:00Z"),
        ),
        (
            "cron(0 0 1 1 ? 2020/5)",
            "2021-01-01T00:00:00Z",
            Some("2025-01-01T00:00:00Z"),
        ),
        (
            "cron(50-10/5 3 * * ? *)",
            "2024-01-01T03:06:00Z",
            Some("2024-01-01T03:10:00Z"),
        ),
        (
            "cron(50-10/5 3 * * ? *)",
            "2024-01-01T03:10:00Z",
            Some("2024-01-01T03:50:00Z"),
        ),
        (
            "cron(0 20-2/3 * * ? *)",
            "2024-01-01T20:00:00Z",
            Some("2024-01-01T23:00:00Z"),
        ),
        (
            "cron(0 20-2/3 * * ? *)",
            "2024-01-01T23:00:00Z",
            Some("2024-01-02T02:00:00Z"),
        ),
        (
            "cron(* * * * ? *)",
            "2024-12-31T23:59:59.999Z",
            Some("2025-01-01T00:00:00Z"),
        ),
    ];
    for &(text, after, expected) in table {
        assert_eq!(
            next_utc(text, after).as_deref(),
            expected,
            "{text} after {after}"
        );
    }
}

#[test]
fn last_fridays_until_the_year_range_runs_out() {
    let all = first_fires(
        "cron(15 10 ? * 6L 2019-2022)",
        Tz::UTC,
        "2018-06-01T00:00:00Z",
        100,
    );
    assert_eq!(all.len(), 48);
    assert_eq!(
        &all[..4],
        [
            "2019-01-25T10:15:00Z",
            "2019-02-22T10:15:00Z",
            "2019-03-29T10:15:00Z",
            "2019-04-26T10:15:00Z"
        ]
    );
    assert_eq!(all.last().map(String::as_str), Some("2022-12-30T10:15:00Z"));
    for fire in &all {
        let t = utc(fire);
        assert_eq!(t.weekday(), Weekday::Fri, "{fire}");
        assert_ne!(
            (t + chrono::TimeDelta::days(7)).month(),
            t.month(),
            "{fire}"
        );
    }
}

#[test]
fn last_weekdays_of_2026() {
    let fires = first_fires("cron(0 12 LW * ? *)", Tz::UTC, "2025-12-31T12:00:00Z", 12);
    let days: Vec<&str> = fires.iter().map(|f| &f[..10]).collect();
    assert_eq!(
        days,
        [
            "2026-01-30",
            "2026-02-27",
            "2026-03-31",
            "2026-04-30",
            "2026-05-29",
            "2026-06-30",
            "2026-07-31",
            "2026-08-31",
            "2026-09-30",
            "2026-10-30",
            "2026-11-30",
            "2026-12-31"
        ]
    );
}

#[test]
fn fifth_fridays_of_2026_then_none() {
    let all = first_fires(
        "cron(0 0 ? * 6#5 2026)",
        Tz::UTC,
        "2025-06-01T00:00:00Z",
        10,
    );
    assert_eq!(
        all,
        [
            "2026-01-30T00:00:00Z",
            "2026-05-29T00:00:00Z",
            "2026-07-31T00:00:00Z",
            "2026-10-30T00:00:00Z"
        ]
    );
}

#[test]
fn wrapping_hours_on_weekdays() {
    // Sunday noon: Sunday evening does not fire; Monday 00:00-02:30 and 20:00-23:30 do.
    let all = first_fires(
        "cron(0/30 20-2 ? * MON-FRI *)",
        Tz::UTC,
        "2024-06-02T12:00:00Z",
        15,
    );
    let times: Vec<&str> = all.iter().map(|f| &f[5..16]).collect();
    assert_eq!(
        times,
        [
            "06-03T00:00",
            "06-03T00:30",
            "06-03T01:00",
            "06-03T01:30",
            "06-03T02:00",
            "06-03T02:30",
            "06-03T20:00",
            "06-03T20:30",
            "06-03T21:00",
            "06-03T21:30",
            "06-03T22:00",
            "06-03T22:30",
            "06-03T23:00",
            "06-03T23:30",
            "06-04T00:00"
        ]
    );
}

#[test]
fn minute_steps_from_an_offset() {
    let all = first_fires("cron(1/10 * * * ? *)", Tz::UTC, "2024-01-01T00:00:00Z", 7);
    let minutes: Vec<&str> = all.iter().map(|f| &f[11..16]).collect();
    assert_eq!(
        minutes,
        [
            "00:01", "00:11", "00:21", "00:31", "00:41", "00:51", "01:01"
        ]
    );
}

#[test]
fn day_of_week_one_is_sunday() {
    for fire in first_fires("cron(0 0 ? * 1 *)", Tz::UTC, "2024-01-01T00:00:00Z", 60) {
        assert_eq!(utc(&fire).weekday(), Weekday::Sun, "{fire}");
    }
}

#[test]
fn leap_days_only_in_leap_years() {
    let all = first_fires("cron(0 0 29 2 ? *)", Tz::UTC, "2090-01-01T00:00:00Z", 4);
    assert_eq!(
        all,
        [
            "2092-02-29T00:00:00Z",
            "2096-02-29T00:00:00Z",
            "2104-02-29T00:00:00Z",
            "2108-02-29T00:00:00Z"
        ]
    );
}

#[test]
fn at_fires_once_in_its_time_zone() {
    let once = expr("at(2030-01-01T09:00:00)");
    let all: Vec<_> = fires(&once, Berlin, no_anchor(), utc("2029-01-01T00:00:00Z")).collect();
    assert_eq!(all, [utc("2030-01-01T08:00:00Z")]);
    assert_eq!(
        once.next_after(utc("2030-01-01T08:00:00Z"), Berlin, no_anchor()),
        None
    );
    assert_eq!(
        once.next_after(utc("2030-01-01T07:59:59Z"), Berlin, no_anchor()),
        Some(utc("2030-01-01T08:00:00Z"))
    );
    assert_eq!(
        once.next_after(utc("2029-01-01T00:00:00Z"), Tz::UTC, no_anchor()),
        Some(utc("2030-01-01T09:00:00Z"))
    );
}

#[test]
fn rate_fires_from_the_anchor() {
    let every5 = expr("rate(5 minutes)");
    let anchor = utc("2024-01-01T00:00:10Z");
    let next = |after: &str| every5.next_after(utc(after), Tz::UTC, anchor);
    assert_eq!(next("2023-12-31T00:00:00Z"), Some(anchor));
    assert_eq!(next("2024-01-01T00:00:09Z"), Some(anchor));
    assert_eq!(
        next("2024-01-01T00:00:10Z"),
        Some(utc("2024-01-01T00:05:10Z"))
    );
    assert_eq!(
        next("2024-01-01T00:07:00Z"),
        Some(utc("2024-01-01T00:10:10Z"))
    );
    assert_eq!(
        next("2024-01-01T00:10:10Z"),
        Some(utc("2024-01-01T00:15:10Z"))
    );
    assert_eq!(
        next("2124-01-01T00:00:09.5Z"),
        Some(utc("2124-01-01T00:00:10Z"))
    );
}

#[test]
fn rate_keeps_sub_second_anchors() {
    let hourly = expr("rate(1 hour)");
    let anchor = utc("2024-01-01T00:00:00.250Z");
    let all: Vec<_> = fires(&hourly, Tz::UTC, anchor, anchor).take(2).collect();
    assert_eq!(
        all,
        [
            utc("2024-01-01T01:00:00.250Z"),
            utc("2024-01-01T02:00:00.250Z")
        ]
    );
}

#[test]
fn huge_rates_end_without_panicking() {
    let huge = expr("rate(4294967295 days)");
    let anchor = utc("2024-01-01T00:00:00Z");
    assert_eq!(huge.next_after(anchor, Tz::UTC, anchor), None);
    assert_eq!(
        huge.next_after(utc("2023-01-01T00:00:00Z"), Tz::UTC, anchor),
        Some(anchor)
    );
    let zero = super::super::ScheduleExpr::Rate(super::super::Rate {
        value: 0,
        unit: super::super::RateUnit::Minute,
    });
    assert_eq!(zero.next_after(anchor, Tz::UTC, anchor), None);
}

#[test]
fn extreme_instants_do_not_panic() {
    let daily = expr("cron(0 0 * * ? *)");
    for tz in [
        Tz::UTC,
        chrono_tz::Pacific::Kiritimati,
        chrono_tz::Etc::GMTPlus12,
    ] {
        assert_eq!(
            daily.next_after(chrono::DateTime::<chrono::Utc>::MAX_UTC, tz, no_anchor()),
            None
        );
        assert!(
            daily
                .next_after(chrono::DateTime::<chrono::Utc>::MIN_UTC, tz, no_anchor())
                .is_some()
        );
    }
    let once = expr("at(9999-12-31T23:59:59)");
    assert!(
        once.next_after(no_anchor(), chrono_tz::Pacific::Kiritimati, no_anchor())
            .is_some()
    );
}

#[test]
fn never_firing_expressions_return_quickly() {
    let hopeless = [
        "cron(0 0 30 2 ? *)",
        "cron(0 0 31 4,6,9,11 ? *)",
        "cron(* * ? * 6#5 2026)",
        "cron(* * * * ? 1970-2000)",
        "cron(59 23 ? FEB 1#5 2198-2199)",
    ];
    for text in hopeless {
        let parsed = expr(text);
        for tz in [Tz::UTC, chrono_tz::America::New_York] {
            assert_eq!(
                parsed.next_after(utc("2027-01-01T00:00:00Z"), tz, no_anchor()),
                None
            );
        }
    }
}

#[test]
fn fires_iterates_successive_next_after() {
    let every_minute = expr("cron(* * * * ? *)");
    let after = utc("2024-01-01T00:00:30Z");
    let all: Vec<_> = fires(&every_minute, Tz::UTC, no_anchor(), after)
        .take(3)
        .collect();
    assert_eq!(
        all,
        [
            utc("2024-01-01T00:01:00Z"),
            utc("2024-01-01T00:02:00Z"),
            utc("2024-01-01T00:03:00Z")
        ]
    );
}
