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
use tokio_postgres::Statement;
use uuid::Uuid;

use super::pg_err;
use crate::domain::order::{idempotency_cutoff, IdempotentRequest, Placed};
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

/// A key's claim in an order's transaction: its statements, prepared before the batch
/// that sends them (`BEGIN`, [`Claim::take`], [`Claim::lookup`], the products locked
/// only if the key is ours, see [`Claim::lock_key`]), so that they run in that order:
/// the lookup's snapshot comes after the lock, or a use committed meanwhile would be
/// missed.
pub(super) struct Claim {
    lock: Statement,
    lookup: Statement,
    key: (i32, i32),
}

impl Claim {
    pub(super) async fn prepare<C: GenericClient>(
        c: &C,
        user_id: Uuid,
        req: &IdempotentRequest,
    ) -> Result<Self, StoreError> {
        let lock = c
            .prepare_cached("SELECT pg_try_advisory_xact_lock($1, $2)")
            .await
            .map_err(pg_err)?;
        let lookup = c
            .prepare_cached(
                "SELECT request_hash, response_status, response_body
                 FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at >= $3",
            )
            .await
            .map_err(pg_err)?;
        Ok(Self {
            lock,
            lookup,
            key: lock_key(user_id, req.key.as_str()),
        })
    }

    /// The advisory lock key, for a statement of the same batch that must do nothing
    /// unless the key is ours (`pg_try_advisory_xact_lock` again: a lock this transaction
    /// holds is granted again; one another holds is not).
    pub(super) fn lock_key(&self) -> (i32, i32) {
        self.key
    }

    /// Take the key for this transaction, or 409 `idempotency_key_in_use` at once when a
    /// concurrent request holds it (tried, never waited for).
    pub(super) async fn take<C: GenericClient>(&self, c: &C) -> Result<(), StoreError> {
        let (k1, k2) = self.key;
        let taken: bool = c
            .query_one(&self.lock, &[&k1, &k2])
            .await
            .map_err(pg_err)?
            .get(0);
        if taken {
            Ok(())
        } else {
            Err(StoreError::Conflict(Conflict::IdempotencyKeyInUse))
        }
    }

    /// This key's earlier use within the retention: `Some` replay, or `None` when the
    /// key is fresh (the caller goes on to create the order).
    pub(super) async fn lookup<C: GenericClient>(
        &self,
        c: &C,
        user_id: Uuid,
        req: &IdempotentRequest,
        at: DateTime<Utc>,
    ) -> Result<Option<Placed>, StoreError> {
        let live_since = idempotency_cutoff(at);
        let row = c
            .query_opt(&self.lookup, &[&user_id, &req.key.as_str(), &live_since])
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
}

/// The part of an order's write that stores its response under the key: a
/// data-modifying `WITH` item, appended to the order's statement (`orders.rs`), whose
/// parameters follow the order's: `$3` the time, `$5` the user, then the key, the
/// request's hash and the response's body. A row past retention is replaced.
pub(super) const STORE_RESPONSE: &str = "key AS (
    INSERT INTO idempotency_keys
        (user_id, key, request_hash, response_status, response_body, created_at)
    VALUES ($5, $13, $14, 201, $15, $3)
    ON CONFLICT (user_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash,
        response_status = EXCLUDED.response_status,
        response_body = EXCLUDED.response_body,
        created_at = EXCLUDED.created_at
)";

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
