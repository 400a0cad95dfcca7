//! The product cache: public `GET /api/v1/products/{id}` and list pages served from two
//! bounded caches ([`ShardedCache`]s: single-flight loads, linearizable invalidation,
//! capacity with approximate LRU) as the bytes the uncached answer would carry.
//!
//! Freshness, for the contract's "after a write is acknowledged, later reads reflect it
//! at once on the instance that wrote it and within 100 ms on the others":
//! * This instance's product writes, orders and cancellations (stock) drop the affected
//!   products and every list page after the store call and before answering, whatever
//!   its outcome; a load racing the drop is returned to its callers but never installed.
//! * Other instances' catalogue changes arrive by NOTIFY (`Invalidations::
//!   subscribe_products`): the product's entry older than the announced version and every
//!   list page are dropped; a resync (the listener reconnected, or this subscriber lagged)
//!   drops everything.
//! * Stock taken or returned by other instances' orders is announced to no one (the
//!   `sql/0004` trigger leaves stock-only updates out, so the order path takes no NOTIFY
//!   lock). So no entry is served to a request that arrived `cache.products.max_age_ms`
//!   (at most 100) or more after the entry's load began: the load began after any write
//!   acknowledged 100 ms before the request, so it reflects it. A request that waited for
//!   a shared load in flight takes its result if that load began less than 100 ms before
//!   the request arrived (the same argument), so a load slower than `max_age_ms` under
//!   saturation does not send every waiter to the store. While the listener is
//!   disconnected both bounds are also at most `cache.users.degraded_ttl_ms`.
//! * Versioned: a product's entry is never replaced by an older version of it.
//!
//! Metrics: `bulkhead_cache_{hits,misses,evictions}_total{cache="products"|"product_lists"}`
//! and `bulkhead_cache_entries`, as every [`ShardedCache`].

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bulkhead_actors::ShardedCache;
use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::{Config, ProductsCacheConfig, MAX_PRODUCT_AGE_MS};
use crate::domain::precondition::ETag;
use crate::domain::product::Product;
use crate::error::ApiError;
use crate::invalidation::{Invalidations, ProductChange};

/// A product as `GET /api/v1/products/{id}` answers it.
#[derive(Debug)]
pub struct CachedProduct {
    pub version: i64,
    pub etag: ETag,
    pub body: Bytes,
    /// When the load that read it began.
    loaded: Instant,
}

impl CachedProduct {
    fn new(product: &Product, loaded: Instant) -> Self {
        Self {
            version: product.version,
            etag: ETag::for_version(product.version),
            body: Bytes::from(serde_json::to_vec(product).unwrap_or_default()),
            loaded,
        }
    }
}

/// A list page as `GET /api/v1/products?...` answers it.
#[derive(Debug)]
pub struct CachedPage {
    pub body: Bytes,
    /// `body` gzipped, made by the first request that wants it and kept with the page.
    gzip: OnceLock<Option<Bytes>>,
    loaded: Instant,
}

impl CachedPage {
    /// The body gzipped (level 1, as actix-web's `Compress` does it): once per page
    /// however many clients that accept gzip it answers, where `Compress` gzips every
    /// answer again (on its blocking thread pool, for bodies of 1 KiB and more).
    /// `None` if it could not be made (writing to memory does not fail; if it did, the
    /// page goes out as it is).
    pub fn gzip(&self) -> Option<Bytes> {
        self.gzip
            .get_or_init(|| crate::gzip::gzip(&self.body))
            .clone()
    }
}

/// The two caches and their freshness bound (see the module docs).
pub struct ProductCache {
    enabled: bool,
    items: ShardedCache<Uuid, Arc<CachedProduct>>,
    lists: ShardedCache<String, Arc<CachedPage>>,
    max_age_ms: AtomicU64,
    degraded_ttl: Duration,
    invalidations: Arc<Invalidations>,
}

impl ProductCache {
    /// Starts the caches and the task that applies other instances' changes. Must run
    /// inside the actors' runtime; subscribe before the listener first connects, so its
    /// first resync reaches this cache.
    pub fn start(config: &Config, invalidations: Arc<Invalidations>) -> Result<Arc<Self>, String> {
        let cfg = &config.cache.products;
        let items = ShardedCache::start_versioned(
            "products",
            &cfg.cache(false),
            |p: &Arc<CachedProduct>| p.version,
        )?;
        let lists = ShardedCache::start("product_lists", &cfg.cache(true))?;
        let this = Arc::new(Self {
            enabled: cfg.enabled,
            items,
            lists,
            max_age_ms: AtomicU64::new(cfg.max_age_ms),
            degraded_ttl: Duration::from_millis(config.cache.users.degraded_ttl_ms),
            invalidations: invalidations.clone(),
        });
        this.set_max_age(cfg.max_age_ms);
        let changes = invalidations.subscribe_products();
        // The task holds only the caches, so it ends with the hub's sender.
        let (items, lists) = (this.items.clone(), this.lists.clone());
        actix::spawn(follow(changes, items, lists));
        Ok(this)
    }

    /// New capacities and age from a reload.
    pub async fn reconfigure(&self, cfg: &ProductsCacheConfig) -> Result<(), String> {
        self.items.reconfigure(&cfg.cache(false)).await?;
        self.lists.reconfigure(&cfg.cache(true)).await?;
        self.set_max_age(cfg.max_age_ms);
        Ok(())
    }

    fn set_max_age(&self, ms: u64) {
        self.max_age_ms.store(ms, Ordering::Relaxed);
        // The caches' own age check (from install) drops old entries early; ours (from
        // the load's start, against the request's arrival) is the bound.
        let age = Some(Duration::from_millis(ms));
        self.items.set_max_age(age);
        self.lists.set_max_age(age);
    }

    /// The longest an entry's load may have begun before a request that is served it.
    fn max_age(&self) -> Duration {
        let age = Duration::from_millis(self.max_age_ms.load(Ordering::Relaxed));
        if self.invalidations.is_listening() && !self.invalidations.is_connected() {
            age.min(self.degraded_ttl)
        } else {
            age
        }
    }

    /// Whether an entry loaded at `loaded` may answer a request that arrived at `asked`.
    fn fresh(&self, loaded: Instant, asked: Instant) -> bool {
        asked.saturating_duration_since(loaded) < self.max_age()
    }

    /// Whether the result of a shared load that began at `loaded` may answer a request
    /// that arrived at `asked` and waited for it: up to the contract's bound (a write
    /// acknowledged 100 ms before the request was committed before the load began), so
    /// that a load slower than `max_age_ms` under saturation does not send every waiter
    /// to the store on its own (which is what shed reads as 503).
    fn fresh_shared(&self, loaded: Instant, asked: Instant) -> bool {
        let bound = Duration::from_millis(MAX_PRODUCT_AGE_MS);
        let bound = if self.invalidations.is_listening() && !self.invalidations.is_connected() {
            bound.min(self.degraded_ttl)
        } else {
            bound
        };
        asked.saturating_duration_since(loaded) < bound
    }

    /// Read through `cache`: a fresh entry (load began less than `max_age_ms` before the
    /// request), else the result of one shared `load` that began less than 100 ms before
    /// the request (see [`ProductCache::fresh_shared`]), else (a load slower than that,
    /// or one that installed late) a load of its own, uncached.
    async fn read_through<K, Q, V, F, Fut>(
        &self,
        cache: &ShardedCache<K, Arc<V>>,
        key: &Q,
        load: F,
    ) -> Result<Option<Arc<V>>, ApiError>
    where
        K: Hash + Eq + Clone + Send + Sync + Unpin + 'static + Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Loaded + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<Arc<V>>, ApiError>>,
    {
        let asked = Instant::now();
        if !self.enabled {
            return load().await;
        }
        if let Some(hit) = cache.get(key) {
            if self.fresh(hit.loaded(), asked) {
                return Ok(Some(hit));
            }
        }
        match cache.get_or_load(key.to_owned(), &load).await? {
            Some(v) if !self.fresh_shared(v.loaded(), asked) => load().await,
            other => Ok(other),
        }
    }

    /// Product `id` as `GET /api/v1/products/{id}` answers it; `load` reads it from the
    /// store (call [`product_entry`] with the instant it began).
    pub(super) async fn product<F, Fut>(
        &self,
        id: Uuid,
        load: F,
    ) -> Result<Option<Arc<CachedProduct>>, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<Arc<CachedProduct>>, ApiError>>,
    {
        self.read_through(&self.items, &id, load).await
    }

    /// The page of query string `key`; `load` reads and renders it ([`page_entry`]).
    pub(super) async fn page<F, Fut>(
        &self,
        key: &str,
        load: F,
    ) -> Result<Option<Arc<CachedPage>>, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<Arc<CachedPage>>, ApiError>>,
    {
        self.read_through(&self.lists, key, load).await
    }

    /// This instance wrote products `ids` (or took or returned their stock): drop them
    /// and every list page. Call after the store call, whatever its outcome.
    pub fn written(&self, ids: impl IntoIterator<Item = Uuid>) {
        for id in ids {
            self.items.invalidate(&id);
        }
        self.lists.clear();
    }

    /// A write whose products are unknown (it failed, maybe after committing): drop all.
    pub fn clear(&self) {
        self.items.clear();
        self.lists.clear();
    }
}

/// What an entry knows of its load.
trait Loaded {
    /// When the load that read it began.
    fn loaded(&self) -> Instant;
}

impl Loaded for CachedProduct {
    fn loaded(&self) -> Instant {
        self.loaded
    }
}

impl Loaded for CachedPage {
    fn loaded(&self) -> Instant {
        self.loaded
    }
}

/// A product read as cached (load start recorded before the store call).
pub(super) fn product_entry(product: &Product, loaded: Instant) -> Arc<CachedProduct> {
    Arc::new(CachedProduct::new(product, loaded))
}

/// A page read as cached.
pub(super) fn page_entry(body: Bytes, loaded: Instant) -> Arc<CachedPage> {
    Arc::new(CachedPage {
        body,
        gzip: OnceLock::new(),
        loaded,
    })
}

/// Applies other instances' changes (and our own, announced too) until the hub is gone.
async fn follow(
    mut changes: broadcast::Receiver<ProductChange>,
    items: ShardedCache<Uuid, Arc<CachedProduct>>,
    lists: ShardedCache<String, Arc<CachedPage>>,
) {
    loop {
        match changes.recv().await {
            Ok(ProductChange::Changed { id, version }) => {
                items.invalidate_older(&id, version);
                lists.clear();
            }
            Ok(ProductChange::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                items.clear();
                lists.clear();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
