//! `bulkhead-lean-axum`: `GET /api/v1/users/me` as a typical axum user would write it,
//! the lean baseline of issue 14 beside the inline one (`load/inline-axum`).
//!
//! Per request: the `Authorization: Bearer` token verified with jsonwebtoken (Bulkhead's
//! rules: HS256, issuer, audience, leeway, secret), a governor keyed limiter per user id
//! (Bulkhead's user quota: runs, never binds in the harness), the user from a moka cache
//! (loaded from Postgres on a miss, concurrent misses sharing one load) and its JSON
//! serialized per request with axum's `Json`, with its `"v<version>"` `ETag`. Errors are
//! small JSON bodies. No request id, no rate-limit headers, no `If-None-Match`, no
//! metrics, tracing or access log: only what such a service needs to be correct.
//!
//! ```text
//! bulkhead-lean-axum --database-url URL --jwt-secret S [--bind ADDR] [--workers N]
//!     [--user-quota N] [--user-window-secs N] [--pool-size N]
//! ```

#[path = "../../axum-shared/args.rs"]
mod args;
#[path = "../../axum-shared/common.rs"]
mod common;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use deadpool_postgres::Pool;
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use jsonwebtoken::{DecodingKey, Validation};
use moka::future::Cache;
use serde_json::json;
use uuid::Uuid;

use common::{fetch_user, Claims, LoadError, User, CACHE_CAPACITY, CACHE_TTL, ME_PATH};

const NAME: &str = "bulkhead-lean-axum";

struct App {
    key: DecodingKey,
    validation: Validation,
    limiter: DefaultKeyedRateLimiter<Uuid>,
    users: Cache<Uuid, Arc<User>>,
    pool: Pool,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return error(StatusCode::UNAUTHORIZED, "missing bearer token");
    };
    let claims = match jsonwebtoken::decode::<Claims>(token, &app.key, &app.validation) {
        Ok(data) => data.claims,
        Err(_) => return error(StatusCode::UNAUTHORIZED, "invalid token"),
    };
    if app.limiter.check_key(&claims.sub).is_err() {
        return error(StatusCode::TOO_MANY_REQUESTS, "rate limited");
    }
    let pool = &app.pool;
    let user = match app
        .users
        .try_get_with(claims.sub, async {
            fetch_user(pool, claims.sub).await.map(Arc::new)
        })
        .await
    {
        Ok(user) => user,
        Err(e) => match *e {
            LoadError::NotFound => return error(StatusCode::UNAUTHORIZED, "unknown user"),
            LoadError::Db(ref e) => {
                eprintln!("{NAME}: loading user {}: {e}", claims.sub);
                return error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
            }
        },
    };
    if user.status != "active" {
        return error(StatusCode::FORBIDDEN, "account inactive");
    }
    let etag = format!("\"v{}\"", user.version);
    ([(header::ETAG, etag)], Json(&*user)).into_response()
}

fn main() {
    common::run(NAME, |args, url, secret, workers| async move {
        let (quota, _) = common::user_quota(&args)?;
        let app = Arc::new(App {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation: common::validation(),
            limiter: RateLimiter::keyed(quota),
            users: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_TTL)
                .build(),
            pool: common::pool(&args, &url).await?,
        });
        let router = Router::new().route(ME_PATH, get(me)).with_state(app);
        common::serve_router(NAME, &args, workers, router).await
    });
}
