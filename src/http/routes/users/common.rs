//! What the user routes share: answering with a user's cached representation.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::http::support::etag::{self, not_modified};
use crate::service::CachedUser;

/// A user answer: the cached body as ready bytes, with its strong ETag.
pub fn user_response(mut res: HttpResponseBuilder, user: &CachedUser) -> HttpResponse {
    res.insert_header((header::ETAG, etag::header_value(&user.etag)))
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(user.body.clone())
}

/// 200 with the body, or 304 when `If-None-Match` names the current ETag.
pub fn serve(req: &HttpRequest, user: &CachedUser) -> HttpResponse {
    if not_modified(req, user.etag.as_str()) {
        HttpResponse::NotModified()
            .insert_header((header::ETAG, etag::header_value(&user.etag)))
            .finish()
    } else {
        user_response(HttpResponse::Ok(), user)
    }
}
