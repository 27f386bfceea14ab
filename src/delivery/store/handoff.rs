//! The hand-off: deliveries the writer passes to the dispatcher as it commits them, so that
//! the dispatcher need not read back from the database what was just written to it.
//!
//! Under load nearly every delivery is new and due at once. Reading each back (a query, a
//! row decode, a hop to the blocking pool and back) was a tenth of the daemon's work; the
//! writer has the delivery in hand at the commit, so it passes it on. The outbox stays the
//! record: a delivery is handed over only once its commit is durable, and one that is not
//! handed over (see [`Handoff::offer`]) is found by the dispatcher's next read.
//!
//! **Never started twice.** A delivery can reach the dispatcher both ways: handed over, and
//! in a read of the outbox. The dispatcher keeps the ids it is working on and skips one it
//! already has, which is enough as long as the copy it meets second cannot come after the
//! delivery has finished and left that set. Two rules make sure of it:
//! * the writer holds [`Handoff::fence`] from before a batch's commit until its deliveries are
//!   in the queue, and a read takes the fence to begin its read transaction (its snapshot).
//!   So a read sees no row that is committed but not yet handed over;
//! * the dispatcher takes the queue after every read, before starting what it read.
//!
//! So whatever a read returns was queued before the read began, and the dispatcher has it in
//! hand (in flight, or just taken from the queue) before it looks at the read's copy.
//!
//! **What is not handed over**, and why the dispatcher still reads: deliveries not due yet
//! (a schedule's jitter), those with an ordering key (only the head of their group may go,
//! which the read decides), duplicates (`INSERT OR IGNORE` kept the first copy, which the
//! dispatcher has or will read), retries rescheduled by the dispatcher, and anything beyond
//! [`CAPACITY`] while the dispatcher is behind. Each bumps [`Handoff::missed`]; the dispatcher
//! reads the outbox whenever that counter moved since its last complete read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::delivery::Delivery;

/// The most deliveries waiting in the queue; beyond it, they wait in the outbox alone.
pub const CAPACITY: usize = 4096;

/// Shared by the writer thread, the readers and the dispatcher.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    /// Off until a dispatcher asks for deliveries ([`super::Outbox::enable_handoff`]): the
    /// command-line tools open the outbox without one.
    enabled: AtomicBool,
    queue: Mutex<Vec<Delivery>>,
    /// Bumped whenever the outbox gained due-or-later work that was not handed over.
    missed: AtomicU64,
    /// See the module doc: held across a commit and its hand-over, and while a read begins.
    fence: Mutex<()>,
    /// Wakes the dispatcher when deliveries were handed over or missed.
    notify: Notify,
}

impl Handoff {
    pub(crate) fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    pub(crate) fn fence(&self) -> MutexGuard<'_, ()> {
        self.fence.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called by the writer with the fence held, right after the commit that stored
    /// `deliveries` (`inserted[i]`: whether `deliveries[i]` was new): queues those due by
    /// `now_ms` without an ordering key, and counts the rest as missed. Returns whether the
    /// dispatcher has something new to do.
    pub(crate) fn offer(&self, deliveries: Vec<Delivery>, inserted: &[bool], now_ms: i64) -> bool {
        if !self.enabled.load(Ordering::Acquire) {
            return false;
        }
        let mut queued = false;
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut missed = false;
        for (d, new) in deliveries.into_iter().zip(inserted) {
            if *new
                && d.ordering_key.is_none()
                && d.next_attempt_ms <= now_ms
                && queue.len() < CAPACITY
            {
                queue.push(d);
                queued = true;
            } else {
                // A duplicate was stored before: whoever stored it made sure it is found.
                missed |= *new;
            }
        }
        if missed {
            self.missed.fetch_add(1, Ordering::AcqRel);
        }
        queued || missed
    }

    /// The outbox gained work that was not handed over (a retry, say).
    pub(crate) fn miss(&self) {
        if self.enabled.load(Ordering::Acquire) {
            self.missed.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Wakes the dispatcher (after a batch that handed over or missed something).
    pub(crate) fn wake(&self) {
        if self.enabled.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    pub(crate) fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn missed(&self) -> u64 {
        self.missed.load(Ordering::Acquire)
    }

    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, due: i64, key: Option<&str>) -> Delivery {
        Delivery {
            ordering_key: key.map(str::to_owned),
            ..Delivery::for_test(id, due)
        }
    }

    #[test]
    fn hands_over_new_due_unordered_deliveries_and_counts_the_rest() {
        let h = Handoff::default();
        assert!(!h.offer(vec![delivery("a", 0, None)], &[true], 10));
        assert!(
            h.take().is_empty(),
            "nothing is queued before a dispatcher asks"
        );
        assert_eq!(h.missed(), 0);

        h.enable();
        assert!(h.offer(
            vec![delivery("a", 10, None), delivery("b", 0, None)],
            &[true, false],
            10,
        ));
        let ids: Vec<_> = h.take().into_iter().map(|d| d.id).collect();
        assert_eq!(ids, ["a"], "a duplicate (not inserted) is not handed over");
        assert_eq!(h.missed(), 0, "nor counted: its first copy was");
        assert!(h.take().is_empty());
        assert!(
            !h.offer(vec![delivery("b", 0, None)], &[false], 10),
            "a duplicate alone gives the dispatcher nothing to do"
        );

        assert!(h.offer(vec![delivery("later", 11, None)], &[true], 10));
        assert_eq!(h.missed(), 1, "not due yet: the dispatcher must read it");
        h.offer(vec![delivery("k", 0, Some("group"))], &[true], 10);
        assert_eq!(h.missed(), 2, "ordered: the read decides the head");
        assert!(h.take().is_empty());
        h.miss();
        assert_eq!(h.missed(), 3);
    }

    #[test]
    fn a_full_queue_leaves_the_rest_to_the_read() {
        let h = Handoff::default();
        h.enable();
        let many: Vec<_> = (0..CAPACITY + 2)
            .map(|i| delivery(&i.to_string(), 0, None))
            .collect();
        h.offer(many, &vec![true; CAPACITY + 2], 0);
        assert_eq!(h.take().len(), CAPACITY);
        assert_eq!(h.missed(), 1);
    }
}
