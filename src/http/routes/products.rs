//! `/api/v1/products`: the catalogue. Reading is open to anonymous callers; writing is
//! for admins.
//!
//! PATCH is a JSON merge patch (RFC 7396): an absent member is left as it is; `null`
//! removes a member, which for `description` means the empty default and for every other
//! (required) field is refused with 422 `required`.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::resource::resource;
use crate::domain::product::{
    Currency, Description, NewProduct, PriceCents, Product, ProductChanges, ProductName,
    ProductQuery, ProductSort, ProductSortKey, Sku, SortValue, Stock,
};
use crate::domain::rule::Violation;
use crate::domain::text::{check_storable, keyset_text, keyset_time};
use crate::error::ApiError;
use crate::http::middleware::compress::{mark_gzipped, negotiates_gzip};
use crate::http::state::AppState;
use crate::http::support::caller::Admin;
use crate::http::support::etag;
use crate::http::support::extract::JsonBody;
use crate::http::support::integral::Integral;
use crate::http::support::pagination::{page, parse_limit, Cursor};
use crate::http::support::query::only_known;
use crate::http::support::rules::Rules;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/v1/products", "GET, HEAD, POST")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/api/v1/products/{id}", "GET, HEAD, PUT, PATCH, DELETE")
            .route(web::get().to(get))
            .route(web::head().to(get))
            .route(web::put().to(replace))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    );
}

/// POST and PUT: every field; `description` may be left out (empty).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductBody {
    sku: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[schema(value_type = i64)]
    price_cents: Integral,
    currency: String,
    #[schema(value_type = i64)]
    stock: Integral,
}

impl ProductBody {
    pub(crate) fn parse(self) -> Result<NewProduct, ApiError> {
        let mut rules = Rules::default();
        let sku = rules.check("sku", Sku::parse(&self.sku));
        let name = rules.check("name", ProductName::parse(&self.name));
        let description = rules.check(
            "description",
            self.description
                .as_deref()
                .map_or(Ok(Description::default()), Description::parse),
        );
        let price_cents = rules.check("price_cents", PriceCents::parse(self.price_cents.0));
        let currency = rules.check("currency", Currency::parse(&self.currency));
        let stock = rules.check("stock", Stock::parse(self.stock.0));
        rules.finish()?;
        match (sku, name, description, price_cents, currency, stock) {
            (
                Some(sku),
                Some(name),
                Some(description),
                Some(price_cents),
                Some(currency),
                Some(stock),
            ) => Ok(NewProduct {
                sku,
                name,
                description,
                price_cents,
                currency,
                stock,
            }),
            _ => Err(ApiError::internal()),
        }
    }
}

/// A member that may be absent (`None`), `null` (`Some(None)`) or a value.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON merge patch of a product: absent members stay, `null` removes (422 for the
/// required ones).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    sku: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    price_cents: Option<Option<Integral>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    currency: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    stock: Option<Option<Integral>>,
}

/// A required member of a merge patch: absent is no change, `null` is refused.
fn required<T, U>(
    rules: &mut Rules,
    field: &str,
    member: Option<Option<T>>,
    parse: impl FnOnce(T) -> Result<U, Violation>,
) -> Option<U> {
    match member? {
        Some(v) => rules.check(field, parse(v)),
        None => {
            rules.push(
                field,
                Violation::new("required", "may not be removed (null)"),
            );
            None
        }
    }
}

impl PatchBody {
    pub(crate) fn parse(self) -> Result<ProductChanges, ApiError> {
        let mut rules = Rules::default();
        let changes = ProductChanges {
            sku: required(&mut rules, "sku", self.sku, |v| Sku::parse(&v)),
            name: required(&mut rules, "name", self.name, |v| ProductName::parse(&v)),
            description: match self.description {
                None => None,
                Some(None) => Some(Description::default()),
                Some(Some(v)) => rules.check("description", Description::parse(&v)),
            },
            price_cents: required(&mut rules, "price_cents", self.price_cents, |n| {
                PriceCents::parse(n.0)
            }),
            currency: required(&mut rules, "currency", self.currency, |v| {
                Currency::parse(&v)
            }),
            stock: required(&mut rules, "stock", self.stock, |n| Stock::parse(n.0)),
        };
        rules.finish()?;
        Ok(changes)
    }
}

fn created(product: &Product) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/products/{}", product.id)))
        .insert_header((header::ETAG, etag::for_version(product.version)))
        .json(product)
}

fn written(product: &Product) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, etag::for_version(product.version)))
        .json(product)
}

#[utoipa::path(
    post, path = "/api/v1/products", operation_id = "create_product", tag = "products",
    security(("bearer" = [])),
    request_body = ProductBody,
    responses((status = 201, description = "Created", body = crate::domain::product::Product,
        headers(("ETag" = String, description = "Strong validator of this representation"), ("Location" = String, description = "The new product"))))
)]
async fn create(
    _admin: Admin,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<ProductBody>,
) -> Result<HttpResponse, ApiError> {
    let new = body.parse()?;
    let product = state.svc.create_product(new).await?;
    Ok(created(&product))
}

#[utoipa::path(
    method(get, head), path = "/api/v1/products/{id}", operation_id = "get_product", tag = "products",
    security((), ("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id"), ("If-None-Match" = Option<String>, Header, description = "ETags you hold; 304 when one is current")),
    responses(
        (status = 200, description = "The product", body = crate::domain::product::Product, headers(("ETag" = String, description = "Strong validator of this representation"))),
        (status = 304, description = "Not modified", headers(("ETag" = String, description = "Strong validator of this representation"))),
    )
)]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let product = state
        .svc
        .product_view(*id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(etag::cached_response(&req, &product.etag, &product.body))
}

#[utoipa::path(
    put, path = "/api/v1/products/{id}", operation_id = "replace_product", tag = "products",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id"), ("If-Match" = Option<String>, Header, description = "Write only if the current ETag is one of these (or `*`); 412 otherwise")),
    request_body = ProductBody,
    responses((status = 200, description = "Replaced", body = crate::domain::product::Product, headers(("ETag" = String, description = "Strong validator of this representation"))))
)]
async fn replace(
    _admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    JsonBody(body): JsonBody<ProductBody>,
) -> Result<HttpResponse, ApiError> {
    let changes = ProductChanges::from(body.parse()?);
    let if_match = etag::if_match(&req);
    let product = state.svc.update_product(*id, changes, &if_match).await?;
    Ok(written(&product))
}

#[utoipa::path(
    patch, path = "/api/v1/products/{id}", operation_id = "update_product", tag = "products",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id"), ("If-Match" = Option<String>, Header, description = "Write only if the current ETag is one of these (or `*`); 412 otherwise")),
    request_body(content(
        (PatchBody = "application/merge-patch+json"),
        (PatchBody = "application/json"),
    )),
    responses((status = 200, description = "Changed", body = crate::domain::product::Product, headers(("ETag" = String, description = "Strong validator of this representation"))))
)]
async fn patch(
    _admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<HttpResponse, ApiError> {
    let changes = body.parse()?;
    let if_match = etag::if_match(&req);
    let product = state.svc.update_product(*id, changes, &if_match).await?;
    Ok(written(&product))
}

#[utoipa::path(
    delete, path = "/api/v1/products/{id}", operation_id = "delete_product", tag = "products",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The id"), ("If-Match" = Option<String>, Header, description = "Write only if the current ETag is one of these (or `*`); 412 otherwise")),
    responses((status = 204, description = "Deleted"))
)]
async fn delete(
    _admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let if_match = etag::if_match(&req);
    state.svc.delete_product(*id, &if_match).await?;
    Ok(HttpResponse::NoContent().finish())
}

const LIST_PARAMS: &[&str] = &[
    "limit",
    "cursor",
    "sort",
    "min_price_cents",
    "max_price_cents",
    "q",
];

/// Longest `q` worth searching for: a longer one cannot be a substring of a name.
const MAX_Q_CHARS: usize = 200;

fn price_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err(ApiError::invalid_parameter(name, "must be an integer >= 0")),
        })
        .transpose()
}

/// The keyset position a cursor names, as a value of the sort's key.
fn cursor_position(cursor: Cursor, key: ProductSortKey) -> Result<(SortValue, Uuid), ApiError> {
    let bad = || ApiError::invalid_parameter("cursor", "not a cursor of this listing");
    let value = match key {
        ProductSortKey::CreatedAt => SortValue::Time(keyset_time(&cursor.value).ok_or_else(bad)?),
        ProductSortKey::PriceCents => SortValue::Int(cursor.value.as_i64().ok_or_else(bad)?),
        ProductSortKey::Name => SortValue::Text(keyset_text(&cursor.value).ok_or_else(bad)?),
    };
    Ok((value, cursor.id))
}

fn cursor_value(v: SortValue) -> serde_json::Value {
    match v {
        SortValue::Time(t) => serde_json::to_value(t).unwrap_or_default(),
        SortValue::Int(n) => n.into(),
        SortValue::Text(s) => s.into(),
    }
}

pub(crate) fn list_query(params: &HashMap<String, String>) -> Result<ProductQuery, ApiError> {
    only_known(params, LIST_PARAMS)?;
    let limit = parse_limit(params.get("limit").map(String::as_str))?;
    let sort = match params.get("sort") {
        None => ProductSort::default(),
        Some(s) => ProductSort::parse(s).ok_or_else(|| {
            ApiError::invalid_parameter(
                "sort",
                "must be one of created_at, -created_at, price_cents, -price_cents, name, -name",
            )
        })?,
    };
    let after = params
        .get("cursor")
        .map(|raw| cursor_position(Cursor::decode(raw, sort.as_str())?, sort.key))
        .transpose()?;
    let q = params.get("q").filter(|q| !q.is_empty()).cloned();
    if q.as_ref().is_some_and(|q| q.chars().count() > MAX_Q_CHARS) {
        return Err(ApiError::invalid_parameter(
            "q",
            "must be at most 200 characters",
        ));
    }
    if let Some(Err(rule)) = q.as_deref().map(check_storable) {
        return Err(ApiError::invalid_parameter("q", rule.message));
    }
    Ok(ProductQuery {
        min_price_cents: price_param(params, "min_price_cents")?,
        max_price_cents: price_param(params, "max_price_cents")?,
        q,
        sort,
        after,
        // One more than a page, to learn whether there is a next page.
        limit: limit + 1,
    })
}

#[utoipa::path(
    method(get, head), path = "/api/v1/products", operation_id = "list_products", tag = "products",
    security((), ("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, description = "From the previous page's next_cursor"),
        ("sort" = Option<String>, Query, description = "created_at, -created_at (default), price_cents, -price_cents, name, -name"),
        ("min_price_cents" = Option<i64>, Query, minimum = 0),
        ("max_price_cents" = Option<i64>, Query, minimum = 0),
        ("q" = Option<String>, Query, max_length = 200, description = "Substring of the name"),
    ),
    responses((status = 200, description = "A page of products", body = crate::http::support::pagination::Page<crate::domain::product::Product>))
)]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let query = list_query(&params)?;
    let (limit, sort) = (query.limit - 1, query.sort);
    let render = |rows: Vec<Product>| {
        let body = page(
            rows,
            limit,
            |p| (p.sort_value(sort.key), p.id),
            |(value, id)| {
                Cursor {
                    sort: sort.as_str().to_string(),
                    value: cursor_value(value),
                    id,
                }
                .encode()
            },
        );
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    };
    // Cached by the query string as sent: spellings of one query are separate entries,
    // all dropped together by any product change.
    let page = state
        .svc
        .product_page(req.query_string(), query, render)
        .await?;
    // A client that accepts gzip gets the page's own gzipped copy (made once per page),
    // which `Compress` passes on: what it would have sent, without gzipping it again.
    let gzipped =
        if page.body.len() >= state.config.server.compress_min_bytes && negotiates_gzip(&req) {
            page.gzip()
        } else {
            None
        };
    let mut res = HttpResponse::Ok();
    res.insert_header((
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    ));
    let Some(gzip) = gzipped else {
        return Ok(res.body(page.body.clone()));
    };
    let mut res = res.body(gzip);
    mark_gzipped(res.headers_mut());
    Ok(res)
}
