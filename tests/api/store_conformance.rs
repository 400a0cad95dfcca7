//! The same cases against both `Store` backends, below HTTP.

use std::sync::Arc;

use bulkhead::config::{DatabaseConfig, DatabaseUrl};
use bulkhead::domain::user::{Email, NewUser, Role, UserName, UserStatus};
use bulkhead::store::memory::MemoryStore;
use bulkhead::store::postgres::PgStore;
use bulkhead::store::{Conflict, Store, StoreError};

use crate::helpers::TestDatabase;

/// Run `case` against a migrated Postgres store (own database) and a memory store.
macro_rules! conformance {
    ($name:ident, $case:path) => {
        mod $name {
            use super::*;

            #[actix_web::test]
            async fn postgres() {
                let (store, _db) = pg_store().await;
                $case(store).await;
            }

            #[actix_web::test]
            async fn memory() {
                $case(Arc::new(MemoryStore::new())).await;
            }
        }
    };
}

pub async fn pg_store() -> (Arc<dyn Store>, TestDatabase) {
    let db = TestDatabase::create().await;
    let cfg = DatabaseConfig {
        url: Some(DatabaseUrl::new(db.url.clone())),
        ..DatabaseConfig::default()
    };
    let store = PgStore::connect(&cfg).unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        bulkhead::store::postgres::MIGRATIONS.len()
    );
    // Applying again is a no-op.
    assert_eq!(store.migrate().await.unwrap(), 0);
    (Arc::new(store), db)
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse(email).unwrap(),
        name: UserName::parse("Ada").unwrap(),
        password_hash: "$argon2id$fake".into(),
        role: Role::User,
    }
}

async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}
conformance!(ping, ping_answers);

async fn users_round_trip(store: Arc<dyn Store>) {
    let created = store
        .create_user(new_user("ada@example.com"))
        .await
        .unwrap();
    assert_eq!(created.status, UserStatus::Active);
    assert_eq!(created.version, 1);
    assert_eq!(created.created_at, created.updated_at);
    let got = store.get_user(created.id).await.unwrap().unwrap();
    assert_eq!(got, created);
    let by_email = store
        .find_user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.id, created.id);
    assert!(store
        .get_user(uuid::Uuid::new_v4())
        .await
        .unwrap()
        .is_none());
    assert!(store
        .find_user_by_email("nobody@example.com")
        .await
        .unwrap()
        .is_none());
}
conformance!(users_round_trip_case, users_round_trip);

async fn duplicate_email_conflicts(store: Arc<dyn Store>) {
    store
        .create_user(new_user("dup@example.com"))
        .await
        .unwrap();
    let err = store
        .create_user(new_user("dup@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::DuplicateEmail)),
        "{err:?}"
    );
}
conformance!(duplicate_email, duplicate_email_conflicts);

async fn concurrent_creates_of_one_email_admit_one(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            actix_web::rt::spawn(
                async move { store.create_user(new_user("race@example.com")).await },
            )
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(Conflict::DuplicateEmail)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
}
conformance!(
    concurrent_unique_email,
    concurrent_creates_of_one_email_admit_one
);

#[actix_web::test]
async fn concurrent_migrations_apply_once() {
    let db = TestDatabase::create().await;
    let cfg = DatabaseConfig {
        url: Some(DatabaseUrl::new(db.url.clone())),
        ..DatabaseConfig::default()
    };
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = PgStore::connect(&cfg).unwrap();
            actix_web::rt::spawn(async move { store.migrate().await })
        })
        .collect();
    let mut total = 0;
    for r in runs {
        total += r.await.unwrap().expect("every concurrent migrate succeeds");
    }
    assert_eq!(total, bulkhead::store::postgres::MIGRATIONS.len());
}
