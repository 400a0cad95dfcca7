//! CPU pool for blocking work (password hashing): `max_concurrent` dedicated threads
//! (an actix `SyncArbiter`, never an async worker) with a [`Bulkhead`] in front, because
//! the `SyncArbiter` queue itself is unbounded.
//!
//! ```text
//! let hashing = BlockingPool::start("hashing", &cfg.bulkheads.hashing)?;
//! let ok = hashing.run_blocking(move || verify(&password, &hash)).await?;
//! ```
//! The admission slot travels with the job and is released when the job has run, before
//! its caller is answered (or when the job is dropped unrun), so at most
//! `max_concurrent` jobs are ever inside the `SyncArbiter`. A caller
//! cancelled while queued frees its place; one cancelled after admission has its job
//! skipped if a thread has not started it yet. A panicking job answers its caller
//! `Panicked`, and its worker actor is stopped and recreated by the `SyncArbiter`
//! (counted in `bulkhead_actor_restarts_total{actor="bulkhead"}`).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::Bulkhead;
use crate::config::BulkheadConfig;
use crate::supervise::{contain, tell, Meter};
use crate::ActorError;

/// One blocking job; its closure owns its admission slot.
#[derive(Message)]
#[rtype(result = "()")]
struct Job {
    run: Box<dyn FnOnce() + Send>,
}

struct Worker {
    meter: Arc<Meter>,
}

impl Actor for Worker {
    type Context = SyncContext<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // A SyncContext recreates a stopped actor from the factory: that is the restart.
        self.meter.restarted();
    }
}

impl Handler<Job> for Worker {
    type Result = ();

    fn handle(&mut self, job: Job, ctx: &mut Self::Context) {
        contain::<Self, ()>(ctx, &self.meter, None, || {
            (job.run)();
            Ok(())
        });
    }
}

/// Handle to a blocking pool. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct BlockingPool {
    admission: Bulkhead,
    threads: usize,
    workers: Addr<Worker>,
    meter: Arc<Meter>,
}

impl BlockingPool {
    /// Starts `cfg.max_concurrent` threads; call inside a running actix `System`.
    pub fn start(name: impl Into<String>, cfg: &BulkheadConfig) -> Result<Self, String> {
        let name = name.into();
        if cfg.adaptive {
            return Err(format!(
                "bulkheads.{name}.adaptive: the blocking pool's threads are fixed; set it to false"
            ));
        }
        let admission = Bulkhead::new(name, cfg)?;
        let meter = Arc::new(Meter::new("bulkhead"));
        let factory_meter = meter.clone();
        let workers = SyncArbiter::start(cfg.max_concurrent, move || Worker {
            meter: factory_meter.clone(),
        });
        Ok(Self {
            admission,
            threads: cfg.max_concurrent,
            workers,
            meter,
        })
    }

    /// Runs `f` on a pool thread once admitted.
    pub async fn run_blocking<F, T>(&self, f: F) -> Result<T, ActorError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = self.admission.acquire().await?;
        let (tx, rx) = oneshot::channel::<Result<T, ActorError>>();
        // The slot travels inside the job: dropped unrun (cancelled, mailbox refused), the
        // job frees it; run, it frees it before answering, so a caller that has its
        // answer never finds its own slot still taken by the next call it makes.
        let run = Box::new(move || {
            let slot = slot;
            if tx.is_closed() {
                return; // The caller gave up while the job was queued: skip the work.
            }
            let outcome = catch_unwind(AssertUnwindSafe(f));
            drop(slot);
            match outcome {
                Ok(value) => {
                    let _ = tx.send(Ok(value));
                }
                Err(panic) => {
                    let _ = tx.send(Err(ActorError::Panicked { actor: "bulkhead" }));
                    resume_unwind(panic);
                }
            }
        });
        tell(&self.workers, &self.meter, Job { run })?;
        // No deadline of its own: the job is admitted and running on a bounded pool; a
        // caller that needs one wraps this call in `tokio::time::timeout`.
        rx.await.map_err(|_| ActorError::Unavailable)?
    }

    /// New admission settings from a reload (queue, deadline, fairness). The thread
    /// count is fixed at start, so `max_concurrent` must stay what it was.
    pub fn reconfigure(&self, cfg: &BulkheadConfig) -> Result<(), String> {
        let name = self.admission.name();
        if cfg.max_concurrent != self.threads {
            return Err(format!(
                "bulkheads.{name}.max_concurrent: the pool's {} threads are fixed at start",
                self.threads
            ));
        }
        if cfg.adaptive {
            return Err(format!(
                "bulkheads.{name}.adaptive: the blocking pool's threads are fixed; set it to false"
            ));
        }
        self.admission.reconfigure(cfg)
    }

    /// The admission in front of the threads (for its gauges and counters).
    pub fn admission(&self) -> &Bulkhead {
        &self.admission
    }

    /// Worker restarts (after panics) since start.
    pub fn restarts(&self) -> u64 {
        self.meter.restarts()
    }
}
