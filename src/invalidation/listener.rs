//! The listener loop, on the invalidator's own thread and runtime: connect (its own
//! connection, outside the pool), LISTEN, resynchronise, then apply notifications as they
//! arrive and check the connection every `ping_interval_ms`; on any failure, mark the
//! caches degraded, back off (full jitter, doubling up to `reconnect_max_ms`) and again.
//!
//! A check that is slow is not yet a lost connection: under CPU starvation `SELECT 1` can
//! take longer than the interval while the connection is fine, and reconnecting would
//! flush every cached user (hundreds of 503s from `/users/me` under saturating load). So
//! a check gets one interval of grace: past the first interval the caches are degraded
//! at once (cached users trusted for `cache.users.degraded_ttl_ms` only, exactly as when
//! disconnected, but not flushed); an answer within the second interval confirms the
//! connection (nothing was missed: notifications arrive in order before the answer) and
//! lifts the degradation; no answer by then ends the session (reconnect and resync).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use super::hub::{Invalidations, FAMILIES_CHANNEL, PRODUCTS_CHANNEL, USERS_CHANNEL};
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
            let check = client.simple_query("SELECT 1");
            match check_with_grace(check, deadline, || hub.check_slow()).await {
                Check::Answered { slow } => {
                    if slow {
                        hub.check_recovered();
                    }
                }
                Check::Failed(e) => return format!("check: {e}"),
                Check::TimedOut => return "check: timed out".to_string(),
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

/// How one connection check ended.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// Answered; `slow`: only after the first interval (`on_slow` was called).
    Answered {
        slow: bool,
    },
    Failed(String),
    /// No answer within two intervals.
    TimedOut,
}

/// Waits for `check` for `interval`; if it has not answered by then, calls `on_slow`
/// (degrade the caches) and waits one more `interval` before giving up.
async fn check_with_grace<T, E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<T, E>>,
    interval: Duration,
    on_slow: impl FnOnce(),
) -> Check {
    let answered = |r: Result<T, E>, slow| match r {
        Ok(_) => Check::Answered { slow },
        Err(e) => Check::Failed(e.to_string()),
    };
    let mut check = std::pin::pin!(check);
    if let Ok(r) = tokio::time::timeout(interval, check.as_mut()).await {
        return answered(r, false);
    }
    on_slow();
    match tokio::time::timeout(interval, check).await {
        Ok(r) => answered(r, true),
        Err(_) => Check::TimedOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const INTERVAL: Duration = Duration::from_millis(1_000);

    async fn answer_after(ms: u64) -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_answer_degrades_nothing() {
        let slow = Cell::new(false);
        let c = check_with_grace(answer_after(900), INTERVAL, || slow.set(true)).await;
        assert_eq!(c, Check::Answered { slow: false });
        assert!(!slow.get());
    }

    #[tokio::test(start_paused = true)]
    async fn one_slow_answer_is_tolerated_but_degrades_the_caches_meanwhile() {
        let slow = Cell::new(false);
        let start = tokio::time::Instant::now();
        let c = check_with_grace(answer_after(1_700), INTERVAL, || {
            // Degraded as soon as the first interval is over, not later.
            assert_eq!(start.elapsed(), INTERVAL);
            slow.set(true);
        })
        .await;
        assert_eq!(c, Check::Answered { slow: true });
        assert!(slow.get());
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_within_two_intervals_loses_the_connection() {
        let start = tokio::time::Instant::now();
        let c = check_with_grace(answer_after(2_100), INTERVAL, || {}).await;
        assert_eq!(c, Check::TimedOut);
        assert_eq!(start.elapsed(), INTERVAL * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_is_a_failure_at_once() {
        let c = check_with_grace(async { Err::<(), _>("broken pipe") }, INTERVAL, || {}).await;
        assert_eq!(c, Check::Failed("broken pipe".into()));
    }
}
