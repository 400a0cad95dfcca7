//! Building and running the service: [`Application::build`] opens the store, binds the
//! listener (port 0 picks a free one, which tests use) and starts the workers;
//! [`Application::run_until_stopped`] serves until SIGTERM/SIGINT, then drains, and
//! applies a configuration reload on every SIGHUP ([`crate::reload`]).

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};

use crate::config::Config;
use crate::http::{self, AppState, Lifecycle};
use crate::reload::Reloader;
use crate::service::Services;
use crate::store;

pub struct Application {
    port: u16,
    server: Server,
    handle: ServerHandle,
    lifecycle: Arc<Lifecycle>,
    shutdown_timeout: Duration,
    shutdown_delay: Duration,
    /// The event relay (events on), kept for the process's life.
    _relay: Option<actix::Addr<crate::events::relay::OutboxRelay>>,
    reloader: Arc<Reloader>,
    hangups: Hangups,
}

impl Application {
    /// Build from `config`; a reload re-reads the defaults and the environment only.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_from(config, None).await
    }

    /// Build from `config`, loaded from `path`, which a reload (SIGHUP) re-reads.
    pub async fn build_from(config: Config, path: Option<PathBuf>) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let metrics = crate::metrics::install(&config.metrics);
        let store = store::open::open(&config, config.database.migrate_on_start).await?;
        crate::events::describe_metrics();
        let relay = match store.clone().outbox_source() {
            Some(source) => Some(crate::events::relay::OutboxRelay::start(
                &config.events,
                source,
            )?),
            None => None,
        };
        let svc = Services::start(config.clone(), store)?;
        svc.ensure_bootstrap_admin().await?;
        let gateway = crate::gateway::Gateway::start(&config.gateway)?;
        let reloader = Arc::new(Reloader::new(path, config.clone(), &svc, gateway.clone()));
        // Before the listener accepts anything: SIGHUP's default action ends the process.
        let hangups = hangups();
        let lifecycle = Arc::new(Lifecycle::default());
        let state = web::Data::new(AppState {
            config: config.clone(),
            svc,
            lifecycle: lifecycle.clone(),
            metrics,
            gateway,
        });

        let listener = TcpListener::bind(config.server.bind)
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.server.bind))?;
        let port = listener.local_addr()?.port();
        let s = &config.server;
        let workers = if s.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            s.workers
        };
        let pool_fds = (config.database.read_pool_size + config.database.write_pool_size) as u64;
        let max_connections = http::connections::clamp_to_fd_limit(
            s.max_connections_per_worker,
            workers,
            http::connections::FD_RESERVE + pool_fds,
        );
        let per_ip =
            http::connections::PerIpConnections::new(s.max_connections_per_ip, &s.trusted_proxies);
        let server = HttpServer::new(move || http::app(state.clone()))
            // Before `listen`: the hook is captured when the listener is added.
            .on_connect(move |conn, ext| per_ip.on_connect(conn, ext))
            // Nagle off: a streamed answer's last small write must not wait for the
            // client's delayed ACK (~40 ms); actix-web leaves the OS default otherwise.
            .tcp_nodelay(true)
            .workers(workers)
            .backlog(s.backlog)
            .max_connections(max_connections)
            .keep_alive(Duration::from_secs(s.keep_alive_secs))
            .client_request_timeout(Duration::from_millis(s.client_request_timeout_ms))
            .shutdown_timeout(s.shutdown_timeout_secs)
            // Signals are ours: SIGINT must drain too, and /ready must say so first.
            .disable_signals()
            .listen(listener)?
            .run();
        tracing::info!(
            bind = %config.server.bind,
            port,
            workers,
            backend = store_backend(&config),
            "bulkhead listening"
        );
        Ok(Self {
            port,
            handle: server.handle(),
            server,
            lifecycle,
            shutdown_delay: Duration::from_millis(s.shutdown_delay_ms),
            shutdown_timeout: Duration::from_secs(s.shutdown_timeout_secs),
            _relay: relay,
            reloader,
            hangups,
        })
    }

    /// Applies configuration reloads; SIGHUP calls [`Reloader::reload`].
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server gracefully, like a signal does.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            handle: self.handle.clone(),
            lifecycle: self.lifecycle.clone(),
            delay: self.shutdown_delay,
        }
    }

    /// Serve until SIGTERM or SIGINT (or a [`ShutdownHandle`]), then stop accepting and
    /// drain in-flight requests within `server.shutdown_timeout_secs`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopper = self.shutdown_handle();
        let timeout = self.shutdown_timeout;
        let signals = actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!(?timeout, "shutdown signal received; draining");
            stopper.stop().await;
        });
        let reloads = actix_web::rt::spawn(reload_on_hangup(self.hangups, self.reloader.clone()));
        let result = self.server.await;
        signals.abort();
        reloads.abort();
        tracing::info!("bulkhead stopped");
        result
    }
}

fn store_backend(config: &Config) -> &'static str {
    if config.database.url.is_some() {
        "postgres"
    } else {
        "memory"
    }
}

#[derive(Clone)]
pub struct ShutdownHandle {
    handle: ServerHandle,
    lifecycle: Arc<Lifecycle>,
    delay: Duration,
}

impl ShutdownHandle {
    /// Mark the process as shutting down (so `/ready` answers 503), wait out the
    /// lame-duck delay, then stop accepting and drain.
    pub async fn stop(&self) {
        self.lifecycle.begin_shutdown();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.handle.stop(true).await;
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

/// The SIGHUP stream, installed once (from then on the signal no longer ends the process).
#[cfg(unix)]
fn hangups() -> Hangups {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup());
    if hup.is_err() {
        tracing::error!("could not install the SIGHUP handler; reloads are off");
    }
    hup.ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangups {}

/// Every SIGHUP reloads the configuration; the outcome is logged and counted there.
#[cfg(unix)]
async fn reload_on_hangup(hangups: Hangups, reloader: Arc<Reloader>) {
    let Some(mut hup) = hangups else {
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received; reloading the configuration");
        // Outcome logged and counted by the reloader.
        let _ = reloader.reload().await;
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(_hangups: Hangups, _reloader: Arc<Reloader>) {}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("could not install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
