//! Structured logging with `tracing`: JSON lines or human-readable text, level from
//! `RUST_LOG` when set, otherwise `log.level`. Every request runs inside a span that
//! carries its `request_id`, so every line logged while serving it names the request.
//!
//! Lines are written by a dedicated thread through a bounded buffer
//! (`tracing-appender`'s non-blocking writer): a worker never blocks on a `write(2)` per
//! line, which measured at half of the hot path's throughput; that thread gathers the
//! lines queued meanwhile into one write. When the buffer is full,
//! lines are dropped rather than stalling requests (counted by the appender); the
//! returned guard flushes what is buffered when the process exits.
//!
//! The access log ([`crate::access_log`]) writes through the same queue and thread,
//! enabled by `log.access_log` whatever `log.level` says, so `level = "warn"` with the
//! access log on still writes it.
//!
//! The filter sits behind tracing-subscriber's `reload` layer: [`set_filter`] swaps in a
//! new `log.level` / `log.access_log` at run time (a configuration reload).

use std::sync::OnceLock;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogConfig, LogFormat};

/// Bytes of log lines gathered into one write to stderr.
const STDERR_BUFFER: usize = 64 * 1024;

/// Install the global subscriber and return the guard that flushes buffered lines on
/// drop (keep it alive until exit). Later calls are no-ops (tests build many apps in one
/// process) and return `None`.
/// Swaps the installed filter; set once, by [`init`].
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;
static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

pub fn init(cfg: &LogConfig) -> Option<WorkerGuard> {
    // The writer thread drains every queued line into the buffer and flushes when the
    // queue is empty (tracing-appender's worker), so under load one write(2) carries
    // many lines, and an idle service still writes each line at once.
    let stderr = std::io::BufWriter::with_capacity(STDERR_BUFFER, std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking(stderr);
    let access = writer.clone();
    let builder = fmt().with_env_filter(filter(cfg)).with_writer(writer);
    let installed = match cfg.format {
        LogFormat::Json => {
            let builder = builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder.try_init().map(|()| {
                keep_setter(Box::new(move |f| {
                    handle.reload(f).map_err(|e| e.to_string())
                }))
            })
        }
        LogFormat::Text => {
            let builder = builder.with_target(false).with_filter_reloading();
            let handle = builder.reload_handle();
            builder.try_init().map(|()| {
                keep_setter(Box::new(move |f| {
                    handle.reload(f).map_err(|e| e.to_string())
                }))
            })
        }
    };
    installed.ok().map(|()| {
        crate::access_log::install(access, cfg.format == LogFormat::Json, cfg.access_log);
        guard
    })
}

fn keep_setter(set: SetFilter) {
    let _ = SET_FILTER.set(set);
}

/// Applies a new `log.level` / `log.access_log` to the installed subscriber (a no-op
/// when this process installed none, as in tests that build many apps).
pub fn set_filter(cfg: &LogConfig) -> Result<(), String> {
    crate::access_log::set_enabled(cfg.access_log);
    match SET_FILTER.get() {
        Some(set) => set(filter(cfg)).map_err(|e| format!("log.level: {e}")),
        None => Ok(()),
    }
}

/// `RUST_LOG` when set and valid, else `log.level`.
fn filter(cfg: &LogConfig) -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&cfg.level))
}
