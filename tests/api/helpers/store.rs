//! A store below HTTP: a migrated Postgres store in its own database.

use std::sync::Arc;

use bulkhead::config::{DatabaseConfig, DatabaseUrl, EventsConfig};
use bulkhead::domain::product::{
    Currency, Description, NewProduct, PriceCents, ProductName, Sku, Stock,
};
use bulkhead::domain::user::{Email, NewUser, Role, UserName};
use bulkhead::store::postgres::PgStore;
use bulkhead::store::Store;
use uuid::Uuid;

use super::TestDatabase;

pub async fn pg_store() -> (Arc<dyn Store>, TestDatabase) {
    pg_store_with(DatabaseConfig::default()).await
}

/// The same with `cfg`'s settings (its `url` is the test database's).
pub async fn pg_store_with(cfg: DatabaseConfig) -> (Arc<dyn Store>, TestDatabase) {
    pg_store_with_events(cfg, &EventsConfig::default()).await
}

/// The same, writing domain events to the outbox when `events` is on (no relay runs: the
/// rows stay for the test to read).
pub async fn pg_store_with_events(
    cfg: DatabaseConfig,
    events: &EventsConfig,
) -> (Arc<dyn Store>, TestDatabase) {
    let db = TestDatabase::create().await;
    let cfg = DatabaseConfig {
        url: Some(DatabaseUrl::new(db.url.clone())),
        ..cfg
    };
    let store = PgStore::connect(&cfg).unwrap().with_events(events);
    assert_eq!(
        store.migrate().await.unwrap(),
        bulkhead::store::postgres::MIGRATIONS.len()
    );
    // Applying again is a no-op.
    assert_eq!(store.migrate().await.unwrap(), 0);
    (Arc::new(store), db)
}

/// A product `sku` with `stock`, 2.50 EUR.
pub fn new_product(sku: &str, stock: i64) -> NewProduct {
    NewProduct {
        sku: Sku::parse(sku).unwrap(),
        name: ProductName::parse("Thing").unwrap(),
        description: Description::default(),
        price_cents: PriceCents::parse(250).unwrap(),
        currency: Currency::parse("EUR").unwrap(),
        stock: Stock::parse(stock).unwrap(),
    }
}

/// A new user of `store` (a fresh email), its id.
pub async fn user(store: &Arc<dyn Store>) -> Uuid {
    let email = format!("{}@example.com", Uuid::new_v4().simple());
    let new = NewUser {
        email: Email::parse(&email).unwrap(),
        name: UserName::parse("Buyer").unwrap(),
        password_hash: "$argon2id$fake".into(),
        role: Role::User,
    };
    store.create_user(new).await.unwrap().id
}
