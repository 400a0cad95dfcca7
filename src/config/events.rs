//! `[events]`: the transactional outbox and its relay to NATS JetStream (`crate::events`).

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// NATS server URL (`nats://host:4222`). Unset: no events are written or published.
    /// Redacted in `check-config` (it may carry credentials).
    pub nats_url: Option<Secret>,
    /// Events go to subject `<subject_prefix>.<event>`, e.g. `bulkhead.order.placed`.
    pub subject_prefix: String,
    /// JetStream stream on `<subject_prefix>.>`, created when missing.
    pub stream: String,
    /// The stream's duplicate window (JetStream drops a `Nats-Msg-Id` seen within it).
    pub duplicate_window_secs: u64,
    /// Events published per batch (the acks of a batch are awaited together).
    pub batch_size: usize,
    /// Fallback poll of the outbox when no wake-up (LISTEN/NOTIFY, in-process) arrives.
    pub poll_interval_ms: u64,
    /// A process sends NOTIFY with at most one write per this interval (NOTIFY serialises
    /// commits database-wide); writes in between rely on the in-process wake-up or the
    /// relay's draining loop.
    pub notify_interval_ms: u64,
    /// After publishing a batch that was not full, the relay waits this long before the
    /// next read, so that under load events go out in batches (adds at most this much
    /// publish lag). 0: read again at once.
    pub linger_ms: u64,
    /// Deadline for connecting to NATS (and to Postgres for the relay's own connection).
    pub connect_timeout_ms: u64,
    /// Deadline for a batch's publish acks, and for each relay query.
    pub publish_timeout_ms: u64,
    /// First and largest back-off after a failure (doubling in between).
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// The memory store's outbox capacity (events, not durable); a write that would
    /// overflow it is refused with 503.
    pub memory_outbox_capacity: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            subject_prefix: "bulkhead".into(),
            stream: "BULKHEAD".into(),
            duplicate_window_secs: 120,
            batch_size: 256,
            poll_interval_ms: 1000,
            notify_interval_ms: 10,
            linger_ms: 5,
            connect_timeout_ms: 2000,
            publish_timeout_ms: 5000,
            backoff_initial_ms: 100,
            backoff_max_ms: 5000,
            memory_outbox_capacity: 100_000,
        }
    }
}

/// A NATS subject token: no dots at the ends, no empty tokens, no wildcards or spaces.
fn subject_ok(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
        })
}

impl EventsConfig {
    pub fn enabled(&self) -> bool {
        self.nats_url.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: format!("events.{key}"),
                message: message.into(),
            })
        };
        if let Some(url) = &self.nats_url {
            let u = url.expose();
            if u.is_empty() || u.contains(char::is_whitespace) {
                return bad(
                    "nats_url",
                    "must be a NATS URL such as nats://127.0.0.1:4222",
                );
            }
        }
        if !subject_ok(&self.subject_prefix) {
            return bad(
                "subject_prefix",
                "must be a NATS subject (dot-separated tokens, no wildcards or spaces)",
            );
        }
        if self.stream.is_empty()
            || !self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return bad("stream", "must be letters, digits, '_' or '-'");
        }
        for (key, v) in [
            ("duplicate_window_secs", self.duplicate_window_secs),
            ("poll_interval_ms", self.poll_interval_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("publish_timeout_ms", self.publish_timeout_ms),
            ("backoff_initial_ms", self.backoff_initial_ms),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return bad("backoff_max_ms", "must be at least backoff_initial_ms");
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return bad("batch_size", "must be 1..=10000");
        }
        if self.memory_outbox_capacity == 0 {
            return bad("memory_outbox_capacity", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn bad_event_values_name_their_key() {
        for (toml, key) in [
            ("subject_prefix = \"bulk.*\"", "events.subject_prefix"),
            ("subject_prefix = \"a..b\"", "events.subject_prefix"),
            ("stream = \"has space\"", "events.stream"),
            ("batch_size = 0", "events.batch_size"),
            ("poll_interval_ms = 0", "events.poll_interval_ms"),
            ("backoff_max_ms = 1", "events.backoff_max_ms"),
            (
                "memory_outbox_capacity = 0",
                "events.memory_outbox_capacity",
            ),
            ("nats_url = \"\"", "events.nats_url"),
            ("natsurl = \"nats://x\"", "events.natsurl"),
        ] {
            let err = Config::from_toml_str(&format!("[events]\n{toml}\n")).unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
        let ok = Config::from_toml_str("[events]\nnats_url = \"nats://127.0.0.1:4222\"\n").unwrap();
        assert!(ok.events.enabled());
        assert!(!Config::default().events.enabled());
    }
}
