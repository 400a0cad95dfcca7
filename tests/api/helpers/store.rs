//! A store below HTTP: a migrated Postgres store in its own database.

use std::sync::Arc;

use bulkhead::config::{DatabaseConfig, DatabaseUrl};
use bulkhead::store::postgres::PgStore;
use bulkhead::store::Store;

use super::TestDatabase;

pub async fn pg_store() -> (Arc<dyn Store>, TestDatabase) {
    pg_store_with(DatabaseConfig::default()).await
}

/// The same with `cfg`'s settings (its `url` is the test database's).
pub async fn pg_store_with(cfg: DatabaseConfig) -> (Arc<dyn Store>, TestDatabase) {
    let db = TestDatabase::create().await;
    let cfg = DatabaseConfig {
        url: Some(DatabaseUrl::new(db.url.clone())),
        ..cfg
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
