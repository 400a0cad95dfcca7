//! The outermost middleware: request id, the request's log span, problem rendering and
//! the access log (`crate::access_log`).
//!
//! - `X-Request-Id`: a valid inbound value (1..=128 of `A-Za-z0-9._-`) is kept, otherwise
//!   one is generated; it is on every response and in the span every log line of the
//!   request is written in.
//! - Problems: every error response becomes RFC 9457 problem+json here, because only here
//!   are the request id and the path (`instance`) known. Errors of our own carry a
//!   [`PendingProblem`]; framework errors (extractor failures, unmatched routes) are mapped
//!   from their status.

use std::net::IpAddr;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use tracing::Instrument;

use super::client_ip;
use crate::error::ErrorCode;
use crate::http::state::AppState;
use crate::http::support::caller::Caller;
use crate::http::support::problem::{PendingProblem, PROBLEM_JSON};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Facts about the request every later layer may need.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id, ready for the response header (cloning it copies no bytes).
    pub id: HeaderValue,
    pub client_ip: Option<IpAddr>,
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A fresh id: a v4 UUID in 32 hex digits, written straight into the header value.
fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
    let hex = uuid::Uuid::new_v4().simple().encode_lower(&mut buf);
    HeaderValue::from_str(hex).expect("hex digits are a valid header value")
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let start = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| valid_request_id(v))
        .cloned()
        .unwrap_or_else(new_request_id);
    // Checked above (inbound) or hex (generated): always ASCII.
    let id_str = id.to_str().unwrap_or_default();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let client_ip = {
        let peer = req.peer_addr().map(|a| a.ip());
        let trusted = state
            .as_ref()
            .map_or(&[][..], |s| &s.config.server.trusted_proxies[..]);
        // Only read behind a trusted proxy; by name, not by a string parsed per request.
        // Every line, in order: a proxy may append its own line rather than extend one.
        let xff: Vec<&str> = if trusted.is_empty() {
            Vec::new()
        } else {
            req.headers()
                .get_all(&X_FORWARDED_FOR)
                .map(|v| v.to_str().unwrap_or(""))
                .collect()
        };
        client_ip::resolve(peer, &xff, trusted)
    };
    req.extensions_mut().insert(RequestContext {
        id: id.clone(),
        client_ip,
    });
    // At ERROR level so that it is enabled whenever any line is: with `log.level = "warn"`
    // an info span would be filtered out and the request's warnings would lose its id.
    let span = tracing::error_span!("request", request_id = %id_str);
    let _in_flight = InFlight::enter();
    let method = req.method().clone();

    // Inner layers answer errors as responses (handlers and extractors do so by
    // construction; our middlewares never return `Err`). An `Err` here has lost its
    // request, so it can only be passed on for actix to answer.
    let res = next.call(req).instrument(span.clone()).await.inspect_err(|e| {
        tracing::error!(parent: &span, error = %e, "a layer returned an error instead of a response");
    })?;
    let mut res = render_problem(res.map_into_boxed_body(), id_str);
    res.headers_mut().insert(REQUEST_ID, id.clone());

    let elapsed = start.elapsed();
    let http_req = res.request();
    // A gateway route is not an actix resource: its handler labels the request.
    let route = http_req.app_data::<RouteLabel>().map_or_else(
        || {
            http_req
                .extensions()
                .get::<RouteLabel>()
                .map_or("unmatched", |r| r.0)
        },
        |r| r.0,
    );
    let status = res.status().as_u16();
    record_metrics(&method, route, status, elapsed);
    if crate::access_log::enabled() {
        crate::access_log::write(&crate::access_log::Entry {
            method: method.as_str(),
            route,
            status,
            elapsed,
            client_ip,
            user_id: http_req.extensions().get::<Caller>().map(|c| c.id),
            request_id: id_str,
        });
    }
    Ok(res)
}

/// Marks a response that is an upstream's own (through the gateway): the problem
/// renderer leaves its status and body alone, whatever the status.
#[derive(Debug, Clone, Copy)]
pub struct Passthrough;

/// The route template of a resource (set by `routes::resource::resource`): a bounded metric label.
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

/// Counts a request in `bulkhead_http_requests_in_flight` for as long as it lives,
/// however it ends.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn enter() -> Self {
        static GAUGE: std::sync::OnceLock<metrics::Gauge> = std::sync::OnceLock::new();
        let gauge = GAUGE
            .get_or_init(|| metrics::gauge!("bulkhead_http_requests_in_flight"))
            .clone();
        gauge.increment(1.0);
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

type RouteMetrics = (metrics::Counter, metrics::Histogram);

thread_local! {
    /// Metric handles per (route template, method, status class), resolved once per
    /// worker thread: the registry lookup hashes labels and allocates, which the hot
    /// path should not pay on every request. Bounded: routes x methods x classes.
    static ROUTE_METRICS: std::cell::RefCell<
        std::collections::HashMap<
            (&'static str, &'static str, &'static str),
            RouteMetrics,
            foldhash::fast::RandomState,
        >,
    > = std::cell::RefCell::new(std::collections::HashMap::default());

    /// `bulkhead_http_server_errors_total` handles per (route template, status code),
    /// likewise once per worker. Bounded: routes x the 5xx codes answered.
    static SERVER_ERRORS: std::cell::RefCell<
        std::collections::HashMap<(&'static str, u16), metrics::Counter, foldhash::fast::RandomState>,
    > = std::cell::RefCell::new(std::collections::HashMap::default());
}

fn record_metrics(
    method: &actix_web::http::Method,
    route: &'static str,
    status: u16,
    elapsed: std::time::Duration,
) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let method = method_label(method);
    ROUTE_METRICS.with(|cell| {
        let mut map = cell.borrow_mut();
        let (count, duration) = map.entry((route, method, class)).or_insert_with(|| {
            (
                metrics::counter!(
                    "bulkhead_http_requests_total",
                    "method" => method,
                    "route" => route,
                    "status" => class
                ),
                metrics::histogram!(
                    "bulkhead_http_request_duration_seconds",
                    "method" => method,
                    "route" => route,
                    "status" => class
                ),
            )
        });
        count.increment(1);
        duration.record(elapsed.as_secs_f64());
    });
    if status >= 500 {
        // The class says "5xx"; this says which: a 503 sheds load as the contract allows,
        // a 500 is a fault.
        SERVER_ERRORS.with(|cell| {
            cell.borrow_mut()
                .entry((route, status))
                .or_insert_with(|| {
                    metrics::counter!(
                        "bulkhead_http_server_errors_total",
                        "route" => route,
                        "code" => status.to_string()
                    )
                })
                .increment(1);
        });
    }
}

/// Methods outside the standard set share one label value, keeping the label bounded.
fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Give every error response its problem+json body.
fn render_problem(mut res: ServiceResponse<BoxBody>, request_id: &str) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.response().extensions().contains::<Passthrough>()
    {
        return res;
    }
    let pending = res
        .response_mut()
        .extensions_mut()
        .remove::<PendingProblem>();
    // Framework errors answer text/plain or nothing; a handler that chose another body
    // for an error status (`/ready`'s 503 report) keeps it.
    let framework_error = res.headers().get(header::CONTENT_TYPE).is_none_or(|v| {
        v.to_str().is_ok_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        })
    });
    if pending.is_none() && !framework_error {
        return res;
    }
    let (http_req, response) = res.into_parts();
    let (mut response, body) = response.into_parts();
    let problem = pending.unwrap_or_else(|| {
        // A framework error: its body is its Display text; keep it as the detail.
        let code = ErrorCode::from_status(status.as_u16());
        let detail = body
            .try_into_bytes()
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .filter(|s| !s.is_empty() && s.len() <= 512)
            .unwrap_or_else(|| code.title().to_string());
        if code == ErrorCode::Internal {
            tracing::error!(status = status.as_u16(), %detail, "unhandled error");
        }
        PendingProblem {
            code,
            detail,
            errors: Vec::new(),
        }
    });
    if status.is_server_error() && problem.code == ErrorCode::Internal {
        tracing::error!(detail = %problem.detail, "internal error");
    }
    let body = problem.render(http_req.path(), request_id);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    let response = response.set_body(BoxBody::new(body));
    ServiceResponse::new(http_req, response)
}
