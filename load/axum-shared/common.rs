//! What the two axum baselines (`load/inline-axum`, `load/lean-axum`) share: Bulkhead's
//! token rules and user row, the database pool and the runtime. Included by both with
//! `#[path]` (no crate of its own: it is a few helpers, not an interface).

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use governor::Quota;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::args::{parse_args, usage, Args};

pub const ME_PATH: &str = "/api/v1/users/me";
/// Bulkhead's user cache defaults.
pub const CACHE_CAPACITY: u64 = 100_000;
pub const CACHE_TTL: Duration = Duration::from_secs(300);

/// The access token's claims, as Bulkhead issues and parses them (`src/auth/jwt.rs`).
#[derive(Deserialize)]
#[allow(dead_code)] // all parsed and checked on decode; only `sub` is used afterwards
pub struct Claims {
    pub sub: Uuid,
    role: String,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
    jti: Uuid,
}

/// HS256 only; `exp`, `iss`, `aud`, `sub` required; issuer `bulkhead`, audience
/// `bulkhead-api`, 30 s leeway: Bulkhead's defaults.
pub fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["bulkhead"]);
    validation.set_audience(&["bulkhead-api"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    validation
}

/// A user as `GET /users/me` renders it: Bulkhead's `UserView`, field for field (the
/// version only feeds the `ETag`).
#[derive(Serialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub version: i64,
}

#[derive(Debug)]
pub enum LoadError {
    NotFound,
    Db(String),
}

/// One user row (not deleted) through the pool, with a cached prepared statement.
pub async fn fetch_user(pool: &Pool, id: Uuid) -> Result<User, LoadError> {
    let db = |e: &dyn std::fmt::Display| LoadError::Db(e.to_string());
    let conn = pool.get().await.map_err(|e| db(&e))?;
    let stmt = conn
        .prepare_cached(
            "SELECT id, email, name, role, status, version, created_at, updated_at \
             FROM users WHERE id = $1 AND deleted_at IS NULL",
        )
        .await
        .map_err(|e| db(&e))?;
    let row = conn
        .query_opt(&stmt, &[&id])
        .await
        .map_err(|e| db(&e))?
        .ok_or(LoadError::NotFound)?;
    Ok(User {
        id: row.get(0),
        email: row.get(1),
        name: row.get(2),
        role: row.get(3),
        status: row.get(4),
        version: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
    })
}

/// The deadpool-postgres pool of `--pool-size`, checked once at start.
pub async fn pool(args: &Args, url: &str) -> Result<Pool, Box<dyn std::error::Error>> {
    let pg: tokio_postgres::Config = url.parse()?;
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(args.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(2)))
        .create_timeout(Some(Duration::from_secs(3)))
        .build()?;
    drop(pool.get().await?); // fail at start, not on the first request
    Ok(pool)
}

/// Bulkhead's GCRA for the user policy: emission interval window / quota, burst = quota.
/// Returns the quota and the emission interval in nanoseconds.
pub fn user_quota(args: &Args) -> Result<(Quota, u64), Box<dyn std::error::Error>> {
    let (quota, window_secs) = (args.user_quota, args.user_window_secs);
    let emission_ns = (window_secs.saturating_mul(1_000_000_000) / u64::from(quota)).max(1);
    let burst = NonZeroU32::new(quota).ok_or("quota must be at least 1")?;
    let rate = Quota::with_period(Duration::from_nanos(emission_ns))
        .ok_or("bad quota")?
        .allow_burst(burst);
    Ok((rate, emission_ns))
}

/// Binds `--bind` with `TCP_NODELAY` on every accepted connection (as actix-web does)
/// and serves `router` until the process is stopped.
pub async fn serve_router(
    name: &str,
    args: &Args,
    workers: usize,
    router: axum::Router,
) -> Result<(), Box<dyn std::error::Error>> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    eprintln!(
        "{name}: {ME_PATH} on {} with {workers} worker threads, user quota {} per {} s",
        args.bind, args.user_quota, args.user_window_secs
    );
    axum::serve(listener, router).await?;
    Ok(())
}

/// Parses the command line and runs `serve(args, database_url, jwt_secret, workers)` on a
/// multi-thread tokio runtime of `--workers` threads (0: one per core); exits 1 with the
/// error when it fails.
pub fn run<F, Fut>(name: &str, serve: F)
where
    F: FnOnce(Args, String, String, usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    let args = parse_args(name);
    let (Some(url), Some(secret)) = (args.database_url.clone(), args.jwt_secret.clone()) else {
        usage(name);
    };
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.workers
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(serve(args, url, secret, workers)) {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}
