//! The dispatcher: takes due deliveries, as the outbox writer hands them over on commit (see
//! `store::handoff`) or by reading the outbox, runs each against its target with a
//! per-target concurrency limit, and records the outcome: done (removed), retry later (per
//! the policy), or dead letter.
//!
//! Backpressure: each target has a lane of `concurrency` permits and holds a bounded number
//! of deliveries in memory (running or waiting for a permit; see [`Lane::room`]), within a
//! budget for all lanes together ([`MAX_RESERVED`]). A burst waits in memory; beyond that, a
//! saturated lane leaves its deliveries in the outbox, to be read when it has room, so a slow
//! target slows only itself. The dispatcher sleeps until the next delivery is due or it is
//! woken (deliveries handed over, a finished attempt); it reads the outbox only when it may
//! hold due work not handed over, and never polls it in a loop.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::destination::{self, Condition};
use super::policy::{self, Backoff, Decision, Exhausted};
use super::store::{DeadLetterInfo, Outbox, StoreError};
use super::{Bus, BusError};
use super::{Delivery, MAX_HOPS};
use crate::metrics::Metrics;
use crate::rules::{Destination, RuleSet, TargetKind};
use crate::targets::{Attempt, ErrorCode, Outcome, Targets};

/// How many due deliveries one outbox read takes.
const BATCH: usize = 512;
/// The fewest deliveries a lane holds in memory (see [`Lane::room`]).
const MIN_LANE_ROOM: usize = 1024;
/// The most deliveries held in memory across all lanes (about a kilobyte each, plus the
/// payload): the bound on what a backlog costs in memory.
const MAX_RESERVED: usize = 8192;
/// How long to wait for a wake-up when everything due is already being worked on.
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// When a delivered attempt is repeated because its destination could not be stored: the
/// outbox failed, so soon, but not at once.
const STORE_RETRY_MS: i64 = 1000;
/// The longest sleep with nothing due: the outbox is re-read after it, so deliveries put back
/// by `trigd dlq redrive` from another process are picked up without a signal.
const MAX_SLEEP: Duration = Duration::from_secs(5);

/// Everything an attempt needs, shared by all attempt tasks.
struct Shared {
    outbox: Outbox,
    rules: watch::Receiver<Arc<RuleSet>>,
    targets: Arc<Targets>,
    metrics: Arc<Metrics>,
    /// Where results passed on to trigd's bus go, as every source's events (the intake).
    bus: Arc<dyn Bus>,
    /// Wakes the dispatch loop when an attempt finished or deliveries left the outbox.
    wake: Notify,
    backoff: Backoff,
    in_flight: Mutex<HashSet<String>>,
    /// Deliveries reserved in all lanes together (at most [`MAX_RESERVED`]).
    reserved: AtomicUsize,
    /// Rule name → target id → lane.
    lanes: Mutex<HashMap<String, HashMap<String, Arc<Lane>>>>,
    /// Delivered, waiting to be removed from the outbox in one batch; they stay in
    /// `in_flight` until removed, so they are never read and sent again.
    delivered: Mutex<Vec<String>>,
    delivered_added: Notify,
}

/// One target's share of the dispatcher.
struct Lane {
    permits: Semaphore,
    /// Deliveries reserved for this target (running or waiting for a permit).
    reserved: AtomicUsize,
    limit: usize,
}

impl Lane {
    fn new(limit: usize) -> Lane {
        Lane {
            permits: Semaphore::new(limit),
            reserved: AtomicUsize::new(0),
            limit,
        }
    }

    /// How many deliveries the lane holds in memory: twice its concurrency, and at least
    /// [`MIN_LANE_ROOM`], so that a burst waits here rather than being read back from the
    /// outbox once the lane has room.
    fn room(&self) -> usize {
        (self.limit * 2).max(MIN_LANE_ROOM)
    }

    /// Frees one reservation.
    fn release(&self) {
        // Never below zero, even if released twice by mistake.
        let _ = self
            .reserved
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// The dispatcher task.
pub struct Dispatcher {
    shared: Arc<Shared>,
}

impl Dispatcher {
    pub fn new(
        outbox: Outbox,
        rules: watch::Receiver<Arc<RuleSet>>,
        targets: Arc<Targets>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        backoff: Backoff,
    ) -> Self {
        // Deliveries stored from now on come straight to this dispatcher (see
        // `store::handoff`).
        outbox.enable_handoff();
        Dispatcher {
            shared: Arc::new(Shared {
                outbox,
                rules,
                targets,
                metrics,
                bus,
                wake: Notify::new(),
                backoff,
                in_flight: Mutex::new(HashSet::new()),
                reserved: AtomicUsize::new(0),
                lanes: Mutex::new(HashMap::new()),
                delivered: Mutex::new(Vec::new()),
                delivered_added: Notify::new(),
            }),
        }
    }

    /// Runs until `stop`; then lets attempts in flight finish within `grace` and returns.
    /// Deliveries not finished stay in the outbox for the next start.
    ///
    /// If the outbox fails, `failed` hears of it at once, before the attempts in flight are
    /// given their grace period: whoever supervises the daemon can stop taking events while
    /// they finish.
    pub async fn run(
        self,
        stop: CancellationToken,
        grace: Duration,
        failed: impl FnOnce(&StoreError) + Send,
    ) -> Result<(), StoreError> {
        let attempts = TaskTracker::new();
        let done = CancellationToken::new();
        let completer = tokio::spawn(complete_loop(Arc::clone(&self.shared), done.clone()));
        let result = self.dispatch_loop(&stop, &attempts).await;
        if let Err(e) = &result {
            failed(e);
        }
        attempts.close();
        if tokio::time::timeout(grace, attempts.wait()).await.is_err() {
            let left = lock(&self.shared.in_flight).len();
            tracing::warn!(
                message = "Grace period over; unfinished deliveries stay in the outbox.",
                in_flight = left
            );
        }
        // The completer removes what was delivered before it stops.
        done.cancel();
        let _ = completer.await;
        result
    }

    async fn dispatch_loop(
        &self,
        stop: &CancellationToken,
        attempts: &TaskTracker,
    ) -> Result<(), StoreError> {
        let s = &self.shared;
        // The outbox is read when it may hold due deliveries the dispatcher does not have in
        // hand: at start, whenever `missed` moved, while a read or a hand-off left deliveries
        // behind for want of lane room, and at least every MAX_SLEEP (a redrive by another
        // process says nothing). `clean` is `missed` as of the last read that left nothing
        // due behind.
        let mut clean: Option<u64> = None;
        let mut next_read = tokio::time::Instant::now();
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            if self.start_all(s.outbox.take_handed_off(), attempts) > 0 {
                clean = None;
            }
            let missed = s.outbox.missed();
            if clean != Some(missed) || tokio::time::Instant::now() >= next_read {
                let now = Utc::now().timestamp_millis();
                let reserved = lock(&s.in_flight).clone();
                // Read no more rows than the lanes can take: rows read and left are wasted.
                let limit = self.free_slots().clamp(16, BATCH);
                let due = s.outbox.due(now, limit, &reserved).await?;
                let fetched = due.len();
                // What was handed over before the read began comes first, so that the read's
                // copies of it are recognised as in flight (see `store::handoff`).
                let mut left = self.start_all(s.outbox.take_handed_off(), attempts);
                let mut started = 0;
                for d in due {
                    match self.start(d, attempts) {
                        Start::Started => started += 1,
                        Start::InFlight => {}
                        Start::LaneFull => left += 1,
                    }
                }
                if started > 0 && fetched == limit {
                    clean = None;
                    continue;
                }
                clean = (left == 0 && fetched < limit).then_some(missed);
                let wait = match s.outbox.next_due_ms().await? {
                    None => MAX_SLEEP,
                    Some(t) if t > now => Duration::from_millis((t - now) as u64).min(MAX_SLEEP),
                    Some(_) => IDLE_RECHECK,
                };
                next_read = tokio::time::Instant::now() + wait;
            }
            tokio::select! {
                () = s.wake.notified() => {}
                () = s.outbox.handed_off() => {}
                () = tokio::time::sleep_until(next_read) => {}
                () = stop.cancelled() => return Ok(()),
            }
        }
    }

    /// Starts each delivery that has lane room; returns how many were left for want of it.
    fn start_all(&self, deliveries: Vec<Delivery>, attempts: &TaskTracker) -> usize {
        deliveries
            .into_iter()
            .map(|d| self.start(d, attempts))
            .filter(|s| *s == Start::LaneFull)
            .count()
    }

    /// Starts an attempt at `d` unless it is already in flight or its lane is full (then it
    /// stays in the outbox, for a later read).
    fn start(&self, d: Delivery, attempts: &TaskTracker) -> Start {
        let s = &self.shared;
        if lock(&s.in_flight).contains(&d.id) {
            return Start::InFlight;
        }
        let Some(lane) = self.reserve(&d) else {
            return Start::LaneFull;
        };
        let shared = Arc::clone(s);
        attempts.spawn(async move {
            let Ok(_permit) = lane.permits.acquire().await else {
                return;
            };
            attempt(&shared, &lane, d).await;
        });
        Start::Started
    }

    /// Free reservations across known lanes, plus room for lanes not seen yet, within the
    /// budget for all lanes.
    fn free_slots(&self) -> usize {
        let s = &self.shared;
        let known: usize = lock(&s.lanes)
            .values()
            .flat_map(HashMap::values)
            .map(|l| l.room().saturating_sub(l.reserved.load(Ordering::Relaxed)))
            .sum();
        (known + 64).min(MAX_RESERVED.saturating_sub(s.reserved.load(Ordering::Relaxed)))
    }

    /// Reserves a slot in the delivery's lane and marks it in flight, or `None` when the lane
    /// is full.
    fn reserve(&self, d: &Delivery) -> Option<Arc<Lane>> {
        let s = &self.shared;
        let concurrency = {
            let rules = s.rules.borrow();
            destination::resolve(&rules, &d.rule, &d.target).map_or(1, |t| t.concurrency as usize)
        };
        let mut lanes = lock(&s.lanes);
        let current = lanes
            .get(d.rule.as_str())
            .and_then(|targets| targets.get(d.target.as_str()))
            .filter(|lane| lane.limit == concurrency)
            .cloned();
        let lane = match current {
            Some(lane) => lane,
            // New, or its rule changed on reload: a fresh lane with the new limit. Attempts
            // running on the old one release the old one.
            None => {
                let lane = Arc::new(Lane::new(concurrency));
                lanes
                    .entry(d.rule.clone())
                    .or_default()
                    .insert(d.target.clone(), Arc::clone(&lane));
                lane
            }
        };
        if lane.reserved.load(Ordering::Relaxed) >= lane.room()
            || s.reserved.load(Ordering::Relaxed) >= MAX_RESERVED
        {
            return None;
        }
        lane.reserved.fetch_add(1, Ordering::Relaxed);
        s.reserved.fetch_add(1, Ordering::Relaxed);
        lock(&s.in_flight).insert(d.id.clone());
        Some(lane)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Started,
    /// Already being worked on (handed over and read both): skipped.
    InFlight,
    /// Its lane has no room: left in the outbox.
    LaneFull,
}

/// Removes delivered deliveries from the outbox in batches, then releases them.
async fn complete_loop(s: Arc<Shared>, done: CancellationToken) {
    loop {
        let notified = s.delivered_added.notified();
        let batch = std::mem::take(&mut *lock(&s.delivered));
        if batch.is_empty() {
            if done.is_cancelled() {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = done.cancelled() => {}
            }
            continue;
        }
        if let Err(e) = s.outbox.complete_many(batch.clone()).await {
            tracing::error!(message = "Delivered, but could not remove them from the outbox; they may repeat.", count = batch.len(), error = %e);
        }
        {
            let mut in_flight = lock(&s.in_flight);
            for id in &batch {
                in_flight.remove(id);
            }
        }
        s.wake.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning means a panic elsewhere while holding a set or map; the data is still sound.
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One attempt at one delivery, and what follows from its outcome. Dead letters and
/// destinations are boxed: rare, and their futures (an SQS send among others) would make every
/// attempt task several KiB larger, copied in full at each spawn.
async fn attempt(s: &Shared, lane: &Lane, d: Delivery) {
    let started = Utc::now().timestamp_millis();
    // The rules as they are now; a reload during the attempt does not change them under it.
    let rules = Arc::clone(&s.rules.borrow());
    let attempts_made = d.attempts + 1;
    let count = |outcome: &str| {
        s.metrics.inc(
            "trigd_deliveries_total",
            &[
                ("rule", &d.rule),
                ("target", &d.target),
                ("outcome", outcome),
            ],
        );
    };
    let Some(target) = destination::resolve(&rules, &d.rule, &d.target) else {
        count("failed");
        let error = format!(
            "rule `{}` or its target `{}` no longer exists (removed by a reload)",
            d.rule, d.target
        );
        Box::pin(dead_letter(
            s,
            &rules,
            &d,
            ErrorCode::InvalidParameter,
            error,
            None,
            attempts_made,
            None,
        ))
        .await;
        finish(s, lane, &d);
        return;
    };
    if policy::expired(&target.retry, d.first_seen_ms, started) {
        Box::pin(dead_letter(
            s,
            &rules,
            &d,
            ErrorCode::Timeout,
            "the event is older than max_event_age".to_owned(),
            Some(Exhausted::MaximumEventAgeInSeconds),
            d.attempts,
            None,
        ))
        .await;
        finish(s, lane, &d);
        return;
    }
    let a = Attempt {
        delivery_id: &d.id,
        rule: &d.rule,
        target: &d.target,
        event_id: &d.event_id,
        attempt: attempts_made,
        payload: &d.payload,
        event: &d.event,
        keep_output: target.log_output || tracing::enabled!(tracing::Level::DEBUG),
    };
    let began = tokio::time::Instant::now();
    let outcome = s.targets.deliver(target.kind, &a).await;
    let duration_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Outcome::Delivered { response, output } => {
            log_delivered(&d, attempts_made, duration_ms, target.log_output, output);
            count("delivered");
            if let Some(dest) = target.on_success {
                let ending = destination::Ending {
                    condition: Condition::Success,
                    attempts: attempts_made,
                    response: response.as_ref(),
                    error: None,
                };
                if let Err(e) = Box::pin(pass_on(s, &rules, &d, target.kind, dest, &ending)).await {
                    // Not removed, so not lost: the attempt is repeated later, and the
                    // follow-up with it (at least once).
                    let error = format!(
                        "delivered, but its on_success destination could not be stored: {e}"
                    );
                    tracing::error!(message = "Could not store a destination; the delivery will be repeated.", rule = %d.rule, target = %d.target, error = %e);
                    let at = Utc::now().timestamp_millis() + STORE_RETRY_MS;
                    if let Err(e) = s.outbox.retry_later(&d.id, attempts_made, at, &error).await {
                        tracing::error!(message = "Could not record a retry.", delivery = %d.id, error = %e);
                    }
                    finish(s, lane, &d);
                    return;
                }
            }
            let now = Utc::now().timestamp_millis();
            s.metrics.observe(
                "trigd_delivery_latency_seconds",
                &[],
                ((now - d.first_seen_ms).max(0) as f64) / 1000.0,
            );
            // Removed from the outbox in a batch; released from `in_flight` after that.
            lock(&s.delivered).push(d.id);
            s.delivered_added.notify_one();
            release_lane(s, lane);
            return;
        }
        Outcome::Retry {
            code,
            error,
            retry_after,
        } => {
            count("failed");
            let now = Utc::now().timestamp_millis();
            match policy::after_failure(
                &target.retry,
                &s.backoff,
                attempts_made,
                d.first_seen_ms,
                now,
                retry_after,
                rand::random::<f64>(),
            ) {
                Decision::RetryAt(at) => {
                    tracing::warn!(message = "Delivery failed, will retry.", rule = %d.rule, target = %d.target, delivery_id = %d.id, attempt = attempts_made, duration_ms, code = code.as_str(), %error, retry_in_ms = at - now);
                    if let Err(e) = s.outbox.retry_later(&d.id, attempts_made, at, &error).await {
                        tracing::error!(message = "Could not record a retry.", delivery = %d.id, error = %e);
                    }
                }
                Decision::GiveUp(exhausted) => {
                    Box::pin(dead_letter(
                        s,
                        &rules,
                        &d,
                        code,
                        error,
                        Some(exhausted),
                        attempts_made,
                        Some(duration_ms),
                    ))
                    .await;
                }
            }
        }
        Outcome::Fail { code, error } => {
            count("failed");
            Box::pin(dead_letter(
                s,
                &rules,
                &d,
                code,
                error,
                None,
                attempts_made,
                Some(duration_ms),
            ))
            .await;
        }
    }
    finish(s, lane, &d);
}

/// Stores what `d` passes on to its destination `dest`: the deliveries to a destination
/// target, or those of the rules its event matches on trigd's bus. Called before `d` leaves
/// the outbox (see [`destination`]).
async fn pass_on(
    s: &Shared,
    rules: &RuleSet,
    d: &Delivery,
    parent: &TargetKind,
    dest: &Destination,
    ending: &destination::Ending<'_>,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let follow = destination::follow_up(rules, d, parent, dest, ending, now);
    if follow.loop_stopped {
        tracing::warn!(message = "A chain of destinations reached its limit; the result is not passed on.", rule = %d.rule, target = %d.target, hops = d.hops, limit = MAX_HOPS);
        s.metrics.inc(
            "trigd_destination_loops_total",
            &[("rule", &d.rule), ("target", &d.target)],
        );
        return Ok(());
    }
    if !follow.deliveries.is_empty() {
        // The writer hands them to the dispatch loop once stored.
        s.outbox.enqueue(follow.deliveries, None).await?;
    }
    if let Some(event) = follow.bus {
        // Routed, stored, counted and archived as any source's event.
        match s.bus.pass_on(rules, event, follow.hops, now).await {
            Ok(()) => {}
            // Built here from valid JSON; only an answer nested past the matcher's depth
            // could make it unreadable, and repeating the attempt would not change that.
            Err(BusError::Unreadable(e)) => {
                tracing::warn!(message = "A result cannot be routed on the bus; it is not passed on.", rule = %d.rule, target = %d.target, error = %e);
            }
            Err(BusError::Store(e)) => return Err(e),
        }
    }
    s.metrics.inc(
        "trigd_destinations_total",
        &[
            ("rule", &d.rule),
            ("target", &d.target),
            ("condition", ending.condition.as_str()),
        ],
    );
    Ok(())
}

/// Logs a delivered attempt: at info when the target has `log_output: true` (with what a
/// command printed), else at debug.
fn log_delivered(
    d: &Delivery,
    attempt: u32,
    duration_ms: u64,
    log_output: bool,
    output: Option<crate::targets::Output>,
) {
    let stdout = output.as_ref().map(|o| o.stdout.as_str());
    let stderr = output.as_ref().map(|o| o.stderr.as_str());
    if log_output {
        tracing::info!(message = "Delivered.", rule = %d.rule, target = %d.target, delivery_id = %d.id, attempt, duration_ms, stdout, stderr);
    } else {
        tracing::debug!(message = "Delivered.", rule = %d.rule, target = %d.target, delivery_id = %d.id, attempt, duration_ms, stdout, stderr);
    }
}

#[allow(clippy::too_many_arguments)]
async fn dead_letter(
    s: &Shared,
    rules: &RuleSet,
    d: &Delivery,
    code: ErrorCode,
    error: String,
    exhausted: Option<Exhausted>,
    attempts: u32,
    // How long the last attempt took, when there was one just now.
    duration_ms: Option<u64>,
) {
    tracing::warn!(message = "Delivery dead-lettered.", rule = %d.rule, target = %d.target, delivery_id = %d.id, attempt = attempts, duration_ms, code = code.as_str(), %error, exhausted = exhausted.map(Exhausted::as_str));
    s.metrics.inc(
        "trigd_dead_letters_total",
        &[
            ("rule", &d.rule),
            ("target", &d.target),
            ("code", code.as_str()),
        ],
    );
    let mut record = d.clone();
    record.attempts = attempts;
    record.first_error = d.first_error.clone().or_else(|| Some(error.clone()));
    record.last_error = Some(error.clone());
    // The dead-letter queue, when the target has one: as EventBridge sends it, the event as
    // the body and the reason in message attributes. Best effort: the local dead letter below
    // is the record that is never lost.
    // The on_failure destination first: stored before the delivery leaves the outbox. If it
    // cannot be stored, the dead letter below still keeps the delivery.
    if let Some(target) = destination::resolve(rules, &d.rule, &d.target)
        && let Some(dest) = target.on_failure
    {
        let ending = destination::Ending {
            condition: if exhausted == Some(Exhausted::MaximumEventAgeInSeconds) {
                Condition::EventAgeExceeded
            } else {
                Condition::RetriesExhausted
            },
            attempts,
            response: None,
            error: Some((code, &error)),
        };
        if let Err(e) = pass_on(s, rules, d, target.kind, dest, &ending).await {
            tracing::error!(message = "Could not store an on_failure destination; the dead letter is kept.", rule = %d.rule, target = %d.target, error = %e);
        }
    }
    let queue = rules.rule(&d.rule).and_then(|r| {
        let t = r.targets.iter().find(|t| t.id == d.target)?;
        let crate::rules::DeadLetter::Sqs(url) = t.dead_letter.as_ref()?;
        Some((
            url.clone(),
            rules.rule_arn(&r.name),
            crate::targets::target_arn(&t.kind, &rules.settings),
        ))
    });
    if let Some((url, rule_arn, target_arn)) = queue {
        let attributes = crate::targets::sqs::DeadLetterAttributes {
            rule_arn: &rule_arn,
            target_arn: &target_arn,
            error_code: code.as_str(),
            error_message: &error,
            exhausted: exhausted.map(Exhausted::as_str),
            retry_attempts: attempts.saturating_sub(1),
        };
        if let Err(e) = s
            .targets
            .send_dead_letter(&url, &d.event, &attributes)
            .await
        {
            s.metrics.inc(
                "trigd_dead_letters_failed_total",
                &[("rule", &d.rule), ("target", &d.target)],
            );
            tracing::error!(message = "Could not send to the dead-letter queue; the local dead letter is kept.", rule = %d.rule, target = %d.target, error = %e);
        }
    }
    let info = DeadLetterInfo {
        code,
        error,
        exhausted,
        at_ms: Utc::now().timestamp_millis(),
    };
    if let Err(e) = s.outbox.dead_letter(&record, info).await {
        tracing::error!(message = "Could not write a dead letter; the delivery stays in the outbox.", delivery = %d.id, error = %e);
    }
}

/// Releases the delivery's reservation and wakes the dispatcher.
fn finish(s: &Shared, lane: &Lane, d: &Delivery) {
    lock(&s.in_flight).remove(&d.id);
    release_lane(s, lane);
}

/// Frees the delivery's slot in its lane and wakes the dispatcher.
fn release_lane(s: &Shared, lane: &Lane) {
    lane.release();
    let _ = s
        .reserved
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    s.wake.notify_one();
}

#[cfg(test)]
mod tests {
    /// The size of the future `attempt` returns.
    fn future_size<F, R>(_: F) -> usize
    where
        F: FnOnce(&'static super::Shared, &'static super::Lane, crate::delivery::Delivery) -> R,
    {
        std::mem::size_of::<R>()
    }

    #[test]
    fn attempt_tasks_stay_small() {
        // One task per attempt, copied in full when spawned: it was 18 KiB before the AWS
        // targets, dead letters and destinations were boxed, and is about 2 KiB now.
        let size = future_size(super::attempt);
        assert!(size <= 4096, "{size} bytes");
    }
}
