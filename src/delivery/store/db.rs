//! The outbox database: connections and their pragmas, the versioned schema, every SQL
//! statement, and the strict decoding of a row into a [`Delivery`].

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::MutexGuard;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use super::{Stats, StoreError};
use crate::delivery::Delivery;

/// The schema this code writes (`PRAGMA user_version`); 0 means a new, empty database.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// How long a connection waits for another's write lock before giving up: the daemon's
/// transactions last milliseconds, and the `trigd dlq` CLI's one redrive transaction not much
/// longer, so five seconds only runs out when something is stuck.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The WAL file is truncated back to this size after a checkpoint, so one burst does not leave
/// a huge file behind.
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// Version 1. `corrupt_deliveries` has untyped columns so that a row moved there keeps its
/// values exactly as they were.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    rule            TEXT NOT NULL,
    target          TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    first_seen_ms   INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    first_error     TEXT,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_next_attempt ON deliveries (next_attempt_ms);
CREATE TABLE IF NOT EXISTS schedule_marks (
    rule         TEXT PRIMARY KEY NOT NULL,
    last_fire_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS corrupt_deliveries (
    original_rowid, id, rule, target, event_id, event, payload, attempts, first_seen_ms,
    next_attempt_ms, first_error, last_error,
    reason            TEXT NOT NULL,
    quarantined_at_ms INTEGER NOT NULL
);
PRAGMA user_version = 1;
";

/// Version 2 adds `hops`, how many destinations (`on_success`/`on_failure`) led to the
/// delivery, so that a chain of rules feeding each other through trigd's bus stops (rows
/// written by version 1 were not chained: 0), and `ordering_key` (see
/// [`Delivery::ordering_key`]) with the index that finds a group's head.
const SCHEMA_V2: &str = "
ALTER TABLE deliveries ADD COLUMN hops INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
CREATE INDEX IF NOT EXISTS deliveries_ordering ON deliveries (rule, target, ordering_key)
    WHERE ordering_key IS NOT NULL;
ALTER TABLE corrupt_deliveries ADD COLUMN hops;
ALTER TABLE corrupt_deliveries ADD COLUMN ordering_key;
PRAGMA user_version = 2;
";

/// The columns of a delivery row, in [`decode`]'s order, after `rowid`.
macro_rules! delivery_columns {
    () => {
        "id, rule, target, event_id, event, payload, attempts, first_seen_ms, next_attempt_ms, \
         first_error, last_error, hops, ordering_key"
    };
}

pub(super) const INSERT_OR_IGNORE: &str = concat!(
    "INSERT OR IGNORE INTO deliveries (",
    delivery_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
);
/// Redrive replaces: the operator asked for a fresh start, even if a copy is still pending.
pub(super) const INSERT_OR_REPLACE: &str = concat!(
    "INSERT OR REPLACE INTO deliveries (",
    delivery_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
);
pub(super) const UPSERT_MARK: &str = "INSERT INTO schedule_marks (rule, last_fire_ms) VALUES (?1, ?2) \
     ON CONFLICT (rule) DO UPDATE SET last_fire_ms = excluded.last_fire_ms";
pub(super) const DELETE: &str = "DELETE FROM deliveries WHERE id = ?1";
pub(super) const RETRY_LATER: &str = "UPDATE deliveries \
     SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4, first_error = COALESCE(first_error, ?4) \
     WHERE id = ?1";
/// Walks the due-time index in order; the index ends with the rowid, so ties come in insertion
/// order without a sort. A delivery with an ordering key is due only at the head of its group:
/// no row of the same rule, target and key was stored before it (rowids only grow, so a
/// smaller rowid is an earlier insert). Rows without a key never pay for the check.
const SELECT_DUE: &str = concat!(
    "SELECT rowid, ",
    delivery_columns!(),
    " FROM deliveries WHERE next_attempt_ms <= ?1 AND (ordering_key IS NULL OR NOT EXISTS \
     (SELECT 1 FROM deliveries AS earlier WHERE earlier.rule = deliveries.rule \
     AND earlier.target = deliveries.target AND earlier.ordering_key = deliveries.ordering_key \
     AND earlier.rowid < deliveries.rowid)) ORDER BY next_attempt_ms, rowid"
);
const SELECT_BY_ROWID: &str = concat!(
    "SELECT rowid, ",
    delivery_columns!(),
    " FROM deliveries WHERE rowid = ?1"
);
const MOVE_TO_CORRUPT: &str = concat!(
    "INSERT INTO corrupt_deliveries (original_rowid, ",
    delivery_columns!(),
    ", reason, quarantined_at_ms) SELECT rowid, ",
    delivery_columns!(),
    ", ?2, ?3 FROM deliveries WHERE rowid = ?1"
);
/// Rows whose columns have the wrong SQL type: what the open-time sweep moves aside.
const SELECT_MISTYPED: &str = "SELECT rowid FROM deliveries WHERE NOT (
    typeof(id) = 'text' AND typeof(rule) = 'text' AND typeof(target) = 'text'
    AND typeof(event_id) = 'text' AND typeof(event) = 'text' AND typeof(payload) = 'text'
    AND typeof(attempts) = 'integer' AND attempts BETWEEN 0 AND 4294967295
    AND typeof(first_seen_ms) = 'integer' AND typeof(next_attempt_ms) = 'integer'
    AND typeof(first_error) IN ('text', 'null') AND typeof(last_error) IN ('text', 'null')
    AND typeof(hops) = 'integer' AND hops BETWEEN 0 AND 4294967295
    AND typeof(ordering_key) IN ('text', 'null'))";

/// Opens a read-write connection with the store's pragmas, creating the database and its
/// schema when missing. Used by the writer and by the offline `redrive`.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let sql = |action| move |e| StoreError::sqlite(path, action, e);
    let mut conn = Connection::open(path).map_err(sql("opening"))?;
    configure(&conn).map_err(sql("setting pragmas"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sql("switching to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Still durable (rollback journal, synchronous=FULL), but readers now wait for writers.
        tracing::warn!(message = "The outbox database is not in WAL mode.", path = %path.display(), mode);
    }
    // In WAL mode, FULL also syncs the WAL at each commit: a committed batch survives a
    // power cut, not only a crash.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql("setting synchronous"))?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(sql("setting journal_size_limit"))?;
    ensure_schema(&mut conn, path)?;
    Ok(conn)
}

/// Opens the daemon's read connection (after [`open`] created the schema). `query_only` makes
/// sure every write goes through the writer thread.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let sql = |action| move |e| StoreError::sqlite(path, action, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql("opening for reading"))?;
    configure(&conn).map_err(sql("setting pragmas"))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(sql("setting query_only"))?;
    Ok(conn)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
}

/// Creates the schema in a new database, accepts the current one, upgrades an older one in
/// place (in one transaction), refuses a newer one.
pub(super) fn ensure_schema(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |action| move |e| StoreError::sqlite(path, action, e);
    let version = user_version(conn).map_err(sql("reading the schema version"))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    // IMMEDIATE, and read again inside: the daemon and the CLI may both be creating it.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("creating the schema"))?;
    let found = user_version(&tx).map_err(sql("reading the schema version"))?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if !(0..SCHEMA_VERSION).contains(&found) {
        return Err(StoreError::UnsupportedSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    // Each step brings the schema from the version before it; a new database takes them all.
    let steps = [SCHEMA_V1, SCHEMA_V2];
    for step in steps.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.execute_batch(step)
            .map_err(sql("upgrading the schema"))?;
    }
    tx.commit().map_err(sql("upgrading the schema"))?;
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Binds a delivery to [`INSERT_OR_IGNORE`] or [`INSERT_OR_REPLACE`].
pub(super) fn insert(conn: &Connection, statement: &str, d: &Delivery) -> rusqlite::Result<usize> {
    conn.prepare_cached(statement)?.execute(params![
        d.id,
        d.rule,
        d.target,
        d.event_id,
        d.event,
        d.payload,
        i64::from(d.attempts),
        d.first_seen_ms,
        d.next_attempt_ms,
        d.first_error,
        d.last_error,
        i64::from(d.hops),
        d.ordering_key,
    ])
}

/// The due deliveries (see [`super::Outbox::due`]), and the rowids of corrupt rows met on the
/// way, for the writer to move aside.
pub(super) fn due<'a>(
    conn: &Connection,
    path: &Path,
    now_ms: i64,
    limit: usize,
    in_flight: &HashSet<String>,
    fence: impl FnOnce() -> MutexGuard<'a, ()>,
) -> Result<(Vec<Delivery>, Vec<i64>), StoreError> {
    let sql = |e| StoreError::sqlite(path, "reading due deliveries", e);
    // One read transaction, whose snapshot is taken inside the fence: it sees no commit whose
    // deliveries are not yet handed over (see `handoff`). Dropped at the end, which ends it.
    let tx = conn.unchecked_transaction().map_err(sql)?;
    {
        let _fence = fence();
        tx.query_row(
            "SELECT count(*) FROM deliveries WHERE rowid = 0",
            [],
            |_| Ok(()),
        )
        .map_err(sql)?;
    }
    let mut stmt = tx.prepare_cached(SELECT_DUE).map_err(sql)?;
    let mut rows = stmt.query([now_ms]).map_err(sql)?;
    let mut due = Vec::new();
    let mut corrupt = Vec::new();
    while due.len() < limit {
        let Some(row) = rows.next().map_err(sql)? else {
            break;
        };
        // Look at the id alone first: in-flight rows are common and need no decoding.
        if let Ok(ValueRef::Text(id)) = row.get_ref(1)
            && std::str::from_utf8(id).is_ok_and(|id| in_flight.contains(id))
        {
            continue;
        }
        match decode(row) {
            Ok(d) => due.push(d),
            Err(_) => corrupt.push(row.get(0).map_err(sql)?),
        }
    }
    Ok((due, corrupt))
}

/// The earliest `next_attempt_ms`. SQLite orders numbers before text and blobs, so the first
/// row is a number whenever any is; a non-number first means none is, i.e. nothing can come
/// due. A fractional value is rounded down here and moved aside by `due`.
pub(super) fn next_due_ms(conn: &Connection, path: &Path) -> Result<Option<i64>, StoreError> {
    let sql = |e| StoreError::sqlite(path, "reading the next due time", e);
    let mut stmt = conn
        .prepare_cached("SELECT next_attempt_ms FROM deliveries ORDER BY next_attempt_ms LIMIT 1")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let Some(row) = rows.next().map_err(sql)? else {
        return Ok(None);
    };
    Ok(match row.get_ref(0).map_err(sql)? {
        ValueRef::Integer(ms) => Some(ms),
        // `as` saturates, which is the right reading of an absurd value.
        ValueRef::Real(ms) => Some(ms.floor() as i64),
        ValueRef::Null | ValueRef::Text(_) | ValueRef::Blob(_) => None,
    })
}

pub(super) fn stats(conn: &Connection, path: &Path) -> Result<Stats, StoreError> {
    let sql = |e| StoreError::sqlite(path, "reading statistics", e);
    conn.prepare_cached(
        "SELECT COUNT(*), MIN(CASE WHEN typeof(first_seen_ms) = 'integer' THEN first_seen_ms END) \
         FROM deliveries",
    )
    .map_err(sql)?
    .query_row([], |r| {
        Ok(Stats {
            pending: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            oldest_first_seen_ms: r.get(1)?,
        })
    })
    .map_err(sql)
}

pub(super) fn schedule_mark(
    conn: &Connection,
    path: &Path,
    rule: &str,
) -> Result<Option<i64>, StoreError> {
    let sql = |e| StoreError::sqlite(path, "reading a schedule mark", e);
    let mut stmt = conn
        .prepare_cached("SELECT last_fire_ms FROM schedule_marks WHERE rule = ?1")
        .map_err(sql)?;
    let value = stmt
        .query_row([rule], |r| Ok(mark_value(r.get_ref(0)?)))
        .optional()
        .map_err(sql)?;
    match value {
        None => Ok(None),
        Some(Ok(ms)) => Ok(Some(ms)),
        Some(Err(reason)) => Err(StoreError::Corrupt {
            id: format!("schedule mark {rule}"),
            reason,
        }),
    }
}

/// Every schedule mark; a corrupt one is logged and left out, so the scheduler treats that
/// rule as never fired (its catch-up policy then decides).
pub(super) fn schedule_marks(
    conn: &Connection,
    path: &Path,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let sql = |e| StoreError::sqlite(path, "reading schedule marks", e);
    let mut stmt = conn
        .prepare_cached("SELECT rule, last_fire_ms FROM schedule_marks")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut marks = BTreeMap::new();
    while let Some(row) = rows.next().map_err(sql)? {
        let rule = text(row, 0, "rule");
        let ms = mark_value(row.get_ref(1).map_err(sql)?);
        match (rule, ms) {
            (Ok(rule), Ok(ms)) => {
                marks.insert(rule, ms);
            }
            (rule, ms) => {
                let reason = [rule.err(), ms.err()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>();
                tracing::error!(message = "Corrupt schedule mark ignored.", reason = %reason.join("; "));
            }
        }
    }
    Ok(marks)
}

fn mark_value(v: ValueRef<'_>) -> Result<i64, String> {
    match v {
        ValueRef::Integer(ms) => Ok(ms),
        other => Err(format!(
            "last_fire_ms is {} rather than integer",
            sql_type(other)
        )),
    }
}

/// Moves rows with wrongly typed columns to `corrupt_deliveries`, in one transaction, and
/// returns how many. Run on the write connection before the writer starts.
pub(super) fn sweep(conn: &mut Connection, path: &Path) -> Result<u64, StoreError> {
    let sql = |e| StoreError::sqlite(path, "sweeping corrupt rows", e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let rowids = {
        let mut stmt = tx.prepare(SELECT_MISTYPED).map_err(sql)?;
        stmt.query_map([], |r| r.get::<_, i64>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sql)?
    };
    if rowids.is_empty() {
        return Ok(0);
    }
    let moved = quarantine(&tx, &rowids, chrono::Utc::now().timestamp_millis()).map_err(sql)?;
    tx.commit().map_err(sql)?;
    Ok(moved)
}

/// Moves the given rows to `corrupt_deliveries` if they still fail to decode (a row may have
/// changed since it was read), logging each. Returns how many moved.
pub(super) fn quarantine(conn: &Connection, rowids: &[i64], now_ms: i64) -> rusqlite::Result<u64> {
    let mut moved = 0;
    for &rowid in rowids {
        let failure = {
            let mut stmt = conn.prepare_cached(SELECT_BY_ROWID)?;
            let mut rows = stmt.query([rowid])?;
            match rows.next()? {
                None => None,
                Some(row) => decode(row).err().map(|reason| {
                    let id = match row.get_ref(1) {
                        Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                        _ => String::new(),
                    };
                    (id, reason)
                }),
            }
        };
        let Some((id, reason)) = failure else {
            continue;
        };
        conn.prepare_cached(MOVE_TO_CORRUPT)?
            .execute(params![rowid, reason, now_ms])?;
        conn.prepare_cached("DELETE FROM deliveries WHERE rowid = ?1")?
            .execute([rowid])?;
        tracing::error!(
            message = "Corrupt outbox row moved to corrupt_deliveries.",
            rowid,
            id = %id,
            %reason,
        );
        moved += 1;
    }
    Ok(moved)
}

/// A row (`rowid` first, then [`delivery_columns!`]) as a delivery, or why it is not one.
/// Strict: a column of another type is corruption, not something to convert.
pub(super) fn decode(row: &Row<'_>) -> Result<Delivery, String> {
    let attempts = integer(row, 7, "attempts")?;
    let hops = integer(row, 12, "hops")?;
    Ok(Delivery {
        id: text(row, 1, "id")?,
        rule: text(row, 2, "rule")?,
        target: text(row, 3, "target")?,
        event_id: text(row, 4, "event_id")?,
        event: text(row, 5, "event")?,
        payload: text(row, 6, "payload")?,
        attempts: u32::try_from(attempts)
            .map_err(|_| format!("attempts is {attempts}, out of range"))?,
        first_seen_ms: integer(row, 8, "first_seen_ms")?,
        next_attempt_ms: integer(row, 9, "next_attempt_ms")?,
        first_error: optional_text(row, 10, "first_error")?,
        last_error: optional_text(row, 11, "last_error")?,
        hops: u32::try_from(hops).map_err(|_| format!("hops is {hops}, out of range"))?,
        ordering_key: optional_text(row, 13, "ordering_key")?,
    })
}

/// A value's type as SQLite's `typeof()` names it, so a reason reads like the SQL that finds it.
fn sql_type(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "null",
        ValueRef::Integer(_) => "integer",
        ValueRef::Real(_) => "real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "blob",
    }
}

fn text(row: &Row<'_>, i: usize, name: &str) -> Result<String, String> {
    match row.get_ref(i).map_err(|e| format!("{name}: {e}"))? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| format!("{name} is not valid UTF-8")),
        other => Err(format!("{name} is {} rather than text", sql_type(other))),
    }
}

fn optional_text(row: &Row<'_>, i: usize, name: &str) -> Result<Option<String>, String> {
    match row.get_ref(i).map_err(|e| format!("{name}: {e}"))? {
        ValueRef::Null => Ok(None),
        _ => text(row, i, name).map(Some),
    }
}

fn integer(row: &Row<'_>, i: usize, name: &str) -> Result<i64, String> {
    match row.get_ref(i).map_err(|e| format!("{name}: {e}"))? {
        ValueRef::Integer(n) => Ok(n),
        other => Err(format!("{name} is {} rather than integer", sql_type(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        ensure_schema(&mut conn, Path::new(":memory:")).unwrap();
        conn
    }

    fn delivery(id: &str, next: i64) -> Delivery {
        Delivery {
            payload: "p".to_owned(),
            first_seen_ms: 1,
            ..Delivery::for_test(id, next)
        }
    }

    fn decode_all(conn: &Connection) -> Vec<Result<Delivery, String>> {
        let sql = concat!(
            "SELECT rowid, ",
            delivery_columns!(),
            " FROM deliveries ORDER BY rowid"
        );
        let mut stmt = conn.prepare(sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            out.push(decode(row));
        }
        out
    }

    #[test]
    fn schema_is_created_once_and_versioned() {
        let mut conn = memory();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        ensure_schema(&mut conn, Path::new(":memory:")).unwrap();
        conn.pragma_update(None, "user_version", 7).unwrap();
        let err = ensure_schema(&mut conn, Path::new(":memory:")).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::UnsupportedSchema {
                    found: 7,
                    supported: SCHEMA_VERSION
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn due_walks_the_index_without_sorting() {
        let conn = memory();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {SELECT_DUE}"))
            .unwrap()
            .query_map([0], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("deliveries_next_attempt"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn decode_round_trips_and_names_each_kind_of_corruption() {
        let conn = memory();
        let mut full = delivery("a", 5);
        full.attempts = u32::MAX;
        full.first_error = Some("first".to_owned());
        full.last_error = Some("last".to_owned());
        insert(&conn, INSERT_OR_IGNORE, &full).unwrap();
        for id in ["b", "c", "d", "e", "f"] {
            insert(&conn, INSERT_OR_IGNORE, &delivery(id, 5)).unwrap();
        }
        conn.execute_batch(
            "UPDATE deliveries SET attempts = 'many' WHERE id = 'b';
             UPDATE deliveries SET event = CAST(X'FF00' AS TEXT) WHERE id = 'c';
             UPDATE deliveries SET attempts = -1 WHERE id = 'd';
             UPDATE deliveries SET payload = X'00' WHERE id = 'e';
             UPDATE deliveries SET first_error = X'01' WHERE id = 'f';",
        )
        .unwrap();
        let got = decode_all(&conn);
        assert_eq!(got[0], Ok(full));
        assert_eq!(
            got[1],
            Err("attempts is text rather than integer".to_owned())
        );
        assert_eq!(got[2], Err("event is not valid UTF-8".to_owned()));
        assert_eq!(got[3], Err("attempts is -1, out of range".to_owned()));
        assert_eq!(got[4], Err("payload is blob rather than text".to_owned()));
        assert_eq!(
            got[5],
            Err("first_error is blob rather than text".to_owned())
        );
    }

    #[test]
    fn the_sweep_finds_mistyped_rows_but_not_good_ones() {
        let mut conn = memory();
        for id in ["good", "text-due", "real-due", "bad-utf8"] {
            insert(&conn, INSERT_OR_IGNORE, &delivery(id, 5)).unwrap();
        }
        conn.execute_batch(
            "UPDATE deliveries SET next_attempt_ms = 'soon' WHERE id = 'text-due';
             UPDATE deliveries SET next_attempt_ms = 1.5 WHERE id = 'real-due';
             UPDATE deliveries SET event = CAST(X'FF' AS TEXT) WHERE id = 'bad-utf8';",
        )
        .unwrap();
        assert_eq!(sweep(&mut conn, Path::new(":memory:")).unwrap(), 2);
        let left: Vec<String> = conn
            .prepare("SELECT id FROM deliveries ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // Invalid UTF-8 is still of type text: `due` catches it, not the sweep.
        assert_eq!(left, ["bad-utf8", "good"]);
        let (kept, reason): (String, String) = conn
            .query_row(
                "SELECT next_attempt_ms, reason FROM corrupt_deliveries WHERE id = 'text-due'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, "soon");
        assert_eq!(reason, "next_attempt_ms is text rather than integer");
    }

    #[test]
    fn next_due_ignores_values_that_are_not_numbers() {
        let conn = memory();
        assert_eq!(next_due_ms(&conn, Path::new("")).unwrap(), None);
        insert(&conn, INSERT_OR_IGNORE, &delivery("text", 5)).unwrap();
        conn.execute("UPDATE deliveries SET next_attempt_ms = 'x'", [])
            .unwrap();
        assert_eq!(next_due_ms(&conn, Path::new("")).unwrap(), None);
        insert(&conn, INSERT_OR_IGNORE, &delivery("late", 9)).unwrap();
        assert_eq!(next_due_ms(&conn, Path::new("")).unwrap(), Some(9));
        insert(&conn, INSERT_OR_IGNORE, &delivery("real", 0)).unwrap();
        conn.execute(
            "UPDATE deliveries SET next_attempt_ms = 2.5 WHERE id = 'real'",
            [],
        )
        .unwrap();
        assert_eq!(next_due_ms(&conn, Path::new("")).unwrap(), Some(2));
    }
}
