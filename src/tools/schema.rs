//! JSON Schemas of rule files and rule tests, printed by `trigd schema`, so that editors
//! (yaml-language-server) complete and check files as people type. The key lists come from
//! the validator's own tables, so the two cannot drift apart.

use serde_json::{Map, Value, json};

use crate::config::rule_file::{
    CATCH_UP_KEYS, RESERVED_VARIABLES, RETRY_KEYS, SNS_SOURCE_KEYS, SQS_SOURCE_KEYS, TARGET_KINDS,
    TARGET_OPTIONS, WEBHOOK_SOURCE_KEYS,
};
use crate::config::trigger_file::{API_KEYS, SCHEDULE_KEYS, SQS_KEYS};

const DRAFT: &str = "http://json-schema.org/draft-07/schema#";

fn name_schema(what: &str) -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$", "description": what})
}

fn duration() -> Value {
    json!({
        "description": "A duration: 30s, 15m, 24h, 1h30m, or whole seconds",
        "anyOf": [
            {"type": "string", "pattern": "^([0-9]+(d|h|m|s|ms))+$|^[0-9]+$"},
            {"type": "integer", "minimum": 0}
        ]
    })
}

fn object(props: Map<String, Value>, required: &[&str], description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

fn props(entries: &[(&str, Value)]) -> Map<String, Value> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn retry() -> Value {
    object(
        props(&[
            (
                RETRY_KEYS[0],
                json!({"type": "integer", "minimum": 0, "maximum": 185, "description": "Retries after the first attempt (EventBridge: 0-185, default 185)"}),
            ),
            (RETRY_KEYS[1], duration()),
        ]),
        &[],
        "EventBridge's retry policy",
    )
}

fn destination() -> Value {
    object(
        props(&[
            ("lambda", json!({"type": "string"})),
            ("sqs", json!({"type": "string", "format": "uri"})),
            ("sns", json!({"type": "string"})),
            ("eventbridge", json!({"type": "string"})),
            ("http", json!({"type": "string", "format": "uri"})),
            (
                "command",
                json!({"type": "array", "items": {"type": "string"}, "minItems": 1}),
            ),
            ("bus", json!({"const": true})),
        ]),
        &[],
        "Where a result goes: one target kind, or `bus: true` for trigd's own bus",
    )
}

fn target() -> Value {
    let string_map = json!({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}});
    let mut p = props(&[
        ("id", name_schema("Target id, unique within the rule")),
        (
            "lambda",
            json!({"type": "string", "description": "Function name, name:alias, or ARN"}),
        ),
        ("sqs", json!({"type": "string", "description": "Queue URL"})),
        ("sns", json!({"type": "string", "description": "Topic ARN"})),
        (
            "eventbridge",
            json!({"type": "string", "description": "Event bus name or ARN"}),
        ),
        (
            "http",
            json!({"type": "string", "description": "URL to POST the payload to"}),
        ),
        (
            "command",
            json!({"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "argv; never run through a shell; the payload arrives on stdin"}),
        ),
        ("log", json!({"const": true})),
        (
            "function",
            json!({"type": "string", "description": "A local function, declared under `functions:`"}),
        ),
        (
            "input",
            json!({"description": "A constant JSON value sent instead of the event"}),
        ),
        (
            "input_path",
            json!({"type": "string", "description": "JSONPath of the part of the event to send, e.g. $.detail"}),
        ),
        (
            "input_transformer",
            object(
                props(&[
                    (
                        "input_paths",
                        json!({"type": "object", "maxProperties": 100, "additionalProperties": {"type": "string"}}),
                    ),
                    (
                        "input_template",
                        json!({"type": "string", "minLength": 1, "maxLength": 8192, "description": format!("Text with <name> placeholders; reserved: {}", RESERVED_VARIABLES.iter().map(|v| format!("<{v}>")).collect::<Vec<_>>().join(", "))}),
                    ),
                ]),
                &["input_template"],
                "EventBridge's input transformer",
            ),
        ),
        ("retry", retry()),
        (
            "dead_letter",
            object(
                props(&[("sqs", json!({"type": "string"}))]),
                &["sqs"],
                "Dead-letter queue (standard SQS)",
            ),
        ),
        (
            "concurrency",
            json!({"type": "integer", "minimum": 1, "maximum": 10000}),
        ),
        (
            "log_output",
            json!({"type": "boolean", "description": "Log each successful delivery at info (rule, target, delivery id, duration), with a command's standard output and error"}),
        ),
        (
            "invocation_type",
            json!({"enum": ["Event", "RequestResponse"]}),
        ),
        ("on_success", destination()),
        ("on_failure", destination()),
        ("message_group_id", json!({"type": "string"})),
        ("subject", json!({"type": "string"})),
        ("source", json!({"type": "string"})),
        ("detail_type", json!({"type": "string"})),
        (
            "method",
            json!({"enum": ["POST", "PUT", "PATCH", "GET", "DELETE"]}),
        ),
        ("headers", string_map.clone()),
        ("timeout", duration()),
        ("cwd", json!({"type": "string"})),
        ("env", string_map),
    ]);
    // Document which kind each option applies to.
    for (opt, kinds) in TARGET_OPTIONS {
        if let Some(Value::Object(o)) = p.get_mut(*opt) {
            o.insert(
                "description".to_owned(),
                Value::String(format!("For {} targets", kinds.join(" and "))),
            );
        }
    }
    let mut schema = object(p, &["id"], "A target: exactly one of the kinds");
    if let Value::Object(o) = &mut schema {
        let one_of: Vec<Value> = TARGET_KINDS
            .iter()
            .map(|k| json!({"required": [k]}))
            .collect();
        o.insert("oneOf".to_owned(), Value::Array(one_of));
    }
    schema
}

fn catch_up() -> Value {
    json!({
        "anyOf": [
            {"enum": ["skip", "once"]},
            object(props(&[(CATCH_UP_KEYS[0], json!({"enum": ["skip", "once"]})), (CATCH_UP_KEYS[1], duration())]), &[], "Catch-up policy"),
        ]
    })
}

fn rule() -> Value {
    let mut schema = object(
        props(&[
            ("name", name_schema("Rule name, unique across files")),
            ("description", json!({"type": "string"})),
            (
                "pattern",
                json!({"type": ["object", "string"], "description": "An EventBridge event pattern"}),
            ),
            (
                "schedule",
                json!({"type": "string", "pattern": "^(rate|cron|at)\\(.*\\)$", "description": "rate(5 minutes), cron(0 6 ? * MON-FRI *) or at(2026-12-01T09:00:00)"}),
            ),
            (
                "timezone",
                json!({"type": "string", "description": "IANA time zone for cron and at; default UTC"}),
            ),
            ("start", json!({"type": "string", "format": "date-time"})),
            ("end", json!({"type": "string", "format": "date-time"})),
            ("jitter", duration()),
            ("catch_up", catch_up()),
            ("enabled", json!({"type": "boolean"})),
            (
                "targets",
                json!({"type": "array", "minItems": 1, "maxItems": 5, "items": target()}),
            ),
            ("retry", retry()),
            (
                "dead_letter",
                object(
                    props(&[("sqs", json!({"type": "string"}))]),
                    &["sqs"],
                    "Dead-letter queue (standard SQS)",
                ),
            ),
        ]),
        &["name", "targets"],
        "A rule: a pattern or a schedule, and 1-5 targets",
    );
    if let Value::Object(o) = &mut schema {
        o.insert(
            "oneOf".to_owned(),
            json!([{"required": ["pattern"]}, {"required": ["schedule"]}]),
        );
    }
    schema
}

fn source() -> Value {
    let keys = |list: &[&str]| -> Map<String, Value> {
        list.iter().map(|k| ((*k).to_owned(), json!({}))).collect()
    };
    object(
        props(&[
            (
                "sqs",
                object(keys(SQS_SOURCE_KEYS), &["queue_url"], "Poll an SQS queue"),
            ),
            (
                "sns",
                object(
                    props(&[
                        (
                            SNS_SOURCE_KEYS[0],
                            json!({"type": "array", "items": {"type": "string", "pattern": "^arn:aws[a-z-]*:sns:"}, "description": "Topics whose messages are accepted; none: any topic"}),
                        ),
                        (
                            SNS_SOURCE_KEYS[1],
                            json!({"type": "array", "items": {"type": "string"}, "description": "Hosts besides sns.REGION.amazonaws.com trusted to serve signing certificates and SubscribeURLs: HOST, HOST:PORT, *.DOMAIN, or http://LOOPBACK:PORT"}),
                        ),
                        (SNS_SOURCE_KEYS[2], duration()),
                    ]),
                    &[],
                    "Receive SNS over HTTP at POST /sns/NAME (signatures verified)",
                ),
            ),
            (
                "webhook",
                object(
                    keys(WEBHOOK_SOURCE_KEYS),
                    &[],
                    "Receive JSON at POST /events/NAME",
                ),
            ),
        ]),
        &[],
        "A source: exactly one kind",
    )
}

/// The schema of rule files.
pub fn rules() -> Value {
    json!({
        "$schema": DRAFT,
        "title": "trigd rule file",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "rules": {"type": "array", "items": rule()},
            "sources": {"type": "object", "additionalProperties": source()},
            "functions": {"type": "object", "additionalProperties": function()},
        }
    })
}

/// One of a function's `triggers:`.
fn trigger() -> Value {
    let source = || json!({"type": "string", "description": "A source under `sources:`"});
    let kinds = [
        (
            "api",
            object(
                props(&[
                    (
                        API_KEYS[0],
                        json!({"type": "string", "pattern": "^(\\$default|(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) /.*)$", "description": "An HTTP API route key: GET /hello, ANY /items/{id}, GET /files/{proxy+}, $default"}),
                    ),
                    (
                        API_KEYS[1],
                        json!({"type": "string", "enum": ["1.0", "2.0"], "description": "Payload format: 2.0 (HTTP API, the default) or 1.0 (REST API proxy)"}),
                    ),
                ]),
                &["route"],
                "A route of the HTTP API listener (`api:` in trigd.yaml)",
            ),
        ),
        (
            "sqs",
            object(
                props(&[
                    (SQS_KEYS[0], source()),
                    (
                        SQS_KEYS[1],
                        json!({"type": "integer", "minimum": 1, "maximum": 10000}),
                    ),
                    (SQS_KEYS[2], duration()),
                    (SQS_KEYS[3], json!({"type": "boolean"})),
                    (
                        SQS_KEYS[4],
                        json!({"type": "array", "maxItems": 5, "items": {"type": ["object", "string"]}, "description": "Filter criteria: event patterns matched against each record"}),
                    ),
                    (
                        SQS_KEYS[5],
                        json!({"type": "integer", "minimum": 2, "maximum": 1000}),
                    ),
                ]),
                &["source"],
                "Lambda's SQS event-source mapping",
            ),
        ),
        (
            "s3",
            object(
                props(&[("source", source())]),
                &["source"],
                "S3 notifications from an sqs or sns source",
            ),
        ),
        (
            "sns",
            object(
                props(&[("source", source())]),
                &["source"],
                "SNS notifications from an sns or sqs source",
            ),
        ),
        (
            "schedule",
            object(
                props(&[
                    (
                        SCHEDULE_KEYS[0],
                        json!({"type": "string", "pattern": "^(rate|cron|at)\\(.*\\)$"}),
                    ),
                    ("timezone", json!({"type": "string"})),
                    ("start", json!({"type": "string", "format": "date-time"})),
                    ("end", json!({"type": "string", "format": "date-time"})),
                    ("jitter", duration()),
                    ("catch_up", catch_up()),
                    (
                        "input",
                        json!({"description": "The payload; default: the Scheduled Event"}),
                    ),
                    ("enabled", json!({"type": "boolean"})),
                ]),
                &["expression"],
                "A schedule, as EventBridge Scheduler invokes a function",
            ),
        ),
    ];
    json!({
        "oneOf": kinds
            .into_iter()
            .map(|(k, v)| object(props(&[(k, v)]), &[k], "A trigger"))
            .collect::<Vec<_>>()
    })
}

/// A local function (`functions:`).
fn function() -> Value {
    object(
        props(&[
            (
                "runtime",
                json!({"type": "string", "pattern": "^(python3\\.[0-9]+|nodejs[0-9]+\\.x|provided(\\.al2023|\\.al2)?)$", "description": "Lambda's runtime identifier: python3.12, nodejs20.x, provided.al2023"}),
            ),
            (
                "handler",
                json!({"type": "string", "description": "module.function (Python), file.export (Node); provided runtimes run code/bootstrap"}),
            ),
            (
                "code",
                json!({"type": "string", "description": "The handler's directory, relative to this file"}),
            ),
            (
                "layers",
                json!({"type": "array", "maxItems": 5, "items": {"type": "string"}, "description": "Directories laid out as Lambda layers (python/, nodejs/node_modules/, bin/, lib/)"}),
            ),
            ("timeout", duration()),
            (
                "memory",
                json!({"type": "integer", "minimum": 128, "maximum": 10240, "description": "MB"}),
            ),
            (
                "concurrency",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            ),
            (
                "environment",
                json!({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}),
            ),
            ("description", json!({"type": "string"})),
            (
                "interpreter",
                json!({"type": "string", "description": "The python3 or node to run, when not the one on PATH"}),
            ),
            (
                "max_retry_attempts",
                json!({"type": "integer", "minimum": 0, "maximum": 2}),
            ),
            ("max_event_age", duration()),
            (
                "triggers",
                json!({"type": "array", "items": trigger(), "description": "What invokes the function, each event in that trigger's own shape (as Lambda's console adds triggers)"}),
            ),
        ]),
        &["runtime", "code"],
        "A local function: a Lambda handler trigd runs itself",
    )
}

/// The schema of rule tests (`*.test.yaml`).
pub fn tests() -> Value {
    let test = object(
        props(&[
            ("name", json!({"type": "string"})),
            ("event", json!({"type": "object"})),
            ("event_file", json!({"type": "string"})),
            (
                "schedule",
                object(
                    props(&[
                        ("rule", json!({"type": "string"})),
                        ("time", json!({"type": "string", "format": "date-time"})),
                    ]),
                    &["rule", "time"],
                    "A schedule rule's fire",
                ),
            ),
            (
                "expect",
                object(
                    props(&[
                        (
                            "matched",
                            json!({"type": "array", "items": {"type": "string"}}),
                        ),
                        (
                            "payloads",
                            json!({"type": "object", "description": "rule/target-id: expected payload (JSON compared as JSON; a string compared exactly)"}),
                        ),
                    ]),
                    &[],
                    "What must happen",
                ),
            ),
        ]),
        &["name", "expect"],
        "A rule test",
    );
    json!({
        "$schema": DRAFT,
        "title": "trigd rule tests",
        "type": "object",
        "additionalProperties": false,
        "required": ["tests"],
        "properties": {"tests": {"type": "array", "items": test}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rule_file::{RULE_KEYS, target_keys};
    use crate::config::trigger_file::{API_KEYS, SCHEDULE_KEYS, SQS_KEYS};

    fn keys_of(v: &Value) -> Vec<String> {
        v["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn schema_knows_every_key_the_validator_accepts() {
        let rule = rule();
        let mut rule_keys = keys_of(&rule);
        rule_keys.sort();
        let mut want: Vec<String> = RULE_KEYS.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(rule_keys, want);
        let mut target_props = keys_of(&target());
        target_props.sort();
        let mut want: Vec<String> = target_keys().iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(target_props, want);
        let mut function_props = keys_of(&function());
        function_props.sort();
        let mut want: Vec<String> = crate::config::function_file::FUNCTION_KEYS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        want.sort();
        assert_eq!(function_props, want);
        // Every trigger kind, with the keys its reader accepts.
        let kinds = trigger()["oneOf"].as_array().cloned().unwrap_or_default();
        let mut names = Vec::new();
        for kind in &kinds {
            let (name, inner) = kind["properties"]
                .as_object()
                .unwrap()
                .iter()
                .next()
                .unwrap();
            let mut got = keys_of(inner);
            got.sort();
            let mut want: Vec<String> = match name.as_str() {
                "api" => API_KEYS.to_vec(),
                "sqs" => SQS_KEYS.to_vec(),
                "s3" | "sns" => crate::config::trigger_file::SOURCE_KEYS.to_vec(),
                "schedule" => SCHEDULE_KEYS.to_vec(),
                other => panic!("unknown trigger kind {other}"),
            }
            .into_iter()
            .map(str::to_owned)
            .collect();
            want.sort();
            assert_eq!(got, want, "{name}");
            names.push(name.clone());
        }
        assert_eq!(names, crate::config::trigger_file::TRIGGER_KINDS);
    }
}
