//! Queue and topic policies: one statement per queue or topic listing the rules that send there.

use super::*;

/// The statement id of this deployment's statement in queue and topic policies.
pub fn policy_sid(ctx: &Context) -> String {
    statement_prefix(ctx).trim_end_matches('-').to_owned()
}

/// One statement per queue (targets and dead-letter queues) and per topic that the rules send
/// to, listing the ARNs of those rules: one statement per rule would overflow the policy's
/// size limit.
pub(super) fn policies(out: &mut Desired, ctx: &Context) {
    use std::collections::BTreeMap;
    let mut queues: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut topics: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in out.resources.iter().filter(|r| r.kind == Kind::Rule) {
        let rule_arn = ctx.rule_arn(&r.name);
        for t in r
            .spec
            .get("Targets")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            let arn = t.get("Arn").and_then(Value::as_str).unwrap_or_default();
            if arn.starts_with("arn:aws:sqs:") {
                queues
                    .entry(arn.to_owned())
                    .or_default()
                    .push(rule_arn.clone());
            } else if arn.starts_with("arn:aws:sns:") {
                topics
                    .entry(arn.to_owned())
                    .or_default()
                    .push(rule_arn.clone());
            }
            if let Some(dlq) = t
                .get("DeadLetterConfig")
                .and_then(|d| d.get("Arn"))
                .and_then(Value::as_str)
            {
                queues
                    .entry(dlq.to_owned())
                    .or_default()
                    .push(rule_arn.clone());
            }
        }
    }
    for (kind, action, map) in [
        (Kind::QueuePolicy, "sqs:SendMessage", queues),
        (Kind::TopicPolicy, "sns:Publish", topics),
    ] {
        for (arn, mut rules) in map {
            rules.sort();
            rules.dedup();
            out.resources.push(Resource {
                kind,
                name: arn.clone(),
                spec: policy_spec(&arn, action, &policy_sid(ctx), &rules),
                origin: None,
            });
        }
    }
}

/// This deployment's statement, normalised: the source ARNs sorted.
pub fn policy_spec(arn: &str, action: &str, sid: &str, rules: &[String]) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": action,
        "Resource": arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rules}},
    })
}
