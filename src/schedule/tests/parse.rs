//! Syntax tables: every accepted form, every rejected form with its error offset and message.

use chrono::NaiveDate;

use super::super::{Rate, RateUnit, ScheduleErrorKind, ScheduleExpr};
use super::expr;

/// Expressions AWS accepts (AWS-verified examples first), with their canonical text when it
/// differs from the input.
const VALID: &[(&str, Option<&str>)] = &[
    ("cron(0 2 ? * SAT *)", None),
    ("cron(5,35 14 * * ? *)", None),
    ("cron(15 10 ? * 6L 2002-2005)", None),
    ("cron(0 2 ? * SAT#3 *)", None),
    ("cron(* * ? * SAT#3 *)", None),
    ("cron(0/5 5 ? JAN 1-5 2022)", None),
    ("cron(0/5 8-17 ? * MON-FRI *)", None),
    ("cron(0/30 20-23 ? * MON-FRI *)", None),
    ("cron(0 12 * * ? *)", None),
    ("cron(0 18 ? * MON-FRI *)", None),
    ("cron(0 8 1W * ? *)", None),
    ("cron(0 8 L * ? *)", None),
    ("cron(0 12 LW * ? *)", None),
    ("cron(0 2 ? * 3#2 *)", None),
    ("cron(0/30 20-2 ? * MON-FRI *)", None),
    ("cron(1/10 * * * ? *)", None),
    ("cron(0 0 ? * 1 *)", None),
    ("cron(0 0 29 2 ? *)", None),
    ("cron(0 6 ? * MON-FRI *)", None),
    ("cron(0 18 L * ? *)", None),
    ("cron(0 10 ? * 6#3 *)", None),
    ("cron(15 10 ? * 6L 2026-2030)", None),
    ("cron(0 0 ? * L *)", None),
    ("cron(0 0 ? * FRIL *)", None),
    ("cron(0 0 ? * 1-7 *)", None),
    ("cron(0 0 ? * SUN-SAT/2 *)", None),
    ("cron(0 0 ? * 7#5 *)", None),
    ("cron(0 0 ? * 1#1 *)", None),
    ("cron(0 0 ? NOV-FEB FRI-MON *)", None),
    ("cron(*/15 * * * ? *)", None),
    ("cron(0 0 1 */3 ? 2020/5)", None),
    ("cron(0 0 * JAN-MAR,NOV/1 ? *)", None),
    ("cron(59 23 31 12 ? 2199)", None),
    ("cron(0 0 1 1 ? 1970)", None),
    ("cron(0 0 1 1 ? 1970-2199)", None),
    ("cron(05 08 * * ? *)", None),
    ("cron(0 0 28-3 * ? *)", None),
    ("cron(0-59/59 0-23/23 * * ? *)", None),
    ("cron(0/60 0/24 1/31 1/12 ? 1970/230)", None),
    ("cron(0 0 31W * ? *)", None),
    ("cron(50-10 * * * ? *)", None),
    ("cron(0 0 1-31/2 * ? *)", None),
    ("cron(0 0 ? * 2,4,6 *)", None),
    ("cron(0 0 ? * MON,WED-FRI *)", None),
    ("cron(0 0 1 JAN,JUL ? 2024,2026-2028)", None),
    ("cron(0 0 ? * mon-fri *)", Some("cron(0 0 ? * MON-FRI *)")),
    ("cron(0 0 lw * ? *)", Some("cron(0 0 LW * ? *)")),
    ("cron(0 0 15w * ? *)", Some("cron(0 0 15W * ? *)")),
    ("cron(0 0 ? * sat#3 *)", Some("cron(0 0 ? * SAT#3 *)")),
    ("cron(0 0 ? * 6l *)", Some("cron(0 0 ? * 6L *)")),
    ("cron(0 0 1 jan ? *)", Some("cron(0 0 1 JAN ? *)")),
    ("rate(1 minute)", None),
    ("rate(5 minutes)", None),
    ("rate(1 hour)", None),
    ("rate(12 hours)", None),
    ("rate(1 day)", None),
    ("rate(7 days)", None),
    ("rate(4294967295 days)", None),
    ("at(2030-01-01T09:00:00)", None),
    ("at(2024-02-29T23:59:59)", None),
    ("at(1999-12-31T00:00:00)", None),
];

#[test]
fn valid_expressions_parse_and_round_trip() {
    for &(text, canonical) in VALID {
        let parsed = expr(text);
        let shown = parsed.to_string();
        assert_eq!(shown, canonical.unwrap_or(text), "{text}");
        assert_eq!(expr(&shown), parsed, "{text} round trip");
    }
}

/// Rejected expressions: (text, byte offset of the problem, fragment of the message).
const INVALID: &[(&str, usize, &str)] = &[
    // envelope
    ("", 0, "empty schedule expression"),
    (" rate(10 minutes)", 0, "whitespace around"),
    ("rate(10 minutes) ", 16, "whitespace around"),
    ("rate(10 minutes)\n", 16, "whitespace around"),
    (
        "RATE(10 minutes)",
        0,
        "`RATE` must be lower case: write `rate`",
    ),
    ("Cron(0 12 * * ? *)", 0, "write `cron`"),
    ("AT(2030-01-01T09:00:00)", 0, "write `at`"),
    ("every(5 minutes)", 0, "unknown schedule expression `every`"),
    ("5 minutes", 0, "unknown schedule expression `5 minutes`"),
    ("rate", 0, "unknown schedule expression `rate`"),
    ("rate(10 minutes", 15, "missing closing `)`"),
    (
        "rate(10 minutes))",
        16,
        "unexpected text `)` after the closing",
    ),
    ("rate(10 minutes)x", 16, "unexpected text `x`"),
    ("cron(0 12 * * ? *) # daily", 18, "unexpected text"),
    // rate (AWS-verified invalid list)
    (
        "rate(10 seconds)",
        8,
        "unknown rate unit `seconds`: expected minute(s), hour(s) or day(s)",
    ),
    ("rate(10 years)", 8, "unknown rate unit `years`"),
    (
        "rate(1 minutes)",
        7,
        "rate(1 minutes): use the singular `minute` when the value is 1",
    ),
    ("rate(1 hours)", 7, "use the singular `hour`"),
    ("rate(1 days)", 7, "use the singular `day`"),
    (
        "rate(10 minute)",
        8,
        "rate(10 minute): use the plural `minutes` when the value is not 1",
    ),
    ("rate(10 hour)", 8, "use the plural `hours`"),
    ("rate(10 day)", 8, "use the plural `days`"),
    ("rate()", 5, "rate(): expected `rate(value unit)`"),
    ("rate(10)", 7, "rate(10): missing unit"),
    ("rate(10 minutess)", 8, "unknown rate unit `minutess`"),
    (
        "rate(foo minutes)",
        5,
        "rate value `foo` is not a positive integer",
    ),
    ("rate(foo)", 5, "rate value `foo` is not a positive integer"),
    ("rate(0 minutes)", 5, "rate value must be at least 1"),
    ("rate(0)", 5, "at least 1"),
    ("rate(00 minutes)", 5, "at least 1"),
    (
        "rate(-10 minutes)",
        5,
        "rate value `-10` is not a positive integer",
    ),
    ("rate(+10 minutes)", 5, "`+10` is not a positive integer"),
    ("rate(1.5 hours)", 5, "`1.5` is not a positive integer"),
    (
        "rate(10 MINUTES)",
        8,
        "rate unit `MINUTES` must be lower case: write `minutes`",
    ),
    ("rate(1 Minute)", 7, "write `minute`"),
    ("rate( 10 minutes )", 5, "unexpected whitespace in rate()"),
    ("rate( 5 minutes)", 5, "exactly one space"),
    ("rate(10 minutes )", 15, "unexpected whitespace in rate()"),
    ("rate(10  minutes)", 8, "unexpected whitespace in rate()"),
    ("rate(10\tminutes)", 7, "unexpected whitespace in rate()"),
    (
        "rate(10 minutes\u{a0})",
        15,
        "unexpected whitespace in rate()",
    ),
    (
        "rate(05 minutes)",
        5,
        "rate value `05` has a leading zero: write `5`",
    ),
    (
        "rate(4294967296 minutes)",
        5,
        "rate value `4294967296` is too large",
    ),
    ("rate(99999999999999999999999 days)", 5, "too large"),
    ("rate(10 minutes 5)", 15, "unexpected whitespace"),
    ("rate(10 mins)", 8, "unknown rate unit `mins`"),
    ("rate(10 week)", 8, "unknown rate unit `week`"),
    // cron: field count and spacing
    (
        "cron(0 12 * * ?)",
        15,
        "cron expression has 5 fields: expected 6",
    ),
    ("cron(0 12 * * ? * *)", 18, "cron expression has 7 fields"),
    ("cron(0 0 12 * * ? *)", 18, "has 7 fields"),
    ("cron()", 5, "has 0 fields"),
    ("cron(*)", 6, "has 1 field: expected 6"),
    ("cron(0  0 * * ? *)", 7, "separated by exactly one space"),
    ("cron( 0 0 * * ? *)", 5, "exactly one space"),
    ("cron(0 0 * * ? * )", 16, "exactly one space"),
    ("cron(0\t0 * * ? *)", 6, "exactly one space"),
    // cron: day fields
    (
        "cron(0 1 * * * *)",
        13,
        "day-of-month and day-of-week cannot both be set: one of them must be `?`",
    ),
    ("cron(0 1 5 * MON *)", 13, "cannot both be set"),
    ("cron(0 1 L * 6L *)", 13, "cannot both be set"),
    (
        "cron(0 1 ? * ? *)",
        13,
        "day-of-month and day-of-week cannot both be `?`",
    ),
    (
        "cron(0 2 ? * 3#1,6#3 *)",
        13,
        "`3#1` must be the only term of the day-of-week field",
    ),
    ("cron(0 2 ? * 3#1,5 *)", 13, "`3#1` must be the only term"),
    ("cron(0 2 ? * 5,3#1 *)", 15, "`3#1` must be the only term"),
    ("cron(0 2 ? * 6L,1 *)", 13, "`6L` must be the only term"),
    ("cron(0 2 ? * L,1 *)", 13, "`L` must be the only term"),
    ("cron(0 2 ? * 1-L *)", 15, "`L` must be the only term"),
    (
        "cron(0 0 15W,20 * ? *)",
        9,
        "`15W` must be the only term of the day-of-month field",
    ),
    ("cron(0 0 L,15 * ? *)", 9, "`L` must be the only term"),
    ("cron(0 0 1-LW * ? *)", 11, "`LW` must be the only term"),
    ("cron(0 0 LW/2 * ? *)", 9, "`LW` must be the only term"),
    ("cron(0 0 1W-5 * ? *)", 9, "`1W` must be the only term"),
    ("cron(0 0 L/2 * ? *)", 9, "`L` must be the only term"),
    ("cron(0 0 ?,1 * ? *)", 9, "`?` must be the only term"),
    ("cron(0 0 1 * ?/2 *)", 13, "`?` must be the only term"),
    (
        "cron(0 0 ? * 3#6 *)",
        15,
        "occurrence `6` after `#` is out of range 1-5",
    ),
    ("cron(0 0 ? * 3#0 *)", 15, "occurrence `0`"),
    ("cron(0 0 ? * 3# *)", 13, "unknown day-of-week `3#`"),
    ("cron(0 0 ? * #2 *)", 13, "unknown day-of-week `#2`"),
    ("cron(0 0 ? * 3#1#2 *)", 13, "unknown day-of-week `3#1#2`"),
    (
        "cron(0 0 ? * 8#2 *)",
        13,
        "day-of-week 8 is out of range 1-7",
    ),
    ("cron(0 0 ? * MUN#2 *)", 13, "unknown day-of-week `MUN`"),
    (
        "cron(0 0 ? * 0L *)",
        13,
        "day-of-week 0 is out of range 1-7",
    ),
    (
        "cron(0 0 0W * ? *)",
        9,
        "day-of-month 0 is out of range 1-31",
    ),
    (
        "cron(0 0 32W * ? *)",
        9,
        "day-of-month 32 is out of range 1-31",
    ),
    ("cron(0 0 W * ? *)", 9, "unknown day-of-month `W`"),
    (
        "cron(0 0 5L * ? *)",
        9,
        "unknown day-of-month `5L`: expected 1-31, `L`, `LW` or `nW`",
    ),
    ("cron(0 0 L-3 * ? *)", 9, "`L` must be the only term"),
    ("cron(0 0 ? * 5W *)", 13, "unknown day-of-week `5W`"),
    (
        "cron(0 0 ? * LW *)",
        14,
        "`W` is not allowed in the day-of-week field: only day-of-month accepts `W`",
    ),
    (
        "cron(0 0 3#2 * ? *)",
        10,
        "`#` is not allowed in the day-of-month field: only day-of-week accepts `#`",
    ),
    ("cron(0 0 ? * W *)", 13, "unknown day-of-week `W`"),
    // cron: special characters in plain fields
    (
        "cron(L * * * ? *)",
        5,
        "`L` is not allowed in the minute field: only day-of-month and day-of-week accept `L`",
    ),
    (
        "cron(0 ? * * ? *)",
        7,
        "`?` is not allowed in the hour field: only day-of-month or day-of-week can be `?`",
    ),
    (
        "cron(0 0 1 ? ? *)",
        11,
        "`?` is not allowed in the month field",
    ),
    (
        "cron(0 0 1 * ? ?)",
        15,
        "`?` is not allowed in the year field",
    ),
    (
        "cron(5W 0 1 * ? *)",
        6,
        "`W` is not allowed in the minute field: only day-of-month accepts `W`",
    ),
    (
        "cron(0 1#2 1 * ? *)",
        8,
        "`#` is not allowed in the hour field",
    ),
    (
        "cron(0 0 1 6L ? *)",
        12,
        "`L` is not allowed in the month field",
    ),
    // cron: values
    ("cron(71 8 1 * ? *)", 5, "minute 71 is out of range 0-59"),
    ("cron(60 0 * * ? *)", 5, "minute 60 is out of range 0-59"),
    (
        "cron(0 dummy ? * MON-FRI *)",
        7,
        "unknown hour `dummy`: expected 0-23",
    ),
    ("cron(0 24 * * ? *)", 7, "hour 24 is out of range 0-23"),
    (
        "cron(0 0 0 * ? *)",
        9,
        "day-of-month 0 is out of range 1-31",
    ),
    (
        "cron(0 0 32 * ? *)",
        9,
        "day-of-month 32 is out of range 1-31",
    ),
    ("cron(0 0 1 13 ? *)", 11, "month 13 is out of range 1-12"),
    ("cron(0 0 1 0 ? *)", 11, "month 0 is out of range 1-12"),
    (
        "cron(0 0 1 JANUARY ? *)",
        11,
        "unknown month `JANUARY`: expected 1-12 or JAN-DEC",
    ),
    ("cron(0 0 1 MON ? *)", 11, "unknown month `MON`"),
    ("cron(0 0 ? INVALID * *)", 11, "unknown month `INVALID`"),
    (
        "cron(0 0 ? * JAN *)",
        13,
        "unknown day-of-week `JAN`: expected 1-7 or SUN-SAT",
    ),
    (
        "cron(0 0 ? * MUN *)",
        13,
        "unknown day-of-week `MUN`: expected 1-7 or SUN-SAT",
    ),
    ("cron(0 0 ? * NOT *)", 13, "unknown day-of-week `NOT`"),
    ("cron(0 0 ? * MONDAY *)", 13, "unknown day-of-week `MONDAY`"),
    ("cron(0 0 ? * 0 *)", 13, "day-of-week 0 is out of range 1-7"),
    ("cron(0 0 ? * 8 *)", 13, "day-of-week 8 is out of range 1-7"),
    ("cron(0 0 ? * MON-8 *)", 17, "day-of-week 8 is out of range"),
    (
        "cron(0 0 1 1 ? 2200)",
        15,
        "year 2200 is out of range 1970-2199",
    ),
    (
        "cron(0 0 1 1 ? 1969)",
        15,
        "year 1969 is out of range 1970-2199",
    ),
    ("cron(0 0 1 1 ? 99)", 15, "year 99 is out of range"),
    ("cron(0 0 * * ? 1970-2200)", 20, "year 2200 is out of range"),
    (
        "cron(0 0 * * ? 2020-2019)",
        15,
        "year range `2020-2019` is reversed",
    ),
    ("cron(0 0 1 * ? 2020-)", 15, "unknown year `2020-`"),
    ("cron(0 0 1-2-3 * ? *)", 9, "unknown day-of-month `1-2-3`"),
    ("cron(0 0 1 * ? \u{e9})", 15, "unknown year `\u{e9}`"),
    (
        "cron(99999999999 0 1 * ? *)",
        5,
        "minute 99999999999 is out of range",
    ),
    ("cron(-5 0 1 * ? *)", 5, "unknown minute `-5`"),
    ("cron(*-5 0 1 * ? *)", 5, "unknown minute `*`"),
    (
        "cron(1,,2 * * * ? *)",
        7,
        "empty minute term: remove the extra `,`",
    ),
    ("cron(1, * * * ? *)", 7, "empty minute term"),
    ("cron(,1 * * * ? *)", 5, "empty minute term"),
    // cron: steps
    (
        "cron(*/0 * * * ? *)",
        7,
        "minute step `0` must be a number from 1 to 60",
    ),
    (
        "cron(0/61 * * * ? *)",
        7,
        "minute step `61` must be a number from 1 to 60",
    ),
    (
        "cron(0 0/25 * * ? *)",
        9,
        "hour step `25` must be a number from 1 to 24",
    ),
    ("cron(*/x * * * ? *)", 7, "minute step `x`"),
    ("cron(0/1/2 * * * ? *)", 7, "minute step `1/2`"),
    ("cron(0/ * * * ? *)", 7, "minute step ``"),
    ("cron(/5 * * * ? *)", 5, "unknown minute `/5`"),
    (
        "cron(0 0 1 1/13 ? *)",
        13,
        "month step `13` must be a number from 1 to 12",
    ),
    (
        "cron(0 0 ? * 1/8 *)",
        15,
        "day-of-week step `8` must be a number from 1 to 7",
    ),
    // at
    (
        "at(2030-01-01T09:00:00Z)",
        22,
        "at() takes a local time without zone or fractional seconds: remove `Z`",
    ),
    ("at(2030-01-01T09:00:00.000)", 22, "remove `.000`"),
    ("at(2030-01-01T09:00:00+01:00)", 22, "remove `+01:00`"),
    (
        "at(2030-01-01 09:00:00)",
        13,
        "invalid at() time `2030-01-01 09:00:00`: expected `yyyy-mm-ddThh:mm:ss`",
    ),
    ("at(2030-01-01t09:00:00)", 13, "invalid at() time"),
    ("at(2030-01-01T09:00)", 19, "invalid at() time"),
    ("at(2030-1-1T09:00:00)", 9, "invalid at() time"),
    ("at(30-01-01T09:00:00)", 5, "invalid at() time"),
    ("at()", 3, "invalid at() time ``"),
    ("at( 2030-01-01T09:00:00)", 3, "invalid at() time"),
    (
        "at(2030-02-30T09:00:00)",
        3,
        "`2030-02-30` is not a valid calendar date",
    ),
    (
        "at(2030-13-01T09:00:00)",
        3,
        "`2030-13-01` is not a valid calendar date",
    ),
    ("at(2023-02-29T09:00:00)", 3, "not a valid calendar date"),
    (
        "at(2030-01-01T24:00:00)",
        14,
        "`24:00:00` is not a valid time of day",
    ),
    (
        "at(2030-01-01T09:60:00)",
        14,
        "`09:60:00` is not a valid time of day",
    ),
    (
        "at(2030-01-01T09:00:60)",
        14,
        "`09:00:60` is not a valid time of day",
    ),
];

#[test]
fn invalid_expressions_report_offset_and_message() {
    for &(text, offset, fragment) in INVALID {
        let err = match ScheduleExpr::parse(text) {
            Ok(parsed) => panic!("{text:?} parsed as {parsed}"),
            Err(err) => err,
        };
        let message = err.to_string();
        assert!(
            message.contains(fragment),
            "{text:?}: {message:?} lacks {fragment:?}"
        );
        assert_eq!(err.offset, offset, "{text:?}: {message}");
        assert!(
            text.is_char_boundary(err.offset) && err.offset <= text.len(),
            "{text:?}"
        );
    }
}

#[test]
fn messages_are_lowercase_without_trailing_period() {
    for &(text, _, _) in INVALID {
        let message = ScheduleExpr::parse(text).unwrap_err().to_string();
        let first = message.chars().next().unwrap();
        assert!(!first.is_uppercase(), "{text:?}: {message}");
        assert!(!message.ends_with('.'), "{text:?}: {message}");
    }
}

#[test]
fn exact_messages_from_the_brief() {
    let message = |text: &str| ScheduleExpr::parse(text).unwrap_err().to_string();
    assert_eq!(
        message("rate(1 minutes)"),
        "rate(1 minutes): use the singular `minute` when the value is 1"
    );
    assert_eq!(
        message("cron(0 1 * * * *)"),
        "day-of-month and day-of-week cannot both be set: one of them must be `?`"
    );
    assert_eq!(
        message("cron(0 0 ? * MUN *)"),
        "unknown day-of-week `MUN`: expected 1-7 or SUN-SAT"
    );
    assert_eq!(
        message("cron(0 0 1 1 ? 2200)"),
        "year 2200 is out of range 1970-2199"
    );
}

#[test]
fn lower_case_names_are_reported_as_written() {
    let err = ScheduleExpr::parse("cron(0 0 ? * mun *)").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown day-of-week `mun`: expected 1-7 or SUN-SAT"
    );
}

#[test]
fn too_long_expressions_are_rejected() {
    let minutes = (0..60).map(|m| m.to_string()).collect::<Vec<_>>().join(",");
    let hours = (0..24).map(|h| h.to_string()).collect::<Vec<_>>().join(",");
    let days = (1..=31)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let text = format!("cron({minutes} {hours} {days} * ? *)");
    assert!(text.len() > 256);
    let err = ScheduleExpr::parse(&text).unwrap_err();
    assert_eq!(err.kind, ScheduleErrorKind::TooLong { len: text.len() });
    assert_eq!(err.offset, 0);
    // At the limit it is fine.
    let ok = format!("cron({minutes} {hours} 1 * ? *)");
    assert!(ok.len() <= 256);
    expr(&ok);
}

#[test]
fn parsed_values() {
    assert_eq!(
        expr("rate(5 minutes)"),
        ScheduleExpr::Rate(Rate {
            value: 5,
            unit: RateUnit::Minute
        })
    );
    assert_eq!(
        expr("rate(1 day)"),
        ScheduleExpr::Rate(Rate {
            value: 1,
            unit: RateUnit::Day
        })
    );
    let at = NaiveDate::from_ymd_opt(2030, 1, 1)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap();
    assert_eq!(expr("at(2030-01-01T09:00:00)"), ScheduleExpr::At(at));
    assert_eq!(
        "rate(2 hours)".parse::<ScheduleExpr>().unwrap(),
        expr("rate(2 hours)")
    );
}

#[test]
fn rate_periods() {
    let period = |text| match expr(text) {
        ScheduleExpr::Rate(rate) => rate.period().num_seconds(),
        other => panic!("{other}"),
    };
    assert_eq!(period("rate(1 minute)"), 60);
    assert_eq!(period("rate(90 minutes)"), 5400);
    assert_eq!(period("rate(2 hours)"), 7200);
    assert_eq!(period("rate(1 day)"), 86_400);
    assert_eq!(period("rate(4294967295 days)"), 4_294_967_295 * 86_400);
}

#[test]
fn error_kinds_are_typed() {
    let kind = |text| ScheduleExpr::parse(text).unwrap_err().kind;
    assert_eq!(kind("rate(0 minutes)"), ScheduleErrorKind::RateValueZero);
    assert_eq!(kind("cron(0 1 ? * ? *)"), ScheduleErrorKind::CronNoDays);
    assert_eq!(
        kind("cron(0 12 * * ?)"),
        ScheduleErrorKind::CronFieldCount { found: 5 }
    );
    assert_eq!(kind("rate(10 minutes"), ScheduleErrorKind::MissingParen);
}

#[test]
fn matches_local_checks_every_field() {
    let cron = match expr("cron(0/15 9-17 ? MAR-MAY MON-FRI 2026)") {
        ScheduleExpr::Cron(cron) => cron,
        other => panic!("{other}"),
    };
    let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap();
    assert!(cron.matches_local(at("2026-03-02T09:00:00"))); // Monday
    assert!(cron.matches_local(at("2026-03-02T09:45:59"))); // seconds ignored
    assert!(!cron.matches_local(at("2026-03-02T09:44:00"))); // minute
    assert!(!cron.matches_local(at("2026-03-02T18:00:00"))); // hour
    assert!(!cron.matches_local(at("2026-03-01T09:00:00"))); // Sunday
    assert!(!cron.matches_local(at("2026-06-01T09:00:00"))); // month
    assert!(!cron.matches_local(at("2027-03-01T09:00:00"))); // year
    assert!(!cron.matches_local(at("2300-03-01T09:00:00"))); // beyond 2199
}
