//! Refresh tokens on Postgres.
//!
//! Lock order, which keeps rotation, logout and user writes free of deadlocks and of lost
//! revocations: a transaction that changes a family's tokens first takes the family's
//! advisory lock, then the user's row `FOR SHARE`; a user write (delete, status, password)
//! locks the user's row by updating it, then revokes the user's tokens. So a family's
//! changes are serialised, and a user write never misses a successor inserted by a
//! rotation running at the same time (see `users::revoke_user_tokens`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::{pg_err, PgStore};
use crate::domain::token::NewRefreshToken;
use crate::domain::user::{now, Role, UserStatus};
use crate::store::{Conflict, RefreshTokenStore, Rotation, StoreError};

/// The advisory lock key of a family: its 128 bits folded to 64.
fn family_lock_key(family: Uuid) -> i64 {
    let (hi, lo) = family.as_u64_pair();
    i64::from_ne_bytes((hi ^ lo).to_ne_bytes())
}

/// A token's user as read under the row lock: status, role, token epoch.
type LockedUser = (String, String, i32);

/// Find the token's family and user, and take the family lock then the user's row lock.
/// `None`: no such token. The user is `None` when deleted.
async fn lock_family(
    tx: &Transaction<'_>,
    presented: &[u8],
) -> Result<Option<(Uuid, Uuid, Option<LockedUser>)>, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1",
            &[&presented],
        )
        .await
        .map_err(pg_err)?
    else {
        return Ok(None);
    };
    let (family, user): (Uuid, Uuid) = (row.get(0), row.get(1));
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&family_lock_key(family)],
    )
    .await
    .map_err(pg_err)?;
    let status = tx
        .query_opt(
            "SELECT status, role, token_epoch FROM users
             WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
            &[&user],
        )
        .await
        .map_err(pg_err)?
        .map(|r| (r.get(0), r.get(1), r.get(2)));
    Ok(Some((family, user, status)))
}

async fn revoke_family(
    tx: &Transaction<'_>,
    family: Uuid,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        &[&family, &at],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

#[async_trait]
impl RefreshTokenStore for PgStore {
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError> {
        let conn = self.write_conn().await?;
        // Only for a live, active user whose epoch is still the one the login read, read
        // under a share lock on the user's row: a deactivation or credential change that
        // committed first is seen (nothing stored), one that commits after waits for this
        // insert and then revokes the token with the others.
        let stmt = conn
            .prepare_cached(
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at)
                 SELECT $1, $2, u.id, $4, $5 FROM users u
                 WHERE u.id = $3 AND u.status = 'active' AND u.deleted_at IS NULL
                   AND u.token_epoch = $6
                 FOR SHARE",
            )
            .await
            .map_err(pg_err)?;
        let stored = conn
            .execute(
                &stmt,
                &[
                    &token.hash,
                    &token.family_id,
                    &token.user_id,
                    &now(),
                    &token.expires_at,
                    &token.epoch,
                ],
            )
            .await
            .map_err(pg_err)?;
        if stored == 1 {
            return Ok(());
        }
        // Nothing stored; only which refusal to give is read here.
        let status: Option<String> = conn
            .query_opt(
                "SELECT status FROM users WHERE id = $1 AND deleted_at IS NULL",
                &[&token.user_id],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0));
        Err(StoreError::Conflict(match status.as_deref() {
            Some("active") => Conflict::CredentialsChanged,
            _ => Conflict::AccountInactive,
        }))
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        successor_hash: Vec<u8>,
        successor_expires_at: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        let mut conn = self.write_conn().await?;
        let tx = conn.transaction().await.map_err(pg_err)?;
        let Some((family, user, locked)) = lock_family(&tx, presented).await? else {
            return Ok(Rotation::Invalid);
        };
        let Some((status, role, epoch)) = locked else {
            return Ok(Rotation::Invalid);
        };
        let at = now();
        // Read after the locks: a rotation of this family that committed before is seen.
        let token = tx
            .query_one(
                "SELECT rotated_at IS NOT NULL, revoked_at IS NOT NULL OR expires_at <= $2
                 FROM refresh_tokens WHERE token_hash = $1",
                &[&presented, &at],
            )
            .await
            .map_err(pg_err)?;
        let (rotated, dead): (bool, bool) = (token.get(0), token.get(1));
        // The token's own state first: a dead token is 401 whatever its account's state.
        if rotated {
            revoke_family(&tx, family, at).await?;
            tx.commit().await.map_err(pg_err)?;
            return Ok(Rotation::Reused);
        }
        if dead {
            return Ok(Rotation::Invalid);
        }
        match UserStatus::parse(&status) {
            Some(UserStatus::Active) => {}
            Some(other) => return Ok(Rotation::Inactive(other)),
            None => return Err(StoreError::Internal(format!("status {status}"))),
        }
        tx.execute(
            "UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1",
            &[&presented, &at],
        )
        .await
        .map_err(pg_err)?;
        tx.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[&successor_hash, &family, &user, &at, &successor_expires_at],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(Rotation::Rotated {
            user_id: user,
            family_id: family,
            role: Role::parse(&role).ok_or_else(|| StoreError::Internal(format!("role {role}")))?,
            epoch,
        })
    }

    async fn revoke_refresh_family(&self, presented: &[u8]) -> Result<bool, StoreError> {
        let mut conn = self.write_conn().await?;
        let tx = conn.transaction().await.map_err(pg_err)?;
        let Some((family, _, _)) = lock_family(&tx, presented).await? else {
            return Ok(false);
        };
        revoke_family(&tx, family, now()).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(true)
    }
}
