//! Scheduler benchmark: 100,000 schedules.
//!
//! Run: `cargo bench --bench schedule`. Reports the time to parse and compute every first fire,
//! resident memory per schedule, the cost of `next_after` per expression kind, and the lateness
//! of fires emitted by the timer task under tokio's paused clock and under the real clock.

// A benchmark: wall-clock time is the point, and failures should stop it loudly.
#![allow(clippy::disallowed_types, clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::mpsc;
use trigd::schedule::ScheduleExpr;
use trigd::sources::schedule::{FireQueue, ScheduleEntry, TimeBase, Timer};

const N: usize = 100_000;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn expressions() -> Vec<String> {
    let zones = ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata"];
    (0..N)
        .map(|i| match i % 4 {
            0 => format!("rate({} minutes)", 2 + i % 120),
            1 => format!("cron({} {} ? * MON-FRI *)", i % 60, i % 24),
            2 => format!("cron(0/{} * * * ? *)", 1 + i % 30),
            _ => format!("cron({} 8 L * ? *)", i % 60),
        })
        .zip(zones.iter().cycle())
        .map(|(e, _)| e)
        .collect()
}

fn entries(exprs: &[String], anchor: DateTime<Utc>) -> Vec<ScheduleEntry> {
    let zones = [
        chrono_tz::UTC,
        chrono_tz::America::New_York,
        chrono_tz::Europe::London,
        chrono_tz::Asia::Kolkata,
    ];
    exprs
        .iter()
        .enumerate()
        .map(|(i, e)| ScheduleEntry {
            id: i as u64,
            expr: ScheduleExpr::parse(e).expect("valid"),
            tz: zones[i % zones.len()],
            anchor,
        })
        .collect()
}

fn main() {
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let exprs = expressions();

    let rss0 = rss_bytes();
    let start = Instant::now();
    let es = entries(&exprs, now);
    let parsed = start.elapsed();
    let start = Instant::now();
    let queue = FireQueue::new(es, now);
    let first = start.elapsed();
    let rss1 = rss_bytes();
    println!(
        "{N} schedules: parse {:.1} ms ({:.2} µs each); first fires {:.1} ms ({:.2} µs each); {} in the queue; resident memory {:.0} bytes per schedule",
        parsed.as_secs_f64() * 1e3,
        parsed.as_secs_f64() * 1e6 / N as f64,
        first.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e6 / N as f64,
        queue.len(),
        (rss1.saturating_sub(rss0)) as f64 / N as f64
    );

    for (label, text) in [
        ("rate(5 minutes)", "rate(5 minutes)"),
        ("cron weekday", "cron(0 6 ? * MON-FRI *)"),
        ("cron L/W", "cron(0 12 LW * ? *)"),
        ("cron #", "cron(0 10 ? * 6#3 *)"),
        ("never again", "cron(0 0 30 2 ? *)"),
    ] {
        let e = ScheduleExpr::parse(text).unwrap();
        let tz = chrono_tz::America::New_York;
        let runs = 20_000;
        let start = Instant::now();
        let mut t = now;
        for _ in 0..runs {
            t = e.next_after(now, tz, now).unwrap_or(now);
        }
        std::hint::black_box(t);
        println!(
            "next_after {label:<16} {:.2} µs",
            start.elapsed().as_secs_f64() * 1e6 / runs as f64
        );
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(paused_lateness(&exprs, now));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(real_lateness());
}

/// Under the paused clock: every fire of the 100,000 schedules over a simulated hour, and how
/// far after its scheduled instant the timer emitted it (tokio time).
async fn paused_lateness(exprs: &[String], now: DateTime<Utc>) {
    let base = TimeBase::new(tokio::time::Instant::now(), now);
    let (timer, _handle) = Timer::new(base, entries(exprs, now));
    let (tx, mut rx) = mpsc::channel(4096);
    let stop = tokio::time::sleep(Duration::from_secs(3600));
    let task = tokio::spawn(timer.run(tx, stop));
    let mut fires = 0u64;
    let mut worst = Duration::ZERO;
    let wall = Instant::now();
    while let Some(f) = rx.recv().await {
        let emitted = base.now_utc();
        let late = (emitted - f.scheduled).to_std().unwrap_or_default();
        worst = worst.max(late);
        fires += 1;
    }
    let _ = task.await;
    println!(
        "paused clock: {fires} fires over a simulated hour, computed in {:.2} s of real time; worst lateness {:?} (tokio time)",
        wall.elapsed().as_secs_f64(),
        worst
    );
}

/// Under the real clock: 2,000 one-shot schedules spread over the next 3 seconds; lateness of
/// each fire measured against the wall clock.
async fn real_lateness() {
    let now = Utc::now();
    let start_s = now.timestamp() + 2;
    let entries: Vec<ScheduleEntry> = (0..2000)
        .map(|i| {
            let at = Utc.timestamp_opt(start_s + (i % 3), 0).unwrap();
            ScheduleEntry {
                id: i as u64,
                expr: ScheduleExpr::parse(&format!("at({})", at.format("%Y-%m-%dT%H:%M:%S")))
                    .unwrap(),
                tz: chrono_tz::UTC,
                anchor: now,
            }
        })
        .collect();
    let (timer, _handle) = Timer::new(TimeBase::now(), entries);
    let (tx, mut rx) = mpsc::channel(4096);
    let task = tokio::spawn(timer.run(tx, tokio::time::sleep(Duration::from_secs(7))));
    let mut lateness: Vec<f64> = Vec::new();
    while let Some(f) = rx.recv().await {
        let late = (Utc::now() - f.scheduled).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        lateness.push(late);
    }
    let _ = task.await;
    lateness.sort_by(f64::total_cmp);
    let p = |q: f64| lateness[((lateness.len() as f64 - 1.0) * q) as usize];
    println!(
        "real clock: {} fires; lateness p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lateness.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
}
