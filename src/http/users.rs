//! `/api/v1/users`: registration and reading user resources. Changes live in
//! [`super::user_patch`] (PATCH, DELETE) and admin routes in [`super::users_admin`]
//! (listing, status).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Caller;
use super::etag::{self, not_modified};
use super::extract::JsonBody;
use super::{resource, user_patch, users_admin, AppState};
use crate::domain::user::{Email, Password, UserName};
use crate::error::{ApiError, FieldError};
use crate::service::CachedUser;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // `/me` before `/{id}`: both match the path, and the first registered wins.
    cfg.service(
        resource("/api/v1/users", "GET, POST")
            .route(web::get().to(users_admin::list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/api/v1/users/me", "GET, HEAD")
            .route(web::get().to(me))
            .route(web::head().to(me)),
    )
    .service(
        resource("/api/v1/users/{id}", "GET, HEAD, PATCH, DELETE")
            .route(web::get().to(get_one))
            .route(web::head().to(get_one))
            .route(web::patch().to(user_patch::patch))
            .route(web::delete().to(user_patch::delete)),
    )
    .service(
        resource("/api/v1/users/{id}/status", "POST")
            .route(web::post().to(users_admin::set_status)),
    );
}

/// Registration: email (trimmed, lower-cased, <= 254 chars), name (1..=100 chars),
/// password (8..=128 chars).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: String,
    name: String,
    password: String,
}

/// Collects every rule a request breaks, to answer them all in one 422.
#[derive(Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    /// Keep the parsed value, or record why `field` is refused.
    pub fn check<T>(
        &mut self,
        field: &str,
        parsed: Result<T, (&'static str, &'static str)>,
    ) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err((code, message)) => {
                self.0.push(FieldError::new(field, code, message));
                None
            }
        }
    }

    /// 422 `validation_failed` listing every violation, if there is any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

/// A user answer: the cached body as ready bytes, with its strong ETag.
pub fn user_response(mut res: actix_web::HttpResponseBuilder, user: &CachedUser) -> HttpResponse {
    res.insert_header((header::ETAG, etag::header_value(&user.etag)))
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(user.body.clone())
}

/// 200 with the body, or 304 when `If-None-Match` names the current ETag.
fn serve(req: &HttpRequest, user: &CachedUser) -> HttpResponse {
    if not_modified(req, user.etag.as_str()) {
        HttpResponse::NotModified()
            .insert_header((header::ETAG, etag::header_value(&user.etag)))
            .finish()
    } else {
        user_response(HttpResponse::Ok(), user)
    }
}

/// `POST /api/v1/users`: open to anonymous callers.
#[utoipa::path(
    post, path = "/api/v1/users", operation_id = "create_user", tag = "users",
    security((), ("bearer" = [])),
    request_body = CreateUser,
    responses((status = 201, description = "Registered", body = crate::domain::user::UserView,
        headers(("ETag" = String, description = "Strong validator of this representation"), ("Location" = String, description = "The new user"))))
)]
async fn create(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let mut v = Violations::default();
    let email = v.check("email", Email::parse(&body.email));
    let name = v.check("name", UserName::parse(&body.name));
    let password = v.check("password", Password::parse(&body.password));
    v.finish()?;
    let (Some(email), Some(name), Some(password)) = (email, name, password) else {
        return Err(ApiError::internal());
    };
    let user = state.svc.register(email, name, password).await?;
    let cached = CachedUser::from_user(&user);
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, format!("/api/v1/users/{}", user.id)));
    Ok(user_response(res, &cached))
}

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
async fn me(req: HttpRequest, caller: Caller) -> HttpResponse {
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
async fn get_one(
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
