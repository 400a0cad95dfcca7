//! The listener loop, on the invalidator's own thread and runtime: connect (its own
//! connection, outside the pool), LISTEN, resynchronise, then apply notifications as they
//! arrive and check the connection every `ping_interval_ms`; on any failure, mark the
//! caches degraded, back off (full jitter, doubling up to `reconnect_max_ms`) and again.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Invalidations, FAMILIES_CHANNEL, PRODUCTS_CHANNEL, USERS_CHANNEL};
use crate::config::InvalidationConfig;

pub async fn run(
    hub: Arc<Invalidations>,
    cfg: InvalidationConfig,
    pg: tokio_postgres::Config,
    mut stop: watch::Receiver<bool>,
) {
    let min = Duration::from_millis(cfg.reconnect_min_ms);
    let max = Duration::from_millis(cfg.reconnect_max_ms);
    let mut backoff = min;
    let mut sessions = 0u64;
    loop {
        let outcome = tokio::select! {
            _ = stop.changed() => return,
            outcome = session(&hub, &cfg, &pg, sessions > 0) => outcome,
        };
        hub.disconnected();
        if outcome.connected {
            sessions += 1;
            backoff = min;
        }
        tracing::warn!(error = %outcome.error, retry_in = ?backoff, "invalidation listener lost");
        let wait = backoff.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(max);
    }
}

struct Outcome {
    /// Whether the session got as far as LISTENing (the backoff then starts over).
    connected: bool,
    error: String,
}

/// One connection's life; returns why it ended.
async fn session(
    hub: &Invalidations,
    cfg: &InvalidationConfig,
    pg: &tokio_postgres::Config,
    reconnect: bool,
) -> Outcome {
    let deadline = Duration::from_millis(cfg.ping_interval_ms);
    let failed = |error: String| Outcome {
        connected: false,
        error,
    };
    let (client, mut connection) = match tokio::time::timeout(deadline, pg.connect(NoTls)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return failed(format!("connect: {e}")),
        Err(_) => return failed("connect: timed out".into()),
    };
    // The connection delivers notifications only while it is polled; this drives it and
    // applies each one as it arrives.
    let notifications = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => hub.apply(n.channel(), n.payload()),
                Some(Ok(_notice)) => {}
                Some(Err(e)) => return format!("connection: {e}"),
                None => return "connection closed".to_string(),
            }
        }
    };
    let mut listening = false;
    let work = async {
        let listen =
            format!("LISTEN {USERS_CHANNEL}; LISTEN {FAMILIES_CHANNEL}; LISTEN {PRODUCTS_CHANNEL}");
        match tokio::time::timeout(deadline, client.batch_execute(&listen)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return format!("LISTEN: {e}"),
            Err(_) => return "LISTEN: timed out".to_string(),
        }
        // LISTEN first, then resync: a change committed from here on is announced to us,
        // and whatever changed before is dropped from the caches now.
        listening = true;
        hub.resynced(reconnect);
        loop {
            tokio::time::sleep(deadline).await;
            match tokio::time::timeout(deadline, client.simple_query("SELECT 1")).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("check: {e}"),
                Err(_) => return "check: timed out".to_string(),
            }
        }
    };
    let error = tokio::select! {
        e = notifications => e,
        e = work => e,
    };
    Outcome {
        connected: listening,
        error,
    }
}
