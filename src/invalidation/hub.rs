//! What the service shares about invalidation: the channels, [`Invalidations`] (applying
//! notifications to the caches, the connection state, the product subscribers) and the
//! lag metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulkhead_actors::ShardedCache;
use metrics::{Counter, Gauge, Histogram};
use serde::Deserialize;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::config::Config;
use crate::service::cached::CachedUser;

/// The channels the triggers notify on.
pub const USERS_CHANNEL: &str = "bulkhead_users";
pub const FAMILIES_CHANNEL: &str = "bulkhead_token_families";
pub const PRODUCTS_CHANNEL: &str = "bulkhead_products";

/// The listener's `application_name` (operators find its backend by it).
pub const APPLICATION_NAME: &str = "bulkhead-listener";

/// What a product cache hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductChange {
    /// Product `id` changed (created, edited, deleted) and is now at `version`.
    Changed { id: Uuid, version: i64 },
    /// Changes may have been missed (the listener reconnected, or this subscriber fell
    /// behind): drop everything cached about products.
    Resync,
}

/// The invalidation state the service shares (see the module docs).
pub struct Invalidations {
    users: ShardedCache<Uuid, Arc<CachedUser>>,
    /// Ids known to be no live user: a change of such a user (a NOTIFY naming it) drops
    /// the entry.
    absent_users: ShardedCache<Uuid, ()>,
    degraded_ttl: Duration,
    /// Whether anything listens at all (Postgres, `invalidation.enabled`).
    listening: bool,
    connected: AtomicBool,
    products: broadcast::Sender<ProductChange>,
    meters: Meters,
}

struct Meters {
    connected: Gauge,
    reconnects: Counter,
    slow_checks: Counter,
    lag_user: Histogram,
    lag_family: Histogram,
    lag_product: Histogram,
}

#[derive(Deserialize)]
struct VersionPayload {
    id: Uuid,
    v: i64,
    ts: f64,
}

#[derive(Deserialize)]
struct FamilyPayload {
    user_id: Uuid,
    ts: f64,
}

impl Invalidations {
    /// `listening`: whether an [`Invalidator`] will run. Until it connects, cached users
    /// are trusted only for `cache.users.degraded_ttl_ms`.
    pub fn new(
        config: &Config,
        users: ShardedCache<Uuid, Arc<CachedUser>>,
        absent_users: ShardedCache<Uuid, ()>,
        listening: bool,
    ) -> Arc<Self> {
        let (products, _) = broadcast::channel(config.invalidation.subscriber_capacity);
        let lag = |kind: &'static str| metrics::histogram!("bulkhead_cache_invalidation_lag_seconds", "kind" => kind);
        let this = Arc::new(Self {
            users,
            absent_users,
            degraded_ttl: Duration::from_millis(config.cache.users.degraded_ttl_ms),
            listening,
            connected: AtomicBool::new(false),
            products,
            meters: Meters {
                connected: metrics::gauge!("bulkhead_invalidation_listener_connected"),
                reconnects: metrics::counter!("bulkhead_invalidation_reconnects_total"),
                slow_checks: metrics::counter!("bulkhead_invalidation_slow_checks_total"),
                lag_user: lag("user"),
                lag_family: lag("token_family"),
                lag_product: lag("product"),
            },
        });
        if listening {
            this.disconnected();
        }
        this
    }

    /// Product changes committed by any instance (this one included), for a cache of
    /// products or product lists. A lagging subscriber gets `RecvError::Lagged` and
    /// should treat it as [`ProductChange::Resync`].
    pub fn subscribe_products(&self) -> broadcast::Receiver<ProductChange> {
        self.products.subscribe()
    }

    /// Whether changes made by other instances reach this one now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Whether a listener runs at all (Postgres with `invalidation.enabled`).
    pub fn is_listening(&self) -> bool {
        self.listening
    }

    /// The listener lost (or has not yet made) its connection: notifications may be
    /// going missing, so cached users are trusted for the degraded TTL only.
    pub(super) fn disconnected(&self) {
        self.users.set_max_age(Some(self.degraded_ttl));
        if self.connected.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                "invalidation listener disconnected; cached users now trusted for {:?}",
                self.degraded_ttl
            );
        }
        self.meters.connected.set(0.0);
    }

    /// A connection check is late: the connection may be gone, so cached users are
    /// trusted for the degraded TTL only (as when disconnected), but nothing is dropped.
    pub(super) fn check_slow(&self) {
        self.users.set_max_age(Some(self.degraded_ttl));
        self.meters.slow_checks.increment(1);
        tracing::warn!(
            "invalidation listener's check is late; cached users now trusted for {:?}",
            self.degraded_ttl
        );
    }

    /// The late check was answered: the connection delivered every notification before
    /// it, so the caches are trusted again without a resync.
    pub(super) fn check_recovered(&self) {
        if self.connected.load(Ordering::SeqCst) {
            self.users.set_max_age(None);
        }
    }

    /// The listener is LISTENing again: whatever changed while it was away is made up by
    /// dropping every cached user (and telling product subscribers to do the same).
    pub(super) fn resynced(&self, reconnect: bool) {
        let dropped = self.users.clear() + self.absent_users.clear();
        let _ = self.products.send(ProductChange::Resync);
        self.connected.store(true, Ordering::SeqCst);
        self.users.set_max_age(None);
        self.meters.connected.set(1.0);
        if reconnect {
            self.meters.reconnects.increment(1);
        }
        tracing::info!(
            dropped,
            "invalidation listener connected; caches resynchronised"
        );
    }

    /// Apply one notification.
    pub(super) fn apply(&self, channel: &str, payload: &str) {
        let now = unix_now();
        match channel {
            USERS_CHANNEL => match serde_json::from_str::<VersionPayload>(payload) {
                Ok(p) => {
                    self.users.invalidate_older(&p.id, p.v);
                    self.absent_users.invalidate(&p.id);
                    self.meters.lag_user.record(lag(now, p.ts));
                }
                Err(e) => bad_payload(channel, &e),
            },
            FAMILIES_CHANNEL => match serde_json::from_str::<FamilyPayload>(payload) {
                Ok(p) => {
                    // Nothing caches refresh tokens (rotation reads the store); the user's
                    // entry goes so that anything derived from the family is reloaded.
                    self.users.invalidate(&p.user_id);
                    self.meters.lag_family.record(lag(now, p.ts));
                }
                Err(e) => bad_payload(channel, &e),
            },
            PRODUCTS_CHANNEL => match serde_json::from_str::<VersionPayload>(payload) {
                Ok(p) => {
                    let _ = self.products.send(ProductChange::Changed {
                        id: p.id,
                        version: p.v,
                    });
                    self.meters.lag_product.record(lag(now, p.ts));
                }
                Err(e) => bad_payload(channel, &e),
            },
            _ => {}
        }
    }
}

fn bad_payload(channel: &str, e: &serde_json::Error) {
    tracing::warn!(channel, error = %e, "ignoring a malformed invalidation payload");
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Commit to now, in seconds; never negative (the database's clock may be ahead of ours).
fn lag(now: f64, ts: f64) -> f64 {
    if ts.is_finite() {
        (now - ts).max(0.0)
    } else {
        0.0
    }
}
