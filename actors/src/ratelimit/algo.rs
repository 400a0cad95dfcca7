//! The two rate-limit algorithms, each a lock-free decision on one `AtomicU64` per key.
//!
//! Time is nanoseconds since the limiter's base `tokio::time::Instant` (so a paused tokio
//! clock drives it in tests). Both states have the property that the zero word means
//! "fresh key", and [`Policy::is_sweepable`] is true only when removing the key loses no
//! information (its state is equivalent to fresh), so sweeping can never fail open.
//!
//! * GCRA (as in `governor`): the word is the theoretical arrival time (TAT). Emission
//!   interval `T = window / quota`, tolerance `tau = T * burst`. A request at `now` is
//!   allowed iff `max(TAT, now) + T - now <= tau`, and then `TAT' = max(TAT, now) + T`.
//! * Sliding window, two-bucket weighted approximation (not a sliding log): the word packs
//!   `window index (24 bits) | previous count (20) | current count (20)`. A request at
//!   offset `e` into window `W` is allowed iff `prev * (W - e) / W + cur + 1 <= quota`,
//!   evaluated exactly in integers (`prev * (W - e) + (cur + 1) * W <= quota * W`). Within
//!   any single fixed window it admits at most `quota`; across a window boundary it admits
//!   the weighted estimate, which can differ from a true sliding log when the previous
//!   window's requests were not evenly spread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{Algorithm, PolicyConfig};

const IDX_BITS: u32 = 24;
const CNT_BITS: u32 = 20;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;
const CNT_MASK: u64 = (1 << CNT_BITS) - 1;

/// Outcome of one decision, before the handle adds the policy id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub remaining: u32,
    pub reset: Duration,
    pub retry_after: Option<Duration>,
}

/// One policy with its precomputed constants.
#[derive(Debug, Clone)]
pub struct Policy {
    pub cfg: PolicyConfig,
    window_ns: u64,
    /// GCRA emission interval.
    t_ns: u64,
    /// GCRA tolerance (burst capacity in time).
    tau_ns: u64,
    idle_ns: u64,
}

impl Policy {
    pub fn new(cfg: PolicyConfig, idle_ttl: Duration) -> Self {
        let window_ns = cfg.window_secs.saturating_mul(1_000_000_000);
        let t_ns = (window_ns / u64::from(cfg.quota)).max(1);
        let tau_ns = t_ns.saturating_mul(u64::from(cfg.capacity()));
        let idle_ns = u64::try_from(idle_ttl.as_nanos()).unwrap_or(u64::MAX);
        Self {
            cfg,
            window_ns,
            t_ns,
            tau_ns,
            idle_ns,
        }
    }

    /// Decides one request at `now` (nanoseconds since the limiter's base instant).
    #[inline]
    pub fn decide(&self, cell: &AtomicU64, now: u64) -> Verdict {
        match self.cfg.algorithm {
            Algorithm::Gcra => self.gcra(cell, now),
            Algorithm::SlidingWindow => self.sliding(cell, now),
        }
    }

    #[inline]
    fn gcra(&self, cell: &AtomicU64, now: u64) -> Verdict {
        gcra(cell, now, self.t_ns, self.tau_ns)
    }

    /// The fallback of a global key on one of `fleet` instances: GCRA at `quota / fleet`
    /// with burst `capacity / fleet` (at least 1), so the fleet together admits about the
    /// quota while Redis is out of reach.
    pub fn decide_fallback(&self, cell: &AtomicU64, now: u64, fleet: u32) -> Verdict {
        let fleet = u64::from(fleet.max(1));
        let t_ns = self.t_ns.saturating_mul(fleet);
        let burst = (u64::from(self.cfg.capacity()) / fleet).max(1);
        gcra(cell, now, t_ns, t_ns.saturating_mul(burst))
    }

    /// GCRA's emission interval and tolerance (ns): what Redis evaluates for global keys.
    pub fn gcra_params(&self) -> (u64, u64) {
        (self.t_ns, self.tau_ns)
    }

    pub fn idle_ns(&self) -> u64 {
        self.idle_ns
    }

    #[inline]
    fn sliding(&self, cell: &AtomicU64, now: u64) -> Verdict {
        let w = u128::from(self.window_ns);
        let idx = (now / self.window_ns) & IDX_MASK;
        let e = u128::from(now % self.window_ns);
        let quota = u128::from(self.cfg.quota);
        let mut word = cell.load(Ordering::Acquire);
        loop {
            let (prev, cur) = self.counts_at(word, idx);
            let (p, c) = (u128::from(prev), u128::from(cur));
            let used = p * (w - e) + (c + 1) * w;
            if used > quota * w {
                return Verdict {
                    allowed: false,
                    remaining: 0,
                    reset: Duration::from_nanos(self.window_ns - e as u64),
                    retry_after: Some(self.sliding_retry(p, c, e)),
                };
            }
            let next = (idx << (2 * CNT_BITS)) | (prev << CNT_BITS) | (cur + 1);
            match cell.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let remaining = (quota * w - used) / w;
                    return Verdict {
                        allowed: true,
                        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                        reset: Duration::from_nanos(self.window_ns - e as u64),
                        retry_after: None,
                    };
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// (previous, current) counts of a packed word as seen from window `idx`.
    #[inline]
    fn counts_at(&self, word: u64, idx: u64) -> (u64, u64) {
        let stored = word >> (2 * CNT_BITS);
        let prev = (word >> CNT_BITS) & CNT_MASK;
        let cur = word & CNT_MASK;
        match idx.wrapping_sub(stored) & IDX_MASK {
            0 => (prev, cur),
            1 => (cur, 0),
            _ => (0, 0),
        }
    }

    /// Earliest time from offset `e` at which one more request fits (rounded up).
    fn sliding_retry(&self, p: u128, c: u128, e: u128) -> Duration {
        let w = u128::from(self.window_ns);
        let q = u128::from(self.cfg.quota);
        let nanos = if c < q && p > 0 {
            // Still this window, once the previous window's weight has decayed enough.
            let at = w - ((q - c - 1) * w / p);
            at.saturating_sub(e).max(1)
        } else {
            // Next window: the current count becomes the decaying previous one.
            let at = ((q - 1) * w)
                .checked_div(c)
                .map_or(0, |room| w.saturating_sub(room));
            (w - e) + at
        };
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// How much of its capacity a key has used at `now`, in requests (fractional for
    /// GCRA): the GCRA debt `TAT - now` in emission intervals, or the sliding window's
    /// weighted count.
    fn used(&self, word: u64, now: u64) -> f64 {
        match self.cfg.algorithm {
            Algorithm::Gcra => word.saturating_sub(now) as f64 / self.t_ns as f64,
            Algorithm::SlidingWindow => {
                let idx = (now / self.window_ns) & IDX_MASK;
                let e = (now % self.window_ns) as f64;
                let (prev, cur) = self.counts_at(word, idx);
                let w = self.window_ns as f64;
                prev as f64 * (w - e) / w + cur as f64
            }
        }
    }

    /// The word that carries a key's state from `old` (this policy's previous version,
    /// from before a reload) into this one at `now`: the capacity used stays used, at
    /// most all of the new capacity, so a quota change gives nobody a fresh burst.
    /// GCRA keeps its debt in requests (the TAT reinterpreted under the new emission
    /// interval); the sliding window keeps its counts when its window is unchanged (a
    /// count does not depend on the quota), and otherwise starts the current window
    /// with the old weighted count.
    pub fn carry_over(&self, old: &Policy, word: u64, now: u64) -> u64 {
        if old.cfg.algorithm == self.cfg.algorithm {
            match self.cfg.algorithm {
                Algorithm::Gcra if old.t_ns == self.t_ns => {
                    return word.min(now.saturating_add(self.tau_ns));
                }
                Algorithm::SlidingWindow if old.window_ns == self.window_ns => return word,
                _ => {}
            }
        }
        let used = old.used(word, now).min(f64::from(self.capacity()));
        if used <= 0.0 {
            return 0;
        }
        match self.cfg.algorithm {
            Algorithm::Gcra => {
                let debt = (used * self.t_ns as f64).ceil() as u64;
                now.saturating_add(debt.min(self.tau_ns))
            }
            Algorithm::SlidingWindow => {
                let idx = (now / self.window_ns) & IDX_MASK;
                let cur = (used.ceil() as u64).min(CNT_MASK);
                (idx << (2 * CNT_BITS)) | cur
            }
        }
    }

    /// Burst capacity (GCRA) or quota (sliding window), in requests.
    fn capacity(&self) -> u32 {
        self.cfg.capacity()
    }

    /// True when the key's state equals a fresh key's and has for at least the idle TTL,
    /// so removing it changes no future decision.
    pub fn is_sweepable(&self, word: u64, now: u64, honour_idle: bool) -> bool {
        let idle = if honour_idle { self.idle_ns } else { 0 };
        match self.cfg.algorithm {
            Algorithm::Gcra => word.saturating_add(idle) <= now,
            Algorithm::SlidingWindow => {
                let idx = (now / self.window_ns) & IDX_MASK;
                let distance = idx.wrapping_sub(word >> (2 * CNT_BITS)) & IDX_MASK;
                let idle_windows = idle.div_ceil(self.window_ns);
                distance >= 2 + idle_windows && distance < (1 << (IDX_BITS - 1))
            }
        }
    }
}

/// One GCRA decision with emission interval `t_ns` and tolerance `tau_ns`.
#[inline(always)]
fn gcra(cell: &AtomicU64, now: u64, t_ns: u64, tau_ns: u64) -> Verdict {
    let mut tat = cell.load(Ordering::Acquire);
    loop {
        let start = tat.max(now);
        let new_tat = start.saturating_add(t_ns);
        if new_tat - now > tau_ns {
            return Verdict {
                allowed: false,
                remaining: 0,
                reset: Duration::from_nanos(tat.saturating_sub(now)),
                retry_after: Some(Duration::from_nanos(new_tat - now - tau_ns)),
            };
        }
        match cell.compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                let used = new_tat - now;
                let remaining = (tau_ns - used) / t_ns;
                return Verdict {
                    allowed: true,
                    remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                    reset: Duration::from_nanos(used),
                    retry_after: None,
                };
            }
            Err(actual) => tat = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn policy(quota: u32, window_secs: u64, algorithm: Algorithm) -> Policy {
        let cfg = PolicyConfig {
            quota,
            window_secs,
            burst: None,
            algorithm,
            shadow: false,
        };
        Policy::new(cfg, Duration::ZERO)
    }

    #[test]
    fn gcra_burst_then_refill() {
        let p = policy(10, 10, Algorithm::Gcra);
        let cell = AtomicU64::new(0);
        for i in 0..10 {
            let v = p.decide(&cell, 0);
            assert!(v.allowed);
            assert_eq!(v.remaining, 9 - i);
        }
        let v = p.decide(&cell, 0);
        assert!(!v.allowed);
        assert_eq!(v.retry_after, Some(Duration::from_secs(1)));
        assert!(!p.decide(&cell, S - 1).allowed);
        assert!(p.decide(&cell, S).allowed);
        assert!(!p.decide(&cell, S).allowed);
        assert!(p.is_sweepable(cell.load(Ordering::Relaxed), 11 * S, false));
        assert!(!p.is_sweepable(cell.load(Ordering::Relaxed), 5 * S, false));
    }

    #[test]
    fn sliding_window_weights_previous_window() {
        let p = policy(10, 10, Algorithm::SlidingWindow);
        let cell = AtomicU64::new(0);
        for _ in 0..10 {
            assert!(p.decide(&cell, S).allowed);
        }
        let denied = p.decide(&cell, S);
        assert!(!denied.allowed);
        // Next window at offset 0 the previous 10 weigh fully; at 50% they weigh 5.
        assert!(!p.decide(&cell, 10 * S).allowed);
        // It fits again once the 10 decayed to 9: one tenth into the next window.
        assert_eq!(denied.retry_after, Some(Duration::from_secs(10)));
        for _ in 0..5 {
            assert!(p.decide(&cell, 15 * S).allowed);
        }
        assert!(!p.decide(&cell, 15 * S).allowed);
        // Two windows later everything has decayed.
        assert!(p.is_sweepable(cell.load(Ordering::Relaxed), 30 * S, false));
        assert!(!p.is_sweepable(cell.load(Ordering::Relaxed), 25 * S, false));
    }

    #[test]
    fn a_quota_change_keeps_the_capacity_used() {
        let old = policy(10, 10, Algorithm::Gcra);
        let cell = AtomicU64::new(0);
        for _ in 0..6 {
            assert!(old.decide(&cell, 0).allowed);
        }
        // 6 of 10 used; at 100 per 10 s the same 6 are used of 100: 94 remain, not 100.
        let raised = policy(100, 10, Algorithm::Gcra);
        let moved = AtomicU64::new(raised.carry_over(&old, cell.load(Ordering::Relaxed), 0));
        assert_eq!(raised.decide(&moved, 0).remaining, 93);
        // Down to 4: all 4 used, the next request waits for one emission interval.
        let lowered = policy(4, 10, Algorithm::Gcra);
        let moved = AtomicU64::new(lowered.carry_over(&old, cell.load(Ordering::Relaxed), 0));
        let denied = lowered.decide(&moved, 0);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Some(Duration::from_millis(2_500)));
        // Into a sliding window: 6 counted in the current window.
        let sliding = policy(8, 10, Algorithm::SlidingWindow);
        let moved = AtomicU64::new(sliding.carry_over(&old, cell.load(Ordering::Relaxed), 0));
        assert_eq!(sliding.decide(&moved, 0).remaining, 1);
        // A fresh key stays fresh.
        assert_eq!(raised.carry_over(&old, 0, 5 * S), 0);
    }
}
