//! Authentication: a middleware that turns `Authorization: Bearer <jwt>` into a
//! [`Caller`], and the extractors handlers use.
//!
//! The token alone is not trusted for the account's state: the user's current status and
//! role come from the per-user cache (invalidated on every write of that user), so a
//! deleted user's token stops working at once (401) and an inactive one is refused (403
//! `account_inactive`). Only `/api/` paths are authenticated; operations endpoints are not.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use uuid::Uuid;

use super::AppState;
use crate::auth::jwt::TokenError;
use crate::domain::user::{Role, UserStatus};
use crate::error::{ApiError, ErrorCode};
use crate::service::CachedUser;

/// The authenticated, active caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: Uuid,
    pub role: Role,
    /// The cached user, ready to serve (`GET /users/me`).
    pub user: Arc<CachedUser>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 `forbidden` unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Whether the caller may see or act on resources of `owner` (self or admin).
    pub fn may_act_for(&self, owner: Uuid) -> bool {
        self.is_admin() || self.id == owner
    }
}

/// Extractor: the caller, or 401 `unauthenticated`.
impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| ApiError::unauthenticated("authentication required")),
        )
    }
}

/// Extractor for routes open to anonymous callers.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(MaybeCaller(req.extensions().get::<Caller>().cloned())))
    }
}

pub async fn middleware<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    if !req.path().starts_with("/api/") || !req.headers().contains_key(header::AUTHORIZATION) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    match authenticate(&req).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

async fn authenticate(req: &ServiceRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    // from_utf8 checks a word at a time where `HeaderValue::to_str` checks each byte for
    // visible ASCII; a token with anything else fails verification anyway.
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .unwrap_or("");
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(ApiError::unauthenticated(
                "the Authorization header must be `Bearer <token>`",
            ))
        }
    };
    let claims = state.svc.verify_token(token).await.map_err(|e| match e {
        TokenError::Expired => ApiError::unauthenticated("the access token has expired"),
        TokenError::Invalid => ApiError::unauthenticated("the access token is not valid"),
    })?;
    let user = state
        .svc
        .user(claims.sub)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the token's user no longer exists"))?;
    if user.status != UserStatus::Active {
        return Err(ApiError::new(
            ErrorCode::AccountInactive,
            format!("the account is {}", user.status.as_str()),
        ));
    }
    // The token's role is an upper bound: a demoted admin loses admin rights at once (the
    // cache says so), while a user promoted to admin (say, a pre-registered account taken
    // over as the bootstrap admin) gets them only with a token issued after the promotion.
    let role = if claims.role == user.role {
        user.role
    } else {
        Role::User
    };
    Ok(Caller {
        id: user.id,
        role,
        user,
    })
}
