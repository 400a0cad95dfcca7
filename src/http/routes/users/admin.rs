//! Admin routes of `/api/v1/users`: the listing (filters, sort, sparse fieldsets, cursor
//! pagination) and status changes. Both answer 403 `forbidden` to non-admins before
//! looking at anything else of the request.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::common::user_response;
use crate::domain::rule::Violation;
use crate::domain::user::{Role, User, UserStatus, UserView};
use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::http::support::caller::Caller;
use crate::http::support::extract::JsonBody;
use crate::http::support::pagination::{parse_limit, Cursor, Page};
use crate::http::support::rules::Rules;
use crate::service::CachedUser;
use crate::store::{UserKey, UserListQuery, UserSort};

/// The members of a user, for `?fields=`.
const FIELDS: [&str; 7] = [
    "id",
    "email",
    "name",
    "role",
    "status",
    "created_at",
    "updated_at",
];

/// `GET /api/v1/users` query. Unknown parameters are refused (400), so a misspelt filter
/// never silently lists everyone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    role: Option<String>,
    sort: Option<String>,
    fields: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Parse `?fields=`: known member names, `id` always included.
fn parse_fields(raw: &str) -> Result<Vec<&'static str>, ApiError> {
    let mut fields = vec!["id"];
    for name in raw.split(',').map(str::trim) {
        let known = FIELDS.iter().find(|f| **f == name).ok_or_else(|| {
            ApiError::invalid_parameter(
                "fields",
                format!("unknown field `{name}`; known: {}", FIELDS.join(",")),
            )
        })?;
        if !fields.contains(known) {
            fields.push(known);
        }
    }
    Ok(fields)
}

fn key_of(sort: UserSort, user: &User) -> (serde_json::Value, Uuid) {
    let value = match sort {
        UserSort::CreatedAt { .. } => {
            serde_json::Value::String(user.created_at.to_rfc3339_opts(SecondsFormat::Micros, true))
        }
        UserSort::Name { .. } => serde_json::Value::String(user.name.clone()),
    };
    (value, user.id)
}

fn decode_cursor(raw: &str, sort: UserSort) -> Result<UserKey, ApiError> {
    let cursor = Cursor::decode(raw, sort.as_str())?;
    let bad = || ApiError::invalid_parameter("cursor", "not a cursor of this listing");
    let value = cursor.value.as_str().ok_or_else(bad)?;
    Ok(match sort {
        UserSort::CreatedAt { .. } => UserKey::CreatedAt(
            DateTime::parse_from_rfc3339(value)
                .map_err(|_| bad())?
                .with_timezone(&Utc),
            cursor.id,
        ),
        UserSort::Name { .. } => UserKey::Name(value.to_string(), cursor.id),
    })
}

/// A user in a listing: with `?fields=`, only the fields asked for (`id` always).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // A schema only: listings are built from `UserView`.
struct SparseUser {
    id: Uuid,
    email: Option<String>,
    name: Option<String>,
    role: Option<Role>,
    status: Option<UserStatus>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/users`: admin only.
#[utoipa::path(
    get, path = "/api/v1/users", operation_id = "list_users", tag = "users",
    security(("bearer" = [])),
    params(
        ("status" = Option<String>, Query, description = "active, deactivated or suspended"),
        ("role" = Option<String>, Query, description = "user or admin"),
        ("sort" = Option<String>, Query, description = "created_at, -created_at (default), name, -name"),
        ("fields" = Option<String>, Query, description = "Comma-separated members to return; id always"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, description = "From the previous page's next_cursor"),
    ),
    responses((status = 200, description = "A page of users", body = crate::http::support::pagination::Page<SparseUser>))
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let params = web::Query::<ListParams>::from_query(req.query_string())
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.to_string()))?
        .into_inner();
    let status = match params.status.as_deref() {
        None => None,
        Some(s) => Some(UserStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_parameter("status", "must be active, deactivated or suspended")
        })?),
    };
    let role = match params.role.as_deref() {
        None => None,
        Some(r) => Some(
            Role::parse(r)
                .ok_or_else(|| ApiError::invalid_parameter("role", "must be user or admin"))?,
        ),
    };
    let sort = match params.sort.as_deref() {
        None => UserSort::CreatedAt { descending: true },
        Some(s) => UserSort::parse(s).ok_or_else(|| {
            ApiError::invalid_parameter("sort", "must be created_at, -created_at, name or -name")
        })?,
    };
    let fields = params.fields.as_deref().map(parse_fields).transpose()?;
    let limit = parse_limit(params.limit.as_deref())? as usize;
    let after = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor(c, sort))
        .transpose()?;
    // One row more than the page tells whether there is a next page.
    let query = UserListQuery {
        status,
        role,
        sort,
        after,
        limit: limit + 1,
    };
    let mut rows = state.svc.list_users(&query).await?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| {
            let (value, id) = key_of(sort, last);
            Cursor {
                sort: sort.as_str().to_string(),
                value,
                id,
            }
            .encode()
        })
    } else {
        None
    };
    let body = match fields {
        None => serde_json::to_vec(&Page {
            data: rows.iter().map(UserView::from).collect(),
            next_cursor,
        }),
        Some(fields) => serde_json::to_vec(&Page {
            data: rows
                .iter()
                .map(|u| sparse(u, &fields))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ApiError::internal())?,
            next_cursor,
        }),
    }
    .map_err(|_| ApiError::internal())?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(body))
}

/// The user with only `fields`.
fn sparse(
    user: &User,
    fields: &[&str],
) -> Result<serde_json::Map<String, serde_json::Value>, serde_json::Error> {
    let serde_json::Value::Object(mut all) = serde_json::to_value(UserView::from(user))? else {
        return Ok(serde_json::Map::new());
    };
    all.retain(|k, _| fields.contains(&k.as_str()));
    Ok(all)
}

/// The new status: active, deactivated or suspended.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    status: String,
}

/// `POST /api/v1/users/{id}/status`: admin only; the transition is checked inside the
/// write (409 `invalid_transition`). Leaving `active` revokes the user's refresh tokens,
/// and the cache invalidation makes the auth middleware refuse the user's access tokens
/// (403 `account_inactive`) from the next request on.
#[utoipa::path(
    post, path = "/api/v1/users/{id}/status", operation_id = "set_user_status", tag = "users",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id")),
    request_body = StatusChange,
    responses((status = 200, description = "Changed", body = crate::domain::user::UserView, headers(("ETag" = String, description = "Strong validator of this representation"))))
)]
pub async fn set_status(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    JsonBody(body): JsonBody<StatusChange>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let id = id.into_inner();
    let mut rules = Rules::default();
    let to = rules.check(
        "status",
        UserStatus::parse(&body.status)
            .ok_or_else(|| Violation::new("one_of", "must be active, deactivated or suspended")),
    );
    rules.finish()?;
    let Some(to) = to else {
        return Err(ApiError::internal());
    };
    let user = state.svc.set_user_status(id, to).await?;
    Ok(user_response(
        HttpResponse::Ok(),
        &CachedUser::from_user(&user),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_always_include_id_and_refuse_unknown_names() {
        assert_eq!(parse_fields("email").unwrap(), ["id", "email"]);
        assert_eq!(parse_fields("email,id,email").unwrap(), ["id", "email"]);
        assert!(parse_fields("password_hash").is_err());
        assert!(parse_fields("").is_err());
    }
}
