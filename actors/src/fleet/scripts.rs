//! The Lua scripts Redis runs atomically, on its own clock (`TIME`), so instances with
//! skewed clocks still share one limit (the approach of redis-cell and go-redis's
//! redis_rate; here a call can take a batch of tokens, the lease).

use std::time::Duration;

use crate::ratelimit::lease::Grant;

/// GCRA for a batch: `KEYS[1]` holds the key's theoretical arrival time (TAT, µs since
/// 2023-11-14, small enough for Lua's doubles). `ARGV`: emission interval `T` (µs),
/// tolerance `tau` = `T * burst` (µs), tokens wanted. Grants `min(wanted, room)` where
/// `room` is how many single requests GCRA would admit now, and moves the TAT by
/// `granted * T`: a grant of `k` is exactly `k` admissions of one GCRA.
/// Returns `{granted, remaining, retry_after_us, reset_us}`.
pub const LEASE: &str = r#"
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local room = math.floor((tau - (tat - now)) / T)
if room < 1 then
  return {0, 0, tat + T - tau - now, tat - now}
end
local k = math.min(want, room)
local new_tat = tat + k * T
local ttl_ms = math.floor((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', ttl_ms))
return {k, room - k, 0, new_tat - now}
"#;

/// Heartbeat: `KEYS[1]` is a sorted set of instance ids scored by their last beat (ms,
/// Redis's clock). `ARGV`: this instance's id, the time after which an instance counts as
/// gone (ms). Returns the number of live instances, this one included.
pub const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - ttl))
redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl * 2))
return redis.call('ZCARD', KEYS[1])
"#;

/// Reads the lease script's answer.
pub fn grant(reply: &[i64]) -> Option<Grant> {
    let [granted, remaining, retry_us, reset_us] = reply else {
        return None;
    };
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    Some(Grant {
        granted: u32::try_from(*granted).ok()?,
        remaining: u32::try_from(*remaining).unwrap_or(u32::MAX),
        retry_after: us(*retry_us),
        reset: us(*reset_us),
    })
}
