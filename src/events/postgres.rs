//! The Postgres outbox as the relay reads it: one dedicated connection per relay (not a
//! pool's), which LISTENs for the writers' NOTIFY, holds the relay lock and reads and
//! trims the outbox.
//!
//! The relay lock is a session advisory lock: it lives exactly as long as the
//! connection, so a relay that dies (process killed, connection lost) frees it at once
//! and a standing-by relay of another process takes over at its next try. Only the
//! holder publishes, which is what keeps one resource's events in order across
//! processes.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls, Statement};

use super::source::{Backlog, OutboxSession, OutboxSource, Pending};
use super::{Wake, NOTIFY_CHANNEL};
use std::sync::Arc;

/// The advisory lock key of the outbox relay (any fixed number not used elsewhere:
/// `migrate.rs` uses its own).
const RELAY_LOCK: i64 = 0x6275_6c6b_6f75_7462; // "bulkoutb"

pub struct PgOutbox {
    pub config: tokio_postgres::Config,
    pub wake: Arc<Wake>,
    pub timeout: Duration,
}

impl PgOutbox {
    /// `database` is the service's own connection config; the relay's connection gets
    /// its own application name and a statement timeout of `timeout`.
    pub fn new(
        database: &tokio_postgres::Config,
        wake: Arc<Wake>,
        timeout: Duration,
        connect: Duration,
    ) -> Self {
        let mut config = database.clone();
        config.application_name("bulkhead-relay");
        config.connect_timeout(connect);
        config.options(format!("-c statement_timeout={}", timeout.as_millis()));
        Self {
            config,
            wake,
            timeout,
        }
    }
}

#[async_trait]
impl OutboxSource for PgOutbox {
    async fn open(&self) -> anyhow::Result<Box<dyn OutboxSession>> {
        let (client, mut connection) =
            tokio::time::timeout(self.timeout, self.config.connect(NoTls))
                .await
                .map_err(|_| anyhow::anyhow!("connecting to Postgres timed out"))??;
        // NOTIFYs coalesce into one pending wake-up: the relay drains everything anyway.
        let (tx, rx) = mpsc::channel(1);
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let driver = tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = tx.try_send(());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay connection failed");
                        break;
                    }
                }
            }
        });
        let fetch = timed(
            self.timeout,
            client.prepare("SELECT seq, id, kind, payload FROM outbox ORDER BY seq LIMIT $1"),
        )
        .await?;
        let remove = timed(
            self.timeout,
            client.prepare("DELETE FROM outbox WHERE seq = ANY($1)"),
        )
        .await?;
        let session = PgSession {
            fetch,
            remove,
            client,
            notified: rx,
            driver,
            wake: self.wake.clone(),
            leading: false,
            timeout: self.timeout,
        };
        // LISTEN before the first read: a NOTIFY sent after this is not missed, and what
        // was written before is found by that read.
        session
            .deadline(
                session
                    .client
                    .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}")),
            )
            .await?;
        Ok(Box::new(session))
    }
}

struct PgSession {
    fetch: Statement,
    remove: Statement,
    client: Client,
    notified: mpsc::Receiver<()>,
    driver: tokio::task::JoinHandle<()>,
    wake: Arc<Wake>,
    leading: bool,
    timeout: Duration,
}

impl Drop for PgSession {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

async fn timed<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!("outbox query timed out"),
    }
}

impl PgSession {
    async fn deadline<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> anyhow::Result<T> {
        timed(self.timeout, f).await
    }
}

#[async_trait]
impl OutboxSession for PgSession {
    async fn try_lead(&mut self) -> anyhow::Result<bool> {
        if !self.leading {
            let row = self
                .deadline(
                    self.client
                        .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_LOCK]),
                )
                .await?;
            self.leading = row.get(0);
        }
        Ok(self.leading)
    }

    async fn fetch(&mut self, limit: usize) -> anyhow::Result<Vec<Pending>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Every committed row this statement's snapshot sees, in seq order. A row of a
        // transaction still in flight is not seen now and is read on a later pass: no
        // cursor moves past it. Within one resource, seq order is commit order (the
        // writer took the seq after locking the resource's row), and a row is visible
        // only if every earlier-committed row of its resource is.
        let rows = self
            .deadline(self.client.query(&self.fetch, &[&limit]))
            .await?;
        Ok(rows
            .iter()
            .map(|r| Pending {
                seq: r.get(0),
                id: r.get(1),
                kind: r.get(2),
                payload: r.get(3),
            })
            .collect())
    }

    async fn remove(&mut self, published: &[Pending]) -> anyhow::Result<()> {
        let seqs: Vec<i64> = published.iter().map(|p| p.seq).collect();
        self.deadline(self.client.execute(&self.remove, &[&seqs]))
            .await?;
        Ok(())
    }

    async fn backlog(&mut self) -> anyhow::Result<Backlog> {
        let row = self
            .deadline(self.client.query_one(
                "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0)
                 FROM outbox",
                &[],
            ))
            .await?;
        let pending: i64 = row.get(0);
        let oldest: f64 = row.get(1);
        Ok(Backlog {
            pending: u64::try_from(pending).unwrap_or(0),
            oldest_secs: oldest.max(0.0),
        })
    }

    async fn wait(&mut self, max: Duration) -> anyhow::Result<()> {
        if self.driver.is_finished() || self.client.is_closed() {
            anyhow::bail!("outbox relay connection closed");
        }
        tokio::select! {
            n = self.notified.recv() => {
                if n.is_none() {
                    anyhow::bail!("outbox relay connection closed");
                }
            }
            _ = self.wake.woken() => {}
            _ = tokio::time::sleep(max) => {}
        }
        Ok(())
    }
}
