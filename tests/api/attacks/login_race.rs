//! Login racing a deactivation: the password is checked against a user read before the
//! account was deactivated, so the status is checked again where the refresh token is
//! written, inside that write. A token written for an inactive account would survive
//! its reactivation.

use std::sync::Arc;

use bulkhead::domain::token::NewRefreshToken;
use bulkhead::domain::user::{Email, NewUser, Role, UserName, UserStatus};
use bulkhead::store::memory::MemoryStore;
use bulkhead::store::{Conflict, Rotation, Store, StoreError};
use uuid::Uuid;

use crate::helpers::store::pg_store;

async fn refresh_token_after_deactivation(store: Arc<dyn Store>) {
    let user = store
        .create_user(NewUser {
            email: Email::parse("racer@example.com").unwrap(),
            name: UserName::parse("Racer").unwrap(),
            password_hash: "$argon2id$fake".into(),
            role: Role::User,
        })
        .await
        .unwrap();
    // The login read `user` as active and proved the password; then, before its refresh
    // token is written, the account is deactivated.
    store
        .set_user_status(user.id, UserStatus::Deactivated)
        .await
        .unwrap();
    let hash = vec![7u8; 32];
    let e = store
        .create_refresh_token(NewRefreshToken {
            hash: hash.clone(),
            family_id: Uuid::now_v7(),
            user_id: user.id,
            expires_at: chrono::Utc::now() + chrono::Duration::days(1),
        })
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
    let r = store
        .rotate_refresh_token(
            &hash,
            vec![8u8; 32],
            chrono::Utc::now() + chrono::Duration::days(1),
        )
        .await
        .unwrap();
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
