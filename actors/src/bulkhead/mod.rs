//! Admission per workload class: a concurrency limit, a bounded wait queue and a queue
//! deadline ("db_read", "db_write"); [`BlockingPool`] adds dedicated threads ("hashing").
//!
//! ```text
//! let reads = Bulkhead::new("db_read", &cfg.bulkheads.db_read)?;
//! let user = reads.run(store.get_user(id)).await?;            // Overloaded -> 503
//! let user = guarded(&reads, &pg, store.get_user(id), classify).await??;
//! ```
//! A caller finding all `max_concurrent` slots taken waits in the queue if it has room
//! (else `Overloaded` at once, `reason="queue_full"`, or `reason="caller_queue_full"`
//! when its own waiters reach `max_queued_per_caller`), for at most `queue_timeout_ms`
//! (else `Overloaded`, `reason="queue_timeout"`). A caller cancelled while queued frees
//! its queue place and never takes a slot.
//!
//! The queue is fair between callers ([`Bulkhead::acquire_as`] names the caller: a hash
//! of the user, or of the client IP for anonymous work): one FIFO per caller, served
//! round robin ([`queue`]), so a caller with 64 waiters cannot put another caller's call
//! behind all 64 of them. With `fair = false` every caller shares one FIFO.
//!
//! With `reject_expected_timeouts` (the default), a caller that would queue behind more
//! work than the deadline allows is rejected at once (`reason="expected_wait"`): its
//! expected wait is its queue place times the mean time a slot is held (a moving average
//! of the calls that released one) over the concurrency limit. Under sustained overload the
//! queue so holds about a deadline's worth of work: admitted calls wait at most about the
//! deadline and the excess gets its 503 in microseconds instead of after the deadline,
//! while a burst that the slots will absorb in time still queues. A slow dependency
//! raises the mean and shortens the queue on its own.
//!
//! With `adaptive` (off by default: load/README.md has why) the limit is not fixed:
//! it moves between `min_concurrent` and `max_concurrent` to a few calls above what the
//! dependency runs in parallel, judged from the hold times (TCP Vegas, see [`adaptive`]).
//! A database on a small machine so gets the few concurrent queries it can serve well,
//! and one with many cores gets the whole pool.
//!
//! The bulkhead owns its slot count (`held` against `limit`, under one mutex held for a
//! few steps per admission and release), not a `tokio::sync::Semaphore`, whose permits
//! cannot be taken back: a lowered limit (adaptive, or from a reload through
//! [`Bulkhead::reconfigure`]) takes effect as running calls finish, because a released
//! slot is handed on only while `held < limit`; a raised one hands slots to waiters at
//! once. No actor hop, on purpose: an actor in front of every database call would add a
//! cross-task wakeup per call and nothing this lock lacks; a reload's new settings are
//! applied under the same lock, between two admissions.
//!
//! Metrics: `bulkhead_bulkhead_in_flight{bulkhead}`, `bulkhead_bulkhead_queued{bulkhead}`,
//! `bulkhead_bulkhead_rejected_total{bulkhead, reason}` (`queue_full`, `caller_queue_full`,
//! `expected_wait`, `queue_timeout`), `bulkhead_bulkhead_queue_wait_seconds{bulkhead}`,
//! `bulkhead_bulkhead_limit{bulkhead}` (the concurrency limit in force).

mod adaptive;
mod blocking;
mod queue;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use tokio::sync::oneshot;
use tokio::time::Instant;

use adaptive::Vegas;
pub use blocking::BlockingPool;
use queue::FairQueue;

use crate::circuit::{Circuit, Classify};
use crate::config::BulkheadConfig;
use crate::ActorError;

/// The caller of anonymous work (and of every call when `fair = false`).
pub const SHARED_CALLER: u64 = 0;

struct Meters {
    in_flight: Gauge,
    queued: Gauge,
    queue_full: Counter,
    caller_queue_full: Counter,
    expected_wait: Counter,
    queue_timeout: Counter,
    wait: Histogram,
    limit: Gauge,
}

/// The settings a reload may change, applied under the lock between two admissions.
struct Settings {
    queue_capacity: usize,
    per_caller: usize,
    queue_timeout: Duration,
    reject_expected_timeouts: bool,
    fair: bool,
}

impl Settings {
    fn of(cfg: &BulkheadConfig) -> Self {
        Self {
            queue_capacity: cfg.queue_capacity,
            per_caller: cfg.max_queued_per_caller.min(cfg.queue_capacity),
            queue_timeout: Duration::from_millis(cfg.queue_timeout_ms),
            reject_expected_timeouts: cfg.reject_expected_timeouts,
            fair: cfg.fair,
        }
    }
}

/// Everything admission decides on, behind one mutex held for a few steps at a time.
/// The bulkhead owns its slot count: `held` never passes `limit` by an admission, and a
/// lowered limit takes effect as held slots are released (none is handed on while
/// `held >= limit`).
struct Core {
    held: usize,
    /// The limit in force: `max_concurrent`, or the adaptive limit.
    limit: usize,
    adaptive: Option<Vegas>,
    queue: FairQueue,
    settings: Settings,
    /// Moving average of how long a slot is held, in ns (0 until one is released).
    mean_hold_ns: u64,
}

impl Core {
    /// Folds one hold time into the moving average (weight 1/16: it follows a change in
    /// a few dozen calls).
    fn record_hold(&mut self, held: Duration) {
        let sample = u64::try_from(held.as_nanos()).unwrap_or(u64::MAX);
        let old = self.mean_hold_ns;
        self.mean_hold_ns = if old == 0 {
            sample.max(1)
        } else {
            (old - old / 16).saturating_add(sample / 16).max(1)
        };
    }

    /// The limit queue waits are estimated with: a probe's brief single file does not
    /// make the queue any longer than the limit it will restore.
    fn steady_limit(&self) -> usize {
        self.adaptive
            .as_ref()
            .map_or(self.limit, Vegas::steady_limit)
    }

    /// Whether a caller with `ahead` waiters served before it would wait past the
    /// deadline: it is admitted when `ahead + 1` slots have been released.
    fn would_time_out(&self, ahead: usize) -> bool {
        if !self.settings.reject_expected_timeouts {
            return false;
        }
        let mean = u128::from(self.mean_hold_ns);
        let limit = self.steady_limit().max(1) as u128;
        let expected = (ahead as u128 + 1) * mean / limit;
        expected > self.settings.queue_timeout.as_nanos()
    }

    /// Hands free slots to waiters, round robin across callers. A waiter whose future
    /// is gone cannot be granted (its guard removes it first, under this lock), so a
    /// failed send only skips it.
    fn grant_waiting(&mut self, meters: &Meters) {
        while self.held < self.limit {
            let Some(grant) = self.queue.pop() else {
                return;
            };
            meters.queued.decrement(1.0);
            if grant.send(()).is_ok() {
                self.held += 1;
                meters.in_flight.increment(1.0);
            }
        }
    }
}

struct Inner {
    name: String,
    core: Mutex<Core>,
    meters: Meters,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // Nothing under this lock panics halfway through a change.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot was released: feeds the hold time and the adaptive limit, then hands
    /// the slot on if the limit in force allows.
    fn release(&self, held: Duration, started_with: usize) {
        let mut core = self.lock();
        core.held -= 1;
        self.meters.in_flight.decrement(1.0);
        core.record_hold(held);
        if let Some(vegas) = &mut core.adaptive {
            if let Some(new) = vegas.on_release(held, started_with, Instant::now()) {
                core.limit = new;
                self.meters.limit.set(new as f64);
            }
        }
        core.grant_waiting(&self.meters);
    }
}

/// Handle to one workload class's admission. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

/// A taken slot; released on drop.
pub struct Slot {
    inner: Arc<Inner>,
    taken: Instant,
    /// Slots held when this one was taken, itself included.
    started_with: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner.release(self.taken.elapsed(), self.started_with);
    }
}

/// A queued caller's place. Dropped before its slot came (deadline, cancellation), it
/// leaves the queue; if the slot was handed to it meanwhile, it releases that slot.
/// It owns the receiving end of its grant, so the receiver outlives this check: a grant
/// sent before the check succeeded (and counted the slot as held).
struct Waiting<'a> {
    inner: &'a Inner,
    caller: u64,
    ticket: u64,
    grant: oneshot::Receiver<()>,
    /// Set once the slot is ours, so the drop does nothing.
    admitted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        let inner = self.inner;
        let mut core = inner.lock();
        if core.queue.remove(self.caller, self.ticket) {
            inner.meters.queued.decrement(1.0);
        } else {
            // Granted between the give-up and this lock: hand the slot on.
            core.held -= 1;
            inner.meters.in_flight.decrement(1.0);
            core.grant_waiting(&inner.meters);
        }
    }
}

impl Bulkhead {
    pub fn new(name: impl Into<String>, cfg: &BulkheadConfig) -> Result<Self, String> {
        let name = name.into();
        cfg.validate()
            .map_err(|e| format!("bulkheads.{name}.{e}"))?;
        let meters = Meters {
            in_flight: metrics::gauge!("bulkhead_bulkhead_in_flight", "bulkhead" => name.clone()),
            queued: metrics::gauge!("bulkhead_bulkhead_queued", "bulkhead" => name.clone()),
            queue_full: metrics::counter!("bulkhead_bulkhead_rejected_total", "bulkhead" => name.clone(), "reason" => "queue_full"),
            caller_queue_full: metrics::counter!("bulkhead_bulkhead_rejected_total", "bulkhead" => name.clone(), "reason" => "caller_queue_full"),
            expected_wait: metrics::counter!("bulkhead_bulkhead_rejected_total", "bulkhead" => name.clone(), "reason" => "expected_wait"),
            queue_timeout: metrics::counter!("bulkhead_bulkhead_rejected_total", "bulkhead" => name.clone(), "reason" => "queue_timeout"),
            wait: metrics::histogram!("bulkhead_bulkhead_queue_wait_seconds", "bulkhead" => name.clone()),
            limit: metrics::gauge!("bulkhead_bulkhead_limit", "bulkhead" => name.clone()),
        };
        meters.limit.set(cfg.max_concurrent as f64);
        let adaptive = cfg.adaptive.then(|| vegas(cfg));
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                core: Mutex::new(Core {
                    held: 0,
                    limit: cfg.max_concurrent,
                    adaptive,
                    queue: FairQueue::default(),
                    settings: Settings::of(cfg),
                    mean_hold_ns: 0,
                }),
                meters,
            }),
        })
    }

    /// New settings from a reload, applied between two admissions. A raised limit hands
    /// slots to waiters at once; a lowered one takes effect as running calls finish.
    /// Waiters already queued keep their deadline; a smaller queue refuses new callers
    /// until it has drained below its capacity.
    pub fn reconfigure(&self, cfg: &BulkheadConfig) -> Result<(), String> {
        cfg.validate()
            .map_err(|e| format!("bulkheads.{}.{e}", self.inner.name))?;
        let inner = &*self.inner;
        let mut core = inner.lock();
        core.settings = Settings::of(cfg);
        match (&mut core.adaptive, cfg.adaptive) {
            (Some(v), true) => v.set_bounds(
                cfg.min_concurrent,
                cfg.max_concurrent,
                Duration::from_millis(cfg.probe_interval_ms),
            ),
            (None, true) => core.adaptive = Some(vegas(cfg)),
            (_, false) => core.adaptive = None,
        }
        core.limit = core
            .adaptive
            .as_ref()
            .map_or(cfg.max_concurrent, Vegas::limit);
        inner.meters.limit.set(core.limit as f64);
        core.grant_waiting(&inner.meters);
        Ok(())
    }

    /// Waits (bounded, deadlined) for a slot, as the shared anonymous caller.
    pub async fn acquire(&self) -> Result<Slot, ActorError> {
        self.acquire_as(SHARED_CALLER).await
    }

    /// Waits (bounded, deadlined) for a slot as `caller` (a hash of the user, or of the
    /// client IP for anonymous work): the queue is shared fairly between callers.
    pub async fn acquire_as(&self, caller: u64) -> Result<Slot, ActorError> {
        let inner = &*self.inner;
        let (rx, ticket, caller, deadline) = {
            let mut core = inner.lock();
            if core.queue.is_empty() && core.held < core.limit {
                core.held += 1;
                inner.meters.in_flight.increment(1.0);
                let started_with = core.held;
                drop(core);
                return Ok(self.slot(started_with));
            }
            let caller = if core.settings.fair {
                caller
            } else {
                SHARED_CALLER
            };
            let s = &core.settings;
            let refused = if core.queue.len() >= s.queue_capacity {
                Some(&inner.meters.queue_full)
            } else if core.queue.len_of(caller) >= s.per_caller {
                Some(&inner.meters.caller_queue_full)
            } else if core.would_time_out(core.queue.ahead_of_new(caller)) {
                Some(&inner.meters.expected_wait)
            } else {
                None
            };
            if let Some(counter) = refused {
                counter.increment(1);
                return Err(ActorError::Overloaded {
                    retry_after: retry_after(s.queue_timeout),
                });
            }
            let deadline = s.queue_timeout;
            let (tx, rx) = oneshot::channel();
            let ticket = core.queue.push(caller, tx);
            inner.meters.queued.increment(1.0);
            (rx, ticket, caller, deadline)
        };
        let mut place = Waiting {
            inner,
            caller,
            ticket,
            grant: rx,
            admitted: false,
        };
        let started = Instant::now();
        let waited = tokio::time::timeout(deadline, &mut place.grant).await;
        inner.meters.wait.record(started.elapsed().as_secs_f64());
        let granted = match waited {
            Ok(Ok(())) => true,
            // The sender went without a grant: only when the bulkhead itself is gone.
            Ok(Err(_)) => {
                place.admitted = true;
                return Err(ActorError::Unavailable);
            }
            Err(_elapsed) => {
                let mut core = inner.lock();
                // Still queued: the deadline passed. Not queued: granted meanwhile.
                let queued = core.queue.remove(caller, ticket);
                if queued {
                    inner.meters.queued.decrement(1.0);
                }
                !queued
            }
        };
        place.admitted = true;
        if !granted {
            inner.meters.queue_timeout.increment(1);
            return Err(ActorError::Overloaded {
                retry_after: retry_after(deadline),
            });
        }
        let started_with = inner.lock().held;
        Ok(self.slot(started_with))
    }

    /// Runs `fut` once admitted; the slot is held until `fut` completes or is dropped.
    pub async fn run<F: Future>(&self, fut: F) -> Result<F::Output, ActorError> {
        let _slot = self.acquire().await?;
        Ok(fut.await)
    }

    /// Like [`run`](Self::run), queued as `caller`.
    pub async fn run_as<F: Future>(&self, caller: u64, fut: F) -> Result<F::Output, ActorError> {
        let _slot = self.acquire_as(caller).await?;
        Ok(fut.await)
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().held
    }

    /// The concurrency limit in force: `max_concurrent`, or the adaptive limit (1 while
    /// it probes the no-load hold time).
    pub fn limit(&self) -> usize {
        self.inner.lock().limit
    }

    /// The adaptive limit's estimate of a call's hold time when it runs alone.
    pub fn noload_hold(&self) -> Option<Duration> {
        self.inner.lock().adaptive.as_ref()?.noload()
    }

    /// Callers waiting now.
    pub fn queued(&self) -> usize {
        self.inner.lock().queue.len()
    }

    fn slot(&self, started_with: usize) -> Slot {
        Slot {
            inner: self.inner.clone(),
            taken: Instant::now(),
            started_with,
        }
    }
}

fn vegas(cfg: &BulkheadConfig) -> Vegas {
    Vegas::new(
        cfg.min_concurrent,
        cfg.max_concurrent,
        Duration::from_millis(cfg.probe_interval_ms),
    )
}

fn retry_after(queue_timeout: Duration) -> Duration {
    queue_timeout.max(Duration::from_secs(1))
}

/// The usual composition for a dependency call. Order matters: the bulkhead admits first
/// (a full bulkhead must not count as a dependency failure), then the circuit (an open
/// circuit answers without taking a queue place for long), then the call, whose result the
/// caller classifies. Outer error: admission; inner value: the call's own result.
pub async fn guarded<T, Fut>(
    bulkhead: &Bulkhead,
    circuit: &Circuit,
    fut: Fut,
    classify: impl Classify<T>,
) -> Result<T, ActorError>
where
    Fut: Future<Output = T>,
{
    guarded_as(bulkhead, SHARED_CALLER, circuit, fut, classify).await
}

/// [`guarded`], queued in the bulkhead as `caller`.
pub async fn guarded_as<T, Fut>(
    bulkhead: &Bulkhead,
    caller: u64,
    circuit: &Circuit,
    fut: Fut,
    classify: impl Classify<T>,
) -> Result<T, ActorError>
where
    Fut: Future<Output = T>,
{
    let _slot = bulkhead.acquire_as(caller).await?;
    circuit.call(fut, classify).await
}
