//! The event archive: every accepted event (or those an optional pattern selects), one JSON
//! line each, in rotating size-bounded files under `STATE_DIR/archive/`, pruned by total size
//! and age, like EventBridge's archives. `trigd archive export` writes a time range out as one
//! JSONL file that `trigd match --events` and `trigd diff` read.
//!
//! The archive is best effort, outside the delivery promise: a writer thread fed by a bounded
//! channel; when it falls behind, events are not archived (and counted), ingest never waits.
//! Only events are archived: request headers, and so secrets in them, never are.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::pattern::{Matcher, ValidJson};

pub use crate::rules::ArchiveConfig;

/// Why archiving or exporting failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot use {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The archive directory under a state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("archive")
}

/// The handle the daemon holds: cheap to call per event.
pub struct Archive {
    tx: Option<SyncSender<String>>,
    dropped: Arc<AtomicU64>,
    writer: Option<JoinHandle<()>>,
    filter: Option<Matcher>,
}

impl Archive {
    /// Starts the writer thread.
    pub fn open(state_dir: &Path, config: ArchiveConfig) -> Result<Archive, ArchiveError> {
        let dir = dir(state_dir);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let filter = config.pattern.as_ref().map(|p| Matcher::new([p]));
        let (tx, rx) = mpsc::sync_channel(8192);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = std::thread::Builder::new()
            .name("trigd-archive".to_owned())
            .spawn(move || write_loop(&dir, &config, &rx))
            .map_err(io(state_dir))?;
        Ok(Archive {
            tx: Some(tx),
            dropped,
            writer: Some(writer),
            filter,
        })
    }

    /// Archives one accepted event, if it passes the filter.
    pub fn record(&self, event_text: &ValidJson) {
        if let Some(m) = &self.filter {
            let mut scratch = m.scratch();
            let mut out = Vec::new();
            if m.matches_valid(event_text, &mut scratch, &mut out).is_err() || out.is_empty() {
                return;
            }
        }
        if let Some(tx) = &self.tx
            && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                tx.try_send(event_text.as_str().to_owned())
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Flushes what is queued and stops the writer.
    pub fn close(&mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer: appends lines, rotates, prunes, flushes when idle.
fn write_loop(dir: &Path, config: &ArchiveConfig, rx: &Receiver<String>) {
    let mut current: Option<(BufWriter<File>, u64)> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                if current
                    .as_ref()
                    .is_none_or(|(_, size)| *size >= config.max_file_bytes)
                {
                    if let Some((mut w, _)) = current.take() {
                        let _ = w.flush();
                    }
                    current = new_file(dir);
                    prune(dir, config, Utc::now());
                }
                if let Some((w, size)) = current.as_mut()
                    && writeln!(w, "{line}").is_ok()
                {
                    *size += line.len() as u64 + 1;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some((w, _)) = current.as_mut() {
                    let _ = w.flush();
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                if let Some((mut w, _)) = current.take() {
                    let _ = w.flush();
                }
                return;
            }
        }
    }
}

/// Files are named by the time they were started, so names sort in time order.
fn new_file(dir: &Path) -> Option<(BufWriter<File>, u64)> {
    let name = format!("events-{}.jsonl", Utc::now().format("%Y%m%dT%H%M%S%.6fZ"));
    let path = dir.join(name);
    match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(f) => Some((BufWriter::new(f), 0)),
        Err(e) => {
            tracing::error!(message = "Cannot start an archive file.", path = %path.display(), error = %e);
            None
        }
    }
}

/// The archive's files, oldest first.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("events-") && n.ends_with(".jsonl"))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(dir)(e)),
    };
    out.sort();
    Ok(out)
}

/// Deletes the oldest files past the total size, and files older than the retention (by their
/// modification time, i.e. their newest event). The newest file is never deleted.
pub fn prune(dir: &Path, config: &ArchiveConfig, now: DateTime<Utc>) {
    let Ok(list) = files(dir) else { return };
    let sized: Vec<(PathBuf, u64, Option<std::time::SystemTime>)> = list
        .into_iter()
        .filter_map(|p| {
            let m = fs::metadata(&p).ok()?;
            Some((p, m.len(), m.modified().ok()))
        })
        .collect();
    let mut total: u64 = sized.iter().map(|(_, s, _)| s).sum();
    let cutoff = std::time::SystemTime::from(now) - config.retention;
    let keep_last = sized.len().saturating_sub(1);
    for (i, (path, size, modified)) in sized.iter().enumerate() {
        if i >= keep_last {
            break;
        }
        let too_old = modified.is_some_and(|m| m < cutoff);
        if (total > config.max_total_bytes || too_old) && fs::remove_file(path).is_ok() {
            total = total.saturating_sub(*size);
        }
    }
}

/// Writes the archived events whose `time` is within `[since, until)` to `out`, in archive
/// order. Returns how many were written. Lines that are not events with a `time` are skipped.
pub fn export(
    state_dir: &Path,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    out: &mut impl Write,
) -> Result<u64, ArchiveError> {
    let dir = dir(state_dir);
    let mut n = 0;
    for path in files(&dir)? {
        let f = File::open(&path).map_err(io(&path))?;
        for line in BufReader::new(f).lines() {
            let line = line.map_err(io(&path))?;
            let Some(t) = event_time(&line) else { continue };
            if since.is_some_and(|s| t < s) || until.is_some_and(|u| t >= u) {
                continue;
            }
            writeln!(out, "{line}").map_err(io(&path))?;
            n += 1;
        }
    }
    out.flush().map_err(io(&dir))?;
    Ok(n)
}

fn event_time(line: &str) -> Option<DateTime<Utc>> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let t = v.get("time")?.as_str()?;
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32, time: &str) -> ValidJson {
        ValidJson::of(
            &serde_json::json!({"id": format!("e{n}"), "source": "s", "time": time, "detail": {"n": n}}),
        )
    }

    #[test]
    fn records_rotates_and_exports_a_time_range() {
        let dir = tempfile::tempdir().unwrap();
        let config = ArchiveConfig {
            max_file_bytes: 300,
            ..ArchiveConfig::default()
        };
        let mut a = Archive::open(dir.path(), config).unwrap();
        for n in 0..20 {
            a.record(&event(n, &format!("2026-11-23T10:{n:02}:00Z")));
        }
        a.close();
        let list = files(&super::dir(dir.path())).unwrap();
        assert!(list.len() > 3, "rotated into several files: {list:?}");
        let mut out = Vec::new();
        let since = DateTime::parse_from_rfc3339("2026-11-23T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let until = DateTime::parse_from_rfc3339("2026-11-23T10:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            export(dir.path(), Some(since), Some(until), &mut out).unwrap(),
            5
        );
        let text = String::from_utf8(out).unwrap();
        let ns: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["detail"]["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ns, vec![5, 6, 7, 8, 9], "in order, within the range");
        let mut all = Vec::new();
        assert_eq!(export(dir.path(), None, None, &mut all).unwrap(), 20);
    }

    #[test]
    fn a_pattern_selects_what_is_archived() {
        let dir = tempfile::tempdir().unwrap();
        let pattern =
            crate::pattern::parse(&serde_json::json!({"detail": {"n": [{"numeric": [">=", 18]}]}}))
                .unwrap();
        let mut a = Archive::open(
            dir.path(),
            ArchiveConfig {
                pattern: Some(pattern),
                ..ArchiveConfig::default()
            },
        )
        .unwrap();
        for n in 0..20 {
            a.record(&event(n, "2026-11-23T10:00:00Z"));
        }
        a.close();
        let mut out = Vec::new();
        assert_eq!(export(dir.path(), None, None, &mut out).unwrap(), 2);
    }

    #[test]
    fn pruning_keeps_the_total_bounded_and_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = super::dir(dir.path());
        fs::create_dir_all(&d).unwrap();
        for i in 0..5 {
            fs::write(
                d.join(format!("events-2026112{i}T000000Z.jsonl")),
                "x".repeat(100),
            )
            .unwrap();
        }
        let config = ArchiveConfig {
            max_total_bytes: 250,
            ..ArchiveConfig::default()
        };
        prune(&d, &config, Utc::now());
        let left = files(&d).unwrap();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left[1].ends_with("events-20261124T000000Z.jsonl"));
        // Retention: everything but the newest is older than a zero retention.
        let config = ArchiveConfig {
            retention: Duration::ZERO,
            ..ArchiveConfig::default()
        };
        prune(&d, &config, Utc::now() + chrono::Duration::seconds(5));
        assert_eq!(files(&d).unwrap().len(), 1);
    }
}
