//! Table-driven tests of target input shaping (aws-semantics.md §2).

use std::borrow::Cow;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const CONTEXT: RenderContext<'static> = RenderContext {
    rule_name: "my-rule",
    rule_arn: "arn:aws:events:us-east-1:123456789012:rule/my-rule",
    ingestion_time: "2017-12-22T18:43:49Z",
};

/// The event most cases render, as received (pretty-printed on purpose).
const EVENT_TEXT: &str = r#"{
  "version": "0",
  "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
  "detail-type": "EC2 Instance State-change Notification",
  "source": "aws.ec2",
  "account": "111122223333",
  "time": "2017-12-22T18:43:48Z",
  "region": "us-west-1",
  "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1"],
  "detail": {
    "instance-id": "i-0123",
    "state": "RUNNING",
    "payload": {"acc_id": "0a", "sf_id": "baz"},
    "list": ["ACTIVE", "INACTIVE"],
    "high": ["HIGH"],
    "valid": true,
    "count": 42,
    "ratio": 1.5,
    "nothing": null,
    "quote": "say \"hi\"",
    "backslash": "a\\b",
    "windows": "c:\\temp\\x",
    "unicode": "héllo ✓ 日本",
    "newline": "a\nb",
    "injection": "b\",\"c\":\"d",
    "numbers": [1, 2],
    "items": [{"id": 1}, {"id": 2}, {"other": 3}]
  }
}"#;

fn event() -> Value {
    serde_json::from_str(EVENT_TEXT).expect("test event is JSON")
}

/// `input_paths` used by most cases: one name per kind of value.
const PATHS: &[(&str, &str)] = &[
    ("i", "$.detail.instance-id"),
    ("s", "$.detail.state"),
    ("obj", "$.detail.payload"),
    ("list", "$.detail.list"),
    ("high", "$.detail.high"),
    ("valid", "$.detail.valid"),
    ("n", "$.detail.count"),
    ("ratio", "$.detail.ratio"),
    ("null", "$.detail.nothing"),
    ("missing", "$.detail.absent"),
    ("quote", "$.detail.quote"),
    ("bs", "$.detail.backslash"),
    ("win", "$.detail.windows"),
    ("uni", "$.detail.unicode"),
    ("nl", "$.detail.newline"),
    ("inj", "$.detail.injection"),
    ("nums", "$.detail.numbers"),
    ("ids", "$.detail.items[*].id"),
    ("sf", "$.detail.payload.sf_id"),
];

/// What a case expects.
#[derive(Debug)]
enum Expected<'a> {
    /// Rendered body, byte for byte.
    Body(&'a str),
    /// The template does not compile: offset and a fragment of the message.
    Rejected(usize, &'a str),
    /// The template compiles but renders invalid JSON.
    InvalidJson,
}

use Expected::{Body, InvalidJson, Rejected};

/// Compiles `template` with `paths`, renders it for `event`, and compares with `expected`.
fn check(template: &str, paths: &[(&str, &str)], event: &Value, expected: Expected<'_>) {
    let spec = InputSpec::transformer(paths, template);
    match (spec, expected) {
        (Ok(spec), Body(body)) => {
            let rendered = spec.render(EVENT_TEXT, event, &CONTEXT);
            assert_eq!(rendered.as_deref(), Ok(body), "template {template:?}");
        }
        (Ok(spec), InvalidJson) => {
            let rendered = spec.render(EVENT_TEXT, event, &CONTEXT);
            assert!(
                matches!(rendered, Err(RenderError::InvalidJson { .. })),
                "template {template:?}: {rendered:?}"
            );
        }
        (Err(errors), Rejected(offset, fragment)) => match errors.as_slice() {
            [InputSpecError::Template(error)] => {
                assert_eq!(error.offset, offset, "template {template:?}: {error}");
                assert!(
                    error.message.contains(fragment),
                    "template {template:?}: {error}"
                );
                assert_well_formed(&error.message);
            }
            other => panic!("template {template:?}: expected one template error, got {other:?}"),
        },
        (result, expected) => {
            panic!("template {template:?}: expected {expected:?}, got {result:?}")
        }
    }
}

/// Runs `check` on each `(template, expected)` with [`PATHS`] and [`event`].
fn check_all(cases: Vec<(&str, Expected<'_>)>) {
    let event = event();
    for (template, expected) in cases {
        check(template, PATHS, &event, expected);
    }
}

/// Messages are lowercase, have no trailing period, and say what to do after a colon.
fn assert_well_formed(message: &str) {
    assert!(!message.ends_with('.'), "{message}");
    assert!(message.contains(": "), "{message}");
    assert!(
        message.chars().next().is_some_and(|c| !c.is_uppercase()),
        "{message}"
    );
}

#[test]
fn aws_test_ideas() {
    check_all(vec![
        (r#"{"instance": <i>}"#, Body(r#"{"instance": "i-0123"}"#)),
        (r#"{"instance":<i>}"#, Body(r#"{"instance":"i-0123"}"#)),
        (r#"{"instance": "<i>"}"#, Body(r#"{"instance": "i-0123"}"#)),
        (
            r#""instance <i> is in <s>""#,
            Body(r#""instance i-0123 is in RUNNING""#),
        ),
        (
            r#"{"x": <obj>}"#,
            Body(r#"{"x": {"acc_id":"0a","sf_id":"baz"}}"#),
        ),
        (r#"{"x": "<obj>"}"#, InvalidJson),
        (r#""P <obj>""#, Body(r#""P {acc_id:0a,sf_id:baz}""#)),
        (r#""<list> items""#, Body(r#""[ACTIVE,INACTIVE] items""#)),
        (r#"{"l": <high>}"#, Body(r#"{"l": ["HIGH"]}"#)),
        (r#""Command is <valid>!""#, Body(r#""Command is true!""#)),
        (
            r#"{"m":"users/<i>/second/<i>"}"#,
            Body(r#"{"m":"users/i-0123/second/i-0123"}"#),
        ),
        (r#"{"c": <missing>}"#, Body(r#"{"c": ""}"#)),
        (
            r#"{"c": <undefined>}"#,
            Rejected(6, "undefined placeholder <undefined>"),
        ),
        (
            r#""<aws.events.rule-name> triggered""#,
            Body(r#""my-rule triggered""#),
        ),
        (r#"{"q": "<quote>"}"#, InvalidJson),
    ]);
}

#[test]
fn substitution_table_json_unquoted() {
    check_all(vec![
        (r#"{"k": <s>}"#, Body(r#"{"k": "RUNNING"}"#)),
        (
            r#"{"k": <obj>}"#,
            Body(r#"{"k": {"acc_id":"0a","sf_id":"baz"}}"#),
        ),
        (r#"{"k": <list>}"#, Body(r#"{"k": ["ACTIVE","INACTIVE"]}"#)),
        (r#"{"k": <valid>}"#, Body(r#"{"k": true}"#)),
        (r#"{"k": <n>}"#, Body(r#"{"k": 42}"#)),
        (r#"{"k": <ratio>}"#, Body(r#"{"k": 1.5}"#)),
        (r#"{"k": <null>}"#, Body(r#"{"k": null}"#)),
        (r#"{"k": <missing>}"#, Body(r#"{"k": ""}"#)),
        (r#"{"k": <quote>}"#, Body(r#"{"k": "say \"hi\""}"#)),
        (r#"{"k": <bs>}"#, Body(r#"{"k": "a\\b"}"#)),
        (r#"{"k": <nl>}"#, Body(r#"{"k": "a\nb"}"#)),
        (r#"{"k": <uni>}"#, Body(r#"{"k": "héllo ✓ 日本"}"#)),
        (r#"{"k": <ids>}"#, Body(r#"{"k": [1,2]}"#)),
    ]);
}

#[test]
fn substitution_table_json_inside_strings() {
    check_all(vec![
        (r#"{"k": "<s>"}"#, Body(r#"{"k": "RUNNING"}"#)),
        (r#"{"k": "p/<s>/q"}"#, Body(r#"{"k": "p/RUNNING/q"}"#)),
        (r#"{"k": "p/<obj>/q"}"#, InvalidJson),
        (r#"{"k": "<list>"}"#, InvalidJson),
        (r#"{"k": "<valid>"}"#, Body(r#"{"k": "true"}"#)),
        (r#"{"k": "<n>"}"#, Body(r#"{"k": "42"}"#)),
        (r#"{"k": "<null>"}"#, Body(r#"{"k": "null"}"#)),
        (r#"{"k": "a<missing>b"}"#, Body(r#"{"k": "ab"}"#)),
        (r#"{"k": "<missing>"}"#, Body(r#"{"k": ""}"#)),
        (r#"{"k": "<uni>"}"#, Body(r#"{"k": "héllo ✓ 日本"}"#)),
        // Raw `a\b` happens to be a valid escape (backspace): delivered, as on AWS.
        (r#"{"k": "<bs>"}"#, Body(r#"{"k": "a\b"}"#)),
        (r#"{"k": "<win>"}"#, InvalidJson),
        (r#"{"k": "<nl>"}"#, InvalidJson),
        // An array without strings stays valid JSON inside a string.
        (r#"{"k": "<nums>"}"#, Body(r#"{"k": "[1,2]"}"#)),
        // Raw insertion can inject JSON that stays valid: delivered, as on AWS.
        (r#"{"a": "<inj>"}"#, Body(r#"{"a": "b","c":"d"}"#)),
        (
            r#"{"k": "say \"<s>\""}"#,
            Body(r#"{"k": "say \"RUNNING\""}"#),
        ),
    ]);
}

#[test]
fn substitution_table_free_text() {
    check_all(vec![
        (r#""x <s> y""#, Body(r#""x RUNNING y""#)),
        (r#""x <obj> y""#, Body(r#""x {acc_id:0a,sf_id:baz} y""#)),
        (r#""x <list> y""#, Body(r#""x [ACTIVE,INACTIVE] y""#)),
        (r#""x <valid> y""#, Body(r#""x true y""#)),
        (r#""x <n> y""#, Body(r#""x 42 y""#)),
        (r#""x <null> y""#, Body(r#""x null y""#)),
        (r#""... detail <missing>""#, Body(r#""... detail ""#)),
        (r#""say <quote>""#, Body(r#""say say "hi"""#)),
        (r#""<bs> <nl>""#, Body("\"a\\b a\nb\"")),
        (r#""<uni>""#, Body(r#""héllo ✓ 日本""#)),
        (r#""ids <ids>""#, Body(r#""ids [1,2]""#)),
        ("instance <i>", Body("instance i-0123")),
        ("\"a <i>\"\n\"b <s>\"", Body("\"a i-0123\"\n\"b RUNNING\"")),
        (r#""{[/Check <i>""#, Body(r#""{[/Check i-0123""#)),
        (
            r#""a < b <= c <<i>> </b> <a b> <>""#,
            Body(r#""a < b <= c <i-0123> </b> <a b> <>""#),
        ),
        ("  \"indented <s>\"  ", Body("  \"indented RUNNING\"  ")),
    ]);
}

#[test]
fn reserved_variables() {
    check_all(vec![
        (
            r#"{"r": <aws.events.rule-name>, "a": <aws.events.rule-arn>, "t": <aws.events.event.ingestion-time>}"#,
            Body(
                r#"{"r": "my-rule", "a": "arn:aws:events:us-east-1:123456789012:rule/my-rule", "t": "2017-12-22T18:43:49Z"}"#,
            ),
        ),
        (
            r#"{"m": "<aws.events.rule-name> at <aws.events.event.ingestion-time>"}"#,
            Body(r#"{"m": "my-rule at 2017-12-22T18:43:49Z"}"#),
        ),
        (
            r#""<aws.events.rule-arn>""#,
            Body(r#""arn:aws:events:us-east-1:123456789012:rule/my-rule""#),
        ),
        (
            r#"{"e": <aws.events.event>}"#,
            Body(concat!(
                r#"{"e": {"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","#,
                r#""detailType":"EC2 Instance State-change Notification","source":"aws.ec2","#,
                r#""account":"111122223333","time":"2017-12-22T18:43:48Z","region":"us-west-1","#,
                r#""resources":["arn:aws:ec2:us-west-1:123456789012:instance/i-1"]}}"#
            )),
        ),
        (
            r#"{"e": "<aws.events.event>"}"#,
            Rejected(7, "not inside a string"),
        ),
        (
            r#"{"e": "x <aws.events.event.json>"}"#,
            Rejected(9, "not inside a string"),
        ),
        (
            r#""event <aws.events.event.json>""#,
            Rejected(7, "template starting with { or ["),
        ),
        (
            "<aws.events.event>",
            Rejected(0, "value in a JSON template"),
        ),
    ]);
}

#[test]
fn whole_event_placeholder_embeds_the_compact_event() {
    let event = event();
    let template = r#"{"e": <aws.events.event.json>}"#;
    let spec = InputSpec::transformer(PATHS, template).expect("compiles");
    let body = spec.render(EVENT_TEXT, &event, &CONTEXT).expect("renders");
    assert_eq!(body, format!(r#"{{"e": {event}}}"#));
    let parsed: Value = serde_json::from_str(&body).expect("valid JSON");
    assert_eq!(parsed["e"], event);
}

#[test]
fn envelope_keeps_only_present_fields() {
    let event = json!({"source": "app", "detail-type": "t", "detail": {"x": 1}, "extra": 2});
    check(
        r#"[<aws.events.event>]"#,
        &[],
        &event,
        Body(r#"[{"detailType":"t","source":"app"}]"#),
    );
    check(r#"[<aws.events.event>]"#, &[], &json!([1]), Body("[{}]"));
}

#[test]
fn json_layout_is_kept() {
    check_all(vec![
        (
            "{\n  \"a\": <i>,\n\t\"b\" : \"<s>\"\n}\n",
            Body("{\n  \"a\": \"i-0123\",\n\t\"b\" : \"RUNNING\"\n}\n"),
        ),
        ("  \n{\"a\":<n>}", Body("  \n{\"a\":42}")),
        (r#"[<i>, <n>]"#, Body(r#"["i-0123", 42]"#)),
        (
            r#"[[<i>], {"x": [<n>, "<s>", <obj>]}, "<a < b>"]"#,
            Body(
                r#"[["i-0123"], {"x": [42, "RUNNING", {"acc_id":"0a","sf_id":"baz"}]}, "<a < b>"]"#,
            ),
        ),
        (
            r#"{"x": "a < b", "y": <n>}"#,
            Body(r#"{"x": "a < b", "y": 42}"#),
        ),
        (r#"{"u": "\u00e9 <s>"}"#, Body(r#"{"u": "\u00e9 RUNNING"}"#)),
        (
            r#"{"sf": <sf>, "same": "<sf>"}"#,
            Body(r#"{"sf": "baz", "same": "baz"}"#),
        ),
    ]);
}

#[test]
fn template_compile_errors() {
    let exact = "x".repeat(MAX_TEMPLATE_CHARS);
    let too_long = format!("{exact}y");
    let multibyte_too_long = "é".repeat(MAX_TEMPLATE_CHARS + 1);
    check_all(vec![
        ("", Rejected(0, "empty")),
        (&exact, Body(&exact)),
        (&too_long, Rejected(MAX_TEMPLATE_CHARS, "longer than 8192")),
        (
            &multibyte_too_long,
            Rejected(2 * MAX_TEMPLATE_CHARS, "longer than 8192"),
        ),
        (r#"{<s>: 1}"#, Rejected(1, "used as an object key")),
        (r#"{"<s>": 1}"#, Rejected(2, "used as an object key")),
        (r#"{"a<s>b<i>" : 1}"#, Rejected(3, "used as an object key")),
        (
            "{\"a\": {\"<s>\"\n:1}}",
            Rejected(8, "used as an object key"),
        ),
        (r#"{"a\"<s>": 1}"#, Rejected(5, "used as an object key")),
        (
            r#""<nope>""#,
            Rejected(
                1,
                "define it in input_paths or use one of <aws.events.rule-name>",
            ),
        ),
        (r#"{"a": <i>,}"#, Rejected(10, "not valid JSON")),
        (r#"{"a": 1"#, Rejected(7, "end of text")),
        (r#"{"a": <i> <s>}"#, Rejected(10, "not valid JSON")),
        (r#"[<i>"#, Rejected(4, "not valid JSON")),
        (r#"{"a": x<i>}"#, Rejected(6, "not valid JSON")),
        (
            r#"{"a": "b"} trailing"#,
            Rejected(11, "trailing characters"),
        ),
        (r#"{"a": "\u00<s>"}"#, Rejected(7, r"invalid \u escape")),
        (r#"{"a": "\q<s>"}"#, Rejected(8, "not valid JSON")),
        ("{\"a\": \"x\ny\"}", Rejected(8, "control character")),
        (r#"{"é": "日", "b": <i> x}"#, Rejected(23, "not valid JSON")),
    ]);
}

#[test]
fn input_paths_names_are_checked() {
    let names: Vec<String> = (0..=MAX_INPUT_PATHS).map(|i| format!("p{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(validate_input_paths(&names[..MAX_INPUT_PATHS]), Ok(()));
    assert_eq!(
        validate_input_paths(&names),
        Err(vec![InputPathsError::TooMany { count: 101 }])
    );

    let cases: &[(&str, &str)] = &[
        ("AWS.x", "names starting with AWS. are reserved"),
        ("aws.x", "names starting with AWS. are reserved"),
        (
            "aws.events.rule-name",
            "reserved variable: remove this entry",
        ),
        ("aws.events.event.json", "reserved variable"),
        ("", "name is empty"),
        ("a b", "name contains ' '"),
        ("a<b", "name contains '<'"),
        ("é", "name contains 'é'"),
    ];
    for (name, fragment) in cases {
        match validate_input_paths(&[*name])
            .as_ref()
            .map_err(Vec::as_slice)
        {
            Err([InputPathsError::InvalidName { name: n, message }]) => {
                assert_eq!(n, name);
                assert!(message.contains(fragment), "{name}: {message}");
                assert_well_formed(message);
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(validate_input_paths(&["a-b_c.d", "AWSx", "awsome"]), Ok(()));
    assert!(matches!(
        validate_input_paths(&["a", "b", "a"]).as_ref().map_err(Vec::as_slice),
        Err([InputPathsError::InvalidName { message, .. }]) if message.contains("twice")
    ));
}

#[test]
fn transformer_reports_every_problem() {
    let errors = InputSpec::transformer(
        &[("AWS.x", "$.a"), ("bad", "$..b"), ("ok", "$.c")],
        r#"{"a": <ok>, "b": <nope>}"#,
    )
    .expect_err("invalid");
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(matches!(
        &errors[0],
        InputSpecError::InputPaths(InputPathsError::InvalidName { name, .. }) if name == "AWS.x"
    ));
    assert!(matches!(
        &errors[1],
        InputSpecError::Path { name, source } if name == "bad" && source.offset == 1
    ));
    assert!(matches!(&errors[2], InputSpecError::Template(e) if e.offset == 17));
    assert_eq!(
        errors[1].to_string(),
        "input_paths bad: invalid JSONPath at offset 1: recursive descent (..) is not supported: write the full path such as $.a.b"
    );
}

#[test]
fn input_path_renders_compact_json() {
    let event = event();
    let cases: &[(&str, Result<&str, RenderError>)] = &[
        ("$.detail.payload", Ok(r#"{"acc_id":"0a","sf_id":"baz"}"#)),
        ("$.detail.payload.sf_id", Ok(r#""baz""#)),
        ("$.detail.count", Ok("42")),
        ("$.detail.nothing", Ok("null")),
        ("$.detail.list[1]", Ok(r#""INACTIVE""#)),
        ("$.detail.items[*].id", Ok("[1,2]")),
        ("$.detail.absent[*]", Ok("[]")),
        (
            "$.resources[0]",
            Ok(r#""arn:aws:ec2:us-west-1:123456789012:instance/i-1""#),
        ),
        (
            "$.detail.absent",
            Err(RenderError::MissingPath {
                path: "$.detail.absent".to_owned(),
            }),
        ),
    ];
    for (text, expected) in cases {
        let spec = InputSpec::Path(JsonPath::parse(text).expect("valid path"));
        let rendered = spec.render(EVENT_TEXT, &event, &CONTEXT);
        assert_eq!(
            rendered.as_ref().map(String::as_str),
            expected.as_deref(),
            "{text}"
        );
    }
    let detail = InputSpec::Path(JsonPath::parse("$.detail").expect("valid path"));
    let body = detail
        .render(EVENT_TEXT, &event, &CONTEXT)
        .expect("renders");
    assert_eq!(
        serde_json::from_str::<Value>(&body).ok().as_ref(),
        Some(&event["detail"])
    );
    let missing = JsonPath::parse("$.x")
        .map(InputSpec::Path)
        .expect("valid path");
    let error = missing
        .render(EVENT_TEXT, &event, &CONTEXT)
        .expect_err("missing");
    assert_eq!(error.to_string(), "input_path $.x selected nothing");
}

#[test]
fn whole_event_is_sent_as_received() {
    let body = InputSpec::WholeEvent.render(EVENT_TEXT, &event(), &CONTEXT);
    assert_eq!(body.as_deref(), Ok(EVENT_TEXT));
}

#[test]
fn constant_input_is_compact_and_bounded() {
    let spec = InputSpec::constant(&json!({"b": 1, "a": [true, "x"]})).expect("fits");
    assert_eq!(
        spec,
        InputSpec::Constant(r#"{"b":1,"a":[true,"x"]}"#.to_owned())
    );
    assert_eq!(
        spec.render(EVENT_TEXT, &event(), &CONTEXT).as_deref(),
        Ok(r#"{"b":1,"a":[true,"x"]}"#)
    );
    let exact = Value::String("é".repeat(MAX_INPUT_CHARS - 2));
    assert!(InputSpec::constant(&exact).is_ok());
    let long = Value::String("é".repeat(MAX_INPUT_CHARS - 1));
    assert_eq!(
        InputSpec::constant(&long),
        Err(InputSpecError::InputTooLong { chars: 8193 })
    );
}

#[test]
fn invalid_json_reports_an_excerpt() {
    let spec = InputSpec::transformer(PATHS, r#"{"x": "<obj>"}"#).expect("compiles");
    match spec.render(EVENT_TEXT, &event(), &CONTEXT) {
        Err(RenderError::InvalidJson {
            offset, excerpt, ..
        }) => {
            assert_eq!(offset, 9);
            assert_eq!(excerpt, r#"{"x": "{"acc_id":"0a","sf_id":"baz"}"}"#);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn render_checks_the_number_of_values() {
    let template = Template::parse(r#""<a>""#, &["a"]).expect("compiles");
    let event = event();
    let values = Values {
        paths: &[],
        event: &event,
        context: CONTEXT,
    };
    assert_eq!(
        template.render(&values),
        Err(RenderError::ValueCount {
            expected: 1,
            got: 0
        })
    );
    let paths = [Some(Cow::Owned(json!("v")))];
    let values = Values {
        paths: &paths,
        ..values
    };
    assert_eq!(template.render(&values).as_deref(), Ok(r#""v""#));
    assert!(!template.is_json());
    assert_eq!(template.as_str(), r#""<a>""#);
}

/// Arbitrary JSON values, with strings full of characters that matter to templates.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        r#"[a-zé"\\\n\t<>{}\[\]:,\u{0}\u{1f}]{0,8}"#.prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z\"]{0,3}", inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Text inside a JSON string literal of a generated template.
fn string_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<a>".to_owned()),
        Just("<b>".to_owned()),
        Just("<gone>".to_owned()),
        Just("<aws.events.rule-name>".to_owned()),
        Just(r#"\""#.to_owned()),
        Just(r"\\".to_owned()),
        Just(r"\u00e9".to_owned()),
        "[a-z <:{}é]{0,4}",
    ]
}

/// A JSON value of a generated template.
fn template_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("<a>".to_owned()),
        Just("<b>".to_owned()),
        Just("<gone>".to_owned()),
        Just("<aws.events.event>".to_owned()),
        Just("<aws.events.event.json>".to_owned()),
        Just("<aws.events.rule-arn>".to_owned()),
        Just("12".to_owned()),
        prop::collection::vec(string_piece(), 0..4).prop_map(|p| format!("\"{}\"", p.concat())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z]{1,3}", inner), 0..4).prop_map(|entries| {
                let members: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":\n{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Template text mixing placeholders with characters that matter to the scanner.
fn template_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("<a>".to_owned()),
            Just("<aws.events.event>".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("{".to_owned()),
            Just("[".to_owned()),
            Just(":".to_owned()),
            Just("<".to_owned()),
            any::<String>(),
        ],
        0..12,
    )
    .prop_map(|pieces| pieces.concat())
}

const PROP_PATHS: &[(&str, &str)] = &[("a", "$.a"), ("b", "$.b[*]"), ("gone", "$.missing")];

/// Renders `spec` and checks that a JSON template gives valid JSON or `InvalidJson`.
fn render_checked(spec: &InputSpec, event: &Value, context: &RenderContext<'_>) {
    let InputSpec::Transformer { template, .. } = spec else {
        panic!("not a transformer");
    };
    match spec.render("{}", event, context) {
        Ok(body) if template.is_json() => {
            assert!(
                serde_json::from_str::<Value>(&body).is_ok(),
                "{} rendered invalid JSON {body}",
                template.as_str()
            );
        }
        Ok(_) | Err(RenderError::InvalidJson { .. }) => {}
        Err(other) => panic!("{other}"),
    }
}

proptest! {
    #[test]
    fn generated_json_templates_render_valid_json_or_invalid_json_error(
        template in template_value().prop_flat_map(|value| {
            prop_oneof![Just(format!("[{value}]")), Just(format!("{{\"t\": {value}}}"))]
        }),
        a in json_value(),
        b in json_value(),
        rule_name in r#"[a-z"\\\n]{0,5}"#,
    ) {
        let spec = InputSpec::transformer(PROP_PATHS, &template);
        let spec = spec.map_err(|e| TestCaseError::fail(format!("{template}: {e:?}")))?;
        let event = json!({"a": a, "b": b, "detail-type": "t"});
        let context = RenderContext { rule_name: &rule_name, ..CONTEXT };
        render_checked(&spec, &event, &context);
    }

    #[test]
    fn arbitrary_templates_never_panic(
        template in template_text(),
        a in json_value(),
        b in json_value(),
    ) {
        if let Ok(spec) = InputSpec::transformer(PROP_PATHS, &template) {
            render_checked(&spec, &json!({"a": a, "b": b}), &CONTEXT);
        }
    }

    #[test]
    fn arbitrary_paths_never_panic(
        text in r"\$[.\[\]'*a-z0-9\-\\ ?:]{0,12}",
        event in json_value(),
    ) {
        if let Ok(path) = JsonPath::parse(&text) {
            let selected = path.select(&event);
            let is_array = matches!(selected, Some(Cow::Owned(Value::Array(_))));
            prop_assert!(path.is_singular() || is_array);
        }
    }
}
