//! One integration-test binary: every test talks HTTP to a running Bulkhead, on Postgres
//! (its own database) and on the in-memory store.

mod helpers;

mod alerts;
mod attacks;
mod auth_tokens;
mod bootstrap;
mod compression;
mod errors;
mod events;
mod events_process;
mod fuzz;
mod health;
mod metrics;
mod openapi;
mod order_batches;
mod order_idempotency;
mod orders;
mod product_cache;
mod product_listing;
mod product_rules;
mod products;
mod prometheus;
mod resilience;
mod shop_conformance;
mod store_conformance;
mod users;
mod users_list;
mod users_read;
mod users_status;
mod users_write;
