//! One request through a route: admission, attempts, retries, and the response streamed
//! back.
//!
//! Order, and why: the route's bulkhead admits first (a full bulkhead is 503
//! `overloaded` and costs the upstream nothing); then each attempt picks an upstream URL
//! (round robin, ejected ones skipped), asks the circuit (open: 503
//! `dependency_unavailable` on the first attempt, the previous failure on a retry), and
//! runs under what is left of the route's deadline (`X-Request-Deadline-Ms` tells the
//! upstream). A failed attempt is retried only when all of these hold: the request is
//! safe to replay (GET, HEAD, PUT, DELETE, OPTIONS or `Idempotency-Key`, and its body
//! was buffered), the failure is a connection error, reset or 502/503/504, retries are
//! left, the budget grants one, and the full-jitter backoff ends before the deadline.
//! The last failure is the answer: the upstream's own 5xx response, or 502/504.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_actors::{ActorError, Outcome};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::body::{BodyError, Chunk, RequestBody, CHANNEL_CHUNKS};
use super::headers::X_REQUEST_DEADLINE_MS;
use super::runtime::HttpClient;
use super::{Gateway, Route};

/// A request to send through a route.
pub struct Outbound {
    pub method: Method,
    /// Path (already stripped if the route says so) and query, e.g. `/v1/x?a=1`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: RequestBody,
    /// The method (or an `Idempotency-Key`) makes a replay safe.
    pub idempotent: bool,
    /// The whole call's deadline (`timeout_ms` of the route, or a part's own).
    pub timeout: Duration,
    /// Who the call is for (`service::caller`): the route's bulkhead queues fairly
    /// between callers.
    pub caller: u64,
}

/// The upstream's answer, its body streaming in.
pub struct Inbound {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body's length when the upstream declared it.
    pub len: Option<u64>,
    pub body: mpsc::Receiver<Chunk>,
}

impl Inbound {
    /// Reads the whole body, at most `limit` bytes, within `deadline`.
    pub async fn collect(mut self, limit: usize, deadline: Instant) -> Result<Bytes, GatewayError> {
        let mut buf = bytes::BytesMut::new();
        loop {
            match tokio::time::timeout_at(deadline, self.body.recv()).await {
                Err(_) => return Err(GatewayError::Timeout),
                Ok(None) => return Ok(buf.freeze()),
                Ok(Some(Err(e))) => return Err(GatewayError::BadGateway(e.to_string())),
                Ok(Some(Ok(chunk))) => {
                    if buf.len() + chunk.len() > limit {
                        return Err(GatewayError::BadGateway(format!(
                            "the upstream's answer is over {limit} bytes"
                        )));
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// Why no upstream answer is passed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// 504 `upstream_timeout`: the deadline passed.
    Timeout,
    /// 502 `bad_gateway`: connection refused or reset, or an invalid answer.
    BadGateway(String),
    /// 503 `dependency_unavailable`: the route's circuit is open.
    CircuitOpen { retry_after: Duration },
    /// 503 `overloaded`: the route's bulkhead is full.
    Overloaded { retry_after: Duration },
}

impl From<ActorError> for GatewayError {
    fn from(e: ActorError) -> Self {
        match e {
            ActorError::CircuitOpen { retry_after } => Self::CircuitOpen { retry_after },
            other => Self::Overloaded {
                retry_after: other.retry_after().unwrap_or(Duration::from_secs(1)),
            },
        }
    }
}

/// A failed attempt, kept as the answer if no retry follows.
enum Failed {
    Response(hyper::Response<Incoming>),
    Error(GatewayError),
}

impl Gateway {
    /// Sends `out` through `route` on the gateway runtime. Dropping the returned future
    /// (the client went away) aborts the call.
    pub async fn forward(
        &self,
        route: &Arc<Route>,
        out: Outbound,
    ) -> Result<Inbound, GatewayError> {
        let client = self.client.clone();
        let route = route.clone();
        let deadline = Instant::now() + out.timeout;
        self.runtime
            .run(call(client, route, out, deadline))
            .await
            .unwrap_or_else(|| {
                Err(GatewayError::BadGateway(
                    "the upstream call was lost".into(),
                ))
            })
    }
}

async fn call(
    client: HttpClient,
    route: Arc<Route>,
    mut out: Outbound,
    deadline: Instant,
) -> Result<Inbound, GatewayError> {
    let m = &route.meters;
    let result = attempts(&client, &route, &mut out, deadline).await;
    match &result {
        Ok(_) => m.outcome_response.increment(1),
        Err(GatewayError::Timeout) => m.outcome_timeout.increment(1),
        Err(GatewayError::BadGateway(_)) => m.outcome_bad_gateway.increment(1),
        Err(GatewayError::CircuitOpen { .. }) => m.outcome_circuit_open.increment(1),
        Err(GatewayError::Overloaded { .. }) => m.outcome_overloaded.increment(1),
    }
    result
}

async fn attempts(
    client: &HttpClient,
    route: &Arc<Route>,
    out: &mut Outbound,
    deadline: Instant,
) -> Result<Inbound, GatewayError> {
    let m = &route.meters;
    let slot = match tokio::time::timeout_at(deadline, route.bulkhead.acquire_as(out.caller)).await
    {
        Ok(slot) => slot?,
        Err(_) => return Err(GatewayError::Timeout),
    };
    route.budget.record_request();
    let replayable = out.idempotent && out.body.replayable();
    let mut tried = 0u64;
    let mut attempt = 0u32;
    let mut last: Option<Failed> = None;
    loop {
        let i = route.balancer.pick(tried);
        tried |= 1 << i.min(63);
        let permit = match route.circuit.try_acquire() {
            Ok(p) => p,
            Err(e) => {
                return match last {
                    Some(failed) => answer(failed, slot, route),
                    None => Err(e.into()),
                }
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            drop(permit); // not the upstream's fault: cancelled, not counted
            return Err(GatewayError::Timeout);
        }
        let Some(body) = out.body.for_attempt() else {
            return Err(GatewayError::BadGateway(
                "the request body was already sent".into(),
            ));
        };
        let req = request(route, i, out, body, left)?;
        let started = Instant::now();
        let result = tokio::time::timeout(left, client.request(req)).await;
        m.latency.record(started.elapsed().as_secs_f64());
        let failed = match result {
            Ok(Ok(res)) if !res.status().is_server_error() => {
                permit.record(Outcome::Success);
                route.balancer.record(i, true);
                m.attempt_ok.increment(1);
                return Ok(inbound(res, slot, route.cfg.timeout_ms));
            }
            Ok(Ok(res)) => Failed::Response(res),
            Ok(Err(e)) => Failed::Error(GatewayError::BadGateway(describe(&e))),
            Err(_elapsed) => Failed::Error(GatewayError::Timeout),
        };
        permit.record(Outcome::Failure);
        m.attempt_failed.increment(1);
        if route.balancer.record(i, false) {
            m.ejections.increment(1);
            tracing::warn!(
                route = %route.cfg.name,
                upstream = %route.balancer.endpoint(i).authority,
                ejected_for = ?route.balancer.ejected_for(i),
                "upstream ejected after consecutive failures"
            );
        }
        let retryable_failure = match &failed {
            Failed::Response(res) => matches!(res.status().as_u16(), 502..=504),
            Failed::Error(GatewayError::BadGateway(_)) => true,
            Failed::Error(_) => false,
        };
        if !(retryable_failure && replayable && attempt < route.cfg.retries) {
            return answer(failed, slot, route);
        }
        if !route.budget.try_retry() {
            m.retries_refused.increment(1);
            return answer(failed, slot, route);
        }
        let backoff = full_jitter(&route.upstream, attempt);
        if Instant::now() + backoff >= deadline {
            return answer(failed, slot, route);
        }
        // Kept as the answer should the circuit refuse the retry; a failed response's
        // connection is not reused (its body is dropped unread when replaced).
        last = Some(failed);
        tokio::time::sleep(backoff).await;
        attempt += 1;
        m.retries.increment(1);
    }
}

/// The last failure as the call's result.
fn answer(
    failed: Failed,
    slot: bulkhead_actors::Slot,
    route: &Route,
) -> Result<Inbound, GatewayError> {
    match failed {
        Failed::Response(res) => Ok(inbound(res, slot, route.cfg.timeout_ms)),
        Failed::Error(e) => Err(e),
    }
}

/// Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): a uniform wait
/// in `[0, min(max, base x 2^attempt))`, so retries of many callers spread out.
fn full_jitter(cfg: &crate::config::UpstreamConfig, attempt: u32) -> Duration {
    let cap = cfg
        .retry_backoff_base_ms
        .saturating_mul(1u64 << attempt.min(20))
        .min(cfg.retry_backoff_max_ms);
    Duration::from_millis(rand::thread_rng().gen_range(0..=cap))
}

fn request(
    route: &Route,
    i: usize,
    out: &Outbound,
    body: super::body::UpBody,
    left: Duration,
) -> Result<hyper::Request<super::body::UpBody>, GatewayError> {
    let ep = route.balancer.endpoint(i);
    let uri = http::Uri::builder()
        .scheme(ep.scheme.clone())
        .authority(ep.authority.clone())
        .path_and_query(format!("{}{}", ep.base_path, out.path_and_query))
        .build()
        .map_err(|e| GatewayError::BadGateway(format!("cannot build the upstream URL: {e}")))?;
    let mut req = hyper::Request::new(body);
    *req.method_mut() = out.method.clone();
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.clone_from(&out.headers);
    headers.insert(
        X_REQUEST_DEADLINE_MS,
        HeaderValue::from(u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
    );
    Ok(req)
}

/// A client error in a few words, for the 502's detail and the log.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    if e.is_connect() {
        "could not connect to the upstream".into()
    } else {
        "the upstream connection failed (reset or invalid answer)".into()
    }
}

/// Streams the response body into a bounded channel on the gateway runtime; the route's
/// bulkhead slot is held until the body ends. A chunk the client does not take within
/// the route's timeout (or an upstream that stalls as long) ends the body.
fn inbound(res: hyper::Response<Incoming>, slot: bulkhead_actors::Slot, idle_ms: u64) -> Inbound {
    let (parts, mut body) = res.into_parts();
    let len = if parts.headers.contains_key(http::header::TRANSFER_ENCODING) {
        None
    } else {
        parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let idle = Duration::from_millis(idle_ms);
    tokio::spawn(async move {
        let _slot = slot;
        loop {
            match tokio::time::timeout(idle, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers are not forwarded
                    };
                    if data.is_empty() {
                        continue;
                    }
                    match tokio::time::timeout(idle, tx.send(Ok(data))).await {
                        Ok(Ok(())) => {}
                        _ => break, // the client went away or stopped reading
                    }
                }
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    let _ = tx.try_send(Err(BodyError::Upstream));
                    break;
                }
            }
        }
    });
    Inbound {
        status: parts.status,
        headers: parts.headers,
        len,
        body: rx,
    }
}
