//! The gateway's one HTTP client, driven by a runtime of its own
//! ([`crate::runtime::OwnedRuntime`], threads `bulkhead-upstream`).

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::UpBody;
use crate::config::UpstreamConfig;

pub type HttpClient = Client<HttpConnector, UpBody>;

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
