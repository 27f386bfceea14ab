//! Dead letters: the versioned JSON record of a delivery that could not succeed, its atomic
//! file under `dead-letters/`, and the offline functions behind `trigd dlq` (list, read,
//! redrive), which work on a state directory whether or not the daemon runs.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat};
use rusqlite::TransactionBehavior;
use serde_json::{Map, Value};

use super::{StoreError, db, db_path, dead_letter_dir, valid_id};
use crate::delivery::Delivery;
use crate::targets::ErrorCode;

/// The `version` every dead-letter file carries; readers refuse others rather than guess.
pub(super) const DEAD_LETTER_VERSION: u64 = 1;

/// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the instants RFC 3339 can write.
const RFC3339_MIN_MS: i64 = -62_167_219_200_000;
const RFC3339_MAX_MS: i64 = 253_402_300_799_999;

/// Why a delivery is being dead-lettered, from the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterInfo {
    /// EventBridge's `ERROR_CODE` for the failure.
    pub code: ErrorCode,
    /// The final error; it becomes the record's `last_error`.
    pub error: String,
    /// Which retry limit ran out, or `None` when the failure was permanent.
    pub exhausted: Option<Exhausted>,
    /// When it was dead-lettered (Unix ms): the record's `dead_lettered_at`.
    pub at_ms: i64,
}

/// Which retry limit ran out, by EventBridge's `EXHAUSTED_RETRY_CONDITION` names: the
/// retry policy's own type, so the dispatcher hands over what the policy decided.
pub use crate::delivery::policy::Exhausted;

/// Reads [`Exhausted::as_str`] back.
fn parse_exhausted(s: &str) -> Option<Exhausted> {
    [
        Exhausted::MaximumRetryAttempts,
        Exhausted::MaximumEventAgeInSeconds,
    ]
    .into_iter()
    .find(|e| e.as_str() == s)
}

/// Every [`ErrorCode`], to read `error_code` back (the tests check the list is complete).
const ERROR_CODES: [ErrorCode; 7] = [
    ErrorCode::NoResource,
    ErrorCode::NoPermissions,
    ErrorCode::InvalidParameter,
    ErrorCode::Throttling,
    ErrorCode::Timeout,
    ErrorCode::TargetError,
    ErrorCode::Network,
];

fn parse_error_code(s: &str) -> Option<ErrorCode> {
    ERROR_CODES.into_iter().find(|c| c.as_str() == s)
}

/// One dead letter, as its file holds it. The file is JSON with `"version": 1` and the fields
/// `id`, `rule`, `target`, `event_id`, `event`, `payload`, `attempts`, `first_seen`,
/// `dead_lettered_at` (RFC 3339, milliseconds, UTC), `error_code`, `first_error`, `last_error`
/// and `exhausted_retry_condition`, in that order, then `hops` when the delivery came from a
/// destination (absent means 0). Written and read by hand (no serde derive),
/// so that the format only changes on purpose.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRecord {
    pub id: String,
    pub rule: String,
    pub target: String,
    pub event_id: String,
    /// The event as a JSON object when its stored text parses as one (easier to read and to
    /// query with `jq`), else the stored text as a string. [`DeadLetterRecord::event_text`]
    /// gives the text back for redrive.
    pub event: Value,
    /// The exact text the target was sent.
    pub payload: String,
    /// Attempts made, the last one included.
    pub attempts: u32,
    pub first_seen_ms: i64,
    pub dead_lettered_at_ms: i64,
    pub error_code: ErrorCode,
    pub first_error: Option<String>,
    pub last_error: Option<String>,
    pub exhausted: Option<Exhausted>,
    /// See [`Delivery::hops`]: kept so that a redriven destination does not restart its chain.
    pub hops: u32,
}

impl DeadLetterRecord {
    /// The record of `delivery` failing for good: `info.error` is the last error, and the
    /// first one too when the delivery had none (it failed on its first attempt).
    pub fn new(delivery: &Delivery, info: &DeadLetterInfo) -> DeadLetterRecord {
        let event = match serde_json::from_str::<Value>(&delivery.event) {
            Ok(object @ Value::Object(_)) => object,
            _ => Value::String(delivery.event.clone()),
        };
        DeadLetterRecord {
            id: delivery.id.clone(),
            rule: delivery.rule.clone(),
            target: delivery.target.clone(),
            event_id: delivery.event_id.clone(),
            event,
            payload: delivery.payload.clone(),
            attempts: delivery.attempts,
            first_seen_ms: delivery.first_seen_ms,
            dead_lettered_at_ms: info.at_ms,
            error_code: info.code,
            first_error: Some(
                delivery
                    .first_error
                    .clone()
                    .unwrap_or_else(|| info.error.clone()),
            ),
            last_error: Some(info.error.clone()),
            exhausted: info.exhausted,
            hops: delivery.hops,
        }
    }

    /// The event's text: the string itself, or the object as compact JSON (key order kept;
    /// semantically the event that was stored, though not necessarily byte for byte).
    pub fn event_text(&self) -> String {
        match &self.event {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }

    /// The delivery a redrive puts back: a fresh start at `now_ms` (no attempts, no errors,
    /// first seen now so that `max_event_age` counts from the redrive).
    pub fn to_delivery(&self, now_ms: i64) -> Delivery {
        Delivery {
            id: self.id.clone(),
            rule: self.rule.clone(),
            target: self.target.clone(),
            event_id: self.event_id.clone(),
            event: self.event_text(),
            payload: self.payload.clone(),
            attempts: 0,
            first_seen_ms: now_ms,
            next_attempt_ms: now_ms,
            first_error: None,
            last_error: None,
            hops: self.hops,
            ordering_key: None,
        }
    }

    /// The file's JSON. A timestamp RFC 3339 cannot write (outside the years 0000 to 9999,
    /// which no clock produces) is clamped to the nearest one it can, rather than failing the
    /// dead letter.
    pub fn to_json(&self) -> Value {
        let time = |ms: i64| {
            let t = DateTime::from_timestamp_millis(ms.clamp(RFC3339_MIN_MS, RFC3339_MAX_MS))
                .unwrap_or(DateTime::UNIX_EPOCH);
            Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
        };
        let optional = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
        let mut m = Map::new();
        m.insert("version".into(), DEAD_LETTER_VERSION.into());
        m.insert("id".into(), self.id.clone().into());
        m.insert("rule".into(), self.rule.clone().into());
        m.insert("target".into(), self.target.clone().into());
        m.insert("event_id".into(), self.event_id.clone().into());
        m.insert("event".into(), self.event.clone());
        m.insert("payload".into(), self.payload.clone().into());
        m.insert("attempts".into(), self.attempts.into());
        m.insert("first_seen".into(), time(self.first_seen_ms));
        m.insert("dead_lettered_at".into(), time(self.dead_lettered_at_ms));
        m.insert("error_code".into(), self.error_code.as_str().into());
        m.insert("first_error".into(), optional(&self.first_error));
        m.insert("last_error".into(), optional(&self.last_error));
        m.insert(
            "exhausted_retry_condition".into(),
            self.exhausted.map_or(Value::Null, |e| e.as_str().into()),
        );
        if self.hops > 0 {
            m.insert("hops".into(), self.hops.into());
        }
        Value::Object(m)
    }

    /// Reads a file's JSON. `id` names the record in errors (the file name's id, since the
    /// JSON may not have a usable one).
    pub fn from_json(id: &str, v: &Value) -> Result<DeadLetterRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: id.to_owned(),
            reason,
        };
        let Some(m) = v.as_object() else {
            return Err(corrupt("not a JSON object".to_owned()));
        };
        let field = |name: &str| {
            m.get(name)
                .ok_or_else(|| corrupt(format!("`{name}` is missing")))
        };
        let string = |name: &str| {
            field(name)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| corrupt(format!("`{name}` is not a string")))
        };
        let optional = |name: &str| match m.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(corrupt(format!("`{name}` is neither a string nor null"))),
        };
        let time = |name: &str| {
            let text = string(name)?;
            DateTime::parse_from_rfc3339(&text)
                .map(|t| t.timestamp_millis())
                .map_err(|e| corrupt(format!("`{name}` is not an RFC 3339 time: {e}")))
        };
        let version = field("version")?;
        if version.as_u64() != Some(DEAD_LETTER_VERSION) {
            return Err(corrupt(format!(
                "`version` is {version}, expected {DEAD_LETTER_VERSION}"
            )));
        }
        let attempts = field("attempts")?
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| corrupt("`attempts` is not a count".to_owned()))?;
        let hops = match m.get("hops") {
            None => 0,
            Some(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| corrupt("`hops` is not a count".to_owned()))?,
        };
        let code = string("error_code")?;
        let error_code = parse_error_code(&code)
            .ok_or_else(|| corrupt(format!("`error_code` `{code}` is not a known code")))?;
        let exhausted = match optional("exhausted_retry_condition")? {
            None => None,
            Some(name) => Some(parse_exhausted(&name).ok_or_else(|| {
                corrupt(format!(
                    "`exhausted_retry_condition` `{name}` is not a known condition"
                ))
            })?),
        };
        Ok(DeadLetterRecord {
            id: string("id")?,
            rule: string("rule")?,
            target: string("target")?,
            event_id: string("event_id")?,
            event: field("event")?.clone(),
            payload: string("payload")?,
            attempts,
            first_seen_ms: time("first_seen")?,
            dead_lettered_at_ms: time("dead_lettered_at")?,
            error_code,
            first_error: optional("first_error")?,
            last_error: optional("last_error")?,
            exhausted,
            hops,
        })
    }
}

/// Makes each temporary file name unique within the process (with the pid, across processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `record` to `dir/<id>.json` atomically and durably: a temporary file (named with a
/// leading `.`, which readers skip), fsync, rename over the final name, fsync of the
/// directory so the rename itself survives a power cut.
pub(super) fn write_file(dir: &Path, record: &DeadLetterRecord) -> Result<PathBuf, StoreError> {
    // A `Value` always serializes; the fallback only keeps this free of `unwrap`.
    let mut text = serde_json::to_string_pretty(&record.to_json())
        .unwrap_or_else(|_| record.to_json().to_string());
    text.push('\n');
    let path = dir.join(format!("{}.json", record.id));
    let temp = dir.join(format!(
        ".{}.{}-{}.tmp",
        record.id,
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(StoreError::io(&temp, e));
    }
    if let Err(e) = fs::rename(&temp, &path) {
        let _ = fs::remove_file(&temp);
        return Err(StoreError::io(&path, e));
    }
    sync_dir(dir)?;
    Ok(path)
}

/// fsyncs a directory, so that the files created, renamed or removed in it stay so.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Every readable dead letter in `state_dir`, oldest dead-lettered first (ties by id). A file
/// that cannot be read or parsed is logged (`tracing::error!`) and left out, so one damaged
/// file does not hide the others; [`read_dead_letter`] reports it as an error.
pub fn list_dead_letters(state_dir: &Path) -> Result<Vec<DeadLetterRecord>, StoreError> {
    Ok(scan(state_dir)?.into_iter().map(|(_, r)| r).collect())
}

/// The dead letter with id `id`.
pub fn read_dead_letter(state_dir: &Path, id: &str) -> Result<DeadLetterRecord, StoreError> {
    read_one(&dead_letter_dir(state_dir), id).map(|(_, r)| r)
}

/// Puts dead letters back into the outbox as fresh deliveries (attempts 0, errors cleared,
/// first seen and next attempt `now_ms`, so `max_event_age` counts from now), then deletes
/// their files. `ids` empty means every readable dead letter; otherwise every id must have a
/// readable file, or nothing is redriven. Works while the daemon runs: one short transaction
/// on its own connection, which waits for the daemon's writer if needed (`busy_timeout`).
/// A copy of the same delivery still in the outbox is replaced by the fresh one. A crash
/// after the commit and before the files are gone leaves both: a second redrive merely
/// resets the delivery again. Returns how many were redriven.
pub fn redrive(state_dir: &Path, ids: &[String], now_ms: i64) -> Result<usize, StoreError> {
    let dir = dead_letter_dir(state_dir);
    let chosen = if ids.is_empty() {
        scan(state_dir)?
    } else {
        let mut seen = HashSet::new();
        ids.iter()
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| read_one(&dir, id))
            .collect::<Result<Vec<_>, _>>()?
    };
    if chosen.is_empty() {
        return Ok(0);
    }
    let path = db_path(state_dir);
    let sql = |action| {
        let path = &path;
        move |e| StoreError::sqlite(path, action, e)
    };
    let mut conn = db::open(&path)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("beginning a redrive"))?;
    for (_, record) in &chosen {
        db::insert(&tx, db::INSERT_OR_REPLACE, &record.to_delivery(now_ms))
            .map_err(sql("redriving"))?;
    }
    tx.commit().map_err(sql("committing a redrive"))?;
    drop(conn);
    for (file, _) in &chosen {
        match fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(file, e)),
        }
    }
    sync_dir(&dir)?;
    Ok(chosen.len())
}

/// Every readable dead letter with its file, sorted; unreadable ones are logged and skipped.
fn scan(state_dir: &Path) -> Result<Vec<(PathBuf, DeadLetterRecord)>, StoreError> {
    let dir = dead_letter_dir(state_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        // No directory: the daemon never ran here, so there are no dead letters.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(&dir, e)),
    };
    let mut records = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if name.to_str().is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        match read_one(&dir, id) {
            Ok(found) => records.push(found),
            Err(error) => {
                tracing::error!(message = "Dead-letter file skipped.", file = %entry.path().display(), %error);
            }
        }
    }
    records.sort_by(|(_, a), (_, b)| {
        (a.dead_lettered_at_ms, &a.id).cmp(&(b.dead_lettered_at_ms, &b.id))
    });
    Ok(records)
}

fn read_one(dir: &Path, id: &str) -> Result<(PathBuf, DeadLetterRecord), StoreError> {
    if !valid_id(id) {
        return Err(StoreError::InvalidId { id: id.to_owned() });
    }
    let path = dir.join(format!("{id}.json"));
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::NoSuchDeadLetter { id: id.to_owned() });
        }
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        reason: format!("not JSON: {e}"),
    })?;
    let record = DeadLetterRecord::from_json(id, &value)?;
    if record.id != id {
        return Err(StoreError::Corrupt {
            id: id.to_owned(),
            reason: format!("the file holds dead letter `{}`", record.id),
        });
    }
    Ok((path, record))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            id: "d-1".to_owned(),
            rule: "orders".to_owned(),
            target: "hook".to_owned(),
            event_id: "e-1".to_owned(),
            event: r#"{"source":"shop","detail":{"n":1}}"#.to_owned(),
            payload: "exact text".to_owned(),
            attempts: 3,
            first_seen_ms: 1_700_000_000_123,
            next_attempt_ms: 1_700_000_100_000,
            first_error: Some("503 first".to_owned()),
            last_error: Some("503 second".to_owned()),
            hops: 0,
            ordering_key: None,
        }
    }

    fn info() -> DeadLetterInfo {
        DeadLetterInfo {
            code: ErrorCode::TargetError,
            error: "503 third".to_owned(),
            exhausted: Some(Exhausted::MaximumRetryAttempts),
            at_ms: 1_700_000_200_456,
        }
    }

    #[test]
    fn the_file_format_field_by_field() {
        let record = DeadLetterRecord::new(&delivery(), &info());
        let v = record.to_json();
        assert_eq!(
            v,
            json!({
                "version": 1,
                "id": "d-1",
                "rule": "orders",
                "target": "hook",
                "event_id": "e-1",
                "event": {"source": "shop", "detail": {"n": 1}},
                "payload": "exact text",
                "attempts": 3,
                "first_seen": "2023-11-14T22:13:20.123Z",
                "dead_lettered_at": "2023-11-14T22:16:40.456Z",
                "error_code": "TARGET_ERROR",
                "first_error": "503 first",
                "last_error": "503 third",
                "exhausted_retry_condition": "MaximumRetryAttempts",
            })
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "version");
        assert_eq!(DeadLetterRecord::from_json("d-1", &v).unwrap(), record);
    }

    #[test]
    fn a_first_failure_is_both_first_and_last_error() {
        let mut d = delivery();
        d.first_error = None;
        d.last_error = None;
        let mut i = info();
        i.exhausted = None;
        let record = DeadLetterRecord::new(&d, &i);
        assert_eq!(record.first_error.as_deref(), Some("503 third"));
        assert_eq!(record.last_error.as_deref(), Some("503 third"));
        let v = record.to_json();
        assert_eq!(v["exhausted_retry_condition"], Value::Null);
        assert_eq!(DeadLetterRecord::from_json("d-1", &v).unwrap(), record);
    }

    #[test]
    fn events_that_are_not_objects_stay_text() {
        for text in ["not json", "[1,2]", "\"s\"", "{\"a\":"] {
            let mut d = delivery();
            d.event = text.to_owned();
            let record = DeadLetterRecord::new(&d, &info());
            assert_eq!(record.event, Value::String(text.to_owned()));
            assert_eq!(record.event_text(), text);
        }
        let record = DeadLetterRecord::new(&delivery(), &info());
        assert_eq!(record.event_text(), delivery().event);
    }

    #[test]
    fn redrive_starts_afresh() {
        let record = DeadLetterRecord::new(&delivery(), &info());
        let d = record.to_delivery(42);
        assert_eq!(
            d,
            Delivery {
                attempts: 0,
                first_seen_ms: 42,
                next_attempt_ms: 42,
                first_error: None,
                last_error: None,
                ..delivery()
            }
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let good = DeadLetterRecord::new(&delivery(), &info()).to_json();
        let with = |key: &str, value: Value| {
            let mut v = good.clone();
            v[key] = value;
            v
        };
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("rule");
        let cases = [
            (json!([]), "not a JSON object"),
            (with("version", json!(2)), "`version` is 2, expected 1"),
            (missing, "`rule` is missing"),
            (with("attempts", json!(-1)), "`attempts` is not a count"),
            (
                with("attempts", json!(5_000_000_000u64)),
                "`attempts` is not a count",
            ),
            (
                with("error_code", json!("OOPS")),
                "`error_code` `OOPS` is not a known code",
            ),
            (
                with("first_seen", json!("yesterday")),
                "`first_seen` is not an RFC 3339 time",
            ),
            (
                with("last_error", json!(3)),
                "`last_error` is neither a string nor null",
            ),
            (
                with("exhausted_retry_condition", json!("Tired")),
                "`exhausted_retry_condition` `Tired` is not a known condition",
            ),
        ];
        for (v, expected) in cases {
            let err = DeadLetterRecord::from_json("d-1", &v).unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt { id, reason } if id == "d-1" && reason.starts_with(expected)),
                "{err} (expected {expected})"
            );
        }
    }

    #[test]
    fn out_of_range_times_are_clamped_not_a_panic() {
        let mut d = delivery();
        d.first_seen_ms = i64::MAX;
        let mut i = info();
        i.at_ms = i64::MIN;
        let v = DeadLetterRecord::new(&d, &i).to_json();
        assert_eq!(v["first_seen"], "9999-12-31T23:59:59.999Z");
        assert_eq!(v["dead_lettered_at"], "0000-01-01T00:00:00.000Z");
        let back = DeadLetterRecord::from_json("d-1", &v).unwrap();
        assert_eq!(back.first_seen_ms, RFC3339_MAX_MS);
        assert_eq!(back.dead_lettered_at_ms, RFC3339_MIN_MS);
    }

    #[test]
    fn every_error_code_and_condition_reads_back() {
        // Exhaustive on purpose: a new variant fails to compile here until ERROR_CODES has it.
        fn listed(code: ErrorCode) -> bool {
            match code {
                ErrorCode::NoResource
                | ErrorCode::NoPermissions
                | ErrorCode::InvalidParameter
                | ErrorCode::Throttling
                | ErrorCode::Timeout
                | ErrorCode::TargetError
                | ErrorCode::Network => ERROR_CODES.contains(&code),
            }
        }
        for code in ERROR_CODES {
            assert!(listed(code));
            assert_eq!(parse_error_code(code.as_str()), Some(code));
        }
        assert_eq!(
            parse_error_code("SDK_CLIENT_ERROR"),
            Some(ErrorCode::Network)
        );
        for e in [
            Exhausted::MaximumRetryAttempts,
            Exhausted::MaximumEventAgeInSeconds,
        ] {
            // Exhaustive too, for the same reason.
            match e {
                Exhausted::MaximumRetryAttempts | Exhausted::MaximumEventAgeInSeconds => {}
            }
            assert_eq!(parse_exhausted(e.as_str()), Some(e));
        }
        assert_eq!(parse_exhausted("maximumretryattempts"), None);
    }
}
