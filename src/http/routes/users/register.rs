//! `POST /api/v1/users`: registration, open to anonymous callers.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::common::user_response;
use crate::domain::user::{Email, Password, UserName};
use crate::error::ApiError;
use crate::http::state::AppState;
use crate::http::support::extract::JsonBody;
use crate::http::support::rules::Rules;
use crate::service::CachedUser;

/// Registration: email (trimmed, lower-cased, <= 254 chars), name (1..=100 chars),
/// password (8..=128 chars).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    name: String,
    password: String,
}

/// `POST /api/v1/users`: open to anonymous callers.
#[utoipa::path(
    post, path = "/api/v1/users", operation_id = "create_user", tag = "users",
    security((), ("bearer" = [])),
    request_body = CreateUser,
    responses((status = 201, description = "Registered", body = crate::domain::user::UserView,
        headers(("ETag" = String, description = "Strong validator of this representation"), ("Location" = String, description = "The new user"))))
)]
pub async fn create(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let mut rules = Rules::default();
    let email = rules.check("email", Email::parse(&body.email));
    let name = rules.check("name", UserName::parse(&body.name));
    let password = rules.check("password", Password::parse(&body.password));
    rules.finish()?;
    let (Some(email), Some(name), Some(password)) = (email, name, password) else {
        return Err(ApiError::internal());
    };
    let user = state.svc.register(email, name, password).await?;
    let cached = CachedUser::from_user(&user);
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, format!("/api/v1/users/{}", user.id)));
    Ok(user_response(res, &cached))
}
