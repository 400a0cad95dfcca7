//! Sharded read-through cache with single-flight loads, for any key and shared value: the
//! service keeps its users in one and its verified access tokens in another.
//!
//! ```text
//! let users: ShardedCache<[u8; 16], Arc<CachedUser>> = ShardedCache::start("user_cache", &cfg.cache)?;
//! let user = users.get_or_load(id, || async { store.load(id).await }).await?; // Option<V>
//! users.invalidate(&id);       // after every committed write of that user, before answering
//! users.insert(id, fresh).await?;
//! ```
//! * A hit is served on the caller's thread from the shard's `DashMap` (clone of `V`, which
//!   should be an `Arc`; no actor hop, no allocation).
//! * Concurrent misses of one key run exactly one `load` (the first caller's, on its own
//!   task); the others wait for its result for at most `load_timeout_ms`. A failed,
//!   cancelled or timed-out load gives its waiters `Unavailable` (not a retry storm).
//!   `Ok(None)` (not found) is shared with the waiters and not cached.
//! * `invalidate` is synchronous: it marks the key's in-flight load stale (its per-key
//!   generation) and removes the entry, so once it returns no stale value can be served
//!   or installed afterwards.
//! * Versioned values (`start_versioned`): an install never replaces a newer version of
//!   the key with an older one, and `invalidate_older(key, v)` (a change to version `v`
//!   committed elsewhere) evicts only an entry older than `v`, while still making any
//!   in-flight load uncacheable (it may have read the row before the change).
//! * `set_max_age(Some(d))`: entries installed more than `d` ago are misses (and get
//!   reloaded) until `set_max_age(None)`; for when invalidations may be going missing.
//! * The shard actor owns every insertion: it enforces `capacity` (expired entries first,
//!   then the least recently hit eighth of the shard: approximate LRU), sweeps expired
//!   entries on an interval, and is supervised; a full mailbox just skips caching.
//!
//! Metrics: `bulkhead_cache_hits_total{cache}`, `bulkhead_cache_misses_total{cache}`,
//! `bulkhead_cache_evictions_total{cache}`, `bulkhead_cache_entries{cache}`.

mod shard;

use std::borrow::Borrow;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Supervisor};
use dashmap::DashMap;
use tokio::sync::watch;
use tokio::time::Instant;

pub use shard::{CacheKey, CacheValue};
use shard::{CacheMeters, CacheShard, Flight, Install, KeyHasher, Retune, ShardState, VersionOf};

use crate::config::CacheConfig;
use crate::supervise::{ask, tell, Meter};
use crate::ActorError;

struct Shard<K: CacheKey, V: CacheValue> {
    state: Arc<ShardState<K, V>>,
    addr: Addr<CacheShard<K, V>>,
}

struct Inner<K: CacheKey, V: CacheValue> {
    shards: Vec<Shard<K, V>>,
    hasher: KeyHasher,
    meters: Arc<CacheMeters>,
    meter: Arc<Meter>,
    load_timeout: Duration,
    send_timeout: Duration,
    ttl: Duration,
    /// Entries installed longer ago than this many milliseconds are misses;
    /// `u64::MAX`: no limit but the TTL.
    max_age_ms: AtomicU64,
}

/// Handle to the cache. Cheap to clone; `Send + Sync`.
pub struct ShardedCache<K: CacheKey, V: CacheValue> {
    inner: Arc<Inner<K, V>>,
}

impl<K: CacheKey, V: CacheValue> Clone for ShardedCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K: CacheKey, V: CacheValue> ShardedCache<K, V> {
    /// Validates `cfg` and starts the supervised shard actors on the current arbiter.
    pub fn start(name: &str, cfg: &CacheConfig) -> Result<Self, String> {
        Self::start_inner(name, cfg, None)
    }

    /// Like [`ShardedCache::start`], for values that carry a version (`version_of`): an
    /// older version never replaces a newer one, and [`ShardedCache::invalidate_older`]
    /// keeps entries already at or past the version it names.
    pub fn start_versioned(
        name: &str,
        cfg: &CacheConfig,
        version_of: fn(&V) -> i64,
    ) -> Result<Self, String> {
        Self::start_inner(name, cfg, Some(version_of))
    }

    fn start_inner(
        name: &str,
        cfg: &CacheConfig,
        version_of: Option<VersionOf<V>>,
    ) -> Result<Self, String> {
        cfg.validate().map_err(|e| format!("cache.{e}"))?;
        let meters = Arc::new(CacheMeters {
            hits: metrics::counter!("bulkhead_cache_hits_total", "cache" => name.to_owned()),
            misses: metrics::counter!("bulkhead_cache_misses_total", "cache" => name.to_owned()),
            evictions: metrics::counter!("bulkhead_cache_evictions_total", "cache" => name.to_owned()),
            entries: metrics::gauge!("bulkhead_cache_entries", "cache" => name.to_owned()),
        });
        let meter = Arc::new(Meter::new("user_cache"));
        let n = cfg.effective_shards();
        let base = Instant::now();
        let ttl = Duration::from_secs(cfg.ttl_secs);
        let shards = (0..n)
            .map(|_| {
                let state = Arc::new(ShardState {
                    entries: DashMap::with_hasher(KeyHasher::default()),
                    inflight: DashMap::with_hasher(KeyHasher::default()),
                    capacity: AtomicUsize::new((cfg.capacity / n).max(1)),
                    base,
                    ttl_ms: AtomicU64::new(cfg.ttl_secs.saturating_mul(1_000)),
                    meters: meters.clone(),
                    version_of,
                });
                let actor = CacheShard {
                    state: state.clone(),
                    meter: meter.clone(),
                    mailbox_capacity: cfg.mailbox_capacity,
                    sweep_interval: (ttl / 4)
                        .clamp(Duration::from_secs(1), Duration::from_secs(60)),
                };
                Shard {
                    state,
                    addr: Supervisor::start(move |_| actor),
                }
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                shards,
                hasher: KeyHasher::default(),
                meters,
                meter,
                load_timeout: Duration::from_millis(cfg.load_timeout_ms),
                send_timeout: Duration::from_millis(cfg.send_timeout_ms),
                ttl,
                max_age_ms: AtomicU64::new(u64::MAX),
            }),
        })
    }

    /// New capacity and TTL from a reload (the shard count is fixed at start): each
    /// shard actor applies them between two messages, capping every entry's lifetime at
    /// the new TTL from now and evicting down to the new capacity.
    pub async fn reconfigure(&self, cfg: &CacheConfig) -> Result<(), String> {
        cfg.validate().map_err(|e| format!("cache.{e}"))?;
        let n = self.inner.shards.len();
        if cfg.effective_shards() != n {
            return Err(format!("cache.shards: fixed at start ({n})"));
        }
        let deadline = self.inner.send_timeout.max(Duration::from_secs(2));
        for shard in &self.inner.shards {
            ask(&shard.addr, &self.inner.meter, deadline, |reply| Retune {
                capacity: (cfg.capacity / n).max(1),
                ttl: Duration::from_secs(cfg.ttl_secs),
                reply,
            })
            .await
            .map_err(|e| format!("cache shard did not take the new settings: {e}"))?;
        }
        Ok(())
    }

    /// The cached value, if present and fresh (never loads). Takes any borrowed form of
    /// the key (`&str` for `String` keys), so a lookup need not allocate one.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let state = &self.shard(key).state;
        let entry = state.entries.get(key)?;
        let now = Instant::now();
        if entry.expires <= now {
            return None;
        }
        let max_age_ms = self.inner.max_age_ms.load(Ordering::Relaxed);
        if max_age_ms != u64::MAX && self.age(&entry, now) >= Duration::from_millis(max_age_ms) {
            return None;
        }
        let t = state.now_ms(now);
        if entry.touched.load(Ordering::Relaxed) != t {
            entry.touched.store(t, Ordering::Relaxed);
        }
        self.inner.meters.hits.increment(1);
        Some(entry.value.clone())
    }

    /// A hit, or the result of one (shared) `load` for this key.
    pub async fn get_or_load<F, Fut, E>(&self, key: K, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
        E: From<ActorError>,
    {
        if let Some(v) = self.get(&key) {
            return Ok(Some(v));
        }
        self.inner.meters.misses.increment(1);
        let shard = self.shard(&key);
        let (flight, tx) = match shard.state.inflight.entry(key.clone()) {
            dashmap::Entry::Occupied(o) => {
                let rx = o.get().result.clone();
                drop(o);
                return self.wait(rx).await;
            }
            dashmap::Entry::Vacant(v) => {
                let (tx, rx) = watch::channel(None);
                let flight = Arc::new(Flight {
                    stale: AtomicBool::new(false),
                    result: rx,
                });
                v.insert(flight.clone());
                (flight, tx)
            }
        };
        let mut guard = LoadGuard {
            state: &shard.state,
            key: &key,
            flight: &flight,
            armed: true,
        };
        // A load that finished between our miss and our flight registration has installed
        // its entry before ending its flight: look again before loading.
        if let Some(v) = self.get(&key) {
            let _ = tx.send(Some(Some(v.clone())));
            return Ok(Some(v));
        }
        let loaded = match tokio::time::timeout(self.inner.load_timeout, load()).await {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => return Err(e),
            Err(_elapsed) => return Err(ActorError::Timeout.into()),
        };
        let _ = tx.send(Some(loaded.clone()));
        if let Some(value) = &loaded {
            let msg = Install {
                key: key.clone(),
                value: value.clone(),
                flight: Some(flight.clone()),
                reply: None,
            };
            // The actor ends the flight after installing; if it cannot take the message the
            // value is simply not cached and the guard ends the flight.
            guard.armed = tell(&shard.addr, &self.inner.meter, msg).is_err();
        }
        Ok(loaded)
    }

    /// Caches `value` now (superseding any in-flight load of the key).
    pub async fn insert(&self, key: K, value: V) -> Result<(), ActorError> {
        let shard = self.shard(&key);
        if let Some((_, flight)) = shard.state.inflight.remove(&key) {
            flight.stale.store(true, Ordering::SeqCst);
        }
        ask(
            &shard.addr,
            &self.inner.meter,
            self.inner.send_timeout,
            |reply| Install {
                key,
                value,
                flight: None,
                reply: Some(reply),
            },
        )
        .await
    }

    /// Drops the key's entry and makes any in-flight load of it uncacheable. Call after
    /// every committed write of the key, before answering.
    pub fn invalidate(&self, key: &K) {
        self.shard(key).state.invalidate(key);
    }

    /// Drops the key's entry unless it is already at `version` or later, and makes any
    /// in-flight load of it uncacheable. For a change committed elsewhere (a notification
    /// naming the new version); returns whether an entry was dropped. Unversioned caches
    /// drop the entry whatever its version.
    pub fn invalidate_older(&self, key: &K, version: i64) -> bool {
        self.shard(key).state.invalidate_older(key, version)
    }

    /// Drops every entry and makes every in-flight load uncacheable (a resync after
    /// invalidations may have been lost).
    pub fn clear(&self) -> usize {
        self.inner.shards.iter().map(|s| s.state.clear()).sum()
    }

    /// Entries installed more than `max_age` ago are misses from now on (`None`: only the
    /// TTL counts again). A miss reloads, and the fresh entry is good for `max_age`.
    pub fn set_max_age(&self, max_age: Option<Duration>) {
        let ms = max_age.map_or(u64::MAX, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1)
        });
        self.inner.max_age_ms.store(ms, Ordering::Relaxed);
    }

    fn age(&self, entry: &shard::Entry<V>, now: Instant) -> Duration {
        // Installed at `expires - ttl`.
        (now + self.inner.ttl).saturating_duration_since(entry.expires)
    }

    /// Entries held now, over all shards (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.state.entries.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shard actor restarts since start.
    pub fn restarts(&self) -> u64 {
        self.inner.meter.restarts()
    }

    async fn wait<E: From<ActorError>>(
        &self,
        mut rx: watch::Receiver<Option<Option<V>>>,
    ) -> Result<Option<V>, E> {
        let waited = tokio::time::timeout(self.inner.load_timeout, rx.wait_for(Option::is_some));
        match waited.await {
            Ok(Ok(result)) => Ok(result.as_ref().and_then(Clone::clone)),
            Ok(Err(_loader_gone)) => Err(ActorError::Unavailable.into()),
            Err(_elapsed) => Err(ActorError::Timeout.into()),
        }
    }

    #[inline]
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Shard<K, V> {
        let n = self.inner.shards.len();
        if n == 1 {
            return &self.inner.shards[0];
        }
        let h = self.inner.hasher.hash_one(key);
        &self.inner.shards[((h >> 32) as usize) % n]
    }
}

/// Ends the flight if the loader returns early (error, timeout, cancellation, panic):
/// its waiters then see the sender dropped and answer `Unavailable`.
struct LoadGuard<'a, K: Hash + Eq + Clone, V: Clone> {
    state: &'a ShardState<K, V>,
    key: &'a K,
    flight: &'a Arc<Flight<V>>,
    armed: bool,
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for LoadGuard<'_, K, V> {
    fn drop(&mut self) {
        if self.armed {
            self.state.end_flight(self.key, self.flight);
        }
    }
}
