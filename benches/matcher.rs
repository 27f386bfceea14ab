//! Matcher throughput over the citylots2 data, with aws/event-ruler's CL2 rule sets.
//!
//! Data: `python3 ../shared/bench/gen_citylots.py target/bench-data` (or set
//! `TRIGD_BENCH_DATA` to a `citylots2.json.gz`). Run: `cargo bench --bench matcher`.
//! For each rule set: one warm-up pass, then the median of `TRIGD_BENCH_RUNS` (default 3)
//! timed passes over all events, on one core; matches are counted per rule.
//!
//! `TRIGD_BENCH_TEXT` says which text the matcher is given:
//! * `file` (the default): each line as it is, every byte validated (`Matcher::matches`), as
//!   `trigd match --events` and replay read files;
//! * `intake`: each line parsed and written again compact (`ValidJson`), matched with
//!   `Matcher::matches_valid`, as the daemon's intake hands events to the matcher;
//! * `compact`: the same compact text, but validated (`Matcher::matches`): the difference
//!   between `file` and `compact` is the text, between `compact` and `intake` the skipping.

// A benchmark: wall-clock time is the point, and bad data should stop it loudly.
#![allow(clippy::disallowed_types, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::time::Instant;

use serde_json::Value;
use trigd::pattern::{Matcher, Pattern, ValidJson, parse};

fn load_events() -> Vec<String> {
    let path = std::env::var("TRIGD_BENCH_DATA")
        .unwrap_or_else(|_| "target/bench-data/citylots2.json.gz".to_owned());
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        eprintln!(
            "cannot open {path}: {e}\nGenerate it with: python3 ../shared/bench/gen_citylots.py target/bench-data"
        );
        std::process::exit(2);
    });
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| l.expect("readable line"))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn rule_sets() -> Vec<(String, Vec<Value>)> {
    let text = include_str!("data/cl2_rules.json");
    let sets: serde_json::Map<String, Value> = serde_json::from_str(text).expect("rule sets");
    let get = |name: &str| sets[name].as_array().expect("array").clone();
    let mut out: Vec<(String, Vec<Value>)> = sets.keys().map(|k| (k.clone(), get(k))).collect();
    let mut partial = Vec::new();
    for name in [
        "NUMERIC",
        "EXACT",
        "PREFIX",
        "ANYTHING_BUT",
        "ANYTHING_BUT_IGNORE_CASE",
        "ANYTHING_BUT_PREFIX",
        "ANYTHING_BUT_SUFFIX",
        "ANYTHING_BUT_WILDCARD",
    ] {
        partial.extend(get(name));
    }
    let mut combo = partial.clone();
    combo.extend(get("COMPLEX_ARRAYS"));
    out.push(("PARTIAL_COMBO".to_owned(), partial));
    out.push(("COMBO".to_owned(), combo));
    out
}

/// The events as the matcher is given them (see the module doc).
enum Texts {
    /// Validated as they are.
    Checked(Vec<String>),
    /// Written by trigd, not validated again.
    Valid(Vec<ValidJson>),
}

impl Texts {
    fn new(events: &[String], text: &str) -> Texts {
        // Copied once more, so that the texts lie one after another in memory as the file's
        // lines do: written amid the parse's allocations, they lie scattered, and the passes
        // would measure cache misses rather than the matcher.
        let compact = || -> Vec<ValidJson> {
            let written: Vec<ValidJson> = events
                .iter()
                .map(|e| ValidJson::of(&serde_json::from_str::<Value>(e).expect("json")))
                .collect();
            written.to_vec()
        };
        match text {
            "file" => Texts::Checked(events.to_vec()),
            "compact" => Texts::Checked(compact().iter().map(|t| t.as_str().to_owned()).collect()),
            "intake" => Texts::Valid(compact()),
            other => {
                eprintln!("TRIGD_BENCH_TEXT={other}: expected file, compact or intake");
                std::process::exit(2);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Texts::Checked(t) => t.len(),
            Texts::Valid(t) => t.len(),
        }
    }
}

fn run(name: &str, patterns: &[Pattern], events: &Texts, runs: usize) -> f64 {
    let m = Matcher::new(patterns);
    let mut scratch = m.scratch();
    let mut out = Vec::new();
    let mut counts = vec![0u64; patterns.len()];
    let mut pass = |counts: &mut Vec<u64>| {
        for n in 0..events.len() {
            match events {
                Texts::Checked(t) => m.matches(&t[n], &mut scratch, &mut out),
                Texts::Valid(t) => m.matches_valid(&t[n], &mut scratch, &mut out),
            }
            .expect("valid event");
            for &r in &out {
                counts[r as usize] += 1;
            }
        }
    };
    pass(&mut counts);
    let mut rates = Vec::new();
    for _ in 0..runs {
        let mut c = vec![0u64; patterns.len()];
        let start = Instant::now();
        pass(&mut c);
        let secs = start.elapsed().as_secs_f64();
        rates.push(events.len() as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let shown: Vec<String> = counts.iter().take(8).map(u64::to_string).collect();
    println!(
        "{name:<26} {:>4} rules {:>10.0} events/s   matches per rule: {}{}",
        patterns.len(),
        median,
        shown.join(","),
        if counts.len() > 8 { ",…" } else { "" }
    );
    median
}

/// Events per second of `f` over all events, as [`run`] measures the matcher.
fn floor(name: &str, events: &[String], runs: usize, f: impl Fn(&str) -> bool) {
    let pass = || events.iter().filter(|e| f(e)).count();
    let want = pass();
    let mut rates = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        assert_eq!(pass(), want);
        rates.push(events.len() as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{name:<26}            {:>10.0} events/s",
        rates[rates.len() / 2]
    );
}

/// The end of the object or array at the start of `text` as a non-validating matcher finds
/// it (quamina's way): memchr3 for a quote or the container's own brackets, memchr2 for the
/// end of each string. For comparison only: trigd validates what it skips.
fn bracket_count_end(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let (open, close) = match b.first()? {
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => return None,
    };
    let (mut i, mut depth) = (1, 1usize);
    loop {
        let at = i + memchr::memchr3(b'"', open, close, &b[i..])?;
        i = at + 1;
        if b[at] == b'"' {
            loop {
                let q = i + memchr::memchr2(b'"', b'\\', &b[i..])?;
                i = q + if b[q] == b'"' { 1 } else { 2 };
                if b[q] == b'"' {
                    break;
                }
            }
        } else if b[at] == open {
            depth += 1;
        } else {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
}

fn main() {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let runs: usize = std::env::var("TRIGD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let events = load_events();
    let text = std::env::var("TRIGD_BENCH_TEXT").unwrap_or_else(|_| "file".to_owned());
    let texts = Texts::new(&events, &text);
    println!(
        "{} events, {} runs per set (median), text: {text}",
        events.len(),
        runs
    );
    for (name, pats) in rule_sets() {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let patterns: Vec<Pattern> = pats.iter().map(|p| parse(p).expect("valid")).collect();
        run(&name, &patterns, &texts, runs);
    }
    if filter.as_ref().is_none_or(|f| "FLOOR".contains(f.as_str())) {
        // What skipping costs without validating, on the same events: a substring search (the
        // floor for any matcher), and finding each event's end by counting brackets.
        let finder = memchr::memmem::Finder::new(r#""MAPBLKLOT": "1430022""#);
        floor("FLOOR_MEMMEM", &events, runs, |e| {
            finder.find(e.as_bytes()).is_some()
        });
        // The matcher with a rule on a field no event has: every byte skipped (validated but
        // for `intake` text).
        let absent = parse(&serde_json::json!({"absent": ["x"]})).expect("valid");
        run("FLOOR_SKIP_ALL", &[absent], &texts, runs);
        floor("FLOOR_BRACKET_COUNT", &events, runs, |e| {
            bracket_count_end(e) == Some(e.len())
        });
    }
    if filter
        .as_ref()
        .is_none_or(|f| "SCALING".contains(f.as_str()))
    {
        // Exact rules on MAPBLKLOT drawn from the data, so that some of them match.
        let mut values: Vec<String> = Vec::new();
        for e in events.iter().step_by(7) {
            let v: Value = serde_json::from_str(e).expect("json");
            if let Some(s) = v["properties"]["MAPBLKLOT"].as_str() {
                values.push(s.to_owned());
            }
            if values.len() >= 10_000 {
                break;
            }
        }
        for n in [1usize, 5, 1_000, 10_000] {
            let patterns: Vec<Pattern> = values[..n]
                .iter()
                .map(|v| {
                    parse(&serde_json::json!({"properties": {"MAPBLKLOT": [v]}})).expect("valid")
                })
                .collect();
            run(&format!("SCALING_EXACT_{n}"), &patterns, &texts, runs);
        }
    }
}
