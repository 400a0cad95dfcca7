//! `GET /api/v1/me/overview`: the backend-for-frontend document. The caller and their
//! most recent orders come from Bulkhead itself; the `[[gateway.overview_parts]]` come
//! from upstreams through their gateway routes, all at once, each under its own deadline.
//! A part that fails or is late is listed in `errors` and the answer is still 200; so is
//! the order list when the database fails (its part name is `orders`).

use std::collections::BTreeMap;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::Value;

use super::gateway::{problem, scheme};
use super::resource::resource;
use crate::domain::order::OrderQuery;
use crate::error::{ApiError, ErrorCode};
use crate::gateway::overview::{PartCaller, PartError};
use crate::http::middleware::request::RequestContext;
use crate::http::state::AppState;
use crate::http::support::caller::Caller;

/// Orders in the overview, newest first.
pub const RECENT_ORDERS: u32 = 5;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/v1/me/overview", "GET").route(web::get().to(overview)));
}

/// A part that is missing from the overview, and why.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PartFailure {
    /// The part's name (`orders` for Bulkhead's own order list).
    part: String,
    /// `upstream_timeout`, `bad_gateway`, `dependency_unavailable` or `overloaded`.
    code: &'static str,
    detail: String,
}

/// The overview document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// The caller, as `GET /api/v1/users/me` shows it.
    #[schema(value_type = Object)]
    user: Value,
    /// Up to 5 most recent orders, newest first.
    #[schema(value_type = Vec<Object>)]
    orders: Vec<Value>,
    /// Each configured part that answered, by name: the upstream's JSON.
    #[schema(value_type = Object)]
    parts: BTreeMap<String, Value>,
    errors: Vec<PartFailure>,
}

fn failure(part: &str, code: ErrorCode, detail: impl Into<String>) -> PartFailure {
    PartFailure {
        part: part.to_string(),
        code: code.as_str(),
        detail: detail.into(),
    }
}

#[utoipa::path(
    get, path = "/api/v1/me/overview", operation_id = "get_overview", tag = "users",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller, their recent orders and the \
        configured upstream parts; a part that failed or was late is listed in `errors` \
        (code `upstream_timeout`, `bad_gateway`, `dependency_unavailable` or `overloaded`) \
        and the answer is still 200", body = Overview))
)]
async fn overview(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user: Value =
        serde_json::from_slice(&caller.user.body).map_err(|_| ApiError::internal())?;
    let (request_id, client_ip) = req
        .extensions()
        .get::<RequestContext>()
        .map(|c| (c.id.to_str().unwrap_or_default().to_string(), c.client_ip))
        .unwrap_or_default();
    let user_id = caller.id.to_string();
    let part_caller = PartCaller {
        user_id: &user_id,
        role: caller.role.as_str(),
        request_id: &request_id,
        client_ip,
        proto: scheme(&req, &state),
    };
    let table = state.gateway.as_ref().map(|g| (g, g.table()));
    let parts = async {
        match &table {
            Some((gateway, table)) => {
                join_all(table.parts.iter().map(|p| async {
                    (
                        p.name.as_str(),
                        gateway.fetch_part(table, p, &part_caller).await,
                    )
                }))
                .await
            }
            None => Vec::new(),
        }
    };
    let query = OrderQuery {
        user_id: Some(caller.id),
        limit: RECENT_ORDERS,
        ..OrderQuery::default()
    };
    let orders = state.svc.list_orders(query);
    let (orders, parts) = tokio::join!(orders, parts);

    let mut doc = Overview {
        user,
        orders: Vec::new(),
        parts: BTreeMap::new(),
        errors: Vec::new(),
    };
    match orders {
        Ok(orders) => {
            doc.orders = orders
                .iter()
                .take(RECENT_ORDERS as usize)
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect();
        }
        Err(e) => doc.errors.push(failure("orders", e.code, e.detail)),
    }
    for (name, result) in parts {
        match result {
            Ok(value) => {
                doc.parts.insert(name.to_string(), value);
            }
            Err(PartError::Gateway(e)) => {
                let p = problem(e);
                doc.errors.push(failure(name, p.code, p.detail));
            }
            Err(PartError::Status(status)) => doc.errors.push(failure(
                name,
                ErrorCode::BadGateway,
                format!("the upstream answered {status}"),
            )),
            Err(PartError::NotJson) => doc.errors.push(failure(
                name,
                ErrorCode::BadGateway,
                "the upstream's answer is not JSON",
            )),
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(doc))
}
