//! Live reconfiguration: `SIGHUP` re-reads the configuration and hands each actor its
//! new settings.
//!
//! ```text
//! SIGHUP -> Config::load (file + environment, validated whole: the errors of a start)
//!        -> diff against the running config -> any key that cannot change live? reject
//!        -> gateway: the new route table started (unchanged routes kept), not yet served
//!        -> limiter, bulkheads, hashing pool, circuit, caches, pools, log filter
//!        -> gateway: the new route table served (requests in flight keep their route)
//!        -> the new config is the running one (one ArcSwap store)
//! ```
//! A reload is all or nothing as far as validation goes: an invalid file, or a change
//! [`plan`] refuses (a key that cannot change live ([`diff::is_live`]), the first or last
//! gateway route, a global policy leaving GCRA), rejects it whole with a log line naming
//! the key, and the running configuration stays. `check-config --diff` decides with the
//! same [`plan`]. The apply steps only fail when
//! an actor cannot be reached in time; the reload then counts as rejected, the running
//! configuration is not replaced, and the next reload applies every changed section
//! again (each step is idempotent).
//!
//! Readers of the running configuration ([`Reloader::running`]) see one whole config,
//! never half of one. The actors do not read it: each holds its own settings and takes
//! new ones between two messages (or under its own lock), so the hot path has no lock.
//!
//! Metrics: `bulkhead_config_reloads_total{outcome="applied"|"rejected"}`,
//! `bulkhead_config_last_reload_successful` (1/0, 1 at start) and
//! `bulkhead_config_last_reload_success_timestamp_seconds` (the start, then each applied
//! reload).

pub mod diff;
mod plan;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bulkhead_actors::{BlockingPool, Bulkhead, Circuit, RateLimiter, ShardedCache};
use metrics::{Counter, Gauge};
use uuid::Uuid;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::service::product_cache::ProductCache;
use crate::service::{CachedUser, Services, VerifiedToken};
pub use diff::{diff, is_live, Change};
pub use plan::{plan, Rejected};

/// What an applied reload changed.
#[derive(Debug)]
pub struct Applied {
    pub changes: Vec<Change>,
}

/// The actor handles a reload reconfigures (cheap clones of the services' own).
struct Targets {
    limiter: Option<RateLimiter>,
    db_read: Bulkhead,
    db_write: Bulkhead,
    hashing: BlockingPool,
    pg_circuit: Option<Circuit>,
    users: ShardedCache<Uuid, Arc<CachedUser>>,
    absent_users: ShardedCache<Uuid, ()>,
    tokens: ShardedCache<String, Arc<VerifiedToken>>,
    products: Arc<ProductCache>,
    resize_pools: Box<dyn Fn(usize, usize) + Send + Sync>,
    gateway: Option<Arc<Gateway>>,
}

struct Meters {
    applied: Counter,
    rejected: Counter,
    last_successful: Gauge,
    last_success_at: Gauge,
}

/// Owns the running configuration and applies reloads, one at a time.
pub struct Reloader {
    path: Option<PathBuf>,
    running: ArcSwap<Config>,
    targets: Targets,
    meters: Meters,
    /// Reloads run one at a time (a second SIGHUP waits for the first).
    serial: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// `path` is the file the process started from (`None`: defaults and environment).
    /// `gateway` is the running gateway, `None` when the process started without routes.
    pub fn new(
        path: Option<PathBuf>,
        running: Arc<Config>,
        svc: &Services,
        gateway: Option<Arc<Gateway>>,
    ) -> Self {
        metrics::describe_counter!(
            "bulkhead_config_reloads_total",
            "Configuration reloads (SIGHUP), by outcome: applied or rejected"
        );
        metrics::describe_gauge!(
            "bulkhead_config_last_reload_successful",
            "1 when the last reload was applied (or none was tried since start), else 0"
        );
        metrics::describe_gauge!(
            "bulkhead_config_last_reload_success_timestamp_seconds",
            "Unix time of the last applied reload (or of the start)"
        );
        let meters = Meters {
            applied: metrics::counter!("bulkhead_config_reloads_total", "outcome" => "applied"),
            rejected: metrics::counter!("bulkhead_config_reloads_total", "outcome" => "rejected"),
            last_successful: metrics::gauge!("bulkhead_config_last_reload_successful"),
            last_success_at: metrics::gauge!(
                "bulkhead_config_last_reload_success_timestamp_seconds"
            ),
        };
        meters.last_successful.set(1.0);
        meters.last_success_at.set(unix_seconds());
        let (db_read, db_write, pg_circuit) = svc.db_admission();
        Self {
            path,
            running: ArcSwap::new(running),
            targets: Targets {
                limiter: svc.limiter.as_ref().map(|(l, _)| l.clone()),
                db_read,
                db_write,
                hashing: svc.hashing.clone(),
                pg_circuit,
                users: svc.users.clone(),
                absent_users: svc.absent_users.clone(),
                tokens: svc.verified_tokens.clone(),
                products: svc.products.clone(),
                resize_pools: svc.pool_resizer(),
                gateway,
            },
            meters,
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// The running configuration, whole.
    pub fn running(&self) -> Arc<Config> {
        self.running.load_full()
    }

    /// Re-reads the file and the environment, as at start, and applies the result.
    /// Logs the outcome (each change, or the key at fault) and counts it.
    pub async fn reload(&self) -> Result<Applied, Rejected> {
        let _one_at_a_time = self.serial.lock().await;
        let outcome = match Config::load(self.path.as_deref()) {
            Ok(next) => self.apply(next).await,
            Err(e) => Err(Rejected::Invalid(e)),
        };
        match &outcome {
            Ok(applied) => {
                self.meters.applied.increment(1);
                self.meters.last_successful.set(1.0);
                self.meters.last_success_at.set(unix_seconds());
                for change in &applied.changes {
                    tracing::info!(key = %change.key, old = %change.old, new = %change.new, "configuration changed");
                }
                tracing::info!(
                    changes = applied.changes.len(),
                    "configuration reload applied"
                );
            }
            Err(e) => {
                self.meters.rejected.increment(1);
                self.meters.last_successful.set(0.0);
                tracing::error!(error = %e, "configuration reload rejected; the running configuration stays");
            }
        }
        outcome
    }

    /// Applies `next` if every changed key can change live.
    async fn apply(&self, next: Config) -> Result<Applied, Rejected> {
        let running = self.running.load_full();
        let changes = plan(&running, &next)?;
        let changed = |prefix: &str| changes.iter().any(|c| c.key.starts_with(prefix));
        let t = &self.targets;
        let fail = Rejected::Apply;
        // The new route table is started first (a route that cannot start rejects the
        // reload before any actor changed) and served last.
        let routes = match &t.gateway {
            Some(gateway) if changed("gateway.") => Some(
                gateway
                    .prepare_routes(&next.gateway)
                    .map_err(|e| Rejected::Apply(format!("{e:#}")))?,
            ),
            _ => None,
        };
        if changed("rate_limits.") {
            if let Some(limiter) = &t.limiter {
                let r = &next.rate_limits;
                limiter
                    .reconfigure(
                        r.enabled,
                        vec![
                            ("user".into(), r.user.clone()),
                            ("ip".into(), r.ip.clone()),
                            ("login".into(), r.login.clone()),
                        ],
                    )
                    .await
                    .map_err(fail)?;
            }
        }
        let b = &next.bulkheads;
        if changed("bulkheads.db_read.") {
            t.db_read.reconfigure(&b.db_read).map_err(fail)?;
        }
        if changed("bulkheads.db_write.") {
            t.db_write.reconfigure(&b.db_write).map_err(fail)?;
        }
        if changed("bulkheads.hashing.") {
            t.hashing.reconfigure(&b.hashing).map_err(fail)?;
        }
        if changed("circuits.postgres.") {
            if let Some(circuit) = &t.pg_circuit {
                circuit
                    .reconfigure(next.circuits.postgres.clone())
                    .map_err(fail)?;
            }
        }
        if changed("cache.users.") {
            t.users
                .reconfigure(&next.cache.users.cache())
                .await
                .map_err(fail)?;
            // Sized from the users cache (a tenth of its capacity), so resized with it.
            t.absent_users
                .reconfigure(&crate::service::absent_users_cache(&next))
                .await
                .map_err(fail)?;
        }
        if changed("cache.tokens.") {
            t.tokens
                .reconfigure(&next.cache.tokens)
                .await
                .map_err(fail)?;
        }
        if changed("cache.products.") {
            t.products
                .reconfigure(&next.cache.products)
                .await
                .map_err(fail)?;
        }
        if changed("database.") {
            let d = &next.database;
            (t.resize_pools)(d.read_pool_size, d.write_pool_size);
        }
        if changed("log.") {
            crate::telemetry::set_filter(&next.log).map_err(fail)?;
        }
        if let (Some(gateway), Some(routes)) = (&t.gateway, routes) {
            gateway.install_routes(routes);
        }
        self.running.store(Arc::new(next));
        Ok(Applied { changes })
    }
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
