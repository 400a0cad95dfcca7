//! The Prometheus recorder behind the `metrics` facade.
//!
//! Installed once per process (the facade has one global recorder); histograms get the
//! configured buckets (seconds) so they render as aggregatable `_bucket` series rather
//! than summaries.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::MetricsConfig;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the recorder (first call wins) and return the handle that renders a scrape.
pub fn install(cfg: &MetricsConfig) -> Option<PrometheusHandle> {
    if !cfg.enabled {
        return None;
    }
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new().set_buckets(&cfg.latency_buckets_secs) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "metrics buckets rejected; metrics disabled");
                    return None;
                }
            };
            match builder.install_recorder() {
                Ok(handle) => {
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
