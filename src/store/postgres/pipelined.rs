//! A transaction whose `BEGIN` goes out with its first statements and whose `COMMIT`
//! goes out with its last ones, so that neither costs a round trip of its own.
//!
//! tokio-postgres's `Transaction` awaits `BEGIN` before it hands the transaction over and
//! `commit` consumes it, so both are round trips alone. Here the caller sends them in a
//! batch with other statements (tokio-postgres sends a request when its future is first
//! polled, and joined futures are polled in order; every statement of such a batch must
//! be prepared beforehand, or its `Parse` would be a round trip that lets the next
//! request overtake it).
//!
//! **Invariant**: a connection never goes back to the pool inside a transaction. Ended
//! by [`finish`](PipelinedTx::finish) (after a `COMMIT` or `ROLLBACK` that answered) or
//! by [`rollback`](PipelinedTx::rollback); otherwise (a cancelled future, a failed
//! rollback) the connection is taken out of the pool and closed, and the server rolls
//! the transaction back.

use deadpool_postgres::Object;

use super::pg_err;
use crate::store::StoreError;

pub(super) struct PipelinedTx {
    conn: Option<Object>,
    open: bool,
}

impl PipelinedTx {
    /// Wraps a pooled connection that the caller is about to send `BEGIN` on (with
    /// [`begin`](Self::begin), in its first batch).
    pub fn new(conn: Object) -> Self {
        Self {
            conn: Some(conn),
            open: true,
        }
    }

    pub fn client(&self) -> &Object {
        self.conn
            .as_ref()
            .expect("the connection is held until drop")
    }

    /// `sql`, the transaction's start (`BEGIN`, and `SET LOCAL`s in the same simple
    /// query), to be joined (first) with the transaction's first statements.
    pub async fn begin(&self, sql: &str) -> Result<(), StoreError> {
        self.client().batch_execute(sql).await.map_err(pg_err)
    }

    /// `COMMIT`, to be joined (last) with the transaction's last statements. When one of
    /// them failed, the server ends the transaction as a rollback and the caller has the
    /// failure from that statement.
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.client().batch_execute("COMMIT").await.map_err(pg_err)
    }

    /// The `COMMIT` answered: the transaction is over.
    pub fn finish(&mut self) {
        self.open = false;
    }

    /// Rolls back (a transaction already ended by a pipelined `COMMIT` gets a warning
    /// from the server, nothing more). A rollback that fails leaves the connection to be
    /// closed on drop.
    pub async fn rollback(mut self) {
        match self.client().batch_execute("ROLLBACK").await {
            Ok(()) => self.open = false,
            Err(e) => tracing::debug!(error = %e, "rolling back a pipelined transaction"),
        }
    }
}

impl Drop for PipelinedTx {
    fn drop(&mut self) {
        if let (true, Some(conn)) = (self.open, self.conn.take()) {
            // Out of the pool and closed: the server rolls the transaction back.
            drop(Object::take(conn));
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the test Postgres server (`BULKHEAD_TEST_DATABASE_URL`, as `.ci/run` sets
    //! it), in a table of the test's own.
    use super::*;
    use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
    use futures_util::future::{try_join, try_join3};

    fn pool() -> Pool {
        let url = std::env::var("BULKHEAD_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let manager = Manager::from_config(
            url.parse().expect("test database url"),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(2)
            .runtime(Runtime::Tokio1)
            .build()
            .expect("pool")
    }

    struct Table {
        pool: Pool,
        name: String,
    }

    impl Table {
        async fn create() -> Self {
            let pool = pool();
            let name = format!("pipelined_{}", uuid::Uuid::new_v4().simple());
            let c = pool
                .get()
                .await
                .expect("Postgres must be running (.ci/run starts it)");
            c.batch_execute(&format!("CREATE TABLE {name} (n int PRIMARY KEY)"))
                .await
                .unwrap();
            Self { pool, name }
        }

        /// `INSERT INTO <table> VALUES ($1)`, prepared on `c`.
        async fn insert(&self, c: &Object) -> tokio_postgres::Statement {
            c.prepare(&format!("INSERT INTO {} VALUES ($1)", self.name))
                .await
                .unwrap()
        }

        async fn rows(&self) -> i64 {
            let c = self.pool.get().await.unwrap();
            c.query_one(&format!("SELECT count(*) FROM {}", self.name), &[])
                .await
                .unwrap()
                .get(0)
        }

        async fn drop_table(self) {
            let c = self.pool.get().await.unwrap();
            c.batch_execute(&format!("DROP TABLE {}", self.name))
                .await
                .unwrap();
        }
    }

    /// Whether the connection is in a transaction block (SAVEPOINT fails outside one).
    async fn in_transaction(c: &Object) -> bool {
        c.batch_execute("SAVEPOINT probe; RELEASE SAVEPOINT probe")
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn begin_and_commit_travel_with_the_statements() {
        let t = Table::create().await;
        let mut tx = PipelinedTx::new(t.pool.get().await.unwrap());
        let insert = t.insert(tx.client()).await;
        let c = tx.client();
        let one = async { c.execute(&insert, &[&1i32]).await.map_err(pg_err) };
        try_join(tx.begin("BEGIN"), one).await.unwrap();
        assert!(in_transaction(c).await, "BEGIN went first");
        let two = async { c.execute(&insert, &[&2i32]).await.map_err(pg_err) };
        try_join(two, tx.commit()).await.unwrap();
        tx.finish();
        assert!(!in_transaction(tx.client()).await, "COMMIT ended it");
        drop(tx);
        assert_eq!(t.rows().await, 2);
        assert_eq!(
            t.pool.status().size,
            1,
            "the connection went back to the pool"
        );
        t.drop_table().await;
    }

    #[tokio::test]
    async fn a_failed_statement_before_the_commit_writes_nothing() {
        let t = Table::create().await;
        let tx = PipelinedTx::new(t.pool.get().await.unwrap());
        let insert = t.insert(tx.client()).await;
        let c = tx.client();
        tx.begin("BEGIN").await.unwrap();
        let ok = async { c.execute(&insert, &[&1i32]).await.map_err(pg_err) };
        // A duplicate key: the batch fails, and the COMMIT sent behind it rolls back.
        let dup = async { c.execute(&insert, &[&1i32]).await.map_err(pg_err) };
        assert!(try_join3(ok, dup, tx.commit()).await.is_err());
        tx.rollback().await;
        assert_eq!(t.rows().await, 0);
        let c = t.pool.get().await.unwrap();
        assert!(
            !in_transaction(&c).await,
            "the pooled connection is out of the transaction"
        );
        drop(c);
        t.drop_table().await;
    }

    #[tokio::test]
    async fn a_transaction_left_open_closes_its_connection() {
        let t = Table::create().await;
        let tx = PipelinedTx::new(t.pool.get().await.unwrap());
        let c = tx.client();
        let insert = format!("INSERT INTO {} VALUES (1)", t.name);
        try_join(tx.begin("BEGIN"), async {
            c.batch_execute(&insert).await.map_err(pg_err)
        })
        .await
        .unwrap();
        let pid: i32 = c
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        // As a cancelled request drops its future: neither finished nor rolled back.
        drop(tx);
        assert_eq!(t.pool.status().size, 0, "taken out of the pool");
        assert_eq!(t.rows().await, 0, "nothing committed");
        // The server saw the connection go and ended its backend (and transaction).
        let c = t.pool.get().await.unwrap();
        let gone = async {
            loop {
                let alive: bool = c
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                        &[&pid],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if !alive {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), gone)
            .await
            .expect("the backend of the dropped connection ends");
        drop(c);
        t.drop_table().await;
    }
}
