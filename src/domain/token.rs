//! Tokens: refresh tokens as stored (only the SHA-256 hash of the opaque token is kept),
//! and the pair a login or a refresh issues.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A refresh token to store. `family_id` names one login's chain of rotations.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub hash: Vec<u8>,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// The user's token epoch as the login read it: the token is stored only while it is
    /// still the user's (a credential change in between means the login proved an old
    /// password, or a since-replaced email).
    pub epoch: i32,
}

/// An access token and a refresh token, as login and refresh answer them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
}
