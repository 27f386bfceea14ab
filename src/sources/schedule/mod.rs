//! The scheduler core the daemon runs: a task that sleeps until the earliest pending fire of a
//! set of schedules, emits it, and computes that schedule's next fire.
//!
//! - [`FireQueue`] holds the next fire of every schedule in a min-heap; building it for a large
//!   set (e.g. 100,000 schedules) is one `next_after` per schedule.
//! - [`Timer::run`] sleeps with `tokio::time::sleep_until` until the earliest fire (it never
//!   polls), sends [`Fire`]s on a bounded channel, and wakes early only for a reload or shutdown.
//! - [`TimerHandle::reload`] replaces the whole set of schedules atomically.
//! - [`TimeBase`] maps wall-clock UTC to the tokio clock, so tests drive the timer with
//!   `tokio::time::pause()` / `advance()`.
//!
//! Missed fires are not replayed: when a schedule is due, it emits one fire for its scheduled
//! instant and its next fire is computed from `max(scheduled, now)`, so the fires of a schedule
//! that fell due while the task was held up (a full channel, a suspended host) are coalesced into
//! one late fire, like AWS does not replay missed invocations either.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::schedule::ScheduleExpr;

/// One schedule run by the timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleEntry {
    /// Caller-chosen identifier, echoed in every [`Fire`]; unique within a set.
    pub id: u64,
    /// When it fires.
    pub expr: ScheduleExpr,
    /// Time zone for cron and at expressions.
    pub tz: Tz,
    /// Start of a rate's intervals (see [`ScheduleExpr::next_after`]).
    pub anchor: DateTime<Utc>,
}

impl ScheduleEntry {
    /// The first fire strictly after `after`.
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expr.next_after(after, self.tz, self.anchor)
    }
}

/// A due fire: schedule `id` at its `scheduled` instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fire {
    /// The schedule's [`ScheduleEntry::id`].
    pub id: u64,
    /// The instant the fire was scheduled for (not when it was emitted).
    pub scheduled: DateTime<Utc>,
}

/// A fixed correspondence between a tokio [`Instant`] and a UTC time, used to convert in both
/// directions. Under paused tokio time, UTC advances with the virtual clock.
///
/// The mapping does not follow later wall-clock adjustments (NTP steps); create a new base, e.g.
/// on restart, to resynchronise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBase {
    instant: Instant,
    utc: DateTime<Utc>,
}

impl TimeBase {
    /// Pairs the tokio clock's now with the system clock's now.
    #[must_use]
    pub fn now() -> Self {
        Self::new(Instant::now(), Utc::now())
    }

    /// Declares that tokio `instant` corresponds to `utc`.
    #[must_use]
    pub fn new(instant: Instant, utc: DateTime<Utc>) -> Self {
        Self { instant, utc }
    }

    /// The current UTC time according to the tokio clock.
    #[must_use]
    pub fn now_utc(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().saturating_duration_since(self.instant);
        TimeDelta::from_std(elapsed)
            .ok()
            .and_then(|delta| self.utc.checked_add_signed(delta))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The tokio instant at which the clock reaches `at`; `None` if that is too far in the future
    /// to represent. Past times map to the base instant (already elapsed).
    #[must_use]
    pub fn instant_at(&self, at: DateTime<Utc>) -> Option<Instant> {
        match (at - self.utc).to_std() {
            Ok(ahead) => self.instant.checked_add(ahead),
            Err(_) => Some(self.instant),
        }
    }
}

/// The next fire of every schedule of a set, earliest first.
#[derive(Debug, Clone, Default)]
pub struct FireQueue {
    entries: HashMap<u64, ScheduleEntry>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, u64)>>,
}

impl FireQueue {
    /// Computes the first fire strictly after `after` of every entry. Schedules that never fire
    /// again are kept out of the heap; of duplicate ids the last entry wins.
    #[must_use]
    pub fn new(entries: impl IntoIterator<Item = ScheduleEntry>, after: DateTime<Utc>) -> Self {
        let entries: HashMap<u64, ScheduleEntry> = entries.into_iter().map(|e| (e.id, e)).collect();
        let heap = entries
            .values()
            .filter_map(|entry| Some(Reverse((entry.next_after(after)?, entry.id))))
            .collect();
        Self { entries, heap }
    }

    /// Number of schedules that will fire again.
    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no schedule will fire again.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The earliest pending fire.
    #[must_use]
    pub fn peek(&self) -> Option<Fire> {
        self.heap
            .peek()
            .map(|&Reverse((scheduled, id))| Fire { id, scheduled })
    }

    /// Removes the earliest fire if it is due at `now` (ties in id order) and queues that
    /// schedule's next fire after `max(scheduled, now)`.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<Fire> {
        let fire = self.peek().filter(|fire| fire.scheduled <= now)?;
        self.heap.pop();
        let next = self
            .entries
            .get(&fire.id)
            .and_then(|entry| entry.next_after(fire.scheduled.max(now)));
        if let Some(next) = next {
            self.heap.push(Reverse((next, fire.id)));
        }
        Some(fire)
    }
}

/// A reload waiting to be picked up by the timer task.
#[derive(Debug, Default)]
struct Reloads {
    pending: Mutex<Option<Vec<ScheduleEntry>>>,
    notify: Notify,
}

/// Replaces the schedules of a running [`Timer`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct TimerHandle {
    reloads: Arc<Reloads>,
}

impl TimerHandle {
    /// Replaces the whole set of schedules. The timer picks up the latest set promptly: fires of
    /// the old set due by then are still emitted, the new set fires strictly after that instant.
    pub fn reload(&self, entries: Vec<ScheduleEntry>) {
        let mut pending = self
            .reloads
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *pending = Some(entries);
        drop(pending);
        self.reloads.notify.notify_one();
    }
}

/// The scheduler task: emits the fires of a set of schedules as they become due.
#[derive(Debug)]
pub struct Timer {
    base: TimeBase,
    queue: FireQueue,
    /// Every fire at or before this instant has been emitted (or skipped).
    horizon: DateTime<Utc>,
    reloads: Arc<Reloads>,
}

impl Timer {
    /// A timer for `entries` whose first fires are strictly after the current time of `base`,
    /// and the handle to reload it.
    #[must_use]
    pub fn new(base: TimeBase, entries: Vec<ScheduleEntry>) -> (Timer, TimerHandle) {
        let now = base.now_utc();
        let reloads = Arc::new(Reloads::default());
        let timer = Timer {
            base,
            queue: FireQueue::new(entries, now),
            horizon: now,
            reloads: Arc::clone(&reloads),
        };
        (timer, TimerHandle { reloads })
    }

    /// Runs until `shutdown` completes or the receiver of `fires` is dropped, sending each fire
    /// when it is due. A full channel holds the timer back; a schedule's fires that fall due
    /// meanwhile are coalesced into one late fire.
    pub async fn run(mut self, fires: mpsc::Sender<Fire>, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            if !self.emit_due(&fires, shutdown.as_mut()).await {
                return;
            }
            self.apply_reload();
            let wake = self
                .queue
                .peek()
                .and_then(|f| self.base.instant_at(f.scheduled));
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return,
                () = fires.closed() => return,
                () = self.reloads.notify.notified() => {}
                () = sleep_until(wake) => {}
            }
        }
    }

    /// Installs the latest reloaded set, if any. It runs after the old set's due fires were
    /// emitted, so the new set's first fires are strictly after the reload.
    fn apply_reload(&mut self) {
        let pending = self
            .reloads
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(entries) = pending {
            self.queue = FireQueue::new(entries, self.horizon);
        }
    }

    /// Sends every due fire; `false` when shutdown completed or the receiver is gone.
    async fn emit_due(
        &mut self,
        fires: &mpsc::Sender<Fire>,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let now = self.base.now_utc();
        while let Some(fire) = self.queue.pop_due(now) {
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return false,
                sent = fires.send(fire) => if sent.is_err() { return false },
            }
        }
        self.horizon = self.horizon.max(now);
        true
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
