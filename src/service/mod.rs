//! Services: what handlers call. Every store call goes through a bulkhead (admission:
//! concurrency limit, bounded queue, queue deadline) and, on Postgres, the Postgres circuit;
//! password hashing goes to the hashing pool's threads; users are read through the
//! per-user cache.
//!
//! Errors come back as [`ApiError`] with the contract's codes (`crate::error` maps store
//! and actor errors): a full bulkhead is 503 `overloaded`, an open circuit or a failing
//! database 503 `dependency_unavailable`, both with `Retry-After`.

mod bootstrap;
pub mod caller;
mod users;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_actors::{
    guarded_as, BlockingPool, Bulkhead, Circuit, CircuitState, Outcome, RateLimiter, UserCache,
};
use uuid::Uuid;

use crate::auth::jwt::{unix_now, JwtKeys, TokenError};
use crate::auth::password::Passwords;
use crate::config::Config;
use crate::domain::user::Role;
use crate::error::ApiError;
use crate::store::{Backend, Store, StoreError};
pub use users::CachedUser;

/// How long an admitted hashing job may run before its caller stops waiting. argon2id at
/// the default cost takes tens of milliseconds; this only catches a wedged pool.
const BLOCKING_DEADLINE: Duration = Duration::from_secs(10);

/// What a verified access token says.
#[derive(Debug)]
pub struct VerifiedToken {
    pub sub: Uuid,
    /// The `role` claim: an upper bound on the caller's role.
    pub role: Role,
    pub exp: u64,
}

/// The rate-limit policies the HTTP layer applies, resolved once.
#[derive(Clone, Copy)]
pub struct Policies {
    pub user: bulkhead_actors::PolicyId,
    pub ip: bulkhead_actors::PolicyId,
    pub login: bulkhead_actors::PolicyId,
}

pub struct Services {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub db_read: Bulkhead,
    pub db_write: Bulkhead,
    pub hashing: BlockingPool,
    /// `None` on the in-memory store, which has no dependency to fail.
    pub pg_circuit: Option<Circuit>,
    pub users: UserCache<Uuid, Arc<CachedUser>>,
    /// Verified access tokens by their exact bytes (see [`Services::verify_token`]).
    pub tokens: UserCache<String, Arc<VerifiedToken>>,
    /// Always `Some`: started even when disabled, since `rate_limits.enabled` can change
    /// live; callers check `RateLimiter::enabled`.
    pub limiter: Option<(RateLimiter, Policies)>,
    pub jwt: JwtKeys,
    pub passwords: Passwords,
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
        let users = UserCache::start("users", &config.cache.users).map_err(err)?;
        let tokens = UserCache::start("tokens", &config.cache.tokens).map_err(err)?;
        let r = &config.rate_limits;
        // Started even when disabled: `rate_limits.enabled` can change live.
        let limiter = {
            let limiter = RateLimiter::start_enabled(
                &r.limiter,
                r.enabled,
                vec![
                    ("user".into(), r.user.clone()),
                    ("ip".into(), r.ip.clone()),
                    ("login".into(), r.login.clone()),
                ],
            )
            .map_err(err)?;
            let id = |name: &str| {
                limiter
                    .policy(name)
                    .ok_or_else(|| anyhow::anyhow!("rate limit policy {name} missing"))
            };
            let policies = Policies {
                user: id("user")?,
                ip: id("ip")?,
                login: id("login")?,
            };
            Some((limiter, policies))
        };
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
        Ok(Self {
            config,
            store,
            db_read,
            db_write,
            hashing,
            pg_circuit,
            users,
            tokens,
            limiter,
            jwt,
            passwords,
        })
    }

    /// Verify an access token. A token verified before (same bytes) skips the signature
    /// and JSON work: only `exp` is checked again, with the configured leeway. Safe
    /// because a cached entry is keyed by the whole signed token, so any change to it is a
    /// miss and a full verification.
    pub async fn verify_token(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        if let Some(hit) = self.tokens.get(token) {
            return if hit.exp + self.config.auth.leeway_secs >= unix_now() {
                Ok(hit)
            } else {
                Err(TokenError::Expired)
            };
        }
        let claims = self.jwt.verify(token)?;
        let verified = Arc::new(VerifiedToken {
            sub: claims.sub,
            role: Role::parse(&claims.role).unwrap_or(Role::User),
            exp: claims.exp,
        });
        // Best effort: a full mailbox only means the next use verifies again.
        let _ = self.tokens.insert(token.to_owned(), verified.clone()).await;
        Ok(verified)
    }

    /// What a configuration reload resizes the store's pools with (read, write), so the
    /// reloader needs no access to the store itself.
    pub fn pool_resizer(&self) -> Box<dyn Fn(usize, usize) + Send + Sync> {
        let store = self.store.clone();
        Box::new(move |read, write| store.resize_pools(read, write))
    }

    /// A store read: `db_read` bulkhead, then the Postgres circuit, then the call.
    pub async fn read<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ApiError> {
        self.guard(&self.db_read, call).await
    }

    /// A store write: `db_write` bulkhead, then the Postgres circuit, then the call.
    pub async fn write<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ApiError> {
        self.guard(&self.db_write, call).await
    }

    async fn guard<T>(
        &self,
        bulkhead: &Bulkhead,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ApiError> {
        // Queued as the request's caller: the bulkhead's queue is fair between callers.
        let caller = caller::current();
        let result = match &self.pg_circuit {
            Some(circuit) => guarded_as(bulkhead, caller, circuit, call, classify).await?,
            None => bulkhead.run_as(caller, call).await?,
        };
        result.map_err(ApiError::from)
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
    /// circuit's state afterwards (`None` on the memory store).
    ///
    /// While the circuit is not closed the ping goes through it as a trial call, so the
    /// circuit closes again once the store is back even when no user traffic arrives
    /// (load balancers send none to an instance that is not ready).
    pub async fn probe_store(&self, deadline: Duration) -> (bool, Option<CircuitState>) {
        let ping = || async {
            matches!(
                tokio::time::timeout(deadline, self.store.ping()).await,
                Ok(Ok(()))
            )
        };
        let Some(circuit) = &self.pg_circuit else {
            return (ping().await, None);
        };
        let store_ok = if circuit.state() == CircuitState::Closed {
            ping().await
        } else {
            let as_outcome = |ok: &bool| {
                if *ok {
                    Outcome::Success
                } else {
                    Outcome::Failure
                }
            };
            match circuit.call(ping(), as_outcome).await {
                Ok(ok) => ok,
                // Still open (or trial slots taken): report the store without counting.
                Err(_) => ping().await,
            }
        };
        (store_ok, Some(circuit.state()))
    }
}

/// A store call counts against the circuit only when the dependency failed.
fn classify<T>(result: &Result<T, StoreError>) -> Outcome {
    match result {
        Err(e) if e.is_dependency_failure() => Outcome::Failure,
        _ => Outcome::Success,
    }
}
