//! The sections of the configuration, each with its documented defaults.

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use bulkhead_actors::config::{
    BulkheadConfig, CacheConfig, CircuitConfig, PolicyConfig, RateLimiterConfig,
};

use super::events::EventsConfig;
use super::gateway::GatewayConfig;
use super::invalidation::{InvalidationConfig, ProductsCacheConfig, UsersCacheConfig};
use super::redis::RedisConfig;
use super::secret::{DatabaseUrl, Secret};

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
    pub invalidation: InvalidationConfig,
    pub metrics: MetricsConfig,
    /// Redis for global rate limits (`src/config/redis.rs`).
    pub redis: RedisConfig,
    pub gateway: GatewayConfig,
    pub events: EventsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP listener binds.
    pub bind: SocketAddr,
    /// HTTP worker threads; 0 means one per available core.
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
    /// Deadline for a client to send its whole request body (408 `request_timeout`).
    pub client_body_timeout_ms: u64,
    /// Per-worker limit of concurrent connections (lowered at start to what the
    /// process's file descriptor limit can hold).
    pub max_connections_per_worker: usize,
    /// Connections one client IP may hold at once; more are closed as they arrive.
    /// Peers in `trusted_proxies` are exempt (they carry many clients).
    pub max_connections_per_ip: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// Origins allowed by CORS (`["*"]` for any); empty disables CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Smallest response body compressed for a client that accepts gzip or deflate;
    /// smaller ones are sent as they are (a body of unknown size is always compressed).
    pub compress_min_bytes: usize,
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
            client_body_timeout_ms: 10_000,
            max_connections_per_worker: 25_000,
            max_connections_per_ip: 256,
            backlog: 2048,
            cors_allowed_origins: Vec::new(),
            compress_min_bytes: 1400,
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
    /// Threads of the runtime that opens and drives every pooled connection
    /// (`bulkhead-db`), never an actix worker.
    pub client_threads: usize,
    /// Tasks placing orders (`bulkhead-db`), each a transaction at a time.
    pub order_writers: usize,
    /// Orders placed in one transaction at most, when they arrive together; 1 places
    /// each in its own.
    pub order_batch_max: usize,
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
            client_threads: 1,
            order_writers: 2,
            order_batch_max: 32,
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
    /// With `redis.url`: how far above the quota the fleet may admit (a fraction of it),
    /// spent on the instances' local leases of tokens.
    pub max_overshoot: f64,
    /// With `redis.url`: instances sharing the quota, for the leases and the fallback's
    /// `quota / fleet_size`; 0 = the count last seen through Redis's heartbeats.
    pub fleet_size: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            user: policy(6_000, 60),
            ip: policy(3_000, 60),
            login: policy(10, 60),
            limiter: RateLimiterConfig::default(),
            max_overshoot: 0.05,
            fleet_size: 0,
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
            // Admission matches the pool (database.*_pool_size), so admitted calls do not
            // queue again for a connection. Reads have a short queue deadline (an
            // admitted read keeps a bounded latency, the excess is answered 503);
            // writes, slower and costlier to retry, wait longer. The queues are large:
            // a small one turns ordinary concurrency into a storm of fast 503s that
            // closed-loop clients retry at once (measured: load/README.md). What the
            // deadline cannot serve is refused on arrival (reject_expected_timeouts),
            // so a large queue does not make the excess wait out the deadline.
            //
            // The adaptive limit (`adaptive`) is off: on the load harness's 2-core box it
            // served no more than the fixed 16, and once it set off a storm of 503s
            // under a closed-loop client that ignores Retry-After (load/README.md).
            db_read: BulkheadConfig {
                max_concurrent: 16,
                queue_capacity: 256,
                queue_timeout_ms: 25,
                reject_expected_timeouts: true,
                ..BulkheadConfig::default()
            },
            db_write: BulkheadConfig {
                max_concurrent: 16,
                queue_capacity: 256,
                queue_timeout_ms: 200,
                reject_expected_timeouts: true,
                ..BulkheadConfig::default()
            },
            hashing: BulkheadConfig {
                max_concurrent: 2,
                queue_capacity: 64,
                queue_timeout_ms: 2_000,
                reject_expected_timeouts: true,
                ..BulkheadConfig::default()
            },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CachesConfig {
    /// Per-user state for the auth check and `GET /users/me`.
    pub users: UsersCacheConfig,
    /// Access tokens already verified (signature, `iss`, `aud`), by their exact bytes;
    /// `exp` is still checked on every use.
    pub tokens: CacheConfig,
    /// Public product reads (by id and list pages).
    pub products: ProductsCacheConfig,
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
