use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::tables::TokenRow;
use super::MemoryStore;
use crate::domain::token::NewRefreshToken;
use crate::domain::user::{now, UserStatus};
use crate::store::{Conflict, RefreshTokenStore, Rotation, StoreError};

#[async_trait]
impl RefreshTokenStore for MemoryStore {
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.users.by_id.get(&token.user_id) {
            None => return Err(StoreError::NotFound),
            Some(u) if u.status != UserStatus::Active => {
                return Err(StoreError::Conflict(Conflict::AccountInactive));
            }
            Some(u) if u.token_epoch != token.epoch => {
                return Err(StoreError::Conflict(Conflict::CredentialsChanged));
            }
            Some(_) => {}
        }
        state.refresh_tokens.insert(
            token.hash,
            TokenRow {
                family_id: token.family_id,
                user_id: token.user_id,
                expires_at: token.expires_at,
                rotated_at: None,
                revoked_at: None,
            },
        );
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        successor_hash: Vec<u8>,
        successor_expires_at: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        // The whole check-and-rotate runs under the one mutex: concurrent rotations of one
        // token are serialised, and only the first finds it current.
        let mut state = self.lock();
        let at = now();
        let Some(row) = state.refresh_tokens.by_hash.get(presented).cloned() else {
            return Ok(Rotation::Invalid);
        };
        // The token's own state first: a dead token is 401 whatever its account's state.
        let Some(user) = state.users.by_id.get(&row.user_id) else {
            return Ok(Rotation::Invalid);
        };
        let (status, role, epoch) = (user.status, user.role, user.token_epoch);
        if row.rotated_at.is_some() {
            state.refresh_tokens.revoke_family(row.family_id, at);
            return Ok(Rotation::Reused);
        }
        if row.revoked_at.is_some() || row.expires_at <= at {
            return Ok(Rotation::Invalid);
        }
        if status != UserStatus::Active {
            return Ok(Rotation::Inactive(status));
        }
        if let Some(r) = state.refresh_tokens.by_hash.get_mut(presented) {
            r.rotated_at = Some(at);
        }
        state.refresh_tokens.insert(
            successor_hash,
            TokenRow {
                family_id: row.family_id,
                user_id: row.user_id,
                expires_at: successor_expires_at,
                rotated_at: None,
                revoked_at: None,
            },
        );
        Ok(Rotation::Rotated {
            user_id: row.user_id,
            family_id: row.family_id,
            role,
            epoch,
        })
    }

    async fn revoke_refresh_family(&self, presented: &[u8]) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(family) = state
            .refresh_tokens
            .by_hash
            .get(presented)
            .map(|r| r.family_id)
        else {
            return Ok(false);
        };
        state.refresh_tokens.revoke_family(family, now());
        Ok(true)
    }
}
