//! The guard in front of the store, and the only way to call it.
//!
//! [`Guarded`] owns the store in a private field. A store call is a closure given the
//! store, run by [`Guarded::read`] or [`Guarded::write`]: admitted by the `db_read` or
//! `db_write` bulkhead (concurrency limit, bounded queue, queue deadline), then, on
//! Postgres, through the Postgres circuit, with `StoreError`/`ActorError` mapped to the
//! contract's codes (`crate::error`). Every admission queues as the request's caller
//! ([`super::caller`]), so the bulkheads' queues are fair between callers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_actors::{Bulkhead, Circuit, CircuitState, Outcome};

use super::caller;
use crate::error::ApiError;
use crate::store::{Backend, Store, StoreError};

/// The store behind its bulkheads and circuit. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct Guarded {
    store: Arc<dyn Store>,
    db_read: Bulkhead,
    db_write: Bulkhead,
    /// `None` on the in-memory store, which has no dependency to fail.
    pg_circuit: Option<Circuit>,
}

impl Guarded {
    pub fn new(
        store: Arc<dyn Store>,
        db_read: Bulkhead,
        db_write: Bulkhead,
        pg_circuit: Option<Circuit>,
    ) -> Self {
        Self {
            store,
            db_read,
            db_write,
            pg_circuit,
        }
    }

    /// A store read: `db_read` bulkhead, then the Postgres circuit, then the call.
    pub async fn read<'a, T, Fut>(
        &'a self,
        call: impl FnOnce(&'a dyn Store) -> Fut,
    ) -> Result<T, ApiError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let _slot = self.db_read.acquire_as(caller::current()).await?;
        self.through_circuit(call(&*self.store)).await
    }

    /// A store write: `db_write` bulkhead, then the Postgres circuit, then the call.
    pub async fn write<'a, T, Fut>(
        &'a self,
        call: impl FnOnce(&'a dyn Store) -> Fut,
    ) -> Result<T, ApiError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let _slot = self.db_write.acquire_as(caller::current()).await?;
        self.through_circuit(call(&*self.store)).await
    }

    async fn through_circuit<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ApiError> {
        let result = match &self.pg_circuit {
            Some(circuit) => circuit.call(call, classify).await?,
            None => call.await,
        };
        result.map_err(ApiError::from)
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// The bulkheads and the circuit (handles), for a configuration reload.
    pub fn admission(&self) -> (Bulkhead, Bulkhead, Option<Circuit>) {
        (
            self.db_read.clone(),
            self.db_write.clone(),
            self.pg_circuit.clone(),
        )
    }

    /// New pool sizes from a configuration reload.
    pub fn resize_pools(&self, read: usize, write: usize) {
        self.store.resize_pools(read, write);
    }

    /// Connection pools by name with their status (metrics; no I/O).
    pub fn pool_status(&self) -> Vec<(&'static str, deadpool_postgres::Status)> {
        self.store.pool_status()
    }

    /// Whether the store answers within `deadline`, and the Postgres circuit's state
    /// afterwards (`None` on the memory store).
    ///
    /// While the circuit is not closed the ping goes through it as a trial call, so the
    /// circuit closes again once the store is back even when no user traffic arrives
    /// (load balancers send none to an instance that is not ready). No bulkhead: a probe
    /// must see the store even when the bulkheads are full.
    pub async fn probe(&self, deadline: Duration) -> (bool, Option<CircuitState>) {
        let ping = || async {
            matches!(
                tokio::time::timeout(deadline, self.store.ping()).await,
                Ok(Ok(()))
            )
        };
        let Some(circuit) = &self.pg_circuit else {
            return (ping().await, None);
        };
        let store_ok = if circuit.state() == CircuitState::Closed {
            ping().await
        } else {
            let as_outcome = |ok: &bool| {
                if *ok {
                    Outcome::Success
                } else {
                    Outcome::Failure
                }
            };
            match circuit.call(ping(), as_outcome).await {
                Ok(ok) => ok,
                // Still open (or trial slots taken): report the store without counting.
                Err(_) => ping().await,
            }
        };
        (store_ok, Some(circuit.state()))
    }
}

/// A store call counts against the circuit only when the dependency failed.
fn classify<T>(result: &Result<T, StoreError>) -> Outcome {
    match result {
        Err(e) if e.is_dependency_failure() => Outcome::Failure,
        _ => Outcome::Success,
    }
}
