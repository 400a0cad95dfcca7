//! Login racing a deactivation or a password change: the password is checked against a
//! user read before the account was deactivated (or its password replaced), so the status
//! and the token epoch are checked again where the refresh token is written, inside that
//! write. A token written for an inactive account would survive its reactivation; one
//! written after a password change would keep the old password's session alive.

use std::sync::Arc;

use bulkhead::domain::precondition::IfMatch;
use bulkhead::domain::token::NewRefreshToken;
use bulkhead::domain::user::{Email, NewUser, Role, User, UserChanges, UserName, UserStatus};
use bulkhead::store::memory::MemoryStore;
use bulkhead::store::{Conflict, Rotation, Store, StoreError};
use uuid::Uuid;

use crate::helpers::store::pg_store;

/// The user whose login races a change of the account.
async fn racer(store: &dyn Store) -> User {
    store
        .create_user(NewUser {
            email: Email::parse("racer@example.com").unwrap(),
            name: UserName::parse("Racer").unwrap(),
            password_hash: "$argon2id$fake".into(),
            role: Role::User,
        })
        .await
        .unwrap()
}

/// Store the login's refresh token (`hash`), as read at `epoch`.
async fn store_token(
    store: &dyn Store,
    user: Uuid,
    hash: &[u8],
    epoch: i32,
) -> Result<(), StoreError> {
    store
        .create_refresh_token(NewRefreshToken {
            hash: hash.to_vec(),
            family_id: Uuid::now_v7(),
            user_id: user,
            expires_at: chrono::Utc::now() + chrono::Duration::days(1),
            epoch,
        })
        .await
}

/// Rotate the token `hash`, as a later refresh would.
async fn rotate(store: &dyn Store, hash: &[u8]) -> Rotation {
    store
        .rotate_refresh_token(
            hash,
            Uuid::new_v4().as_bytes().to_vec(),
            chrono::Utc::now() + chrono::Duration::days(1),
        )
        .await
        .unwrap()
}

async fn refresh_token_after_deactivation(store: Arc<dyn Store>) {
    let store = &*store;
    let user = racer(store).await;
    // The login read `user` as active and proved the password; then, before its refresh
    // token is written, the account is deactivated.
    store
        .set_user_status(user.id, UserStatus::Deactivated)
        .await
        .unwrap();
    let hash = [7u8; 32];
    let e = store_token(store, user.id, &hash, user.token_epoch)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict(Conflict::AccountInactive)),
        "{e:?}"
    );
    // Reactivated: the racing login's token does not exist, so it cannot be used.
    store
        .set_user_status(user.id, UserStatus::Active)
        .await
        .unwrap();
    let r = rotate(store, &hash).await;
    assert!(!matches!(r, Rotation::Rotated { .. }), "{r:?}");
}

mod login_racing_a_deactivation_gets_no_refresh_token {
    use super::*;

    #[actix_web::test]
    async fn postgres() {
        let (store, _db) = pg_store().await;
        refresh_token_after_deactivation(store).await;
    }

    #[actix_web::test]
    async fn memory() {
        refresh_token_after_deactivation(Arc::new(MemoryStore::new())).await;
    }
}

async fn refresh_token_after_password_change(store: Arc<dyn Store>) {
    let store = &*store;
    let user = racer(store).await;
    // The login read `user` (its epoch) and proved the old password; then, before its
    // refresh token is written, the password is changed.
    let changed = store
        .update_user(
            user.id,
            UserChanges {
                password_hash: Some("$argon2id$new".into()),
                ..UserChanges::default()
            },
            &IfMatch::Absent,
        )
        .await
        .unwrap();
    assert!(changed.token_epoch > user.token_epoch);
    let hash = [9u8; 32];
    let e = store_token(store, user.id, &hash, user.token_epoch)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict(Conflict::CredentialsChanged)),
        "{e:?}"
    );
    assert_eq!(rotate(store, &hash).await, Rotation::Invalid);
    // A login that read the new epoch gets its token.
    store_token(store, user.id, &[11u8; 32], changed.token_epoch)
        .await
        .unwrap();
}

mod login_racing_a_password_change_gets_no_refresh_token {
    use super::*;

    #[actix_web::test]
    async fn postgres() {
        let (store, _db) = pg_store().await;
        refresh_token_after_password_change(store).await;
    }

    #[actix_web::test]
    async fn memory() {
        refresh_token_after_password_change(Arc::new(MemoryStore::new())).await;
    }
}
