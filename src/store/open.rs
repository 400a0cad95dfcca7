//! Opening the configured store.

use std::sync::Arc;

use super::memory::MemoryStore;
use super::postgres::PgStore;
use super::Store;
use crate::config::Config;

/// Open the configured store: Postgres when `database.url` is set (applying migrations
/// when `database.migrate_on_start`), otherwise the in-memory store with a warning.
pub async fn open(config: &Config, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    match &config.database.url {
        Some(_) => {
            let store = PgStore::connect(&config.database)?;
            if migrate {
                store.migrate().await?;
            }
            Ok(Arc::new(store))
        }
        None => {
            tracing::warn!(
                "no database.url configured: using the embedded in-memory store; \
                 data is NOT kept across restarts"
            );
            Ok(Arc::new(MemoryStore::new()))
        }
    }
}
