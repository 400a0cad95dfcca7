//! Idempotency keys of order creation: claim and release. Completion happens inside the
//! order's transaction (`orders.rs`).
//!
//! A claim is a row with a NULL response, committed on its own so that a concurrent
//! request with the same key sees it and answers 409 `idempotency_key_in_use` at once
//! instead of waiting. The claim's `created_at` is its token: a takeover of an abandoned
//! claim writes a new one, and completion requires the token it was given.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{pg_err, PgStore};
use crate::domain::order::{
    Claim, ClaimToken, IdempotencyKey, IDEMPOTENCY_CLAIM_TIMEOUT, IDEMPOTENCY_RETENTION,
};
use crate::domain::user::now;
use crate::store::{Conflict, StoreError};

/// A claim can vanish between our failed insert and our read (its request failed and
/// released it); then we try again, a bounded number of times.
const CLAIM_ATTEMPTS: usize = 3;

fn ago(at: DateTime<Utc>, age: std::time::Duration) -> DateTime<Utc> {
    at - chrono::Duration::from_std(age).unwrap_or_else(|_| chrono::Duration::zero())
}

impl PgStore {
    pub(super) async fn claim_key(
        &self,
        user_id: Uuid,
        key: &IdempotencyKey,
        hash: &[u8],
    ) -> Result<Claim, StoreError> {
        let conn = self.write_conn().await?;
        let key = key.as_str();
        for _ in 0..CLAIM_ATTEMPTS {
            let at = now();
            // Keys past retention are purged, a user's at a time, as that user claims.
            let purge = conn
                .prepare_cached(
                    "DELETE FROM idempotency_keys WHERE user_id = $1 AND created_at < $2",
                )
                .await
                .map_err(pg_err)?;
            conn.execute(&purge, &[&user_id, &ago(at, IDEMPOTENCY_RETENTION)])
                .await
                .map_err(pg_err)?;
            let insert = conn
                .prepare_cached(
                    "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id, key) DO NOTHING",
                )
                .await
                .map_err(pg_err)?;
            if conn
                .execute(&insert, &[&user_id, &key, &hash, &at])
                .await
                .map_err(pg_err)?
                == 1
            {
                return Ok(Claim::Claimed(ClaimToken(at)));
            }
            let select = conn
                .prepare_cached(
                    "SELECT request_hash, response_status, response_body, created_at
                     FROM idempotency_keys WHERE user_id = $1 AND key = $2",
                )
                .await
                .map_err(pg_err)?;
            let Some(row) = conn
                .query_opt(&select, &[&user_id, &key])
                .await
                .map_err(pg_err)?
            else {
                continue;
            };
            let stored_hash: Vec<u8> = row.get(0);
            let status: Option<i32> = row.get(1);
            let body: Option<Vec<u8>> = row.get(2);
            let claimed_at: DateTime<Utc> = row.get(3);
            match (status, body) {
                (Some(status), Some(body)) => {
                    if stored_hash != hash {
                        return Err(StoreError::Conflict(Conflict::IdempotencyKeyMismatch));
                    }
                    let status = u16::try_from(status)
                        .map_err(|_| StoreError::Internal(format!("stored status {status}")))?;
                    return Ok(Claim::Replay { status, body });
                }
                _ if claimed_at < ago(at, IDEMPOTENCY_CLAIM_TIMEOUT) => {
                    // Abandoned: take it over, unless someone else just did.
                    let take = conn
                        .prepare_cached(
                            "UPDATE idempotency_keys SET created_at = $4, request_hash = $5
                             WHERE user_id = $1 AND key = $2 AND created_at = $3
                               AND response_status IS NULL",
                        )
                        .await
                        .map_err(pg_err)?;
                    let n = conn
                        .execute(&take, &[&user_id, &key, &claimed_at, &at, &hash])
                        .await
                        .map_err(pg_err)?;
                    if n == 1 {
                        return Ok(Claim::Claimed(ClaimToken(at)));
                    }
                }
                _ if stored_hash != hash => {
                    return Err(StoreError::Conflict(Conflict::IdempotencyKeyMismatch));
                }
                _ => return Err(StoreError::Conflict(Conflict::IdempotencyKeyInUse)),
            }
        }
        // Others keep claiming and releasing this key as we look: it is busy.
        Err(StoreError::Conflict(Conflict::IdempotencyKeyInUse))
    }

    pub(super) async fn release_key(
        &self,
        user_id: Uuid,
        key: &IdempotencyKey,
        token: ClaimToken,
    ) -> Result<(), StoreError> {
        let conn = self.write_conn().await?;
        let stmt = conn
            .prepare_cached(
                "DELETE FROM idempotency_keys
                 WHERE user_id = $1 AND key = $2 AND created_at = $3 AND response_status IS NULL",
            )
            .await
            .map_err(pg_err)?;
        conn.execute(&stmt, &[&user_id, &key.as_str(), &token.0])
            .await
            .map_err(pg_err)?;
        Ok(())
    }
}
