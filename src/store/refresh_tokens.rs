//! Refresh tokens.
//!
//! A family is one login's chain of rotations. Rotation is race-safe in both backends:
//! of concurrent rotations of one token exactly one succeeds; the others find it already
//! rotated, which is reuse.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::StoreError;
use crate::domain::token::NewRefreshToken;
use crate::domain::user::{Role, UserStatus};

/// What presenting a refresh token for rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now rotated and its successor stored. `role` and
    /// `epoch` are the user's as read under the lock the rotation held, for the access
    /// token issued with the successor.
    Rotated {
        user_id: Uuid,
        family_id: Uuid,
        role: Role,
        epoch: i32,
    },
    /// The token had already been rotated: its whole family is now revoked.
    Reused,
    /// The token's user is live but not active; nothing changed.
    Inactive(UserStatus),
    /// Unknown, expired, revoked, or its user is deleted; nothing changed.
    Invalid,
}

#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Store a newly issued refresh token (its hash), only while its user is live and
    /// active ([`super::Conflict::AccountInactive`] otherwise) and its token epoch is still
    /// `token.epoch` ([`super::Conflict::CredentialsChanged`] otherwise), checked inside
    /// the write: a login that raced a deactivation or a credential change gets no token
    /// that outlives it.
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError>;

    /// Rotate the token whose hash is `presented`: mark it rotated and store a successor
    /// (`successor_hash`, same family and user, expiring at `successor_expires_at`), in one
    /// transaction. See [`Rotation`] for the other outcomes.
    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        successor_hash: Vec<u8>,
        successor_expires_at: DateTime<Utc>,
    ) -> Result<Rotation, StoreError>;

    /// Revoke the whole family of the token whose hash is `presented` (logout). Returns
    /// whether such a token exists.
    async fn revoke_refresh_family(&self, presented: &[u8]) -> Result<bool, StoreError>;
}
