//! User records.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use crate::domain::user::{NewUser, User};

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Insert a user. A live user with the same email is [`super::Conflict::DuplicateEmail`].
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError>;

    /// A live (not deleted) user by id.
    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    /// A live user by normalised email.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
}
