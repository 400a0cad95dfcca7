//! Schema migrations from `sql/`, embedded at build time.
//!
//! Each migration runs in its own transaction that first takes a transaction-scoped
//! advisory lock, so instances starting at once serialise here and each migration is
//! applied exactly once; a failed migration rolls back whole.

use super::{pg_err, PgStore, MIGRATIONS};
use crate::store::StoreError;

/// Arbitrary constant naming Bulkhead's migration lock ("bulkhead" in ASCII).
const MIGRATION_LOCK: i64 = 0x6275_6c6b_6865_6164;

impl PgStore {
    /// Apply pending migrations; returns how many were applied by this call.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut conn = self.write_conn().await?;
        let mut applied = 0;
        for (version, name, sql) in MIGRATIONS {
            let tx = conn.transaction().await.map_err(pg_err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(pg_err)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )",
            )
            .await
            .map_err(pg_err)?;
            let done = tx
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await
                .map_err(pg_err)?
                .is_some();
            if !done {
                tx.batch_execute(sql).await.map_err(|e| {
                    StoreError::Internal(format!("migration {version} ({name}) failed: {e}"))
                })?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await
                .map_err(pg_err)?;
                applied += 1;
                tracing::info!(version, name, "applied migration");
            }
            tx.commit().await.map_err(pg_err)?;
        }
        Ok(applied)
    }
}
