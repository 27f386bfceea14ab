//! Keeping a set of queue pollers in step with the rules, for the SQS sources and the SQS
//! triggers alike: a reload starts what is new, stops what is gone and restarts what changed,
//! leaving the rest untouched. A restarted entry's new pollers begin only after the old ones
//! finished the batch they had in hand, so that one message is never handled by both.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// How a poller is told to end.
#[derive(Debug, Clone)]
pub struct Stop {
    /// The daemon stops: a receive in flight is abandoned (whatever it had taken comes back
    /// after the queue's visibility timeout).
    pub shutdown: CancellationToken,
    /// A reload stops or restarts this entry (a child of `shutdown`): the batch in hand
    /// finishes; what a receive in flight still brings is made visible again at once, for the
    /// poller that takes over, and never deleted.
    pub retire: CancellationToken,
}

/// A poller's task.
pub type PollerTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where pollers run: the daemon's supervisor (which reports a poller that panics), or, for
/// tests, a plain [`TaskTracker`]. Pollers end by themselves when retired or stopped.
pub trait Spawn: Send + Sync {
    /// Runs `task`, the poller named `name`.
    fn spawn(&self, name: &str, task: PollerTask);
}

impl Spawn for TaskTracker {
    fn spawn(&self, _name: &str, task: PollerTask) {
        TaskTracker::spawn(self, task);
    }
}

/// What one poller is handed: its stop, and its place in the handover.
pub struct Lease {
    pub stop: Stop,
    /// Held while this poller may handle a batch (and so delete messages); dropped to let the
    /// pollers that replace it begin.
    pub batch: TaskTrackerToken,
    /// The batches of the pollers this one replaces.
    after: Option<TaskTracker>,
}

impl Lease {
    /// Waits until the pollers this one replaces have finished their batches. False when the
    /// daemon stops meanwhile.
    pub async fn wait_turn(&mut self) -> bool {
        let Some(after) = self.after.take() else {
            return true;
        };
        // Waited for even when retired meanwhile: whoever replaces this poller waits on
        // `batch`, and so on the predecessors too.
        tokio::select! {
            biased;
            () = self.stop.shutdown.cancelled() => false,
            () = after.wait() => true,
        }
    }
}

/// What [`Pollers::apply`] did to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Started,
    Stopped,
    Restarted,
}

impl Change {
    /// As logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Started => "started",
            Change::Stopped => "stopped",
            Change::Restarted => "restarted",
        }
    }
}

/// The running pollers, by entry name; `S` is what an entry is declared with (a change of it
/// restarts the entry).
pub struct Pollers<S> {
    /// The daemon's stop: every entry's `retire` token is a child of it.
    shutdown: CancellationToken,
    /// Where the pollers run.
    spawner: Arc<dyn Spawn>,
    running: HashMap<String, Running<S>>,
}

struct Running<S> {
    spec: S,
    retire: CancellationToken,
    batches: TaskTracker,
}

impl<S: PartialEq> Pollers<S> {
    pub fn new(shutdown: CancellationToken, spawner: Arc<dyn Spawn>) -> Pollers<S> {
        Pollers {
            shutdown,
            spawner,
            running: HashMap::new(),
        }
    }

    /// Runs exactly the `declared` entries: `count` pollers each, spawned by `spawn`. Returns
    /// what changed, by name, sorted.
    pub fn apply<F>(
        &mut self,
        declared: Vec<(String, S)>,
        count: impl Fn(&S) -> u32,
        mut spawn: impl FnMut(&S, Lease) -> F,
    ) -> Vec<(String, Change)>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut declared: HashMap<String, S> = declared.into_iter().collect();
        let mut changes = Vec::new();
        let mut previous = HashMap::new();
        self.running.retain(|name, run| {
            let same = declared.get(name).is_some_and(|spec| *spec == run.spec);
            if !same {
                run.retire.cancel();
                run.batches.close();
                previous.insert(name.clone(), run.batches.clone());
            }
            same
        });
        declared.retain(|name, _| !self.running.contains_key(name));
        for (name, spec) in declared {
            let after = previous.remove(&name);
            changes.push((
                name.clone(),
                if after.is_some() {
                    Change::Restarted
                } else {
                    Change::Started
                },
            ));
            let retire = self.shutdown.child_token();
            let batches = TaskTracker::new();
            for _ in 0..count(&spec) {
                let lease = Lease {
                    stop: Stop {
                        shutdown: self.shutdown.clone(),
                        retire: retire.clone(),
                    },
                    batch: batches.token(),
                    after: after.clone(),
                };
                self.spawner.spawn(&name, Box::pin(spawn(&spec, lease)));
            }
            self.running.insert(
                name,
                Running {
                    spec,
                    retire,
                    batches,
                },
            );
        }
        changes.extend(previous.into_keys().map(|name| (name, Change::Stopped)));
        changes.sort();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn apply_starts_stops_and_restarts_only_what_changed() {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut pollers: Pollers<u32> = Pollers::new(shutdown.clone(), Arc::new(tasks.clone()));
        let started = Arc::new(AtomicUsize::new(0));
        let mut apply = |declared: Vec<(&str, u32)>| {
            let started = Arc::clone(&started);
            pollers.apply(
                declared
                    .into_iter()
                    .map(|(n, s)| (n.to_owned(), s))
                    .collect(),
                |s| *s,
                move |_, mut lease| {
                    let started = Arc::clone(&started);
                    async move {
                        if lease.wait_turn().await {
                            started.fetch_add(1, Ordering::SeqCst);
                            lease.stop.retire.cancelled().await;
                        }
                    }
                },
            )
        };
        // Until `n` pollers have begun.
        async fn settle(started: &AtomicUsize, n: usize) {
            let wait = async {
                while started.load(Ordering::SeqCst) < n {
                    tokio::task::yield_now().await;
                }
            };
            assert!(
                tokio::time::timeout(std::time::Duration::from_secs(5), wait)
                    .await
                    .is_ok(),
                "{} pollers began, not {n}",
                started.load(Ordering::SeqCst)
            );
        }
        assert_eq!(
            apply(vec![("a", 2), ("b", 1)]),
            [
                ("a".to_owned(), Change::Started),
                ("b".to_owned(), Change::Started)
            ]
        );
        assert_eq!(
            apply(vec![("a", 2), ("b", 3), ("c", 1)]),
            [
                ("b".to_owned(), Change::Restarted),
                ("c".to_owned(), Change::Started)
            ]
        );
        // The first b's poller ended (retired), so the new ones begin.
        settle(&started, 7).await;
        assert_eq!(
            apply(vec![("c", 1)]),
            [
                ("a".to_owned(), Change::Stopped),
                ("b".to_owned(), Change::Stopped)
            ]
        );
        assert!(apply(vec![("c", 1)]).is_empty());
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        // a: 2, b: 1 then 3, c: 1; the last two applies started nothing.
        assert_eq!(started.load(Ordering::SeqCst), 7);
    }

    #[tokio::test]
    async fn a_restarted_entry_waits_for_the_batch_in_hand() {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut pollers: Pollers<u32> = Pollers::new(shutdown.clone(), Arc::new(tasks.clone()));
        let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
        let hold = std::sync::Mutex::new(Some(hold_rx));
        let (began_tx, mut began_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let mut apply = |spec: u32| {
            let began = began_tx.clone();
            let mut hold = hold.lock().ok().and_then(|mut h| h.take());
            pollers.apply(
                vec![("q".to_owned(), spec)],
                |_| 1,
                move |s, mut lease| {
                    let began = began.clone();
                    let spec = *s;
                    let hold = hold.take();
                    async move {
                        if !lease.wait_turn().await {
                            return;
                        }
                        let _ = began.send(spec);
                        // The first version holds a batch until told.
                        if let Some(h) = hold {
                            let _ = h.await;
                        }
                        drop(lease.batch);
                        lease.stop.retire.cancelled().await;
                    }
                },
            )
        };
        apply(1);
        assert_eq!(began_rx.recv().await, Some(1));
        apply(2);
        tokio::task::yield_now().await;
        assert!(began_rx.try_recv().is_err(), "began before the batch ended");
        let _ = hold_tx.send(());
        assert_eq!(began_rx.recv().await, Some(2));
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }
}
