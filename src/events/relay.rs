//! `OutboxRelay`: the supervised actor that owns the event relay.
//!
//! The actor owns a dedicated tokio runtime (one worker thread, built once, kept across
//! restarts) on which the NATS client, the relay's Postgres connection and the relay
//! loop live; no actix worker ever touches them, and no request waits on them. The
//! actor watches the loop: if it ends (a panic), the actor stops and its supervisor
//! restarts it, which starts a new loop (counted in
//! `bulkhead_actor_restarts_total{actor="outbox_relay"}`).
//!
//! The loop: connect to NATS (returns at once; the client reconnects on its own), open
//! an outbox session, and then, while leading: read a batch in order, publish it, wait
//! for the acks, delete it; when the outbox is empty, wait for a wake-up or the poll
//! interval. A failed publish keeps the rows and backs off (doubling up to
//! `events.backoff_max_ms`); a failed session is reopened after the same back-off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::publisher::Publisher;
use super::source::{OutboxSession, OutboxSource};
use crate::config::EventsConfig;

/// How often the gauges are refreshed at most (the backlog query counts the outbox).
const BACKLOG_EVERY: Duration = Duration::from_secs(1);
/// How often the actor checks that its loop still runs.
const WATCH_EVERY: Duration = Duration::from_secs(1);

pub struct OutboxRelay {
    config: Arc<EventsConfig>,
    source: Arc<dyn OutboxSource>,
    runtime: Option<Runtime>,
    task: Option<JoinHandle<()>>,
}

impl OutboxRelay {
    /// Start the relay under a supervisor, on an arbiter of its own.
    pub fn start(
        config: &EventsConfig,
        source: Arc<dyn OutboxSource>,
    ) -> anyhow::Result<Addr<Self>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("outbox-relay")
            .enable_all()
            .build()?;
        let relay = OutboxRelay {
            config: Arc::new(config.clone()),
            source,
            runtime: Some(runtime),
            task: None,
        };
        Ok(Supervisor::start_in_arbiter(
            &Arbiter::new().handle(),
            move |_| relay,
        ))
    }

    fn spawn_loop(&mut self) {
        if let Some(rt) = &self.runtime {
            let config = self.config.clone();
            let source = self.source.clone();
            self.task = Some(rt.spawn(run(config, source)));
        }
    }
}

impl Actor for OutboxRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // No messages are sent to the relay; a small mailbox is enough.
        ctx.set_mailbox_capacity(4);
        self.spawn_loop();
        ctx.run_interval(WATCH_EVERY, |relay, ctx| {
            if relay.task.as_ref().is_none_or(|t| t.is_finished()) {
                tracing::error!("outbox relay loop ended; restarting the relay");
                ctx.stop();
            }
        });
    }
}

impl Supervised for OutboxRelay {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        metrics::counter!("bulkhead_actor_restarts_total", "actor" => "outbox_relay").increment(1);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for OutboxRelay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        // Dropping a runtime blocks, which an actix thread must not do.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(cfg: &EventsConfig) -> Self {
        let initial = Duration::from_millis(cfg.backoff_initial_ms);
        Self {
            initial,
            max: Duration::from_millis(cfg.backoff_max_ms),
            next: initial,
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

async fn run(config: Arc<EventsConfig>, source: Arc<dyn OutboxSource>) {
    let Some(url) = config.nats_url.as_ref().map(|u| u.expose().to_string()) else {
        return std::future::pending().await;
    };
    let mut backoff = Backoff::new(&config);
    let mut publisher = loop {
        match Publisher::connect(&config, &url).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot set up the NATS client; retrying");
                backoff.wait().await;
            }
        }
    };
    backoff.reset();
    loop {
        match source.open().await {
            Ok(session) => {
                backoff.reset();
                if let Err(e) = relay_session(&config, session, &mut publisher, &mut backoff).await
                {
                    tracing::warn!(error = %e, "outbox session failed; reopening");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the outbox; retrying"),
        }
        metrics::gauge!("bulkhead_outbox_relay_active").set(0.0);
        backoff.wait().await;
    }
}

/// Relay until the session fails (its error is returned); NATS failures are waited out
/// inside.
async fn relay_session(
    config: &EventsConfig,
    mut session: Box<dyn OutboxSession>,
    publisher: &mut Publisher,
    backoff: &mut Backoff,
) -> anyhow::Result<()> {
    let poll = Duration::from_millis(config.poll_interval_ms);
    let linger = Duration::from_millis(config.linger_ms);
    let pending = metrics::gauge!("bulkhead_outbox_pending");
    let oldest = metrics::gauge!("bulkhead_outbox_oldest_pending_seconds");
    let active = metrics::gauge!("bulkhead_outbox_relay_active");
    let published = metrics::counter!("bulkhead_outbox_published_total");
    let failures = metrics::counter!("bulkhead_outbox_publish_failures_total");
    let mut last_backlog: Option<Instant> = None;
    loop {
        if last_backlog.is_none_or(|t| t.elapsed() >= BACKLOG_EVERY) {
            let b = session.backlog().await?;
            pending.set(b.pending as f64);
            oldest.set(b.oldest_secs);
            last_backlog = Some(Instant::now());
        }
        if !session.try_lead().await? {
            // Standing by: try again after the poll interval (not at every local write's
            // wake-up, which under load would be a lock query per write).
            active.set(0.0);
            tokio::time::sleep(poll).await;
            continue;
        }
        active.set(1.0);
        let batch = session.fetch(config.batch_size).await?;
        if batch.is_empty() {
            pending.set(0.0);
            oldest.set(0.0);
            session.wait(poll).await?;
            continue;
        }
        match publisher.publish(&batch).await {
            Ok(()) => {
                session.remove(&batch).await?;
                published.increment(batch.len() as u64);
                backoff.reset();
                if batch.len() < config.batch_size && !linger.is_zero() {
                    // Under load, let the next batch fill a little rather than pay a
                    // fetch, a publish round and a delete per event.
                    tokio::time::sleep(linger).await;
                }
            }
            Err(e) => {
                failures.increment(1);
                tracing::warn!(error = %e, events = batch.len(), "publishing events failed; backing off");
                // Keep the backlog gauges moving while NATS is away.
                last_backlog = None;
                backoff.wait().await;
            }
        }
    }
}
