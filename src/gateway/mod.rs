//! The gateway: Bulkhead in front of upstream HTTP services (API.md, "Gateway and BFF").
//! No actix-web here; `http::routes::gateway` adapts actix requests to
//! [`forward::Outbound`] and [`forward::Inbound`] back to responses.
//!
//! ```text
//! let route = gateway.route_for(path)?;                 // longest-free prefix match
//! let inbound = gateway.forward(&route, outbound).await?; // 502 / 503 / 504 as GatewayError
//! ```
//! Per route, one set of resilience values built from `[gateway.upstream]`: a
//! [`Bulkhead`] (a slot held from the first attempt to the end of the response body), a
//! [`Circuit`] named after the route (each attempt asks it), a [`RetryBudget`] and a
//! [`Balancer`] over the upstream URLs with outlier ejection. Every call runs on the
//! gateway's own runtime ([`runtime`]) with the one pooled client.
//!
//! The route table sits behind one `ArcSwap`: [`Gateway::replace_routes`] swaps it whole
//! (a live reload), and requests in flight keep the table they started with.
//!
//! Metrics, labelled by route name only: `bulkhead_gateway_requests_total{route,
//! outcome}`, `bulkhead_gateway_attempts_total{route, outcome}`,
//! `bulkhead_gateway_retries_total{route}`, `bulkhead_gateway_retries_refused_total{route}`
//! (by the budget), `bulkhead_gateway_ejections_total{route}`,
//! `bulkhead_gateway_upstream_duration_seconds{route}` (per attempt, to the response
//! head); the circuit's are `bulkhead_circuit_*{circuit=<route>}`, the bulkhead's
//! `bulkhead_bulkhead_*{bulkhead=<route>}`.

mod balance;
pub mod body;
mod budget;
pub mod forward;
pub mod headers;
pub mod overview;
mod runtime;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bulkhead_actors::{Bulkhead, Circuit};
use jsonwebtoken::{EncodingKey, Header};
use metrics::{Counter, Histogram};
use serde::Serialize;

pub use balance::Balancer;
pub use body::{BodyError, Chunk, RequestBody};
pub use budget::RetryBudget;
use runtime::HttpClient;

use crate::config::{
    parse_upstream, GatewayConfig, OverviewPartConfig, RouteConfig, UpstreamConfig,
};
use crate::runtime::OwnedRuntime;

/// Lifetime of the `X-Bulkhead-Identity` token.
pub const IDENTITY_TTL_SECS: u64 = 60;

/// Per-route metric handles, resolved once.
struct Meters {
    outcome_response: Counter,
    outcome_timeout: Counter,
    outcome_bad_gateway: Counter,
    outcome_circuit_open: Counter,
    outcome_overloaded: Counter,
    attempt_ok: Counter,
    attempt_failed: Counter,
    retries: Counter,
    retries_refused: Counter,
    ejections: Counter,
    latency: Histogram,
}

impl Meters {
    fn new(route: &str) -> Self {
        let outcome = |o: &'static str| metrics::counter!("bulkhead_gateway_requests_total", "route" => route.to_string(), "outcome" => o);
        let attempt = |o: &'static str| metrics::counter!("bulkhead_gateway_attempts_total", "route" => route.to_string(), "outcome" => o);
        Self {
            outcome_response: outcome("response"),
            outcome_timeout: outcome("upstream_timeout"),
            outcome_bad_gateway: outcome("bad_gateway"),
            outcome_circuit_open: outcome("dependency_unavailable"),
            outcome_overloaded: outcome("overloaded"),
            attempt_ok: attempt("ok"),
            attempt_failed: attempt("failed"),
            retries: metrics::counter!("bulkhead_gateway_retries_total", "route" => route.to_string()),
            retries_refused: metrics::counter!("bulkhead_gateway_retries_refused_total", "route" => route.to_string()),
            ejections: metrics::counter!("bulkhead_gateway_ejections_total", "route" => route.to_string()),
            latency: metrics::histogram!("bulkhead_gateway_upstream_duration_seconds", "route" => route.to_string()),
        }
    }
}

/// One route and its resilience.
pub struct Route {
    pub cfg: RouteConfig,
    methods: Vec<http::Method>,
    /// The methods for `Allow`, `GET, POST` (interned, like `label`).
    pub allow: &'static str,
    bulkhead: Bulkhead,
    circuit: Circuit,
    budget: RetryBudget,
    balancer: Balancer,
    upstream: Arc<UpstreamConfig>,
    meters: Meters,
    /// The route's label for the HTTP metrics (its prefix), interned once per process.
    pub label: &'static str,
}

impl Route {
    /// Starts the route's circuit (on the current actix arbiter) and bulkhead.
    fn start(cfg: &RouteConfig, upstream: &Arc<UpstreamConfig>) -> anyhow::Result<Self> {
        let err = |e: String| anyhow::anyhow!("gateway route {}: {e}", cfg.name);
        let urls = cfg
            .upstreams
            .iter()
            .map(|u| parse_upstream(u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let methods = cfg
            .methods
            .iter()
            .map(|m| http::Method::from_bytes(m.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            allow: intern(&cfg.methods.join(", ")),
            methods,
            bulkhead: Bulkhead::new(cfg.name.clone(), &upstream.bulkhead()).map_err(err)?,
            circuit: Circuit::start(cfg.name.clone(), upstream.circuit.clone()).map_err(err)?,
            budget: RetryBudget::new(
                upstream.retry_budget_percent,
                upstream.retry_budget_min_per_sec,
            ),
            balancer: Balancer::new(
                &urls,
                upstream.ejection_consecutive_failures,
                Duration::from_millis(upstream.ejection_base_ms),
                Duration::from_millis(upstream.ejection_max_ms),
            ),
            upstream: upstream.clone(),
            meters: Meters::new(&cfg.name),
            label: intern(&cfg.prefix),
            cfg: cfg.clone(),
        })
    }

    /// Whether `path` is this route's prefix or below it.
    pub fn matches(&self, path: &str) -> bool {
        let p = &self.cfg.prefix;
        path.starts_with(p.as_str()) && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
    }

    /// Whether the route forwards `method` (all when `methods` is empty).
    pub fn allows(&self, method: &http::Method) -> bool {
        self.methods.is_empty() || self.methods.contains(method)
    }

    /// The path sent upstream (without the URL's base path): the prefix removed if
    /// `strip_prefix`, and never empty.
    pub fn forwarded_path<'a>(&self, path: &'a str) -> &'a str {
        if !self.cfg.strip_prefix {
            return path;
        }
        match &path[self.cfg.prefix.len().min(path.len())..] {
            "" => "/",
            rest => rest,
        }
    }

    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }

    /// The `[gateway.upstream]` settings this route was started with.
    pub fn upstream(&self) -> &UpstreamConfig {
        &self.upstream
    }
}

/// A string kept for the life of the process (a route's prefix and `Allow` list): they
/// are few and bounded by the configuration, and a reload that repeats one reuses it.
fn intern(s: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = seen.get(s) {
        return s;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// The routes and the overview parts, replaced together.
pub struct RouteTable {
    pub routes: Vec<Arc<Route>>,
    pub parts: Vec<OverviewPartConfig>,
}

impl RouteTable {
    /// Starts the table `cfg` describes. A route of `current` whose settings (its own and
    /// `[gateway.upstream]`) are unchanged is kept as it is: same circuit, bulkhead,
    /// budget and balancer, so a reload does not reset them.
    fn start(cfg: &GatewayConfig, current: Option<&RouteTable>) -> anyhow::Result<Self> {
        let upstream = Arc::new(cfg.upstream.clone());
        let routes = cfg
            .routes
            .iter()
            .map(|r| {
                let kept = current
                    .and_then(|t| t.route_named(&r.name))
                    .filter(|old| old.cfg == *r && *old.upstream == cfg.upstream);
                match kept {
                    Some(old) => Ok(old.clone()),
                    None => Route::start(r, &upstream).map(Arc::new),
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            routes,
            parts: cfg.overview_parts.clone(),
        })
    }

    pub fn route_named(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.cfg.name == name)
    }
}

#[derive(Serialize)]
struct IdentityClaims<'a> {
    sub: &'a str,
    role: &'a str,
    aud: &'a str,
    jti: &'a str,
    iat: u64,
    exp: u64,
}

/// The gateway: the route table, the one client and the runtime that drives it.
pub struct Gateway {
    table: ArcSwap<RouteTable>,
    client: HttpClient,
    identity_key: EncodingKey,
    runtime: OwnedRuntime,
}

impl Gateway {
    /// Starts the gateway when routes are configured (`None` otherwise). Must run inside
    /// an actix `System` (the circuits' timers), after the metrics recorder is installed.
    pub fn start(cfg: &GatewayConfig) -> anyhow::Result<Option<Arc<Self>>> {
        if cfg.routes.is_empty() {
            return Ok(None);
        }
        let secret = cfg
            .identity_secret
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("gateway.identity_secret is required"))?;
        describe_metrics();
        let table = RouteTable::start(cfg, None)?;
        let runtime = OwnedRuntime::start("bulkhead-upstream", cfg.upstream.client_threads)?;
        Ok(Some(Arc::new(Self {
            table: ArcSwap::from_pointee(table),
            client: runtime::client(&cfg.upstream),
            identity_key: EncodingKey::from_secret(secret.expose().as_bytes()),
            runtime,
        })))
    }

    /// Replaces the whole route table (live reload); requests in flight keep theirs.
    /// Must run inside an actix `System`, like [`Gateway::start`].
    pub fn replace_routes(&self, cfg: &GatewayConfig) -> anyhow::Result<()> {
        let table = self.prepare_routes(cfg)?;
        self.install_routes(table);
        Ok(())
    }

    /// The first half of [`Gateway::replace_routes`]: starts the new table (unchanged
    /// routes kept) without serving it, so a reload can fail before anything changed.
    pub fn prepare_routes(&self, cfg: &GatewayConfig) -> anyhow::Result<RouteTable> {
        let current = self.table.load_full();
        RouteTable::start(cfg, Some(current.as_ref()))
    }

    /// The second half: new requests take `table`; requests in flight keep their route.
    pub fn install_routes(&self, table: RouteTable) {
        self.table.store(Arc::new(table));
    }

    /// The table in force.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// The route serving `path`, if any.
    pub fn route_for(&self, path: &str) -> Option<Arc<Route>> {
        self.table
            .load()
            .routes
            .iter()
            .find(|r| r.matches(path))
            .cloned()
    }

    /// The signed `X-Bulkhead-Identity` for a caller on `route`.
    pub fn identity_token(
        &self,
        route: &Route,
        sub: &str,
        role: &str,
        jti: &str,
    ) -> Option<String> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = IdentityClaims {
            sub,
            role,
            aud: &route.cfg.name,
            jti,
            iat,
            exp: iat + IDENTITY_TTL_SECS,
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.identity_key)
            .inspect_err(|e| tracing::error!(error = %e, "signing the identity token failed"))
            .ok()
    }
}

/// Help texts of the gateway's metrics (README, "Metrics").
fn describe_metrics() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "bulkhead_gateway_requests_total",
        "Requests through a gateway route, by outcome (response, or the problem answered)"
    );
    describe_counter!(
        "bulkhead_gateway_attempts_total",
        "Upstream attempts of a gateway route (first tries and retries), by outcome"
    );
    describe_counter!(
        "bulkhead_gateway_retries_total",
        "Retries a gateway route made"
    );
    describe_counter!(
        "bulkhead_gateway_retries_refused_total",
        "Retries a gateway route's retry budget refused"
    );
    describe_counter!(
        "bulkhead_gateway_ejections_total",
        "Upstream URLs of a gateway route ejected after consecutive failures"
    );
    describe_histogram!(
        "bulkhead_gateway_upstream_duration_seconds",
        Unit::Seconds,
        "Time from sending an upstream attempt to its response head"
    );
}
