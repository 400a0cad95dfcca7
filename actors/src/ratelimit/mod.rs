//! Sharded rate limiter (GCRA or sliding window per policy) and per-key concurrency limit.
//!
//! ```text
//! let limiter = RateLimiter::start(&cfg.rate_limiter, vec![("user".into(), cfg.user)])?;
//! let user = limiter.policy("user").expect("configured");      // once, at start
//! let d = limiter.check(user, &claims.sub).await?;              // per request
//! if !d.allowed { /* 429 with Retry-After = d.retry_after rounded up to >= 1 s */ }
//! let _permit = limiter.acquire_concurrency(&claims.sub).await?; // held for the request
//! ```
//! Call `start` inside a running actix `System` (e.g. before `HttpServer::run`), after the
//! metrics recorder is installed.
//!
//! Hot path (measured, see the crate report / `benches/actors.rs`): a key already known to
//! its shard is decided on the caller's thread by one CAS on the key's atomic word read
//! through the shard's `DashMap` (like `governor`), with no actor hop and no allocation.
//! Only the first request of a key (and the sweep) goes through the shard actor, which owns
//! the key set: bounded mailbox, `max_keys_per_shard`, lossless idle sweeping, supervision.
//! Many concurrent tasks on one key never exceed the quota: every decision is a CAS on the
//! same word, and a key is created exactly once, by its shard actor.
//!
//! Live reconfiguration ([`RateLimiter::reconfigure`]): the policies are one snapshot
//! (`Table`) behind an `ArcSwap`, loaded once per decision (no lock). A reload swaps in
//! the next generation and asks every shard actor to carry its keys over
//! ([`Policy::carry_over`]: the capacity a key has used stays used, so nobody gets a
//! fresh burst). Until its shard has done so, a key is decided under the policy of its
//! own generation: each bucket records its generation, changed only under the map's
//! write lock, so a word is never read under the wrong policy.
//!
//! A policy with `shadow = true` decides as if enforcing (its state is what enforcing
//! would leave) but answers allowed; the would-be refusals count as `shadow_limited`.
//!
//! Metric: `bulkhead_ratelimit_decisions_total{policy, outcome="allowed"|"limited"|"shadow_limited"}`.

mod algo;
mod global;
pub(crate) mod lease;
mod reload;
mod shard;

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Supervisor};
use arc_swap::ArcSwap;
use metrics::Counter;

pub use algo::Policy;
use algo::Verdict;
use global::Global;
use shard::{AdmitCounter, AdmitKey, Limits, Poison, ShardActor, ShardState, SweepNow, Table};

use crate::config::{Algorithm, PolicyConfig, RateLimiterConfig};
use crate::fleet::RedisLimiter;
use crate::supervise::{ask, Meter};
use crate::ActorError;

/// Cheap handle of a configured policy; get it once with [`RateLimiter::policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyId(u16);

/// Name of a policy as configured ("user", "ip", "login", "global").
pub type PolicyName = String;

/// The answer for one request, with what the `RateLimit*` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Burst capacity (GCRA) or quota (sliding window): `X-RateLimit-Limit`.
    pub limit: u32,
    pub remaining: u32,
    /// GCRA: until the bucket is full again; sliding window: until the current window ends.
    pub reset: Duration,
    /// `Some` when denied: the earliest time one more request fits (round up to >= 1 s).
    pub retry_after: Option<Duration>,
    /// `RateLimit-Policy: q=quota;w=window_secs`.
    pub quota: u32,
    pub window_secs: u64,
    pub policy: PolicyId,
}

struct PolicyMeta {
    name: PolicyName,
    allowed: Counter,
    limited: Counter,
    shadow_limited: Counter,
}

struct Shard {
    state: Arc<ShardState>,
    addr: Addr<ShardActor>,
}

struct Inner {
    limits: Arc<Limits>,
    meta: Vec<PolicyMeta>,
    shards: Vec<Shard>,
    hasher: std::hash::RandomState,
    meter: Arc<Meter>,
    send_timeout: Duration,
    concurrency_per_key: u32,
    idle_ttl: Duration,
    /// One reload at a time; `true` while some shard has keys left to carry over.
    reload: tokio::sync::Mutex<bool>,
    global: Option<Global>,
}

/// Handle to the rate limiter's shards. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

impl RateLimiter {
    /// Validates the config and starts one supervised shard actor per configured shard on
    /// the current arbiter.
    pub fn start(
        cfg: &RateLimiterConfig,
        policies: Vec<(PolicyName, PolicyConfig)>,
    ) -> Result<Self, String> {
        Self::start_global(cfg, true, policies, None)
    }

    /// [`start`](Self::start), possibly disabled (every request allowed, nothing
    /// counted) until a reload enables it.
    pub fn start_enabled(
        cfg: &RateLimiterConfig,
        enabled: bool,
        policies: Vec<(PolicyName, PolicyConfig)>,
    ) -> Result<Self, String> {
        Self::start_global(cfg, enabled, policies, None)
    }

    /// Like [`start_enabled`](Self::start_enabled), with the policies named in `global`
    /// decided fleet-wide through the Redis limiter (GCRA policies only; see [`lease`]
    /// for the bound). Which policies are global is fixed for the limiter's life; a
    /// reload may change their quota, window, burst and shadow, not their algorithm.
    pub fn start_global(
        cfg: &RateLimiterConfig,
        enabled: bool,
        policies: Vec<(PolicyName, PolicyConfig)>,
        global: Option<(RedisLimiter, &[&str])>,
    ) -> Result<Self, String> {
        if let Some((_, names)) = &global {
            for name in names.iter() {
                match policies.iter().find(|(n, _)| n == name) {
                    None => return Err(format!("rate_limits.{name}: no such policy")),
                    Some((_, pc)) => global_gcra(name, pc)?,
                }
            }
        }
        let global = global.map(|(redis, names)| Global {
            redis,
            policies: policies
                .iter()
                .map(|(n, _)| names.contains(&n.as_str()))
                .collect(),
        });
        cfg.validate().map_err(|e| format!("rate_limiter.{e}"))?;
        if policies.is_empty() || policies.len() > usize::from(u16::MAX) {
            return Err("rate_limiter: between 1 and 65535 policies are needed".into());
        }
        let idle = Duration::from_secs(cfg.idle_ttl_secs);
        let mut compiled = Vec::with_capacity(policies.len());
        let mut meta = Vec::with_capacity(policies.len());
        for (name, pc) in policies {
            pc.validate()
                .map_err(|e| format!("rate_limits.{name}.{e}"))?;
            compiled.push(Policy::new(pc, idle));
            meta.push(PolicyMeta {
                allowed: decisions(&name, "allowed"),
                limited: decisions(&name, "limited"),
                shadow_limited: decisions(&name, "shadow_limited"),
                name,
            });
        }
        let limits = Arc::new(Limits {
            base: tokio::time::Instant::now(),
            table: ArcSwap::from_pointee(Table {
                gen: 0,
                enabled,
                policies: compiled,
                previous: Vec::new(),
            }),
        });
        let meter = Arc::new(Meter::new("rate_limiter"));
        let shards = (0..cfg.effective_shards())
            .map(|_| {
                let state = Arc::new(ShardState::new(cfg.max_keys_per_shard));
                let actor = ShardActor {
                    state: state.clone(),
                    limits: limits.clone(),
                    meter: meter.clone(),
                    mailbox_capacity: cfg.mailbox_capacity,
                    sweep_interval: Duration::from_secs(cfg.sweep_interval_secs),
                };
                Shard {
                    state,
                    addr: Supervisor::start(move |_| actor),
                }
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                limits,
                meta,
                shards,
                hasher: std::hash::RandomState::new(),
                meter,
                send_timeout: Duration::from_millis(cfg.send_timeout_ms),
                concurrency_per_key: cfg.concurrency_per_key,
                idle_ttl: idle,
                reload: tokio::sync::Mutex::new(false),
                global,
            }),
        })
    }

    /// Whether limits are enforced (or shadowed) at all (`rate_limits.enabled`).
    pub fn enabled(&self) -> bool {
        self.inner.limits.table.load().enabled
    }

    /// The id of a configured policy.
    pub fn policy(&self, name: &str) -> Option<PolicyId> {
        let i = self.inner.meta.iter().position(|m| m.name == name)?;
        Some(PolicyId(u16::try_from(i).ok()?))
    }

    /// Decides one request of `key` under `policy` (for a global policy, `key` is also
    /// its name in Redis).
    pub async fn check(&self, policy: PolicyId, key: &str) -> Result<Decision, ActorError> {
        self.check_named(policy, self.hash(policy.0, key), || key.to_owned())
            .await
    }

    /// Like [`check`](Self::check) for a caller that already hashed its key well (64 bits,
    /// uniformly distributed, not attacker-chosen). A global policy's key is then named
    /// in Redis by the hash, which is only the same on every instance if the hash is: use
    /// [`check_named`](Self::check_named) for those.
    pub async fn check_hashed(&self, policy: PolicyId, key: u64) -> Result<Decision, ActorError> {
        self.check_named(policy, key, || format!("{key:016x}"))
            .await
    }

    /// Takes one of the key's `concurrency_per_key` slots until the permit is dropped
    /// (however the request ends: success, error, panic or cancellation).
    pub async fn acquire_concurrency(&self, key: &str) -> Result<ConcurrencyPermit, ActorError> {
        self.acquire_concurrency_hashed(self.hash(u16::MAX, key))
            .await
    }

    /// Like [`acquire_concurrency`](Self::acquire_concurrency) for a caller that already
    /// hashed its key well (see [`check_hashed`](Self::check_hashed)).
    pub async fn acquire_concurrency_hashed(
        &self,
        hashed: u64,
    ) -> Result<ConcurrencyPermit, ActorError> {
        let inner = &*self.inner;
        let shard = inner.shard(hashed);
        let known = shard.state.concurrency.get(&hashed).map(|c| c.clone());
        let counter = match known {
            Some(c) => c,
            None => {
                ask(&shard.addr, &inner.meter, inner.send_timeout, |reply| {
                    AdmitCounter { key: hashed, reply }
                })
                .await?
            }
        };
        let limit = match inner.concurrency_per_key {
            0 => u32::MAX,
            n => n,
        };
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| ActorError::ConcurrencyLimited)?;
        Ok(ConcurrencyPermit { counter })
    }

    /// Sweeps every shard now; returns the number of rate buckets removed.
    pub async fn sweep_now(&self) -> Result<usize, ActorError> {
        let mut removed = 0;
        for shard in &self.inner.shards {
            removed += ask(
                &shard.addr,
                &self.inner.meter,
                self.inner.send_timeout,
                |reply| SweepNow { reply },
            )
            .await?;
        }
        Ok(removed)
    }

    /// Rate buckets currently held, over all shards.
    pub fn keys(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.state.buckets.len())
            .sum()
    }

    /// Shard actor restarts since start.
    pub fn restarts(&self) -> u64 {
        self.inner.meter.restarts()
    }

    /// Test hook: makes shard 0's next handler panic.
    #[doc(hidden)]
    pub async fn inject_panic(&self) -> Result<(), ActorError> {
        let shard = &self.inner.shards[0];
        ask(
            &shard.addr,
            &self.inner.meter,
            self.inner.send_timeout,
            |reply| Poison { reply },
        )
        .await
    }

    /// Test/bench hook: the raw first-request path, forcing one actor round trip.
    #[doc(hidden)]
    pub async fn check_via_actor(&self, policy: PolicyId, key: u64) -> Result<bool, ActorError> {
        let inner = &*self.inner;
        let shard = inner.shard(key);
        let v = ask(&shard.addr, &inner.meter, inner.send_timeout, |reply| {
            AdmitKey {
                key,
                policy: policy.0,
                reply,
            }
        })
        .await?;
        Ok(v.allowed)
    }

    fn hash(&self, policy: u16, key: &str) -> u64 {
        let mut h = self.inner.hasher.build_hasher();
        policy.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    }
}

impl Inner {
    #[inline]
    fn shard(&self, key: u64) -> &Shard {
        // High bits pick the shard; DashMap uses other bits inside it.
        let i = ((key >> 32) as usize) % self.shards.len();
        &self.shards[i]
    }

    fn finish(&self, policy: PolicyId, compiled: &Policy, v: Verdict) -> Decision {
        let meta = &self.meta[usize::from(policy.0)];
        let cfg = &compiled.cfg;
        let (allowed, retry_after) = if v.allowed {
            meta.allowed.increment(1);
            (true, None)
        } else if cfg.shadow {
            // Decided and counted, refused by nobody: answered as admitted.
            meta.shadow_limited.increment(1);
            (true, None)
        } else {
            meta.limited.increment(1);
            (false, v.retry_after)
        };
        Decision {
            allowed,
            limit: cfg.capacity(),
            remaining: v.remaining,
            reset: v.reset,
            retry_after,
            quota: cfg.quota,
            window_secs: cfg.window_secs,
            policy,
        }
    }
}

/// A global policy must stay GCRA: Redis evaluates GCRA only.
fn global_gcra(name: &str, pc: &PolicyConfig) -> Result<(), String> {
    if pc.algorithm == Algorithm::Gcra {
        Ok(())
    } else {
        Err(format!(
            "rate_limits.{name}.algorithm must be \"gcra\" for a global limit"
        ))
    }
}

fn decisions(policy: &str, outcome: &'static str) -> Counter {
    metrics::counter!(
        "bulkhead_ratelimit_decisions_total",
        "policy" => policy.to_owned(),
        "outcome" => outcome
    )
}

/// One in-flight request of a key; the slot is released on drop.
#[derive(Debug)]
pub struct ConcurrencyPermit {
    counter: Arc<AtomicU32>,
}

impl ConcurrencyPermit {
    /// Requests of this key in flight, this one included.
    pub fn in_flight(&self) -> u32 {
        self.counter.load(Ordering::Acquire)
    }
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Raw decision on a bare atomic word (benchmarks compare it with `governor`).
#[doc(hidden)]
pub fn raw_decide(policy: &Policy, word: &std::sync::atomic::AtomicU64, now_ns: u64) -> bool {
    policy.decide(word, now_ns).allowed
}
