//! The outbox: an embedded, crash-safe store of the deliveries that wait for their targets,
//! the last fire of each schedule, and the dead-letter directory beside it.
//!
//! Files, under the state directory:
//! * `outbox.sqlite3` (with SQLite's `-wal` and `-shm` companions): table `deliveries` (one row
//!   per [`Delivery`], keyed by its id, indexed by `next_attempt_ms`), table `schedule_marks`
//!   (rule name → last fire in Unix ms) and table `corrupt_deliveries` (rows moved aside, see
//!   below). The schema is versioned with `PRAGMA user_version` and created on open.
//! * `dead-letters/<delivery-id>.json`: one versioned JSON file per dead letter
//!   ([`DeadLetterRecord`]), written atomically (temporary file, fsync, rename, fsync of the
//!   directory). Files whose names start with `.` are interrupted writes and are ignored.
//!
//! **Why SQLite** (rusqlite, bundled) rather than redb or fjall: the outbox is one table with
//! one index, which SQLite gives us without a hand-rolled due-time index (redb) or an LSM tree
//! built for far larger data (fjall). Operators can inspect and repair it with the `sqlite3`
//! CLI. Above all, the `trigd dlq` commands must work on the same database while the daemon
//! runs: SQLite in WAL mode lets a second process read at any time and write after a short
//! wait (`busy_timeout`), where redb holds a single-process lock on its file.
//!
//! **Durability.** WAL mode with `synchronous=FULL`: every commit is fsync'd before the call
//! that asked for it returns. A source may be acknowledged once [`Outbox::enqueue`] returned
//! `Ok`; a crash at any later point loses nothing.
//!
//! **Group commit.** An fsync costs a few milliseconds on most disks, so one commit per event
//! would cap ingest at a few hundred events a second. All writes therefore go through one
//! writer thread that owns the write connection: callers send operations over a bounded
//! channel (a full channel slows the callers down) and await a one-shot answer; the writer
//! takes everything queued (up to [`MAX_BATCH_OPS`] operations or [`MAX_BATCH_BYTES`]), runs it
//! in one transaction, commits once and then answers every caller. Each operation runs in its
//! own savepoint, so one that fails is rolled back alone and answered with its error; a failed
//! commit answers the whole batch with the error, and the writer carries on. Under load the
//! batches grow by themselves, and the disk sees one fsync per batch, not per event. Reads use
//! their own connection on the blocking pool; in WAL mode they never wait for the writer.
//!
//! **Corrupt rows.** A row the daemon cannot decode (a column of the wrong type, text that is
//! not UTF-8, attempts out of range: only hand edits or a damaged disk do that) is never a
//! panic. It is moved, untouched, to the `corrupt_deliveries` table with the reason and logged
//! with `tracing::error!`, and [`Outbox::corrupt_rows`] counts it. It is moved rather than
//! skipped in place because a skipped row would stay due forever: the dispatcher would be woken
//! for it again and again. It is not dead-lettered because a dead letter needs the fields that
//! could not be read. [`Outbox::open`] sweeps the table for columns of the wrong SQL type (such
//! a row may never come due, e.g. a text `next_attempt_ms`); [`Outbox::due`] catches the rest
//! (text that is not UTF-8) when it meets them. An operator can repair a row with `sqlite3` and
//! copy it back.

mod db;
mod dead_letter;
pub mod handoff;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch};

use super::Delivery;

pub use dead_letter::{
    DeadLetterInfo, DeadLetterRecord, Exhausted, list_dead_letters, read_dead_letter, redrive,
};

/// The database file's name in the state directory.
pub const DB_FILE: &str = "outbox.sqlite3";
/// The dead-letter directory's name in the state directory.
pub const DEAD_LETTER_DIR: &str = "dead-letters";
/// How many operations may wait for the writer before callers wait for room: enough to fill
/// two batches, small enough that a stalled disk pushes back on the sources quickly.
pub const CHANNEL_CAPACITY: usize = 1024;
/// The most operations in one transaction, so that callers early in a huge queue are not kept
/// waiting for the whole queue's commit.
pub const MAX_BATCH_OPS: usize = 512;
/// The most event and payload bytes in one transaction (about 4 MiB), which bounds the WAL's
/// growth per commit and the writer's memory.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Why a store operation failed. Every variant keeps what it failed on (a path, an id), and
/// every message includes its cause, so `error = %e` in a log line is enough.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        /// Shared, so that one failure can answer every caller in a batch.
        error: Arc<io::Error>,
    },
    /// SQLite refused an operation on the outbox database.
    #[error("outbox database {}: {action}: {error}", path.display())]
    Sqlite {
        path: PathBuf,
        /// What the store was doing, e.g. "committing a batch".
        action: &'static str,
        /// Shared, so that one failed commit can answer every caller in its batch.
        error: Arc<rusqlite::Error>,
    },
    /// A stored record (outbox row, schedule mark or dead-letter file) cannot be read.
    #[error("corrupt record `{id}`: {reason}")]
    Corrupt { id: String, reason: String },
    /// `read_dead_letter` or `redrive` was given an id with no dead-letter file.
    #[error("no dead letter with id `{id}`")]
    NoSuchDeadLetter { id: String },
    /// An id that cannot name a file safely (ids are used as dead-letter file names).
    #[error("not a valid delivery id: `{id}` (expected letters, digits, `-` and `_`)")]
    InvalidId { id: String },
    /// The database was written by a newer trigd.
    #[error(
        "outbox database has schema version {found}; this trigd knows versions up to {supported}"
    )]
    UnsupportedSchema { found: i64, supported: i64 },
    /// The writer thread has stopped ([`Outbox::close`] was called, or it could not start).
    #[error("the outbox writer has stopped")]
    WriterGone,
    /// A read or file task on the blocking pool did not finish (it panicked or the runtime
    /// is shutting down).
    #[error("an outbox background task failed: {reason}")]
    Background { reason: String },
    /// A read failed on purpose: the file named by [`FAULT_READ_ENV`] exists (a test seam).
    #[error("outbox read failed: injected by {}", path.display())]
    Injected { path: PathBuf },
}

/// Names a file whose existence makes every outbox read fail ([`StoreError::Injected`]): the
/// seam through which tests make a running daemon's dispatcher fail, to prove that the daemon
/// notices, refuses events and exits for its supervisor to restart it. Unset in production.
pub const FAULT_READ_ENV: &str = "TRIGD_FAULT_OUTBOX_READ";

impl StoreError {
    pub(crate) fn io(path: &Path, error: io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            error: Arc::new(error),
        }
    }

    pub(crate) fn sqlite(path: &Path, action: &'static str, error: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: path.to_owned(),
            action,
            error: Arc::new(error),
        }
    }
}

/// What the outbox holds, for metrics and `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Deliveries waiting (due or not, in flight or not).
    pub pending: u64,
    /// When the oldest pending delivery's event was accepted: the age of the backlog.
    pub oldest_first_seen_ms: Option<i64>,
}

/// A handle on the outbox; clones share one writer thread and one read connection.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    /// The state directory: the database and the dead-letter directory live in it.
    state_dir: PathBuf,
    /// `state_dir/outbox.sqlite3`, kept for error messages.
    db_path: PathBuf,
    /// Operations for the writer thread. Bounded, so a slow disk slows the callers down.
    ops: mpsc::Sender<writer::Msg>,
    /// The read connection. Reads run on the blocking pool one at a time; a std mutex is right
    /// because it is only ever held inside `spawn_blocking`, never across an `.await`.
    reader: Arc<Mutex<Connection>>,
    /// Shared with the writer thread, which updates them after each commit.
    counters: Arc<Counters>,
    /// Committed deliveries on their way to the dispatcher.
    handoff: Arc<handoff::Handoff>,
    /// Becomes `true` when the writer thread has committed its last batch and closed its
    /// connection; `close` waits on it.
    writer_done: watch::Receiver<bool>,
    /// The writer thread, joined by the first `close`.
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// [`FAULT_READ_ENV`]'s file, when set.
    fault_read: Option<PathBuf>,
}

/// Counters the writer keeps and the handle exposes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Successful commits (one fsync each): with the number of operations, the batching
    /// factor.
    pub(crate) commits: AtomicU64,
    /// Rows moved to `corrupt_deliveries`.
    pub(crate) corrupt_rows: AtomicU64,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("state_dir", &self.inner.state_dir)
            .field("commits", &self.commits())
            .field("corrupt_rows", &self.corrupt_rows())
            .finish_non_exhaustive()
    }
}

/// `state_dir/outbox.sqlite3`.
pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DB_FILE)
}

/// `state_dir/dead-letters`.
pub fn dead_letter_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(DEAD_LETTER_DIR)
}

impl Outbox {
    /// Opens (creating when missing) the state directory, the dead-letter directory and the
    /// database, moves rows with wrongly typed columns aside, and starts the writer thread.
    /// Synchronous: call it once at startup.
    pub fn open(state_dir: &Path) -> Result<Outbox, StoreError> {
        let dead_dir = dead_letter_dir(state_dir);
        std::fs::create_dir_all(&dead_dir).map_err(|e| StoreError::io(&dead_dir, e))?;
        let db_path = db_path(state_dir);
        let mut conn = db::open(&db_path)?;
        let counters = Arc::new(Counters::default());
        let swept = db::sweep(&mut conn, &db_path)?;
        counters.corrupt_rows.fetch_add(swept, Ordering::Relaxed);
        // The new database file and dead-letter directory must survive a crash too.
        dead_letter::sync_dir(state_dir)?;
        let reader = db::open_reader(&db_path)?;

        let (ops, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (done_tx, writer_done) = watch::channel(false);
        let handoff = Arc::new(handoff::Handoff::default());
        let writer = writer::Writer::new(
            conn,
            db_path.clone(),
            counters.clone(),
            Arc::clone(&handoff),
        );
        let thread = std::thread::Builder::new()
            .name("trigd-outbox".to_owned())
            .spawn(move || writer.run(rx, done_tx))
            .map_err(|e| StoreError::io(&db_path, e))?;
        Ok(Outbox {
            inner: Arc::new(Inner {
                state_dir: state_dir.to_owned(),
                db_path,
                ops,
                reader: Arc::new(Mutex::new(reader)),
                counters,
                handoff,
                writer_done,
                writer_thread: Mutex::new(Some(thread)),
                fault_read: std::env::var_os(FAULT_READ_ENV).map(PathBuf::from),
            }),
        })
    }

    /// Durably adds deliveries (`INSERT OR IGNORE` on id: the same delivery enqueued twice is
    /// one, and the first copy wins) and, in the same transaction, records a schedule rule's
    /// last fire when given, so that a schedule tick is recorded only with its deliveries.
    /// Returns once the transaction is fsync'd.
    pub async fn enqueue(
        &self,
        deliveries: Vec<Delivery>,
        schedule_mark: Option<(String, i64)>,
    ) -> Result<(), StoreError> {
        if let Some(bad) = deliveries.iter().find(|d| !valid_id(&d.id)) {
            return Err(StoreError::InvalidId { id: bad.id.clone() });
        }
        if deliveries.is_empty() && schedule_mark.is_none() {
            return Ok(());
        }
        self.submit(writer::Op::Enqueue {
            deliveries,
            mark: schedule_mark,
            inserted: Vec::new(),
        })
        .await
        .map(drop)
    }

    /// Up to `limit` deliveries with `next_attempt_ms <= now_ms`, oldest due first (ties in
    /// insertion order), skipping the ids in `in_flight` (which is copied for the blocking
    /// read). Corrupt rows met on the way are moved aside (see the module doc) before this
    /// returns. With the hand-off on, everything this returns was handed over before the
    /// read began: take the hand-off after this returns, before starting what it read (see
    /// [`handoff`]).
    pub async fn due(
        &self,
        now_ms: i64,
        limit: usize,
        in_flight: &HashSet<String>,
    ) -> Result<Vec<Delivery>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if let Some(path) = self.inner.fault_read.as_ref().filter(|p| p.exists()) {
            return Err(StoreError::Injected { path: path.clone() });
        }
        let in_flight = in_flight.clone();
        let path = self.inner.db_path.clone();
        let handoff = Arc::clone(&self.inner.handoff);
        let (due, corrupt) = self
            .read(move |conn| db::due(conn, &path, now_ms, limit, &in_flight, || handoff.fence()))
            .await?;
        if !corrupt.is_empty() {
            self.submit(writer::Op::Quarantine { rowids: corrupt })
                .await?;
        }
        Ok(due)
    }

    /// Turns the hand-off on: from now on the writer passes each committed delivery that is
    /// due at once (and has no ordering key) to [`Outbox::take_handed_off`], and counts every
    /// other change a dispatcher must read in [`Outbox::missed`]. The daemon's dispatcher
    /// turns it on; tools that only read or write the outbox leave it off.
    pub fn enable_handoff(&self) {
        self.inner.handoff.enable();
    }

    /// The deliveries handed over since the last call: committed, due, not yet read by
    /// anyone.
    pub fn take_handed_off(&self) -> Vec<Delivery> {
        self.inner.handoff.take()
    }

    /// A counter that moves whenever the outbox gained work that was not handed over (see
    /// [`handoff`]): a dispatcher reads the outbox when it moved since its last read.
    pub fn missed(&self) -> u64 {
        self.inner.handoff.missed()
    }

    /// Completes when a commit handed something over or missed something (after
    /// [`Outbox::enable_handoff`]).
    pub fn handed_off(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.handoff.notified()
    }

    /// When the earliest pending delivery is due (it may be in the past), or `None` when the
    /// outbox is empty.
    pub async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        let path = self.inner.db_path.clone();
        self.read(move |conn| db::next_due_ms(conn, &path)).await
    }

    /// Removes a delivery whose target succeeded. Removing a delivery that is not there is not
    /// an error.
    pub async fn complete(&self, id: &str) -> Result<(), StoreError> {
        self.complete_many(vec![id.to_owned()]).await
    }

    /// Removes many delivered deliveries in one writer operation (the dispatcher batches its
    /// successes: one hand-off to the writer thread instead of one per delivery).
    pub async fn complete_many(&self, ids: Vec<String>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.submit(writer::Op::Delete { ids }).await.map(drop)
    }

    /// Records a failed attempt: the attempts made so far, when to try again, and the error
    /// (as `last_error`, and as `first_error` when the delivery had none). A delivery that is
    /// no longer there (redriven over, completed elsewhere) is left alone.
    pub async fn retry_later(
        &self,
        id: &str,
        attempts: u32,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.submit(writer::Op::RetryLater {
            id: id.to_owned(),
            attempts,
            next_attempt_ms,
            error: error.to_owned(),
        })
        .await
        .map(drop)
    }

    /// Writes `delivery`'s dead letter (temporary file, fsync, rename, fsync of the directory)
    /// and then removes the delivery from the outbox. Pass the delivery as it stands after its
    /// last attempt (`attempts` counting it); `info.error` becomes `last_error`, and also
    /// `first_error` when the delivery had none. A crash between the two steps leaves the
    /// delivery in the outbox, to be tried (and perhaps dead-lettered, overwriting the same
    /// file) again. Returns the file's path.
    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        info: DeadLetterInfo,
    ) -> Result<PathBuf, StoreError> {
        if !valid_id(&delivery.id) {
            return Err(StoreError::InvalidId {
                id: delivery.id.clone(),
            });
        }
        let record = DeadLetterRecord::new(delivery, &info);
        let dir = dead_letter_dir(&self.inner.state_dir);
        let path = blocking(move || dead_letter::write_file(&dir, &record)).await?;
        self.submit(writer::Op::Delete {
            ids: vec![delivery.id.clone()],
        })
        .await?;
        Ok(path)
    }

    /// How many deliveries wait, and how old the oldest is. Counts every row, so it costs a
    /// scan of the due-time index: fine for a metrics scrape, not for a hot loop.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let path = self.inner.db_path.clone();
        self.read(move |conn| db::stats(conn, &path)).await
    }

    /// The last recorded fire of schedule rule `rule` (Unix ms), if any.
    pub async fn schedule_mark(&self, rule: &str) -> Result<Option<i64>, StoreError> {
        let path = self.inner.db_path.clone();
        let rule = rule.to_owned();
        self.read(move |conn| db::schedule_mark(conn, &path, &rule))
            .await
    }

    /// Every recorded schedule fire, by rule name (for the scheduler's catch-up at startup).
    pub async fn schedule_marks(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let path = self.inner.db_path.clone();
        self.read(move |conn| db::schedule_marks(conn, &path)).await
    }

    /// Commits everything already queued, stops the writer thread and waits for it. Later
    /// writes on any clone fail with [`StoreError::WriterGone`]; reads keep working. Calling
    /// it again (from any clone) just waits for the same end.
    pub async fn close(&self) {
        // A closed channel means another `close` got there first: wait for the same end.
        let _ = self.inner.ops.send(writer::Msg::Shutdown).await;
        let mut done = self.inner.writer_done.clone();
        // An error means the writer dropped its end without saying so (it panicked): it is
        // gone either way.
        let _ = done.wait_for(|finished| *finished).await;
        let thread = self
            .inner
            .writer_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // The thread has already said it is done; joining only reaps it.
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!(message = "The outbox writer thread panicked.");
            }
        }
    }

    /// Successful commits so far (each one fsync). Far fewer than the operations under
    /// load: that is group commit at work.
    pub fn commits(&self) -> u64 {
        self.inner.counters.commits.load(Ordering::Relaxed)
    }

    /// Corrupt rows moved to `corrupt_deliveries` since this outbox was opened.
    pub fn corrupt_rows(&self) -> u64 {
        self.inner.counters.corrupt_rows.load(Ordering::Relaxed)
    }

    /// Sends one operation to the writer and waits for its commit.
    async fn submit(&self, op: writer::Op) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .ops
            .send(writer::Msg::Op(writer::Request { op, reply }))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs a read on the read connection, on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let reader = self.inner.reader.clone();
        blocking(move || {
            // A panic while holding the lock cannot leave the connection half-changed (reads
            // change nothing), so a poisoned lock is still good to use.
            let conn = reader.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await
    }
}

/// Runs blocking work (SQLite reads, file writes) off the async worker threads.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Background {
            reason: e.to_string(),
        })?
}

/// Whether `id` can name a dead-letter file: delivery ids are UUID-shaped
/// ([`super::delivery_id`]), and anything with a `/`, a `.` or nothing at all must not get near
/// a path.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_name_files_safely() {
        assert!(valid_id(&crate::delivery::delivery_id("r", "t", "e")));
        assert!(valid_id("abc_DEF-123"));
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a.json",
            "a b",
            "é",
            &"a".repeat(129),
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn errors_say_what_failed_and_why() {
        let e = StoreError::io(
            Path::new("/s/dead-letters"),
            io::Error::new(io::ErrorKind::PermissionDenied, "denied"),
        );
        assert_eq!(e.to_string(), "/s/dead-letters: denied");
        let e = StoreError::sqlite(
            Path::new("/s/outbox.sqlite3"),
            "committing a batch",
            rusqlite::Error::InvalidQuery,
        );
        assert_eq!(
            e.to_string(),
            "outbox database /s/outbox.sqlite3: committing a batch: Query is not read-only"
        );
    }
}
