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
