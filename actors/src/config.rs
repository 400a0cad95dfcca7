//! Typed configuration for every actor in this crate.
//!
//! The service embeds these structs directly in its TOML config (each is
//! `deny_unknown_fields` + `default`, so a partial table is filled with the production
//! defaults below and a misspelt key is an error). Call `validate()` at start: it returns
//! `Err` with a message naming the bad field, e.g. `"circuit.failure_rate_threshold must be
//! in (0, 1]"`, which the service prefixes with its own section path.

use serde::{Deserialize, Serialize};

/// Largest quota the sliding-window algorithm can count (its counters are 20 bits wide).
pub const SLIDING_WINDOW_MAX_QUOTA: u32 = (1 << 20) - 1;

/// Rate-limiting algorithm of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Generic cell rate algorithm: sustained rate `quota / window`, bursts up to `burst`.
    Gcra,
    /// Two-bucket weighted sliding window (Cloudflare's approximation): the previous
    /// window's count weighted by its remaining overlap plus the current window's count
    /// must stay below `quota`.
    SlidingWindow,
}

/// One rate-limit policy ("user", "ip", "login", ...).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Requests allowed per window.
    pub quota: u32,
    /// Window length in seconds.
    pub window_secs: u64,
    /// GCRA burst capacity; `None` means `quota`. Ignored by the sliding window.
    pub burst: Option<u32>,
    pub algorithm: Algorithm,
    /// Decide and count (`outcome="shadow_limited"`) but refuse nothing: a new limit
    /// is rolled out in shadow first, to see whom it would hit.
    pub shadow: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            quota: 100,
            window_secs: 60,
            burst: None,
            algorithm: Algorithm::Gcra,
            shadow: false,
        }
    }
}

impl PolicyConfig {
    /// Effective burst capacity (GCRA) or quota (sliding window).
    pub fn capacity(&self) -> u32 {
        match self.algorithm {
            Algorithm::Gcra => self.burst.unwrap_or(self.quota),
            Algorithm::SlidingWindow => self.quota,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.quota == 0 {
            return Err("quota must be at least 1".into());
        }
        if self.window_secs == 0 || self.window_secs > 366 * 24 * 3600 {
            return Err("window_secs must be in 1..=31622400".into());
        }
        if self.burst == Some(0) {
            return Err("burst must be at least 1 when set".into());
        }
        if self.algorithm == Algorithm::SlidingWindow && self.quota > SLIDING_WINDOW_MAX_QUOTA {
            return Err(format!(
                "quota must be at most {SLIDING_WINDOW_MAX_QUOTA} with algorithm = \"sliding_window\""
            ));
        }
        Ok(())
    }
}

/// Sharding, sweeping and bounds of the rate limiter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimiterConfig {
    /// Number of shard actors; 0 = one per available core.
    pub shards: usize,
    /// Mailbox capacity of each shard actor (new keys and sweeps go through it).
    pub mailbox_capacity: usize,
    /// How often each shard sweeps idle keys.
    pub sweep_interval_secs: u64,
    /// Keys whose state is back to "fresh" and untouched this long are swept.
    pub idle_ttl_secs: u64,
    /// Hard bound on keys per shard (rate buckets and concurrency counters each).
    pub max_keys_per_shard: usize,
    /// Concurrent requests allowed per key by `acquire_concurrency`; 0 = unlimited.
    pub concurrency_per_key: u32,
    /// Deadline for a request-path send to a shard actor.
    pub send_timeout_ms: u64,
}

impl Default for RateLimiterConfig {
    fn default() -> Self {
        Self {
            shards: 0,
            mailbox_capacity: 1024,
            sweep_interval_secs: 10,
            idle_ttl_secs: 60,
            max_keys_per_shard: 100_000,
            concurrency_per_key: 32,
            send_timeout_ms: 100,
        }
    }
}

/// A configured shard count with 0 resolved to the number of available cores.
fn resolve_shards(shards: usize) -> usize {
    if shards == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        shards
    }
}

impl RateLimiterConfig {
    /// Shard count with 0 resolved to the number of available cores.
    pub fn effective_shards(&self) -> usize {
        resolve_shards(self.shards)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.shards > 1024 {
            return Err("shards must be at most 1024".into());
        }
        positive(self.mailbox_capacity as u64, "mailbox_capacity")?;
        positive(self.sweep_interval_secs, "sweep_interval_secs")?;
        positive(self.max_keys_per_shard as u64, "max_keys_per_shard")?;
        positive(self.send_timeout_ms, "send_timeout_ms")
    }
}

/// How the circuit breaker's closed-state sliding window is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// The last `window_size` calls.
    Count,
    /// The calls of the last `window_size` seconds.
    Time,
}

/// Resilience4j-style circuit breaker for one dependency.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    pub window: WindowKind,
    /// Calls (count window) or seconds (time window).
    pub window_size: u32,
    /// No rate is computed before this many calls are in the window.
    pub minimum_calls: u32,
    /// Trip when failures / calls >= this (0 < x <= 1).
    pub failure_rate_threshold: f64,
    /// Trip when slow calls / calls >= this (0 < x <= 1).
    pub slow_call_rate_threshold: f64,
    /// A call taking at least this long is slow.
    pub slow_call_duration_ms: u64,
    /// Time spent open before trial calls are admitted.
    pub open_wait_ms: u64,
    /// Exactly this many concurrent trial calls in half-open.
    pub half_open_trial_calls: u32,
    /// Half-open that has not resolved after this long goes back to open.
    pub half_open_timeout_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            window: WindowKind::Count,
            window_size: 100,
            minimum_calls: 20,
            failure_rate_threshold: 0.5,
            slow_call_rate_threshold: 1.0,
            slow_call_duration_ms: 2_000,
            open_wait_ms: 10_000,
            half_open_trial_calls: 5,
            half_open_timeout_ms: 10_000,
        }
    }
}

impl CircuitConfig {
    pub fn validate(&self) -> Result<(), String> {
        positive(u64::from(self.window_size), "window_size")?;
        if self.window == WindowKind::Time && self.window_size > 3600 {
            return Err("window_size must be at most 3600 seconds for window = \"time\"".into());
        }
        if self.window == WindowKind::Count && self.window_size > 100_000 {
            return Err("window_size must be at most 100000 calls for window = \"count\"".into());
        }
        positive(u64::from(self.minimum_calls), "minimum_calls")?;
        rate(self.failure_rate_threshold, "failure_rate_threshold")?;
        rate(self.slow_call_rate_threshold, "slow_call_rate_threshold")?;
        positive(self.slow_call_duration_ms, "slow_call_duration_ms")?;
        positive(self.open_wait_ms, "open_wait_ms")?;
        positive(
            u64::from(self.half_open_trial_calls),
            "half_open_trial_calls",
        )?;
        positive(self.half_open_timeout_ms, "half_open_timeout_ms")
    }
}

/// Admission of one workload class ("db_read", "db_write", "hashing").
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkheadConfig {
    /// Calls running at once (threads, for the blocking pool).
    pub max_concurrent: usize,
    /// Callers allowed to wait for a slot; when full, callers are rejected at once.
    pub queue_capacity: usize,
    /// A queued caller not admitted within this is rejected.
    pub queue_timeout_ms: u64,
    /// Reject at once a caller whose expected wait (its place in the queue times the
    /// mean time a slot is held, over the concurrency limit) exceeds `queue_timeout_ms`,
    /// instead of letting it wait out the deadline to be rejected then.
    pub reject_expected_timeouts: bool,
    /// Adapt the concurrency limit, between `min_concurrent` and `max_concurrent`, to
    /// what the dependency serves in parallel, judged from how long calls hold a slot
    /// (TCP Vegas). Not for the blocking pool, whose threads are fixed.
    pub adaptive: bool,
    /// Share the queue fairly between callers (the user, or the client IP when
    /// anonymous): one FIFO per caller, served round robin. `false`: one FIFO for all.
    pub fair: bool,
    /// Waiters one caller may have queued at once (bounded by `queue_capacity` too).
    pub max_queued_per_caller: usize,
    /// The adaptive limit's floor.
    pub min_concurrent: usize,
    /// How old the adaptive limit's no-load hold time may grow while the limit is in
    /// use before it is measured again, with a few calls run one at a time.
    pub probe_interval_ms: u64,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 16,
            queue_capacity: 64,
            queue_timeout_ms: 250,
            reject_expected_timeouts: true,
            fair: true,
            max_queued_per_caller: 64,
            adaptive: false,
            min_concurrent: 1,
            probe_interval_ms: 5_000,
        }
    }
}

impl BulkheadConfig {
    pub fn validate(&self) -> Result<(), String> {
        positive(self.max_concurrent as u64, "max_concurrent")?;
        if self.max_concurrent > 10_000 {
            return Err("max_concurrent must be at most 10000".into());
        }
        positive(self.min_concurrent as u64, "min_concurrent")?;
        if self.min_concurrent > self.max_concurrent {
            return Err("min_concurrent must be at most max_concurrent".into());
        }
        positive(self.probe_interval_ms, "probe_interval_ms")?;
        positive(self.max_queued_per_caller as u64, "max_queued_per_caller")?;
        positive(self.queue_timeout_ms, "queue_timeout_ms")
    }
}

/// Sharded read-through cache (per-user state).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Number of shard actors; 0 = one per available core.
    pub shards: usize,
    /// Entries in total (split evenly across shards; a hard bound).
    pub capacity: usize,
    /// Entries older than this are misses and get swept.
    pub ttl_secs: u64,
    /// Mailbox capacity of each shard actor (installs and sweeps go through it).
    pub mailbox_capacity: usize,
    /// Deadline of one load, and of a caller waiting for another caller's load.
    pub load_timeout_ms: u64,
    /// Deadline for a request-path send to a shard actor.
    pub send_timeout_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            shards: 0,
            capacity: 100_000,
            ttl_secs: 300,
            mailbox_capacity: 1024,
            load_timeout_ms: 1_000,
            send_timeout_ms: 100,
        }
    }
}

impl CacheConfig {
    /// Shard count with 0 resolved to the number of available cores.
    pub fn effective_shards(&self) -> usize {
        resolve_shards(self.shards)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.shards > 1024 {
            return Err("shards must be at most 1024".into());
        }
        if self.capacity < self.effective_shards() {
            return Err("capacity must be at least the number of shards".into());
        }
        positive(self.ttl_secs, "ttl_secs")?;
        positive(self.mailbox_capacity as u64, "mailbox_capacity")?;
        positive(self.load_timeout_ms, "load_timeout_ms")?;
        positive(self.send_timeout_ms, "send_timeout_ms")
    }
}

fn positive(value: u64, field: &str) -> Result<(), String> {
    if value == 0 {
        Err(format!("{field} must be at least 1"))
    } else {
        Ok(())
    }
}

fn rate(value: f64, field: &str) -> Result<(), String> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(format!("{field} must be in (0, 1]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        PolicyConfig::default().validate().unwrap();
        RateLimiterConfig::default().validate().unwrap();
        CircuitConfig::default().validate().unwrap();
        BulkheadConfig::default().validate().unwrap();
        CacheConfig::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let c = CircuitConfig {
            failure_rate_threshold: 1.5,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("failure_rate_threshold"));
        let b = BulkheadConfig {
            max_concurrent: 0,
            ..Default::default()
        };
        assert!(b.validate().unwrap_err().contains("max_concurrent"));
    }

    #[test]
    fn partial_toml_uses_defaults_and_unknown_keys_fail() {
        let p: PolicyConfig = toml::from_str("quota = 5\nalgorithm = \"sliding_window\"").unwrap();
        assert_eq!(p.quota, 5);
        assert_eq!(p.window_secs, 60);
        assert_eq!(p.algorithm, Algorithm::SlidingWindow);
        assert!(toml::from_str::<PolicyConfig>("qouta = 5").is_err());
        let c: CircuitConfig = toml::from_str("window = \"time\"").unwrap();
        assert_eq!(c.window, WindowKind::Time);
    }
}
