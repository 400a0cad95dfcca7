//! The rules of the `redis` section and of what it implies elsewhere (apart from the
//! section's type, because they read the whole configuration).

use bulkhead_actors::Algorithm;

use super::error::{invalid, ConfigError};
use super::redis::RedisConfig;
use super::sections::Config;

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
            .map_err(|m| invalid("redis.circuit", m))?;
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
