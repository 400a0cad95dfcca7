//! Starting the rate limiter, global through Redis when `redis.url` is set, and naming
//! limited identities in Redis.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_actors::{RateLimiter, RedisLimiter, RedisSettings};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The rate-limit policies the HTTP layer applies, resolved once.
#[derive(Clone, Copy)]
pub struct Policies {
    pub user: bulkhead_actors::PolicyId,
    pub ip: bulkhead_actors::PolicyId,
    pub login: bulkhead_actors::PolicyId,
}

/// The policies decided fleet-wide when `redis.url` is set (API.md "Fleet").
pub const GLOBAL_POLICIES: [&str; 3] = ["user", "ip", "login"];

/// Names limited identities in Redis: `<key_prefix>:rl:<policy>:<digest>`, where the
/// digest is SHA-256 over the shared `auth.jwt_secret` and the identity, so every
/// instance names a user, IP or email alike and Redis never holds the identity itself.
#[derive(Clone)]
pub struct FleetNames {
    prefix: Arc<str>,
    salt: Arc<[u8]>,
}

impl FleetNames {
    pub fn new(config: &Config) -> Self {
        let salt = config
            .auth
            .jwt_secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec())
            .unwrap_or_default();
        Self {
            prefix: config.redis.key_prefix.as_str().into(),
            salt: salt.into(),
        }
    }

    pub fn key(&self, policy: &str, identity: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(&self.salt);
        h.update([0]);
        h.update(policy.as_bytes());
        h.update([0]);
        h.update(identity);
        let digest = h.finalize();
        let mut hex = String::with_capacity(32);
        for b in &digest[..16] {
            hex.push_str(&format!("{b:02x}"));
        }
        format!("{}:rl:{policy}:{hex}", self.prefix)
    }
}

/// Starts the limiter (and, with `redis.url`, the Redis limiter it decides global
/// policies through). Always `Some`: started even when `rate_limits.enabled` is false,
/// since that can change live (a reload); so is the Redis limiter, since `redis.url`
/// cannot.
pub fn start(config: &Config) -> anyhow::Result<Option<(RateLimiter, Policies)>> {
    let err = |e: String| anyhow::anyhow!(e);
    let r = &config.rate_limits;
    let redis = match &config.redis.url {
        Some(url) => {
            if config.database.url.is_none() {
                tracing::warn!(
                    "redis.url with the embedded store: the rate limits are shared through \
                     Redis, but the data is not; the embedded store is single-instance"
                );
            }
            Some(RedisLimiter::start(settings(config, url.expose())).map_err(err)?)
        }
        _ => {
            metrics::gauge!("bulkhead_ratelimit_global").set(0.0);
            None
        }
    };
    let limiter = RateLimiter::start_global(
        &r.limiter,
        r.enabled,
        vec![
            ("user".into(), r.user.clone()),
            ("ip".into(), r.ip.clone()),
            ("login".into(), r.login.clone()),
        ],
        redis.map(|redis| (redis, &GLOBAL_POLICIES[..])),
    )
    .map_err(err)?;
    let id = |name: &str| {
        limiter
            .policy(name)
            .ok_or_else(|| anyhow::anyhow!("rate limit policy {name} missing"))
    };
    let policies = Policies {
        user: id("user")?,
        ip: id("ip")?,
        login: id("login")?,
    };
    Ok(Some((limiter, policies)))
}

fn settings(config: &Config, url: &str) -> RedisSettings {
    let c = &config.redis;
    let ms = Duration::from_millis;
    RedisSettings {
        url: url.to_owned(),
        instance_id: uuid::Uuid::new_v4().to_string(),
        key_prefix: c.key_prefix.clone(),
        timeout: ms(c.timeout_ms),
        connect_timeout: ms(c.connect_timeout_ms),
        heartbeat_interval: ms(c.heartbeat_interval_ms),
        heartbeat_ttl: ms(c.heartbeat_ttl_ms),
        max_in_flight: c.max_in_flight,
        mailbox_capacity: c.mailbox_capacity,
        fleet_size: config.rate_limits.fleet_size,
        max_overshoot: config.rate_limits.max_overshoot,
        max_lease: c.max_lease,
        circuit: c.circuit.clone(),
    }
}
