//! Bulkhead's actors: rate limiters, circuit breakers, bulkheads and per-user caches.
//!
//! **Invariant:** no HTTP here. The service maps [`ActorError`] to responses.
//!
//! Each handle is cheap to clone and `Send + Sync`; start them inside a running actix
//! `System` after installing the metrics recorder (metric handles are registered at start):
//! * [`RateLimiter`] — sharded GCRA / sliding-window limits and per-key concurrency;
//! * [`Circuit`] — Resilience4j-style breaker per dependency;
//! * [`Bulkhead`] / [`BlockingPool`] — admission (concurrency + bounded, deadlined queue)
//!   per workload class, the latter on dedicated threads for password hashing;
//! * [`ShardedCache`] — sharded read-through cache with single-flight loads;
//! * [`RedisLimiter`] — the Redis side of global (fleet-wide) rate limits: leases of
//!   tokens, heartbeats, a circuit in front of Redis.
//!
//! Each takes new settings live (`reconfigure`: a configuration reload), between two
//! messages or under the lock it already takes per call; nothing on the hot path locks
//! for it.
//!
//! Every mailbox and queue is bounded from config; request paths `try_send` and await
//! replies under a deadline; actors run under `actix::Supervisor` and a panicking handler
//! answers its caller `Panicked` and is restarted (see [`supervise`]).

pub mod bulkhead;
pub mod cache;
pub mod circuit;
pub mod config;
mod error;
pub mod fleet;
pub mod ratelimit;
pub mod supervise;

pub use bulkhead::{guarded, guarded_as, BlockingPool, Bulkhead, Slot};
pub use cache::ShardedCache;
pub use circuit::{Circuit, CircuitPermit, CircuitState, Classify, Outcome};
pub use config::{
    Algorithm, BulkheadConfig, CacheConfig, CircuitConfig, PolicyConfig, RateLimiterConfig,
    WindowKind,
};
pub use error::ActorError;
pub use fleet::{RedisLimiter, RedisSettings};
pub use ratelimit::{ConcurrencyPermit, Decision, PolicyId, PolicyName, RateLimiter};
