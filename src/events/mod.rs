//! Domain events: a transactional outbox relayed to NATS JetStream.
//!
//! Every change to a user or an order writes one event into the outbox *in the change's
//! own transaction* (under the memory store's mutex), so a change that rolls back writes
//! none and a committed change cannot lose its event. The [`relay::OutboxRelay`] actor
//! drains the outbox in order and publishes each event to JetStream with `Nats-Msg-Id` =
//! the event id (the broker drops a duplicate within its window), deleting rows only after
//! their acks: at least once.
//!
//! Order: the outbox's `seq` is taken by the INSERT, after the transaction has locked (or
//! created) the resource's row, so two changes of one resource get `seq`s in their commit
//! order; the relay reads every *visible* row in `seq` order and deletes what it published
//! (no cursor, so a transaction that commits late is simply read on a later pass, never
//! skipped). One relay publishes at a time per database (`postgres::PgOutbox` holds a
//! session advisory lock); the others stand by.
//!
//! - [`Event`]: the CloudEvents 1.0 envelope, built by the stores.
//! - [`Wake`]: the writers' cheap "something is in the outbox" signal to the relay.
//! - [`source`]: what a relay needs from a store (the Postgres outbox, the memory one).
//! - [`publisher`]: the JetStream side. [`relay`]: the actor and its loop.

pub mod postgres;
pub mod publisher;
pub mod relay;
pub mod source;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// The event types of the contract (`com.bulkhead.<as_str>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    UserRegistered,
    UserUpdated,
    UserStatusChanged,
    UserDeleted,
    OrderPlaced,
    OrderCancelled,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::UserRegistered,
        EventKind::UserUpdated,
        EventKind::UserStatusChanged,
        EventKind::UserDeleted,
        EventKind::OrderPlaced,
        EventKind::OrderCancelled,
    ];

    /// The event's name: the subject's last tokens and the CloudEvents type's suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UserRegistered => "user.registered",
            EventKind::UserUpdated => "user.updated",
            EventKind::UserStatusChanged => "user.status_changed",
            EventKind::UserDeleted => "user.deleted",
            EventKind::OrderPlaced => "order.placed",
            EventKind::OrderCancelled => "order.cancelled",
        }
    }

    fn cloud_type(self) -> &'static str {
        match self {
            EventKind::UserRegistered => "com.bulkhead.user.registered",
            EventKind::UserUpdated => "com.bulkhead.user.updated",
            EventKind::UserStatusChanged => "com.bulkhead.user.status_changed",
            EventKind::UserDeleted => "com.bulkhead.user.deleted",
            EventKind::OrderPlaced => "com.bulkhead.order.placed",
            EventKind::OrderCancelled => "com.bulkhead.order.cancelled",
        }
    }
}

/// One event, ready for the outbox: its id and the CloudEvents JSON to publish.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    pub kind: EventKind,
    pub payload: String,
}

#[derive(Serialize)]
struct CloudEvent<'a, T: Serialize> {
    specversion: &'static str,
    id: Uuid,
    source: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    subject: Uuid,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    time: DateTime<Utc>,
    datacontenttype: &'static str,
    data: &'a T,
}

impl Event {
    /// The event of `kind` about resource `subject` at `time`; `data` is the resource as
    /// the API shows it (`UserView`, `Order`), never a password hash.
    pub fn new<T: Serialize>(
        kind: EventKind,
        subject: Uuid,
        time: DateTime<Utc>,
        data: &T,
    ) -> Self {
        let id = Uuid::now_v7();
        let envelope = CloudEvent {
            specversion: "1.0",
            id,
            source: "bulkhead",
            kind: kind.cloud_type(),
            subject,
            time,
            datacontenttype: "application/json",
            data,
        };
        // Serializing these types cannot fail (no maps with non-string keys, no I/O).
        let payload = serde_json::to_string(&envelope).unwrap_or_default();
        Self { id, kind, payload }
    }
}

/// The writers' signal to this process's relay that the outbox has something new, and
/// the rate limit on their NOTIFY to the other processes' relays.
///
/// Waking the local relay is a `Notify` permit (free). NOTIFY is not free: Postgres
/// serialises the commits of notifying transactions on one database-wide lock, so a
/// process sends it with at most one write per `notify_interval`; the relay that wakes
/// drains until the outbox is empty, and the poll covers what falls between.
pub struct Wake {
    notify: tokio::sync::Notify,
    epoch: Instant,
    last_notify_ms: AtomicU64,
    interval_ms: u64,
}

impl Wake {
    pub fn new(notify_interval: Duration) -> Self {
        Self {
            notify: tokio::sync::Notify::new(),
            epoch: Instant::now(),
            last_notify_ms: AtomicU64::new(0),
            interval_ms: u64::try_from(notify_interval.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Wake this process's relay (after a commit that wrote an event).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Wait for [`Wake::wake`] (a wake while nobody waits is kept for the next wait).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    /// Whether this write should carry a NOTIFY: true for the first write of each
    /// `notify_interval` (one caller wins the slot).
    pub fn take_notify_slot(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(self.interval_ms); // so the very first write notifies
        let last = self.last_notify_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= self.interval_ms
            && self
                .last_notify_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The channel writers NOTIFY and relays LISTEN on.
pub const NOTIFY_CHANNEL: &str = "bulkhead_outbox";

/// Describe the outbox metrics once and show them at zero, so dashboards and alert rules
/// find the series even where events are off.
pub fn describe_metrics() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use metrics::{describe_counter, describe_gauge, Unit};
        describe_gauge!(
            "bulkhead_outbox_pending",
            "Events in the outbox not yet published (committed rows; sampled by the relay)"
        );
        describe_gauge!(
            "bulkhead_outbox_oldest_pending_seconds",
            Unit::Seconds,
            "Age of the oldest event not yet published (0 when the outbox is empty)"
        );
        describe_counter!(
            "bulkhead_outbox_published_total",
            "Events published to JetStream and acknowledged by it"
        );
        describe_counter!(
            "bulkhead_outbox_publish_failures_total",
            "Publish attempts of a batch that failed (NATS down, ack timeout)"
        );
        describe_gauge!(
            "bulkhead_outbox_relay_active",
            "1 while this process's relay holds the outbox (publishes), 0 while it stands by"
        );
        metrics::gauge!("bulkhead_outbox_pending").set(0.0);
        metrics::gauge!("bulkhead_outbox_oldest_pending_seconds").set(0.0);
        metrics::gauge!("bulkhead_outbox_relay_active").set(0.0);
        metrics::counter!("bulkhead_outbox_published_total").increment(0);
        metrics::counter!("bulkhead_outbox_publish_failures_total").increment(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_is_a_cloudevent_of_the_contracts_type() {
        let at = chrono::Utc::now();
        let subject = Uuid::now_v7();
        let e = Event::new(
            EventKind::OrderPlaced,
            subject,
            at,
            &serde_json::json!({"a": 1}),
        );
        let v: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], e.id.to_string());
        assert_eq!(v["source"], "bulkhead");
        assert_eq!(v["type"], "com.bulkhead.order.placed");
        assert_eq!(v["subject"], subject.to_string());
        assert_eq!(v["datacontenttype"], "application/json");
        assert_eq!(v["data"]["a"], 1);
        for k in EventKind::ALL {
            assert_eq!(k.cloud_type(), format!("com.bulkhead.{}", k.as_str()));
        }
    }

    #[test]
    fn one_notify_per_interval() {
        let w = Wake::new(Duration::from_secs(3600));
        assert!(w.take_notify_slot());
        assert!(!w.take_notify_slot());
        let every = Wake::new(Duration::ZERO);
        assert!(every.take_notify_slot());
        assert!(every.take_notify_slot());
    }
}
