//! `Services`: the actor handles, the guarded store, the JWT keys and the password
//! hasher, started once; and the work every service file shares (hashing on the hashing
//! pool, the `/ready` probe).

use std::sync::Arc;
use std::time::Duration;

use bulkhead_actors::{BlockingPool, Bulkhead, Circuit, CircuitState, RateLimiter, ShardedCache};
use uuid::Uuid;

use super::cached::{CachedUser, VerifiedToken};
use super::guard::Guarded;
use super::janitor::Janitor;
use super::limits::{FleetNames, Policies};
use super::product_cache::ProductCache;
use crate::auth::jwt::JwtKeys;
use crate::auth::password::Passwords;
use crate::config::Config;
use crate::error::ApiError;
use crate::invalidation::{Invalidations, Invalidator, InvalidatorHandle};
use crate::store::{Backend, Store};

/// How long an admitted hashing job may run before its caller stops waiting. argon2id at
/// the default cost takes tens of milliseconds; this only catches a wedged pool.
const BLOCKING_DEADLINE: Duration = Duration::from_secs(10);

/// How long an id found to be no live user is remembered as such.
pub const ABSENT_USERS_TTL_SECS: u64 = 5;

/// The absent-users cache: the users cache's settings, a tenth of its capacity, a short
/// TTL (at start, and again when a reload changes `cache.users`).
pub fn absent_users_cache(config: &Config) -> bulkhead_actors::CacheConfig {
    let users = config.cache.users.cache();
    bulkhead_actors::CacheConfig {
        capacity: (users.capacity / 10).max(1),
        ttl_secs: ABSENT_USERS_TTL_SECS,
        ..users
    }
}

pub struct Services {
    pub config: Arc<Config>,
    /// The store behind its bulkheads and circuit. Visible to the service files only,
    /// and even there the store is reachable only through its guarded calls.
    pub(super) db: Guarded,
    pub hashing: BlockingPool,
    pub users: ShardedCache<Uuid, Arc<CachedUser>>,
    /// Ids recently found to be no live user (deleted or unknown), consulted only after a
    /// miss of `users`: a deleted user's token does not cost a store read per request.
    /// [`ABSENT_USERS_TTL_SECS`], a tenth of the users cache's capacity; an entry goes when
    /// the user is written (here or, through the users NOTIFY, elsewhere).
    pub absent_users: ShardedCache<Uuid, ()>,
    /// Verified access tokens by their exact bytes (see [`Services::verify_token`]).
    pub verified_tokens: ShardedCache<String, Arc<VerifiedToken>>,
    /// Always `Some`: started even when disabled, since `rate_limits.enabled` can change
    /// live; callers check `RateLimiter::enabled`.
    pub limiter: Option<(RateLimiter, Policies)>,
    /// Names of limited identities in Redis (global limits).
    pub fleet_names: FleetNames,
    pub jwt: JwtKeys,
    pub passwords: Passwords,
    /// Changes committed by other instances: applied to `users`, and offered to product
    /// caches ([`Invalidations::subscribe_products`]).
    pub invalidations: Arc<Invalidations>,
    /// Public product reads (`product_cache.rs`).
    pub products: Arc<ProductCache>,
    /// Held so the listener lives as long as the services (`None`: nothing to listen to).
    _invalidator: Option<InvalidatorHandle>,
    /// Purges idempotency keys past retention (`janitor.rs`); stops with the services.
    _janitor: Janitor,
}

impl Services {
    /// Start the actors. Must run inside the actors' runtime (a running `System`), after
    /// the metrics recorder is installed.
    pub fn start(config: Arc<Config>, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let err = |e: String| anyhow::anyhow!(e);
        let b = &config.bulkheads;
        let db_read = Bulkhead::new("db_read", &b.db_read).map_err(err)?;
        let db_write = Bulkhead::new("db_write", &b.db_write).map_err(err)?;
        let hashing = BlockingPool::start("hashing", &b.hashing).map_err(err)?;
        let pg_circuit = match store.backend() {
            Backend::Postgres => {
                Some(Circuit::start("postgres", config.circuits.postgres.clone()).map_err(err)?)
            }
            Backend::Memory => None,
        };
        let users = ShardedCache::start_versioned(
            "users",
            &config.cache.users.cache(),
            |u: &Arc<CachedUser>| u.version,
        )
        .map_err(err)?;
        let absent_users =
            ShardedCache::start("absent_users", &absent_users_cache(&config)).map_err(err)?;
        // Postgres only: the embedded store is one process, its own writes invalidate.
        let database_url = match (store.backend(), &config.database.url) {
            (Backend::Postgres, Some(url)) if config.invalidation.enabled => Some(url),
            _ => None,
        };
        let invalidations = Invalidations::new(
            &config,
            users.clone(),
            absent_users.clone(),
            database_url.is_some(),
        );
        // Subscribed before the listener starts, so its first resync reaches the cache.
        let products = ProductCache::start(&config, invalidations.clone()).map_err(err)?;
        let invalidator = match database_url {
            Some(url) => Some(Invalidator::start(
                invalidations.clone(),
                config.invalidation.clone(),
                url.expose(),
            )?),
            None => None,
        };
        let verified_tokens = ShardedCache::start("tokens", &config.cache.tokens).map_err(err)?;
        let limiter = super::limits::start(&config)?;
        let fleet_names = FleetNames::new(&config);
        let secret = match &config.auth.jwt_secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => {
                tracing::warn!(
                    "auth.jwt_secret is not set: using a random secret; tokens die with this \
                     process and are not accepted by other instances"
                );
                let (token, _) = crate::auth::refresh::generate();
                token.into_bytes()
            }
        };
        let jwt = JwtKeys::new(&config.auth, &secret);
        let passwords = Passwords::new(&config.auth)?;
        let db = Guarded::new(store, db_read, db_write, pg_circuit);
        Ok(Self {
            config,
            _janitor: super::janitor::start(db.clone()),
            db,
            hashing,
            users,
            absent_users,
            verified_tokens,
            limiter,
            fleet_names,
            jwt,
            passwords,
            invalidations,
            products,
            _invalidator: invalidator,
        })
    }

    /// CPU-heavy work (password hashing) on the hashing pool's threads. The pool bounds
    /// the queue and its wait; this bounds the run, so the caller never waits unbounded.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(BLOCKING_DEADLINE, self.hashing.run_blocking(f)).await {
            Ok(result) => Ok(result?),
            Err(_) => {
                tracing::error!(?BLOCKING_DEADLINE, "a hashing job overran its deadline");
                Err(ApiError::overloaded(Duration::from_secs(1)))
            }
        }
    }

    /// Hash a password on the hashing pool.
    pub async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let passwords = self.passwords.clone();
        self.blocking(move || passwords.hash(&password))
            .await?
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                ApiError::internal()
            })
    }

    /// Check a password on the hashing pool; `None` hash costs the same and is false.
    pub async fn verify_password(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, ApiError> {
        let passwords = self.passwords.clone();
        self.blocking(move || passwords.verify(&password, hash.as_deref()))
            .await
    }

    /// For `/ready`: whether the store answers within `deadline`, and the Postgres
    /// circuit's state afterwards (`None` on the memory store). See [`Guarded::probe`].
    pub async fn probe_store(&self, deadline: Duration) -> (bool, Option<CircuitState>) {
        self.db.probe(deadline).await
    }

    /// Which store backend answers.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The database bulkheads and the Postgres circuit, for a configuration reload.
    pub fn db_admission(&self) -> (Bulkhead, Bulkhead, Option<Circuit>) {
        self.db.admission()
    }

    /// What a configuration reload resizes the store's pools with (read, write), so the
    /// reloader needs no access to the store itself.
    pub fn pool_resizer(&self) -> Box<dyn Fn(usize, usize) + Send + Sync> {
        let db = self.db.clone();
        Box::new(move |read, write| db.resize_pools(read, write))
    }

    /// The store's connection pools and their status, for `/metrics` (no I/O).
    pub fn pool_status(&self) -> Vec<(&'static str, deadpool_postgres::Status)> {
        self.db.pool_status()
    }
}
