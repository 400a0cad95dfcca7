//! Cross-instance cache invalidation over Postgres LISTEN/NOTIFY.
//!
//! Triggers (`sql/0004_invalidation.sql`) announce every committed change that cached
//! state depends on: a users row (`bulkhead_users`), a revoked refresh-token family
//! (`bulkhead_token_families`) and a catalogue change of a product (`bulkhead_products`),
//! each with the id, the new version and a commit-time timestamp. [`Invalidations`] is what
//! the service shares: it applies a notification to the caches (the user cache evicts
//! entries older than the announced version; product changes go to subscribers), tracks
//! whether the listener is connected, and while it is not, makes the user cache trust no
//! entry older than `cache.users.degraded_ttl_ms`. [`Invalidator`] is the supervised actor
//! that owns the listener: its own connection outside the pool, on a thread and tokio
//! runtime of its own (`listener.rs`), reconnecting with backoff, resynchronising (LISTEN
//! first, then drop every cached user) each time it connects.
//!
//! Metrics: `bulkhead_cache_invalidation_lag_seconds{kind}` (commit to eviction),
//! `bulkhead_invalidation_listener_connected`, `bulkhead_invalidation_reconnects_total`.

mod listener;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bulkhead_actors::supervise::Meter;
use bulkhead_actors::ShardedCache;
use metrics::{Counter, Gauge, Histogram};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::config::{Config, InvalidationConfig};
use crate::service::CachedUser;

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
        listening: bool,
    ) -> Arc<Self> {
        let (products, _) = broadcast::channel(config.invalidation.subscriber_capacity);
        let lag = |kind: &'static str| metrics::histogram!("bulkhead_cache_invalidation_lag_seconds", "kind" => kind);
        let this = Arc::new(Self {
            users,
            degraded_ttl: Duration::from_millis(config.cache.users.degraded_ttl_ms),
            listening,
            connected: AtomicBool::new(false),
            products,
            meters: Meters {
                connected: metrics::gauge!("bulkhead_invalidation_listener_connected"),
                reconnects: metrics::counter!("bulkhead_invalidation_reconnects_total"),
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
    fn disconnected(&self) {
        self.users.set_max_age(Some(self.degraded_ttl));
        if self.connected.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                "invalidation listener disconnected; cached users now trusted for {:?}",
                self.degraded_ttl
            );
        }
        self.meters.connected.set(0.0);
    }

    /// The listener is LISTENing again: whatever changed while it was away is made up by
    /// dropping every cached user (and telling product subscribers to do the same).
    fn resynced(&self, reconnect: bool) {
        let dropped = self.users.clear();
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
    fn apply(&self, channel: &str, payload: &str) {
        let now = unix_now();
        match channel {
            USERS_CHANNEL => match serde_json::from_str::<VersionPayload>(payload) {
                Ok(p) => {
                    self.users.invalidate_older(&p.id, p.v);
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

/// The supervised actor that owns the listener thread. Restarted (by its supervisor)
/// when the thread ends for any reason but a stop; dropping it stops the thread.
pub struct Invalidator {
    hub: Arc<Invalidations>,
    cfg: InvalidationConfig,
    pg: tokio_postgres::Config,
    meter: Arc<Meter>,
    running: Option<Running>,
}

struct Running {
    thread: std::thread::JoinHandle<()>,
    /// Dropping (or sending on) it ends the listener.
    _stop: watch::Sender<bool>,
}

/// How often the actor checks that its listener thread is alive.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

impl Invalidator {
    /// Start the supervised actor on the current arbiter. `database_url` was validated
    /// with the configuration.
    pub fn start(
        hub: Arc<Invalidations>,
        cfg: InvalidationConfig,
        database_url: &str,
    ) -> anyhow::Result<Addr<Invalidator>> {
        let mut pg: tokio_postgres::Config = database_url
            .parse()
            .map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
        pg.application_name(APPLICATION_NAME)
            .connect_timeout(Duration::from_millis(cfg.ping_interval_ms))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5));
        let actor = Invalidator {
            hub,
            cfg,
            pg,
            meter: Arc::new(Meter::new("invalidator")),
            running: None,
        };
        Ok(Supervisor::start(move |_| actor))
    }

    fn spawn_listener(&mut self) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (hub, cfg, pg) = (self.hub.clone(), self.cfg.clone(), self.pg.clone());
        let thread = std::thread::Builder::new()
            .name("bulkhead-listener".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "invalidation listener: no runtime");
                        return;
                    }
                };
                runtime.block_on(listener::run(hub, cfg, pg, stop_rx));
            })?;
        self.running = Some(Running {
            thread,
            _stop: stop_tx,
        });
        Ok(())
    }
}

impl Actor for Invalidator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Err(e) = self.spawn_listener() {
            tracing::error!(error = %e, "could not start the invalidation listener thread");
            ctx.stop();
            return;
        }
        ctx.run_interval(WATCH_INTERVAL, |act, ctx| {
            if act.running.as_ref().is_none_or(|r| r.thread.is_finished()) {
                tracing::error!("invalidation listener thread ended; restarting it");
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Ends the thread (the stop sender is dropped with it).
        self.running = None;
    }
}

impl Supervised for Invalidator {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.running = None;
        self.hub.disconnected();
        self.meter.restarted();
    }
}
