//! Differential: a pattern and an event (split at the first newline). The compiled matcher
//! must never panic, must refuse exactly the events serde_json refuses, and must agree with
//! the reference evaluator on the rest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trigd::pattern::{Matcher, parse, reference_matches};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((pattern_text, event)) = text.split_once('\n') else {
        return;
    };
    let Ok(pattern_json) = serde_json::from_str::<Value>(pattern_text) else {
        return;
    };
    let Ok(pattern) = parse(&pattern_json) else {
        return;
    };
    let m = Matcher::new([&pattern]);
    let mut scratch = m.scratch();
    let mut out = Vec::new();
    let ours = m.matches(event, &mut scratch, &mut out);
    match serde_json::from_str::<serde_json::Map<String, Value>>(event) {
        Ok(map) => {
            assert!(ours.is_ok(), "refused valid JSON: {ours:?}");
            let want = reference_matches(&pattern, &Value::Object(map));
            assert_eq!(!out.is_empty(), want, "compiled and reference disagree");
        }
        Err(_) => {
            // serde_json's default nesting limit (128) is lower than the scanner's; deeper
            // events may be accepted by the scanner.
            if ours.is_ok() {
                assert!(event.matches(['[', '{']).count() > 128, "accepted invalid JSON");
            }
        }
    }
});
