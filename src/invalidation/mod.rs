//! Cross-instance cache invalidation over Postgres LISTEN/NOTIFY.
//!
//! Triggers (`sql/0004_invalidation.sql`) announce every committed change that cached
//! state depends on: a users row (`bulkhead_users`), a revoked refresh-token family
//! (`bulkhead_token_families`) and a catalogue change of a product (`bulkhead_products`),
//! each with the id, the new version and a commit-time timestamp. [`Invalidations`] is what
//! the service shares: it applies a notification to the caches (the user cache evicts
//! entries older than the announced version; product changes go to subscribers), tracks
//! whether the listener is connected, and while it is not, makes the user cache trust no
//! entry older than `cache.users.degraded_ttl_ms`. [`Invalidator`] is the supervised actor
//! that owns the listener: its own connection outside the pool, on a thread and tokio
//! runtime of its own (`listener.rs`), reconnecting with backoff, resynchronising (LISTEN
//! first, then drop every cached user) each time it connects.
//!
//! Metrics: `bulkhead_cache_invalidation_lag_seconds{kind}` (commit to eviction),
//! `bulkhead_invalidation_listener_connected`, `bulkhead_invalidation_reconnects_total`,
//! `bulkhead_invalidation_slow_checks_total`.
//!
//! Files: `hub.rs` (the channels and [`Invalidations`]), `invalidator.rs` (the actor),
//! `listener.rs` (the listener's connection loop).

mod hub;
mod invalidator;
mod listener;

pub use hub::*;
pub use invalidator::{Invalidator, InvalidatorHandle};
