//! Differential: a pattern and an event (split at the first newline). The compiled matcher
//! must never panic, must refuse exactly the events serde_json refuses, and must agree with
//! the reference evaluator on the rest. On the event as trigd writes it (`ValidJson`, whose
//! unnamed containers are skipped by structure alone) it must agree with the reference too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trigd::pattern::{Matcher, ValidJson, parse, reference_matches};

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
        // With duplicate keys serde keeps the last value, while the scanner sees every
        // occurrence (as aws/event-ruler's streaming parser does): no common oracle.
        Ok(_) if has_duplicate_keys(event) => assert!(ours.is_ok()),
        Ok(map) => {
            assert!(ours.is_ok(), "refused valid JSON: {ours:?}");
            let value = Value::Object(map);
            let want = reference_matches(&pattern, &value);
            assert_eq!(!out.is_empty(), want, "compiled and reference disagree");
            let written = m.matches_valid(&ValidJson::of(&value), &mut scratch, &mut out);
            assert!(written.is_ok(), "refused what trigd wrote: {written:?}");
            assert_eq!(!out.is_empty(), want, "written event: compiled and reference disagree");
        }
        // A number too large for an f64 is valid JSON grammar; serde_json refuses it, the
        // scanner accepts it (and reads it as infinity).
        Err(e) if e.to_string().contains("out of range") => {}
        Err(_) => {
            // serde_json's default nesting limit (128) is lower than the scanner's; deeper
            // events may be accepted by the scanner.
            if ours.is_ok() {
                assert!(event.matches(['[', '{']).count() > 128, "accepted invalid JSON");
            }
        }
    }
});

/// Whether any object in the JSON text repeats a key.
fn has_duplicate_keys(text: &str) -> bool {
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Check(bool);
    impl<'de> Deserialize<'de> for Check {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Check;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("any JSON")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Check, A::Error> {
                    let mut seen = std::collections::HashSet::new();
                    let mut dup = false;
                    while let Some(k) = m.next_key::<String>()? {
                        dup |= !seen.insert(k);
                        dup |= m.next_value::<Check>()?.0;
                    }
                    Ok(Check(dup))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Check, A::Error> {
                    let mut dup = false;
                    while let Some(c) = s.next_element::<Check>()? {
                        dup |= c.0;
                    }
                    Ok(Check(dup))
                }
                fn visit_bool<E>(self, _: bool) -> Result<Check, E> { Ok(Check(false)) }
                fn visit_i64<E>(self, _: i64) -> Result<Check, E> { Ok(Check(false)) }
                fn visit_u64<E>(self, _: u64) -> Result<Check, E> { Ok(Check(false)) }
                fn visit_f64<E>(self, _: f64) -> Result<Check, E> { Ok(Check(false)) }
                fn visit_str<E>(self, _: &str) -> Result<Check, E> { Ok(Check(false)) }
                fn visit_unit<E>(self) -> Result<Check, E> { Ok(Check(false)) }
            }
            d.deserialize_any(V)
        }
    }
    let _ = IgnoredAny;
    serde_json::from_str::<Check>(text).map(|c| c.0).unwrap_or(false)
}
