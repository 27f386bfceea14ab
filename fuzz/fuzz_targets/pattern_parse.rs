//! Any JSON as a pattern: parsing never panics, and whatever parses compiles.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    if let Ok(pattern) = trigd::pattern::parse(&value) {
        let _ = trigd::pattern::Matcher::new([&pattern]);
    }
});
