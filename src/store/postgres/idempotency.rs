//! Idempotency keys of order creation, inside the order's own transaction.
//!
//! The key is taken with a transaction-scoped advisory lock on (user, key), tried, not
//! waited for: a concurrent request with the same key answers 409
//! `idempotency_key_in_use` at once. The key's row is written only with the response, by
//! the transaction that creates the order, so a failed attempt (a refused order, a
//! statement timeout, a connection cut mid-way) rolls back with nothing left behind, and
//! the lock goes with the transaction however it ends (a terminated backend included).
//! Rows past retention are purged, a user's at a time, as that user places an order.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};
use tokio_postgres::Statement;
use uuid::Uuid;

use super::pg_err;
use crate::domain::order::{IdempotentRequest, Placed, IDEMPOTENCY_RETENTION};
use crate::store::{Conflict, StoreError};

/// The advisory lock key of `(user, key)`: SHA-256 folded to 64 bits, in the two-key
/// space (`pg_try_advisory_xact_lock(int, int)`), which never meets the one-key locks of
/// migrations and token families.
fn lock_key(user_id: Uuid, key: &str) -> (i32, i32) {
    let mut h = Sha256::new();
    h.update(user_id.as_bytes());
    h.update(key.as_bytes());
    let d = h.finalize();
    (
        i32::from_be_bytes([d[0], d[1], d[2], d[3]]),
        i32::from_be_bytes([d[4], d[5], d[6], d[7]]),
    )
}

fn ago(at: DateTime<Utc>, age: std::time::Duration) -> DateTime<Utc> {
    at - chrono::Duration::from_std(age).unwrap_or_else(|_| chrono::Duration::zero())
}

/// Take `req`'s key for this transaction, or 409 `idempotency_key_in_use` at once when a
/// concurrent request holds it. Sent with `BEGIN`; the lookup (whose snapshot must come
/// after the lock, or a use committed meanwhile would be missed) and the product locks
/// are sent only once it answered, so that a key in use never waits on product rows.
pub(super) async fn claim<C: GenericClient>(
    tx: &C,
    user_id: Uuid,
    req: &IdempotentRequest,
) -> Result<(), StoreError> {
    let (k1, k2) = lock_key(user_id, req.key.as_str());
    let lock = tx
        .prepare_cached("SELECT pg_try_advisory_xact_lock($1, $2)")
        .await
        .map_err(pg_err)?;
    let taken: bool = tx
        .query_one(&lock, &[&k1, &k2])
        .await
        .map_err(pg_err)?
        .get(0);
    if taken {
        Ok(())
    } else {
        Err(StoreError::Conflict(Conflict::IdempotencyKeyInUse))
    }
}

/// After [`claim`]: purge the user's expired keys and look up this key's earlier use, in
/// one round trip. `Some` replay, or `None` when the key is fresh (the caller goes on to
/// create the order).
pub(super) async fn lookup<C: GenericClient>(
    tx: &C,
    user_id: Uuid,
    req: &IdempotentRequest,
    at: DateTime<Utc>,
) -> Result<Option<Placed>, StoreError> {
    let key = req.key.as_str();
    let purge = tx
        .prepare_cached("DELETE FROM idempotency_keys WHERE user_id = $1 AND created_at < $2")
        .await
        .map_err(pg_err)?;
    let select = tx
        .prepare_cached(
            "SELECT request_hash, response_status, response_body
             FROM idempotency_keys WHERE user_id = $1 AND key = $2",
        )
        .await
        .map_err(pg_err)?;
    // Both statements are sent before either answer is read (tokio-postgres pipelines
    // requests issued together on one connection, in the order they are first polled).
    let expired = ago(at, IDEMPOTENCY_RETENTION);
    let (_, row) = futures_util::future::try_join(
        tx.execute(&purge, &[&user_id, &expired]),
        tx.query_opt(&select, &[&user_id, &key]),
    )
    .await
    .map_err(pg_err)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored_hash: Vec<u8> = row.get(0);
    let status: Option<i32> = row.get(1);
    let body: Option<Vec<u8>> = row.get(2);
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

/// The statement of [`complete_key`], prepared before the pipelined batch it goes in.
pub(super) async fn complete_key_statement<C: GenericClient>(
    tx: &C,
) -> Result<Statement, StoreError> {
    tx.prepare_cached(
        "INSERT INTO idempotency_keys
             (user_id, key, request_hash, response_status, response_body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id, key) DO UPDATE
         SET request_hash = EXCLUDED.request_hash,
             response_status = EXCLUDED.response_status,
             response_body = EXCLUDED.response_body,
             created_at = EXCLUDED.created_at",
    )
    .await
    .map_err(pg_err)
}

/// Store the response of the order this transaction created under `req`'s key (sent
/// when first polled: `upsert` is [`complete_key_statement`]'s).
pub(super) async fn complete_key<C: GenericClient>(
    tx: &C,
    upsert: &Statement,
    user_id: Uuid,
    req: &IdempotentRequest,
    status: u16,
    body: &[u8],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        upsert,
        &[
            &user_id,
            &req.key.as_str(),
            &req.request_hash,
            &i32::from(status),
            &body,
            &at,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}
