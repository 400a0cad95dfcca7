//! The upstream parts of `GET /api/v1/me/overview`: each fetched through its route (with
//! the route's bulkhead, circuit, retries and balancing) under its own deadline.

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use tokio::time::Instant;

use super::forward::{GatewayError, Outbound};
use super::headers::{self, Identity};
use super::{Gateway, RequestBody, RouteTable};
use crate::config::OverviewPartConfig;

/// Largest part accepted: the overview is one JSON document, built in memory.
pub const MAX_PART_BYTES: usize = 256 * 1024;

/// Why a part is missing from the overview.
#[derive(Debug)]
pub enum PartError {
    Gateway(GatewayError),
    /// The upstream answered, but not 2xx.
    Status(u16),
    /// The upstream's 2xx answer is not JSON.
    NotJson,
}

/// The caller the parts are fetched for.
pub struct PartCaller<'a> {
    pub user_id: &'a str,
    pub role: &'a str,
    pub request_id: &'a str,
    pub client_ip: Option<IpAddr>,
    /// `X-Forwarded-Proto`: the client's scheme, as for a forwarded request.
    pub proto: &'a str,
}

impl Gateway {
    /// One part, as JSON, within `part.timeout_ms` (and never past its route's timeout).
    pub async fn fetch_part(
        &self,
        table: &RouteTable,
        part: &OverviewPartConfig,
        caller: &PartCaller<'_>,
    ) -> Result<serde_json::Value, PartError> {
        let Some(route) = table.route_named(&part.route) else {
            // Validation ties parts to routes; a table without it is a reload in between.
            return Err(PartError::Gateway(GatewayError::BadGateway(format!(
                "no route `{}`",
                part.route
            ))));
        };
        let timeout = Duration::from_millis(part.timeout_ms.min(route.cfg.timeout_ms));
        let deadline = Instant::now() + timeout;
        let token = self
            .identity_token(route, caller.user_id, caller.role, caller.request_id)
            .unwrap_or_default();
        let mut client = HeaderMap::new();
        client.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let headers = headers::upstream_request(
            &client,
            &headers::Context {
                request_id: caller.request_id,
                client_ip: caller.client_ip,
                proto: caller.proto,
                host: None,
                identity: Some(Identity {
                    user_id: caller.user_id,
                    role: caller.role,
                    token: &token,
                }),
            },
        );
        let out = Outbound {
            method: Method::GET,
            path_and_query: part.path.replace("{user_id}", caller.user_id),
            headers,
            body: RequestBody::Empty,
            idempotent: true,
            timeout,
            // The overview's handler runs as its caller; the parts queue as that caller.
            caller: crate::service::caller::current(),
        };
        let inbound = self.forward(route, out).await.map_err(PartError::Gateway)?;
        if !inbound.status.is_success() {
            return Err(PartError::Status(inbound.status.as_u16()));
        }
        let body = inbound
            .collect(MAX_PART_BYTES, deadline)
            .await
            .map_err(PartError::Gateway)?;
        serde_json::from_slice(&body).map_err(|_| PartError::NotJson)
    }
}
