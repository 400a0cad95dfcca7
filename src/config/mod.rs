//! Typed configuration: TOML file, `BULKHEAD__SECTION__KEY` overrides, `DATABASE_URL`.
//!
//! Load with [`Config::load`]; it merges, in rising precedence, the defaults of every struct
//! below, the TOML file (`--config FILE` or `BULKHEAD_CONFIG`), environment variables
//! `BULKHEAD__<SECTION>__<KEY>` and finally `DATABASE_URL`. Every struct denies unknown
//! fields, so a misspelt key is an error that names it, and [`Config::validate`] checks
//! the values. `config/bulkhead.example.toml` documents every key with its default; a test
//! keeps it in step with [`Config::default`].

mod secret;

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use bulkhead_actors::config::{
    BulkheadConfig, CacheConfig, CircuitConfig, PolicyConfig, RateLimiterConfig,
};
pub use secret::{DatabaseUrl, Secret};

/// The whole configuration of one Bulkhead process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub rate_limits: RateLimitsConfig,
    pub circuits: CircuitsConfig,
    pub bulkheads: BulkheadsConfig,
    pub cache: CachesConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP listener binds.
    pub bind: SocketAddr,
    /// actix-web worker threads; 0 means one per available core.
    pub workers: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// Lame-duck period: after a signal, keep accepting for this long while `/ready`
    /// answers 503, so load balancers stop routing here before the listener closes.
    pub shutdown_delay_ms: u64,
    /// Peers whose `X-Forwarded-For` is trusted (CIDR list).
    pub trusted_proxies: Vec<IpNet>,
    /// Keep-alive of idle client connections.
    pub keep_alive_secs: u64,
    /// Deadline for a client to send its request head.
    pub client_request_timeout_ms: u64,
    /// Per-worker limit of concurrent connections.
    pub max_connections_per_worker: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// Origins allowed by CORS (`["*"]` for any); empty disables CORS.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            max_body_bytes: 64 * 1024,
            shutdown_timeout_secs: 30,
            shutdown_delay_ms: 0,
            trusted_proxies: Vec::new(),
            keep_alive_secs: 75,
            client_request_timeout_ms: 5_000,
            max_connections_per_worker: 25_000,
            backlog: 2048,
            cors_allowed_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Postgres URL. Unset: the embedded in-memory store (data is not kept).
    pub url: Option<DatabaseUrl>,
    /// Connections in the read pool.
    pub read_pool_size: usize,
    /// Connections in the write pool.
    pub write_pool_size: usize,
    /// How long a caller waits for a free pooled connection.
    pub pool_wait_timeout_ms: u64,
    /// How long opening a new connection may take.
    pub pool_create_timeout_ms: u64,
    /// How long checking a returned connection may take.
    pub pool_recycle_timeout_ms: u64,
    /// `statement_timeout` set on every connection.
    pub statement_timeout_ms: u64,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            read_pool_size: 16,
            write_pool_size: 16,
            pool_wait_timeout_ms: 2_000,
            pool_create_timeout_ms: 3_000,
            pool_recycle_timeout_ms: 1_000,
            statement_timeout_ms: 5_000,
            migrate_on_start: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `json` (one object a line) or `text` (human-readable).
    pub format: LogFormat,
    /// Filter directive (`info`, `bulkhead=debug,info`, ...); `RUST_LOG` wins when set.
    pub level: String,
    /// One access-log line per request.
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 signing secret (at least 32 bytes). Unset: a random one per process, with a
    /// warning (tokens then die with the process and do not cross instances).
    pub jwt_secret: Option<Secret>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub leeway_secs: u64,
    /// Ensure this active admin exists at start (both keys or neither).
    pub bootstrap_admin_email: Option<String>,
    pub bootstrap_admin_password: Option<Secret>,
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id time cost (passes).
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            issuer: "bulkhead".into(),
            audience: "bulkhead-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            leeway_secs: 30,
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
        }
    }
}

/// Rate-limit policies (API.md "Limits") and the limiter actors that enforce them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    pub enabled: bool,
    /// Per authenticated user (`sub`).
    pub user: PolicyConfig,
    /// Per client IP, for anonymous requests.
    pub ip: PolicyConfig,
    /// Login attempts per email.
    pub login: PolicyConfig,
    /// The limiter shards.
    pub limiter: RateLimiterConfig,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            user: policy(6_000, 60),
            ip: policy(3_000, 60),
            login: policy(10, 60),
            limiter: RateLimiterConfig::default(),
        }
    }
}

fn policy(quota: u32, window_secs: u64) -> PolicyConfig {
    PolicyConfig {
        quota,
        window_secs,
        ..PolicyConfig::default()
    }
}

/// One circuit breaker per dependency.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitsConfig {
    pub postgres: CircuitConfig,
}

/// One bulkhead per workload class.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkheadsConfig {
    pub db_read: BulkheadConfig,
    pub db_write: BulkheadConfig,
    /// Password hashing runs on its own threads; `max_concurrent` is the thread count.
    pub hashing: BulkheadConfig,
}

impl Default for BulkheadsConfig {
    fn default() -> Self {
        Self {
            db_read: BulkheadConfig {
                max_concurrent: 64,
                queue_capacity: 1024,
                queue_timeout_ms: 1_000,
            },
            db_write: BulkheadConfig {
                max_concurrent: 32,
                queue_capacity: 512,
                queue_timeout_ms: 2_000,
            },
            hashing: BulkheadConfig {
                max_concurrent: 2,
                queue_capacity: 64,
                queue_timeout_ms: 2_000,
            },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CachesConfig {
    pub users: CacheConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics`.
    pub enabled: bool,
    /// Upper bounds (seconds) of the latency histogram buckets.
    pub latency_buckets_secs: Vec<f64>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            latency_buckets_secs: vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        }
    }
}

/// Why configuration could not be loaded; the message names the key and the source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("{0}")]
    Parse(String),
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// Load from `file` (or `BULKHEAD_CONFIG`), then environment overrides, then validate.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("BULKHEAD__"))
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.display().to_string()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment.merge(env.split("__")).merge(
            Env::raw()
                .only(&["DATABASE_URL"])
                .map(|_| "database.url".into()),
        );
        let config: Config = figment.extract().map_err(|e| {
            let messages: Vec<String> = e.into_iter().map(|e| describe(&e)).collect();
            ConfigError::Parse(messages.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parse a TOML document alone (no environment), for tests and `check-config` checks.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Config = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(describe(&e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Check values that types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message: message.into(),
            })
        };
        let s = &self.server;
        if s.max_body_bytes == 0 {
            return bad("server.max_body_bytes", "must be at least 1");
        }
        if s.shutdown_timeout_secs == 0 {
            return bad("server.shutdown_timeout_secs", "must be at least 1");
        }
        let d = &self.database;
        if d.read_pool_size == 0 || d.write_pool_size == 0 {
            return bad("database.read_pool_size", "pool sizes must be at least 1");
        }
        for (key, v) in [
            ("database.pool_wait_timeout_ms", d.pool_wait_timeout_ms),
            ("database.pool_create_timeout_ms", d.pool_create_timeout_ms),
            (
                "database.pool_recycle_timeout_ms",
                d.pool_recycle_timeout_ms,
            ),
        ] {
            if v == 0 {
                return bad(key, "timeouts must be at least 1 ms");
            }
        }
        if let Some(url) = &d.url {
            if let Err(e) = url.expose().parse::<tokio_postgres::Config>() {
                return bad("database.url", &format!("not a Postgres URL: {e}"));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return bad("log.level", "not a valid filter directive");
        }
        let a = &self.auth;
        if let Some(secret) = &a.jwt_secret {
            if secret.expose().len() < 32 {
                return bad("auth.jwt_secret", "must be at least 32 bytes");
            }
        }
        if a.issuer.is_empty() {
            return bad("auth.issuer", "must not be empty");
        }
        if a.audience.is_empty() {
            return bad("auth.audience", "must not be empty");
        }
        if a.access_ttl_secs == 0 {
            return bad("auth.access_ttl_secs", "must be at least 1");
        }
        if a.refresh_ttl_secs == 0 {
            return bad("auth.refresh_ttl_secs", "must be at least 1");
        }
        if a.bootstrap_admin_email.is_some() != a.bootstrap_admin_password.is_some() {
            return bad(
                "auth.bootstrap_admin_email",
                "bootstrap_admin_email and bootstrap_admin_password go together",
            );
        }
        if let Some(p) = &a.bootstrap_admin_password {
            if !(8..=128).contains(&p.expose().chars().count()) {
                return bad(
                    "auth.bootstrap_admin_password",
                    "must be 8..=128 characters",
                );
            }
        }
        if a.argon2_memory_kib < 8 * a.argon2_parallelism.max(1) {
            return bad("auth.argon2_memory_kib", "must be at least 8 KiB per lane");
        }
        if a.argon2_iterations == 0 {
            return bad("auth.argon2_iterations", "must be at least 1");
        }
        if a.argon2_parallelism == 0 {
            return bad("auth.argon2_parallelism", "must be at least 1");
        }
        let r = &self.rate_limits;
        for (name, p) in [("user", &r.user), ("ip", &r.ip), ("login", &r.login)] {
            p.validate()
                .map_err(|m| invalid(&format!("rate_limits.{name}"), m))?;
        }
        r.limiter
            .validate()
            .map_err(|m| invalid("rate_limits.limiter", m))?;
        self.circuits
            .postgres
            .validate()
            .map_err(|m| invalid("circuits.postgres", m))?;
        for (name, b) in [
            ("db_read", &self.bulkheads.db_read),
            ("db_write", &self.bulkheads.db_write),
            ("hashing", &self.bulkheads.hashing),
        ] {
            b.validate()
                .map_err(|m| invalid(&format!("bulkheads.{name}"), m))?;
        }
        self.cache
            .users
            .validate()
            .map_err(|m| invalid("cache.users", m))?;
        let buckets = &self.metrics.latency_buckets_secs;
        if buckets.is_empty()
            || buckets.iter().any(|b| !b.is_finite() || *b <= 0.0)
            || buckets.windows(2).any(|w| w[0] >= w[1])
        {
            return bad(
                "metrics.latency_buckets_secs",
                "must be a non-empty, strictly increasing list of positive seconds",
            );
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not render: {e}\n"))
    }
}

/// Nested validators start their message with the field at fault ("quota must be ...");
/// prefix the section so the key is whole.
fn invalid(section: &str, message: String) -> ConfigError {
    let first = message.split([' ', ':']).next().unwrap_or("");
    let is_field = !first.is_empty()
        && first
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    let key = match first.rsplit('.').next() {
        Some(field) if is_field && !field.is_empty() => format!("{section}.{field}"),
        _ => section.to_string(),
    };
    ConfigError::Invalid { key, message }
}

/// One figment error as "key `a.b`: message (in source)".
fn describe(e: &figment::Error) -> String {
    let mut path = e.path.join(".");
    if let figment::error::Kind::UnknownField(field, _) = &e.kind {
        path = if path.is_empty() {
            field.clone()
        } else if path.ends_with(field.as_str()) {
            path
        } else {
            format!("{path}.{field}")
        };
        return match &e.metadata {
            Some(md) => format!("unknown key `{path}` (in {})", source_name(md)),
            None => format!("unknown key `{path}`"),
        };
    }
    let key = if path.is_empty() {
        String::from("(top level)")
    } else {
        path
    };
    match &e.metadata {
        Some(md) => format!("key `{key}`: {} (in {})", e.kind, source_name(md)),
        None => format!("key `{key}`: {}", e.kind),
    }
}

fn source_name(md: &figment::Metadata) -> String {
    match &md.source {
        Some(src) => src.to_string(),
        None => md.name.to_string(),
    }
}

#[cfg(test)]
mod tests;
