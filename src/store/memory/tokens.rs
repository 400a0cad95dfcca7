use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::domain::token::NewRefreshToken;
use crate::domain::user::{now, UserStatus};
use crate::store::{Conflict, Rotation, StoreError, TokenStore};

#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub(crate) family_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) rotated_at: Option<DateTime<Utc>>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
}

/// Refresh tokens by hash, with the hashes of each family and each user, so revoking a
/// family or a user's tokens does not scan every token.
#[derive(Default)]
pub(crate) struct Tokens {
    pub(crate) by_hash: HashMap<Vec<u8>, TokenRow>,
    by_family: HashMap<Uuid, Vec<Vec<u8>>>,
    by_user: HashMap<Uuid, Vec<Uuid>>,
}

impl Tokens {
    fn insert(&mut self, hash: Vec<u8>, row: TokenRow) {
        let family = self.by_family.entry(row.family_id).or_default();
        if family.is_empty() {
            self.by_user
                .entry(row.user_id)
                .or_default()
                .push(row.family_id);
        }
        family.push(hash.clone());
        self.by_hash.insert(hash, row);
    }

    /// Revoke every live member of `family`.
    pub(crate) fn revoke_family(&mut self, family: Uuid, at: DateTime<Utc>) {
        for hash in self.by_family.get(&family).into_iter().flatten() {
            if let Some(row) = self.by_hash.get_mut(hash) {
                row.revoked_at.get_or_insert(at);
            }
        }
    }

    /// Revoke every refresh token of `user`.
    pub(crate) fn revoke_user(&mut self, user: Uuid, at: DateTime<Utc>) {
        let families = self.by_user.get(&user).cloned().unwrap_or_default();
        for family in families {
            self.revoke_family(family, at);
        }
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.users.by_id.get(&token.user_id) {
            None => return Err(StoreError::NotFound),
            Some(u) if u.status != UserStatus::Active => {
                return Err(StoreError::Conflict(Conflict::AccountInactive));
            }
            Some(_) => {}
        }
        state.tokens.insert(
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
        let Some(row) = state.tokens.by_hash.get(presented).cloned() else {
            return Ok(Rotation::Invalid);
        };
        // The token's own state first: a dead token is 401 whatever its account's state.
        let Some(user) = state.users.by_id.get(&row.user_id) else {
            return Ok(Rotation::Invalid);
        };
        let status = user.status;
        if row.rotated_at.is_some() {
            state.tokens.revoke_family(row.family_id, at);
            return Ok(Rotation::Reused);
        }
        if row.revoked_at.is_some() || row.expires_at <= at {
            return Ok(Rotation::Invalid);
        }
        if status != UserStatus::Active {
            return Ok(Rotation::Inactive(status));
        }
        if let Some(r) = state.tokens.by_hash.get_mut(presented) {
            r.rotated_at = Some(at);
        }
        state.tokens.insert(
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
        })
    }

    async fn revoke_refresh_family(&self, presented: &[u8]) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(family) = state.tokens.by_hash.get(presented).map(|r| r.family_id) else {
            return Ok(false);
        };
        state.tokens.revoke_family(family, now());
        Ok(true)
    }
}
