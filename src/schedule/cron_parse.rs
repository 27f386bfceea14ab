//! Parser for the six fields of `cron(min hour day-of-month month day-of-week year)`.
//!
//! Grammar, per field (letters and names are case-insensitive, like Quartz, which upper-cases
//! the whole expression):
//!
//! ```text
//! field   = "?" | special | term ("," term)*          "?" only in day-of-month / day-of-week
//! term    = ("*" | atom | atom "-" atom) ["/" step]    step in 1..=number of values of the field
//! atom    = number | name                              names: JAN-DEC (month), SUN-SAT (day-of-week)
//! special = "L" | "LW" | number "W"                    day-of-month
//!         | "L" | atom "L" | atom "#" 1-5              day-of-week ("L" alone = Saturday)
//! ```
//!
//! A special term must be the whole field. Ranges wrap around the end of the field (`20-2`
//! hours = 20-23 and 0-2, `NOV-FEB`, `FRI-MON`, `28-3` days), except years, where a reversed
//! range is an error. `a/s` steps from `a` to the end of the field; `a-b/s` steps through the
//! (possibly wrapping) range. Numbers may have leading zeros (`05`).

use super::bitset::BitSet;
use super::cron::{CompiledFields, CronExpr};
use super::days::{DayRule, SATURDAY};
use super::error::{CronField, ScheduleError, ScheduleErrorKind};

/// Month names, January first.
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Day-of-week names, Sunday (1) first.
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Highest `n` of `d#n`.
const MAX_NTH: u32 = 5;

/// A piece of the input with its absolute byte offset.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Token<'a> {
    /// The sub-token `text[range]`.
    fn slice(self, range: std::ops::Range<usize>) -> Token<'a> {
        Token {
            text: &self.text[range.clone()],
            at: self.at + range.start,
        }
    }

    /// An error located at this token.
    fn error(self, kind: ScheduleErrorKind) -> ScheduleError {
        ScheduleError::new(self.at, kind)
    }
}

/// One parsed day field: `?` or a day rule.
enum DaySpec {
    Any,
    Rule(DayRule),
}

/// Parses the text between `cron(` and `)`; `base` is its byte offset in the whole expression.
pub(super) fn parse(inner: &str, base: usize) -> Result<CronExpr, ScheduleError> {
    let [minute, hour, dom, month, dow, year] = split_fields(Token {
        text: inner,
        at: base,
    })?;
    let minutes = parse_plain(CronField::Minute, minute)?;
    let hours = parse_plain(CronField::Hour, hour)?;
    let dom_spec = parse_day(CronField::DayOfMonth, dom)?;
    let months = parse_plain(CronField::Month, month)?;
    let dow_spec = parse_day(CronField::DayOfWeek, dow)?;
    let years = parse_plain(CronField::Year, year)?;
    let days = combine_days(dom_spec, dow_spec, dow)?;
    let fields = CompiledFields {
        minutes,
        hours,
        days,
        months,
        years,
    };
    Ok(CronExpr::new(fields, inner.to_ascii_uppercase()))
}

/// Splits the inner text into exactly six single-space separated fields.
fn split_fields(inner: Token<'_>) -> Result<[Token<'_>; 6], ScheduleError> {
    let text = inner.text;
    let bad_space = text
        .find(|c: char| c.is_whitespace() && c != ' ')
        .or_else(|| text.starts_with(' ').then_some(0))
        .or_else(|| text.ends_with(' ').then(|| text.len() - 1))
        .or_else(|| text.find("  ").map(|i| i + 1));
    if let Some(i) = bad_space {
        return Err(ScheduleError::new(
            inner.at + i,
            ScheduleErrorKind::CronSpacing,
        ));
    }
    let fields = split_tokens(inner, ' ');
    let found = if text.is_empty() { 0 } else { fields.len() };
    let at = fields
        .get(6)
        .map_or(inner.at + text.len(), |extra| extra.at);
    <[Token<'_>; 6]>::try_from(fields)
        .map_err(|_| ScheduleError::new(at, ScheduleErrorKind::CronFieldCount { found }))
}

/// Splits `token` at every `separator`, keeping offsets.
fn split_tokens(token: Token<'_>, separator: char) -> Vec<Token<'_>> {
    let mut at = token.at;
    token
        .text
        .split(separator)
        .map(|text| {
            let piece = Token { text, at };
            at += text.len() + separator.len_utf8();
            piece
        })
        .collect()
}

/// Splits a field into its `,`-separated terms, rejecting empty ones.
fn split_terms(field: CronField, token: Token<'_>) -> Result<Vec<Token<'_>>, ScheduleError> {
    let terms = split_tokens(token, ',');
    match terms.iter().find(|t| t.text.is_empty()) {
        Some(empty) => Err(empty.error(ScheduleErrorKind::CronEmptyTerm { field })),
        None => Ok(terms),
    }
}

/// Parses a field without `?` or special terms into the set of its slots.
fn parse_plain(field: CronField, token: Token<'_>) -> Result<BitSet, ScheduleError> {
    split_terms(field, token)?
        .into_iter()
        .try_fold(BitSet::default(), |set, term| {
            Ok(set.union(parse_term(field, term)?))
        })
}

/// Parses day-of-month or day-of-week: `?`, one special term, or plain terms.
fn parse_day(field: CronField, token: Token<'_>) -> Result<DaySpec, ScheduleError> {
    if token.text == "?" {
        return Ok(DaySpec::Any);
    }
    let terms = split_terms(field, token)?;
    if let [term] = terms.as_slice() {
        if let Some(rule) = parse_special(field, *term)? {
            return Ok(DaySpec::Rule(rule));
        }
    } else if let Some(special) = terms.iter().find(|t| is_special_term(field, t.text)) {
        let found = special.text.to_owned();
        return Err(special.error(ScheduleErrorKind::CronSpecialNotAlone { field, found }));
    }
    let set = parse_plain(field, token)?;
    Ok(DaySpec::Rule(match field {
        CronField::DayOfWeek => DayRule::WeekDays(set),
        _ => DayRule::MonthDays(set),
    }))
}

/// Checks that exactly one day field is `?` and returns the other one's rule.
fn combine_days(
    dom: DaySpec,
    dow: DaySpec,
    dow_token: Token<'_>,
) -> Result<DayRule, ScheduleError> {
    match (dom, dow) {
        (DaySpec::Rule(rule), DaySpec::Any) | (DaySpec::Any, DaySpec::Rule(rule)) => Ok(rule),
        (DaySpec::Any, DaySpec::Any) => Err(dow_token.error(ScheduleErrorKind::CronNoDays)),
        (DaySpec::Rule(_), DaySpec::Rule(_)) => {
            Err(dow_token.error(ScheduleErrorKind::CronBothDays))
        }
    }
}

/// Whether a list term is one of the terms that must stand alone in `field`.
fn is_special_term(field: CronField, text: &str) -> bool {
    text == "?" || special_char(field, text).is_some_and(|(_, ch)| allows(field, ch))
}

/// Parses `L`, `LW`, `nW` (day-of-month) or `L`, `dL`, `d#n` (day-of-week); `None` when the
/// term is not special.
fn parse_special(field: CronField, term: Token<'_>) -> Result<Option<DayRule>, ScheduleError> {
    let text = term.text;
    let upper = text.to_ascii_uppercase();
    let rule = match (field, upper.as_str()) {
        (CronField::DayOfMonth, "L") => DayRule::LastDay,
        (CronField::DayOfMonth, "LW") => DayRule::LastWeekday,
        (CronField::DayOfMonth, _) if upper.len() > 1 && upper.ends_with('W') => {
            let day = term.slice(0..text.len() - 1);
            if number(day.text).is_none() {
                return Ok(None);
            }
            DayRule::NearestWeekday(parse_atom(field, day)?)
        }
        (CronField::DayOfWeek, "L") => DayRule::WeekDays(single(SATURDAY)),
        (CronField::DayOfWeek, _) if text.contains('#') => parse_nth(term)?,
        (CronField::DayOfWeek, _) if upper.len() > 1 && upper.ends_with('L') => {
            let day = term.slice(0..text.len() - 1);
            if number(day.text).is_none() && name_value(field, day.text).is_none() {
                return Ok(None);
            }
            DayRule::LastOfWeekday(parse_atom(field, day)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(rule))
}

/// Parses `d#n`: the `n`-th weekday `d` of the month.
fn parse_nth(term: Token<'_>) -> Result<DayRule, ScheduleError> {
    let unknown = || {
        let found = term.text.to_owned();
        term.error(ScheduleErrorKind::CronUnknownValue {
            field: CronField::DayOfWeek,
            found,
        })
    };
    let hash = term.text.find('#').ok_or_else(unknown)?;
    let (day, nth) = (term.slice(0..hash), term.slice(hash + 1..term.text.len()));
    if day.text.is_empty() {
        return Err(unknown());
    }
    let weekday = parse_atom(CronField::DayOfWeek, day)?;
    let nth_value = number(nth.text).ok_or_else(unknown)?;
    if !(1..=MAX_NTH).contains(&nth_value) {
        let found = nth.text.to_owned();
        return Err(nth.error(ScheduleErrorKind::CronNthOutOfRange { found }));
    }
    Ok(DayRule::NthWeekday {
        weekday,
        nth: nth_value,
    })
}

/// Parses one `*`, `a`, `a-b`, `*/s`, `a/s` or `a-b/s` term into the set of its slots.
fn parse_term(field: CronField, term: Token<'_>) -> Result<BitSet, ScheduleError> {
    let (range, step) = match term.text.split_once('/') {
        Some((range, _)) => {
            let step = term.slice(range.len() + 1..term.text.len());
            (term.slice(0..range.len()), Some(parse_step(field, step)?))
        }
        None => (term, None),
    };
    if range.text.is_empty() {
        let found = term.text.to_owned();
        return Err(term.error(ScheduleErrorKind::CronUnknownValue { field, found }));
    }
    let (start, end) = parse_range(field, range, step.is_some())?;
    Ok(expand(field, start, end, step.unwrap_or(1)))
}

/// Parses the part before `/`: `*`, `a` or `a-b`, as an inclusive (start, end) pair. A single
/// value with a step runs to the end of the field.
fn parse_range(
    field: CronField,
    range: Token<'_>,
    stepped: bool,
) -> Result<(u32, u32), ScheduleError> {
    if range.text == "*" {
        return Ok((field.min(), field.max()));
    }
    let Some((a, b)) = range.text.split_once('-') else {
        let value = parse_atom(field, range)?;
        return Ok((value, if stepped { field.max() } else { value }));
    };
    if a.is_empty() || b.is_empty() || b.contains('-') {
        let found = range.text.to_owned();
        return Err(range.error(ScheduleErrorKind::CronUnknownValue { field, found }));
    }
    let start = parse_atom(field, range.slice(0..a.len()))?;
    let end = parse_atom(field, range.slice(a.len() + 1..range.text.len()))?;
    if field == CronField::Year && end < start {
        let found = range.text.to_owned();
        return Err(range.error(ScheduleErrorKind::CronReversedYears { found }));
    }
    Ok((start, end))
}

/// Parses a step: a number from 1 to the number of values of the field.
fn parse_step(field: CronField, step: Token<'_>) -> Result<u32, ScheduleError> {
    number(step.text)
        .filter(|s| (1..=field.span()).contains(s))
        .ok_or_else(|| {
            let found = step.text.to_owned();
            step.error(ScheduleErrorKind::CronBadStep { field, found })
        })
}

/// Parses a number or name of `field`, with errors that name special characters precisely.
fn parse_atom(field: CronField, atom: Token<'_>) -> Result<u32, ScheduleError> {
    if let Some(value) = number(atom.text) {
        if (field.min()..=field.max()).contains(&value) {
            return Ok(value);
        }
        let found = atom.text.to_owned();
        return Err(atom.error(ScheduleErrorKind::CronOutOfRange { field, found }));
    }
    if let Some(value) = name_value(field, atom.text) {
        return Ok(value);
    }
    let found = atom.text.to_owned();
    Err(match special_char(field, atom.text) {
        Some((_, ch)) if allows(field, ch) => {
            atom.error(ScheduleErrorKind::CronSpecialNotAlone { field, found })
        }
        Some((i, ch)) => ScheduleError::new(
            atom.at + i,
            ScheduleErrorKind::CronSpecialNotAllowed { field, found: ch },
        ),
        None => atom.error(ScheduleErrorKind::CronUnknownValue { field, found }),
    })
}

/// The value of a month or day-of-week name (case-insensitive).
fn name_value(field: CronField, text: &str) -> Option<u32> {
    let names: &[&str] = match field {
        CronField::Month => &MONTHS,
        CronField::DayOfWeek => &WEEKDAYS,
        _ => return None,
    };
    let index = names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))?;
    Some(index as u32 + 1)
}

/// The special character (`?`, `#`, `L`, `W`) that makes `text` look like a special term, with
/// its offset: `?` or `#` anywhere, `L`, `LW`, or a number (day-of-week: also a day name)
/// followed by the suffix letter the field uses (`W` in day-of-month, `L` in day-of-week, either
/// one elsewhere, so that the error can say where the letter belongs).
fn special_char(field: CronField, text: &str) -> Option<(usize, char)> {
    if let Some(i) = text.find(['?', '#']) {
        return text[i..].chars().next().map(|ch| (i, ch));
    }
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "L" => return Some((0, 'L')),
        "LW" => return Some((1, 'W')),
        _ => {}
    }
    let strip = |ch: char| upper.strip_suffix(ch).map(|prefix| (prefix, ch));
    let (prefix, ch) = match field {
        CronField::DayOfMonth => strip('W')?,
        CronField::DayOfWeek => strip('L')?,
        _ => strip('L').or_else(|| strip('W'))?,
    };
    let named_day = field == CronField::DayOfWeek && name_value(field, prefix).is_some();
    (number(prefix).is_some() || named_day).then_some((prefix.len(), ch))
}

/// Whether `field` accepts the special character `ch` at all.
fn allows(field: CronField, ch: char) -> bool {
    matches!(
        (field, ch),
        (CronField::DayOfMonth | CronField::DayOfWeek, '?' | 'L')
            | (CronField::DayOfMonth, 'W')
            | (CronField::DayOfWeek, '#')
    )
}

/// A non-empty run of ASCII digits as a number (saturating, so huge numbers are out of range).
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u32, |n, b| {
        n.saturating_mul(10).saturating_add(u32::from(b - b'0'))
    }))
}

/// The bit index of `value` in the set of `field` (years are stored as offsets from 1970).
fn slot(field: CronField, value: u32) -> u32 {
    match field {
        CronField::Year => value - field.min(),
        _ => value,
    }
}

/// A set with the single value `value` (not a year).
fn single(value: u32) -> BitSet {
    let mut set = BitSet::default();
    set.insert(value);
    set
}

/// The values from `start` through `end` (wrapping past the field maximum when `end < start`)
/// every `step`, as slots.
fn expand(field: CronField, start: u32, end: u32, step: u32) -> BitSet {
    let (min, span) = (field.min(), field.span());
    let first = start - min;
    let mut last = end - min;
    if last < first {
        last += span;
    }
    let mut set = BitSet::default();
    for offset in (first..=last).step_by(step as usize) {
        set.insert(slot(field, min + offset % span));
    }
    set
}
