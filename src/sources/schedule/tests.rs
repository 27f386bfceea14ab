//! Timer tests on paused tokio time: exact fire sequences, reloads, shutdown, and a 100,000
//! schedule queue.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Fire, FireQueue, ScheduleEntry, TimeBase, Timer};
use crate::schedule::ScheduleExpr;

fn expr(text: &str) -> ScheduleExpr {
    ScheduleExpr::parse(text).unwrap_or_else(|e| panic!("{text}: {e} (offset {})", e.offset))
}

/// Parses an RFC 3339 UTC instant such as `2024-01-01T12:00:00Z`.
fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The simulated start of every test.
fn start() -> DateTime<Utc> {
    utc("2026-01-01T00:00:00Z")
}

fn entry(id: u64, text: &str) -> ScheduleEntry {
    ScheduleEntry {
        id,
        expr: expr(text),
        tz: Tz::UTC,
        anchor: start(),
    }
}

fn fire(id: u64, minutes: i64) -> Fire {
    Fire {
        id,
        scheduled: start() + TimeDelta::minutes(minutes),
    }
}

/// Receives `n` fires, checking that each arrives exactly when scheduled (to the millisecond
/// granularity of the tokio timer).
async fn receive(rx: &mut mpsc::Receiver<Fire>, base: TimeBase, n: usize) -> Vec<Fire> {
    let mut fires = Vec::with_capacity(n);
    for _ in 0..n {
        let fire = rx.recv().await.expect("timer stopped early");
        let late = base.now_utc() - fire.scheduled;
        assert!(
            late >= TimeDelta::zero() && late <= TimeDelta::milliseconds(1),
            "{fire:?} emitted {late} late"
        );
        fires.push(fire);
    }
    fires
}

#[tokio::test(start_paused = true)]
async fn three_schedules_over_two_hours() {
    let base = TimeBase::new(Instant::now(), start());
    let entries = vec![
        entry(1, "rate(1 minute)"),
        entry(2, "rate(5 minutes)"),
        entry(3, "cron(0 * * * ? *)"),
    ];
    let (timer, _handle) = Timer::new(base, entries);
    let (tx, mut rx) = mpsc::channel(8);
    let task = tokio::spawn(timer.run(tx, std::future::pending()));

    let mut expected = Vec::new();
    for minute in 1..=120 {
        expected.push(fire(1, minute));
        if minute % 5 == 0 {
            expected.push(fire(2, minute));
        }
        if minute % 60 == 0 {
            expected.push(fire(3, minute));
        }
    }
    assert_eq!(expected.len(), 146);
    assert_eq!(receive(&mut rx, base, 146).await, expected);
    assert_eq!(receive(&mut rx, base, 1).await, [fire(1, 121)]);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn reload_replaces_the_set() {
    let base = TimeBase::new(Instant::now(), start());
    let (timer, handle) = Timer::new(base, vec![entry(1, "rate(1 minute)")]);
    let (tx, mut rx) = mpsc::channel(4);
    let task = tokio::spawn(timer.run(tx, std::future::pending()));

    let first: Vec<Fire> = (1..=10).map(|m| fire(1, m)).collect();
    assert_eq!(receive(&mut rx, base, 10).await, first);

    // At 00:10: schedule 1 goes away, 2 and 3 arrive; */2 does not fire again at 00:10.
    handle.reload(vec![
        entry(2, "rate(5 minutes)"),
        entry(3, "cron(*/2 * * * ? *)"),
    ]);
    assert_eq!(
        receive(&mut rx, base, 7).await,
        [
            fire(3, 12),
            fire(3, 14),
            fire(2, 15),
            fire(3, 16),
            fire(3, 18),
            fire(2, 20),
            fire(3, 20)
        ]
    );

    // An empty set emits nothing, however long we wait.
    handle.reload(Vec::new());
    let waited = tokio::time::timeout(Duration::from_secs(7 * 86_400), rx.recv()).await;
    assert!(waited.is_err(), "{waited:?}");
    assert!(!task.is_finished());
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn reload_wakes_a_sleeping_timer() {
    let base = TimeBase::new(Instant::now(), start());
    let (timer, handle) = Timer::new(base, vec![entry(1, "cron(0 0 1 1 ? *)")]);
    let (tx, mut rx) = mpsc::channel(4);
    let task = tokio::spawn(timer.run(tx, std::future::pending()));

    tokio::time::advance(Duration::from_secs(90)).await;
    handle.reload(vec![entry(2, "rate(1 minute)")]);
    // The new rate starts after the reload (00:01:30), on its anchor's grid.
    assert_eq!(receive(&mut rx, base, 2).await, [fire(2, 2), fire(2, 3)]);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_task() {
    let base = TimeBase::new(Instant::now(), start());
    let (timer, _handle) = Timer::new(base, vec![entry(1, "rate(1 minute)")]);
    let (tx, mut rx) = mpsc::channel(4);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(timer.run(tx, async {
        let _ = stopped.await;
    }));

    assert_eq!(receive(&mut rx, base, 2).await, [fire(1, 1), fire(1, 2)]);
    stop.send(()).expect("timer gone");
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("timer did not stop")
        .expect("timer panicked");
    assert_eq!(rx.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_receiver_ends_the_task() {
    let base = TimeBase::new(Instant::now(), start());
    let (timer, _handle) = Timer::new(base, vec![entry(1, "rate(1 minute)")]);
    let (tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(timer.run(tx, std::future::pending()));
    drop(rx);
    // Stops without waiting for the next fire (a minute away).
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("timer did not stop")
        .expect("timer panicked");
}

#[tokio::test(start_paused = true)]
async fn a_full_channel_coalesces_missed_fires() {
    let base = TimeBase::new(Instant::now(), start());
    let (timer, _handle) = Timer::new(base, vec![entry(1, "rate(1 minute)")]);
    let (tx, mut rx) = mpsc::channel(1);
    let task = tokio::spawn(timer.run(tx, std::future::pending()));

    // Nobody reads for ten and a half minutes: 00:01 fills the channel, 00:02 waits to be sent.
    tokio::time::sleep(Duration::from_secs(630)).await;
    let late: Vec<Fire> = [rx.recv().await, rx.recv().await, rx.recv().await]
        .into_iter()
        .flatten()
        .collect();
    // 00:03 was computed after 00:02 was popped at 00:02; it is sent late, then 00:11 follows.
    assert_eq!(late, [fire(1, 1), fire(1, 2), fire(1, 3)]);
    assert_eq!(receive(&mut rx, base, 1).await, [fire(1, 11)]);
    task.abort();
}

#[test]
fn fire_queue_orders_ties_by_id_and_coalesces() {
    let entries = vec![
        entry(7, "rate(1 minute)"),
        entry(3, "rate(1 minute)"),
        entry(5, "at(2020-01-01T00:00:00)"), // in the past: never fires
    ];
    let mut queue = FireQueue::new(entries, start());
    assert_eq!(queue.len(), 2);
    assert_eq!(queue.pop_due(start()), None);
    let now = start() + TimeDelta::seconds(630);
    assert_eq!(queue.pop_due(now), Some(fire(3, 1)));
    assert_eq!(queue.pop_due(now), Some(fire(7, 1)));
    assert_eq!(queue.peek(), Some(fire(3, 11)));
    assert_eq!(queue.pop_due(now), None);
}

#[test]
fn one_time_schedules_leave_the_queue() {
    let mut queue = FireQueue::new(vec![entry(1, "at(2026-01-01T00:05:00)")], start());
    assert_eq!(
        queue.pop_due(start() + TimeDelta::minutes(5)),
        Some(fire(1, 5))
    );
    assert!(queue.is_empty());
}

#[test]
fn time_base_maps_both_ways() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let base = TimeBase::new(Instant::now(), start());
        let at = base.instant_at(start() + TimeDelta::minutes(2)).unwrap();
        assert_eq!(at - Instant::now(), Duration::from_secs(120));
        assert_eq!(
            base.instant_at(utc("2000-01-01T00:00:00Z")),
            Some(Instant::now())
        );
        assert!(base.instant_at(DateTime::<Utc>::MAX_UTC).is_some());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(base.now_utc(), start() + TimeDelta::seconds(61));
    });
}

/// Builds 100,000 schedules of mixed kinds and computes their first fires (the workload of a
/// daemon start; the main crate benchmarks the same function).
#[test]
fn hundred_thousand_schedules() {
    const TEXTS: [&str; 8] = [
        "rate(1 minute)",
        "rate(7 minutes)",
        "rate(2 hours)",
        "cron(0 12 * * ? *)",
        "cron(0/15 8-17 ? * MON-FRI *)",
        "cron(15 10 ? * 6L 2026-2030)",
        "cron(0 8 1W * ? *)",
        "at(2027-06-01T09:00:00)",
    ];
    const ZONES: [Tz; 3] = [
        Tz::UTC,
        chrono_tz::America::New_York,
        chrono_tz::Asia::Kolkata,
    ];
    let parsed: Vec<_> = TEXTS.iter().map(|t| expr(t)).collect();
    let entries = (0..100_000u64).map(|id| ScheduleEntry {
        id,
        expr: parsed[id as usize % parsed.len()].clone(),
        tz: ZONES[id as usize % ZONES.len()],
        anchor: start() + TimeDelta::seconds(id as i64 % 60),
    });
    let queue = FireQueue::new(entries, start());
    assert_eq!(queue.len(), 100_000);
    // Rates anchored after the start fire first at their anchor (here 00:00:01, schedule 1).
    assert_eq!(
        queue.peek(),
        Some(Fire {
            id: 1,
            scheduled: start() + TimeDelta::seconds(1)
        })
    );
}
