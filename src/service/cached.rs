//! What the two caches hold: the user as the hot path needs it, and what a verified
//! access token says.

use bytes::Bytes;
use uuid::Uuid;

use crate::domain::precondition::ETag;
use crate::domain::user::{Role, User, UserStatus, UserView};

/// A user as the hot path needs it: status and role for the auth check, and the
/// serialized body with its strong ETag for `GET /users/me` and `/users/{id}`.
#[derive(Debug)]
pub struct CachedUser {
    pub id: Uuid,
    pub role: Role,
    pub status: UserStatus,
    pub version: i64,
    /// Access tokens issued at a lower epoch are refused.
    pub token_epoch: i32,
    /// The strong ETag and the serialized body, ready to put in a response: cloning
    /// either copies no bytes.
    pub etag: ETag,
    pub body: Bytes,
}

impl CachedUser {
    pub fn from_user(user: &User) -> Self {
        let body = serde_json::to_vec(&UserView::from(user)).unwrap_or_default();
        Self {
            id: user.id,
            role: user.role,
            status: user.status,
            version: user.version,
            token_epoch: user.token_epoch,
            etag: ETag::for_version(user.version),
            body: Bytes::from(body),
        }
    }
}

/// What a verified access token says.
#[derive(Debug)]
pub struct VerifiedToken {
    pub sub: Uuid,
    /// The `role` claim: an upper bound on the caller's role.
    pub role: Role,
    pub exp: u64,
    /// The `epoch` claim: the user's token epoch when the token was issued.
    pub epoch: i32,
}
