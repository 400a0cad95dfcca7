//! Users: the per-user cache (what the hot path needs about a user, ready to serve) and
//! every user write, each of which drops the user's cache entry.

use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;

use super::cached::CachedUser;
use super::services::Services;
use crate::domain::precondition::IfMatch;
use crate::domain::user::{
    Email, NewUser, Password, Role, User, UserChanges, UserName, UserStatus,
};
use crate::error::{ApiError, ErrorCode};
use crate::store::{Store, StoreError, UserListQuery};

/// A user's edit as parsed: `None` leaves a field as it is. `current_password`, when
/// given, must be the user's password or nothing is written (a user changing their own
/// password or email proves they know the current one).
#[derive(Debug, Default)]
pub struct UserEdit {
    pub name: Option<UserName>,
    pub email: Option<Email>,
    pub password: Option<Password>,
    pub current_password: Option<String>,
}

impl Services {
    /// The live user `id` from the cache, loading it once on a miss (concurrent misses
    /// share one load). `None`: no such user, or deleted; remembered as such for a few
    /// seconds (`absent_users`, consulted only after a miss of `users`), so a deleted
    /// user's token does not cost a store read on every request.
    pub async fn user(&self, id: Uuid) -> Result<Option<Arc<CachedUser>>, ApiError> {
        if let Some(user) = self.users.get(&id) {
            return Ok(Some(user));
        }
        if self.absent_users.get(&id).is_some() {
            return Ok(None);
        }
        let loaded = self
            .users
            .get_or_load(id, || async move {
                let user = self.db.read(|s| s.get_user(id)).await?;
                Ok::<_, ApiError>(user.map(|u| Arc::new(CachedUser::from_user(&u))))
            })
            .await?;
        if loaded.is_none() {
            // Best effort: a full mailbox only means the next request reads again.
            let _ = self.absent_users.insert(id, ()).await;
        }
        Ok(loaded)
    }

    /// Call after every write of user `id`, before answering.
    pub fn invalidate_user(&self, id: Uuid) {
        self.users.invalidate(&id);
        self.absent_users.invalidate(&id);
    }

    /// A store write of user `id` (through the guard), after which the user's cache entry
    /// is dropped whatever the answer: a write whose commit outcome is unknown must not
    /// leave a stale entry, and the auth check must see a deleted or inactive user on the
    /// next request. Every write of an existing user goes through this.
    pub(super) async fn write_user<'a, T, Fut>(
        &'a self,
        id: Uuid,
        call: impl FnOnce(&'a dyn Store) -> Fut,
    ) -> Result<T, ApiError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let written = self.db.write(call).await;
        self.invalidate_user(id);
        written
    }

    /// Registration: a new active user with role `user`; the password is hashed on the
    /// hashing pool first.
    pub async fn register(
        &self,
        email: Email,
        name: UserName,
        password: Password,
    ) -> Result<User, ApiError> {
        let password_hash = self.hash_password(password.into_inner()).await?;
        let new = NewUser {
            email,
            name,
            password_hash,
            role: Role::User,
        };
        self.db.write(|s| s.create_user(new)).await
    }

    /// Apply `edit` to user `id` if its version satisfies `if_match` (412 otherwise). A new
    /// password is hashed before the write (the store only swaps hashes). A new password
    /// or a different email bumps the user's token epoch and revokes its refresh tokens
    /// in the write's transaction. A wrong `current_password` is 401
    /// `invalid_credentials`, and nothing is written.
    pub async fn update_user(
        &self,
        id: Uuid,
        edit: UserEdit,
        if_match: &IfMatch,
    ) -> Result<User, ApiError> {
        if let Some(current) = edit.current_password {
            let user = self
                .db
                .read(|s| s.get_user(id))
                .await?
                .ok_or_else(ApiError::not_found)?;
            if !self
                .verify_password(current, Some(user.password_hash))
                .await?
            {
                return Err(ApiError::new(
                    ErrorCode::InvalidCredentials,
                    "current_password is not the account's password",
                ));
            }
        }
        let password_hash = match edit.password {
            Some(p) => Some(self.hash_password(p.into_inner()).await?),
            None => None,
        };
        let changes = UserChanges {
            name: edit.name,
            email: edit.email,
            password_hash,
        };
        self.write_user(id, |s| s.update_user(id, changes, if_match))
            .await
    }

    /// Soft-delete user `id` (refresh tokens revoked in the same transaction) under the
    /// same `if_match` rule.
    pub async fn delete_user(&self, id: Uuid, if_match: &IfMatch) -> Result<(), ApiError> {
        self.write_user(id, |s| s.delete_user(id, if_match)).await
    }

    /// Move user `id` to status `to`, if the transition is allowed (checked in the write).
    pub async fn set_user_status(&self, id: Uuid, to: UserStatus) -> Result<User, ApiError> {
        self.write_user(id, |s| s.set_user_status(id, to)).await
    }

    /// A page of users (`query.limit` rows at most).
    pub async fn list_users(&self, query: &UserListQuery) -> Result<Vec<User>, ApiError> {
        self.db.read(|s| s.list_users(query)).await
    }
}
