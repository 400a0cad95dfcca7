use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::domain::token::NewRefreshToken;
use crate::domain::user::now;
use crate::store::{StoreError, TokenStore};

#[derive(Debug, Clone)]
#[expect(
    dead_code,
    reason = "read by refresh rotation and logout, which build on this"
)]
pub(crate) struct TokenRow {
    pub(crate) family_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) rotated_at: Option<DateTime<Utc>>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
}

/// Refresh tokens by hash.
#[derive(Default)]
pub(crate) struct Tokens {
    pub(crate) by_hash: HashMap<Vec<u8>, TokenRow>,
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.users.by_id.contains_key(&token.user_id) {
            return Err(StoreError::NotFound);
        }
        state.tokens.by_hash.insert(
            token.hash,
            TokenRow {
                family_id: token.family_id,
                user_id: token.user_id,
                created_at: now(),
                expires_at: token.expires_at,
                rotated_at: None,
                revoked_at: None,
            },
        );
        Ok(())
    }
}
