//! `bulkhead-inline-axum`: the inline baseline DESIGN.md "Performance" names, "the same
//! service written inline with axum" (axum + governor + moka + jsonwebtoken +
//! deadpool-postgres), for the hot path only: `GET /api/v1/users/me`.
//!
//! Per request it does what Bulkhead's route does, written directly in one handler:
//!
//! 1. `X-Request-Id`: a valid inbound value (1..=128 of `A-Za-z0-9._-`) is kept, otherwise
//!    a random UUID (simple form) is generated; it is on every answer.
//! 2. `Authorization: Bearer <jwt>`: HS256 verified with `jsonwebtoken` (only HS256;
//!    `exp`, `iss`, `aud`, `sub` required; issuer `bulkhead`, audience `bulkhead-api`,
//!    30 s leeway: Bulkhead's defaults). 401 problem+json otherwise.
//! 3. The user from a `moka` cache (100,000 entries, 5 min TTL: Bulkhead's defaults),
//!    loaded on a miss from the `users` table through a `deadpool-postgres` pool
//!    (concurrent misses of one key share one load; missing users are not cached). A
//!    deleted user is 401, a user who is not `active` is 403 `account_inactive`.
//! 4. A per-user `governor` keyed limiter (GCRA, quota per window, burst = quota, as
//!    Bulkhead's `user` policy): 429 problem+json with `Retry-After` when limited, and the
//!    `RateLimit-Policy`, `RateLimit` and `X-RateLimit-*` headers Bulkhead sends.
//! 5. The user's JSON, serialized once when it is cached and served as ready bytes with
//!    its strong `ETag` (`"v<version>"`), or 304 when `If-None-Match` names it.
//!
//! It carries no metrics, no tracing and no access log, and none of Bulkhead's other
//! layers (compression negotiation, CORS, per-user concurrency cap, database bulkheads,
//! circuit breaker, verified-token cache): Bulkhead has them on this route, so the
//! comparison favours the baseline.
//!
//! ```text
//! bulkhead-inline-axum --database-url URL --jwt-secret S [--bind ADDR] [--workers N]
//!     [--user-quota N] [--user-window-secs N] [--pool-size N]
//! ```

mod args;

use args::{parse_args, usage, Args};

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;
use uuid::Uuid;

const ME_PATH: &str = "/api/v1/users/me";
const ISSUER: &str = "bulkhead";
const AUDIENCE: &str = "bulkhead-api";
const LEEWAY_SECS: u64 = 30;
const CACHE_CAPACITY: u64 = 100_000;
const CACHE_TTL: Duration = Duration::from_secs(300);
const PROBLEM_JSON: &str = "application/problem+json";

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The access token's claims, as Bulkhead issues and parses them (`src/auth/jwt.rs`).
#[derive(Deserialize)]
#[allow(dead_code)] // all parsed and checked on decode; only `sub` is used afterwards
struct Claims {
    sub: Uuid,
    role: String,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
    jti: Uuid,
}

/// A user as `GET /users/me` renders it: Bulkhead's `UserView`, field for field.
#[derive(Serialize)]
struct UserView<'a> {
    id: Uuid,
    email: &'a str,
    name: &'a str,
    role: &'a str,
    status: &'a str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// What the hot path needs about a user: its state for the check, and its answer.
struct CachedUser {
    active: bool,
    status: String,
    etag: HeaderValue,
    body: Bytes,
}

#[derive(Debug)]
enum LoadError {
    NotFound,
    Db(String),
}

type Limiter =
    RateLimiter<Uuid, DefaultKeyedStateStore<Uuid>, DefaultClock, StateInformationMiddleware>;

struct AppState {
    decoding: DecodingKey,
    validation: Validation,
    users: Cache<Uuid, Arc<CachedUser>>,
    pool: Pool,
    limiter: Limiter,
    /// GCRA emission interval of the user policy: one request's worth of time.
    emission_ns: u64,
    quota: u32,
    window_secs: u64,
    policy_header: HeaderValue,
    limit_header: HeaderValue,
}

async fn load_user(pool: &Pool, id: Uuid) -> Result<Arc<CachedUser>, LoadError> {
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
    let status: &str = row.get(4);
    let version: i64 = row.get(5);
    let view = UserView {
        id: row.get(0),
        email: row.get(1),
        name: row.get(2),
        role: row.get(3),
        status,
        created_at: row.get(6),
        updated_at: row.get(7),
    };
    let body = serde_json::to_vec(&view).map_err(|e| db(&e))?;
    Ok(Arc::new(CachedUser {
        active: status == "active",
        status: status.to_owned(),
        etag: HeaderValue::from_str(&format!("\"v{version}\"")).map_err(|e| db(&e))?,
        body: Bytes::from(body),
    }))
}

fn valid_request_id(v: &HeaderValue) -> Option<&HeaderValue> {
    let b = v.as_bytes();
    let ok = (1..=128).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    ok.then_some(v)
}

/// Whole seconds, rounded up, at least 1.
fn whole_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// An RFC 9457 problem, in Bulkhead's shape.
fn problem(
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
    request_id: &HeaderValue,
) -> Response {
    #[derive(Serialize)]
    struct Problem<'a> {
        #[serde(rename = "type")]
        type_: String,
        title: &'a str,
        status: u16,
        detail: &'a str,
        instance: &'a str,
        code: &'a str,
        request_id: &'a str,
    }
    let body = serde_json::to_vec(&Problem {
        type_: format!("urn:bulkhead:problem:{code}"),
        title,
        status: status.as_u16(),
        detail,
        instance: ME_PATH,
        code,
        request_id: request_id.to_str().unwrap_or(""),
    })
    .unwrap_or_default();
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    h.insert(REQUEST_ID, request_id.clone());
    res
}

fn unauthenticated(detail: &str, request_id: &HeaderValue) -> Response {
    let mut res = problem(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "Authentication required",
        detail,
        request_id,
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"bulkhead\""),
    );
    res
}

fn rate_headers(h: &mut HeaderMap, app: &AppState, remaining: u32, reset_secs: u64) {
    h.insert(RATELIMIT_POLICY, app.policy_header.clone());
    h.insert(X_LIMIT, app.limit_header.clone());
    let mut put = |name: HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put(RATELIMIT, format!("\"user\";r={remaining};t={reset_secs}"));
    put(X_REMAINING, remaining.to_string());
    put(X_RESET, reset_secs.to_string());
}

fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == etag)
}

async fn me(State(app): State<Arc<AppState>>, req: Request) -> Response {
    let headers = req.headers();
    let request_id = headers
        .get(&REQUEST_ID)
        .and_then(valid_request_id)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&Uuid::new_v4().simple().to_string())
                .unwrap_or(HeaderValue::from_static("-"))
        });

    // Authentication.
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return unauthenticated("authentication required", &request_id);
    };
    let token = match value.to_str().ok().and_then(|v| v.split_once(' ')) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return unauthenticated(
                "the Authorization header must be `Bearer <token>`",
                &request_id,
            )
        }
    };
    let claims = match jsonwebtoken::decode::<Claims>(token, &app.decoding, &app.validation) {
        Ok(data) => data.claims,
        Err(e) if *e.kind() == ErrorKind::ExpiredSignature => {
            return unauthenticated("the access token has expired", &request_id)
        }
        Err(_) => return unauthenticated("the access token is not valid", &request_id),
    };
    let user = match app
        .users
        .try_get_with(claims.sub, load_user(&app.pool, claims.sub))
        .await
    {
        Ok(user) => user,
        Err(e) => match *e {
            LoadError::NotFound => {
                return unauthenticated("the token's user no longer exists", &request_id)
            }
            LoadError::Db(ref e) => {
                eprintln!("bulkhead-inline-axum: loading user {}: {e}", claims.sub);
                let mut res = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "dependency_unavailable",
                    "Dependency unavailable",
                    "a dependency is unavailable; retry later",
                    &request_id,
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return res;
            }
        },
    };
    if !user.active {
        return problem(
            StatusCode::FORBIDDEN,
            "account_inactive",
            "Account inactive",
            &format!("the account is {}", user.status),
            &request_id,
        );
    }

    // The per-user limit.
    let (remaining, reset_secs) = match app.limiter.check_key(&claims.sub) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            // The bucket is full again after the cells in use have been emitted.
            let used_ns = u64::from(app.quota - remaining).saturating_mul(app.emission_ns);
            let reset = whole_secs(Duration::from_nanos(used_ns)).min(app.window_secs);
            (remaining, reset)
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut res = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                &format!(
                    "rate limit of {} requests per {} s exceeded",
                    app.quota, app.window_secs
                ),
                &request_id,
            );
            let h = res.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(whole_secs(wait)));
            rate_headers(h, &app, 0, app.window_secs);
            return res;
        }
    };

    let mut res = if not_modified(headers, &user.etag) {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = Response::new(Body::from(user.body.clone()));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, user.etag.clone());
    h.insert(REQUEST_ID, request_id);
    rate_headers(h, &app, remaining, reset_secs);
    res
}

fn main() {
    let args = parse_args();
    let (Some(url), Some(secret)) = (&args.database_url, &args.jwt_secret) else {
        usage();
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
    if let Err(e) = runtime.block_on(serve(&args, url, secret, workers)) {
        eprintln!("bulkhead-inline-axum: {e}");
        std::process::exit(1);
    }
}

async fn serve(
    args: &Args,
    url: &str,
    secret: &str,
    workers: usize,
) -> Result<(), Box<dyn std::error::Error>> {
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

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECS;

    // Bulkhead's GCRA: emission interval window / quota, burst = quota.
    let (quota, window_secs) = (args.user_quota, args.user_window_secs);
    let emission_ns = (window_secs.saturating_mul(1_000_000_000) / u64::from(quota)).max(1);
    let burst = NonZeroU32::new(quota).ok_or("quota must be at least 1")?;
    let rate = Quota::with_period(Duration::from_nanos(emission_ns))
        .ok_or("bad quota")?
        .allow_burst(burst);
    let limiter = RateLimiter::keyed(rate).with_middleware::<StateInformationMiddleware>();

    let app = Arc::new(AppState {
        decoding: DecodingKey::from_secret(secret.as_bytes()),
        validation,
        users: Cache::builder()
            .max_capacity(CACHE_CAPACITY)
            .time_to_live(CACHE_TTL)
            .build(),
        pool,
        limiter,
        emission_ns,
        quota,
        window_secs,
        policy_header: HeaderValue::from_str(&format!("\"user\";q={quota};w={window_secs}"))?,
        limit_header: HeaderValue::from(quota),
    });

    // Keys of users idle long enough to be back at a full bucket carry no state.
    let sweeper = app.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            sweeper.limiter.retain_recent();
        }
    });

    let router = Router::new().route(ME_PATH, get(me)).with_state(app);
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await?
        .tap_io(|tcp| {
            // As actix-web does on every accepted connection.
            let _ = tcp.set_nodelay(true);
        });
    eprintln!(
        "bulkhead-inline-axum: {ME_PATH} on {} with {workers} worker threads, user quota \
         {quota} per {window_secs} s",
        args.bind
    );
    axum::serve(listener, router).await?;
    Ok(())
}
