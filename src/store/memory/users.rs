use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::MemoryStore;
use crate::domain::user::{now, NewUser, User, UserStatus};
use crate::store::{Conflict, StoreError, UserStore};

#[derive(Default)]
pub(crate) struct Users {
    pub(crate) by_id: HashMap<Uuid, User>,
    pub(crate) id_by_email: HashMap<String, Uuid>,
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let mut state = self.lock();
        if state.users.id_by_email.contains_key(&new.email) {
            return Err(StoreError::Conflict(Conflict::DuplicateEmail));
        }
        let at = now();
        let user = User {
            id: Uuid::now_v7(),
            email: new.email,
            name: new.name,
            password_hash: new.password_hash,
            role: new.role,
            status: UserStatus::Active,
            version: 1,
            created_at: at,
            updated_at: at,
        };
        state.users.id_by_email.insert(user.email.clone(), user.id);
        state.users.by_id.insert(user.id, user.clone());
        Ok(user)
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.by_id.get(&id).cloned())
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let state = self.lock();
        Ok(state
            .users
            .id_by_email
            .get(email)
            .and_then(|id| state.users.by_id.get(id))
            .cloned())
    }
}
