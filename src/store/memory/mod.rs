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

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Backend, Store, StoreError};
use crate::config::EventsConfig;
use crate::events::source::{MemoryOutbox, MemoryOutboxAccess, MemorySource, OutboxSource};
use crate::events::{Event, EventKind, Wake};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// `Some` when events are on (then `State::outbox` is too).
    wake: Option<Arc<Wake>>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) users: tables::Users,
    pub(crate) products: tables::Products,
    pub(crate) orders: tables::Orders,
    pub(crate) refresh_tokens: tables::RefreshTokens,
    /// Domain events not yet published; `None` when events are off.
    pub(crate) outbox: Option<MemoryOutbox>,
}

impl State {
    /// Refuse the write up front when its event would not fit (before anything changes).
    pub(crate) fn event_room(&self) -> Result<(), StoreError> {
        match &self.outbox {
            Some(o) if !o.has_room() => Err(StoreError::Unavailable(
                "the in-memory event outbox is full (is NATS reachable?)".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Record the event of a change made under this same lock.
    pub(crate) fn emit<T: Serialize>(
        &mut self,
        kind: EventKind,
        subject: Uuid,
        at: DateTime<Utc>,
        data: &T,
    ) {
        if let Some(o) = &mut self.outbox {
            o.push(Event::new(kind, subject, at, data));
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that writes domain events (when `events.nats_url` is set) into a bounded
    /// in-memory outbox, for the relay [`Store::outbox_source`] gives. Not durable.
    pub fn with_events(events: &EventsConfig) -> Self {
        if !events.enabled() {
            return Self::new();
        }
        let state = State {
            outbox: Some(MemoryOutbox::new(events.memory_outbox_capacity)),
            ..State::default()
        };
        Self {
            state: Mutex::new(state),
            wake: Some(Arc::new(Wake::new(Duration::from_millis(
                events.notify_interval_ms,
            )))),
        }
    }

    /// Wake the relay after a write that emitted an event.
    pub(crate) fn emitted(&self) {
        if let Some(w) = &self.wake {
            w.wake();
        }
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

    fn outbox_source(self: Arc<Self>) -> Option<Arc<dyn OutboxSource>> {
        let wake = self.wake.clone()?;
        Some(Arc::new(MemorySource { access: self, wake }))
    }
}

impl MemoryOutboxAccess for MemoryStore {
    fn with_outbox<R>(&self, f: impl FnOnce(&mut MemoryOutbox) -> R) -> R {
        let mut state = self.lock();
        let mut empty = MemoryOutbox::new(1);
        f(state.outbox.as_mut().unwrap_or(&mut empty))
    }
}
