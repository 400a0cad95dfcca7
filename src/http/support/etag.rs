//! The conditional headers: strong ETags on responses, `If-None-Match` on GET (304, and
//! [`resource_response`], a single resource's answer), and `If-Match` on PUT/PATCH/DELETE
//! parsed into the domain's [`IfMatch`], which the store checks inside the write.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Serialize;

use crate::domain::precondition::{ETag, IfMatch};

/// The strong ETag of version `v` of a resource, as a header value.
pub fn for_version(v: i64) -> HeaderValue {
    header_value(&ETag::for_version(v))
}

/// An entity tag as a header value, sharing its bytes: no copy, no second check.
pub fn header_value(tag: &ETag) -> HeaderValue {
    // SAFETY: an `ETag` is only ever `"v`, an optional `-`, ASCII digits and `"` (its one
    // constructor, `ETag::for_version`, writes nothing else): every byte is visible ASCII,
    // which is all a header value requires.
    unsafe { HeaderValue::from_maybe_shared_unchecked(tag.bytes().clone()) }
}

fn tags(req: &HttpRequest, name: header::HeaderName) -> Option<Vec<String>> {
    let values: Vec<String> = req
        .headers()
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    (!values.is_empty()).then_some(values)
}

/// Whether `If-None-Match` names `etag` (or `*`): answer 304 Not Modified.
pub fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    let Some(tags) = tags(req, header::IF_NONE_MATCH) else {
        return false;
    };
    tags.iter()
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// The precondition `If-Match` states: [`IfMatch::Absent`] without the header.
pub fn if_match(req: &HttpRequest) -> IfMatch {
    match tags(req, header::IF_MATCH) {
        None => IfMatch::Absent,
        Some(tags) => IfMatch::from_tags(tags.iter().map(String::as_str)),
    }
}

/// A single resource at `version`: 304 when `If-None-Match` names it, else the body.
pub fn resource_response(req: &HttpRequest, version: i64, body: &impl Serialize) -> HttpResponse {
    let tag = ETag::for_version(version);
    let unchanged = not_modified(req, tag.as_str());
    let tag = header_value(&tag);
    if unchanged {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::ETAG, tag))
        .json(body)
}

/// A cached JSON resource: 304 when `If-None-Match` names `tag`, else `body` as it is
/// (the bytes `HttpResponse::json` would have written, with its content type).
pub fn cached_response(req: &HttpRequest, tag: &ETag, body: &Bytes) -> HttpResponse {
    let unchanged = not_modified(req, tag.as_str());
    let value = header_value(tag);
    if unchanged {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, value))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::ETAG, value))
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn etag_header_values_are_the_tags() {
        assert_eq!(for_version(7), "\"v7\"");
        assert_eq!(for_version(-1), "\"v-1\"");
    }

    #[test]
    fn if_none_match() {
        let req = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "\"v1\", W/\"v3\""))
            .to_http_request();
        assert!(not_modified(&req, "\"v1\""));
        assert!(not_modified(&req, "\"v3\""));
        assert!(!not_modified(&req, "\"v2\""));
        let any = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "*"))
            .to_http_request();
        assert!(not_modified(&any, "\"v9\""));
    }

    #[test]
    fn if_match_header() {
        let req = TestRequest::default().to_http_request();
        assert_eq!(if_match(&req), IfMatch::Absent);
        let req = TestRequest::default()
            .insert_header((header::IF_MATCH, "\"v2\""))
            .to_http_request();
        let m = if_match(&req);
        assert!(m.admits(2) && !m.admits(3));
        let req = TestRequest::default()
            .insert_header((header::IF_MATCH, "W/\"v2\""))
            .to_http_request();
        assert!(!if_match(&req).admits(2));
        let req = TestRequest::default()
            .insert_header((header::IF_MATCH, "*"))
            .to_http_request();
        assert_eq!(if_match(&req), IfMatch::Any);
    }
}
