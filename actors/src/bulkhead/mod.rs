//! Admission per workload class: a concurrency limit, a bounded wait queue and a queue
//! deadline ("db_read", "db_write"); [`BlockingPool`] adds dedicated threads ("hashing").
//!
//! ```text
//! let reads = Bulkhead::new("db_read", &cfg.bulkheads.db_read)?;
//! let user = reads.run(store.get_user(id)).await?;            // Overloaded -> 503
//! let user = guarded(&reads, &pg, store.get_user(id), classify).await??;
//! ```
//! A caller finding all `max_concurrent` slots taken waits in the queue if it has room
//! (else `Overloaded` at once, `reason="queue_full"`), for at most `queue_timeout_ms`
//! (else `Overloaded`, `reason="queue_timeout"`). A caller cancelled while queued frees
//! its queue place and never takes a slot. Waiters are admitted in FIFO order.
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
//! and one with many cores gets the whole pool. Lowering the limit takes effect as
//! running calls finish (their permits are forgotten instead of returned).
//!
//! No actor here, on purpose: admission is a `tokio::sync::Semaphore` plus an atomic queue
//! counter, which is exactly the bounded state a bulkhead needs; an actor hop in front of
//! every database call would add a cross-task wakeup and nothing the semaphore lacks.
//!
//! Metrics: `bulkhead_bulkhead_in_flight{bulkhead}`, `bulkhead_bulkhead_queued{bulkhead}`,
//! `bulkhead_bulkhead_rejected_total{bulkhead, reason}` (`queue_full`, `expected_wait`,
//! `queue_timeout`), `bulkhead_bulkhead_queue_wait_seconds{bulkhead}`,
//! `bulkhead_bulkhead_limit{bulkhead}` (the concurrency limit in force).

mod adaptive;
mod blocking;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use adaptive::Vegas;
pub use blocking::BlockingPool;

use crate::circuit::{Circuit, Classify};
use crate::config::BulkheadConfig;
use crate::ActorError;

struct Meters {
    in_flight: Gauge,
    queued: Gauge,
    queue_full: Counter,
    expected_wait: Counter,
    queue_timeout: Counter,
    wait: Histogram,
    limit: Gauge,
}

struct Inner {
    name: String,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    /// Slots held now.
    in_flight: AtomicUsize,
    /// The limit queue waits are estimated with (fixed: `max_concurrent`).
    limit: AtomicUsize,
    adaptive: Option<Mutex<Adaptive>>,
    queue_capacity: usize,
    queue_timeout: Duration,
    reject_expected_timeouts: bool,
    /// Moving average of how long a slot is held, in ns (0 until a slot is released).
    mean_hold_ns: AtomicU64,
    meters: Meters,
}

impl Inner {
    /// Folds one hold time into the moving average (weight 1/16: it follows a change in
    /// a few dozen calls). Racing updates may lose a sample, which an estimate tolerates.
    fn record_hold(&self, held: Duration) {
        let sample = u64::try_from(held.as_nanos()).unwrap_or(u64::MAX);
        let old = self.mean_hold_ns.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample.max(1)
        } else {
            (old - old / 16).saturating_add(sample / 16).max(1)
        };
        self.mean_hold_ns.store(new, Ordering::Relaxed);
    }

    /// Whether a caller with `ahead` callers queued before it would wait past the
    /// deadline: it is admitted when `ahead + 1` slots have been released.
    fn would_time_out(&self, ahead: usize) -> bool {
        if !self.reject_expected_timeouts {
            return false;
        }
        let mean = self.mean_hold_ns.load(Ordering::Relaxed) as u128;
        let limit = self.limit.load(Ordering::Relaxed).max(1) as u128;
        let expected = (ahead as u128 + 1) * mean / limit;
        expected > self.queue_timeout.as_nanos()
    }

    /// A slot was released: feeds the adaptive limit, then returns the permit, or
    /// forgets it when the limit was lowered below the permits out.
    fn release(&self, permit: OwnedSemaphorePermit, held: Duration, started_with: usize) {
        let Some(adaptive) = &self.adaptive else {
            return; // the permit goes back on drop
        };
        let mut a = adaptive.lock().unwrap_or_else(|e| e.into_inner());
        let old = a.vegas.limit();
        if let Some(new) = a.vegas.on_release(held, started_with, Instant::now()) {
            self.limit.store(a.vegas.steady_limit(), Ordering::Relaxed);
            self.meters.limit.set(new as f64);
            if new > old {
                let paid = a.debt.min(new - old);
                a.debt -= paid;
                self.slots.add_permits(new - old - paid);
            } else {
                a.debt += (old - new) - self.slots.forget_permits(old - new);
            }
        }
        if a.debt > 0 {
            a.debt -= 1;
            permit.forget();
        }
    }
}

/// The adaptive limit and the permits it still has to take back: lowering the limit
/// forgets the free permits at once and owes the rest, paid as held ones are released.
struct Adaptive {
    vegas: Vegas,
    debt: usize,
}

/// Handle to one workload class's admission. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

/// A taken slot; released on drop.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    inner: Arc<Inner>,
    taken: Instant,
    /// Slots held when this one was taken, itself included.
    started_with: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let held = self.taken.elapsed();
        self.inner.record_hold(held);
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.inner.meters.in_flight.decrement(1.0);
        if let Some(permit) = self.permit.take() {
            self.inner.release(permit, held, self.started_with);
        }
    }
}

struct QueuePlace<'a>(&'a Inner);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
        self.0.meters.queued.decrement(1.0);
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
            expected_wait: metrics::counter!("bulkhead_bulkhead_rejected_total", "bulkhead" => name.clone(), "reason" => "expected_wait"),
            queue_timeout: metrics::counter!("bulkhead_bulkhead_rejected_total", "bulkhead" => name.clone(), "reason" => "queue_timeout"),
            wait: metrics::histogram!("bulkhead_bulkhead_queue_wait_seconds", "bulkhead" => name.clone()),
            limit: metrics::gauge!("bulkhead_bulkhead_limit", "bulkhead" => name.clone()),
        };
        meters.limit.set(cfg.max_concurrent as f64);
        let adaptive = cfg.adaptive.then(|| {
            Mutex::new(Adaptive {
                vegas: Vegas::new(
                    cfg.min_concurrent,
                    cfg.max_concurrent,
                    Duration::from_millis(cfg.probe_interval_ms),
                ),
                debt: 0,
            })
        });
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                slots: Arc::new(Semaphore::new(cfg.max_concurrent)),
                queued: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                limit: AtomicUsize::new(cfg.max_concurrent),
                adaptive,
                queue_capacity: cfg.queue_capacity,
                queue_timeout: Duration::from_millis(cfg.queue_timeout_ms),
                reject_expected_timeouts: cfg.reject_expected_timeouts,
                mean_hold_ns: AtomicU64::new(0),
                meters,
            }),
        })
    }

    /// Waits (bounded, deadlined) for a slot.
    pub async fn acquire(&self) -> Result<Slot, ActorError> {
        let inner = &*self.inner;
        if let Ok(permit) = inner.slots.clone().try_acquire_owned() {
            return Ok(self.slot(permit));
        }
        let claimed = inner
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < inner.queue_capacity && !inner.would_time_out(q)).then_some(q + 1)
            });
        if let Err(ahead) = claimed {
            if ahead >= inner.queue_capacity {
                inner.meters.queue_full.increment(1);
            } else {
                inner.meters.expected_wait.increment(1);
            }
            return Err(ActorError::Overloaded {
                retry_after: self.retry_after(),
            });
        }
        inner.meters.queued.increment(1.0);
        let place = QueuePlace(inner);
        let started = Instant::now();
        let waited =
            tokio::time::timeout(inner.queue_timeout, inner.slots.clone().acquire_owned()).await;
        drop(place);
        inner.meters.wait.record(started.elapsed().as_secs_f64());
        match waited {
            Ok(Ok(permit)) => Ok(self.slot(permit)),
            Ok(Err(_closed)) => Err(ActorError::Unavailable),
            Err(_elapsed) => {
                inner.meters.queue_timeout.increment(1);
                Err(ActorError::Overloaded {
                    retry_after: self.retry_after(),
                })
            }
        }
    }

    /// Runs `fut` once admitted; the slot is held until `fut` completes or is dropped.
    pub async fn run<F: Future>(&self, fut: F) -> Result<F::Output, ActorError> {
        let _slot = self.acquire().await?;
        Ok(fut.await)
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// The concurrency limit in force: `max_concurrent`, or the adaptive limit (1 while
    /// it probes the no-load hold time).
    pub fn limit(&self) -> usize {
        match &self.inner.adaptive {
            Some(a) => a.lock().unwrap_or_else(|e| e.into_inner()).vegas.limit(),
            None => self.inner.limit.load(Ordering::Relaxed),
        }
    }

    /// The adaptive limit's estimate of a call's hold time when it runs alone.
    pub fn noload_hold(&self) -> Option<Duration> {
        let a = self.inner.adaptive.as_ref()?;
        a.lock().unwrap_or_else(|e| e.into_inner()).vegas.noload()
    }

    /// Callers waiting now.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Acquire)
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        let started_with = self.inner.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner.meters.in_flight.increment(1.0);
        Slot {
            permit: Some(permit),
            inner: self.inner.clone(),
            taken: Instant::now(),
            started_with,
        }
    }

    fn retry_after(&self) -> Duration {
        self.inner.queue_timeout.max(Duration::from_secs(1))
    }
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
    let _slot = bulkhead.acquire().await?;
    circuit.call(fut, classify).await
}
