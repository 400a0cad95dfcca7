//! The rate-limit middleware: per user (`sub`) for authenticated requests, per client IP
//! for anonymous ones, through the limiter actors. Limited routes answer the
//! `RateLimit-Policy` / `RateLimit` (IETF httpapi draft, structured fields) and
//! `X-RateLimit-*` headers; over the limit is 429 `rate_limited` with `Retry-After`.
//! `/health`, `/ready`, `/metrics` and CORS preflights are never limited (only `/api/`
//! paths are, and not `OPTIONS`). Authenticated callers also get at most
//! `rate_limits.limiter.concurrency_per_key` requests in flight at once (429 beyond).

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::OnceLock;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use bulkhead_actors::Decision;

use super::auth::Caller;
use super::problem::{retry_after_secs, ApiError, ErrorCode};
use super::request::RequestContext;
use super::AppState;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

pub async fn middleware<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let limiter = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.svc.limiter.clone());
    let Some((limiter, policies)) = limiter else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    if !req.path().starts_with("/api/") || req.method() == Method::OPTIONS {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let (policy, name, key, user) = {
        let ext = req.extensions();
        match ext.get::<Caller>() {
            Some(c) => (policies.user, "user", user_key(c.id), Some(c.id)),
            None => {
                let ip = ext.get::<RequestContext>().and_then(|c| c.client_ip);
                (policies.ip, "ip", ip_key(ip), None)
            }
        }
    };
    let decision = match limiter.check_hashed(policy, key).await {
        Ok(d) => d,
        Err(e) => return Ok(req.error_response(ApiError::from(e)).map_into_right_body()),
    };
    if !decision.allowed {
        let mut res = req.error_response(limited(&decision));
        apply_headers(res.headers_mut(), name, &decision);
        return Ok(res.map_into_right_body());
    }
    // Stripe's second limiter: concurrent requests per user, released when the request
    // ends however it ends (the permit drops with this future).
    let per_user_concurrency = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.config.rate_limits.limiter.concurrency_per_key > 0);
    let _permit = match user {
        Some(id) if per_user_concurrency => {
            match limiter
                .acquire_concurrency_hashed(keyed_hash(3, id.as_u128()))
                .await
            {
                Ok(p) => Some(p),
                Err(e) => {
                    let mut res = req.error_response(ApiError::from(e));
                    apply_headers(res.headers_mut(), name, &decision);
                    return Ok(res.map_into_right_body());
                }
            }
        }
        _ => None,
    };
    let mut res = next.call(req).await?;
    // A route with a policy of its own (login) has set its headers: the narrower policy
    // is the one the client must pace itself by.
    if !res.headers().contains_key(RATELIMIT_POLICY) {
        apply_headers(res.headers_mut(), name, &decision);
    }
    Ok(res.map_into_left_body())
}

/// The 429 answer for a denied decision.
pub fn limited(decision: &Decision) -> ApiError {
    let after = decision
        .retry_after
        .unwrap_or(std::time::Duration::from_secs(1));
    ApiError::new(
        ErrorCode::RateLimited,
        format!(
            "rate limit of {} requests per {} s exceeded",
            decision.quota, decision.window_secs
        ),
    )
    .with_retry_after(after)
}

/// Set the rate-limit headers of `decision` under policy `name`.
pub fn apply_headers(headers: &mut HeaderMap, name: &str, decision: &Decision) {
    let reset = retry_after_secs(decision.reset).min(decision.window_secs.max(1));
    let reset = if decision.reset.is_zero() { 0 } else { reset };
    let mut put = |name: HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put(
        RATELIMIT_POLICY,
        format!("\"{name}\";q={};w={}", decision.quota, decision.window_secs),
    );
    put(
        RATELIMIT,
        format!("\"{name}\";r={};t={reset}", decision.remaining),
    );
    put(X_LIMIT, decision.limit.to_string());
    put(X_REMAINING, decision.remaining.to_string());
    put(X_RESET, reset.to_string());
}

/// Keys are hashed with per-process random keys, so clients cannot aim collisions, and
/// tagged by kind, so a user and an IP never share a bucket.
fn keyed_hash(tag: u8, value: impl Hash) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let mut h = KEYS.get_or_init(RandomState::new).build_hasher();
    tag.hash(&mut h);
    value.hash(&mut h);
    h.finish()
}

fn user_key(id: uuid::Uuid) -> u64 {
    keyed_hash(1, id.as_u128())
}

fn ip_key(ip: Option<IpAddr>) -> u64 {
    keyed_hash(2, ip)
}
