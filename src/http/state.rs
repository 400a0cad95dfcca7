//! What every worker shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::service::Services;

/// Shared by every worker; cheap to clone.
pub struct AppState {
    pub config: Arc<Config>,
    pub svc: Services,
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Process-wide lifecycle flags.
#[derive(Debug, Default)]
pub struct Lifecycle {
    shutting_down: AtomicBool,
}

impl Lifecycle {
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
