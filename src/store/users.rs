//! User records.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::StoreError;
use crate::domain::precondition::IfMatch;
use crate::domain::user::{NewUser, Role, User, UserChanges, UserStatus};

/// The order of a user listing; ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    CreatedAt { descending: bool },
    Name { descending: bool },
}

impl UserSort {
    /// The `?sort=` value this sort is written as (also what cursors are bound to).
    pub fn as_str(self) -> &'static str {
        match self {
            UserSort::CreatedAt { descending: false } => "created_at",
            UserSort::CreatedAt { descending: true } => "-created_at",
            UserSort::Name { descending: false } => "name",
            UserSort::Name { descending: true } => "-name",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created_at" => UserSort::CreatedAt { descending: false },
            "-created_at" => UserSort::CreatedAt { descending: true },
            "name" => UserSort::Name { descending: false },
            "-name" => UserSort::Name { descending: true },
            _ => return None,
        })
    }

    pub fn descending(self) -> bool {
        match self {
            UserSort::CreatedAt { descending } | UserSort::Name { descending } => descending,
        }
    }
}

/// Keyset position: the sort key and id of the last row already served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    CreatedAt(DateTime<Utc>, Uuid),
    Name(String, Uuid),
}

/// One page of `GET /users`: the rows strictly after `after` in `sort` order.
#[derive(Debug, Clone)]
pub struct UserListQuery {
    pub status: Option<UserStatus>,
    pub role: Option<Role>,
    pub sort: UserSort,
    pub after: Option<UserKey>,
    pub limit: usize,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Insert a user. A live user with the same email is [`super::Conflict::DuplicateEmail`].
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError>;

    /// A live (not deleted) user by id.
    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    /// A live user by normalised email.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// Apply `changes` to live user `id` and bump its version, if its current version
    /// satisfies `if_match`. Checked inside the write, so no concurrent writer
    /// slips between check and write: [`super::Conflict::VersionMismatch`] otherwise.
    /// Empty changes write nothing and answer the current record (after the check).
    /// A new password hash also revokes every refresh token of the user, in the same
    /// transaction. Errors: `NotFound`, `VersionMismatch`, `DuplicateEmail`.
    async fn update_user(
        &self,
        id: Uuid,
        changes: UserChanges,
        if_match: &IfMatch,
    ) -> Result<User, StoreError>;

    /// Soft-delete live user `id` (its email becomes free) and revoke its refresh tokens,
    /// in one transaction, if its version satisfies `if_match`.
    async fn delete_user(&self, id: Uuid, if_match: &IfMatch) -> Result<(), StoreError>;

    /// Move live user `id` to `to` if [`UserStatus::can_become`] allows it, checked inside
    /// the write ([`super::Conflict::InvalidTransition`] otherwise). Leaving `active`
    /// revokes the user's refresh tokens in the same transaction.
    async fn set_user_status(&self, id: Uuid, to: UserStatus) -> Result<User, StoreError>;

    /// Make live user `id` an active admin whose password is `password_hash`, revoking its
    /// refresh tokens (the bootstrap admin's promotion; see `service::bootstrap`).
    async fn make_active_admin(&self, id: Uuid, password_hash: String) -> Result<User, StoreError>;

    /// Up to `query.limit` live users, filtered and in `query.sort` order.
    async fn list_users(&self, query: &UserListQuery) -> Result<Vec<User>, StoreError>;
}
