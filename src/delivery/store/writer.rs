//! The writer thread: the only code that writes the outbox database while the daemon runs. It
//! drains the operation channel into batches, runs each batch in one transaction (one
//! savepoint per operation) and commits it with one fsync: group commit.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot, watch};

use super::handoff::Handoff;
use super::{Counters, MAX_BATCH_BYTES, MAX_BATCH_OPS, StoreError, db};
use crate::delivery::Delivery;

/// What the writer thread receives.
pub(super) enum Msg {
    Op(Request),
    /// Commit what is queued, refuse anything later, stop.
    Shutdown,
}

/// One operation and where its answer goes.
pub(super) struct Request {
    pub(super) op: Op,
    /// The committed operation's count (rows inserted, changed, deleted or moved), or why it
    /// failed. A caller that stopped waiting is not an error.
    pub(super) reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// The writes the outbox makes.
pub(super) enum Op {
    Enqueue {
        deliveries: Vec<Delivery>,
        mark: Option<(String, i64)>,
        /// Filled by `execute`: whether each delivery was new (not a duplicate id), for the
        /// hand-off.
        inserted: Vec<bool>,
    },
    /// `complete`/`complete_many`, and the second half of `dead_letter`.
    Delete { ids: Vec<String> },
    RetryLater {
        id: String,
        attempts: u32,
        next_attempt_ms: i64,
        error: String,
    },
    /// Rows `due` could not decode.
    Quarantine { rowids: Vec<i64> },
}

impl Op {
    /// Roughly how many bytes the operation adds to the transaction, for the batch cap.
    fn size(&self) -> usize {
        const ROW_OVERHEAD: usize = 128;
        match self {
            Op::Enqueue { deliveries, .. } => deliveries
                .iter()
                .map(|d| ROW_OVERHEAD + d.event.len() + d.payload.len())
                .sum(),
            Op::RetryLater { error, .. } => ROW_OVERHEAD + error.len(),
            Op::Delete { ids } => ROW_OVERHEAD * ids.len().max(1),
            Op::Quarantine { .. } => ROW_OVERHEAD,
        }
    }

    /// Whether the operation's commit must be fsync'd before it is answered. Only removals of
    /// delivered deliveries need not: a removal lost to a power cut (never to a crash of the
    /// process: the write is in the OS's cache by then) repeats a delivery, which at least
    /// once allows, and the next synced commit makes it durable with everything before it.
    fn needs_sync(&self) -> bool {
        !matches!(self, Op::Delete { .. })
    }

    fn execute(&mut self, conn: &Connection) -> rusqlite::Result<u64> {
        let changed = match self {
            Op::Enqueue {
                deliveries,
                mark,
                inserted,
            } => {
                // Run again from the start when the batch is retried one savepoint at a time.
                inserted.clear();
                for d in deliveries.iter() {
                    inserted.push(db::insert(conn, db::INSERT_OR_IGNORE, d)? == 1);
                }
                if let Some((rule, ms)) = mark {
                    conn.prepare_cached(db::UPSERT_MARK)?
                        .execute(params![&*rule, *ms])?;
                }
                inserted.iter().filter(|new| **new).count()
            }
            Op::Delete { ids } => {
                let mut stmt = conn.prepare_cached(db::DELETE)?;
                let mut deleted = 0;
                for id in ids {
                    deleted += stmt.execute([&*id])?;
                }
                deleted
            }
            Op::RetryLater {
                id,
                attempts,
                next_attempt_ms,
                error,
            } => conn.prepare_cached(db::RETRY_LATER)?.execute(params![
                &*id,
                i64::from(*attempts),
                *next_attempt_ms,
                &*error
            ])?,
            Op::Quarantine { rowids } => {
                return db::quarantine(conn, rowids, chrono::Utc::now().timestamp_millis());
            }
        };
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }
}

/// The writer's state, moved into its thread.
pub(super) struct Writer {
    /// The only write connection while the daemon runs.
    conn: Connection,
    /// For error messages.
    path: PathBuf,
    counters: Arc<Counters>,
    /// Where committed deliveries go to the dispatcher.
    handoff: Arc<Handoff>,
    /// Whether the database is in WAL mode, where a commit may skip its fsync safely (see
    /// [`Op::needs_sync`]); in any other mode every commit is synced.
    wal: bool,
    /// Whether commits are fsync'd now (`synchronous=FULL`, the connection's setting when
    /// opened) or not (`NORMAL`).
    synced: bool,
    /// The batch being built, reused between batches.
    batch: Vec<Request>,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        path: PathBuf,
        counters: Arc<Counters>,
        handoff: Arc<Handoff>,
    ) -> Writer {
        let wal = conn
            .pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
            .is_ok_and(|mode| mode.eq_ignore_ascii_case("wal"));
        Writer {
            conn,
            path,
            counters,
            handoff,
            wal,
            synced: true,
            batch: Vec::with_capacity(MAX_BATCH_OPS),
        }
    }

    /// The thread's body: batches until every sender is gone or a shutdown arrived and the
    /// queue is empty, then closes the connection and says so on `done`.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Msg>, done: watch::Sender<bool>) {
        while let Some(first) = rx.blocking_recv() {
            let mut bytes = 0;
            self.take(first, &mut rx, &mut bytes);
            while self.batch.len() < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(msg) => self.take(msg, &mut rx, &mut bytes),
                    Err(_) => break,
                }
            }
            if !self.batch.is_empty() {
                self.commit_batch();
            }
        }
        // Dropping the connection before saying so: whoever reopens the store finds it free.
        drop(self.conn);
        done.send_replace(true);
    }

    fn take(&mut self, msg: Msg, rx: &mut mpsc::Receiver<Msg>, bytes: &mut usize) {
        match msg {
            Msg::Op(request) => {
                *bytes += request.op.size();
                self.batch.push(request);
            }
            // What is already queued is still received (and committed); new sends fail.
            Msg::Shutdown => rx.close(),
        }
    }

    /// Runs the batch in one transaction and answers every request. The batch first runs as
    /// plain statements; only if one of them fails is it rolled back and run again with a
    /// savepoint per operation, so that the failure is answered alone. (Savepoints on every
    /// operation would cost a fifth of the writer's time for a case that hardly ever happens.)
    fn commit_batch(&mut self) {
        let handoff = Arc::clone(&self.handoff);
        // Held until the batch's deliveries are handed over: no read may see them before
        // (see `handoff`).
        let fence = handoff.fence();
        let sync = !self.wal || self.batch.iter().any(|r| r.op.needs_sync());
        let results = match self.set_sync(sync) {
            Ok(()) => match self.run_together() {
                Ok(Some(counts)) => Ok(counts.into_iter().map(Ok).collect()),
                Ok(None) => self.run_isolated(),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        match results {
            Ok(results) => {
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                let now_ms = chrono::Utc::now().timestamp_millis();
                let mut replies = Vec::with_capacity(self.batch.len());
                // Whether the dispatcher has anything new: removals alone give it nothing.
                let mut news = false;
                for (request, result) in self.batch.drain(..).zip(results) {
                    match (request.op, &result) {
                        (Op::Quarantine { .. }, Ok(moved)) => {
                            self.counters
                                .corrupt_rows
                                .fetch_add(*moved, Ordering::Relaxed);
                        }
                        (
                            Op::Enqueue {
                                deliveries,
                                inserted,
                                ..
                            },
                            Ok(_),
                        ) => news |= handoff.offer(deliveries, &inserted, now_ms),
                        (Op::RetryLater { .. }, Ok(_)) => {
                            handoff.miss();
                            news = true;
                        }
                        _ => {}
                    }
                    if let Err(error) = &result {
                        tracing::error!(message = "An outbox write failed.", %error);
                    }
                    replies.push((request.reply, result));
                }
                drop(fence);
                if news {
                    handoff.wake();
                }
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                drop(fence);
                tracing::error!(
                    message = "An outbox batch failed; every write in it is refused.",
                    writes = self.batch.len(),
                    %error,
                );
                for request in self.batch.drain(..) {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Switches the connection's fsync at commit on or off, when it is not already.
    fn set_sync(&mut self, sync: bool) -> Result<(), StoreError> {
        if self.synced == sync {
            return Ok(());
        }
        let value = if sync { "FULL" } else { "NORMAL" };
        match self.conn.pragma_update(None, "synchronous", value) {
            Ok(()) => {
                self.synced = sync;
                Ok(())
            }
            // Left synced: slower, never less safe.
            Err(_) if !sync => Ok(()),
            Err(e) => Err(StoreError::sqlite(&self.path, "setting synchronous", e)),
        }
    }

    /// The fast path: every operation in one transaction, no savepoints. `Ok(None)` when an
    /// operation failed (the transaction is rolled back when dropped).
    fn run_together(&mut self) -> Result<Option<Vec<u64>>, StoreError> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::sqlite(path, "beginning a batch", e))?;
        let mut counts = Vec::with_capacity(self.batch.len());
        for request in &mut self.batch {
            match request.op.execute(&tx) {
                Ok(n) => counts.push(n),
                Err(_) => return Ok(None),
            }
        }
        tx.commit()
            .map_err(|e| StoreError::sqlite(path, "committing a batch", e))?;
        Ok(Some(counts))
    }

    /// The slow path: each operation in its own savepoint, each answered with its own result.
    fn run_isolated(&mut self) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let path = &self.path;
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::sqlite(path, "beginning a batch", e))?;
        let results = self
            .batch
            .iter_mut()
            .map(|request| {
                execute_in_savepoint(&mut tx, &mut request.op)
                    .map_err(|e| StoreError::sqlite(path, "writing", e))
            })
            .collect();
        tx.commit()
            .map_err(|e| StoreError::sqlite(path, "committing a batch", e))?;
        Ok(results)
    }
}

/// Runs one operation in its own savepoint, so that its failure undoes it alone.
fn execute_in_savepoint(tx: &mut rusqlite::Transaction<'_>, op: &mut Op) -> rusqlite::Result<u64> {
    let savepoint = tx.savepoint()?;
    // On error the savepoint is dropped, which rolls it back.
    let n = op.execute(&savepoint)?;
    savepoint.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(event: &str, payload: &str) -> Delivery {
        Delivery {
            event: event.to_owned(),
            payload: payload.to_owned(),
            ..Delivery::for_test("a", 0)
        }
    }

    fn synchronous(w: &Writer) -> i64 {
        w.conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn only_batches_of_removals_skip_the_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.sqlite3");
        let mut w = Writer::new(
            db::open(&path).unwrap(),
            path,
            Arc::default(),
            Arc::default(),
        );
        assert!(w.wal && w.synced);
        let submit = |w: &mut Writer, op: Op| {
            let (reply, mut answer) = oneshot::channel();
            w.batch.push(Request { op, reply });
            w.commit_batch();
            answer.try_recv().unwrap().unwrap()
        };
        let enqueue = || Op::Enqueue {
            deliveries: vec![delivery("{}", "{}")],
            mark: None,
            inserted: Vec::new(),
        };
        assert_eq!(submit(&mut w, enqueue()), 1);
        assert_eq!(synchronous(&w), 2, "FULL");
        let delete = || Op::Delete {
            ids: vec!["a".to_owned()],
        };
        assert_eq!(submit(&mut w, delete()), 1);
        assert!(!w.synced);
        assert_eq!(synchronous(&w), 1, "NORMAL: removals are not fsync'd");
        // The next write that must be durable is synced again (and with it the removal).
        assert_eq!(submit(&mut w, enqueue()), 1);
        assert_eq!(synchronous(&w), 2, "FULL");
        let retry = Op::RetryLater {
            id: "a".to_owned(),
            attempts: 1,
            next_attempt_ms: 5,
            error: "e".to_owned(),
        };
        w.synced = false;
        w.conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        assert_eq!(submit(&mut w, retry), 1);
        assert_eq!(synchronous(&w), 2, "a retry's record is synced");
    }

    #[test]
    fn batch_size_counts_event_and_payload_bytes() {
        let op = Op::Enqueue {
            deliveries: vec![delivery("1234", "56"), delivery("", "")],
            mark: None,
            inserted: Vec::new(),
        };
        assert_eq!(op.size(), 128 + 6 + 128);
        assert_eq!(
            Op::Delete {
                ids: vec!["a".to_owned()]
            }
            .size(),
            128
        );
    }
}
