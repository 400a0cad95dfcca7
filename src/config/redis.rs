//! `[redis]`: the Redis that makes the `user`, `ip` and `login` rate limits global
//! (API.md "Fleet"), and its checks.

use serde::{Deserialize, Serialize};

use super::{CircuitConfig, Config, ConfigError, DatabaseUrl};
use bulkhead_actors::{Algorithm, WindowKind};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`. Unset: every rate limit is local to its
    /// instance.
    pub url: Option<DatabaseUrl>,
    /// The longest a request waits for Redis; past it the decision falls back to the
    /// local `quota / fleet size`.
    pub timeout_ms: u64,
    /// Deadline of one connection attempt (off the request path).
    pub connect_timeout_ms: u64,
    /// Prefix of every key Bulkhead writes in Redis.
    pub key_prefix: String,
    /// How often each instance records itself in `<key_prefix>:fleet`.
    pub heartbeat_interval_ms: u64,
    /// An instance not heard from this long is no longer counted in the fleet size.
    pub heartbeat_ttl_ms: u64,
    /// Upper bound on one key's lease of tokens (the lease is otherwise
    /// `rate_limits.max_overshoot * quota / fleet size`).
    pub max_lease: u32,
    /// Redis calls in flight at once; beyond, decisions fall back.
    pub max_in_flight: usize,
    /// Mailbox capacity of the Redis limiter actor.
    pub mailbox_capacity: usize,
    /// The circuit in front of Redis: while open, no request waits for Redis.
    pub circuit: CircuitConfig,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: 20,
            connect_timeout_ms: 1_000,
            key_prefix: "bulkhead".into(),
            heartbeat_interval_ms: 1_000,
            heartbeat_ttl_ms: 3_000,
            max_lease: 1_000,
            max_in_flight: 256,
            mailbox_capacity: 1_024,
            circuit: CircuitConfig {
                window: WindowKind::Count,
                window_size: 20,
                minimum_calls: 5,
                failure_rate_threshold: 0.5,
                slow_call_rate_threshold: 1.0,
                slow_call_duration_ms: 100,
                open_wait_ms: 1_000,
                half_open_trial_calls: 1,
                half_open_timeout_ms: 2_000,
            },
        }
    }
}

impl RedisConfig {
    /// The rules of the `redis` section and of what it implies elsewhere.
    pub fn validate(config: &Config) -> Result<(), ConfigError> {
        let r = &config.redis;
        let bad = |key: &str, message: String| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message,
            })
        };
        let limits = &config.rate_limits;
        if !(0.0..=1.0).contains(&limits.max_overshoot) {
            return bad(
                "rate_limits.max_overshoot",
                "must be in 0..=1 (a fraction of the quota)".into(),
            );
        }
        for (key, v) in [
            ("redis.timeout_ms", r.timeout_ms),
            ("redis.connect_timeout_ms", r.connect_timeout_ms),
            ("redis.heartbeat_interval_ms", r.heartbeat_interval_ms),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1 ms".into());
            }
        }
        if r.heartbeat_ttl_ms <= r.heartbeat_interval_ms {
            return bad(
                "redis.heartbeat_ttl_ms",
                "must be longer than redis.heartbeat_interval_ms".into(),
            );
        }
        if r.key_prefix.is_empty() {
            return bad("redis.key_prefix", "must not be empty".into());
        }
        if r.max_in_flight == 0 {
            return bad("redis.max_in_flight", "must be at least 1".into());
        }
        if r.mailbox_capacity == 0 {
            return bad("redis.mailbox_capacity", "must be at least 1".into());
        }
        r.circuit
            .validate()
            .map_err(|m| super::invalid("redis.circuit", m))?;
        let Some(url) = &r.url else {
            return Ok(());
        };
        if let Err(e) = bulkhead_actors::fleet::check_url(url.expose()) {
            return bad("redis.url", format!("not a Redis URL: {e}"));
        }
        if config.auth.jwt_secret.is_none() {
            return bad(
                "auth.jwt_secret",
                "must be set when redis.url is: tokens must be valid on every instance".into(),
            );
        }
        for (name, p) in [
            ("user", &limits.user),
            ("ip", &limits.ip),
            ("login", &limits.login),
        ] {
            if p.algorithm != Algorithm::Gcra {
                return bad(
                    &format!("rate_limits.{name}.algorithm"),
                    "must be \"gcra\" when redis.url is set (global limits are GCRA in Redis)"
                        .into(),
                );
            }
        }
        Ok(())
    }
}
