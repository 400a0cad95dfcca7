//! `/api/v1/orders`: placing, reading, listing and cancelling orders.
//!
//! Creation is idempotent per user and `Idempotency-Key` (see `store::orders` and `service::orders`): the key is
//! taken, looked up and completed in the order's own transaction, so a failed creation,
//! whatever the failure, leaves it free. Only successes are stored for replay: a request refused
//! for stock or unknown products leaves no trace, so the client may retry the same key
//! once the cause is gone. Choices where the contract is silent: a non-admin asking for
//! another user's orders (`user_id`) is 403; an unknown `status` filter is 400.

use std::collections::HashMap;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::resource::resource;
use crate::domain::order::{IdempotencyKey, Order, OrderLines, OrderQuery, OrderStatus};
use crate::domain::rule::Violation;
use crate::domain::text::keyset_time;
use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::http::support::caller::Caller;
use crate::http::support::etag::{self, resource_response};
use crate::http::support::extract::JsonBody;
use crate::http::support::integral::Integral;
use crate::http::support::pagination::{page, parse_limit, Cursor};
use crate::http::support::query::only_known;
use crate::http::support::rules::Rules;
use crate::service::Placed;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/v1/orders", "GET, HEAD, POST")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/api/v1/orders/{id}", "GET, HEAD")
            .route(web::get().to(get))
            .route(web::head().to(get)),
    )
    .service(resource("/api/v1/orders/{id}/cancel", "POST").route(web::post().to(cancel)));
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrder {
    items: Vec<ItemBody>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    product_id: String,
    #[schema(value_type = i64)]
    quantity: Integral,
}

impl CreateOrder {
    pub(crate) fn parse(self) -> Result<OrderLines, ApiError> {
        let mut rules = Rules::default();
        let mut raw = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            let id = Uuid::parse_str(&item.product_id).unwrap_or_else(|_| {
                rules.push(
                    &format!("items[{i}].product_id"),
                    Violation::new("format", "must be a UUID"),
                );
                // A unique stand-in, so the other rules (count, quantity) are still
                // checked for this item and no false duplicate arises; with a
                // violation recorded, the request never reaches the store.
                Uuid::new_v4()
            });
            raw.push((id, item.quantity.0));
        }
        let lines = match OrderLines::parse(&raw) {
            Ok(lines) => Some(lines),
            Err(errors) => {
                for (field, v) in errors {
                    rules.push(&field, v);
                }
                None
            }
        };
        rules.finish()?;
        lines.ok_or_else(ApiError::internal)
    }
}

fn idempotency_key(req: &HttpRequest) -> Result<IdempotencyKey, ApiError> {
    let value = req.headers().get(IDEMPOTENCY_KEY).ok_or_else(|| {
        ApiError::new(
            ErrorCode::IdempotencyKeyMissing,
            "POST /orders needs an Idempotency-Key header",
        )
    })?;
    value
        .to_str()
        .ok()
        .and_then(IdempotencyKey::parse)
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "Idempotency-Key",
                "must be 1 to 255 printable ASCII characters",
            )
        })
}

fn order_headers(res: &mut actix_web::HttpResponseBuilder, order_id: &str) {
    res.insert_header((header::LOCATION, format!("/api/v1/orders/{order_id}")))
        .content_type("application/json");
}

#[utoipa::path(
    post, path = "/api/v1/orders", operation_id = "create_order", tag = "orders",
    security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "1-255 printable ASCII characters; a retry with the same key and body replays the first answer")),
    request_body = CreateOrder,
    responses(
        (status = 201, description = "Placed (or replayed, with `Idempotent-Replayed: true`)", body = crate::domain::order::Order,
            headers(("ETag" = String, description = "Strong validator of this representation"), ("Location" = String, description = "The new order"),
                ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
    )
)]
async fn create(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateOrder>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let lines = body.parse()?;
    let (order, body) = match state.svc.place_order(caller.id, key, lines).await? {
        Placed::Created { order, body } => (order, body),
        Placed::Replay { status, body } => return Ok(replay(status, body)),
    };
    let mut res = HttpResponse::Created();
    order_headers(&mut res, &order.id.to_string());
    Ok(res
        .insert_header((header::ETAG, etag::for_version(order.version)))
        .body(body))
}

/// The first response to a key, again, marked as a replay.
fn replay(status: u16, body: Vec<u8>) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::CREATED);
    let mut res = HttpResponse::build(status);
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string));
    if let Some(id) = id {
        order_headers(&mut res, &id);
    }
    res.insert_header((IDEMPOTENT_REPLAYED, HeaderValue::from_static("true")))
        .content_type("application/json")
        .body(body)
}

/// The order `id` if the caller may see it; others' orders are 404, as missing ones.
async fn visible_order(state: &AppState, caller: &Caller, id: Uuid) -> Result<Order, ApiError> {
    state
        .svc
        .order(id)
        .await?
        .filter(|o| caller.may_act_for(o.user_id))
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(
    method(get, head), path = "/api/v1/orders/{id}", operation_id = "get_order", tag = "orders",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id"), ("If-None-Match" = Option<String>, Header, description = "ETags you hold; 304 when one is current")),
    responses(
        (status = 200, description = "The order", body = crate::domain::order::Order, headers(("ETag" = String, description = "Strong validator of this representation"))),
        (status = 304, description = "Not modified", headers(("ETag" = String, description = "Strong validator of this representation"))),
    )
)]
async fn get(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let order = visible_order(&state, &caller, *id).await?;
    Ok(resource_response(&req, order.version, &order))
}

#[utoipa::path(
    post, path = "/api/v1/orders/{id}/cancel", operation_id = "cancel_order", tag = "orders",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id")),
    responses((status = 200, description = "Cancelled", body = crate::domain::order::Order, headers(("ETag" = String, description = "Strong validator of this representation"))))
)]
async fn cancel(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let order = visible_order(&state, &caller, *id).await?;
    let order = state.svc.cancel_order(order.id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag::for_version(order.version)))
        .json(&order))
}

const LIST_PARAMS: &[&str] = &["limit", "cursor", "status", "user_id"];
/// Orders are listed newest first; the cursor's sort name says so.
const ORDER_SORT: &str = "-created_at";

fn list_query(caller: &Caller, params: &HashMap<String, String>) -> Result<OrderQuery, ApiError> {
    only_known(params, LIST_PARAMS)?;
    let limit = parse_limit(params.get("limit").map(String::as_str))?;
    let status = params
        .get("status")
        .map(|s| {
            OrderStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter("status", "must be one of pending, paid, cancelled")
            })
        })
        .transpose()?;
    let requested = params
        .get("user_id")
        .map(|s| {
            Uuid::parse_str(s).map_err(|_| ApiError::invalid_parameter("user_id", "must be a UUID"))
        })
        .transpose()?;
    let user_id = if caller.is_admin() {
        requested
    } else {
        match requested {
            Some(u) if u != caller.id => return Err(ApiError::forbidden()),
            _ => Some(caller.id),
        }
    };
    let before = match params.get("cursor") {
        None => None,
        Some(raw) => {
            let c = Cursor::decode(raw, ORDER_SORT)?;
            let at = keyset_time(&c.value).ok_or_else(|| {
                ApiError::invalid_parameter("cursor", "not a cursor of this listing")
            })?;
            Some((at, c.id))
        }
    };
    Ok(OrderQuery {
        user_id,
        status,
        before,
        limit: limit + 1,
    })
}

#[utoipa::path(
    method(get, head), path = "/api/v1/orders", operation_id = "list_orders", tag = "orders",
    security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, description = "From the previous page's next_cursor"),
        ("status" = Option<String>, Query, description = "pending, paid or cancelled"),
        ("user_id" = Option<uuid::Uuid>, Query, description = "Admins: anyone's; others: their own"),
    ),
    responses((status = 200, description = "A page of orders, newest first", body = crate::http::support::pagination::Page<crate::domain::order::Order>))
)]
async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let query = list_query(&caller, &params)?;
    let limit = query.limit - 1;
    let rows = state.svc.list_orders(query).await?;
    let body = page(
        rows,
        limit,
        |o| (o.created_at, o.id),
        |(at, id)| {
            Cursor {
                sort: ORDER_SORT.to_string(),
                value: serde_json::to_value(at).unwrap_or_default(),
                id,
            }
            .encode()
        },
    );
    Ok(HttpResponse::Ok().json(body))
}
