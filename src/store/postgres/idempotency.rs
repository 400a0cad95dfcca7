//! Idempotency keys of order creation, inside the order's own transaction.
//!
//! The key is taken with a transaction-scoped advisory lock on (user, key), tried, not
//! waited for: a concurrent request with the same key answers 409
//! `idempotency_key_in_use` at once. The key's row is written only with the response, by
//! the transaction that creates the order, so a failed attempt (a refused order, a
//! statement timeout, a connection cut mid-way) rolls back with nothing left behind, and
//! the lock goes with the transaction however it ends (a terminated backend included).
//! A row past retention is ignored by the lookup (the key is fresh again: the order's
//! upsert replaces it) and deleted by [`purge`], which the janitor runs on a timer
//! (`crate::service::janitor`), not the order: an order pays for no one's clean-up.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};
use tokio_postgres::Row;
use uuid::Uuid;

use super::pg_err;
use crate::domain::order::{IdempotentRequest, Placed};
use crate::store::{Conflict, StoreError};

/// The advisory lock key of `(user, key)`: SHA-256 folded to 64 bits, in the two-key
/// space (`pg_try_advisory_xact_lock(int, int)`), which never meets the one-key locks of
/// migrations and token families. Taken, looked up and stored by the order's statements
/// (`placing.rs`: `TAKE_KEYS`, `LOOKUP_KEYS`, `WRITE`).
pub(super) fn lock_key(user_id: Uuid, key: &str) -> (i32, i32) {
    let mut h = Sha256::new();
    h.update(user_id.as_bytes());
    h.update(key.as_bytes());
    let d = h.finalize();
    (
        i32::from_be_bytes([d[0], d[1], d[2], d[3]]),
        i32::from_be_bytes([d[4], d[5], d[6], d[7]]),
    )
}

/// The key's earlier use, from a row of `LOOKUP_KEYS` (its position, then
/// `request_hash, response_status, response_body`): `Some` replay, `None` when the key is
/// fresh (the order goes on), or the mismatch of a key used with another request.
pub(super) fn replay(row: &Row, req: &IdempotentRequest) -> Result<Option<Placed>, StoreError> {
    let stored_hash: &[u8] = row.get(1);
    let status: Option<i32> = row.get(2);
    let body: Option<Vec<u8>> = row.get(3);
    match (status, body) {
        (Some(status), Some(body)) => {
            if stored_hash != req.request_hash {
                return Err(StoreError::Conflict(Conflict::IdempotencyKeyMismatch));
            }
            let status = u16::try_from(status)
                .map_err(|_| StoreError::Internal(format!("stored status {status}")))?;
            Ok(Some(Placed::Replay { status, body }))
        }
        // A claim without a response (written by an earlier version, which committed
        // claims on their own): nobody holds it, since we hold the key's lock.
        _ => Ok(None),
    }
}

/// Delete at most `limit` keys created before `before`, oldest first (through
/// `idempotency_keys_created`), in one statement of its own; returns how many went. The
/// age is checked again on the row deleted, so a key reused meanwhile (its row replaced
/// by a new order's upsert) is kept.
pub(super) async fn purge<C: GenericClient>(
    c: &C,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let delete = c
        .prepare_cached(
            "DELETE FROM idempotency_keys AS k
             USING (SELECT user_id, key FROM idempotency_keys WHERE created_at < $1
                    ORDER BY created_at LIMIT $2) AS old
             WHERE k.user_id = old.user_id AND k.key = old.key AND k.created_at < $1",
        )
        .await
        .map_err(pg_err)?;
    c.execute(&delete, &[&before, &limit]).await.map_err(pg_err)
}
