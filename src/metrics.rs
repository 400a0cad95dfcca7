//! The Prometheus recorder behind the `metrics` facade, and what is sampled at scrape.
//!
//! Installed once per process (the facade has one global recorder); histograms get the
//! configured buckets (seconds) so they render as aggregatable `_bucket` series rather
//! than summaries. Gauges of things that are cheaper to read than to track (pool status,
//! process memory and CPU) are sampled when `/metrics` is scraped.
//!
//! Every metric is listed with its meaning in README.md ("Metrics"). Labels are bounded:
//! route templates, status classes, actor kinds, policy, pool, bulkhead and circuit names.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::MetricsConfig;

/// Buckets (seconds) of `bulkhead_cache_invalidation_lag_seconds`: commit-to-eviction is
/// a millisecond or two on one network, so the request-latency buckets are too coarse.
const INVALIDATION_LAG_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Buckets of `bulkhead_order_batch_size` (orders a transaction; up to
/// `database.order_batch_max`, at most 1000).
const ORDER_BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 1000.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// Install the recorder (first call wins) and return the handle that renders a scrape.
pub fn install(cfg: &MetricsConfig) -> Option<PrometheusHandle> {
    if !cfg.enabled {
        return None;
    }
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&cfg.latency_buckets_secs)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("bulkhead_cache_invalidation_lag_seconds".into()),
                        INVALIDATION_LAG_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("bulkhead_order_batch_size".into()),
                        ORDER_BATCH_BUCKETS,
                    )
                });
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "metrics buckets rejected; metrics disabled");
                    return None;
                }
            };
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    let upkeep = handle.clone();
                    // Drains histogram samples into their buckets; without it memory grows.
                    std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        })
                        .ok();
                    Some(handle)
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not install the metrics recorder");
                    None
                }
            }
        })
        .clone()
}

/// Sample the scrape-time gauges, then render the exposition.
pub fn scrape(
    handle: &PrometheusHandle,
    pools: &[(&'static str, deadpool_postgres::Status)],
) -> String {
    PROCESS
        .get_or_init(|| {
            let c = metrics_process::Collector::default();
            c.describe();
            c
        })
        .collect();
    for &(pool, status) in pools {
        metrics::gauge!("bulkhead_db_pool_size", "pool" => pool).set(status.size as f64);
        metrics::gauge!("bulkhead_db_pool_max_size", "pool" => pool).set(status.max_size as f64);
        metrics::gauge!("bulkhead_db_pool_available", "pool" => pool).set(status.available as f64);
        metrics::gauge!("bulkhead_db_pool_waiting", "pool" => pool).set(status.waiting as f64);
    }
    handle.render()
}

fn describe() {
    describe_counter!(
        "bulkhead_http_requests_total",
        "HTTP requests answered, by method, route template and status class"
    );
    describe_counter!(
        "bulkhead_http_server_errors_total",
        "HTTP requests answered 5xx, by route template and status code"
    );
    describe_histogram!(
        "bulkhead_http_request_duration_seconds",
        Unit::Seconds,
        "Time from request head to response, by method and route template"
    );
    describe_gauge!(
        "bulkhead_http_requests_in_flight",
        "HTTP requests being served now"
    );
    describe_gauge!("bulkhead_db_pool_size", "Open connections in the pool");
    describe_gauge!("bulkhead_db_pool_max_size", "Configured pool size");
    describe_gauge!(
        "bulkhead_db_pool_available",
        "Idle connections ready in the pool"
    );
    describe_gauge!(
        "bulkhead_db_pool_waiting",
        "Callers waiting for a pooled connection"
    );
    describe_counter!(
        "bulkhead_connections_refused_total",
        "Connections shut down as they were accepted, by reason (per_ip: the client IP already holds server.max_connections_per_ip)"
    );
    describe_counter!(
        "bulkhead_actor_messages_processed_total",
        "Messages handled, by actor kind"
    );
    describe_counter!(
        "bulkhead_actor_messages_rejected_total",
        "Messages refused because a mailbox was full or closed, by actor kind"
    );
    describe_counter!(
        "bulkhead_actor_restarts_total",
        "Actor restarts by their supervisor, by actor kind"
    );
    describe_gauge!(
        "bulkhead_actor_mailbox_depth",
        "Messages waiting in mailboxes, by actor kind"
    );
    describe_counter!(
        "bulkhead_ratelimit_decisions_total",
        "Rate-limit decisions by policy and outcome (allowed, limited)"
    );
    describe_gauge!(
        "bulkhead_ratelimit_global",
        "1 while the user, ip and login limits are decided through Redis, 0 in the local fallback or without redis.url"
    );
    describe_gauge!(
        "bulkhead_ratelimit_fleet_size",
        "Instances sharing each global quota: rate_limits.fleet_size or the count seen through Redis"
    );
    describe_gauge!(
        "bulkhead_circuit_state",
        "1 for the circuit's current state, 0 for the others"
    );
    describe_counter!(
        "bulkhead_circuit_transitions_total",
        "Circuit state changes, by circuit and from/to state"
    );
    describe_counter!(
        "bulkhead_circuit_calls_total",
        "Calls through a circuit by outcome"
    );
    describe_gauge!(
        "bulkhead_bulkhead_in_flight",
        "Admitted calls running, by bulkhead"
    );
    describe_gauge!(
        "bulkhead_bulkhead_queued",
        "Calls waiting for admission, by bulkhead"
    );
    describe_counter!(
        "bulkhead_bulkhead_rejected_total",
        "Calls refused by a bulkhead, by reason (queue_full, expected_wait, queue_timeout)"
    );
    describe_gauge!(
        "bulkhead_bulkhead_limit",
        "Concurrency limit in force, by bulkhead (adaptive for the database bulkheads)"
    );
    describe_histogram!(
        "bulkhead_bulkhead_queue_wait_seconds",
        Unit::Seconds,
        "Time spent waiting for admission, by bulkhead"
    );
    describe_histogram!(
        "bulkhead_order_batch_size",
        "Orders placed in one transaction by the order writers (database.order_batch_max)"
    );
    describe_counter!("bulkhead_cache_hits_total", "Cache hits, by cache");
    describe_counter!("bulkhead_cache_misses_total", "Cache misses, by cache");
    describe_counter!(
        "bulkhead_cache_evictions_total",
        "Entries evicted for capacity or age, by cache"
    );
    describe_gauge!("bulkhead_cache_entries", "Entries cached, by cache");
    describe_histogram!(
        "bulkhead_cache_invalidation_lag_seconds",
        Unit::Seconds,
        "Time from a change's commit (any instance) to its eviction here, by kind (user, token_family, product)"
    );
    describe_gauge!(
        "bulkhead_invalidation_listener_connected",
        "1 while the invalidation listener is connected and LISTENing, else 0"
    );
    describe_counter!(
        "bulkhead_invalidation_reconnects_total",
        "Times the invalidation listener connected again after losing its connection"
    );
    describe_counter!(
        "bulkhead_invalidation_slow_checks_total",
        "Connection checks of the invalidation listener answered late or not at all (caches degraded meanwhile)"
    );
}
