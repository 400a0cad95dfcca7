//! The embedded in-memory store: used when no database is configured.
//!
//! One mutex guards all tables, so every operation is a serialisable transaction, which
//! keeps the same guarantees as Postgres (no oversell, unique emails) without cleverness.
//! Data lives as long as the process.

mod orders;
mod products;
mod refresh_tokens;
mod tables;
mod users;

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Backend, Store, StoreError};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) users: tables::Users,
    pub(crate) products: tables::Products,
    pub(crate) orders: tables::Orders,
    pub(crate) refresh_tokens: tables::RefreshTokens,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written row: every
        // operation validates before it mutates, so the state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
