//! Pieces the product and order handlers share: the admin extractor, rule collection,
//! resource responses with their ETag, and query-string checking.

use std::collections::HashMap;
use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use serde::Serialize;

use super::auth::Caller;
use super::etag;
use crate::domain::precondition::ETag;
use crate::domain::rule::Violation;
use crate::error::{ApiError, FieldError};

/// Extractor: an authenticated admin; 401 anonymous, 403 anyone else. Put it first in a
/// handler's arguments so a non-admin learns nothing from body validation.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("authentication required"));
        ready(caller.and_then(|c| c.require_admin().map(|()| Admin)))
    }
}

/// Every rule a request breaks, answered together in one 422.
#[derive(Default)]
pub struct Rules(Vec<FieldError>);

impl Rules {
    /// Keep the parsed value, or record why `field` is refused.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, Violation>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(v) => {
                self.push(field, v);
                None
            }
        }
    }

    pub fn push(&mut self, field: &str, v: Violation) {
        self.0.push(FieldError::new(field, v.code, v.message));
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

/// A single resource at `version`: 304 when `If-None-Match` names it, else the body.
pub fn resource_response(req: &HttpRequest, version: i64, body: &impl Serialize) -> HttpResponse {
    let tag = ETag::for_version(version);
    let not_modified = etag::not_modified(req, tag.as_str());
    let tag = etag::header_value(&tag);
    if not_modified {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::ETAG, tag))
        .json(body)
}

/// 400 `invalid_parameter` for the first parameter that is not in `known`.
pub fn only_known(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<&String> = params
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    unknown.sort();
    match unknown.first() {
        Some(name) => Err(ApiError::invalid_parameter(
            name,
            format!("unknown parameter; known: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// The response to a list request: `limit + 1` rows were asked for, so an extra row
/// means there is a next page, whose cursor is the last row served.
pub fn page<T: Serialize, C>(
    mut rows: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> C,
    encode: impl Fn(C) -> String,
) -> super::pagination::Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode(cursor_of(r)))
    } else {
        None
    };
    super::pagination::Page {
        data: rows,
        next_cursor,
    }
}
