//! The outbox on a real state directory: every write path, dead letters and their CLI
//! functions, durability across a close and across `kill -9`, group commit, and corrupt rows.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use serde_json::{Value, json};
use trigd::delivery::store::{
    DeadLetterInfo, Exhausted, Outbox, Stats, StoreError, list_dead_letters, read_dead_letter,
    redrive,
};
use trigd::delivery::{Delivery, delivery_id};
use trigd::targets::ErrorCode;

/// A delivery for event `n` of rule `rule`, due at `next`.
fn delivery(rule: &str, n: u64, next: i64) -> Delivery {
    let event_id = format!("event-{n}");
    Delivery {
        id: delivery_id(rule, "hook", &event_id),
        rule: rule.to_owned(),
        target: "hook".to_owned(),
        event: format!(r#"{{"id":"{event_id}","source":"shop","detail":{{"n":{n}}}}}"#),
        event_id,
        payload: format!(r#"{{"n":{n}}}"#),
        attempts: 0,
        first_seen_ms: 1_000 + n as i64,
        next_attempt_ms: next,
        first_error: None,
        last_error: None,
        hops: 0,
        ordering_key: None,
    }
}

/// Everything in the outbox, due or not, oldest due first.
async fn all(outbox: &Outbox) -> Vec<Delivery> {
    outbox
        .due(i64::MAX, usize::MAX, &HashSet::new())
        .await
        .unwrap()
}

async fn ids(outbox: &Outbox) -> Vec<String> {
    all(outbox).await.into_iter().map(|d| d.id).collect()
}

fn open(dir: &Path) -> Outbox {
    Outbox::open(dir).unwrap()
}

#[tokio::test]
async fn every_field_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let plain = delivery("r", 1, 10);
    let full = Delivery {
        event: "not JSON, and ünïcödé \u{1F600}\n\0 nul".to_owned(),
        payload: String::new(),
        attempts: u32::MAX,
        first_seen_ms: i64::MIN,
        next_attempt_ms: -5,
        first_error: Some("first".to_owned()),
        last_error: Some(String::new()),
        hops: u32::MAX,
        ordering_key: None,
        ..delivery("r", 2, 0)
    };
    outbox
        .enqueue(vec![plain.clone(), full.clone()], None)
        .await
        .unwrap();
    assert_eq!(all(&outbox).await, vec![full, plain]);
    outbox.close().await;
}

#[tokio::test]
async fn the_same_delivery_enqueued_twice_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let first = delivery("r", 1, 10);
    let again = Delivery {
        payload: "changed".to_owned(),
        ..first.clone()
    };
    outbox
        .enqueue(vec![first.clone(), again.clone()], None)
        .await
        .unwrap();
    outbox.enqueue(vec![again], None).await.unwrap();
    assert_eq!(all(&outbox).await, vec![first]);
    assert_eq!(outbox.stats().await.unwrap().pending, 1);
}

#[tokio::test]
async fn due_is_ordered_limited_and_skips_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    // Enqueued out of order; 3 and 4 tie on their due time.
    let batch = vec![
        delivery("r", 1, 30),
        delivery("r", 2, 10),
        delivery("r", 3, 20),
        delivery("r", 4, 20),
        delivery("r", 5, 99),
    ];
    let id = |n: usize| batch[n - 1].id.clone();
    outbox.enqueue(batch.clone(), None).await.unwrap();
    let due = |now: i64, limit: usize, in_flight: Vec<String>| {
        let outbox = outbox.clone();
        async move {
            let in_flight: HashSet<String> = in_flight.into_iter().collect();
            let got = outbox.due(now, limit, &in_flight).await.unwrap();
            got.into_iter().map(|d| d.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(due(30, 10, vec![]).await, [id(2), id(3), id(4), id(1)]);
    assert_eq!(due(19, 10, vec![]).await, [id(2)]);
    assert_eq!(due(9, 10, vec![]).await, Vec::<String>::new());
    assert_eq!(due(30, 2, vec![]).await, [id(2), id(3)]);
    // In-flight ids do not count against the limit.
    assert_eq!(due(30, 2, vec![id(2), id(3)]).await, [id(4), id(1)]);
    assert_eq!(due(30, 0, vec![]).await, Vec::<String>::new());
    assert_eq!(
        due(100, 10, batch.iter().map(|d| d.id.clone()).collect()).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn next_due_is_the_earliest_and_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    assert_eq!(outbox.next_due_ms().await.unwrap(), None);
    let (a, b) = (delivery("r", 1, 50), delivery("r", 2, 40));
    outbox
        .enqueue(vec![a.clone(), b.clone()], None)
        .await
        .unwrap();
    assert_eq!(outbox.next_due_ms().await.unwrap(), Some(40));
    outbox.retry_later(&b.id, 1, 70, "boom").await.unwrap();
    assert_eq!(outbox.next_due_ms().await.unwrap(), Some(50));
    outbox.complete(&a.id).await.unwrap();
    assert_eq!(outbox.next_due_ms().await.unwrap(), Some(70));
    outbox.complete(&b.id).await.unwrap();
    assert_eq!(outbox.next_due_ms().await.unwrap(), None);
}

#[tokio::test]
async fn retry_later_keeps_the_first_error() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let d = delivery("r", 1, 10);
    outbox.enqueue(vec![d.clone()], None).await.unwrap();
    outbox.retry_later(&d.id, 1, 20, "503 first").await.unwrap();
    outbox.retry_later(&d.id, 2, 40, "timeout").await.unwrap();
    let expected = Delivery {
        attempts: 2,
        next_attempt_ms: 40,
        first_error: Some("503 first".to_owned()),
        last_error: Some("timeout".to_owned()),
        ..d
    };
    assert_eq!(all(&outbox).await, vec![expected]);
    // A delivery that is gone is left alone.
    outbox.retry_later("gone", 1, 1, "x").await.unwrap();
    assert_eq!(outbox.stats().await.unwrap().pending, 1);
}

#[tokio::test]
async fn complete_removes_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let (a, b) = (delivery("r", 1, 10), delivery("r", 2, 10));
    outbox
        .enqueue(vec![a.clone(), b.clone()], None)
        .await
        .unwrap();
    outbox.complete(&a.id).await.unwrap();
    outbox.complete(&a.id).await.unwrap();
    assert_eq!(ids(&outbox).await, [b.id]);
}

#[tokio::test]
async fn stats_count_pending_and_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    assert_eq!(outbox.stats().await.unwrap(), Stats::default());
    let batch = vec![
        delivery("r", 7, 10),
        delivery("r", 3, 99),
        delivery("r", 5, 1),
    ];
    outbox.enqueue(batch, None).await.unwrap();
    assert_eq!(
        outbox.stats().await.unwrap(),
        Stats {
            pending: 3,
            oldest_first_seen_ms: Some(1_003)
        }
    );
}

fn dead_letter_info() -> DeadLetterInfo {
    DeadLetterInfo {
        code: ErrorCode::Throttling,
        error: "429 too many".to_owned(),
        exhausted: Some(Exhausted::MaximumEventAgeInSeconds),
        at_ms: 1_700_000_000_000,
    }
}

#[tokio::test]
async fn a_dead_letter_is_a_complete_json_file_and_leaves_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let d = Delivery {
        attempts: 4,
        first_error: Some("503".to_owned()),
        last_error: Some("502".to_owned()),
        ..delivery("orders", 1, 10)
    };
    let other = delivery("orders", 2, 10);
    outbox
        .enqueue(vec![d.clone(), other.clone()], None)
        .await
        .unwrap();
    let path = outbox.dead_letter(&d, dead_letter_info()).await.unwrap();
    assert_eq!(
        path,
        dir.path()
            .join("dead-letters")
            .join(format!("{}.json", d.id))
    );
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        file,
        json!({
            "version": 1,
            "id": d.id,
            "rule": "orders",
            "target": "hook",
            "event_id": "event-1",
            "event": {"id": "event-1", "source": "shop", "detail": {"n": 1}},
            "payload": "{\"n\":1}",
            "attempts": 4,
            "first_seen": "1970-01-01T00:00:01.001Z",
            "dead_lettered_at": "2023-11-14T22:13:20.000Z",
            "error_code": "THROTTLING",
            "first_error": "503",
            "last_error": "429 too many",
            "exhausted_retry_condition": "MaximumEventAgeInSeconds",
        })
    );
    assert_eq!(ids(&outbox).await, [other.id]);
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path().join("dead-letters"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [format!("{}.json", d.id)]);
    // A delivery whose id could name another file is refused.
    let bad = Delivery {
        id: "../escape".to_owned(),
        ..d
    };
    let err = outbox
        .dead_letter(&bad, dead_letter_info())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidId { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_list_read_and_redrive_while_the_daemon_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_owned();
    assert_eq!(list_dead_letters(&state).unwrap(), vec![]);
    let daemon = open(&state);
    let batch: Vec<Delivery> = (1..=3).map(|n| delivery("r", n, 10)).collect();
    daemon.enqueue(batch.clone(), None).await.unwrap();
    // Dead-lettered in the order 2, 0, 1: the list follows dead_lettered_at.
    for (i, at) in [(2, 100), (0, 200), (1, 300)] {
        let info = DeadLetterInfo {
            at_ms: at,
            ..dead_letter_info()
        };
        daemon.dead_letter(&batch[i], info).await.unwrap();
    }
    assert_eq!(daemon.stats().await.unwrap().pending, 0);

    let listed = list_dead_letters(&state).unwrap();
    let listed_ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(listed_ids, [&batch[2].id, &batch[0].id, &batch[1].id]);
    let one = read_dead_letter(&state, &batch[0].id).unwrap();
    assert_eq!(one, listed[1]);
    assert_eq!(one.attempts, 0);
    assert_eq!(one.error_code, ErrorCode::Throttling);
    assert_eq!(one.exhausted, Some(Exhausted::MaximumEventAgeInSeconds));
    assert_eq!(one.event_text(), batch[0].event);
    let missing = read_dead_letter(&state, "nope").unwrap_err();
    assert!(
        matches!(missing, StoreError::NoSuchDeadLetter { .. }),
        "{missing}"
    );
    let unsafe_id = read_dead_letter(&state, "../outbox").unwrap_err();
    assert!(
        matches!(unsafe_id, StoreError::InvalidId { .. }),
        "{unsafe_id}"
    );

    // Redrive one by id (from the "CLI", on the blocking pool as a separate process would),
    // while the daemon's handle stays open and keeps writing.
    let redrive_in = |ids: Vec<String>, now: i64| {
        let state = state.clone();
        tokio::task::spawn_blocking(move || redrive(&state, &ids, now))
    };
    let busy = daemon.enqueue(vec![delivery("busy", 9, 5_000)], None);
    let (redriven, written) = tokio::join!(redrive_in(vec![batch[0].id.clone()], 1_000), busy);
    assert_eq!(redriven.unwrap().unwrap(), 1);
    written.unwrap();
    let seen = daemon.due(2_000, 10, &HashSet::new()).await.unwrap();
    assert_eq!(
        seen,
        vec![Delivery {
            first_seen_ms: 1_000,
            next_attempt_ms: 1_000,
            ..batch[0].clone()
        }]
    );
    assert!(
        !state
            .join("dead-letters")
            .join(format!("{}.json", batch[0].id))
            .exists()
    );

    // An unknown id redrives nothing.
    let err = redrive_in(vec![batch[1].id.clone(), "nope".to_owned()], 1_500)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchDeadLetter { .. }), "{err}");
    assert_eq!(list_dead_letters(&state).unwrap().len(), 2);

    // No ids: all the rest.
    assert_eq!(redrive_in(vec![], 3_000).await.unwrap().unwrap(), 2);
    assert_eq!(list_dead_letters(&state).unwrap(), vec![]);
    let after: Vec<String> = daemon
        .due(3_000, 10, &HashSet::new())
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        after,
        [
            batch[0].id.clone(),
            batch[2].id.clone(),
            batch[1].id.clone()
        ]
    );
    assert_eq!(redrive_in(vec![], 4_000).await.unwrap().unwrap(), 0);
    daemon.close().await;
}

#[tokio::test]
async fn a_damaged_dead_letter_file_is_skipped_by_list_and_refused_by_read() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let good = delivery("r", 1, 10);
    outbox.dead_letter(&good, dead_letter_info()).await.unwrap();
    let letters = dir.path().join("dead-letters");
    std::fs::write(letters.join("broken.json"), "{\"version\": 1").unwrap();
    std::fs::write(letters.join(".interrupted.123-0.tmp"), "{").unwrap();
    std::fs::write(letters.join("README"), "not a dead letter").unwrap();
    let listed = list_dead_letters(dir.path()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, good.id);
    let err = read_dead_letter(dir.path(), "broken").unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { id, .. } if id == "broken"),
        "{err}"
    );
    // A file renamed to another id is not taken for that id.
    std::fs::copy(
        letters.join(format!("{}.json", good.id)),
        letters.join("other.json"),
    )
    .unwrap();
    let err = read_dead_letter(dir.path(), "other").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn a_schedule_mark_is_written_only_with_its_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    assert_eq!(outbox.schedule_mark("tick").await.unwrap(), None);
    let fire = delivery("tick", 1, 10);
    outbox
        .enqueue(vec![fire.clone()], Some(("tick".to_owned(), 60_000)))
        .await
        .unwrap();
    assert_eq!(outbox.schedule_mark("tick").await.unwrap(), Some(60_000));
    assert_eq!(ids(&outbox).await, std::slice::from_ref(&fire.id));

    // Make the next fire's insert fail inside the writer: a trigger refuses rule `doomed`. The
    // mark must not move, while a write batched next to it still commits.
    let raw = rusqlite::Connection::open(dir.path().join("outbox.sqlite3")).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON deliveries WHEN NEW.rule = 'doomed'
         BEGIN SELECT RAISE(ABORT, 'refused by test'); END;",
    )
    .unwrap();
    drop(raw);
    let doomed = Delivery {
        rule: "doomed".to_owned(),
        ..delivery("tick", 2, 10)
    };
    let bystander = delivery("other", 3, 10);
    let (failed, ok) = tokio::join!(
        outbox.enqueue(vec![doomed], Some(("tick".to_owned(), 120_000))),
        outbox.enqueue(vec![bystander.clone()], None),
    );
    let err = failed.unwrap_err();
    assert!(err.to_string().contains("refused by test"), "{err}");
    ok.unwrap();
    assert_eq!(outbox.schedule_mark("tick").await.unwrap(), Some(60_000));
    assert_eq!(ids(&outbox).await, [fire.id, bystander.id]);

    // A mark alone (a fire that routed to nothing) is fine too.
    outbox
        .enqueue(vec![], Some(("quiet".to_owned(), 5)))
        .await
        .unwrap();
    let marks = outbox.schedule_marks().await.unwrap();
    assert_eq!(
        marks.into_iter().collect::<Vec<_>>(),
        [("quiet".to_owned(), 5), ("tick".to_owned(), 60_000)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_refused_whole_and_the_writer_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let d = delivery("r", 1, 10);
    // Another process holds the write lock for longer than the busy timeout (5 s).
    let mut raw = rusqlite::Connection::open(dir.path().join("outbox.sqlite3")).unwrap();
    let lock = raw
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let err = outbox.enqueue(vec![d.clone()], None).await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Sqlite {
                action: "beginning a batch",
                ..
            }
        ),
        "{err}"
    );
    lock.rollback().unwrap();
    outbox.enqueue(vec![d.clone()], None).await.unwrap();
    assert_eq!(all(&outbox).await, vec![d]);
}

#[tokio::test]
async fn everything_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        delivery("r", 1, 10),
        delivery("r", 2, 20),
        delivery("r", 3, 30),
    );
    {
        let outbox = open(dir.path());
        outbox
            .enqueue(
                vec![a.clone(), b.clone(), c.clone()],
                Some(("tick".to_owned(), 77)),
            )
            .await
            .unwrap();
        outbox.retry_later(&a.id, 1, 40, "first").await.unwrap();
        outbox.complete(&b.id).await.unwrap();
        // Queued writes are flushed by close; the next one is refused.
        let (late, id) = (outbox.clone(), c.id.clone());
        let queued = tokio::spawn(async move { late.retry_later(&id, 1, 50, "queued").await });
        queued.await.unwrap().unwrap();
        outbox.close().await;
        outbox.close().await;
        let err = outbox.complete(&a.id).await.unwrap_err();
        assert!(matches!(err, StoreError::WriterGone), "{err}");
    }
    let outbox = open(dir.path());
    assert_eq!(
        all(&outbox).await,
        vec![
            Delivery {
                attempts: 1,
                next_attempt_ms: 40,
                first_error: Some("first".to_owned()),
                last_error: Some("first".to_owned()),
                ..a
            },
            Delivery {
                attempts: 1,
                next_attempt_ms: 50,
                first_error: Some("queued".to_owned()),
                last_error: Some("queued".to_owned()),
                ..c
            },
        ]
    );
    assert_eq!(outbox.schedule_mark("tick").await.unwrap(), Some(77));
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_every_write_already_queued() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let mut tasks = Vec::new();
    for n in 0..300 {
        let outbox = outbox.clone();
        tasks.push(tokio::spawn(async move {
            let d = delivery("r", n, 10);
            outbox.enqueue(vec![d.clone()], None).await.map(|()| d.id)
        }));
    }
    outbox.close().await;
    let mut acknowledged = HashSet::new();
    for task in tasks {
        // Each write either committed or was refused as too late; none is lost after an Ok.
        match task.await.unwrap() {
            Ok(id) => {
                acknowledged.insert(id);
            }
            Err(e) => assert!(matches!(e, StoreError::WriterGone), "{e}"),
        }
    }
    let reopened = open(dir.path());
    let stored: HashSet<String> = ids(&reopened).await.into_iter().collect();
    assert!(acknowledged.is_subset(&stored));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let before = outbox.commits();
    let mut tasks = Vec::new();
    for n in 0..2_000 {
        let outbox = outbox.clone();
        tasks.push(tokio::spawn(async move {
            outbox.enqueue(vec![delivery("r", n, 10)], None).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let commits = outbox.commits() - before;
    println!("2000 concurrent enqueues: {commits} commits");
    assert!(commits >= 1);
    assert!(commits <= 200, "{commits} commits for 2000 enqueues");
    assert_eq!(outbox.stats().await.unwrap().pending, 2_000);
}

/// Not a check: prints ingest throughput with fsync on (debug build, shared machine), for the
/// record. 20,000 single-delivery enqueues from 64 tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_throughput_is_printed() {
    const TASKS: u64 = 64;
    const PER_TASK: u64 = 20_000 / TASKS;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let outbox = open(dir.path());
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let outbox = outbox.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let d = delivery("r", t * PER_TASK + i, 10);
                outbox.enqueue(vec![d], None).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = start.elapsed();
    let n = TASKS * PER_TASK;
    println!(
        "{n} enqueues from {TASKS} tasks in {elapsed:?}: {:.0}/s, {} commits",
        n as f64 / elapsed.as_secs_f64(),
        outbox.commits()
    );
    assert_eq!(outbox.stats().await.unwrap().pending, n);
    outbox.close().await;
}

#[tokio::test]
async fn corrupt_rows_are_moved_aside_counted_and_never_due_again() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let batch: Vec<Delivery> = (1..=4).map(|n| delivery("r", n, 10 * n as i64)).collect();
    outbox.enqueue(batch.clone(), None).await.unwrap();
    let raw = rusqlite::Connection::open(dir.path().join("outbox.sqlite3")).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    // Wrong type, and text that is not UTF-8: both only show when the row is read.
    raw.execute(
        "UPDATE deliveries SET attempts = 'garbage' WHERE id = ?1",
        [&batch[0].id],
    )
    .unwrap();
    raw.execute(
        "UPDATE deliveries SET payload = CAST(X'C328' AS TEXT) WHERE id = ?1",
        [&batch[2].id],
    )
    .unwrap();
    // A due time that is not a number never comes due: the sweep at open catches it.
    raw.execute(
        "UPDATE deliveries SET next_attempt_ms = 'soon' WHERE id = ?1",
        [&batch[3].id],
    )
    .unwrap();

    assert_eq!(outbox.corrupt_rows(), 0);
    let due = outbox.due(i64::MAX, 10, &HashSet::new()).await.unwrap();
    assert_eq!(due, vec![batch[1].clone()]);
    assert_eq!(outbox.corrupt_rows(), 2);
    // Gone from the due set for good: not counted twice, not what wakes the dispatcher.
    assert_eq!(ids(&outbox).await, [batch[1].id.clone()]);
    assert_eq!(outbox.corrupt_rows(), 2);
    assert_eq!(outbox.next_due_ms().await.unwrap(), Some(20));
    // Kept, untouched, for an operator.
    let (attempts, reason): (String, String) = raw
        .query_row(
            "SELECT attempts, reason FROM corrupt_deliveries WHERE id = ?1",
            [&batch[0].id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(attempts, "garbage");
    assert_eq!(reason, "attempts is text rather than integer");
    outbox.close().await;

    let reopened = open(dir.path());
    assert_eq!(reopened.corrupt_rows(), 1);
    assert_eq!(reopened.stats().await.unwrap().pending, 1);
    let moved: i64 = raw
        .query_row("SELECT COUNT(*) FROM corrupt_deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(moved, 3);
    reopened.close().await;
}

/// Set in the child process of [`every_acknowledged_enqueue_survives_kill_9`]: the state
/// directory to write to.
const CRASH_CHILD_ENV: &str = "TRIGD_STORE_CRASH_CHILD";

/// Kills a child on drop, so that a failing test leaves no writer behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_acknowledged_enqueue_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "store::crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    // Let it get well into the stream, then SIGKILL it mid-write.
    while acknowledged.len() < 500 {
        let line = lines.next().expect("the child stopped early").unwrap();
        if let Some(id) = line.strip_prefix("ack ") {
            acknowledged.push(id.to_owned());
        }
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // Acknowledgements printed before the kill but not read yet count too.
    for line in lines {
        if let Some(id) = line.unwrap().strip_prefix("ack ") {
            acknowledged.push(id.to_owned());
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let outbox = open(dir.path());
        let stored: HashSet<String> = ids(&outbox).await.into_iter().collect();
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !stored.contains(*id))
            .collect();
        assert!(
            lost.is_empty(),
            "{} of {} acknowledged lost",
            lost.len(),
            acknowledged.len()
        );
        println!(
            "{} acknowledged before kill -9, all found",
            acknowledged.len()
        );
        assert_eq!(outbox.corrupt_rows(), 0);
        outbox.close().await;
    });
}

/// The child of [`every_acknowledged_enqueue_survives_kill_9`]; does nothing in a normal run.
/// Enqueues from 16 tasks until killed and prints `ack <id>` for each acknowledged delivery.
#[test]
fn crash_child() {
    let Some(state) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let outbox = open(Path::new(&state));
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let (outbox, out) = (outbox.clone(), out.clone());
            tasks.push(tokio::spawn(async move {
                // Bounded, in case the parent is gone without killing us.
                for i in 0..1_000_000u64 {
                    let d = delivery("crash", t * 1_000_000 + i, 10);
                    outbox.enqueue(vec![d.clone()], None).await.unwrap();
                    let mut out = out.lock().unwrap();
                    if writeln!(out, "ack {}", d.id)
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}

/// A database written by version 1 of the schema (before `hops`) is upgraded in place on open:
/// its deliveries are kept, unchained (hops 0); one from a newer trigd is refused, untouched.
#[tokio::test]
async fn an_older_schema_is_upgraded_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.sqlite3");
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "CREATE TABLE deliveries (id TEXT PRIMARY KEY NOT NULL, rule TEXT NOT NULL,
             target TEXT NOT NULL, event_id TEXT NOT NULL, event TEXT NOT NULL,
             payload TEXT NOT NULL, attempts INTEGER NOT NULL, first_seen_ms INTEGER NOT NULL,
             next_attempt_ms INTEGER NOT NULL, first_error TEXT, last_error TEXT);
         CREATE INDEX deliveries_next_attempt ON deliveries (next_attempt_ms);
         CREATE TABLE schedule_marks (rule TEXT PRIMARY KEY NOT NULL,
             last_fire_ms INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE corrupt_deliveries (original_rowid, id, rule, target, event_id, event,
             payload, attempts, first_seen_ms, next_attempt_ms, first_error, last_error,
             reason TEXT NOT NULL, quarantined_at_ms INTEGER NOT NULL);
         INSERT INTO deliveries VALUES ('old-1', 'r', 'hook', 'e1', '{}', 'p', 2, 5, 7, 'x', 'y');
         INSERT INTO schedule_marks VALUES ('tick', 42);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(raw);

    let outbox = open(dir.path());
    let old = Delivery {
        id: "old-1".to_owned(),
        rule: "r".to_owned(),
        target: "hook".to_owned(),
        event_id: "e1".to_owned(),
        event: "{}".to_owned(),
        payload: "p".to_owned(),
        attempts: 2,
        first_seen_ms: 5,
        next_attempt_ms: 7,
        first_error: Some("x".to_owned()),
        last_error: Some("y".to_owned()),
        hops: 0,
        ordering_key: None,
    };
    assert_eq!(all(&outbox).await, std::slice::from_ref(&old));
    assert_eq!(outbox.schedule_mark("tick").await.unwrap(), Some(42));
    let chained = Delivery {
        hops: 3,
        ordering_key: None,
        ..delivery("r", 9, 8)
    };
    outbox.enqueue(vec![chained.clone()], None).await.unwrap();
    assert_eq!(all(&outbox).await, vec![old, chained]);
    outbox.close().await;

    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    let err = Outbox::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("99"), "{err}");
}

/// Deliveries with an ordering key come due one at a time per (rule, target, key), in the
/// order they were stored; a head waiting for its retry holds its group back, nothing else.
#[tokio::test]
async fn only_the_head_of_an_ordered_group_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let keyed = |n: u64, key: &str| Delivery {
        ordering_key: Some(key.to_owned()),
        ..delivery("r", n, 10)
    };
    let other_target = Delivery {
        target: "other".to_owned(),
        id: "other-target".to_owned(),
        ..keyed(9, "a")
    };
    let batch = vec![
        keyed(1, "a"),
        keyed(2, "b"),
        keyed(3, "a"),
        delivery("r", 4, 10),
        keyed(5, "b"),
        other_target.clone(),
    ];
    outbox.enqueue(batch.clone(), None).await.unwrap();
    let due_ids = |outbox: Outbox| async move {
        outbox
            .due(100, usize::MAX, &HashSet::new())
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect::<Vec<_>>()
    };
    let id = |i: usize| batch[i].id.clone();
    // Heads of a and b, the unkeyed one, and a's head for the other target.
    assert_eq!(due_ids(outbox.clone()).await, [id(0), id(1), id(3), id(5)]);
    // a's head waits for a retry: a waits with it; b does not.
    outbox.retry_later(&id(0), 1, 1_000, "503").await.unwrap();
    outbox.complete(&id(1)).await.unwrap();
    assert_eq!(due_ids(outbox.clone()).await, [id(3), id(4), id(5)]);
    // Once a's head is gone, the next of a comes due.
    outbox.complete(&id(0)).await.unwrap();
    assert_eq!(due_ids(outbox.clone()).await, [id(2), id(3), id(4), id(5)]);
    outbox.close().await;
}

/// The hand-off: what a commit stores, due and unordered, comes out of `take_handed_off`
/// exactly once, while the rows stay the record; everything else moves `missed`, which tells
/// the dispatcher to read.
#[tokio::test]
async fn committed_deliveries_are_handed_over_once_and_the_rest_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let now = chrono::Utc::now().timestamp_millis();
    outbox
        .enqueue(vec![delivery("off", 0, 0)], None)
        .await
        .unwrap();
    assert!(
        outbox.take_handed_off().is_empty(),
        "off until a dispatcher asks"
    );

    outbox.enable_handoff();
    let before = outbox.missed();
    let a = delivery("r", 1, 0);
    outbox.enqueue(vec![a.clone()], None).await.unwrap();
    assert_eq!(outbox.take_handed_off(), vec![a.clone()]);
    assert!(outbox.take_handed_off().is_empty(), "handed over once");
    assert!(
        ids(&outbox).await.contains(&a.id),
        "and still in the outbox"
    );
    assert_eq!(outbox.missed(), before);

    // The same delivery again: the first copy is the record, nothing new to hand over.
    outbox.enqueue(vec![a.clone()], None).await.unwrap();
    assert!(outbox.take_handed_off().is_empty());
    assert_eq!(outbox.missed(), before);

    // Not due yet, or ordered: stored, not handed over, and counted.
    let later = delivery("r", 2, now + 60_000);
    outbox.enqueue(vec![later], None).await.unwrap();
    assert!(outbox.take_handed_off().is_empty());
    assert_eq!(outbox.missed(), before + 1);
    let ordered = Delivery {
        ordering_key: Some("group".to_owned()),
        ..delivery("r", 3, 0)
    };
    outbox.enqueue(vec![ordered], None).await.unwrap();
    assert!(outbox.take_handed_off().is_empty());
    assert_eq!(outbox.missed(), before + 2);

    // A retry rescheduled is for a read to find when it is due.
    outbox.retry_later(&a.id, 1, now, "failed").await.unwrap();
    assert_eq!(outbox.missed(), before + 3);
    // Removals hand nothing over and need no read.
    outbox.complete(&a.id).await.unwrap();
    assert_eq!(outbox.missed(), before + 3);
    assert!(outbox.take_handed_off().is_empty());
}
