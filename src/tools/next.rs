//! `trigd next`: the upcoming fires of schedule rules, computed exactly as the scheduler
//! will (time zone, DST, start/end window), without firing anything.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;

use crate::rules::{RuleSet, Schedule, Trigger};
use crate::schedule::{ScheduleExpr, dst_note};

/// The fires of one schedule rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub rule: String,
    pub expression: String,
    pub timezone: String,
    pub enabled: bool,
    pub fires: Vec<Fire>,
}

/// One fire.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    pub at: DateTime<Utc>,
    /// Wall-clock time in the rule's time zone.
    pub local: String,
    /// Set when the fire is within a day of a DST change.
    pub dst_note: Option<String>,
}

/// The next `count` fires of each schedule rule (or of `only`) strictly after `after`.
/// `rate` schedules are anchored at `start` when given, else at `after`. Disabled rules are
/// listed with no fires.
pub fn preview(
    set: &RuleSet,
    only: Option<&str>,
    count: usize,
    after: DateTime<Utc>,
) -> Vec<Preview> {
    set.rules
        .iter()
        .filter(|r| only.is_none_or(|o| o == r.name))
        .filter_map(|r| match &r.trigger {
            Trigger::Schedule(s) => Some(Preview {
                rule: r.name.clone(),
                expression: s.expr.to_string(),
                timezone: s.timezone.name().to_owned(),
                enabled: r.enabled,
                fires: if r.enabled {
                    fires(s, count, after)
                } else {
                    Vec::new()
                },
            }),
            Trigger::Pattern(_) => None,
        })
        .collect()
}

/// Fires of a schedule strictly after `after`, within its start/end window.
pub fn fires(s: &Schedule, count: usize, after: DateTime<Utc>) -> Vec<Fire> {
    let anchor = s.start.unwrap_or(after);
    // A fire exactly at `start` counts, so search from just before it.
    let mut cursor = match s.start {
        Some(start) if start > after => start - Duration::seconds(1),
        _ => after,
    };
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let Some(at) = s.expr.next_after(cursor, s.timezone, anchor) else {
            break;
        };
        if s.end.is_some_and(|end| at > end) {
            break;
        }
        out.push(Fire {
            at,
            local: at
                .with_timezone(&s.timezone)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string(),
            dst_note: dst_note(s.timezone, at),
        });
        cursor = at;
        if matches!(s.expr, ScheduleExpr::At(_)) {
            break;
        }
    }
    out
}

/// A schedule's fires on either side of an instant at which it does not fire: the last one
/// before it and the first one after it, within the start/end window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Around {
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// How far back [`fires_at`] looks for the fire before an instant (about 16 years, in
/// minutes): far enough for any yearly cron.
const LOOK_BACK_MINUTES: i64 = 1 << 23;

/// Most fires [`fires_at`] steps through while looking back.
const LOOK_BACK_STEPS: usize = 100_000;

/// Whether `s` fires at `at` (to the second), as the scheduler would; if not, its fires
/// around it. A `rate` with no `start` is anchored where the daemon starts, so it fires at
/// any instant within its window.
pub fn fires_at(s: &Schedule, at: DateTime<Utc>) -> Result<(), Around> {
    let anchor = s.start.unwrap_or(at);
    let in_window = s.start.is_none_or(|start| at >= start) && s.end.is_none_or(|end| at <= end);
    let second = Duration::seconds(1);
    if in_window && s.expr.next_after(at - second, s.timezone, anchor) == Some(at) {
        return Ok(());
    }
    let after = fires(s, 1, at).first().map(|f| f.at);
    Err(Around {
        before: fire_before(s, at, anchor),
        after,
    })
}

/// The last fire of `s` strictly before `at`, looking back in doubling steps.
fn fire_before(s: &Schedule, at: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let last = at - Duration::seconds(1);
    let latest = s.end.map_or(last, |end| end.min(last));
    // Searching from before `start` would find nothing more.
    let earliest = s.start.map(|start| start - Duration::seconds(1));
    let mut minutes = 1;
    while minutes <= LOOK_BACK_MINUTES {
        let mut from = latest - Duration::minutes(minutes);
        let exhausted = earliest.is_some_and(|e| from <= e);
        if let (true, Some(e)) = (exhausted, earliest) {
            from = e;
        }
        let found = std::iter::successors(s.expr.next_after(from, s.timezone, anchor), |&t| {
            s.expr.next_after(t, s.timezone, anchor)
        })
        .take(LOOK_BACK_STEPS)
        .take_while(|t| *t <= latest)
        .last();
        if found.is_some() || exhausted {
            return found;
        }
        minutes *= 2;
    }
    None
}

impl Preview {
    /// One line of `trigd next --format json`.
    pub fn to_json(&self) -> serde_json::Value {
        let fires: Vec<String> = self
            .fires
            .iter()
            .map(|f| f.at.to_rfc3339_opts(SecondsFormat::Secs, true))
            .collect();
        json!({
            "rule": self.rule,
            "expression": self.expression,
            "timezone": self.timezone,
            "fires": fires,
        })
    }

    /// The text form: local and UTC time, DST changes flagged.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}  {}  {}", self.rule, self.expression, self.timezone);
        if !self.enabled {
            out.push_str("  (disabled: never fires)");
        }
        out.push('\n');
        if self.enabled && self.fires.is_empty() {
            out.push_str("  no more fires\n");
        }
        for f in &self.fires {
            out.push_str(&format!(
                "  {}  ({})",
                f.local,
                f.at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ));
            if let Some(note) = &f.dst_note {
                out.push_str(&format!("  [{note}]"));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::{Around, Schedule, fires_at};
    use crate::rules::CatchUp;
    use crate::schedule::ScheduleExpr;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn schedule(expr: &str, tz: chrono_tz::Tz) -> Schedule {
        Schedule {
            expr: ScheduleExpr::parse(expr).unwrap(),
            timezone: tz,
            start: None,
            end: None,
            jitter: None,
            catch_up: CatchUp::Skip,
        }
    }

    #[test]
    fn a_weekday_cron_does_not_fire_on_sunday_and_names_its_fires_around_it() {
        let s = schedule("cron(0 7 ? * MON-FRI *)", chrono_tz::America::New_York);
        assert_eq!(
            fires_at(&s, t("2026-11-23T12:00:00Z")),
            Ok(()),
            "Monday 07:00"
        );
        assert_eq!(
            fires_at(&s, t("2026-11-22T12:00:00Z")),
            Err(Around {
                before: Some(t("2026-11-20T12:00:00Z")),
                after: Some(t("2026-11-23T12:00:00Z")),
            }),
            "Sunday"
        );
        // A minute late is not a fire either.
        assert!(fires_at(&s, t("2026-11-23T12:01:00Z")).is_err());
    }

    #[test]
    fn a_yearly_cron_finds_the_fire_a_year_back() {
        let s = schedule("cron(0 0 1 1 ? *)", chrono_tz::UTC);
        assert_eq!(
            fires_at(&s, t("2026-11-22T12:00:00Z")),
            Err(Around {
                before: Some(t("2026-01-01T00:00:00Z")),
                after: Some(t("2027-01-01T00:00:00Z")),
            })
        );
    }

    #[test]
    fn rates_and_windows() {
        let mut s = schedule("rate(5 minutes)", chrono_tz::UTC);
        // Anchored where the daemon starts: any instant can be a fire.
        assert_eq!(fires_at(&s, t("2026-11-22T12:03:17Z")), Ok(()));
        // Anchored at `start`: only its grid.
        s.start = Some(t("2026-11-22T12:00:00Z"));
        assert_eq!(fires_at(&s, t("2026-11-22T12:10:00Z")), Ok(()));
        assert_eq!(
            fires_at(&s, t("2026-11-22T12:03:00Z")),
            Err(Around {
                before: Some(t("2026-11-22T12:00:00Z")),
                after: Some(t("2026-11-22T12:05:00Z")),
            })
        );
        assert_eq!(
            fires_at(&s, t("2026-11-22T11:55:00Z")),
            Err(Around {
                before: None,
                after: Some(t("2026-11-22T12:00:00Z")),
            }),
            "before start"
        );
        s.end = Some(t("2026-11-22T13:00:00Z"));
        assert_eq!(
            fires_at(&s, t("2026-11-22T13:05:00Z")),
            Err(Around {
                before: Some(t("2026-11-22T13:00:00Z")),
                after: None,
            }),
            "after end"
        );
    }

    #[test]
    fn a_one_time_schedule_fires_once() {
        let s = schedule("at(2026-12-01T09:00:00)", chrono_tz::Europe::London);
        assert_eq!(fires_at(&s, t("2026-12-01T09:00:00Z")), Ok(()));
        assert_eq!(
            fires_at(&s, t("2027-12-01T09:00:00Z")),
            Err(Around {
                before: Some(t("2026-12-01T09:00:00Z")),
                after: None,
            })
        );
    }
}
