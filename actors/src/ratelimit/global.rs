//! Decisions of global policies: from the key's lease when it holds tokens (the common
//! path, on the caller's thread), else from Redis within `redis.timeout_ms`, else from
//! the local fallback (`quota / fleet size`). See [`super::lease`] for the bound.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use super::algo::{Policy, Verdict};
use super::lease::{Lease, Local};
use super::shard::{AdmitKey, AdmitLease, Limits};
use super::{Decision, Inner, PolicyId, RateLimiter};
use crate::fleet::RedisLimiter;
use crate::supervise::ask;
use crate::ActorError;

/// The Redis limiter and which policies are global.
pub(super) struct Global {
    pub redis: RedisLimiter,
    pub policies: Vec<bool>,
}

enum Step {
    Done(Verdict),
    Remote(Arc<Lease>),
}

/// Ends a claimed refill however the call ends (answered, failed, dropped, cancelled).
struct RefillGuard(Arc<Lease>);

impl Drop for RefillGuard {
    fn drop(&mut self) {
        self.0.refill_done();
    }
}

impl RateLimiter {
    /// Decides one request of a key already hashed well (see
    /// [`check_hashed`](Self::check_hashed)). For a global policy, `name` gives the key's
    /// name in Redis, the same on every instance; it is called once, when the key is
    /// first seen here.
    pub async fn check_named(
        &self,
        policy: PolicyId,
        key: u64,
        name: impl FnOnce() -> String,
    ) -> Result<Decision, ActorError> {
        let inner = &*self.inner;
        let p = usize::from(policy.0);
        // One snapshot of the policies for the whole decision (see `super::reload`).
        let mut table = inner.limits.table.load();
        let shard = inner.shard(key);
        let bucket = shard.state.buckets.get(&key);
        if bucket.as_ref().is_some_and(|b| b.gen != table.gen) {
            // The key may have been carried over to a generation newer than the snapshot
            // (a reload swapped the table, then rewrote the key, between the load and the
            // lookup). Its word is then in the new policy's form, and deciding it under
            // the old one would corrupt it. A reload swaps the table before it rewrites a
            // key under the map's write lock, so a table read while holding the key's
            // read guard is at least as new as the key.
            table = inner.limits.table.load();
        }
        let current = table.policies.get(p).ok_or(ActorError::Unavailable)?;
        let known = bucket.map(|bucket| {
            // A key not carried over yet is decided under its own generation's policy.
            let compiled = table.policy_for(p, bucket.gen).unwrap_or(current);
            let step = match &bucket.lease {
                None => Step::Done(compiled.decide(&bucket.word, inner.limits.now())),
                Some(lease) => inner.lease_step(p, compiled, lease),
            };
            (step, compiled)
        });
        let (step, compiled) = match known {
            Some(known) => known,
            None => match inner.global_of(p) {
                None => (
                    Step::Done(
                        ask(&shard.addr, &inner.meter, inner.send_timeout, |reply| {
                            AdmitKey {
                                key,
                                policy: policy.0,
                                reply,
                            }
                        })
                        .await?,
                    ),
                    current,
                ),
                Some(_) => {
                    let redis_key = name().into_boxed_str();
                    let lease = ask(&shard.addr, &inner.meter, inner.send_timeout, |reply| {
                        AdmitLease {
                            key,
                            policy: policy.0,
                            redis_key,
                            reply,
                        }
                    })
                    .await?;
                    (inner.lease_step(p, current, &lease), current)
                }
            },
        };
        let verdict = match step {
            Step::Done(v) => v,
            Step::Remote(lease) => inner.remote(p, compiled, &lease).await,
        };
        // Shadow applies here alike to local and global keys: a refusal of a shadow
        // policy counts `shadow_limited` and is answered as admitted.
        Ok(inner.finish(policy, compiled, verdict))
    }

    /// True while global policies are decided through Redis (not the fallback).
    pub fn is_global(&self) -> bool {
        self.inner
            .global
            .as_ref()
            .is_some_and(|g| g.redis.is_global())
    }
}

impl Inner {
    #[inline]
    pub(super) fn global_of(&self, p: usize) -> Option<&RedisLimiter> {
        let g = self.global.as_ref()?;
        g.policies
            .get(p)
            .copied()
            .unwrap_or(false)
            .then_some(&g.redis)
    }

    /// The local step of a global key: from its lease, or the fallback while the circuit
    /// is open, or "ask Redis".
    #[inline]
    fn lease_step(&self, p: usize, compiled: &Policy, lease: &Arc<Lease>) -> Step {
        let Some(redis) = self.global_of(p) else {
            return Step::Done(compiled.decide_fallback(&lease.fallback, self.limits.now(), 1));
        };
        let now = self.limits.now();
        let size = redis.lease_size(compiled.cfg.quota);
        match lease.try_local(now, size) {
            Local::Empty if redis.is_open() => {
                Step::Done(compiled.decide_fallback(&lease.fallback, now, redis.fleet_size()))
            }
            Local::Empty => Step::Remote(lease.clone()),
            local => Step::Done(self.local_verdict(p, compiled, lease, local)),
        }
    }

    fn local_verdict(
        &self,
        p: usize,
        compiled: &Policy,
        lease: &Arc<Lease>,
        local: Local,
    ) -> Verdict {
        match local {
            Local::Allowed {
                left,
                remaining,
                reset,
                refill,
            } => {
                if let Some(want) = refill {
                    self.refill(p, compiled, lease.clone(), want);
                }
                Verdict {
                    allowed: true,
                    remaining: remaining.saturating_add(left),
                    reset,
                    retry_after: None,
                }
            }
            Local::Denied { retry_after } => denied(retry_after),
            Local::Empty => denied(Duration::from_millis(1)),
        }
    }

    /// Tops the lease up in the background (the caller claimed the refill).
    fn refill(&self, p: usize, compiled: &Policy, lease: Arc<Lease>, want: u32) {
        let guard = RefillGuard(lease.clone());
        let Some(redis) = self.global_of(p) else {
            return;
        };
        let (t_ns, tau_ns) = compiled.gcra_params();
        let limits: Arc<Limits> = self.limits.clone();
        // On failure the guard drops with the message: the claim ends either way.
        let _ = redis.take_then(&lease.redis_key, t_ns, tau_ns, want, move |answer| {
            if let Ok(grant) = answer {
                guard.0.apply(&grant, limits.now(), 0);
            }
            drop(guard);
        });
    }

    /// The lease is empty: ask Redis, at most `redis.timeout_ms` in all, then fall back.
    async fn remote(&self, p: usize, compiled: &Policy, lease: &Arc<Lease>) -> Verdict {
        let Some(redis) = self.global_of(p) else {
            return compiled.decide_fallback(&lease.fallback, self.limits.now(), 1);
        };
        let deadline = tokio::time::Instant::now() + redis.timeout();
        let (t_ns, tau_ns) = compiled.gcra_params();
        loop {
            let mut refilled = pin!(lease.refilled());
            refilled.as_mut().enable();
            let size = redis.lease_size(compiled.cfg.quota);
            let now = self.limits.now();
            match lease.try_local(now, size) {
                Local::Empty => {}
                local => return self.local_verdict(p, compiled, lease, local),
            }
            let fallback =
                || compiled.decide_fallback(&lease.fallback, self.limits.now(), redis.fleet_size());
            if redis.is_open() {
                return fallback();
            }
            // No lease (small quota): every request takes its own token, no claim.
            let guard = if size == 0 {
                None
            } else if lease.claim_refill() {
                Some(RefillGuard(lease.clone()))
            } else {
                // Another caller's refill is in flight: wait for it within the deadline.
                if tokio::time::timeout_at(deadline, refilled).await.is_err() {
                    return fallback();
                }
                continue;
            };
            let want = size.max(1);
            let answer =
                tokio::time::timeout_at(deadline, redis.take(&lease.redis_key, t_ns, tau_ns, want))
                    .await;
            let Ok(Ok(grant)) = answer else {
                return fallback();
            };
            let admitted = lease.apply(&grant, self.limits.now(), 1);
            drop(guard);
            return if admitted {
                Verdict {
                    allowed: true,
                    remaining: grant.remaining.saturating_add(lease.held()),
                    reset: grant.reset,
                    retry_after: None,
                }
            } else {
                denied(grant.retry_after)
            };
        }
    }
}

fn denied(retry_after: Duration) -> Verdict {
    Verdict {
        allowed: false,
        remaining: 0,
        reset: retry_after,
        retry_after: Some(retry_after),
    }
}
