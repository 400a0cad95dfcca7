//! Circuit breaker per dependency (Resilience4j semantics), owned by a ticker actor.
//!
//! ```text
//! let pg = Circuit::start("postgres", cfg.circuits.postgres.clone())?;
//! let permit = pg.try_acquire()?;                  // CircuitOpen { retry_after } when open
//! let result = store.get_user(id).await;
//! permit.record(classify(&result));                // Success / Failure / Ignored
//! // or: pg.call(store.get_user(id), |r: &Result<_, StoreError>| ...).await?
//! ```
//! A permit dropped without `record` is a cancellation: released, never counted (in
//! half-open that frees its trial slot). The permit measures the call's duration, so
//! calls of at least `slow_call_duration_ms` count toward the slow-call rate. Which
//! results are failures is the caller's choice ([`Classify`]): 4xx-like answers, bulkhead
//! rejections and cancellations should be `Ignored`.
//!
//! Hot path: on a closed circuit `try_acquire` is one atomic load (the packed
//! `epoch|state` word); `record` takes an uncontended mutex to update the window. The
//! actor owns the timers: it ticks open -> half-open after `open_wait_ms` and a stuck
//! half-open back to open after `half_open_timeout_ms` so `state()` and the gauges move
//! without traffic (the same transitions are also applied lazily on every call, which
//! makes them exact on a paused tokio clock).
//!
//! Metrics: `bulkhead_circuit_state{circuit, state}` (one 0/1 series per state),
//! `bulkhead_circuit_transitions_total{circuit, from, to}`,
//! `bulkhead_circuit_calls_total{circuit, outcome}`.

mod core;
mod window;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use self::core::{unpack_state, Shared};
use crate::config::CircuitConfig;
use crate::supervise::Meter;
use crate::ActorError;

/// State of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CircuitState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// How a finished call counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Not the dependency's fault (4xx-like, business error, rejection): not counted.
    Ignored,
}

/// Classifies a call's result. Implemented for any `Fn(&T) -> Outcome`.
pub trait Classify<T> {
    fn classify(&self, result: &T) -> Outcome;
}

impl<T, F: Fn(&T) -> Outcome> Classify<T> for F {
    fn classify(&self, result: &T) -> Outcome {
        self(result)
    }
}

/// Handle to one dependency's circuit. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Circuit {
    shared: Arc<Shared>,
    meter: Arc<Meter>,
    _actor: Addr<CircuitActor>,
}

impl Circuit {
    /// Validates `cfg` and starts the supervised ticker actor on the current arbiter.
    pub fn start(name: impl Into<String>, cfg: CircuitConfig) -> Result<Self, String> {
        let name = name.into();
        cfg.validate().map_err(|e| format!("circuits.{name}.{e}"))?;
        let shared = Arc::new(Shared::new(name, cfg));
        let meter = Arc::new(Meter::new("circuit"));
        let actor = CircuitActor {
            shared: shared.clone(),
            meter: meter.clone(),
        };
        let addr = Supervisor::start(move |_| actor);
        Ok(Self {
            shared,
            meter,
            _actor: addr,
        })
    }

    /// New thresholds and waits from a reload (validated here too), applied under the
    /// circuit's lock between two calls; see `Shared::reconfigure` for what a changed
    /// window does.
    pub fn reconfigure(&self, cfg: CircuitConfig) -> Result<(), String> {
        cfg.validate()
            .map_err(|e| format!("circuits.{}.{e}", self.shared.name))?;
        self.shared.reconfigure(cfg, Instant::now());
        Ok(())
    }

    /// Admits a call, or answers `CircuitOpen { retry_after }`.
    #[inline]
    pub fn try_acquire(&self) -> Result<CircuitPermit, ActorError> {
        let word = self.shared.word.load(Ordering::Acquire);
        let now = Instant::now();
        let (epoch, trial) = if unpack_state(word) == CircuitState::Closed {
            (word >> 2, false)
        } else {
            self.shared
                .admit(now)
                .inspect_err(|_| self.shared.calls.rejected.increment(1))?
        };
        Ok(CircuitPermit {
            shared: self.shared.clone(),
            epoch,
            trial,
            start: now,
            done: false,
        })
    }

    /// Runs `fut` under a permit and records its classified result.
    pub async fn call<T, Fut>(&self, fut: Fut, classify: impl Classify<T>) -> Result<T, ActorError>
    where
        Fut: Future<Output = T>,
    {
        let permit = self.try_acquire()?;
        let out = fut.await;
        permit.record(classify.classify(&out));
        Ok(out)
    }

    /// Current state (one atomic load; for `/ready`).
    pub fn state(&self) -> CircuitState {
        unpack_state(self.shared.word.load(Ordering::Acquire))
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Ticker actor restarts since start.
    pub fn restarts(&self) -> u64 {
        self.meter.restarts()
    }
}

/// Permission for one call. Record its outcome, or drop it to cancel.
#[must_use = "drop means cancelled; call record(outcome)"]
pub struct CircuitPermit {
    shared: Arc<Shared>,
    epoch: u64,
    trial: bool,
    start: Instant,
    done: bool,
}

impl CircuitPermit {
    /// Records the outcome; the duration since `try_acquire` decides slowness.
    pub fn record(mut self, outcome: Outcome) {
        self.done = true;
        let now = Instant::now();
        let slow = now.saturating_duration_since(self.start)
            >= Duration::from_nanos(self.shared.slow_call_ns.load(Ordering::Relaxed));
        let calls = &self.shared.calls;
        match (outcome, slow) {
            (Outcome::Success, false) => calls.success.increment(1),
            (Outcome::Success, true) => calls.slow_success.increment(1),
            (Outcome::Failure, false) => calls.failure.increment(1),
            (Outcome::Failure, true) => calls.slow_failure.increment(1),
            (Outcome::Ignored, _) => calls.ignored.increment(1),
        }
        let result = match outcome {
            Outcome::Ignored => None,
            Outcome::Success => Some((false, slow)),
            Outcome::Failure => Some((true, slow)),
        };
        self.shared.finish(self.epoch, self.trial, result, now);
    }

    /// True for a half-open trial call.
    pub fn is_trial(&self) -> bool {
        self.trial
    }
}

impl Drop for CircuitPermit {
    fn drop(&mut self) {
        if !self.done {
            self.shared.calls.cancelled.increment(1);
            self.shared
                .finish(self.epoch, self.trial, None, Instant::now());
        }
    }
}

/// Owns the circuit's timers; restarted by its supervisor.
struct CircuitActor {
    shared: Arc<Shared>,
    meter: Arc<Meter>,
}

impl Actor for CircuitActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The actor receives no request messages; a small mailbox is enough.
        ctx.set_mailbox_capacity(16);
        ctx.run_interval(self.shared.tick, |act, ctx| {
            // Every `Circuit` handle (and permit) is gone: nothing can ask this circuit
            // again (a gateway route replaced by a reload). The interval would keep the
            // actor alive for ever; stopping it with no address left ends it for good.
            if Arc::strong_count(&act.shared) == 1 {
                ctx.stop();
                return;
            }
            let shared = act.shared.clone();
            let ticked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                shared.tick(Instant::now())
            }));
            if ticked.is_err() {
                ctx.stop();
            }
        });
    }
}

impl Supervised for CircuitActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.meter.restarted();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn the_ticker_ends_when_the_last_handle_is_dropped() {
        tokio::time::pause();
        let circuit = Circuit::start("dropped", CircuitConfig::default()).unwrap();
        let copy = circuit.clone();
        let shared = Arc::downgrade(&circuit.shared);
        let tick = circuit.shared.tick;
        drop(circuit);
        for _ in 0..3 {
            tokio::time::advance(tick).await;
            tokio::task::yield_now().await;
        }
        assert!(
            shared.upgrade().is_some(),
            "a clone still holds the circuit"
        );
        drop(copy);
        for _ in 0..3 {
            tokio::time::advance(tick).await;
            tokio::task::yield_now().await;
        }
        assert!(shared.upgrade().is_none(), "the ticker actor still runs");
    }
}
