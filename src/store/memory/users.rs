use std::cmp::Ordering;

use async_trait::async_trait;
use uuid::Uuid;

use super::{MemoryStore, State};
use crate::domain::precondition::IfMatch;
use crate::domain::user::{now, NewUser, Role, User, UserChanges, UserStatus, UserView};
use crate::events::EventKind;
use crate::store::{Conflict, StoreError, UserKey, UserListQuery, UserSort, UserStore};

/// The live user `id`, if `if_match` admits its version.
fn checked<'a>(
    state: &'a mut State,
    id: Uuid,
    if_match: &IfMatch,
) -> Result<&'a mut User, StoreError> {
    let user = state.users.by_id.get_mut(&id).ok_or(StoreError::NotFound)?;
    if !if_match.admits(user.version) {
        return Err(StoreError::Conflict(Conflict::VersionMismatch));
    }
    Ok(user)
}

fn touch(user: &mut User) {
    user.version += 1;
    user.updated_at = now();
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let mut state = self.lock();
        if state.users.id_by_email.contains_key(new.email.as_str()) {
            return Err(StoreError::Conflict(Conflict::DuplicateEmail));
        }
        state.event_room()?;
        let at = now();
        let user = User {
            id: Uuid::now_v7(),
            email: new.email.into_inner(),
            name: new.name.into_inner(),
            password_hash: new.password_hash,
            role: new.role,
            status: UserStatus::Active,
            version: 1,
            token_epoch: 0,
            created_at: at,
            updated_at: at,
        };
        state.users.id_by_email.insert(user.email.clone(), user.id);
        state.users.by_id.insert(user.id, user.clone());
        state.emit(
            EventKind::UserRegistered,
            user.id,
            at,
            &UserView::from(&user),
        );
        drop(state);
        self.emitted();
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

    async fn update_user(
        &self,
        id: Uuid,
        changes: UserChanges,
        if_match: &IfMatch,
    ) -> Result<User, StoreError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let current = checked(state, id, if_match)?.clone();
        if changes.is_empty() {
            return Ok(current);
        }
        // Validate everything before mutating anything (see `MemoryStore::lock`).
        if let Some(email) = &changes.email {
            if state
                .users
                .id_by_email
                .get(email.as_str())
                .is_some_and(|o| *o != id)
            {
                return Err(StoreError::Conflict(Conflict::DuplicateEmail));
            }
        }
        state.event_room()?;
        let revoke = changes.changes_credentials(&current.email);
        let user = checked(state, id, &IfMatch::Absent)?;
        if let Some(name) = changes.name {
            user.name = name.into_inner();
        }
        if let Some(hash) = changes.password_hash {
            user.password_hash = hash;
        }
        let old_email = changes
            .email
            .map(|email| std::mem::replace(&mut user.email, email.into_inner()));
        if revoke {
            user.token_epoch += 1;
        }
        touch(user);
        let user = user.clone();
        if let Some(old) = old_email {
            state.users.id_by_email.remove(&old);
            state.users.id_by_email.insert(user.email.clone(), id);
        }
        if revoke {
            state.refresh_tokens.revoke_user(id, user.updated_at);
        }
        state.emit(
            EventKind::UserUpdated,
            id,
            user.updated_at,
            &UserView::from(&user),
        );
        drop(guard);
        self.emitted();
        Ok(user)
    }

    async fn delete_user(&self, id: Uuid, if_match: &IfMatch) -> Result<(), StoreError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        checked(state, id, if_match)?;
        state.event_room()?;
        let at = now();
        if let Some(mut user) = state.users.by_id.remove(&id) {
            state.users.id_by_email.remove(&user.email);
            user.version += 1;
            user.updated_at = at;
            state.emit(EventKind::UserDeleted, id, at, &UserView::from(&user));
        }
        state.refresh_tokens.revoke_user(id, at);
        drop(guard);
        self.emitted();
        Ok(())
    }

    async fn set_user_status(&self, id: Uuid, to: UserStatus) -> Result<User, StoreError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let user = checked(state, id, &IfMatch::Absent)?;
        if !user.status.can_become(to) {
            return Err(StoreError::Conflict(Conflict::InvalidTransition {
                from: user.status.as_str().into(),
                to: to.as_str().into(),
            }));
        }
        state.event_room()?;
        let user = checked(state, id, &IfMatch::Absent)?;
        user.status = to;
        touch(user);
        let user = user.clone();
        if to != UserStatus::Active {
            state.refresh_tokens.revoke_user(id, user.updated_at);
        }
        state.emit(
            EventKind::UserStatusChanged,
            id,
            user.updated_at,
            &UserView::from(&user),
        );
        drop(guard);
        self.emitted();
        Ok(user)
    }

    async fn make_active_admin(&self, id: Uuid, password_hash: String) -> Result<User, StoreError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        checked(state, id, &IfMatch::Absent)?;
        state.event_room()?;
        let user = checked(state, id, &IfMatch::Absent)?;
        user.role = Role::Admin;
        user.status = UserStatus::Active;
        user.password_hash = password_hash;
        user.token_epoch += 1;
        touch(user);
        let user = user.clone();
        state.refresh_tokens.revoke_user(id, user.updated_at);
        state.emit(
            EventKind::UserUpdated,
            id,
            user.updated_at,
            &UserView::from(&user),
        );
        drop(guard);
        self.emitted();
        Ok(user)
    }

    async fn list_users(&self, query: &UserListQuery) -> Result<Vec<User>, StoreError> {
        let state = self.lock();
        let mut rows: Vec<&User> = state
            .users
            .by_id
            .values()
            .filter(|u| query.status.is_none_or(|s| u.status == s))
            .filter(|u| query.role.is_none_or(|r| u.role == r))
            .filter(|u| {
                query
                    .after
                    .as_ref()
                    .is_none_or(|k| order(query.sort, u, k) == Ordering::Greater)
            })
            .collect();
        rows.sort_by(|a, b| compare(query.sort, a, b));
        Ok(rows.into_iter().take(query.limit).cloned().collect())
    }
}

fn compare(sort: UserSort, a: &User, b: &User) -> Ordering {
    let asc = match sort {
        UserSort::CreatedAt { .. } => (a.created_at, a.id).cmp(&(b.created_at, b.id)),
        UserSort::Name { .. } => (a.name.as_str(), a.id).cmp(&(b.name.as_str(), b.id)),
    };
    if sort.descending() {
        asc.reverse()
    } else {
        asc
    }
}

/// Where `u` stands relative to `key` in `sort` order (Greater: after it). Names compare
/// by code point, as Postgres does under the C collation.
fn order(sort: UserSort, u: &User, key: &UserKey) -> Ordering {
    let asc = match key {
        UserKey::CreatedAt(at, id) => (u.created_at, u.id).cmp(&(*at, *id)),
        UserKey::Name(name, id) => (u.name.as_str(), u.id).cmp(&(name.as_str(), *id)),
    };
    if sort.descending() {
        asc.reverse()
    } else {
        asc
    }
}
