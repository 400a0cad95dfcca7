//! Rendering of [`ApiError`] as RFC 9457 problem+json.
//!
//! Handlers and extractors return [`ApiError`] (the table of codes is `crate::error`); its
//! `error_response` sets the status and the headers the error states (`Retry-After`,
//! `Allow`, `WWW-Authenticate` on 401 `unauthenticated`, `Cache-Control: no-store` on
//! credential failures), marks the response with a [`PendingProblem`], and the outermost
//! middleware (`http::request`) renders the body, because only it knows the request id and
//! the path (`instance`). Framework errors that do not come through here are rendered by
//! the same middleware from their status.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::{ApiError, ErrorCode, FieldError};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The challenge of every 401 `unauthenticated`.
const BEARER_CHALLENGE: &str = "Bearer realm=\"bulkhead\"";

/// The status of `code` as actix-web's type (which is another major version of the `http`
/// crate's `StatusCode`).
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The problem of a response, waiting for the request middleware to render it.
#[derive(Debug, Clone)]
pub struct PendingProblem {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

/// The rendered body (RFC 9457 members plus `code`, `request_id`, `errors`).
#[derive(Serialize)]
pub struct ProblemBody<'a> {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: &'a str,
    pub instance: &'a str,
    pub code: &'static str,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    pub errors: &'a [FieldError],
}

impl PendingProblem {
    pub fn render(&self, instance: &str, request_id: &str) -> Vec<u8> {
        let body = ProblemBody {
            type_: self.code.type_uri(),
            title: self.code.title(),
            status: self.code.status().as_u16(),
            detail: &self.detail,
            instance,
            code: self.code.as_str(),
            request_id,
            errors: &self.errors,
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(status_of(self.code));
        if let Some(secs) = self.retry_after_secs {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        if let Some(allow) = self.allow {
            res.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if self.code == ErrorCode::Unauthenticated {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BEARER_CHALLENGE),
            ));
        }
        res.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if matches!(
            self.code,
            ErrorCode::InvalidCredentials | ErrorCode::RefreshTokenReused
        ) {
            res.insert_header((header::CACHE_CONTROL, "no-store"));
        }
        let mut res = res.finish();
        res.extensions_mut().insert(PendingProblem {
            code: self.code,
            detail: self.detail.clone(),
            errors: self.errors.clone(),
        });
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_an_http_status() {
        for code in ErrorCode::ALL {
            assert_eq!(
                status_of(*code).as_u16(),
                code.status().as_u16(),
                "{code:?}"
            );
        }
    }

    #[test]
    fn headers_the_error_states_are_rendered() {
        let res = ApiError::unauthenticated("x").error_response();
        assert_eq!(
            res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            BEARER_CHALLENGE
        );
        let res = ApiError::overloaded(std::time::Duration::from_millis(1500)).error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "2");
        let res = ApiError::method_not_allowed("GET, HEAD").error_response();
        assert_eq!(res.headers().get(header::ALLOW).unwrap(), "GET, HEAD");
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn rendered_problem_has_every_member() {
        let p = PendingProblem {
            code: ErrorCode::ValidationFailed,
            detail: "bad".into(),
            errors: vec![FieldError::new("email", "format", "not an email")],
        };
        let v: serde_json::Value = serde_json::from_slice(&p.render("/x", "rid")).unwrap();
        for key in [
            "type",
            "title",
            "status",
            "detail",
            "instance",
            "code",
            "request_id",
            "errors",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["status"], 422);
        assert_eq!(v["errors"][0]["field"], "email");
    }
}
