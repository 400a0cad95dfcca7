//! The Postgres backend: tokio-postgres over deadpool-postgres.
//!
//! Two pools, one for reads and one for writes, so a flood of one workload cannot take
//! the other's connections (they are the bulkheads' resources). Every pool wait, connection
//! create and recycle has a deadline, and every connection sets `statement_timeout`:
//! no database call waits forever.
//!
//! Every pooled connection is opened and driven on the store's own runtime
//! ([`OwnedRuntime`], threads `bulkhead-db`), never on the actix worker that asked for
//! it: a connection's socket and task belong to the runtime that opened it, and a worker's
//! runtime would tie it to that worker (see [`RuntimeConnect`]).

mod idempotency;
mod migrate;
mod order_writer;
mod orders;
mod outbox;
mod pipelined;
mod placing;
mod products;
mod refresh_tokens;
mod users;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Connect, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::{Backend, Conflict, Store, StoreError};
use crate::config::DatabaseConfig;
use crate::events::postgres::PgOutbox;
use crate::events::source::OutboxSource;
use crate::events::Wake;
use crate::runtime::OwnedRuntime;

/// `(version, name, sql)`, in order.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../../../sql/0001_init.sql")),
    (2, "shop", include_str!("../../../sql/0002_shop.sql")),
    (
        3,
        "token_epoch",
        include_str!("../../../sql/0003_token_epoch.sql"),
    ),
    (
        4,
        "invalidation",
        include_str!("../../../sql/0004_invalidation.sql"),
    ),
    (5, "outbox", include_str!("../../../sql/0005_outbox.sql")),
];

pub struct PgStore {
    read: Pool,
    write: Pool,
    /// The connection settings, for the outbox relay's own connection.
    pg: tokio_postgres::Config,
    /// `Some` when events are on: every change to a user or an order writes one.
    outbox: Option<Outbox>,
    events: Option<crate::config::EventsConfig>,
    /// Orders placed together (`order_writer`), started with the first order when
    /// `database.order_batch_max` is above 1: `(writers, batch_max)`.
    order_batching: Option<(usize, usize)>,
    order_writer: OnceLock<order_writer::OrderWriter>,
    /// An order transaction's deadline (`order_writer`).
    order_deadline: Duration,
    /// Opens and drives every pooled connection and runs the order writers; dropped after
    /// the pools (field order), so it stops once no connection is left on it.
    runtime: OwnedRuntime,
}

impl PgStore {
    /// Build the pools and start the runtime their connections will live on. No
    /// connection is opened until first use.
    pub fn connect(cfg: &DatabaseConfig) -> anyhow::Result<Self> {
        let url = cfg
            .url
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("database.url is not set"))?;
        let mut pg: tokio_postgres::Config = url
            .expose()
            .parse()
            .map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
        pg.application_name("bulkhead");
        pg.connect_timeout(Duration::from_millis(cfg.pool_create_timeout_ms));
        pg.options(format!("-c statement_timeout={}", cfg.statement_timeout_ms));
        let runtime = OwnedRuntime::start("bulkhead-db", cfg.client_threads)?;
        let build = |size: usize| {
            let manager = Manager::from_connect(
                pg.clone(),
                RuntimeConnect(runtime.handle().clone()),
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_millis(cfg.pool_wait_timeout_ms)))
                .create_timeout(Some(Duration::from_millis(cfg.pool_create_timeout_ms)))
                .recycle_timeout(Some(Duration::from_millis(cfg.pool_recycle_timeout_ms)))
                .build()
        };
        Ok(Self {
            read: build(cfg.read_pool_size)?,
            write: build(cfg.write_pool_size)?,
            pg,
            outbox: None,
            events: None,
            order_batching: (cfg.order_batch_max > 1)
                .then_some((cfg.order_writers, cfg.order_batch_max)),
            order_writer: OnceLock::new(),
            order_deadline: Duration::from_millis(
                cfg.pool_wait_timeout_ms + 2 * cfg.statement_timeout_ms,
            ),
            runtime,
        })
    }

    /// Write domain events with every change to a user or an order (`events.nats_url`
    /// set), for the relay [`Store::outbox_source`] gives.
    pub fn with_events(mut self, events: &crate::config::EventsConfig) -> Self {
        if events.enabled() {
            let wake = Arc::new(Wake::new(Duration::from_millis(events.notify_interval_ms)));
            self.outbox = Some(Outbox { wake });
            self.events = Some(events.clone());
        }
        self
    }

    /// What an order is placed with.
    fn placing(&self) -> order_writer::Placing {
        order_writer::Placing {
            pool: self.write.clone(),
            outbox: self.outbox.clone(),
            deadline: self.order_deadline,
        }
    }

    /// The order writers, started on the store's runtime with the first order (after
    /// `with_events`, whose outbox they write); `None` when orders are placed alone.
    fn order_writer(&self) -> Option<&order_writer::OrderWriter> {
        let (writers, batch_max) = self.order_batching?;
        Some(self.order_writer.get_or_init(|| {
            order_writer::OrderWriter::start(
                self.runtime.handle(),
                self.placing(),
                writers,
                batch_max,
            )
        }))
    }

    pub(crate) async fn read_conn(&self) -> Result<Object, StoreError> {
        self.read.get().await.map_err(pool_err)
    }

    pub(crate) async fn write_conn(&self) -> Result<Object, StoreError> {
        self.write.get().await.map_err(pool_err)
    }
}

/// Opens a pooled connection on the store's runtime: the TCP connection, the startup
/// exchange and the connection's task all run there, and the pool hands out the client
/// (a channel to that task), which any worker may use.
struct RuntimeConnect(tokio::runtime::Handle);

impl Connect for RuntimeConnect {
    fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        let pg = pg.clone();
        let (opened, client) = tokio::sync::oneshot::channel();
        let task = self.0.spawn(async move {
            match pg.connect(NoTls).await {
                Ok((client, connection)) => {
                    if opened.send(Ok(client)).is_ok() {
                        if let Err(e) = connection.await {
                            tracing::warn!(error = %e, "database connection closed");
                        }
                    }
                }
                Err(e) => {
                    let _ = opened.send(Err(e));
                }
            }
        });
        Box::pin(async move {
            match client.await {
                Ok(Ok(client)) => Ok((client, task)),
                Ok(Err(e)) => Err(e),
                // The task ended without answering: the runtime stopped under it (the
                // store is being dropped). The pool's create deadline answers the caller.
                Err(_) => std::future::pending().await,
            }
        })
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let conn = self.read_conn().await?;
        conn.simple_query("SELECT 1").await.map_err(pg_err)?;
        Ok(())
    }

    /// deadpool's `resize`: a smaller pool drops idle connections at once and the rest
    /// as they are returned; a larger one opens connections on demand.
    fn resize_pools(&self, read: usize, write: usize) {
        self.read.resize(read);
        self.write.resize(write);
    }

    fn pool_status(&self) -> Vec<(&'static str, deadpool_postgres::Status)> {
        vec![("read", self.read.status()), ("write", self.write.status())]
    }

    fn outbox_source(self: Arc<Self>) -> Option<Arc<dyn OutboxSource>> {
        let (outbox, events) = (self.outbox.as_ref()?, self.events.as_ref()?);
        Some(Arc::new(PgOutbox::new(
            &self.pg,
            outbox.wake.clone(),
            Duration::from_millis(events.publish_timeout_ms),
            Duration::from_millis(events.connect_timeout_ms),
        )))
    }
}

/// Events are on: the handle the relay of this process waits on (`outbox.rs` writes).
#[derive(Clone)]
pub(crate) struct Outbox {
    pub(crate) wake: Arc<Wake>,
}

fn pool_err(e: PoolError) -> StoreError {
    StoreError::Unavailable(format!("connection pool: {e}"))
}

/// Classify a database error: the dependency's fault, a uniqueness conflict, or a bug.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            return match db.constraint() {
                Some("users_email_live") => StoreError::Conflict(Conflict::DuplicateEmail),
                Some("products_sku_live") => StoreError::Conflict(Conflict::DuplicateSku),
                other => StoreError::Internal(format!("unique violation on {other:?}")),
            };
        }
        // Users are deleted softly, so a foreign key to `users` fails only when a row was
        // removed under the service (by hand, a restore): the caller no longer exists.
        if *code == SqlState::FOREIGN_KEY_VIOLATION
            && db
                .constraint()
                .is_some_and(|c| c.ends_with("_user_id_fkey"))
        {
            return StoreError::Conflict(Conflict::UserGone);
        }
        let class = &code.code()[..2];
        // 08 connection, 53 insufficient resources, 57 operator intervention (includes
        // statement timeout 57014 and admin shutdown), 58 system error.
        if matches!(class, "08" | "53" | "57" | "58")
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
        {
            return StoreError::Unavailable(format!("{}: {}", code.code(), db.message()));
        }
        return StoreError::Internal(format!("{}: {}", code.code(), db.message()));
    }
    // No database error: the connection broke or timed out.
    StoreError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    //! Against the test Postgres server (`BULKHEAD_TEST_DATABASE_URL`, as `.ci/run` sets
    //! it).
    use super::*;
    use crate::config::DatabaseUrl;

    /// A runtime like an actix worker's: one thread, gone when dropped.
    fn worker() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn pid(c: &Object) -> Result<i32, tokio_postgres::Error> {
        Ok(c.query_one("SELECT pg_backend_pid()", &[]).await?.get(0))
    }

    /// The pooled connection a worker asked for first is not that worker's: it keeps
    /// working, as the same server session, after the worker's runtime is gone.
    #[test]
    fn a_pooled_connection_outlives_the_worker_that_opened_it() {
        let url = std::env::var("BULKHEAD_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let store = PgStore::connect(&DatabaseConfig {
            url: Some(DatabaseUrl::new(url)),
            read_pool_size: 1,
            write_pool_size: 1,
            ..Default::default()
        })
        .unwrap();
        let (conn, opened_by) = worker().block_on(async {
            let conn = store
                .read_conn()
                .await
                .expect("Postgres must be running (.ci/run starts it)");
            let p = pid(&conn).await.unwrap();
            (conn, p)
        });
        // That worker's runtime has stopped; another one uses the connection.
        let after = worker().block_on(pid(&conn));
        assert_eq!(
            after.expect("the connection died with the runtime that asked for it"),
            opened_by
        );
        drop(conn);
        let again = worker().block_on(async { pid(&store.read_conn().await.unwrap()).await });
        assert_eq!(again.unwrap(), opened_by, "the pool kept the connection");
    }
}
