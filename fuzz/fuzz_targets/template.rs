//! Any template text against any event: compiling and rendering never panic, and a JSON
//! template renders valid JSON or says it could not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trigd::transform::{InputSpec, JsonPath, RenderContext, RenderError, Template};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, event_text) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(event) = serde_json::from_str::<Value>(event_text) else {
        return;
    };
    let names = ["a", "b"];
    let Ok(tpl) = Template::parse(template, &names) else {
        return;
    };
    // JSON templates (the first non-whitespace character, by JSON's whitespace, is `{` or
    // `[`) must render valid JSON or say they could not.
    let is_json = tpl.is_json();
    let paths = ["$.a", "$.b[0]"]
        .iter()
        .zip(names)
        .filter_map(|(p, n)| JsonPath::parse(p).ok().map(|p| (n.to_owned(), p)))
        .collect();
    let spec = InputSpec::Transformer { paths, template: tpl };
    let ctx = RenderContext {
        rule_name: "r",
        rule_arn: "arn:aws:events:us-east-1:123456789012:rule/r",
        ingestion_time: "2026-01-01T00:00:00Z",
    };
    match spec.render(event_text, &event, &ctx) {
        Ok(out) => {
            if is_json {
                assert!(serde_json::from_str::<Value>(&out).is_ok(), "invalid JSON: {out}");
            }
        }
        Err(RenderError::InvalidJson { .. } | RenderError::MissingPath { .. }) => {}
        Err(e) => panic!("unexpected error: {e}"),
    }
});
