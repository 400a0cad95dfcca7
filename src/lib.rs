//! Bulkhead: an actor-based, high-throughput REST API service.
//!
//! See `ARCHITECTURE.md` for the map. The binary (`src/main.rs`) only calls [`cli::main`].

pub mod access_log;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod gateway;
pub mod gzip;
pub mod http;
pub mod invalidation;
pub mod metrics;
pub mod reload;
pub mod runtime;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
