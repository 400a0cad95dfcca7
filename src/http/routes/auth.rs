//! `/api/v1/auth/*`: login, refresh rotation and logout over HTTP. The flows, and what
//! each answers when, are `service::auth`'s; here are the bodies, the login rate limit
//! (its own policy, keyed by the email) and `Cache-Control: no-store`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::resource::resource;
use crate::domain::token::TokenPair;
use crate::domain::user::Email;
use crate::error::ApiError;
use crate::http::middleware::ratelimit;
use crate::http::state::AppState;
use crate::http::support::extract::JsonBody;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/v1/auth/token", "POST").route(web::post().to(token)))
        .service(resource("/api/v1/auth/refresh", "POST").route(web::post().to(refresh)))
        .service(resource("/api/v1/auth/logout", "POST").route(web::post().to(logout)));
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

/// `POST /api/v1/auth/token`.
#[utoipa::path(
    post, path = "/api/v1/auth/token", operation_id = "issue_token", tag = "auth",
    security((), ("bearer" = [])),
    request_body = Credentials,
    responses((status = 200, description = "A new token pair (`Cache-Control: no-store`)", body = TokenPair))
)]
async fn token(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(&body.email).ok();
    let mut login_headers = None;
    if let Some((limiter, policies)) = state.svc.limiter.as_ref().filter(|(l, _)| l.enabled()) {
        // A malformed email is limited by what it normalises to, as a valid one is.
        let limit_key = match &email {
            Some(email) => email.as_str().to_owned(),
            None => body.email.trim().to_lowercase(),
        };
        let names = &state.svc.fleet_names;
        let decision = limiter
            .check_named(policies.login, login_key(&limit_key), || {
                names.key("login", limit_key.as_bytes())
            })
            .await?;
        if !decision.allowed {
            let mut res = actix_web::ResponseError::error_response(&ratelimit::limited(&decision));
            ratelimit::apply_headers(res.headers_mut(), "login", &decision);
            return Ok(res);
        }
        login_headers = Some(decision);
    }
    let pair = state.svc.login(email, body.password).await?;
    let mut res = token_response(pair);
    if let Some(decision) = login_headers {
        ratelimit::apply_headers(res.headers_mut(), "login", &decision);
    }
    Ok(res)
}

fn token_response(pair: TokenPair) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(pair)
}

/// `POST /api/v1/auth/refresh`: rotate a refresh token into a new pair.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", operation_id = "refresh_token", tag = "auth",
    security((), ("bearer" = [])),
    request_body = RefreshBody,
    responses((status = 200, description = "The successor pair; the presented token stops working", body = TokenPair))
)]
async fn refresh(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let pair = state.svc.refresh(&body.refresh_token).await?;
    Ok(token_response(pair))
}

/// `POST /api/v1/auth/logout`: revoke the token's family; 204 even for an unknown token.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", operation_id = "logout", tag = "auth",
    security((), ("bearer" = [])),
    request_body = RefreshBody,
    responses((status = 204, description = "The token's family is revoked"))
)]
async fn logout(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    state.svc.logout(&body.refresh_token).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// The login limiter's local key: the email hashed with a per-process random key.
fn login_key(email: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new)
        .hash_one(email)
}
