//! What a relay needs from a store: an outbox to read in order and trim, and a way to
//! wait for new rows. The Postgres outbox is in [`super::postgres`]; the memory store's
//! (bounded, not durable) is [`MemoryOutbox`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Event, Wake};

/// An outbox row waiting to be published.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Position in the outbox: the publish order.
    pub seq: i64,
    pub id: uuid::Uuid,
    /// `order.placed` etc.: the subject's suffix.
    pub kind: String,
    pub payload: String,
}

/// The outbox's size and the age of its oldest row, for the gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    pub pending: u64,
    pub oldest_secs: f64,
}

/// A store's outbox, as the relay sees it.
#[async_trait]
pub trait OutboxSource: Send + Sync + 'static {
    /// A session: the relay's own connection to the outbox (on Postgres, a dedicated
    /// connection listening for NOTIFY). Called again after a session fails.
    async fn open(&self) -> anyhow::Result<Box<dyn OutboxSession>>;
}

#[async_trait]
pub trait OutboxSession: Send {
    /// Whether this session may publish: it holds (or just took) the outbox's one relay
    /// lock. False while another process's relay holds it.
    async fn try_lead(&mut self) -> anyhow::Result<bool>;
    /// Up to `limit` rows in publish order.
    async fn fetch(&mut self, limit: usize) -> anyhow::Result<Vec<Pending>>;
    /// Drop published rows.
    async fn remove(&mut self, published: &[Pending]) -> anyhow::Result<()>;
    async fn backlog(&mut self) -> anyhow::Result<Backlog>;
    /// Wait for a wake-up (a write in this process, a NOTIFY) or `max`, whichever is
    /// first. An error means the session is broken (its connection closed).
    async fn wait(&mut self, max: Duration) -> anyhow::Result<()>;
}

/// The memory store's outbox: a bounded queue written under the store's mutex (so with
/// the change it belongs to) and read by the relay. Not durable: what is not yet
/// published when the process stops is lost, with every other memory-store write.
#[derive(Debug)]
pub struct MemoryOutbox {
    rows: VecDeque<(Pending, std::time::Instant)>,
    next_seq: i64,
    capacity: usize,
}

impl MemoryOutbox {
    pub fn new(capacity: usize) -> Self {
        Self {
            rows: VecDeque::new(),
            next_seq: 1,
            capacity,
        }
    }

    /// Whether one more event fits; checked before the change is applied, so a full
    /// outbox refuses the whole write rather than dropping its event.
    pub fn has_room(&self) -> bool {
        self.rows.len() < self.capacity
    }

    pub fn push(&mut self, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.rows.push_back((
            Pending {
                seq,
                id: event.id,
                kind: event.kind.as_str().to_string(),
                payload: event.payload,
            },
            std::time::Instant::now(),
        ));
    }

    pub fn fetch(&self, limit: usize) -> Vec<Pending> {
        self.rows
            .iter()
            .take(limit)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Drop the published rows: they are a prefix, since one relay reads in order.
    pub fn remove_through(&mut self, last_seq: i64) {
        while self.rows.front().is_some_and(|(p, _)| p.seq <= last_seq) {
            self.rows.pop_front();
        }
    }

    pub fn backlog(&self) -> Backlog {
        Backlog {
            pending: self.rows.len() as u64,
            oldest_secs: self
                .rows
                .front()
                .map_or(0.0, |(_, at)| at.elapsed().as_secs_f64()),
        }
    }
}

/// Access to a memory outbox that lives inside another lock (the memory store's).
pub trait MemoryOutboxAccess: Send + Sync + 'static {
    fn with_outbox<R>(&self, f: impl FnOnce(&mut MemoryOutbox) -> R) -> R
    where
        Self: Sized;
}

/// The relay's view of the memory store's outbox.
pub struct MemorySource<A: MemoryOutboxAccess> {
    pub access: Arc<A>,
    pub wake: Arc<Wake>,
}

#[async_trait]
impl<A: MemoryOutboxAccess> OutboxSource for MemorySource<A> {
    async fn open(&self) -> anyhow::Result<Box<dyn OutboxSession>> {
        Ok(Box::new(MemorySession {
            access: self.access.clone(),
            wake: self.wake.clone(),
        }))
    }
}

struct MemorySession<A: MemoryOutboxAccess> {
    access: Arc<A>,
    wake: Arc<Wake>,
}

#[async_trait]
impl<A: MemoryOutboxAccess> OutboxSession for MemorySession<A> {
    async fn try_lead(&mut self) -> anyhow::Result<bool> {
        // One process, one relay.
        Ok(true)
    }

    async fn fetch(&mut self, limit: usize) -> anyhow::Result<Vec<Pending>> {
        Ok(self.access.with_outbox(|o| o.fetch(limit)))
    }

    async fn remove(&mut self, published: &[Pending]) -> anyhow::Result<()> {
        if let Some(last) = published.last() {
            self.access.with_outbox(|o| o.remove_through(last.seq));
        }
        Ok(())
    }

    async fn backlog(&mut self) -> anyhow::Result<Backlog> {
        Ok(self.access.with_outbox(|o| o.backlog()))
    }

    async fn wait(&mut self, max: Duration) -> anyhow::Result<()> {
        let _ = tokio::time::timeout(max, self.wake.woken()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    #[test]
    fn memory_outbox_is_bounded_and_trimmed_in_order() {
        let mut o = MemoryOutbox::new(2);
        let e = || {
            Event::new(
                EventKind::UserUpdated,
                uuid::Uuid::nil(),
                chrono::Utc::now(),
                &1,
            )
        };
        o.push(e());
        assert!(o.has_room());
        o.push(e());
        assert!(!o.has_room());
        let rows = o.fetch(10);
        assert_eq!(rows.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2]);
        o.remove_through(1);
        assert_eq!(o.backlog().pending, 1);
        o.remove_through(2);
        assert_eq!(o.backlog(), Backlog::default());
    }
}
