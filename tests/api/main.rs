//! One integration-test binary: every test talks HTTP to a running Bulkhead, on Postgres
//! (its own database) and on the in-memory store.

mod helpers;

mod auth_tokens;
mod bootstrap;
mod errors;
mod health;
mod store_conformance;
mod users;
mod users_list;
mod users_read;
mod users_status;
mod users_write;
