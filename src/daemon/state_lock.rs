//! One daemon per state directory: an advisory lock on `STATE_DIR/lock`, held for the
//! daemon's life, so that a second `trigd run` on the same directory refuses to start rather
//! than share the outbox (two dispatchers would deliver every stored delivery twice).
//!
//! The lock is the operating system's (`flock` on Unix, through `std::fs::File::try_lock`):
//! it is released when the process ends, however it ends, so a crash leaves no stale lock.
//! The file holds the pid of the holder, for the message the second instance prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "another trigd ({holder}) already runs on the state directory {dir}; stop it, or give \
         this one its own --state-dir"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct StateLock {
    /// Kept open: closing the file releases the lock.
    _file: File,
}

impl StateLock {
    /// Takes the lock on `state_dir` (created if missing) without waiting, and writes this
    /// process's pid into the lock file.
    pub fn acquire(state_dir: &Path) -> Result<StateLock, LockError> {
        let path = state_dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        // Not truncated on open: the holder's pid must survive until we hold the lock.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // A holder that has not written its pid yet still holds the lock.
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "pid unknown".to_owned(),
                };
                return Err(LockError::Held {
                    dir: state_dir.to_owned(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = StateLock::acquire(&state).unwrap();
        let written = std::fs::read_to_string(state.join("lock")).unwrap();
        assert_eq!(written.trim(), std::process::id().to_string());
        match StateLock::acquire(&state) {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder, format!("pid {}", std::process::id()));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        drop(first);
        StateLock::acquire(&state).unwrap();
    }
}
