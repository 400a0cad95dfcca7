//! The gateway's HTTP side: requests matching a `[[gateway.routes]]` prefix (tried before
//! the 404 answer) are adapted to `gateway::forward::Outbound`, and the upstream's answer streams
//! back as the response. Authentication and rate limits have already run (the route's
//! prefix is under `/api/`, which both middlewares cover).
//!
//! Choices where the contract is silent: a path with a dot segment (`.`, `..`, or their
//! percent-encodings) or an encoded slash or backslash is 400 `malformed_request`, so no
//! upstream resolves it to a path outside the route; `auth = "none"` forwards no
//! identity, but a token that is sent is still checked (401 when invalid), as on every
//! `/api/` route; the deadline runs until the upstream's response head, and the body
//! then streams for as long as each chunk arrives within the route's timeout.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::config::RouteAuth;
use crate::error::{ApiError, ErrorCode};
use crate::gateway::body::CHANNEL_CHUNKS;
use crate::gateway::forward::{GatewayError, Inbound, Outbound};
use crate::gateway::headers::{self as gw_headers, Identity};
use crate::gateway::{BodyError, Chunk, RequestBody};
use crate::http::middleware::client_ip;
use crate::http::middleware::request::{Passthrough, RequestContext, RouteLabel};
use crate::http::state::AppState;
use crate::http::support::caller::Caller;

/// The gateway's failures as problems.
pub fn problem(e: GatewayError) -> ApiError {
    match e {
        GatewayError::Timeout => ApiError::new(
            ErrorCode::UpstreamTimeout,
            "the upstream did not answer within the route's deadline",
        ),
        GatewayError::BadGateway(detail) => ApiError::new(ErrorCode::BadGateway, detail),
        GatewayError::CircuitOpen { retry_after } => ApiError::dependency_unavailable(retry_after),
        GatewayError::Overloaded { retry_after } => ApiError::overloaded(retry_after),
    }
}

/// `default_service`: a gateway route, or 404.
pub async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(gateway) = state.gateway.as_ref() else {
        return Err(ApiError::not_found());
    };
    let Some(route) = gateway.route_for(req.path()) else {
        return Err(ApiError::not_found());
    };
    req.extensions_mut().insert(RouteLabel(route.label));
    let method = http::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::malformed("unsupported method"))?;
    if !route.allows(&method) {
        return Err(ApiError::method_not_allowed(route.allow));
    }
    if !safe_path(req.path()) {
        return Err(ApiError::malformed(
            "the path holds a dot segment or an encoded slash",
        ));
    }
    let caller = req.extensions().get::<Caller>().cloned();
    let caller = match route.cfg.auth {
        RouteAuth::Required => {
            Some(caller.ok_or_else(|| ApiError::unauthenticated("authentication required"))?)
        }
        RouteAuth::Optional => caller,
        RouteAuth::None => None,
    };
    let (request_id, client_ip) = req
        .extensions()
        .get::<RequestContext>()
        .map(|c| (c.id.to_str().unwrap_or_default().to_string(), c.client_ip))
        .unwrap_or_default();
    let sub = caller.as_ref().map(|c| c.id.to_string());
    let role = caller.as_ref().map(|c| c.role.as_str());
    let token = match (&sub, role) {
        (Some(sub), Some(role)) => Some(
            gateway
                .identity_token(&route, sub, role, &request_id)
                .ok_or_else(ApiError::internal)?,
        ),
        _ => None,
    };
    let proto = scheme(&req, &state);
    let client_headers = to_http1(req.headers());
    let host = client_headers.get(http::header::HOST).cloned();
    let headers = gw_headers::upstream_request(
        &client_headers,
        &gw_headers::Context {
            request_id: &request_id,
            client_ip,
            proto,
            host: host.as_ref(),
            identity: match (&sub, role, &token) {
                (Some(user_id), Some(role), Some(token)) => Some(Identity {
                    user_id,
                    role,
                    token,
                }),
                _ => None,
            },
        },
    );
    let mut path_and_query = route.forwarded_path(req.path()).to_string();
    if !req.query_string().is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(req.query_string());
    }
    let idempotent = matches!(
        method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::OPTIONS
    ) || client_headers.contains_key("idempotency-key");
    let timeout = Duration::from_millis(route.cfg.timeout_ms);
    // The caller the rate-limit middleware runs this handler as: the route's bulkhead
    // queues fairly between callers, as the API's own bulkheads do.
    let caller_key = crate::service::caller::current();
    let head = method == http::Method::HEAD;
    let body = request_body(
        &req,
        payload,
        idempotent,
        route.upstream().retry_buffer_bytes,
        timeout,
    )
    .await?;
    let inbound = gateway
        .forward(
            &route,
            Outbound {
                method,
                path_and_query,
                headers,
                body,
                idempotent,
                timeout,
                caller: caller_key,
            },
        )
        .await
        .map_err(problem)?;
    Ok(response(inbound, head))
}

/// `X-Forwarded-Proto` (of forwarded requests and of the overview's parts): the
/// connection's own scheme, or what a trusted proxy in front says
/// (`client_ip::forwarded_proto`).
pub(super) fn scheme(req: &HttpRequest, state: &AppState) -> &'static str {
    let own = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let trusted = &state.config.server.trusted_proxies[..];
    if trusted.is_empty() {
        return own;
    }
    let lines: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-proto")
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    client_ip::forwarded_proto(req.peer_addr().map(|a| a.ip()), &lines, trusted, own)
}

/// Rejects what an upstream could resolve outside the route: `.`/`..` segments, plain or
/// percent-encoded, and encoded `/` or `\`.
fn safe_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return false;
    }
    lower.split('/').all(|seg| {
        let decoded = seg.replace("%2e", ".");
        decoded != "." && decoded != ".."
    })
}

/// actix's headers (http 0.2) as the client's (http 1): same bytes, other types.
fn to_http1(headers: &header::HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(n, v);
        }
    }
    out
}

/// The request body: none, buffered (a retryable request with a small declared length,
/// so every attempt can send it), or streamed through a bounded channel from this
/// worker to the gateway runtime (first attempt only).
async fn request_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    idempotent: bool,
    buffer_limit: usize,
    timeout: Duration,
) -> Result<RequestBody, ApiError> {
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if !chunked && length.unwrap_or(0) == 0 {
        return Ok(RequestBody::Empty);
    }
    if idempotent && !chunked && length.is_some_and(|n| n <= buffer_limit as u64) {
        let mut buf = bytes::BytesMut::with_capacity(length.unwrap_or(0) as usize);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, payload.next()).await {
                Err(_) => {
                    return Err(ApiError::new(
                        ErrorCode::UpstreamTimeout,
                        "the request body did not arrive within the route's deadline",
                    ))
                }
                Ok(None) => return Ok(RequestBody::Buffered(buf.freeze())),
                Ok(Some(Err(e))) => {
                    return Err(ApiError::malformed(format!("reading the body failed: {e}")))
                }
                Ok(Some(Ok(chunk))) => {
                    if buf.len() + chunk.len() > buffer_limit {
                        return Err(ApiError::malformed("the body is longer than declared"));
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
    }
    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
    // The payload is `!Send`: it is read here, on this worker, and handed over.
    actix_web::rt::spawn(async move {
        loop {
            let next = match tokio::time::timeout(timeout, payload.next()).await {
                Ok(Some(Ok(chunk))) => Ok(chunk),
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => Err(BodyError::Client),
            };
            let failed = next.is_err();
            match tokio::time::timeout(timeout, tx.send(next)).await {
                Ok(Ok(())) if !failed => {}
                _ => break, // sent the error, the upstream stopped reading, or stalled
            }
        }
    });
    Ok(RequestBody::Streamed(rx))
}

/// Whether an answer with this status, or to this request, carries no body (RFC 9110
/// 6.4.1: 1xx, 204, 304, and any answer to HEAD).
fn bodiless(status: StatusCode, head: bool) -> bool {
    head || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The upstream's answer as the response, its body streaming.
///
/// A bodiless answer gets no body at all: actix-http writes a 304's head without
/// `Transfer-Encoding` but still frames a streamed body, so the chunked terminator would
/// follow the 304 and the client would read it as the next response. For HEAD the
/// upstream's declared length is kept as `Content-Length`.
fn response(inbound: Inbound, head: bool) -> HttpResponse {
    let status = StatusCode::from_u16(inbound.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = HttpResponse::build(status);
    let headers = gw_headers::client_response(&inbound.headers);
    for (name, value) in &headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            res.append_header((n, v));
        }
    }
    let mut res = if bodiless(status, head) {
        // Dropping the receiver ends the pump (and frees the bulkhead slot) at once.
        let declared = inbound.len.filter(|_| head);
        let mut res = res.body(NoBody(if declared.is_some() {
            BodySize::Stream
        } else {
            BodySize::None
        }));
        if let Some(n) = declared {
            // HEAD keeps the upstream's length as a plain header over an unframed,
            // empty body: a `Sized(n)` body would be framed as `n` bytes whenever
            // actix-http has already decoded a pipelined request after the HEAD (its
            // HEAD flag follows the last request decoded), and the connection would fail.
            res.head_mut().no_chunking(true);
            res.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        res
    } else {
        res.body(UpstreamBody {
            len: inbound.len,
            rx: inbound.body,
        })
    };
    res.extensions_mut().insert(Passthrough);
    res
}

/// The response body: chunks from the gateway runtime, with the upstream's declared
/// length when it gave one.
struct UpstreamBody {
    len: Option<u64>,
    rx: mpsc::Receiver<Chunk>,
}

impl MessageBody for UpstreamBody {
    type Error = BodyError;

    fn size(&self) -> BodySize {
        self.len.map_or(BodySize::Stream, BodySize::Sized)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyError>>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

/// No body: `None` for 1xx, 204 and 304, so actix-http frames nothing after the head;
/// an unframed stream (`Stream` with chunking off) for HEAD, so a `Content-Length` header
/// can say the upstream's length.
struct NoBody(BodySize);

impl MessageBody for NoBody {
    type Error = BodyError;

    fn size(&self) -> BodySize {
        self.0
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyError>>> {
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use super::safe_path;

    #[test]
    fn dot_segments_and_encoded_slashes_are_refused() {
        assert!(safe_path("/api/v1/reviews/a.b/c..d"));
        for bad in [
            "/api/v1/reviews/../users",
            "/api/v1/reviews/./x",
            "/api/v1/reviews/%2e%2E/x",
            "/api/v1/reviews/.%2e",
            "/api/v1/reviews/a%2Fb",
            "/api/v1/reviews/a%5cb",
        ] {
            assert!(!safe_path(bad), "{bad}");
        }
    }
}
