//! Refresh tokens as stored: only the SHA-256 hash of the opaque token is kept.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A refresh token to store. `family_id` names one login's chain of rotations.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub hash: Vec<u8>,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
}
