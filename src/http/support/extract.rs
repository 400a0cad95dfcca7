//! Request extractors that answer the contract's codes exactly.
//!
//! [`JsonBody`] reads a JSON object body: 415 unless the media type is `application/json`
//! (PATCH also takes `application/merge-patch+json`), 413 past `server.max_body_bytes`,
//! 400 `malformed_request` when it is not a JSON object or does not fit the request type
//! (missing field, wrong JSON type, unknown field: named in `errors`). Value rules (422)
//! are the domain parsers' business, after this.

use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode, FieldError};
use crate::http::state::AppState;

/// A JSON object body deserialized into `T` (which should `deny_unknown_fields`).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(64 * 1024, |s| s.config.server.max_body_bytes);
        let media_ok = media_type_ok(req);
        let declared_len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !media_ok {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the body must be application/json",
                ));
            }
            if declared_len.is_some_and(|n| n > limit) {
                return Err(too_large(limit));
            }
            let mut body = web::BytesMut::with_capacity(declared_len.unwrap_or(0).min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::malformed(format!("reading body: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            parse_object(&body).map(JsonBody)
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body is larger than {limit} bytes"),
    )
}

fn media_type_ok(req: &HttpRequest) -> bool {
    let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (req.method() == Method::PATCH
            && essence.eq_ignore_ascii_case("application/merge-patch+json"))
}

/// Parse a body that must be one JSON object into `T`, naming the field at fault.
pub fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Check it is JSON at all, to say which of the two it is.
        let detail = if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
            "the body must be a JSON object"
        } else {
            "the body is not valid JSON"
        };
        return Err(ApiError::malformed(detail));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::malformed(format!("the body is not valid JSON: {inner}"));
        }
        let message = strip_position(&inner.to_string());
        let (field, code) = classify(&path, &message);
        ApiError::malformed(format!("the body does not fit this request: {message}"))
            .with_errors(vec![FieldError::new(field, code, message)])
    })
}

/// serde_json appends " at line L column C", which says nothing useful to an API client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// serde reports a missing or unknown field at its parent's path; name the field itself.
fn classify(path: &str, message: &str) -> (String, &'static str) {
    let join = |name: &str| {
        if path.is_empty() || path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = backticked(message, "missing field `") {
        return (join(name), "required");
    }
    if let Some(name) = backticked(message, "unknown field `") {
        let field = if path.ends_with(name) {
            path.to_string()
        } else {
            join(name)
        };
        return (field, "unknown_field");
    }
    let field = if path == "." {
        String::new()
    } else {
        path.to_string()
    };
    (field, "invalid_type")
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// Query-string errors are 400 `invalid_parameter`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::new(ErrorCode::InvalidParameter, err.to_string()).into()
    })
}

/// Path segments that do not parse (an id that is not a UUID) name nothing that exists.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err, _req| ApiError::not_found().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        email: String,
        count: i64,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        x: u32,
    }

    fn err(body: &str) -> ApiError {
        parse_object::<Req>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn structure_errors_name_the_field() {
        let e = err(r#"{"count": 1}"#);
        assert_eq!(e.code, ErrorCode::MalformedRequest);
        assert_eq!(e.errors[0].field, "email");
        assert_eq!(e.errors[0].code, "required");

        let e = err(r#"{"email": "a", "count": "x"}"#);
        assert_eq!(e.errors[0].field, "count");
        assert_eq!(e.errors[0].code, "invalid_type");

        let e = err(r#"{"email": "a", "count": 1, "role": "admin"}"#);
        assert_eq!(e.errors[0].field, "role");
        assert_eq!(e.errors[0].code, "unknown_field");

        let e = err(r#"{"email": "a", "count": 1, "inner": {"y": 1}}"#);
        assert_eq!(e.errors[0].field, "inner.y");
    }

    #[test]
    fn non_objects_and_non_json_are_malformed() {
        assert!(err("[1,2]").detail.contains("JSON object"));
        assert!(err("\"x\"").detail.contains("JSON object"));
        assert!(err("{nope").detail.contains("not valid JSON"));
        assert!(err("").detail.contains("not valid JSON"));
    }
}
