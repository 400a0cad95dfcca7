//! `GET /api/v1/users/me` (the hot path: served from the caller's cached user, ready
//! bytes and ETag, no store call) and `GET /api/v1/users/{id}` (self or admin).

use actix_web::{web, HttpRequest, HttpResponse};
use uuid::Uuid;

use super::common::serve;
use crate::error::ApiError;
use crate::http::state::AppState;
use crate::http::support::caller::Caller;

/// `GET /api/v1/users/me`: the hot path. Served from the caller's cached user (ready
/// bytes and ETag); no store call.
#[utoipa::path(
    method(get, head), path = "/api/v1/users/me", operation_id = "get_me", tag = "users",
    security(("bearer" = [])),
    params(("If-None-Match" = Option<String>, Header, description = "ETags you hold; 304 when one is current")),
    responses(
        (status = 200, description = "The caller", body = crate::domain::user::UserView, headers(("ETag" = String, description = "Strong validator of this representation"))),
        (status = 304, description = "Not modified", headers(("ETag" = String, description = "Strong validator of this representation"))),
    )
)]
pub async fn me(req: HttpRequest, caller: Caller) -> HttpResponse {
    serve(&req, &caller.user)
}

/// `GET /api/v1/users/{id}`: self or admin; anyone else gets the 404 of a missing id.
#[utoipa::path(
    method(get, head), path = "/api/v1/users/{id}", operation_id = "get_user", tag = "users",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id"), ("If-None-Match" = Option<String>, Header, description = "ETags you hold; 304 when one is current")),
    responses(
        (status = 200, description = "The user", body = crate::domain::user::UserView, headers(("ETag" = String, description = "Strong validator of this representation"))),
        (status = 304, description = "Not modified", headers(("ETag" = String, description = "Strong validator of this representation"))),
    )
)]
pub async fn get_one(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !caller.may_act_for(id) {
        return Err(ApiError::not_found());
    }
    if id == caller.id {
        return Ok(serve(&req, &caller.user));
    }
    let user = state.svc.user(id).await?.ok_or_else(ApiError::not_found)?;
    Ok(serve(&req, &user))
}
