//! Upstream HTTP servers the tests start and control: echoing, answering a status,
//! slow, held until released, resetting; each counts the requests it received. A hyper
//! server on the test's runtime, stopped when dropped. Shared by `tests/gateway` and
//! `tests/reload` (`#[path]`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub enum Mode {
    /// 200 (or the status in `x-want-status`) with the request as JSON: method, path,
    /// query, headers (every line, in order), body (its length, and its text when short);
    /// `ETag: "v1"`, and 304 with no body when `If-None-Match` is `"v1"`.
    Echo,
    /// This status, with a short text body.
    Status(u16),
    /// Waits this long, then answers 200 `{"slow": true}`.
    Slow(Duration),
    /// Waits until [`Upstream::release`] lets it go, then answers 200 `{"held": true}`.
    Held,
    /// Accepts the connection, reads the request, then resets it (RST).
    Reset,
    /// 200 with a body of this many bytes, sent in 64 KiB chunks.
    Large(usize),
}

struct Shared {
    hits: AtomicUsize,
    mode: Mutex<Mode>,
    gate: tokio::sync::Semaphore,
}

pub struct Upstream {
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            hits: AtomicUsize::new(0),
            mode: Mutex::new(mode),
            gate: tokio::sync::Semaphore::new(0),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    if matches!(*s.mode.lock().unwrap(), Mode::Reset) {
                        s.hits.fetch_add(1, Ordering::SeqCst);
                        let mut buf = [0u8; 1024];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), stream.readable()).await;
                        let _ = stream.try_read(&mut buf);
                        // A zero linger makes the close a reset (RST), which is the point;
                        // it does not block (the deprecation is about non-zero lingers).
                        #[allow(deprecated)]
                        let _ = stream.set_linger(Some(Duration::ZERO));
                        drop(stream);
                        return;
                    }
                    let svc = service_fn(move |req| handle(s.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Lets `n` held requests answer.
    pub fn release(&self, n: usize) {
        self.shared.gate.add_permits(n);
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }
}

/// The echo's entity tag.
pub const ECHO_ETAG: &str = "\"v1\"";

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-upstream", "yes")
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

async fn handle(s: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let mode = s.mode.lock().unwrap().clone();
    Ok(match mode {
        Mode::Echo => {
            let (parts, body) = req.into_parts();
            if parts
                .headers
                .get("if-none-match")
                .is_some_and(|v| v == ECHO_ETAG)
            {
                return Ok(Response::builder()
                    .status(304)
                    .header("etag", ECHO_ETAG)
                    .header("x-upstream", "yes")
                    .body(Full::new(Bytes::new()).boxed())
                    .unwrap());
            }
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let headers: Vec<Value> = parts
                .headers
                .iter()
                .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
                .collect();
            let status = parts
                .headers
                .get("x-want-status")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(200);
            let doc = json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": parts.uri.query(),
                "headers": headers,
                "body_len": body.len(),
                "body": if body.len() <= 4096 { String::from_utf8_lossy(&body).into_owned() } else { String::new() },
            });
            let mut res = full(
                status,
                "application/json",
                serde_json::to_vec(&doc).unwrap(),
            );
            res.headers_mut()
                .insert("etag", hyper::header::HeaderValue::from_static(ECHO_ETAG));
            res
        }
        Mode::Status(status) => full(status, "text/plain", format!("upstream says {status}")),
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            full(200, "application/json", r#"{"slow":true}"#)
        }
        Mode::Held => {
            if let Ok(permit) = s.gate.acquire().await {
                permit.forget();
            }
            full(200, "application/json", r#"{"held":true}"#)
        }
        Mode::Reset => full(500, "text/plain", "unreachable"),
        Mode::Large(n) => {
            let chunks = (0..n.div_ceil(65536)).map(move |i| {
                let len = 65536.min(n - i * 65536);
                Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(vec![b'x'; len])))
            });
            let stream = futures_util::stream::iter(chunks);
            Response::builder()
                .status(200)
                .header("content-type", "application/octet-stream")
                .body(http_body_util::StreamBody::new(stream).boxed())
                .unwrap()
        }
    })
}

/// The values of header `name` the echo received, every line.
pub fn echoed(doc: &Value, name: &str) -> Vec<String> {
    doc["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect()
}
