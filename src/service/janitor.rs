//! The janitor: frees the storage of idempotency keys past retention, on a timer, so that
//! no order pays for it. A key past retention is already ignored by the order's lookup
//! (the contract keeps keys *at least* 24 h); this only deletes its row.
//!
//! A pass deletes in bounded batches ([`PURGE_BATCH`] rows, one short statement each, at
//! most [`MAX_BATCHES`] per pass), each admitted by the `db_write` bulkhead and through
//! the Postgres circuit like any write, so the janitor never holds more than one write
//! slot and stops at the first failure until the next pass. Every instance of a fleet
//! runs one; two passes at once delete different rows or skip the rows already gone.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use super::guard::Guarded;
use crate::domain::order::idempotency_cutoff;
use crate::domain::user::now;

/// How often a pass runs (the first at start).
pub const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Rows deleted by one statement.
pub const PURGE_BATCH: u32 = 5_000;
/// Statements in one pass at most: 100,000 keys a minute, well above what one database
/// takes in orders.
pub const MAX_BATCHES: u32 = 20;

/// The running janitor; stopped when dropped (with the services that own it).
pub struct Janitor(JoinHandle<()>);

impl Drop for Janitor {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Start the janitor on the current (actix) runtime: a pass now, then every
/// [`PURGE_EVERY`].
pub fn start(db: Guarded) -> Janitor {
    Janitor(actix::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // Its lines say whose they are, as a request's do (an ERROR span: enabled
            // whenever a line is).
            purge_expired(&db)
                .instrument(tracing::error_span!("janitor"))
                .await;
        }
    }))
}

/// One pass: delete the keys past retention, batch after batch, until a batch comes back
/// short, [`MAX_BATCHES`] went, or a batch failed. Returns how many rows went.
pub async fn purge_expired(db: &Guarded) -> u64 {
    let before = idempotency_cutoff(now());
    let mut purged = 0;
    for _ in 0..MAX_BATCHES {
        match db
            .write(|s| s.purge_idempotency_keys(before, PURGE_BATCH))
            .await
        {
            Ok(n) => {
                purged += n;
                if n < u64::from(PURGE_BATCH) {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(
                    code = e.code.as_str(),
                    "purging expired idempotency keys failed"
                );
                break;
            }
        }
    }
    if purged > 0 {
        tracing::info!(purged, "purged idempotency keys past retention");
    }
    purged
}
