//! Typed configuration: TOML file, `BULKHEAD__SECTION__KEY` overrides, `DATABASE_URL`.
//!
//! Load with [`Config::load`]; it merges, in rising precedence, the defaults of every struct
//! below, the TOML file (`--config FILE` or `BULKHEAD_CONFIG`), environment variables
//! `BULKHEAD__<SECTION>__<KEY>` and finally `DATABASE_URL`. Every struct denies unknown
//! fields, so a misspelt key is an error that names it, and [`Config::validate`] checks
//! the values. `config/bulkhead.example.toml` documents every key with its default; a test
//! keeps it in step with [`Config::default`].

mod error;
mod events;
mod gateway;
mod invalidation;
mod redis;
mod redis_rules;
mod secret;
mod sections;

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

pub use bulkhead_actors::config::{
    BulkheadConfig, CacheConfig, CircuitConfig, PolicyConfig, RateLimiterConfig,
};
use error::invalid;
pub use error::ConfigError;
pub use events::EventsConfig;
pub use gateway::{
    parse_upstream, GatewayConfig, OverviewPartConfig, RouteAuth, RouteConfig, UpstreamConfig,
    API_PREFIXES,
};
pub use invalidation::{
    InvalidationConfig, ProductsCacheConfig, UsersCacheConfig, MAX_PRODUCT_AGE_MS,
};
pub use redis::RedisConfig;
pub use secret::{DatabaseUrl, Secret};
pub use sections::*;

/// The defaults as the lowest layer, key by key: a file or variable that sets one key of
/// a section (`bulkheads.db_read.max_concurrent`) keeps the service's defaults for the
/// section's other keys. Left to `#[serde(default)]`, a partial section would take the
/// defaults of its type instead (a `BulkheadConfig`'s, not `db_read`'s). No default holds
/// a secret, so the redacting `Serialize` of secrets loses nothing here.
fn defaults() -> Figment {
    Figment::from(Serialized::defaults(Config::default()))
}

impl Config {
    /// Load from `file` (or `BULKHEAD_CONFIG`), then environment overrides, then validate.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("BULKHEAD__"))
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = defaults();
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
        let config: Config = defaults()
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
        if s.client_body_timeout_ms == 0 {
            return bad("server.client_body_timeout_ms", "must be at least 1");
        }
        if s.max_connections_per_ip == 0 {
            return bad("server.max_connections_per_ip", "must be at least 1");
        }
        if s.max_connections_per_worker == 0 {
            return bad("server.max_connections_per_worker", "must be at least 1");
        }
        let d = &self.database;
        if d.read_pool_size == 0 || d.write_pool_size == 0 {
            return bad("database.read_pool_size", "pool sizes must be at least 1");
        }
        if !(1..=64).contains(&d.client_threads) {
            return bad("database.client_threads", "must be between 1 and 64");
        }
        if !(1..=64).contains(&d.order_writers) {
            return bad("database.order_writers", "must be between 1 and 64");
        }
        if !(1..=1000).contains(&d.order_batch_max) {
            return bad("database.order_batch_max", "must be between 1 and 1000");
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
        if self.bulkheads.hashing.adaptive {
            return bad(
                "bulkheads.hashing.adaptive",
                "must be false: the hashing pool's threads are fixed",
            );
        }
        self.cache
            .users
            .validate()
            .map_err(|m| invalid("cache.users", m))?;
        self.cache
            .products
            .validate()
            .map_err(|m| invalid("cache.products", m))?;
        self.invalidation
            .validate()
            .map_err(|m| invalid("invalidation", m))?;
        RedisConfig::validate(self)?;
        self.gateway.validate()?;
        self.events.validate()?;
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
