//! The rate-limit middleware: per user (`sub`) for authenticated requests, per client IP
//! for anonymous ones, through the limiter actors. Limited routes answer the
//! `RateLimit-Policy` / `RateLimit` (IETF httpapi draft, structured fields) and
//! `X-RateLimit-*` headers; over the limit is 429 `rate_limited` with `Retry-After`.
//! `/health`, `/ready`, `/metrics` and CORS preflights are never limited (only `/api/`
//! paths are, and not `OPTIONS`). Authenticated callers also get at most
//! `rate_limits.limiter.concurrency_per_key` requests in flight at once (429 beyond).

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::OnceLock;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use bulkhead_actors::Decision;
use bytes::Bytes;

use super::request::RequestContext;
use crate::error::{retry_after_secs, ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::http::support::caller::Caller;
use crate::service::caller::as_caller;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

pub async fn middleware<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    // The path as the router matches it (percent-decoded), not as the client spelt it:
    // `/%61pi/v1/auth/token` is the login route and is limited like it.
    if !req.match_info().as_str().starts_with("/api/") || req.method() == Method::OPTIONS {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let (key, user) = {
        let ext = req.extensions();
        match ext.get::<Caller>() {
            Some(c) => (user_key(c.id), Some(c.id)),
            None => {
                let ip = ext.get::<RequestContext>().and_then(|c| c.client_ip);
                (ip_key(ip), None)
            }
        }
    };
    // The handler's store calls queue in the bulkheads as this caller (fair queues).
    as_caller(key, limit(req, next, key, user)).await
}

async fn limit<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
    key: u64,
    user: Option<uuid::Uuid>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let limiter = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.svc.limiter.clone())
        .filter(|(limiter, _)| limiter.enabled());
    let Some((limiter, policies)) = limiter else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let (policy, name) = match user {
        Some(_) => (policies.user, "user"),
        None => (policies.ip, "ip"),
    };
    // Names the key in Redis (global limits): called once per key and process, when the
    // key is new here, so the common path pays nothing for it.
    let redis_name = || {
        let names = req
            .app_data::<web::Data<AppState>>()
            .map(|s| &s.svc.fleet_names);
        let identity = match user {
            Some(id) => id.as_bytes().to_vec(),
            None => req
                .extensions()
                .get::<RequestContext>()
                .and_then(|c| c.client_ip)
                .map(|ip| ip.to_string().into_bytes())
                .unwrap_or_default(),
        };
        names.map_or_else(|| format!("{key:016x}"), |n| n.key(name, &identity))
    };
    let decision = limiter.check_named(policy, key, redis_name).await;
    let decision = match decision {
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

/// A request refused for its token spends the client IP's quota like any anonymous
/// request (API.md, Limits): `refusal` is answered, or 429 once the quota is spent, with
/// the `ip` policy's headers either way. Without a limiter, `refusal` as it is.
pub async fn refuse_counted(req: ServiceRequest, refusal: ApiError) -> ServiceResponse {
    let limiter = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.svc.limiter.clone());
    let Some((limiter, policies)) = limiter else {
        return req.error_response(refusal);
    };
    let ip = req
        .extensions()
        .get::<RequestContext>()
        .and_then(|c| c.client_ip);
    let decision = match limiter.check_hashed(policies.ip, ip_key(ip)).await {
        Ok(d) => d,
        // The limiter could not decide: the refusal stands on its own.
        Err(_) => return req.error_response(refusal),
    };
    let answer = if decision.allowed {
        refusal
    } else {
        limited(&decision)
    };
    let mut res = req.error_response(answer);
    apply_headers(res.headers_mut(), "ip", &decision);
    res
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
///
/// On every limited response, so built without formatting machinery: the two values
/// fixed per policy (`RateLimit-Policy`, `X-RateLimit-Limit`) are made once per worker
/// thread and cloned (a reference count). The three that change share one allocation:
/// the `RateLimit` line holds both numbers, and `X-RateLimit-Remaining` and
/// `X-RateLimit-Reset` are slices of it.
pub fn apply_headers(headers: &mut HeaderMap, name: &'static str, decision: &Decision) {
    let reset = retry_after_secs(decision.reset).min(decision.window_secs.max(1));
    let reset = if decision.reset.is_zero() { 0 } else { reset };
    let (policy, limit) = fixed_values(name, decision);
    headers.insert(RATELIMIT_POLICY, policy);
    headers.insert(X_LIMIT, limit);
    // "name";r=<remaining>;t=<reset>
    let mut remaining = itoa::Buffer::new();
    let remaining = remaining.format(decision.remaining).as_bytes();
    let mut reset_digits = itoa::Buffer::new();
    let reset_digits = reset_digits.format(reset).as_bytes();
    let parts: [&[u8]; 6] = [
        b"\"",
        name.as_bytes(),
        b"\";r=",
        remaining,
        b";t=",
        reset_digits,
    ];
    let mut line = Line {
        buf: [0; 96],
        len: 0,
    };
    for part in parts {
        let end = line.len + part.len();
        if end > line.buf.len() {
            // Longer than any policy name makes it: the two numbers alone.
            headers.insert(X_REMAINING, HeaderValue::from(decision.remaining));
            headers.insert(X_RESET, HeaderValue::from(reset));
            return;
        }
        line.buf[line.len..end].copy_from_slice(part);
        line.len = end;
    }
    let reset_at = line.len - reset_digits.len()..line.len;
    let remaining_at = reset_at.start - 3 - remaining.len()..reset_at.start - 3;
    let line = Bytes::from_owner(line);
    for (header, at) in [(X_REMAINING, remaining_at), (X_RESET, reset_at)] {
        // Digits: always a valid value.
        if let Ok(v) = HeaderValue::from_maybe_shared(line.slice(at)) {
            headers.insert(header, v);
        }
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(line) {
        headers.insert(RATELIMIT, v);
    }
}

/// The `RateLimit` line, held in place by the one allocation its `Bytes` makes.
struct Line {
    buf: [u8; 96],
    len: usize,
}

impl AsRef<[u8]> for Line {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `RateLimit-Policy` and `X-RateLimit-Limit` of a policy, made once per worker thread.
fn fixed_values(name: &'static str, d: &Decision) -> (HeaderValue, HeaderValue) {
    type Key = (&'static str, u32, u64, u32);
    thread_local! {
        // A handful of policies (user, ip, login), and a few more after reloads change
        // their quotas: the cache is bounded below, and a miss only formats the value.
        static FIXED: std::cell::RefCell<Vec<(Key, HeaderValue, HeaderValue)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let key: Key = (name, d.quota, d.window_secs, d.limit);
    FIXED.with(|cell| {
        let mut fixed = cell.borrow_mut();
        if let Some((_, policy, limit)) = fixed.iter().find(|(k, ..)| *k == key) {
            return (policy.clone(), limit.clone());
        }
        let policy =
            HeaderValue::from_str(&format!("\"{name}\";q={};w={}", d.quota, d.window_secs))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
        let limit = HeaderValue::from(d.limit);
        if fixed.len() < 16 {
            fixed.push((key, policy.clone(), limit.clone()));
        }
        (policy, limit)
    })
}

/// Keys are hashed with per-process random keys, so clients cannot aim collisions, and
/// tagged by kind, so a user and an IP never share a bucket.
/// foldhash's quality variant: the limiter's maps use these 64 bits as they are.
fn keyed_hash(tag: u8, value: impl Hash) -> u64 {
    static KEYS: OnceLock<foldhash::quality::RandomState> = OnceLock::new();
    let mut h = KEYS
        .get_or_init(foldhash::quality::RandomState::default)
        .build_hasher();
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
