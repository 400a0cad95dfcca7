//! Authentication: turns `Authorization: Bearer <jwt>` into the request's [`Caller`]
//! (handlers take it with the extractors of `support::caller`).
//!
//! The token alone is not trusted for the account's state: the user's current status and
//! role come from the per-user cache (invalidated on every write of that user), so a
//! deleted user's token stops working at once (401) and an inactive one is refused (403
//! `account_inactive`). A token issued before a change of the user's password, email or
//! role (its `epoch` claim below the user's token epoch) is 401. Only `/api/` paths are
//! authenticated; operations endpoints are not.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};

use crate::auth::jwt::TokenError;
use crate::domain::user::{Role, UserStatus};
use crate::error::ApiError;
use crate::http::state::AppState;
use crate::http::support::caller::Caller;

pub async fn middleware<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    // The path as the router matches it (percent-decoded), not as the client spelt it:
    // `/%61pi/...` routes to `/api/...` and must be authenticated like it.
    if !req.match_info().as_str().starts_with("/api/")
        || !req.headers().contains_key(header::AUTHORIZATION)
    {
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
        // Counted against the client IP's quota: guessing tokens is not free.
        Err(e) => Ok(super::ratelimit::refuse_counted(req, e)
            .await
            .map_into_right_body()),
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
    // Issued before a change of the user's password, email or role: no longer valid. The
    // epoch is a counter (not `iat`, whose whole seconds cannot order a token against a
    // change made in the same second), read from the cache like the status.
    if claims.epoch < user.token_epoch {
        return Err(ApiError::unauthenticated(
            "the access token was issued before a change of the account's credentials",
        ));
    }
    if user.status != UserStatus::Active {
        return Err(ApiError::account_inactive(user.status));
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
