//! The bootstrap admin: created when missing, left alone when it is an active admin,
//! promoted (password reset, refresh tokens revoked) when the email belongs to anyone else.

use std::sync::Arc;

use bulkhead::config::{DatabaseUrl, Secret};
use bulkhead::domain::precondition::IfMatch;
use bulkhead::domain::token::NewRefreshToken;
use bulkhead::domain::user::{now, Email, NewUser, Role, UserChanges, UserName, UserStatus};
use bulkhead::service::Services;
use bulkhead::store::memory::MemoryStore;
use bulkhead::store::{Rotation, Store};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{
    problem, spawn_app_with, test_config, StoreKind, ADMIN_EMAIL, ADMIN_PASSWORD,
};

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
    let squatter = store
        .set_user_status(squatter.id, UserStatus::Suspended)
        .await
        .unwrap();
    let token_hash = vec![7u8; 32];
    store
        .create_refresh_token(NewRefreshToken {
            hash: token_hash.clone(),
            family_id: uuid::Uuid::now_v7(),
            user_id: squatter.id,
            expires_at: now() + chrono::Duration::hours(1),
        })
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
    let (store, _db) = crate::store_conformance::pg_store().await;
    promotion_resets_the_account(store).await;
}

/// Over HTTP, across a restart on the same database: someone registered the admin email
/// before the operator configured it.
#[actix_web::test]
async fn a_pre_registered_admin_email_is_taken_over_at_restart() {
    let first = spawn_app_with(StoreKind::Postgres, |c| {
        c.auth.bootstrap_admin_email = None;
        c.auth.bootstrap_admin_password = None;
    })
    .await;
    let url = first.database_url().unwrap();
    let res = first
        .register("boss@example.com", "Squatter", "squatter-pass")
        .await;
    assert_eq!(res.status(), 201);
    let (old_access, old_refresh) = first.tokens("boss@example.com", "squatter-pass").await;
    first.stop().await;

    let second = spawn_app_with(StoreKind::Postgres, |c| {
        c.database.url = Some(DatabaseUrl::new(url));
        c.auth.bootstrap_admin_email = Some("boss@example.com".into());
        c.auth.bootstrap_admin_password = Some(Secret::new("configured-pass-1"));
    })
    .await;
    problem(
        second.login("boss@example.com", "squatter-pass").await,
        401,
        "invalid_credentials",
    )
    .await;
    let (access, _) = second.tokens("boss@example.com", "configured-pass-1").await;
    let res = second
        .authed(Method::GET, "/api/v1/users", &access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The squatter's access token still names the account, but only with the role it was
    // issued with; the refresh token is revoked.
    let res = second
        .authed(Method::GET, "/api/v1/users/me", &old_access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "admin");
    let res = second
        .authed(Method::GET, "/api/v1/users", &old_access)
        .send()
        .await
        .unwrap();
    problem(res, 403, "forbidden").await;
    let res = second
        .post_json(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": old_refresh}),
        )
        .await;
    problem(res, 401, "unauthenticated").await;
}
