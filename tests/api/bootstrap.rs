//! The bootstrap admin: created when missing, left alone when it is an active admin,
//! promoted (password reset, refresh tokens revoked, token epoch bumped) when the email
//! belongs to anyone else. The squatter's side over HTTP: `attacks::account_takeover`.

use std::sync::Arc;

use bulkhead::domain::precondition::IfMatch;
use bulkhead::domain::token::NewRefreshToken;
use bulkhead::domain::user::{now, Email, NewUser, Role, UserChanges, UserName, UserStatus};
use bulkhead::service::Services;
use bulkhead::store::memory::MemoryStore;
use bulkhead::store::{Rotation, Store};

use crate::helpers::{test_config, ADMIN_EMAIL, ADMIN_PASSWORD};

async fn promotion_resets_the_account(store: Arc<dyn Store>) {
    let svc = Services::start(Arc::new(test_config()), store.clone()).unwrap();
    let hash = svc.hash_password("squatter-pass".into()).await.unwrap();
    let squatter = store
        .create_user(NewUser {
            email: Email::parse(ADMIN_EMAIL).unwrap(),
            name: UserName::parse("Squatter").unwrap(),
            password_hash: hash,
            role: Role::User,
        })
        .await
        .unwrap();
    // A token of the squatter's from while it was active (none is stored for an
    // inactive account).
    let token_hash = vec![7u8; 32];
    store
        .create_refresh_token(NewRefreshToken {
            hash: token_hash.clone(),
            family_id: uuid::Uuid::now_v7(),
            user_id: squatter.id,
            expires_at: now() + chrono::Duration::hours(1),
            epoch: squatter.token_epoch,
        })
        .await
        .unwrap();
    let squatter = store
        .set_user_status(squatter.id, UserStatus::Suspended)
        .await
        .unwrap();

    svc.ensure_bootstrap_admin().await.unwrap();
    let admin = store
        .find_user_by_email(ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.id, squatter.id);
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.status, UserStatus::Active);
    assert!(admin.version > squatter.version);
    // A change of role: access tokens issued before it no longer authenticate.
    assert!(admin.token_epoch > squatter.token_epoch);
    let hash = Some(admin.password_hash.clone());
    assert!(svc
        .verify_password(ADMIN_PASSWORD.into(), hash.clone())
        .await
        .unwrap());
    assert!(!svc
        .verify_password("squatter-pass".into(), hash)
        .await
        .unwrap());
    let rotation = store
        .rotate_refresh_token(
            &token_hash,
            vec![8u8; 32],
            now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(
        rotation,
        Rotation::Invalid,
        "the squatter's session is revoked"
    );

    // An active admin is left as it is: a password changed through the API survives.
    let changed = svc
        .hash_password("changed-through-the-api".into())
        .await
        .unwrap();
    store
        .update_user(
            admin.id,
            UserChanges {
                password_hash: Some(changed),
                ..UserChanges::default()
            },
            &IfMatch::Absent,
        )
        .await
        .unwrap();
    svc.ensure_bootstrap_admin().await.unwrap();
    let after = store
        .find_user_by_email(ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap();
    assert!(svc
        .verify_password("changed-through-the-api".into(), Some(after.password_hash))
        .await
        .unwrap());
}

#[actix_web::test]
async fn promotion_on_memory() {
    promotion_resets_the_account(Arc::new(MemoryStore::new())).await;
}

#[actix_web::test]
async fn promotion_on_postgres() {
    let (store, _db) = crate::helpers::store::pg_store().await;
    promotion_resets_the_account(store).await;
}
