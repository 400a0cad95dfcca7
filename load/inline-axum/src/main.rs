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

#[path = "../../axum-shared/args.rs"]
mod args;
#[path = "../../axum-shared/common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use deadpool_postgres::Pool;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::RateLimiter;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use moka::future::Cache;
use serde::Serialize;
use uuid::Uuid;

use args::Args;
use common::{fetch_user, Claims, LoadError, CACHE_CAPACITY, CACHE_TTL, ME_PATH};

const NAME: &str = "bulkhead-inline-axum";
const PROBLEM_JSON: &str = "application/problem+json";

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// What the hot path needs about a user: its state for the check, and its answer.
struct CachedUser {
    active: bool,
    status: String,
    etag: HeaderValue,
    body: Bytes,
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

/// The user, serialized once, as the cache keeps it.
async fn load_user(pool: &Pool, id: Uuid) -> Result<Arc<CachedUser>, LoadError> {
    let user = fetch_user(pool, id).await?;
    let db = |e: &dyn std::fmt::Display| LoadError::Db(e.to_string());
    let body = serde_json::to_vec(&user).map_err(|e| db(&e))?;
    Ok(Arc::new(CachedUser {
        active: user.status == "active",
        etag: HeaderValue::from_str(&format!("\"v{}\"", user.version)).map_err(|e| db(&e))?,
        status: user.status,
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
                eprintln!("{NAME}: loading user {}: {e}", claims.sub);
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
    common::run(NAME, |args, url, secret, workers| async move {
        serve(&args, &url, &secret, workers).await
    });
}

async fn serve(
    args: &Args,
    url: &str,
    secret: &str,
    workers: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let pool = common::pool(args, url).await?;
    let (quota, window_secs) = (args.user_quota, args.user_window_secs);
    let (rate, emission_ns) = common::user_quota(args)?;
    let limiter = RateLimiter::keyed(rate).with_middleware::<StateInformationMiddleware>();

    let app = Arc::new(AppState {
        decoding: DecodingKey::from_secret(secret.as_bytes()),
        validation: common::validation(),
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
    common::serve_router(NAME, args, workers, router).await
}
