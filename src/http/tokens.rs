//! `/api/v1/auth/*`: issuing, rotating and revoking tokens.
//!
//! Login answers the same 401 `invalid_credentials` for an unknown email and a wrong
//! password, and takes about as long for both: an unknown email is checked against a
//! dummy hash of the same cost. Account state is only revealed (403 `account_inactive`)
//! to a caller who proved the password.
//!
//! Refresh rotates: the presented token is marked rotated and a successor of the same
//! family is stored, in one store transaction, so of concurrent refreshes with one token
//! exactly one succeeds. Presenting a rotated token again is 401 `refresh_token_reused`
//! and revokes the family, newest member included. Unknown, expired or revoked tokens,
//! and tokens of deleted users, are 401 `unauthenticated`. Logout revokes the family and
//! answers 204 whether or not the token was known (it is idempotent, and tells nobody
//! whether a string is a live token).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::Duration as ChronoDuration;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::JsonBody;
use super::ratelimit;
use super::{resource, AppState};
use crate::auth::refresh;
use crate::domain::token::NewRefreshToken;
use crate::domain::user::{now, Email, Role, User, UserStatus};
use crate::error::{ApiError, ErrorCode};
use crate::store::Rotation;

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

/// The token response (`Cache-Control: no-store`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "the email or password is wrong",
    )
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
    // A malformed email cannot belong to anyone: same answer as a wrong one.
    let email = Email::parse(&body.email).map(Email::into_inner);
    let limit_key = email
        .clone()
        .unwrap_or_else(|_| body.email.trim().to_lowercase());
    let mut login_headers = None;
    if let Some((limiter, policies)) = state.svc.limiter.as_ref().filter(|(l, _)| l.enabled()) {
        let decision = limiter.check(policies.login, &limit_key).await?;
        if !decision.allowed {
            let mut res = actix_web::ResponseError::error_response(&ratelimit::limited(&decision));
            ratelimit::apply_headers(res.headers_mut(), "login", &decision);
            return Ok(res);
        }
        login_headers = Some(decision);
    }
    let user = match &email {
        Ok(email) => {
            state
                .svc
                .read(state.svc.store.find_user_by_email(email))
                .await?
        }
        Err(_) => None,
    };
    let ok = state
        .svc
        .verify_password(
            body.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    let user = match user {
        Some(user) if ok => user,
        _ => return Err(invalid_credentials()),
    };
    if user.status != UserStatus::Active {
        return Err(account_inactive(user.status));
    }
    let pair = issue_pair(&state, &user, Uuid::now_v7()).await?;
    let mut res = token_response(pair);
    if let Some(decision) = login_headers {
        ratelimit::apply_headers(res.headers_mut(), "login", &decision);
    }
    Ok(res)
}

fn account_inactive(status: UserStatus) -> ApiError {
    ApiError::new(
        ErrorCode::AccountInactive,
        format!("the account is {}", status.as_str()),
    )
}

fn sign_access(state: &AppState, user: Uuid, role: Role) -> Result<String, ApiError> {
    state.svc.jwt.issue(user, role).map_err(|e| {
        tracing::error!(error = %e, "signing an access token failed");
        ApiError::internal()
    })
}

fn refresh_expiry(state: &AppState) -> chrono::DateTime<chrono::Utc> {
    let ttl = i64::try_from(state.config.auth.refresh_ttl_secs).unwrap_or(i64::MAX / 2);
    now() + ChronoDuration::seconds(ttl)
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
    let presented = refresh::hash(&body.refresh_token);
    let (refresh_token, successor) = refresh::generate();
    let rotation = state
        .svc
        .write(
            state
                .svc
                .store
                .rotate_refresh_token(&presented, successor, refresh_expiry(&state)),
        )
        .await?;
    let user_id = match rotation {
        Rotation::Rotated { user_id, .. } => user_id,
        Rotation::Reused => {
            tracing::warn!("a rotated refresh token was presented again; its family is revoked");
            return Err(ApiError::new(
                ErrorCode::RefreshTokenReused,
                "this refresh token was already used; every token of its login is revoked",
            ));
        }
        Rotation::Inactive(status) => return Err(account_inactive(status)),
        Rotation::Invalid => {
            return Err(ApiError::unauthenticated(
                "the refresh token is unknown, expired or revoked",
            ))
        }
    };
    // The role for the access token comes from the cache, as every request's does.
    let user = state
        .svc
        .user(user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the token's user no longer exists"))?;
    if user.status != UserStatus::Active {
        return Err(account_inactive(user.status));
    }
    Ok(token_response(TokenPair {
        access_token: sign_access(&state, user.id, user.role)?,
        token_type: "Bearer",
        expires_in: state.svc.jwt.ttl_secs(),
        refresh_token,
    }))
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
    let presented = refresh::hash(&body.refresh_token);
    state
        .svc
        .write(state.svc.store.revoke_refresh_family(&presented))
        .await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// A new access token and a new refresh token of `family`, stored as a hash.
pub async fn issue_pair(
    state: &AppState,
    user: &User,
    family: Uuid,
) -> Result<TokenPair, ApiError> {
    let access_token = sign_access(state, user.id, user.role)?;
    let (refresh_token, hash) = refresh::generate();
    state
        .svc
        .write(state.svc.store.create_refresh_token(NewRefreshToken {
            hash,
            family_id: family,
            user_id: user.id,
            expires_at: refresh_expiry(state),
        }))
        .await?;
    Ok(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in: state.svc.jwt.ttl_secs(),
        refresh_token,
    })
}
