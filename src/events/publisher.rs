//! The JetStream side of the relay: one NATS client (built once, on the relay's runtime),
//! the stream ensured before publishing, batches published with `Nats-Msg-Id` and their
//! acks awaited together.

use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, context::ContextBuilder, stream};
use async_nats::HeaderMap;

use super::source::Pending;
use crate::config::EventsConfig;

pub struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
    stream: String,
    duplicate_window: Duration,
    timeout: Duration,
    /// Whether the stream was found or created on this connection; reset after a failed
    /// batch (a broker restarted without its store has lost it).
    stream_ready: bool,
}

impl Publisher {
    /// Connect to `events.nats_url`. Returns at once when NATS is down: the client keeps
    /// reconnecting in the background and [`Publisher::publish`] fails until it is back.
    pub async fn connect(cfg: &EventsConfig, url: &str) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(cfg.publish_timeout_ms);
        let max_backoff = Duration::from_millis(cfg.backoff_max_ms);
        let client = async_nats::ConnectOptions::new()
            .name("bulkhead-relay")
            .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .request_timeout(Some(timeout))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempt| {
                let exp = u32::try_from(attempt.min(16)).unwrap_or(16);
                (Duration::from_millis(50) * 2u32.saturating_pow(exp)).min(max_backoff)
            })
            .connect(url)
            .await?;
        let js = ContextBuilder::new()
            .timeout(timeout)
            .ack_timeout(timeout)
            .max_ack_inflight(cfg.batch_size.max(1))
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Self {
            client,
            js,
            prefix: cfg.subject_prefix.clone(),
            stream: cfg.stream.clone(),
            duplicate_window: Duration::from_secs(cfg.duplicate_window_secs),
            timeout,
            stream_ready: false,
        })
    }

    pub fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Find the stream, or create it on `<prefix>.>` (file storage, the configured
    /// duplicate window). An existing stream is used as it is.
    async fn ensure_stream(&mut self) -> anyhow::Result<()> {
        if self.stream_ready {
            return Ok(());
        }
        let config = stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.prefix)],
            storage: stream::StorageType::File,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        };
        tokio::time::timeout(self.timeout, self.js.get_or_create_stream(config))
            .await
            .map_err(|_| anyhow::anyhow!("creating stream {} timed out", self.stream))?
            .map_err(|e| anyhow::anyhow!("stream {}: {e}", self.stream))?;
        self.stream_ready = true;
        tracing::info!(stream = %self.stream, "event stream ready");
        Ok(())
    }

    /// Publish `batch` in order on this one connection (so the broker stores it in that
    /// order) and wait for every ack. Ok only when all were acknowledged (stored or found
    /// duplicate); on error none may be taken as published.
    pub async fn publish(&mut self, batch: &[Pending]) -> anyhow::Result<()> {
        if !self.connected() {
            anyhow::bail!("NATS is not connected");
        }
        let result = self.publish_inner(batch).await;
        if result.is_err() {
            self.stream_ready = false;
        }
        result
    }

    async fn publish_inner(&mut self, batch: &[Pending]) -> anyhow::Result<()> {
        self.ensure_stream().await?;
        let send_all = async {
            let mut acks = Vec::with_capacity(batch.len());
            for p in batch {
                let mut headers = HeaderMap::new();
                headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    p.id.to_string().as_str(),
                );
                headers.insert("Content-Type", "application/cloudevents+json");
                let subject = format!("{}.{}", self.prefix, p.kind);
                let ack = self
                    .js
                    .publish_with_headers(subject, headers, p.payload.clone().into())
                    .await?;
                acks.push(ack);
            }
            for ack in acks {
                ack.await?;
            }
            Ok::<(), anyhow::Error>(())
        };
        // The acks have their own timeout; this bounds the whole batch.
        tokio::time::timeout(self.timeout * 2, send_all)
            .await
            .map_err(|_| anyhow::anyhow!("publishing a batch timed out"))?
    }
}
