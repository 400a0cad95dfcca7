//! `[cache.users]` (the per-user cache, with the bound on trusting it while invalidations
//! may be going missing), `[cache.products]` (public product reads, with the bound on
//! their age) and `[invalidation]` (the LISTEN/NOTIFY listener that keeps the
//! caches of every instance in step with Postgres).

use serde::{Deserialize, Serialize};

use bulkhead_actors::config::CacheConfig;

/// The per-user cache: the keys of every cache, plus `degraded_ttl_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersCacheConfig {
    /// Number of shard actors; 0 = one per available core.
    pub shards: usize,
    /// Entries in total (split evenly across shards; a hard bound).
    pub capacity: usize,
    /// Entries older than this are misses and get swept.
    pub ttl_secs: u64,
    /// Mailbox capacity of each shard actor.
    pub mailbox_capacity: usize,
    /// Deadline of one load, and of a caller waiting for another caller's load.
    pub load_timeout_ms: u64,
    /// Deadline for a request-path send to a shard actor.
    pub send_timeout_ms: u64,
    /// While the invalidation listener is disconnected (or not yet connected), a cached
    /// user older than this is reloaded from the store.
    pub degraded_ttl_ms: u64,
}

impl Default for UsersCacheConfig {
    fn default() -> Self {
        let c = CacheConfig::default();
        Self {
            shards: c.shards,
            capacity: c.capacity,
            ttl_secs: c.ttl_secs,
            mailbox_capacity: c.mailbox_capacity,
            load_timeout_ms: c.load_timeout_ms,
            send_timeout_ms: c.send_timeout_ms,
            degraded_ttl_ms: 1_000,
        }
    }
}

impl UsersCacheConfig {
    /// The cache actors' part.
    pub fn cache(&self) -> CacheConfig {
        CacheConfig {
            shards: self.shards,
            capacity: self.capacity,
            ttl_secs: self.ttl_secs,
            mailbox_capacity: self.mailbox_capacity,
            load_timeout_ms: self.load_timeout_ms,
            send_timeout_ms: self.send_timeout_ms,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.cache().validate()?;
        if self.degraded_ttl_ms == 0 {
            return Err("degraded_ttl_ms must be at least 1".into());
        }
        if self.degraded_ttl_ms > self.ttl_secs.saturating_mul(1000) {
            return Err("degraded_ttl_ms must be at most ttl_secs".into());
        }
        Ok(())
    }
}

/// Longest `cache.products.max_age_ms` accepted: the contract's 100 ms bound on seeing
/// another instance's write (stock taken by its orders is not announced).
pub const MAX_PRODUCT_AGE_MS: u64 = 100;

/// Public product reads (`GET /api/v1/products/{id}` and list pages), cached as the
/// bytes they answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductsCacheConfig {
    /// Off: every read goes to the store.
    pub enabled: bool,
    /// Products cached by id, in all shards together.
    pub capacity: usize,
    /// List pages cached by their query string.
    pub list_capacity: usize,
    /// No entry is served to a request that arrived longer than this after the entry's
    /// load began (1..=100): stock changed by another instance's orders is announced to
    /// no one, so this is what bounds its staleness.
    pub max_age_ms: u64,
}

impl Default for ProductsCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: 10_000,
            list_capacity: 1_000,
            max_age_ms: 50,
        }
    }
}

impl ProductsCacheConfig {
    /// The cache actors' part, for products (`list: false`) or list pages.
    pub fn cache(&self, list: bool) -> CacheConfig {
        CacheConfig {
            capacity: if list {
                self.list_capacity
            } else {
                self.capacity
            },
            // Entries are dropped by age long before; this only sets the sweep.
            ttl_secs: 1,
            ..CacheConfig::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.cache(false).validate()?;
        self.cache(true)
            .validate()
            .map_err(|e| e.replace("capacity", "list_capacity"))?;
        if !(1..=MAX_PRODUCT_AGE_MS).contains(&self.max_age_ms) {
            return Err(format!(
                "max_age_ms must be from 1 to {MAX_PRODUCT_AGE_MS} (the contract's bound on \
                 seeing another instance's write)"
            ));
        }
        Ok(())
    }
}

/// The listener (Postgres only; the embedded store is one process and needs none).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvalidationConfig {
    /// LISTEN for changes made by other instances. Off: caches are invalidated only by
    /// this instance's own writes (a single instance), and cached users are trusted for
    /// `cache.users.ttl_secs`.
    pub enabled: bool,
    /// First wait before reconnecting a lost listener; doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest wait between reconnection attempts.
    pub reconnect_max_ms: u64,
    /// How often the listener checks its connection (`SELECT 1`). A connection attempt
    /// slower than this fails; a check slower than this degrades the caches (cached users
    /// trusted for `cache.users.degraded_ttl_ms`), and one unanswered after twice this
    /// counts as a lost connection.
    pub ping_interval_ms: u64,
    /// Product changes buffered for each subscriber (a product cache) before it lags and
    /// is told to drop everything.
    pub subscriber_capacity: usize,
}

impl Default for InvalidationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            ping_interval_ms: 1_000,
            subscriber_capacity: 1_024,
        }
    }
}

impl InvalidationConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (field, v) in [
            ("reconnect_min_ms", self.reconnect_min_ms),
            ("reconnect_max_ms", self.reconnect_max_ms),
            ("ping_interval_ms", self.ping_interval_ms),
            ("subscriber_capacity", self.subscriber_capacity as u64),
        ] {
            if v == 0 {
                return Err(format!("{field} must be at least 1"));
            }
        }
        if self.reconnect_max_ms < self.reconnect_min_ms {
            return Err("reconnect_max_ms must be at least reconnect_min_ms".into());
        }
        if self.subscriber_capacity > 1 << 20 {
            return Err("subscriber_capacity must be at most 1048576".into());
        }
        Ok(())
    }
}
