//! The adaptive concurrency limit of a bulkhead (`adaptive = true`): TCP Vegas over the
//! time slots are held, with BBR-style probes of the no-load hold time.
//!
//! A dependency has some parallelism `P` (a database's cores, a pool's connections). Run
//! `L > P` calls at once and the extra `L - P` only queue inside it: each call takes
//! about `L / P` times as long, throughput does not rise, and on a machine the database
//! shares with the service the waiting backends take CPU from the service too. Run
//! `L < P` and capacity idles. Vegas estimates the calls queued inside the dependency
//! from the hold times alone:
//!
//! ```text
//! queued = L * (1 - noload / hold)        // noload: hold time of a call running alone
//! queued < ALPHA and the limit was reached -> L + 1
//! queued > BETA                            -> L - 1          (once per window of L calls)
//! ```
//!
//! so the limit settles a few calls above the dependency's parallelism, wherever that is,
//! between `min_concurrent` and `max_concurrent`.
//!
//! The no-load hold time is what calls that started alone took (a moving average), or a
//! window's mean when that is lower. Under constant saturation no call starts alone and
//! the figure would grow stale, so when it is older than `probe_interval` and the limit
//! is in use, the limit drops to one for [`PROBE_SAMPLES`] calls and their mean becomes
//! the no-load figure (BBR's ProbeRTT); then the limit is restored. A probe costs a few
//! single-file calls every `probe_interval`.
//!
//! This type is only the arithmetic; [`super::Bulkhead`] owns the permits and calls it
//! under a lock once per released slot.

use std::time::Duration;

use tokio::time::Instant;

/// Fewer calls than this queued inside the dependency: room to grow.
const ALPHA: f64 = 2.0;
/// More than this queued inside the dependency: shrink.
const BETA: f64 = 4.0;
/// A window spans at least this many calls (and at least the limit's worth).
const MIN_WINDOW: u32 = 8;
/// Calls a probe measures alone.
pub(crate) const PROBE_SAMPLES: u32 = 4;
/// A probe that cannot measure its calls in this long ends without them.
const PROBE_MAX: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Vegas {
    min: usize,
    max: usize,
    probe_interval: Duration,
    limit: usize,
    window: Window,
    /// Hold time of a call running alone, in ns, and when it was last measured.
    noload: Option<(u64, Instant)>,
    probe: Option<Probe>,
}

#[derive(Debug, Default)]
struct Window {
    calls: u32,
    sum_ns: u64,
    /// Some call in the window found the limit reached when it started.
    saturated: bool,
}

#[derive(Debug)]
struct Probe {
    /// The limit to restore.
    saved: usize,
    started: Instant,
    calls: u32,
    sum_ns: u64,
}

impl Vegas {
    pub(crate) fn new(min: usize, max: usize, probe_interval: Duration) -> Self {
        Self {
            min,
            max,
            probe_interval,
            limit: max,
            window: Window::default(),
            noload: None,
            probe: None,
        }
    }

    /// New bounds from a reload: the limit (and a probe's saved one) is clamped into them
    /// at once; the window restarts, so the next move is judged under the new bounds.
    pub(crate) fn set_bounds(&mut self, min: usize, max: usize, probe_interval: Duration) {
        self.min = min;
        self.max = max;
        self.probe_interval = probe_interval;
        self.window = Window::default();
        match &mut self.probe {
            Some(probe) => probe.saved = probe.saved.clamp(min, max),
            None => self.limit = self.limit.clamp(min, max),
        }
    }

    /// The limit admission enforces now (1 during a probe).
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The limit to estimate queue waits with: a probe's brief single file does not make
    /// the queue any longer than the limit it will restore.
    pub(crate) fn steady_limit(&self) -> usize {
        self.probe.as_ref().map_or(self.limit, |p| p.saved)
    }

    pub(crate) fn noload(&self) -> Option<Duration> {
        self.noload.map(|(ns, _)| Duration::from_nanos(ns))
    }

    /// One released slot: how long it was held, and how many calls were running (itself
    /// included) when it started. Returns the new limit when it changed.
    pub(crate) fn on_release(
        &mut self,
        held: Duration,
        started_with: usize,
        now: Instant,
    ) -> Option<usize> {
        let ns = u64::try_from(held.as_nanos()).unwrap_or(u64::MAX).max(1);
        if let Some(probe) = &mut self.probe {
            if started_with == 1 {
                probe.calls += 1;
                probe.sum_ns = probe.sum_ns.saturating_add(ns);
            }
            if probe.calls < PROBE_SAMPLES && now.duration_since(probe.started) < PROBE_MAX {
                return None;
            }
            if probe.calls > 0 {
                self.noload = Some((probe.sum_ns / u64::from(probe.calls), now));
            } else if let Some((_, at)) = &mut self.noload {
                *at = now; // no measurement; don't probe again at once
            }
            let saved = probe.saved;
            self.probe = None;
            self.window = Window::default();
            return self.set(saved);
        }
        if started_with == 1 {
            self.noload = Some(match self.noload {
                Some((avg, at)) if now.duration_since(at) < self.probe_interval => {
                    (avg - avg / 8 + ns / 8, now)
                }
                _ => (ns, now),
            });
        }
        let w = &mut self.window;
        w.calls += 1;
        w.sum_ns = w.sum_ns.saturating_add(ns);
        w.saturated |= started_with >= self.limit;
        if w.calls < MIN_WINDOW.max(u32::try_from(self.limit).unwrap_or(u32::MAX)) {
            return None;
        }
        let Window {
            calls,
            sum_ns,
            saturated,
        } = std::mem::take(&mut self.window);
        let mean = sum_ns / u64::from(calls);
        let noload = match &mut self.noload {
            Some((ns, at)) => {
                if mean < *ns {
                    (*ns, *at) = (mean, now);
                }
                if saturated && now.duration_since(*at) >= self.probe_interval {
                    return self.start_probe(now);
                }
                *ns
            }
            None if saturated => return self.start_probe(now),
            None => {
                self.noload = Some((mean, now));
                mean
            }
        };
        let queued = self.limit as f64 * (1.0 - noload as f64 / mean as f64);
        if queued > BETA {
            self.set(self.limit - 1)
        } else if queued < ALPHA && saturated {
            self.set(self.limit + 1)
        } else {
            None
        }
    }

    fn start_probe(&mut self, now: Instant) -> Option<usize> {
        self.probe = Some(Probe {
            saved: self.limit,
            started: now,
            calls: 0,
            sum_ns: 0,
        });
        self.limit = 1;
        Some(1)
    }

    fn set(&mut self, limit: usize) -> Option<usize> {
        let limit = limit.clamp(self.min, self.max);
        (limit != self.limit).then(|| {
            self.limit = limit;
            limit
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds windows of calls that each take `hold(limit)` and start with the limit
    /// reached (a saturated dependency); returns the limit after `windows` windows.
    fn drive(v: &mut Vegas, now: &mut Instant, windows: usize, hold: impl Fn(usize) -> Duration) {
        for _ in 0..windows {
            let limit = v.limit();
            for _ in 0..limit.max(MIN_WINDOW as usize) {
                *now += hold(limit) / limit as u32;
                v.on_release(hold(limit), limit, *now);
            }
        }
    }

    #[test]
    fn a_dependency_with_one_core_settles_a_few_calls_above_one() {
        let (mut v, mut now) = (Vegas::new(1, 16, 5_000 * MS), Instant::now());
        drive(&mut v, &mut now, 60, |l| l as u32 * MS);
        // noload 1 ms, hold = L ms: queued = L - 1, so 3 <= L <= 5
        assert_eq!(v.noload(), Some(MS));
        assert!((3..=5).contains(&v.limit()), "limit {}", v.limit());
    }

    #[test]
    fn a_parallel_dependency_keeps_the_whole_limit() {
        let (mut v, mut now) = (Vegas::new(1, 16, 5_000 * MS), Instant::now());
        drive(&mut v, &mut now, 60, |_| 2 * MS);
        assert_eq!(v.limit(), 16);
    }

    #[test]
    fn a_dependency_with_eight_cores_settles_above_eight() {
        let (mut v, mut now) = (Vegas::new(1, 32, 5_000 * MS), Instant::now());
        drive(&mut v, &mut now, 100, |l| MS * (l.max(8) as u32) / 8);
        assert!((10..=13).contains(&v.limit()), "limit {}", v.limit());
    }

    #[test]
    fn a_stale_noload_is_probed_alone_and_the_limit_restored() {
        let (mut v, mut now) = (Vegas::new(1, 16, 100 * MS), Instant::now());
        drive(&mut v, &mut now, 3, |_| MS);
        assert_eq!(v.noload(), Some(MS));
        // The dependency becomes 3x slower for good, at any concurrency: at first it
        // looks like queueing and the limit shrinks, until a probe measures the new
        // no-load time; then the limit grows back.
        drive(&mut v, &mut now, 4, |_| 3 * MS);
        assert!(v.limit() < 16);
        let before = v.limit();
        now += 200 * MS;
        for _ in 0..before.max(MIN_WINDOW as usize) {
            v.on_release(3 * MS, before, now);
        }
        assert_eq!(v.limit(), 1, "probing");
        assert_eq!(v.steady_limit(), before);
        for _ in 0..PROBE_SAMPLES {
            now += 3 * MS;
            v.on_release(3 * MS, 1, now);
        }
        assert_eq!(v.limit(), before, "restored");
        assert_eq!(v.noload(), Some(3 * MS));
        drive(&mut v, &mut now, 40, |_| 3 * MS);
        assert_eq!(v.limit(), 16);
    }

    #[test]
    fn an_idle_limit_does_not_grow_and_calls_alone_keep_noload_fresh() {
        let (mut v, mut now) = (Vegas::new(1, 16, 100 * MS), Instant::now());
        drive(&mut v, &mut now, 30, |l| l as u32 * MS);
        let settled = v.limit();
        for _ in 0..1_000 {
            now += 10 * MS;
            assert_eq!(v.on_release(MS, 1, now), None);
        }
        assert_eq!(v.limit(), settled, "unused limit neither grows nor probes");
    }

    #[test]
    fn a_probe_without_calls_alone_ends_after_its_deadline() {
        let (mut v, mut now) = (Vegas::new(2, 16, 100 * MS), Instant::now());
        for _ in 0..16 {
            v.on_release(MS, 16, now);
        }
        assert_eq!(v.limit(), 1, "no noload yet and saturated: probe");
        now += PROBE_MAX;
        assert_eq!(v.on_release(MS, 3, now), Some(16));
    }
}
