//! The plan, pure: the desired resources against those read from AWS, field by field, as
//! creates, updates (with each changed field's old and new value), deletes and conflicts; and
//! its text and JSON forms.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::desired::{Desired, Finding, RULES_PER_BUS_QUOTA, Severity};
use super::{Kind, Resource};

/// Who a resource found on AWS belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Tagged by trigd for this deployment.
    Us,
    /// Tagged by trigd for another deployment.
    OtherDeployment(String),
    /// Not tagged by trigd.
    Foreign,
}

/// A resource read from AWS, normalised like the desired ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub resource: Resource,
    pub owner: Owner,
}

/// What AWS holds, as far as the plan needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    /// Rules on the bus with a name trigd wants, or owned by this deployment; schedules of the
    /// deployment's group.
    pub resources: Vec<Existing>,
    /// Whether the deployment's schedule group exists (owned by it).
    pub group_exists: bool,
    /// Whether that group carries this deployment's tags (only then is it deleted).
    pub group_owned: bool,
    /// How many rules the bus holds in all (for the quota).
    pub rules_on_bus: usize,
    /// Functions, queues and topics (ARNs) that targets name and that do not exist: no
    /// permission or policy statement can be added to them.
    pub missing: Vec<String>,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// Dotted path in AWS's field names (`Targets.q.RetryPolicy.MaximumRetryAttempts`).
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// What the plan does with one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    Update(Vec<FieldChange>),
    Delete,
    /// A resource with the name trigd wants that trigd may not change: why.
    Conflict(String),
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: Kind,
    pub name: String,
    pub action: Action,
    /// The desired resource (creates and updates).
    pub desired: Option<Resource>,
    /// The resource as read (updates and deletes).
    pub actual: Option<Resource>,
    /// An update that first tags a resource trigd did not create (`--adopt`).
    pub adopt: bool,
}

/// The whole plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// The deployment's schedule group must be created first.
    pub create_group: bool,
    /// The deployment's schedule group is deleted last: no schedule is left in it.
    pub delete_group: bool,
    pub findings: Vec<Finding>,
    /// What connections send (never shown).
    pub secrets: super::desired::Secrets,
}

impl Plan {
    /// Creates, updates and deletes (conflicts are not changes: they are errors).
    pub fn change_count(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for c in &self.changes {
            match c.action {
                Action::Create => n.0 += 1,
                Action::Update(_) => n.1 += 1,
                Action::Delete => n.2 += 1,
                Action::Conflict(_) => {}
            }
        }
        n
    }

    pub fn has_changes(&self) -> bool {
        let (a, b, c) = self.change_count();
        a + b + c > 0 || self.create_group || self.delete_group
    }

    pub fn conflicts(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c.action, Action::Conflict(_)))
            .count()
    }

    /// True when the plan holds errors: conflicts, or error findings (undeployable ones
    /// unless skipped).
    pub fn has_errors(&self, skip_undeployable: bool) -> bool {
        self.conflicts() > 0
            || self.findings.iter().any(|f| {
                f.severity == Severity::Error
                    || (f.severity == Severity::Undeployable && !skip_undeployable)
            })
    }
}

/// A schedule's `StartDate` at or before `now`, which Scheduler refuses to be given again (for
/// expressions with `*`, more than 5 minutes in the past): left out of what is sent, and not
/// compared with what AWS holds, when that is past too.
fn past_start(spec: &Value, now: DateTime<Utc>) -> bool {
    spec.get("StartDate")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t <= now)
}

/// Whether a schedule is a one-shot `at()` whose time, in its time zone, is at or before `now`.
fn one_shot_done(spec: &Value, now: DateTime<Utc>) -> bool {
    let Some(at) = spec
        .get("ScheduleExpression")
        .and_then(Value::as_str)
        .and_then(|e| e.strip_prefix("at("))
        .and_then(|e| e.strip_suffix(')'))
    else {
        return false;
    };
    let Ok(local) = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S") else {
        return false;
    };
    let tz: chrono_tz::Tz = spec
        .get("ScheduleExpressionTimezone")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
        .unwrap_or(chrono_tz::UTC);
    // A local time skipped by a DST change counts as the instant after the gap.
    let instant = match local.and_local_timezone(tz) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.to_utc(),
        chrono::LocalResult::None => (local + chrono::Duration::hours(1)).and_utc(),
    };
    instant <= now
}

fn without_start(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if let Some(m) = spec.as_object_mut() {
        m.remove("StartDate");
    }
    spec
}

/// Diffs `desired` against `actual`, at `now` (for schedules whose start has passed).
pub fn diff(desired: &Desired, actual: &Actual, now: DateTime<Utc>) -> Plan {
    diff_with(desired, actual, now, false)
}

/// The path of the field change that stands for the tags an adopted resource gets.
pub const TAGS: &str = "(tags)";

/// As [`diff`]; with `adopt`, a same-named resource without trigd's tags (not another
/// deployment's) is taken over: tagged, then updated, instead of reported as a conflict.
pub fn diff_with(desired: &Desired, actual: &Actual, now: DateTime<Utc>, adopt: bool) -> Plan {
    let mut plan = Plan {
        findings: desired.findings.clone(),
        secrets: desired.secrets.clone(),
        ..Plan::default()
    };
    let find = |kind: Kind, name: &str| {
        actual
            .resources
            .iter()
            .find(|e| e.resource.kind == kind && e.resource.name == name)
    };
    // Functions the plan creates are missing only until it runs.
    let created: Vec<&str> = desired
        .resources
        .iter()
        .filter(|r| r.kind == Kind::Function)
        .filter_map(|r| r.spec.get("FunctionArn").and_then(Value::as_str))
        .collect();
    let missing: Vec<&str> = actual
        .missing
        .iter()
        .map(String::as_str)
        .filter(|m| !created.contains(m))
        .collect();
    for arn in &missing {
        plan.findings.push(Finding {
            severity: Severity::Warning,
            origin: None,
            message: format!(
                "`{arn}` does not exist: EventBridge cannot deliver to it, and the permission to \
                 do so is added by the first apply after it is created"
            ),
        });
    }
    for want in &desired.resources {
        let grants_on = match want.kind {
            Kind::Permission => want.spec.get("FunctionName").and_then(Value::as_str),
            Kind::QueuePolicy | Kind::TopicPolicy => Some(want.name.as_str()),
            Kind::Rule
            | Kind::Schedule
            | Kind::Connection
            | Kind::ApiDestination
            | Kind::Layer
            | Kind::Function
            | Kind::EventSourceMapping
            | Kind::Subscription => None,
        };
        if grants_on.is_some_and(|arn| missing.contains(&arn)) {
            continue;
        }
        let mut want = want.clone();
        let mut have_spec = find(want.kind, &want.name).map(|e| e.resource.spec.clone());
        if want.kind == Kind::Schedule && past_start(&want.spec, now) {
            want.spec = without_start(&want.spec);
            if have_spec
                .as_ref()
                .is_none_or(|h| past_start(h, now) || h.get("StartDate").is_none())
            {
                have_spec = have_spec.map(|h| without_start(&h));
            }
            plan.findings.push(Finding {
                severity: Severity::Info,
                origin: want.origin.clone(),
                message: format!(
                    "schedule `{}`: its `start` has passed, so it is not sent (Scheduler refuses a \
                     start date in the past); a rate then counts from when the schedule was created",
                    want.name
                ),
            });
        }
        let want = &want;
        if find(want.kind, &want.name).is_none() && one_shot_done(&want.spec, now) {
            plan.findings.push(Finding {
                severity: Severity::Info,
                origin: want.origin.clone(),
                message: format!(
                    "= schedule `{}`: its `at()` time has passed and it is not on AWS (done, \
                     or deleted after it fired): not created again",
                    want.name
                ),
            });
            continue;
        }
        let change = match find(want.kind, &want.name) {
            None => Change {
                kind: want.kind,
                name: want.name.clone(),
                action: Action::Create,
                desired: Some(want.clone()),
                actual: None,
                adopt: false,
            },
            Some(have) => {
                let action = match &have.owner {
                    Owner::Us => {
                        let have = have_spec.as_ref().unwrap_or(&have.resource.spec);
                        let fields = field_changes(have, &want.spec);
                        if fields.is_empty() {
                            continue;
                        }
                        Action::Update(fields)
                    }
                    Owner::OtherDeployment(d) => Action::Conflict(format!(
                        "a {} with this name belongs to trigd deployment `{d}`; rename the rule \
                         or deploy it with --deployment {d}",
                        want.kind.label()
                    )),
                    Owner::Foreign if adopt => {
                        let have = have_spec.as_ref().unwrap_or(&have.resource.spec);
                        let mut fields = field_changes(have, &want.spec);
                        fields.insert(
                            0,
                            FieldChange {
                                path: TAGS.to_owned(),
                                before: None,
                                after: Some(json!("managed-by=trigd, trigd:deployment=this one")),
                            },
                        );
                        Action::Update(fields)
                    }
                    Owner::Foreign => Action::Conflict(format!(
                        "a {} with this name exists and was not created by trigd (it has no \
                         `managed-by: trigd` tag); it is left alone: rename the rule, or delete \
                         or tag the existing one",
                        want.kind.label()
                    )),
                };
                Change {
                    kind: want.kind,
                    name: want.name.clone(),
                    action,
                    desired: Some(want.clone()),
                    actual: Some(have.resource.clone()),
                    adopt: adopt && have.owner == Owner::Foreign,
                }
            }
        };
        plan.changes.push(change);
    }
    let schedules = desired.resources.iter().any(|r| r.kind == Kind::Schedule);
    plan.create_group = !actual.group_exists
        && plan
            .changes
            .iter()
            .any(|c| c.kind == Kind::Schedule && c.action == Action::Create);
    plan.delete_group = !schedules && actual.group_exists && actual.group_owned;
    for have in &actual.resources {
        if have.owner != Owner::Us {
            continue;
        }
        let wanted = desired
            .resources
            .iter()
            .any(|r| r.kind == have.resource.kind && r.name == have.resource.name);
        if !wanted {
            plan.changes.push(Change {
                kind: have.resource.kind,
                name: have.resource.name.clone(),
                action: Action::Delete,
                desired: None,
                actual: Some(have.resource.clone()),
                adopt: false,
            });
        }
    }
    let creates = plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Rule && c.action == Action::Create)
        .count();
    let deletes = plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Rule && c.action == Action::Delete)
        .count();
    let after = (actual.rules_on_bus + creates).saturating_sub(deletes);
    if after > RULES_PER_BUS_QUOTA {
        plan.findings.push(Finding {
            severity: Severity::Warning,
            origin: None,
            message: format!(
                "the bus would hold {after} rules: over EventBridge's default quota of \
                 {RULES_PER_BUS_QUOTA} rules per bus; ask AWS to raise it before applying"
            ),
        });
    }
    plan
}

/// The path of the field change that stands for secrets sent again (`--update-secrets`):
/// their values cannot be read back from AWS, so they are never compared.
pub const SECRETS: &str = "(secrets)";

/// Every connection the plan does not change yet is updated too, to send its secrets again.
pub fn resend_secrets(plan: &mut Plan, desired: &Desired) {
    for want in desired
        .resources
        .iter()
        .filter(|r| r.kind == Kind::Connection)
    {
        let change = plan
            .changes
            .iter_mut()
            .find(|c| c.kind == Kind::Connection && c.name == want.name);
        let secrets = FieldChange {
            path: SECRETS.to_owned(),
            before: None,
            after: None,
        };
        match change {
            Some(c) => {
                if let Action::Update(fields) = &mut c.action {
                    fields.push(secrets);
                }
            }
            None => plan.changes.push(Change {
                kind: Kind::Connection,
                name: want.name.clone(),
                action: Action::Update(vec![secrets]),
                desired: Some(want.clone()),
                actual: Some(want.clone()),
                adopt: false,
            }),
        }
    }
}

/// The leaves of a spec by dotted path; arrays are leaves.
fn leaves(v: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned(), v.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", v, &mut out);
    out
}

/// The fields that differ between `before` and `after`, in path order.
pub fn field_changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let a = leaves(before);
    let b = leaves(after);
    let mut paths: Vec<&String> = a.keys().chain(b.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| a.get(*p) != b.get(*p))
        .map(|p| FieldChange {
            path: p.clone(),
            before: a.get(p).cloned(),
            after: b.get(p).cloned(),
        })
        .collect()
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(none)".to_owned(),
        Some(v) => crate::event::compact(v),
    }
}

/// The plan as text: one line per change (`+` create, `~` update with its fields, `-` delete,
/// `!` conflict), the findings, and the totals.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    let mut findings = plan.findings.clone();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in &findings {
        out.push_str(&format!("{f}\n"));
    }
    if !findings.is_empty() {
        out.push('\n');
    }
    if plan.create_group {
        out.push_str("+ schedule group (created for this deployment's schedules)\n");
    }
    if plan.delete_group {
        out.push_str("- schedule group (no schedule left in it)\n");
    }
    for c in &plan.changes {
        let what = format!("{} {}", c.kind.label(), c.name);
        match &c.action {
            Action::Create => out.push_str(&format!("+ {what}\n")),
            Action::Delete => out.push_str(&format!("- {what}\n")),
            Action::Conflict(why) => out.push_str(&format!("! {what}: {why}\n")),
            Action::Update(fields) => {
                out.push_str(&format!("~ {what}\n"));
                for f in fields {
                    if f.path == SECRETS {
                        out.push_str("    secrets: sent again (never shown)\n");
                        continue;
                    }
                    out.push_str(&format!(
                        "    {}: {} -> {}\n",
                        f.path,
                        show(&f.before),
                        show(&f.after)
                    ));
                }
            }
        }
    }
    let (add, change, delete) = plan.change_count();
    if plan.has_changes() {
        out.push_str(&format!(
            "\n{add} to add, {change} to change, {delete} to delete"
        ));
    } else {
        out.push_str("no changes");
    }
    let conflicts = plan.conflicts();
    if conflicts > 0 {
        out.push_str(&format!(", {conflicts} conflict(s)"));
    }
    out.push('\n');
    out
}

/// The plan as one JSON object: `{"changes":[{"action","kind","name","fields"?,"reason"?}],
/// "create_group", "findings":[{"severity","file","line","column","message"}], "summary":
/// {"add","change","delete","conflict"}}`.
pub fn render_json(plan: &Plan) -> Value {
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|c| {
            let mut v = json!({"kind": c.kind.label(), "name": c.name});
            match &c.action {
                Action::Create => v["action"] = json!("create"),
                Action::Delete => v["action"] = json!("delete"),
                Action::Conflict(why) => {
                    v["action"] = json!("conflict");
                    v["reason"] = json!(why);
                }
                Action::Update(fields) => {
                    v["action"] = json!("update");
                    v["fields"] = fields
                        .iter()
                        .map(|f| json!({"path": f.path, "before": f.before, "after": f.after}))
                        .collect();
                }
            }
            v
        })
        .collect();
    let findings: Vec<Value> = plan
        .findings
        .iter()
        .map(|f| {
            let mut v = json!({"severity": f.severity.label(), "message": f.message});
            if let Some(o) = &f.origin {
                v["file"] = json!(o.file);
                v["line"] = json!(o.line);
                v["column"] = json!(o.column);
            }
            v
        })
        .collect();
    let (add, change, delete) = plan.change_count();
    json!({
        "changes": changes,
        "create_group": plan.create_group,
        "delete_group": plan.delete_group,
        "findings": findings,
        "summary": {"add": add, "change": change, "delete": delete, "conflict": plan.conflicts()},
    })
}
