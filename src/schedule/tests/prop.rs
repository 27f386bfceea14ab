//! Property tests: random valid cron expressions, instants and time zones; `next_after` must
//! agree with a brute-force walk over UTC minutes.

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::super::{CronExpr, ScheduleExpr};

/// How far the brute force walks for random instants, in minutes (45 days).
const WINDOW_MINUTES: i64 = 45 * 24 * 60;

/// How far the brute force walks next to a DST change, in minutes (3 days).
const DST_WINDOW_MINUTES: i64 = 3 * 24 * 60;

/// 2026 UTC offset changes: New York, London and Lord Howe (30-minute DST), both directions.
const TRANSITIONS: [(Tz, &str); 6] = [
    (chrono_tz::America::New_York, "2026-03-08T07:00:00Z"),
    (chrono_tz::America::New_York, "2026-11-01T06:00:00Z"),
    (chrono_tz::Europe::London, "2026-03-29T01:00:00Z"),
    (chrono_tz::Europe::London, "2026-10-25T01:00:00Z"),
    (chrono_tz::Australia::Lord_Howe, "2026-04-04T15:00:00Z"),
    (chrono_tz::Australia::Lord_Howe, "2026-10-03T15:30:00Z"),
];

/// Time zones with ordinary, half-hour and no DST.
const ZONES: [Tz; 5] = [
    Tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
];

/// The first fire after `after` within the window, by checking every UTC minute: a minute fires
/// when its local time matches and that local time did not already occur earlier.
fn brute_force(
    cron: &CronExpr,
    tz: Tz,
    after: DateTime<Utc>,
    window_minutes: i64,
) -> Option<DateTime<Utc>> {
    let start = after.with_second(0)?.with_nanosecond(0)? + TimeDelta::minutes(1);
    (0..window_minutes)
        .map(|i| start + TimeDelta::minutes(i))
        .find(|&t| {
            let local = t.with_timezone(&tz).naive_local();
            cron.matches_local(local)
                && tz
                    .from_local_datetime(&local)
                    .earliest()
                    .map(|e| e.to_utc())
                    == Some(t)
        })
}

/// A number or, for month and day-of-week, sometimes its name.
fn atom(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
    (min..=max, any::<bool>())
        .prop_map(move |(v, named)| match names.get((v - min) as usize) {
            Some(name) if named => name.to_string(),
            _ => v.to_string(),
        })
        .boxed()
}

/// One term of a plain field: value, range (possibly wrapping), or step.
fn term(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
    let span = max - min + 1;
    prop_oneof![
        3 => atom(min, max, names),
        2 => (atom(min, max, names), atom(min, max, names)).prop_map(|(a, b)| format!("{a}-{b}")),
        1 => (atom(min, max, names), 1..=span).prop_map(|(a, s)| format!("{a}/{s}")),
        1 => (1..=span).prop_map(|s| format!("*/{s}")),
        1 => (atom(min, max, names), atom(min, max, names), 1..=span)
            .prop_map(|(a, b, s)| format!("{a}-{b}/{s}")),
    ]
    .boxed()
}

/// A plain field: `*` or a list of one to three terms.
fn plain(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        1 => Just("*".to_string()),
        3 => prop::collection::vec(term(min, max, names), 1..=3).prop_map(|t| t.join(",")),
    ]
    .boxed()
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Day-of-month: plain, `L`, `LW` or `nW`.
fn day_of_month() -> BoxedStrategy<String> {
    prop_oneof![
        4 => plain(1, 31, &[]),
        1 => Just("L".to_string()),
        1 => Just("LW".to_string()),
        1 => (1..=31u32).prop_map(|d| format!("{d}W")),
    ]
    .boxed()
}

/// Day-of-week: plain, `L`, `nL` or `d#n`.
fn day_of_week() -> BoxedStrategy<String> {
    prop_oneof![
        4 => plain(1, 7, WEEKDAYS),
        1 => Just("L".to_string()),
        1 => atom(1, 7, WEEKDAYS).prop_map(|d| format!("{d}L")),
        2 => (atom(1, 7, WEEKDAYS), 1..=5u32).prop_map(|(d, n)| format!("{d}#{n}")),
    ]
    .boxed()
}

/// Year: mostly unrestricted, sometimes a list, range or step around the test years.
fn year() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just("*".to_string()),
        1 => (2019..=2032u32).prop_map(|y| y.to_string()),
        1 => (2019..=2032u32, 0..=4u32).prop_map(|(y, n)| format!("{y}-{}", y + n)),
        1 => (2015..=2025u32, 1..=3u32).prop_map(|(y, s)| format!("{y}/{s}")),
    ]
    .boxed()
}

/// A valid cron expression with minutes and hours biased toward DST transition hours.
fn cron_text() -> impl Strategy<Value = String> {
    let minutes = prop_oneof![3 => plain(0, 59, &[]), 1 => Just("*/30".to_string())];
    let hours = prop_oneof![3 => plain(0, 23, &[]), 1 => plain(0, 3, &[])];
    let days = prop_oneof![
        (day_of_month(), Just("?".to_string())),
        (Just("?".to_string()), day_of_week()),
    ];
    (minutes, hours, days, plain(1, 12, MONTHS), year())
        .prop_map(|(mi, h, (dom, dow), mo, y)| format!("cron({mi} {h} {dom} {mo} {dow} {y})"))
}

/// An instant in 2020-2030, often in a month with DST changes.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let month = prop_oneof![1 => 1..=12u32, 1 => prop::sample::select(vec![3u32, 4, 9, 10, 11])];
    (
        2020..=2030i32,
        month,
        1..=28u32,
        0..24u32,
        0..60u32,
        0..60u32,
    )
        .prop_map(|(y, mo, d, h, mi, s)| {
            let naive = NaiveDate::from_ymd_opt(y, mo, d).and_then(|d| d.and_hms_opt(h, mi, s));
            naive.map(|n| n.and_utc()).unwrap_or_default()
        })
}

/// Compares `next_after` with [`brute_force`] over a window of `window_minutes` after `after`:
/// equal when the brute force finds a fire, otherwise none within the window.
fn check_against_brute_force(
    text: &str,
    tz: Tz,
    after: DateTime<Utc>,
    window_minutes: i64,
) -> Result<(), TestCaseError> {
    let Ok(ScheduleExpr::Cron(cron)) = ScheduleExpr::parse(text) else {
        return Err(TestCaseError::fail(format!("{text} did not parse")));
    };
    let fast = ScheduleExpr::Cron(cron.clone()).next_after(after, tz, after);
    let window_end = after + TimeDelta::minutes(window_minutes);
    match brute_force(&cron, tz, after, window_minutes) {
        Some(expected) => {
            prop_assert_eq!(fast, Some(expected), "{} in {} after {}", text, tz, after)
        }
        None => prop_assert!(
            fast.is_none_or(|f| f > window_end),
            "{text} in {tz} after {after}: {fast:?}"
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn next_after_agrees_with_brute_force(
        text in cron_text(),
        after in instant(),
        tz in prop::sample::select(ZONES.to_vec()),
    ) {
        check_against_brute_force(&text, tz, after, WINDOW_MINUTES)?;
    }

    #[test]
    fn next_after_agrees_with_brute_force_next_to_dst_changes(
        text in cron_text(),
        (tz, change) in prop::sample::select(TRANSITIONS.to_vec()),
        shift_seconds in -2 * 86_400i64..86_400,
    ) {
        let change: DateTime<Utc> = change.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let after = change + TimeDelta::seconds(shift_seconds);
        check_against_brute_force(&text, tz, after, DST_WINDOW_MINUTES)?;
    }

    #[test]
    fn fires_match_and_are_first_occurrences(
        text in cron_text(),
        after in instant(),
        tz in prop::sample::select(ZONES.to_vec()),
    ) {
        let Ok(ScheduleExpr::Cron(cron)) = ScheduleExpr::parse(&text) else {
            return Err(TestCaseError::fail(format!("{text} did not parse")));
        };
        let expr = ScheduleExpr::Cron(cron.clone());
        let mut previous = after;
        for fire in super::super::fires(&expr, tz, after, after).take(20) {
            prop_assert!(fire > previous, "{text}: {fire} after {previous}");
            prop_assert_eq!(fire.second(), 0);
            let local = fire.with_timezone(&tz).naive_local();
            prop_assert!(cron.matches_local(local), "{text}: {local}");
            let first = tz.from_local_datetime(&local).earliest().map(|e| e.to_utc());
            prop_assert_eq!(first, Some(fire), "{} in {}: {}", text, tz, local);
            previous = fire;
        }
    }

    #[test]
    fn display_round_trips(text in cron_text()) {
        let parsed = ScheduleExpr::parse(&text);
        prop_assert!(parsed.is_ok(), "{text}: {parsed:?}");
        let Ok(parsed) = parsed else { unreachable!() };
        prop_assert_eq!(ScheduleExpr::parse(&parsed.to_string()), Ok(parsed));
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,40}") {
        let _ = ScheduleExpr::parse(&text);
        let _ = ScheduleExpr::parse(&format!("cron({text})"));
        let _ = ScheduleExpr::parse(&format!("rate({text})"));
        let _ = ScheduleExpr::parse(&format!("at({text})"));
    }
}
