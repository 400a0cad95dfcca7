//! The gateway's own tokio runtime and the one HTTP client it drives.
//!
//! A hyper client's pooled connections are tasks on the runtime that opened them, so the
//! client is built once and every call runs on one long-lived runtime, on threads of its
//! own (`bulkhead-upstream`), never on an actix worker: an actix worker's single-threaded
//! runtime would tie each connection to the worker that happened to open it, and the
//! proxy's connection work would compete with request handling on the same thread.
//! The runtime's thread owns it and shuts it down when the last handle is dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::body::UpBody;
use crate::config::UpstreamConfig;

pub type HttpClient = Client<HttpConnector, UpBody>;

/// The runtime; dropping it stops the thread (and every upstream connection).
pub struct UpstreamRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl UpstreamRuntime {
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("bulkhead-upstream")
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("bulkhead-upstream-owner".into())
            .spawn(move || {
                // Parked here until the gateway goes; then the runtime drops on a plain
                // thread (dropping it inside an async context would panic).
                let _ = rt.block_on(stopped);
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `fut` on the gateway runtime; the task is aborted if the returned future is
    /// dropped (the client went away), so no upstream call outlives its caller.
    pub fn run<F>(&self, fut: F) -> Detached<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Detached(self.handle.spawn(fut))
    }
}

impl Drop for UpstreamRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A task on the gateway runtime, aborted on drop.
pub struct Detached<T>(JoinHandle<T>);

impl<T> Future for Detached<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

impl<T> Drop for Detached<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The pooled HTTP/1.1 client (keep-alive; no redirects, no default headers).
pub fn client(cfg: &UpstreamConfig) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_millis(cfg.pool_idle_timeout_ms))
        .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
        .build(connector)
}
