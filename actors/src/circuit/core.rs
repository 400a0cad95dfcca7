//! The circuit's state machine, behind one mutex, plus the packed atomic word that gives
//! `try_acquire` on a closed circuit (and `state()`) a lock-free fast path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use metrics::{Counter, Gauge};
use tokio::time::Instant;

use super::window::{Totals, Window};
use super::CircuitState;
use crate::config::CircuitConfig;
use crate::ActorError;

/// `epoch << 2 | state`: the epoch changes on every transition so a permit taken in an
/// earlier state cannot count in a later one.
pub fn pack(epoch: u64, state: CircuitState) -> u64 {
    (epoch << 2) | state as u64
}

pub fn unpack_state(word: u64) -> CircuitState {
    match word & 3 {
        0 => CircuitState::Closed,
        1 => CircuitState::Open,
        _ => CircuitState::HalfOpen,
    }
}

struct Core {
    /// The settings in force; a reload replaces them under this lock.
    cfg: CircuitConfig,
    state: CircuitState,
    epoch: u64,
    since: Instant,
    window: Window,
    trials_in_flight: u32,
    trials: Totals,
}

pub struct Shared {
    pub name: String,
    /// `slow_call_duration_ms` in ns, read by permits without the lock.
    pub slow_call_ns: AtomicU64,
    /// The ticker's period, fixed at start (the transitions it shows early are also
    /// applied lazily on every call, so a reload's new waits are exact without it).
    pub tick: Duration,
    pub word: AtomicU64,
    core: Mutex<Core>,
    gauges: [Gauge; 3],
    pub calls: CallCounters,
}

pub struct CallCounters {
    pub success: Counter,
    pub failure: Counter,
    pub slow_success: Counter,
    pub slow_failure: Counter,
    pub ignored: Counter,
    pub cancelled: Counter,
    pub rejected: Counter,
}

const STATES: [CircuitState; 3] = [
    CircuitState::Closed,
    CircuitState::Open,
    CircuitState::HalfOpen,
];

impl Shared {
    pub fn new(name: String, cfg: CircuitConfig) -> Self {
        let now = Instant::now();
        let calls = |outcome: &'static str| metrics::counter!("bulkhead_circuit_calls_total", "circuit" => name.clone(), "outcome" => outcome);
        let calls = CallCounters {
            success: calls("success"),
            failure: calls("failure"),
            slow_success: calls("slow_success"),
            slow_failure: calls("slow_failure"),
            ignored: calls("ignored"),
            cancelled: calls("cancelled"),
            rejected: calls("rejected"),
        };
        let gauges = STATES.map(|s| {
            metrics::gauge!("bulkhead_circuit_state", "circuit" => name.clone(), "state" => s.as_str())
        });
        gauges[0].set(1.0);
        gauges[1].set(0.0);
        gauges[2].set(0.0);
        let tick = Duration::from_millis(cfg.open_wait_ms.min(cfg.half_open_timeout_ms) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let slow_call_ns = AtomicU64::new(cfg.slow_call_duration_ms.saturating_mul(1_000_000));
        let core = Core {
            state: CircuitState::Closed,
            epoch: 0,
            since: now,
            window: Window::new(&cfg, now),
            trials_in_flight: 0,
            trials: Totals::default(),
            cfg,
        };
        Self {
            name,
            slow_call_ns,
            tick,
            word: AtomicU64::new(0),
            core: Mutex::new(core),
            gauges,
            calls,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves a consistent-enough state: keep going.
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// New thresholds and waits from a reload, applied between two calls. A changed
    /// window (kind or size) starts empty; the state and its timers stay, and the new
    /// waits count from the state's start.
    pub fn reconfigure(&self, cfg: CircuitConfig, now: Instant) {
        let mut core = self.lock();
        if core.cfg.window != cfg.window || core.cfg.window_size != cfg.window_size {
            core.window = Window::new(&cfg, now);
        }
        self.slow_call_ns.store(
            cfg.slow_call_duration_ms.saturating_mul(1_000_000),
            Ordering::Relaxed,
        );
        core.cfg = cfg;
        self.advance(&mut core, now);
    }

    /// Slow path of `try_acquire`: the circuit was not closed at the fast-path load.
    /// Returns the epoch the permit belongs to and whether it is a half-open trial.
    pub fn admit(&self, now: Instant) -> Result<(u64, bool), ActorError> {
        let mut core = self.lock();
        self.advance(&mut core, now);
        match core.state {
            CircuitState::Closed => Ok((core.epoch, false)),
            CircuitState::Open => {
                let until = core.since + Duration::from_millis(core.cfg.open_wait_ms);
                Err(ActorError::CircuitOpen {
                    retry_after: until.saturating_duration_since(now),
                })
            }
            CircuitState::HalfOpen => {
                if core.trials_in_flight + core.trials.calls < core.cfg.half_open_trial_calls {
                    core.trials_in_flight += 1;
                    Ok((core.epoch, true))
                } else {
                    Err(ActorError::CircuitOpen {
                        retry_after: Duration::from_millis(core.cfg.open_wait_ms),
                    })
                }
            }
        }
    }

    /// Records a finished call (`outcome` = Some((failed, slow))) or releases a permit
    /// without counting it (`None`: ignored or cancelled).
    pub fn finish(&self, epoch: u64, trial: bool, outcome: Option<(bool, bool)>, now: Instant) {
        let mut core = self.lock();
        self.advance(&mut core, now);
        if core.epoch != epoch {
            return; // The circuit moved on since this permit was taken.
        }
        match (core.state, outcome) {
            (CircuitState::HalfOpen, _) if trial => {
                core.trials_in_flight = core.trials_in_flight.saturating_sub(1);
                let Some((failed, slow)) = outcome else {
                    return;
                };
                core.trials.add_one(failed, slow);
                if core.trials.calls >= core.cfg.half_open_trial_calls {
                    let to = if core.trials.trips(&core.cfg, 1) {
                        CircuitState::Open
                    } else {
                        CircuitState::Closed
                    };
                    self.transition(&mut core, to, now);
                }
            }
            (CircuitState::Closed, Some((failed, slow))) => {
                core.window.record(now, failed, slow);
                if core
                    .window
                    .totals(now)
                    .trips(&core.cfg, core.cfg.minimum_calls)
                {
                    self.transition(&mut core, CircuitState::Open, now);
                }
            }
            _ => {}
        }
    }

    /// Applies the time-driven transitions (open -> half-open, stuck half-open -> open).
    pub fn tick(&self, now: Instant) {
        let mut core = self.lock();
        self.advance(&mut core, now);
    }

    fn advance(&self, core: &mut Core, now: Instant) {
        let elapsed = now.saturating_duration_since(core.since);
        match core.state {
            CircuitState::Open if elapsed >= Duration::from_millis(core.cfg.open_wait_ms) => {
                self.transition(core, CircuitState::HalfOpen, now);
            }
            CircuitState::HalfOpen
                if elapsed >= Duration::from_millis(core.cfg.half_open_timeout_ms) =>
            {
                self.transition(core, CircuitState::Open, now);
            }
            _ => {}
        }
    }

    fn transition(&self, core: &mut Core, to: CircuitState, now: Instant) {
        let from = core.state;
        core.state = to;
        core.epoch += 1;
        core.since = now;
        core.trials_in_flight = 0;
        core.trials = Totals::default();
        if to == CircuitState::Closed {
            core.window = Window::new(&core.cfg, now);
        }
        self.word.store(pack(core.epoch, to), Ordering::Release);
        self.gauges[from as usize].set(0.0);
        self.gauges[to as usize].set(1.0);
        metrics::counter!(
            "bulkhead_circuit_transitions_total",
            "circuit" => self.name.clone(),
            "from" => from.as_str(),
            "to" => to.as_str()
        )
        .increment(1);
        tracing::warn!(circuit = %self.name, from = from.as_str(), to = to.as_str(), "circuit transition");
    }
}
