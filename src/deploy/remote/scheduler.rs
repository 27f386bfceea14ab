//! EventBridge Scheduler: schedules read back in the desired state's shape, and written in
//! full (`UpdateSchedule` resets what it is not given).

use super::*;

pub(super) fn rfc3339(t: &aws_sdk_scheduler::primitives::DateTime) -> String {
    chrono::DateTime::from_timestamp(t.secs(), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A schedule read from Scheduler, in the desired state's shape (defaults filled in: time
/// zone UTC, retry 185/86400, action after completion NONE).
pub(super) fn schedule_spec(
    s: &aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput,
    group: &str,
) -> Value {
    let mut spec = Map::new();
    spec.insert("Name".into(), json!(s.name.as_deref().unwrap_or_default()));
    spec.insert("GroupName".into(), json!(group));
    if let Some(e) = &s.schedule_expression {
        spec.insert("ScheduleExpression".into(), json!(e));
    }
    spec.insert(
        "ScheduleExpressionTimezone".into(),
        json!(nonempty(s.schedule_expression_timezone.as_deref()).unwrap_or("UTC")),
    );
    if let Some(d) = &s.start_date {
        spec.insert("StartDate".into(), json!(rfc3339(d)));
    }
    if let Some(d) = &s.end_date {
        spec.insert("EndDate".into(), json!(rfc3339(d)));
    }
    if let Some(d) = nonempty(s.description.as_deref()) {
        spec.insert("Description".into(), json!(d));
    }
    if let Some(st) = &s.state {
        spec.insert("State".into(), json!(st.as_str()));
    }
    if let Some(w) = &s.flexible_time_window {
        let mut m = Map::new();
        m.insert("Mode".into(), json!(w.mode.as_str()));
        if w.mode == aws_sdk_scheduler::types::FlexibleTimeWindowMode::Flexible
            && let Some(n) = w.maximum_window_in_minutes
        {
            m.insert("MaximumWindowInMinutes".into(), json!(n));
        }
        spec.insert("FlexibleTimeWindow".into(), Value::Object(m));
    }
    spec.insert(
        "ActionAfterCompletion".into(),
        json!(
            s.action_after_completion
                .as_ref()
                .map(|a| a.as_str())
                .unwrap_or("NONE")
        ),
    );
    if let Some(t) = &s.target {
        let mut v = Map::new();
        v.insert("Arn".into(), json!(t.arn));
        v.insert("RoleArn".into(), json!(t.role_arn));
        if let Some(i) = &t.input {
            v.insert("Input".into(), json!(i));
        }
        let retry = t.retry_policy.as_ref();
        v.insert(
            "RetryPolicy".into(),
            retry_json(
                retry.and_then(|r| r.maximum_retry_attempts),
                retry.and_then(|r| r.maximum_event_age_in_seconds),
            ),
        );
        if let Some(arn) = t.dead_letter_config.as_ref().and_then(|d| d.arn.as_deref()) {
            v.insert("DeadLetterConfig".into(), json!({ "Arn": arn }));
        }
        if let Some(g) = t
            .sqs_parameters
            .as_ref()
            .and_then(|s| s.message_group_id.as_deref())
        {
            v.insert("SqsParameters".into(), json!({ "MessageGroupId": g }));
        }
        if let Some(p) = &t.event_bridge_parameters {
            v.insert(
                "EventBridgeParameters".into(),
                json!({"Source": p.source, "DetailType": p.detail_type}),
            );
        }
        spec.insert("Target".into(), Value::Object(v));
    }
    Value::Object(spec)
}

pub(super) fn sdk_schedule_target(
    v: &Value,
) -> Result<aws_sdk_scheduler::types::Target, RemoteError> {
    use aws_sdk_scheduler::types as t;
    let mut b = t::Target::builder()
        .arn(str_at(v, "Arn").unwrap_or_default())
        .role_arn(str_at(v, "RoleArn").unwrap_or_default());
    if let Some(i) = str_at(v, "Input") {
        b = b.input(i);
    }
    b = b.retry_policy(
        t::RetryPolicy::builder()
            .set_maximum_retry_attempts(int_at(v, &["RetryPolicy", "MaximumRetryAttempts"]))
            .set_maximum_event_age_in_seconds(int_at(
                v,
                &["RetryPolicy", "MaximumEventAgeInSeconds"],
            ))
            .build(),
    );
    if let Some(arn) = v.get("DeadLetterConfig").and_then(|d| str_at(d, "Arn")) {
        b = b.dead_letter_config(t::DeadLetterConfig::builder().arn(arn).build());
    }
    if let Some(g) = v
        .get("SqsParameters")
        .and_then(|d| str_at(d, "MessageGroupId"))
    {
        b = b.sqs_parameters(t::SqsParameters::builder().message_group_id(g).build());
    }
    if let Some(p) = v.get("EventBridgeParameters") {
        b = b.event_bridge_parameters(
            t::EventBridgeParameters::builder()
                .source(str_at(p, "Source").unwrap_or_default())
                .detail_type(str_at(p, "DetailType").unwrap_or_default())
                .build()
                .map_err(build("EventBridgeParameters"))?,
        );
    }
    b.build().map_err(build("schedule Target"))
}

pub(super) fn date(v: &Value, key: &str) -> Option<aws_sdk_scheduler::primitives::DateTime> {
    let text = str_at(v, key)?;
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(aws_sdk_scheduler::primitives::DateTime::from_secs(
        t.timestamp(),
    ))
}

/// Creates or (fully) updates a schedule.
pub(super) async fn put_schedule(
    c: &Clients,
    r: &Resource,
    create: bool,
) -> Result<(), RemoteError> {
    use aws_sdk_scheduler::types as t;
    let s = &r.spec;
    let window = s.get("FlexibleTimeWindow").cloned().unwrap_or_default();
    let window = if str_at(&window, "Mode") == Some("FLEXIBLE") {
        t::FlexibleTimeWindow::builder()
            .mode(t::FlexibleTimeWindowMode::Flexible)
            .set_maximum_window_in_minutes(int_at(&window, &["MaximumWindowInMinutes"]))
            .build()
    } else {
        t::FlexibleTimeWindow::builder()
            .mode(t::FlexibleTimeWindowMode::Off)
            .build()
    }
    .map_err(build("FlexibleTimeWindow"))?;
    let state = if str_at(s, "State") == Some("DISABLED") {
        t::ScheduleState::Disabled
    } else {
        t::ScheduleState::Enabled
    };
    let target = sdk_schedule_target(s.get("Target").unwrap_or(&Value::Null))?;
    let group = str_at(s, "GroupName").unwrap_or_default();
    let expr = str_at(s, "ScheduleExpression").unwrap_or_default();
    let tz = str_at(s, "ScheduleExpressionTimezone").unwrap_or("UTC");
    let description = str_at(s, "Description").map(str::to_owned);
    // The create and update requests take the same fields (builders of two types).
    macro_rules! every_field {
        ($req:expr) => {
            $req.name(&r.name)
                .group_name(group)
                .schedule_expression(expr)
                .schedule_expression_timezone(tz)
                .set_start_date(date(s, "StartDate"))
                .set_end_date(date(s, "EndDate"))
                .set_description(description)
                .state(state)
                .flexible_time_window(window)
                .action_after_completion(t::ActionAfterCompletion::None)
                .target(target)
        };
    }
    c.wrote();
    // Both calls take every field: UpdateSchedule resets what it is not given.
    if create {
        every_field!(c.scheduler.create_schedule())
            .send()
            .await
            .map_err(call("CreateSchedule"))?;
    } else {
        every_field!(c.scheduler.update_schedule())
            .send()
            .await
            .map_err(call("UpdateSchedule"))?;
    }
    Ok(())
}
