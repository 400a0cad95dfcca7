//! Writing domain events into the outbox, inside the caller's transaction
//! (`crate::events`; the table is `sql/0005_outbox.sql`).
//!
//! Callers write the event *after* the statement that locks (or creates) the resource's
//! row, so the row's `seq` follows every earlier committed change of that resource.

use deadpool_postgres::GenericClient;
use tokio_postgres::Statement;

use super::{pg_err, Outbox};
use crate::events::Event;
use crate::store::StoreError;

const INSERT: &str = "INSERT INTO outbox (id, kind, payload) VALUES ($1, $2, $3)";
/// The same row, plus a NOTIFY delivered at commit (one statement, one round trip).
const INSERT_NOTIFY: &str = "INSERT INTO outbox (id, kind, payload)
     SELECT $1, $2, $3 FROM (SELECT pg_notify('bulkhead_outbox', '')) AS n";
/// Several rows in one statement, their seqs in the arrays' order (a batch of orders).
const INSERT_MANY: &str = "INSERT INTO outbox (id, kind, payload)
     SELECT e.id, e.kind, e.payload
     FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS e(id, kind, payload, i)
     ORDER BY e.i";
/// The same, plus the NOTIFY (identical notifications of a transaction are sent once).
const INSERT_MANY_NOTIFY: &str = "INSERT INTO outbox (id, kind, payload)
     SELECT e.id, e.kind, e.payload
     FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS e(id, kind, payload, i)
     CROSS JOIN (SELECT pg_notify('bulkhead_outbox', '')) AS n
     ORDER BY e.i";

impl Outbox {
    /// Insert `event` in the transaction `c` is in.
    pub(crate) async fn write<C: GenericClient>(
        &self,
        c: &C,
        event: &Event,
    ) -> Result<(), StoreError> {
        let stmt = self.prepare(c).await?;
        Self::insert(c, &stmt, event).await
    }

    /// The insert statement, prepared before a pipelined batch that must send it in its
    /// place (see `pipelined`). Call once per event: it decides whether this insert is
    /// the one that also sends the relay's NOTIFY.
    pub(crate) async fn prepare<C: GenericClient>(&self, c: &C) -> Result<Statement, StoreError> {
        self.prepare_either(c, INSERT, INSERT_NOTIFY).await
    }

    /// Insert `event` with a statement from [`prepare`](Self::prepare): sent when first
    /// polled.
    pub(crate) async fn insert<C: GenericClient>(
        c: &C,
        stmt: &Statement,
        event: &Event,
    ) -> Result<(), StoreError> {
        c.execute(stmt, &[&event.id, &event.kind.as_str(), &event.payload])
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    /// The statement of [`insert_many`](Self::insert_many), prepared before the batch
    /// that sends it; once per batch of events, like [`prepare`](Self::prepare).
    pub(crate) async fn prepare_many<C: GenericClient>(
        &self,
        c: &C,
    ) -> Result<Statement, StoreError> {
        self.prepare_either(c, INSERT_MANY, INSERT_MANY_NOTIFY)
            .await
    }

    /// `plain`, or `notify` when this write is the one that also sends the relay's
    /// NOTIFY (at most one per `events.notify_interval_ms`).
    async fn prepare_either<C: GenericClient>(
        &self,
        c: &C,
        plain: &str,
        notify: &str,
    ) -> Result<Statement, StoreError> {
        let sql = if self.wake.take_notify_slot() {
            notify
        } else {
            plain
        };
        c.prepare_cached(sql).await.map_err(pg_err)
    }

    /// Insert `events` in one statement, in their order: sent when first polled.
    pub(crate) async fn insert_many<C: GenericClient>(
        c: &C,
        stmt: &Statement,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
        c.execute(stmt, &[&ids, &kinds, &payloads])
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    /// After the commit: wake this process's relay.
    pub(crate) fn committed(&self) {
        self.wake.wake();
    }
}
