//! The supervised actor that owns the listener thread (`listener.rs`).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bulkhead_actors::supervise::Meter;
use tokio::sync::watch;

use super::hub::{Invalidations, APPLICATION_NAME};
use super::listener;
use crate::config::InvalidationConfig;

/// What its owner keeps of a started [`Invalidator`]: the actor lives while this does
/// (dropping the last address stops it, and with it the listener thread).
pub struct InvalidatorHandle {
    _addr: Addr<Invalidator>,
}

/// The supervised actor that owns the listener thread. Restarted (by its supervisor)
/// when the thread ends for any reason but a stop; dropping it stops the thread.
pub struct Invalidator {
    hub: Arc<Invalidations>,
    cfg: InvalidationConfig,
    pg: tokio_postgres::Config,
    meter: Arc<Meter>,
    running: Option<Running>,
}

struct Running {
    thread: std::thread::JoinHandle<()>,
    /// Dropping (or sending on) it ends the listener.
    _stop: watch::Sender<bool>,
}

/// How often the actor checks that its listener thread is alive.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

impl Invalidator {
    /// Start the supervised actor on the current arbiter. `database_url` was validated
    /// with the configuration.
    pub fn start(
        hub: Arc<Invalidations>,
        cfg: InvalidationConfig,
        database_url: &str,
    ) -> anyhow::Result<InvalidatorHandle> {
        let mut pg: tokio_postgres::Config = database_url
            .parse()
            .map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
        pg.application_name(APPLICATION_NAME)
            .connect_timeout(Duration::from_millis(cfg.ping_interval_ms))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5));
        let actor = Invalidator {
            hub,
            cfg,
            pg,
            meter: Arc::new(Meter::new("invalidator")),
            running: None,
        };
        Ok(InvalidatorHandle {
            _addr: Supervisor::start(move |_| actor),
        })
    }

    fn spawn_listener(&mut self) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (hub, cfg, pg) = (self.hub.clone(), self.cfg.clone(), self.pg.clone());
        let thread = std::thread::Builder::new()
            .name("bulkhead-listener".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "invalidation listener: no runtime");
                        return;
                    }
                };
                runtime.block_on(listener::run(hub, cfg, pg, stop_rx));
            })?;
        self.running = Some(Running {
            thread,
            _stop: stop_tx,
        });
        Ok(())
    }
}

impl Actor for Invalidator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Err(e) = self.spawn_listener() {
            tracing::error!(error = %e, "could not start the invalidation listener thread");
            ctx.stop();
            return;
        }
        ctx.run_interval(WATCH_INTERVAL, |act, ctx| {
            if act.running.as_ref().is_none_or(|r| r.thread.is_finished()) {
                tracing::error!("invalidation listener thread ended; restarting it");
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Ends the thread (the stop sender is dropped with it).
        self.running = None;
    }
}

impl Supervised for Invalidator {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.running = None;
        self.hub.disconnected();
        self.meter.restarted();
    }
}
