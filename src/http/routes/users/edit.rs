//! `PATCH` and `DELETE /api/v1/users/{id}`: self or admin (anyone else gets the 404 of a
//! missing id). Users changing their own password or email send `current_password`. `If-Match` is checked by the store inside the write (412 when stale).
//! Every write invalidates the user's cache entry before answering, so the auth
//! middleware sees a deleted user (401) at once.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::common::user_response;
use crate::domain::rule::Violation;
use crate::domain::user::{Email, Password, UserName};
use crate::error::ApiError;
use crate::http::state::AppState;
use crate::http::support::caller::Caller;
use crate::http::support::etag;
use crate::http::support::extract::JsonBody;
use crate::http::support::rules::Rules;
use crate::service::{CachedUser, UserEdit};

/// A member of a JSON merge patch (RFC 7396): absent (leave it), `null` (remove it),
/// or a new value.
#[derive(Debug, Default)]
enum Member<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Member<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Member::Value(v),
            None => Member::Null,
        })
    }
}

/// The PATCH body. `role` and `status` are not here: they are unknown fields (400);
/// status changes go through `POST /users/{id}/status`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    name: Member<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    email: Member<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    password: Member<String>,
    /// The account's current password: required when users change their own password
    /// or email (422 without it, 401 `invalid_credentials` when wrong); not needed for
    /// anything else, nor by an admin changing another user.
    #[serde(default)]
    current_password: Option<String>,
}

/// Parse one member: `null` would remove a required field, which is a 422.
fn member<T>(
    rules: &mut Rules,
    field: &str,
    m: Member<String>,
    parse: impl FnOnce(&str) -> Result<T, Violation>,
) -> Option<T> {
    match m {
        Member::Absent => None,
        Member::Null => rules.check(field, Err(Violation::new("required", "cannot be removed"))),
        Member::Value(s) => rules.check(field, parse(&s)),
    }
}

/// `PATCH /api/v1/users/{id}` (`application/json` or `application/merge-patch+json`).
#[utoipa::path(
    patch, path = "/api/v1/users/{id}", operation_id = "update_user", tag = "users",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id"), ("If-Match" = Option<String>, Header, description = "Write only if the current ETag is one of these (or `*`); 412 otherwise")),
    request_body(content(
        (UserPatch = "application/merge-patch+json"),
        (UserPatch = "application/json"),
    )),
    responses((status = 200, description = "Changed", body = crate::domain::user::UserView, headers(("ETag" = String, description = "Strong validator of this representation"))))
)]
pub async fn patch(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    JsonBody(body): JsonBody<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !caller.may_act_for(id) {
        return Err(ApiError::not_found());
    }
    // Users changing their own credentials prove they know the current password: a
    // stolen access token alone must not be enough to take the account over.
    let own_credentials = caller.id == id
        && !(matches!(body.email, Member::Absent) && matches!(body.password, Member::Absent));
    let mut rules = Rules::default();
    let name = member(&mut rules, "name", body.name, UserName::parse);
    let email = member(&mut rules, "email", body.email, Email::parse);
    let password = member(&mut rules, "password", body.password, Password::parse);
    let current_password = if own_credentials {
        rules.check(
            "current_password",
            body.current_password.ok_or_else(|| {
                Violation::new("required", "required to change your own password or email")
            }),
        )
    } else {
        None
    };
    rules.finish()?;
    let edit = UserEdit {
        name,
        email,
        password,
        current_password,
    };
    let user = state
        .svc
        .update_user(id, edit, &etag::if_match(&req))
        .await?;
    Ok(user_response(
        HttpResponse::Ok(),
        &CachedUser::from_user(&user),
    ))
}

/// `DELETE /api/v1/users/{id}`: soft delete; the email is free again, and the user's
/// tokens stop working (refresh tokens revoked in the same transaction; access tokens
/// refused by the auth middleware once the cache entry is gone).
#[utoipa::path(
    delete, path = "/api/v1/users/{id}", operation_id = "delete_user", tag = "users",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id"), ("If-Match" = Option<String>, Header, description = "Write only if the current ETag is one of these (or `*`); 412 otherwise")),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !caller.may_act_for(id) {
        return Err(ApiError::not_found());
    }
    state.svc.delete_user(id, &etag::if_match(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldError;

    #[test]
    fn members_tell_absent_from_null() {
        let p: UserPatch = serde_json::from_str(r#"{"name": null, "email": "a@b.co"}"#).unwrap();
        assert!(matches!(p.name, Member::Null));
        assert!(matches!(p.email, Member::Value(ref e) if e == "a@b.co"));
        assert!(matches!(p.password, Member::Absent));
        assert!(serde_json::from_str::<UserPatch>(r#"{"role": "admin"}"#).is_err());
    }

    #[test]
    fn null_members_are_violations() {
        let mut rules = Rules::default();
        assert!(member(&mut rules, "name", Member::Null, UserName::parse).is_none());
        let e = rules.finish().unwrap_err();
        assert_eq!(
            e.errors,
            vec![FieldError::new("name", "required", "cannot be removed")]
        );
    }
}
