//! The closed-state sliding window of a circuit: count-based (last N calls) or time-based
//! (calls of the last N seconds, one bucket per second), with O(1) amortized updates.

use tokio::time::Instant;

use crate::config::{CircuitConfig, WindowKind};

/// Totals over the window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

impl Totals {
    pub fn add_one(&mut self, failed: bool, slow: bool) {
        self.add(failed, slow);
    }

    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failures += u32::from(failed);
        self.slow += u32::from(slow);
    }

    fn sub(&mut self, other: Totals) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }

    /// True when, with at least `minimum_calls`, a rate reaches its threshold.
    pub fn trips(&self, cfg: &CircuitConfig, minimum_calls: u32) -> bool {
        if self.calls == 0 || self.calls < minimum_calls {
            return false;
        }
        let calls = f64::from(self.calls);
        f64::from(self.failures) / calls >= cfg.failure_rate_threshold
            || f64::from(self.slow) / calls >= cfg.slow_call_rate_threshold
    }
}

#[derive(Debug)]
pub enum Window {
    Count {
        ring: Vec<(bool, bool)>,
        next: usize,
        len: usize,
        totals: Totals,
    },
    Time {
        buckets: Vec<(u64, Totals)>,
        base: Instant,
        last_sec: u64,
        totals: Totals,
    },
}

impl Window {
    pub fn new(cfg: &CircuitConfig, now: Instant) -> Self {
        let size = cfg.window_size.max(1) as usize;
        match cfg.window {
            WindowKind::Count => Self::Count {
                ring: vec![(false, false); size],
                next: 0,
                len: 0,
                totals: Totals::default(),
            },
            WindowKind::Time => Self::Time {
                buckets: vec![(0, Totals::default()); size],
                base: now,
                last_sec: 0,
                totals: Totals::default(),
            },
        }
    }

    pub fn record(&mut self, now: Instant, failed: bool, slow: bool) {
        if let Self::Count {
            ring,
            next,
            len,
            totals,
        } = self
        {
            if *len == ring.len() {
                let (f, s) = ring[*next];
                totals.sub(Totals {
                    calls: 1,
                    failures: u32::from(f),
                    slow: u32::from(s),
                });
            } else {
                *len += 1;
            }
            ring[*next] = (failed, slow);
            *next = (*next + 1) % ring.len();
            totals.add(failed, slow);
        } else {
            self.add_time(now, failed, slow);
        }
    }

    fn add_time(&mut self, now: Instant, failed: bool, slow: bool) {
        let sec = self.expire(now);
        if let Self::Time {
            buckets, totals, ..
        } = self
        {
            let i = (sec % buckets.len() as u64) as usize;
            buckets[i].0 = sec;
            buckets[i].1.add(failed, slow);
            totals.add(failed, slow);
        }
    }

    /// Drops time buckets that fell out of the window; returns the current second.
    fn expire(&mut self, now: Instant) -> u64 {
        match self {
            Self::Count { .. } => 0,
            Self::Time {
                buckets,
                base,
                last_sec,
                totals,
            } => {
                let sec = now.saturating_duration_since(*base).as_secs();
                let size = buckets.len() as u64;
                // Clear every bucket that was reused since the last call, at most one lap.
                let from = (*last_sec + 1).max(sec.saturating_sub(size - 1));
                for s in from..=sec {
                    let i = (s % size) as usize;
                    if buckets[i].0 != s {
                        totals.sub(buckets[i].1);
                        buckets[i] = (s, Totals::default());
                    }
                }
                *last_sec = (*last_sec).max(sec);
                sec
            }
        }
    }

    pub fn totals(&mut self, now: Instant) -> Totals {
        self.expire(now);
        match self {
            Self::Count { totals, .. } | Self::Time { totals, .. } => *totals,
        }
    }
}
