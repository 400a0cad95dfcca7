//! The per-user cache: what the hot path needs about a user, ready to serve.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use super::Services;
use crate::domain::precondition::ETag;
use crate::domain::user::{Role, User, UserStatus, UserView};
use crate::error::ApiError;
use crate::store::StoreError;

/// A user as the hot path needs it: status and role for the auth check, and the
/// serialized body with its strong ETag for `GET /users/me` and `/users/{id}`.
#[derive(Debug)]
pub struct CachedUser {
    pub id: Uuid,
    pub role: Role,
    pub status: UserStatus,
    pub version: i64,
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
            etag: ETag::for_version(user.version),
            body: Bytes::from(body),
        }
    }
}

impl Services {
    /// The live user `id` from the cache, loading it once on a miss (concurrent misses
    /// share one load). `None`: no such user, or deleted.
    pub async fn user(&self, id: Uuid) -> Result<Option<Arc<CachedUser>>, ApiError> {
        self.users
            .get_or_load(id, || async move {
                let user = self.read(self.store.get_user(id)).await?;
                Ok::<_, ApiError>(user.map(|u| Arc::new(CachedUser::from_user(&u))))
            })
            .await
    }

    /// Call after every write of user `id`, before answering.
    pub fn invalidate_user(&self, id: Uuid) {
        self.users.invalidate(&id);
    }

    /// A store write of user `id` (through the write bulkhead), after which the user's
    /// cache entry is dropped whatever the answer: a write whose commit outcome is unknown
    /// must not leave a stale entry, and the auth check must see a deleted or inactive
    /// user on the next request. Handlers write users only through this.
    pub async fn write_user<T>(
        &self,
        id: Uuid,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ApiError> {
        let written = self.write(call).await;
        self.invalidate_user(id);
        written
    }
}
