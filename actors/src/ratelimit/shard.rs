//! One rate-limiter shard: the actor that owns a slice of the key space.
//!
//! The shard's buckets live in a `DashMap` the actor shares with the [`RateLimiter`]
//! handle. The handle decides requests for *existing* keys directly on the key's atomic
//! word (no actor hop: that is the hot path). Everything that changes the *set* of keys
//! goes through this actor's bounded mailbox: admitting a new key (bounded by
//! `max_keys_per_shard`), admitting a concurrency counter, and the periodic sweep.
//!
//! When a shard is full, the actor first removes every key whose state is equivalent to a
//! fresh key (lossless); if none can go, the new key is refused with `Overloaded` — it is
//! never admitted unlimited and no live bucket is silently reset.
//!
//! [`RateLimiter`]: super::RateLimiter

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;
use dashmap::DashMap;

use super::algo::{Policy, Verdict};
use super::lease::Lease;
use crate::supervise::{contain, Meter, Reply};
use crate::ActorError;

/// Keys are already uniformly distributed 64-bit hashes: hash them as themselves.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type IdMap<V> = DashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Rate state of one key.
#[derive(Debug)]
pub struct Bucket {
    /// Local keys: the algorithm's word. Global keys: unused (the fallback word is in the
    /// lease, which decisions already hold).
    pub word: AtomicU64,
    pub policy: u16,
    /// The policy table generation `word` is in. Changed only under the map's write
    /// lock (by [`Reconfigure`]), so a reader holding the key's read guard sees a word
    /// and its generation that belong together.
    pub gen: u32,
    /// `Some` for a key of a global policy: its lease of Redis tokens.
    pub lease: Option<Arc<Lease>>,
}

/// What a shard actor shares with the handle.
pub struct ShardState {
    pub buckets: IdMap<Bucket>,
    pub concurrency: IdMap<Arc<AtomicU32>>,
    pub max_keys: usize,
}

impl ShardState {
    pub fn new(max_keys: usize) -> Self {
        Self {
            buckets: IdMap::with_hasher(BuildHasherDefault::default()),
            concurrency: IdMap::with_hasher(BuildHasherDefault::default()),
            max_keys,
        }
    }
}

/// One version of the policies. A reload swaps in the next generation, keeping the
/// one before it for the keys not carried over yet.
pub struct Table {
    pub gen: u32,
    pub enabled: bool,
    pub policies: Vec<Policy>,
    /// Generation `gen - 1` (empty at start).
    pub previous: Vec<Policy>,
}

impl Table {
    /// The policy a key's word is decided under: its own generation's. A word of an
    /// older generation than the previous one (a carry-over that failed twice) is
    /// decided under the current policy as it is.
    #[inline]
    pub fn policy_for(&self, policy: usize, gen: u32) -> Option<&Policy> {
        if gen != self.gen && gen.wrapping_add(1) == self.gen {
            if let Some(p) = self.previous.get(policy) {
                return Some(p);
            }
        }
        self.policies.get(policy)
    }
}

/// Clock and policies, shared by handle and shards.
pub struct Limits {
    pub base: tokio::time::Instant,
    pub table: ArcSwap<Table>,
}

impl Limits {
    #[inline]
    pub fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

pub struct ShardActor {
    pub state: Arc<ShardState>,
    pub limits: Arc<Limits>,
    pub meter: Arc<Meter>,
    pub mailbox_capacity: usize,
    pub sweep_interval: Duration,
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        ctx.run_interval(self.sweep_interval, |act, ctx| {
            let (state, limits) = (act.state.clone(), act.limits.clone());
            let swept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                sweep(&state, &limits, true)
            }));
            if swept.is_err() {
                tracing::error!("rate limiter sweep panicked; restarting shard");
                ctx.stop();
            }
        });
    }
}

impl Supervised for ShardActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.meter.restarted();
    }
}

/// Removes keys whose state is equivalent to fresh (and, with `honour_idle`, has been for
/// the idle TTL) and concurrency counters nobody holds. Returns how many buckets went.
pub fn sweep(state: &ShardState, limits: &Limits, honour_idle: bool) -> usize {
    let now = limits.now();
    let table = limits.table.load();
    let before = state.buckets.len();
    state.buckets.retain(|_, b| {
        let Some(policy) = table.policy_for(usize::from(b.policy), b.gen) else {
            return true;
        };
        match &b.lease {
            None => !policy.is_sweepable(b.word.load(Ordering::Acquire), now, honour_idle),
            Some(lease) => {
                let fresh =
                    policy.is_sweepable(lease.fallback.load(Ordering::Acquire), now, honour_idle);
                let idle = if honour_idle { policy.idle_ns() } else { 0 };
                !lease.is_sweepable(now, idle, fresh)
            }
        }
    });
    // Under the map's write lock nobody can be between "got the Arc" and "incremented":
    // a holder keeps a clone, so strong_count == 1 and zero in flight means unused.
    state
        .concurrency
        .retain(|_, c| Arc::strong_count(c) > 1 || c.load(Ordering::Acquire) > 0);
    before.saturating_sub(state.buckets.len())
}

/// Decides the first request of a key the handle did not find: inserts it (within bounds).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdmitKey {
    pub key: u64,
    pub policy: u16,
    pub reply: Reply<Verdict>,
}

impl Handler<AdmitKey> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: AdmitKey, ctx: &mut Self::Context) {
        let (state, limits) = (&self.state, &self.limits);
        contain::<Self, _>(ctx, &self.meter, Some(msg.reply), || {
            let table = limits.table.load();
            let p = usize::from(msg.policy);
            if let Some(bucket) = state.buckets.get(&msg.key) {
                let policy = table
                    .policy_for(p, bucket.gen)
                    .ok_or(ActorError::Unavailable)?;
                return Ok(policy.decide(&bucket.word, limits.now()));
            }
            let policy = table.policies.get(p).ok_or(ActorError::Unavailable)?;
            if state.buckets.len() >= state.max_keys && sweep(state, limits, false) == 0 {
                tracing::warn!("rate limiter shard full; refusing a new key");
                return Err(ActorError::Overloaded {
                    retry_after: Duration::from_secs(1),
                });
            }
            let bucket = state.buckets.entry(msg.key).or_insert_with(|| Bucket {
                word: AtomicU64::new(0),
                policy: msg.policy,
                gen: table.gen,
                lease: None,
            });
            let policy = table.policy_for(p, bucket.gen).unwrap_or(policy);
            Ok(policy.decide(&bucket.word, limits.now()))
        });
    }
}

/// Creates the bucket of a key of a global policy the handle did not find (within
/// bounds) and answers its lease; the caller then decides through it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdmitLease {
    pub key: u64,
    pub policy: u16,
    pub redis_key: Box<str>,
    pub reply: Reply<Arc<Lease>>,
}

impl Handler<AdmitLease> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: AdmitLease, ctx: &mut Self::Context) {
        let (state, limits) = (&self.state, &self.limits);
        contain::<Self, _>(ctx, &self.meter, Some(msg.reply), || {
            if let Some(lease) = state.buckets.get(&msg.key).and_then(|b| b.lease.clone()) {
                return Ok(lease);
            }
            if state.buckets.len() >= state.max_keys && sweep(state, limits, false) == 0 {
                tracing::warn!("rate limiter shard full; refusing a new key");
                return Err(ActorError::Overloaded {
                    retry_after: Duration::from_secs(1),
                });
            }
            let bucket = state.buckets.entry(msg.key).or_insert_with(|| Bucket {
                word: AtomicU64::new(0),
                policy: msg.policy,
                gen: limits.table.load().gen,
                lease: Some(Arc::new(Lease::new(msg.redis_key))),
            });
            // A key is global or not for the process's life (which policies are global is fixed at start).
            bucket.lease.clone().ok_or(ActorError::Unavailable)
        });
    }
}

/// Creates the concurrency counter of a key the handle did not find (within bounds).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdmitCounter {
    pub key: u64,
    pub reply: Reply<Arc<AtomicU32>>,
}

impl Handler<AdmitCounter> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: AdmitCounter, ctx: &mut Self::Context) {
        let (state, limits) = (&self.state, &self.limits);
        contain::<Self, _>(ctx, &self.meter, Some(msg.reply), || {
            if let Some(counter) = state.concurrency.get(&msg.key) {
                return Ok(counter.clone());
            }
            if state.concurrency.len() >= state.max_keys {
                sweep(state, limits, false);
                if state.concurrency.len() >= state.max_keys {
                    return Err(ActorError::Overloaded {
                        retry_after: Duration::from_secs(1),
                    });
                }
            }
            Ok(state.concurrency.entry(msg.key).or_default().clone())
        });
    }
}

/// Carries every key of the shard over to the current policy generation (after a
/// reload swapped it in). Each map shard is rewritten under its write lock, so no
/// decision runs on a word while it changes generation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub reply: Reply<usize>,
}

impl Handler<Reconfigure> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        let (state, limits) = (&self.state, &self.limits);
        contain::<Self, _>(ctx, &self.meter, Some(msg.reply), || {
            let table = limits.table.load();
            let now = limits.now();
            let mut moved = 0;
            state.buckets.retain(|_, b| {
                if b.gen != table.gen {
                    let p = usize::from(b.policy);
                    // A global key's state is in Redis and its lease (see `super::reload`):
                    // only its generation moves.
                    if let (None, Some(old), Some(new)) =
                        (&b.lease, table.policy_for(p, b.gen), table.policies.get(p))
                    {
                        let word = b.word.load(Ordering::Acquire);
                        b.word
                            .store(new.carry_over(old, word, now), Ordering::Release);
                    }
                    b.gen = table.gen;
                    moved += 1;
                }
                true
            });
            Ok(moved)
        });
    }
}

/// Sweeps now (tests and operators; the interval sweep does the same).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SweepNow {
    pub reply: Reply<usize>,
}

impl Handler<SweepNow> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: SweepNow, ctx: &mut Self::Context) {
        let (state, limits) = (&self.state, &self.limits);
        contain::<Self, _>(ctx, &self.meter, Some(msg.reply), || {
            Ok(sweep(state, limits, true))
        });
    }
}

/// Test hook: makes the handler panic, to exercise supervision.
#[doc(hidden)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poison {
    pub reply: Reply<()>,
}

impl Handler<Poison> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: Poison, ctx: &mut Self::Context) {
        contain::<Self, _>(ctx, &self.meter, Some(msg.reply), || {
            panic!("poisoned on purpose")
        });
    }
}
