//! One cache shard: the entries and in-flight loads it shares with the handle, and the
//! actor that owns every insertion, eviction (capacity) and expiry sweep of the shard.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;

/// Hashes the cache's keys: foldhash, seeded per process (keys are user ids and verified
/// tokens, neither chosen freely by a client; SipHash cost a tenth of a cache hit).
pub type KeyHasher = foldhash::fast::RandomState;
use metrics::{Counter, Gauge};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::supervise::{contain, Meter, Reply};

/// Reads a value's version (versioned caches only).
pub type VersionOf<V> = fn(&V) -> i64;

/// What a cache key must be (blanket-implemented).
pub trait CacheKey: Hash + Eq + Clone + Send + Sync + Unpin + 'static {}
impl<T: Hash + Eq + Clone + Send + Sync + Unpin + 'static> CacheKey for T {}

/// What a cached value must be (blanket-implemented); make it an `Arc` so hits are cheap.
pub trait CacheValue: Clone + Send + Sync + Unpin + 'static {}
impl<T: Clone + Send + Sync + Unpin + 'static> CacheValue for T {}

pub struct Entry<V> {
    pub value: V,
    pub expires: Instant,
    /// Milliseconds since the cache's base instant at the last hit (approximate LRU).
    pub touched: AtomicU64,
}

/// One in-flight load. `stale` is the key's generation check: set by `invalidate` (and
/// `insert`) so the load's result is returned to its callers but never installed.
pub struct Flight<V> {
    pub stale: AtomicBool,
    pub result: watch::Receiver<Option<Option<V>>>,
}

pub struct CacheMeters {
    pub hits: Counter,
    pub misses: Counter,
    pub evictions: Counter,
    pub entries: Gauge,
}

pub struct ShardState<K, V> {
    pub entries: DashMap<K, Entry<V>, KeyHasher>,
    pub inflight: DashMap<K, Arc<Flight<V>>, KeyHasher>,
    /// Entries this shard may hold; a reload may change it (see [`Retune`]).
    pub capacity: AtomicUsize,
    pub base: Instant,
    /// Lifetime of a new entry, in ms; a reload may change it.
    pub ttl_ms: AtomicU64,
    pub meters: Arc<CacheMeters>,
    pub version_of: Option<VersionOf<V>>,
}

impl<K: Hash + Eq + Clone, V: Clone> ShardState<K, V> {
    fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    /// New bounds from a reload: no entry outlives the new TTL from now, and the shard
    /// is evicted down to the new capacity (expired entries first, then the least
    /// recently hit).
    fn retune(&self, capacity: usize, ttl: Duration, now: Instant) {
        self.capacity.store(capacity, Ordering::Relaxed);
        self.ttl_ms.store(
            u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let latest = now + ttl;
        for mut e in self.entries.iter_mut() {
            if e.expires > latest {
                e.expires = latest;
            }
        }
        while self.entries.len() > capacity {
            let before = self.entries.len();
            self.evict(now);
            if self.entries.len() >= before {
                break;
            }
        }
    }

    pub fn now_ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// Removes `flight` from the in-flight table if it is still the key's current load.
    pub fn end_flight(&self, key: &K, flight: &Arc<Flight<V>>) {
        self.inflight
            .remove_if(key, |_, current| Arc::ptr_eq(current, flight));
    }

    pub fn invalidate(&self, key: &K) {
        // Order matters (see `install`): mark the load stale, then remove the entry.
        if let Some((_, flight)) = self.inflight.remove(key) {
            flight.stale.store(true, Ordering::SeqCst);
        }
        if self.entries.remove(key).is_some() {
            self.meters.entries.decrement(1.0);
        }
    }

    pub fn invalidate_older(&self, key: &K, version: i64) -> bool {
        // As in `invalidate`: the load first (it may have read the row before the change),
        // then the entry, whose version is checked under its lock.
        if let Some((_, flight)) = self.inflight.remove(key) {
            flight.stale.store(true, Ordering::SeqCst);
        }
        let removed = match self.version_of {
            Some(version_of) => self
                .entries
                .remove_if(key, |_, e| version_of(&e.value) < version)
                .is_some(),
            None => self.entries.remove(key).is_some(),
        };
        if removed {
            self.meters.entries.decrement(1.0);
        }
        removed
    }

    pub fn clear(&self) -> usize {
        // Loads first: one that installs between the two steps is then refused.
        self.inflight.retain(|_, flight| {
            flight.stale.store(true, Ordering::SeqCst);
            false
        });
        let mut removed = 0;
        self.entries.retain(|_, _| {
            removed += 1;
            false
        });
        self.meters.entries.decrement(removed as f64);
        removed
    }

    fn install(&self, key: K, value: V, flight: Option<&Arc<Flight<V>>>) {
        let now = Instant::now();
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity() {
            self.evict(now);
            if self.entries.len() >= self.capacity() {
                // Every entry was hit meanwhile: skip caching rather than exceed the bound.
                if let Some(f) = flight {
                    self.end_flight(&key, f);
                }
                return;
            }
        }
        let entry = self.entries.entry(key.clone());
        // Checked under the entry's shard lock: an `invalidate` that set `stale` after this
        // check removes the entry after we release the lock, so no stale value survives it.
        if flight.is_some_and(|f| f.stale.load(Ordering::SeqCst)) {
            return;
        }
        let fresh = Entry {
            value,
            expires: now + self.ttl(),
            touched: AtomicU64::new(self.now_ms(now)),
        };
        match entry {
            dashmap::Entry::Occupied(mut o) => {
                // Never an older version over a newer one (an explicit insert racing a
                // load that read the row before it).
                let older = self
                    .version_of
                    .is_some_and(|v| v(&fresh.value) < v(&o.get().value));
                if !older {
                    o.insert(fresh);
                }
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(fresh);
                self.meters.entries.increment(1.0);
            }
        }
        if let Some(f) = flight {
            self.end_flight(&key, f);
        }
    }

    /// Makes room: expired entries first, then the least recently hit eighth (ties on the
    /// millisecond clock are broken arbitrarily, so exactly that many go).
    fn evict(&self, now: Instant) {
        self.sweep(now);
        let len = self.entries.len();
        if len < self.capacity() {
            return;
        }
        let mut touched: Vec<u64> = self
            .entries
            .iter()
            .map(|e| e.touched.load(Ordering::Relaxed))
            .collect();
        let quota = (touched.len() / 8).max(1);
        let (_, threshold, _) = touched.select_nth_unstable(quota - 1);
        let threshold = *threshold;
        let below = touched.iter().filter(|t| **t < threshold).count();
        let mut ties = quota - below;
        self.entries.retain(|_, e| {
            let t = e.touched.load(Ordering::Relaxed);
            if t < threshold {
                return false;
            }
            if t == threshold && ties > 0 {
                ties -= 1;
                return false;
            }
            true
        });
        let removed = len.saturating_sub(self.entries.len());
        self.meters.entries.decrement(removed as f64);
        self.meters.evictions.increment(removed as u64);
    }

    /// Removes expired entries.
    pub fn sweep(&self, now: Instant) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.expires > now);
        let removed = before - self.entries.len();
        self.meters.entries.decrement(removed as f64);
        self.meters.evictions.increment(removed as u64);
        removed
    }
}

pub struct CacheShard<K, V> {
    pub state: Arc<ShardState<K, V>>,
    pub meter: Arc<Meter>,
    pub mailbox_capacity: usize,
    pub sweep_interval: Duration,
}

impl<K, V> Actor for CacheShard<K, V>
where
    K: CacheKey,
    V: CacheValue,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        ctx.run_interval(self.sweep_interval, |act, ctx| {
            let state = act.state.clone();
            let swept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                state.sweep(Instant::now())
            }));
            if swept.is_err() {
                ctx.stop();
            }
        });
    }
}

impl<K, V> Supervised for CacheShard<K, V>
where
    K: CacheKey,
    V: CacheValue,
{
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.meter.restarted();
    }
}

/// Installs a loaded (with its flight) or explicitly inserted value.
pub struct Install<K, V> {
    pub key: K,
    pub value: V,
    pub flight: Option<Arc<Flight<V>>>,
    pub reply: Option<Reply<()>>,
}

impl<K: 'static, V: 'static> Message for Install<K, V> {
    type Result = ();
}

impl<K, V> Handler<Install<K, V>> for CacheShard<K, V>
where
    K: CacheKey,
    V: CacheValue,
{
    type Result = ();

    fn handle(&mut self, msg: Install<K, V>, ctx: &mut Self::Context) {
        let state = &self.state;
        contain::<Self, ()>(ctx, &self.meter, msg.reply, || {
            state.install(msg.key, msg.value, msg.flight.as_ref());
            Ok(())
        });
    }
}

/// New capacity and TTL for the shard (a reload), applied between two messages.
pub struct Retune {
    pub capacity: usize,
    pub ttl: Duration,
    pub reply: Reply<()>,
}

impl Message for Retune {
    type Result = ();
}

impl<K, V> Handler<Retune> for CacheShard<K, V>
where
    K: CacheKey,
    V: CacheValue,
{
    type Result = ();

    fn handle(&mut self, msg: Retune, ctx: &mut Self::Context) {
        let state = &self.state;
        contain::<Self, ()>(ctx, &self.meter, Some(msg.reply), || {
            state.retune(msg.capacity, msg.ttl, Instant::now());
            Ok(())
        });
    }
}
