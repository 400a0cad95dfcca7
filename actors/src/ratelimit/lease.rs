//! The local side of a global (fleet-wide) limit: a lease of tokens taken from Redis.
//!
//! A global key's quota lives in Redis (GCRA, see [`crate::fleet`]). Each instance keeps,
//! per key, a lease of at most `L` tokens it took from Redis in one call, and decides
//! requests from it with one atomic decrement, as the local limiter decides from its word.
//! When the lease runs below half, one refill tops it up to `L` in the background; only a
//! request that finds it empty waits for Redis (at most `redis.timeout_ms`, and not at all
//! while Redis's circuit is open), and a key Redis refused is refused locally until the
//! time Redis said, without asking again.
//!
//! **The overshoot bound.** Redis admits a key's tokens exactly as one GCRA would: over any
//! interval `[a, b]` it grants at most `burst + (b - a) / T`. A request admitted in
//! `[a, b]` used a token granted either in `[a, b]` or before `a` and still held at `a`.
//! Every instance holds at most `L` tokens of a key (a refill asks for `L - held` and only
//! one refill per key is in flight), so the fleet admits at most `N * L` more than one GCRA
//! would. With `L = floor(max_overshoot * quota / N)` that is at most
//! `max_overshoot * quota`. `N` is `rate_limits.fleet_size` or the heartbeat count, so the
//! bound holds while that is at least the number of instances sharing the Redis (a newly
//! started instance is counted by the others within one heartbeat interval). When
//! `max_overshoot * quota / N < 1` there is no lease: every request takes its own token
//! from Redis (exact, one round trip each).
//!
//! In the fallback (Redis slow, down, or its circuit open) the key is decided by a local
//! GCRA of `quota / N` with burst `burst / N` (at least 1) on the lease's own word, so a
//! fleet of `N` admits about the quota, never unlimited.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// What one lease call to Redis answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Tokens granted (0: refused).
    pub granted: u32,
    /// Tokens left in Redis after the grant (for the `RateLimit` headers).
    pub remaining: u32,
    /// Refused: when one token will fit.
    pub retry_after: Duration,
    /// When Redis's bucket is full again.
    pub reset: Duration,
}

/// Local state of one global key.
#[derive(Debug)]
pub struct Lease {
    /// The key in Redis (the same on every instance).
    pub redis_key: Box<str>,
    tokens: AtomicU32,
    /// Limiter-clock ns before which Redis refused this key.
    denied_until: AtomicU64,
    /// Redis's remaining count and reset (ns) at the last grant: header values.
    remaining_hint: AtomicU32,
    reset_hint: AtomicU64,
    /// One refill per key in flight (the bound above relies on it).
    refilling: AtomicBool,
    refilled: Notify,
    /// GCRA word of the fallback limit (quota / fleet size).
    pub fallback: AtomicU64,
    last_used: AtomicU64,
}

/// The local decision of a global key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// Served from the lease; `refill` is `Some(tokens)` when a background top-up was
    /// claimed by this caller (it must start one, or call [`Lease::refill_done`]).
    Allowed {
        left: u32,
        remaining: u32,
        reset: Duration,
        refill: Option<u32>,
    },
    /// Redis refused the key until then.
    Denied { retry_after: Duration },
    /// The lease is empty: Redis must be asked.
    Empty,
}

impl Lease {
    pub fn new(redis_key: Box<str>) -> Self {
        Self {
            redis_key,
            tokens: AtomicU32::new(0),
            denied_until: AtomicU64::new(0),
            remaining_hint: AtomicU32::new(0),
            reset_hint: AtomicU64::new(0),
            refilling: AtomicBool::new(false),
            refilled: Notify::new(),
            fallback: AtomicU64::new(0),
            last_used: AtomicU64::new(0),
        }
    }

    /// Decides from the lease alone. `size` is the lease size `L` in force.
    #[inline]
    pub fn try_local(&self, now: u64, size: u32) -> Local {
        self.last_used.store(now, Ordering::Relaxed);
        let taken = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1));
        match taken {
            Ok(before) => {
                let left = before - 1;
                let refill = (left < size.div_ceil(2) && self.claim_refill()).then(|| size - left);
                Local::Allowed {
                    left,
                    remaining: self.remaining_hint.load(Ordering::Relaxed),
                    reset: Duration::from_nanos(self.reset_hint.load(Ordering::Relaxed)),
                    refill,
                }
            }
            Err(_) => {
                let until = self.denied_until.load(Ordering::Acquire);
                if until > now {
                    Local::Denied {
                        retry_after: Duration::from_nanos(until - now),
                    }
                } else {
                    Local::Empty
                }
            }
        }
    }

    /// Claims the key's one refill; false when one is in flight.
    pub fn claim_refill(&self) -> bool {
        !self.refilling.load(Ordering::Relaxed)
            && self
                .refilling
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Applies a grant received at `now`, keeping `keep` of its tokens for this caller
    /// (1 for a caller that waited and is admitted with the first token, 0 for a
    /// background refill). Returns whether the caller got its token.
    pub fn apply(&self, grant: &Grant, now: u64, keep: u32) -> bool {
        let kept = grant.granted.min(keep);
        self.remaining_hint
            .store(grant.remaining, Ordering::Relaxed);
        self.reset_hint.store(
            u64::try_from(grant.reset.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if grant.granted == 0 {
            let retry = u64::try_from(grant.retry_after.as_nanos()).unwrap_or(u64::MAX);
            self.denied_until
                .store(now.saturating_add(retry.max(1)), Ordering::Release);
        } else {
            self.tokens
                .fetch_add(grant.granted - kept, Ordering::AcqRel);
        }
        kept == keep
    }

    /// Ends the refill claimed with [`claim_refill`](Self::claim_refill) (whatever its
    /// outcome) and wakes the callers waiting for it.
    pub fn refill_done(&self) {
        self.refilling.store(false, Ordering::Release);
        self.refilled.notify_waiters();
    }

    /// Waits for the refill in flight (registered before the state is checked again, so
    /// a refill that ends in between is not missed).
    pub fn refilled(&self) -> tokio::sync::futures::Notified<'_> {
        self.refilled.notified()
    }

    /// Tokens held now.
    pub fn held(&self) -> u32 {
        self.tokens.load(Ordering::Acquire)
    }

    /// True when dropping the key loses nothing Redis does not keep: no refill in
    /// flight, idle for `idle` ns, and its fallback word fresh. Held tokens are given up
    /// (the fleet then admits less, never more).
    pub fn is_sweepable(&self, now: u64, idle: u64, fallback_fresh: bool) -> bool {
        fallback_fresh
            && !self.refilling.load(Ordering::Acquire)
            && self.last_used.load(Ordering::Relaxed).saturating_add(idle) <= now
    }
}

/// Lease size `L = floor(max_overshoot * quota / fleet)`, capped; 0 means no lease
/// (every request asks Redis for its own token).
pub fn lease_size(quota: u32, max_overshoot: f64, fleet: u32, cap: u32) -> u32 {
    let share = (f64::from(quota) * max_overshoot / f64::from(fleet.max(1))).floor();
    if share.is_finite() && share >= 1.0 {
        // The cast saturates; share <= quota fits anyway.
        (share as u32).min(cap)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(granted: u32) -> Grant {
        Grant {
            granted,
            remaining: 7,
            retry_after: Duration::from_millis(250),
            reset: Duration::from_secs(1),
        }
    }

    #[test]
    fn lease_size_bounds_the_fleet_overshoot() {
        // 5 % of 6000 over 3 instances: 100 tokens each, 300 = 5 % at most in hand.
        assert_eq!(lease_size(6000, 0.05, 3, 10_000), 100);
        assert_eq!(lease_size(6000, 0.05, 3, 64), 64);
        for fleet in 1..=20 {
            for quota in [1, 10, 99, 100, 1000, 6000, 123_457] {
                let l = lease_size(quota, 0.05, fleet, u32::MAX);
                assert!(f64::from(l) * f64::from(fleet) <= 0.05 * f64::from(quota));
            }
        }
        // Login's 10 a minute: no lease, every attempt asks Redis.
        assert_eq!(lease_size(10, 0.05, 3, 1000), 0);
        assert_eq!(lease_size(10, 0.0, 1, 1000), 0);
    }

    #[test]
    fn serves_from_the_lease_and_claims_one_refill_below_half() {
        let lease = Lease::new("k".into());
        assert_eq!(lease.try_local(10, 10), Local::Empty);
        assert!(lease.claim_refill());
        assert!(lease.apply(&grant(10), 10, 1));
        lease.refill_done();
        assert_eq!(lease.held(), 9);
        let mut claimed = Vec::new();
        for _ in 0..9 {
            match lease.try_local(20, 10) {
                Local::Allowed { refill, .. } => claimed.push(refill),
                other => panic!("{other:?}"),
            }
        }
        // 8..5 left: no refill; 4 left claims one topping up to 10; the rest see it claimed.
        assert_eq!(claimed[..4], [None, None, None, None]);
        assert_eq!(claimed[4], Some(6));
        assert!(claimed[5..].iter().all(Option::is_none));
        assert_eq!(lease.try_local(30, 10), Local::Empty);
        // The claimed refill is refused: the key is denied locally until Redis said.
        lease.apply(&grant(0), 30, 0);
        lease.refill_done();
        assert_eq!(
            lease.try_local(30, 10),
            Local::Denied {
                retry_after: Duration::from_millis(250)
            }
        );
        assert_eq!(lease.try_local(30 + 250_000_000, 10), Local::Empty);
    }

    #[test]
    fn a_waiting_caller_keeps_one_token_of_its_grant() {
        let lease = Lease::new("k".into());
        assert!(lease.apply(&grant(3), 0, 1));
        assert_eq!(lease.held(), 2);
        // A refused grant admits nobody.
        assert!(!lease.apply(&grant(0), 0, 1));
        assert_eq!(lease.held(), 2);
        assert!(lease.is_sweepable(0, 0, true));
        assert!(!lease.is_sweepable(0, 0, false));
    }
}
