//! `[redis]`: the Redis that makes the `user`, `ip` and `login` rate limits global
//! (API.md "Fleet"). Its checks are in `redis_rules.rs`.

use serde::{Deserialize, Serialize};

use bulkhead_actors::config::CircuitConfig;
use bulkhead_actors::WindowKind;

use super::secret::DatabaseUrl;

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
