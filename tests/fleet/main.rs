//! Fleet tests: several instances of the real `bulkhead` binary, as separate processes,
//! on one test database (`instance.rs` starts and stops them).

mod instance;

mod harness;
mod invalidation;
mod product_cache;
mod ratelimit;
#[path = "../common/redis_server.rs"]
mod redis_server;
