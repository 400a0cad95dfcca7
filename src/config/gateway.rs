//! `[gateway]`: the upstream HTTP services Bulkhead fronts (API.md, "Gateway and BFF").

use serde::{Deserialize, Serialize};

use bulkhead_actors::config::{BulkheadConfig, CircuitConfig};

use super::error::{invalid, ConfigError};
use super::secret::Secret;

/// Path prefixes the API serves itself: a gateway route may not shadow them (nor they it).
/// `tests/gateway` checks that every `/api/` route the app registers is under one of them.
pub const API_PREFIXES: &[&str] = &[
    "/api/v1/users",
    "/api/v1/auth",
    "/api/v1/products",
    "/api/v1/orders",
    "/api/v1/me",
];

/// Names already used by other circuits and bulkheads (their metric labels).
const RESERVED_NAMES: &[&str] = &["postgres", "redis", "db_read", "db_write", "hashing"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// HS256 secret of the `X-Bulkhead-Identity` JWT (at least 32 bytes); required when
    /// any route exists.
    pub identity_secret: Option<Secret>,
    /// The routes, matched by path prefix before the API answers 404.
    pub routes: Vec<RouteConfig>,
    /// Resilience applied to each route on its own.
    pub upstream: UpstreamConfig,
    /// The upstream parts of `GET /api/v1/me/overview`.
    pub overview_parts: Vec<OverviewPartConfig>,
}

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    /// A valid token is required (401 otherwise); the caller's identity is forwarded.
    #[default]
    Required,
    /// Anonymous callers pass; an authenticated caller's identity is forwarded.
    Optional,
    /// No identity is forwarded, authenticated or not.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Metric label and the identity JWT's `aud`: `[a-z0-9_-]`, 1..=64 chars, unique.
    pub name: String,
    /// Path prefix under `/api/`, e.g. `/api/v1/reviews`: the prefix itself and paths
    /// below it (`/api/v1/reviews/...`) match.
    pub prefix: String,
    /// Base URLs (`http://host:port[/base]`), balanced round robin with outlier ejection.
    pub upstreams: Vec<String>,
    /// Methods forwarded (upper case); empty means all.
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub auth: RouteAuth,
    /// Remove the prefix from the forwarded path.
    #[serde(default)]
    pub strip_prefix: bool,
    /// The whole call, retries included, up to the upstream's response head.
    #[serde(default = "default_route_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries after the first attempt (only where safe, and within the retry budget).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_route_timeout_ms() -> u64 {
    5_000
}

fn default_retries() -> u32 {
    2
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// The route's bulkhead: calls in flight at once (response bodies included).
    pub max_concurrent: usize,
    /// Callers allowed to wait for a slot.
    pub queue_capacity: usize,
    /// A queued caller not admitted within this is answered 503 `overloaded`.
    pub queue_timeout_ms: u64,
    /// Retries allowed per second, as a percentage of the route's requests of the last
    /// second (Envoy's and Finagle's retry budget).
    pub retry_budget_percent: f64,
    /// Retries always allowed per second, whatever the request rate.
    pub retry_budget_min_per_sec: u32,
    /// Full-jitter exponential backoff: the first retry waits up to this long...
    pub retry_backoff_base_ms: u64,
    /// ...and no retry waits longer than this.
    pub retry_backoff_max_ms: u64,
    /// Retryable requests whose body is at most this long (by `Content-Length`) are
    /// buffered so they can be replayed; longer or chunked bodies stream and are not
    /// retried.
    pub retry_buffer_bytes: usize,
    /// An upstream URL failing this many times in a row is ejected.
    pub ejection_consecutive_failures: u32,
    /// First ejection's length; each further ejection adds as much (Envoy's multiplier).
    pub ejection_base_ms: u64,
    /// Longest ejection.
    pub ejection_max_ms: u64,
    /// Deadline for opening a connection to an upstream.
    pub connect_timeout_ms: u64,
    /// Idle pooled connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout_ms: u64,
    /// Threads of the dedicated runtime that drives every upstream connection.
    pub client_threads: usize,
    /// The route's circuit breaker (Resilience4j semantics, as `circuits.postgres`).
    pub circuit: CircuitConfig,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 64,
            queue_capacity: 128,
            queue_timeout_ms: 100,
            retry_budget_percent: 20.0,
            retry_budget_min_per_sec: 3,
            retry_backoff_base_ms: 25,
            retry_backoff_max_ms: 250,
            retry_buffer_bytes: 64 * 1024,
            ejection_consecutive_failures: 5,
            ejection_base_ms: 30_000,
            ejection_max_ms: 300_000,
            connect_timeout_ms: 1_000,
            pool_max_idle_per_host: 64,
            pool_idle_timeout_ms: 90_000,
            client_threads: 1,
            circuit: CircuitConfig::default(),
        }
    }
}

impl UpstreamConfig {
    /// The bulkhead every route gets (expected-wait rejection on, no adaptive limit).
    pub fn bulkhead(&self) -> BulkheadConfig {
        BulkheadConfig {
            max_concurrent: self.max_concurrent,
            queue_capacity: self.queue_capacity,
            queue_timeout_ms: self.queue_timeout_ms,
            reject_expected_timeouts: true,
            ..BulkheadConfig::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewPartConfig {
    /// The key of the part in the overview's `parts`.
    pub name: String,
    /// The route (by name) the part is fetched through, with that route's resilience.
    pub route: String,
    /// Path appended to the route's upstream base URL; `{user_id}` is the caller's id.
    pub path: String,
    /// The part's own deadline.
    #[serde(default = "default_part_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_part_timeout_ms() -> u64 {
    300
}

type Invalid = ConfigError;

fn bad(key: String, message: impl Into<String>) -> Result<(), Invalid> {
    Err(ConfigError::Invalid {
        key,
        message: message.into(),
    })
}

impl GatewayConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        let u = &self.upstream;
        u.bulkhead()
            .validate()
            .map_err(|m| invalid("gateway.upstream", m))?;
        u.circuit
            .validate()
            .map_err(|m| invalid("gateway.upstream.circuit", m))?;
        if !(u.retry_budget_percent.is_finite() && (0.0..=1000.0).contains(&u.retry_budget_percent))
        {
            return bad(
                "gateway.upstream.retry_budget_percent".into(),
                "must be between 0 and 1000",
            );
        }
        for (key, v) in [
            ("retry_backoff_base_ms", u.retry_backoff_base_ms),
            ("retry_backoff_max_ms", u.retry_backoff_max_ms),
            ("ejection_base_ms", u.ejection_base_ms),
            ("ejection_max_ms", u.ejection_max_ms),
            ("connect_timeout_ms", u.connect_timeout_ms),
            ("pool_idle_timeout_ms", u.pool_idle_timeout_ms),
            ("client_threads", u.client_threads as u64),
            (
                "ejection_consecutive_failures",
                u64::from(u.ejection_consecutive_failures),
            ),
        ] {
            if v == 0 {
                return bad(format!("gateway.upstream.{key}"), "must be at least 1");
            }
        }
        if u.retry_backoff_max_ms < u.retry_backoff_base_ms {
            return bad(
                "gateway.upstream.retry_backoff_max_ms".into(),
                "must be at least retry_backoff_base_ms",
            );
        }
        if u.ejection_max_ms < u.ejection_base_ms {
            return bad(
                "gateway.upstream.ejection_max_ms".into(),
                "must be at least ejection_base_ms",
            );
        }
        if u.client_threads > 64 {
            return bad(
                "gateway.upstream.client_threads".into(),
                "must be at most 64",
            );
        }
        if !self.routes.is_empty() {
            match &self.identity_secret {
                None => {
                    return bad(
                        "gateway.identity_secret".into(),
                        "is required when gateway routes exist",
                    )
                }
                Some(s) if s.expose().len() < 32 => {
                    return bad(
                        "gateway.identity_secret".into(),
                        "must be at least 32 bytes",
                    )
                }
                Some(_) => {}
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            r.validate(&format!("gateway.routes[{i}]"))?;
            for (j, other) in self.routes.iter().enumerate().take(i) {
                if other.name == r.name {
                    return bad(
                        format!("gateway.routes[{i}].name"),
                        format!("`{}` is also the name of gateway.routes[{j}]", r.name),
                    );
                }
                if overlaps(&other.prefix, &r.prefix) {
                    return bad(
                        format!("gateway.routes[{i}].prefix"),
                        format!(
                            "`{}` overlaps `{}` of gateway.routes[{j}]",
                            r.prefix, other.prefix
                        ),
                    );
                }
            }
        }
        for (i, p) in self.overview_parts.iter().enumerate() {
            let key = format!("gateway.overview_parts[{i}]");
            if !valid_name(&p.name) {
                return bad(format!("{key}.name"), "must be 1..=64 of [a-z0-9_-]");
            }
            if self.overview_parts[..i].iter().any(|o| o.name == p.name) {
                return bad(format!("{key}.name"), format!("`{}` is used twice", p.name));
            }
            if !self.routes.iter().any(|r| r.name == p.route) {
                return bad(
                    format!("{key}.route"),
                    format!("no gateway route is named `{}`", p.route),
                );
            }
            if !p.path.starts_with('/') || p.path.chars().any(|c| c.is_control() || c == ' ') {
                return bad(
                    format!("{key}.path"),
                    "must start with `/` and hold no spaces or control characters",
                );
            }
            if p.path
                .replace("{user_id}", "x")
                .parse::<http::Uri>()
                .is_err()
            {
                return bad(format!("{key}.path"), "not a valid path and query");
            }
            if p.timeout_ms == 0 {
                return bad(format!("{key}.timeout_ms"), "must be at least 1");
            }
        }
        Ok(())
    }
}

impl RouteConfig {
    fn validate(&self, key: &str) -> Result<(), Invalid> {
        if !valid_name(&self.name) {
            return bad(format!("{key}.name"), "must be 1..=64 of [a-z0-9_-]");
        }
        if RESERVED_NAMES.contains(&self.name.as_str()) {
            return bad(
                format!("{key}.name"),
                format!(
                    "`{}` names one of the service's own dependencies",
                    self.name
                ),
            );
        }
        let p = &self.prefix;
        let well_formed = p.starts_with("/api/")
            && !p.ends_with('/')
            && p[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
                    })
            });
        if !well_formed {
            return bad(
                format!("{key}.prefix"),
                "must be a path under /api/ (e.g. /api/v1/reviews): segments of \
                 [A-Za-z0-9._~-], no trailing `/`, no `.` or `..`",
            );
        }
        if p.split('/').count() < 4 {
            return bad(
                format!("{key}.prefix"),
                "must name a resource below /api/<version>/ (it would shadow the API)",
            );
        }
        if let Some(api) = API_PREFIXES.iter().find(|api| overlaps(api, p)) {
            return bad(
                format!("{key}.prefix"),
                format!("`{p}` overlaps `{api}`, which the API serves"),
            );
        }
        if self.upstreams.is_empty() {
            return bad(format!("{key}.upstreams"), "must list at least one URL");
        }
        if self.upstreams.len() > 64 {
            return bad(format!("{key}.upstreams"), "must list at most 64 URLs");
        }
        for (i, url) in self.upstreams.iter().enumerate() {
            if let Err(e) = parse_upstream(url) {
                return bad(format!("{key}.upstreams[{i}]"), e);
            }
        }
        for m in &self.methods {
            if http::Method::from_bytes(m.as_bytes()).is_err()
                || m.bytes().any(|b| !b.is_ascii_uppercase())
            {
                return bad(
                    format!("{key}.methods"),
                    format!("`{m}` is not an upper-case HTTP method"),
                );
            }
        }
        if self.timeout_ms == 0 {
            return bad(format!("{key}.timeout_ms"), "must be at least 1");
        }
        if self.retries > 10 {
            return bad(format!("{key}.retries"), "must be at most 10");
        }
        Ok(())
    }
}

/// An upstream base URL: `http://host[:port][/base path]`, no query or fragment.
pub fn parse_upstream(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("must be an http:// URL (https is not supported)".into());
    }
    if uri.authority().is_none() || uri.host().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if url.contains('?') || url.contains('#') {
        return Err("must have no query or fragment".into());
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must have no user info".into());
    }
    Ok(uri)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// Whether one prefix matches paths of the other (equal, or one is a segment-wise
/// ancestor of the other).
fn overlaps(a: &str, b: &str) -> bool {
    let below = |long: &str, short: &str| {
        long == short
            || (long.starts_with(short) && long.as_bytes().get(short.len()) == Some(&b'/'))
    };
    below(a, b) || below(b, a)
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
