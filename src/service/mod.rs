//! Services: what handlers call, and the only way to the store. Every store call goes
//! through a bulkhead (admission: concurrency limit, bounded queue, queue deadline) and,
//! on Postgres, the Postgres circuit: the store is a private field of [`Guarded`]
//! (`guard.rs`), which offers nothing else. Password hashing goes to the hashing pool's
//! threads; users are read through the per-user cache.
//!
//! One file per resource: `users.rs` (the cached user and user writes), `auth.rs`
//! (login, refresh rotation, logout, access-token verification), `products.rs`,
//! `orders.rs` (placing an order with its idempotency claim), `bootstrap.rs` (the
//! bootstrap admin at start).
//!
//! Errors come back as [`ApiError`] with the contract's codes (`crate::error` maps store
//! and actor errors): a full bulkhead is 503 `overloaded`, an open circuit or a failing
//! database 503 `dependency_unavailable`, both with `Retry-After`.
//!
//! `services.rs` defines [`Services`] and starts it; `guard.rs` the guarded store;
//! `cached.rs` what the two caches hold (the cached user, verified access tokens);
//! `janitor.rs` the timer that purges idempotency keys past retention;
//! `product_cache.rs` the product cache (public product reads and list pages, dropped by
//! this instance's product writes and orders, by other instances' NOTIFYs, and by age).

mod auth;
mod bootstrap;
pub mod cached;
pub mod caller;
mod guard;
mod janitor;
mod limits;
mod orders;
pub mod product_cache;
mod products;
mod services;
mod users;

pub use cached::{CachedUser, VerifiedToken};
pub use limits::{FleetNames, Policies};
pub use orders::Placed;
pub use services::{absent_users_cache, Services};
pub use users::UserEdit;
