//! `/api/v1/users`: registration and the user resources.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::extract::JsonBody;
use super::problem::{ApiError, FieldError};
use super::{resource, AppState};
use crate::domain::user::{Email, NewUser, Password, Role, UserName};
use crate::service::CachedUser;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/v1/users", "POST").route(web::post().to(create)));
}

#[derive(Deserialize)]
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

/// `POST /api/v1/users`: open to anonymous callers.
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
    let password_hash = state.svc.hash_password(password.into_inner()).await?;
    let user = state
        .svc
        .write(state.svc.store.create_user(NewUser {
            email: email.into_inner(),
            name: name.into_inner(),
            password_hash,
            role: Role::User,
        }))
        .await?;
    let cached = CachedUser::from_user(&user);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/users/{}", user.id)))
        .insert_header((header::ETAG, cached.etag.clone()))
        .content_type("application/json")
        .body(cached.body.clone()))
}
