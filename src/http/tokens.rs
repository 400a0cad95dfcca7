//! `/api/v1/auth/*`: issuing tokens.
//!
//! Login answers the same 401 `invalid_credentials` for an unknown email and a wrong
//! password, and takes about as long for both: an unknown email is checked against a
//! dummy hash of the same cost. Account state is only revealed (403 `account_inactive`)
//! to a caller who proved the password.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::Duration as ChronoDuration;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::JsonBody;
use super::problem::{ApiError, ErrorCode};
use super::ratelimit;
use super::{resource, AppState};
use crate::auth::refresh;
use crate::domain::token::NewRefreshToken;
use crate::domain::user::{now, Email, User, UserStatus};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/v1/auth/token", "POST").route(web::post().to(token)));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

/// The token response (`Cache-Control: no-store`).
#[derive(Serialize)]
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
    if let Some((limiter, policies)) = &state.svc.limiter {
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
        return Err(ApiError::new(
            ErrorCode::AccountInactive,
            format!("the account is {}", user.status.as_str()),
        ));
    }
    let pair = issue_pair(&state, &user, Uuid::now_v7()).await?;
    let mut res = HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(pair);
    if let Some(decision) = login_headers {
        ratelimit::apply_headers(res.headers_mut(), "login", &decision);
    }
    Ok(res)
}

/// A new access token and a new refresh token of `family`, stored as a hash.
pub async fn issue_pair(
    state: &AppState,
    user: &User,
    family: Uuid,
) -> Result<TokenPair, ApiError> {
    let access_token = state.svc.jwt.issue(user.id, user.role).map_err(|e| {
        tracing::error!(error = %e, "signing an access token failed");
        ApiError::internal()
    })?;
    let (refresh_token, hash) = refresh::generate();
    let ttl = i64::try_from(state.config.auth.refresh_ttl_secs).unwrap_or(i64::MAX / 2);
    state
        .svc
        .write(state.svc.store.create_refresh_token(NewRefreshToken {
            hash,
            family_id: family,
            user_id: user.id,
            expires_at: now() + ChronoDuration::seconds(ttl),
        }))
        .await?;
    Ok(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in: state.svc.jwt.ttl_secs(),
        refresh_token,
    })
}
