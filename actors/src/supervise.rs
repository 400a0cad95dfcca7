//! Shared actor machinery: per-kind metrics, fail-fast request/reply, panic containment.
//!
//! Every actor here follows one pattern:
//! * requests carry a `Reply<T>` (a oneshot sender); callers use [`ask`], which `try_send`s
//!   (a full mailbox answers `Overloaded` at once, a closed one `Unavailable`) and then
//!   awaits the reply under a deadline (`Timeout`); a reply dropped unanswered (actor
//!   stopped mid-message) is `Unavailable`;
//! * handlers run their body through [`contain`], which catches a panic, answers the caller
//!   `Panicked` and calls `ctx.stop()` so the `actix::Supervisor` restarts the actor;
//! * `Supervised::restarting` calls [`Meter::restarted`].
//!
//! Metric names (labels are bounded actor kinds, never keys):
//! `bulkhead_actor_messages_processed_total{actor}`, `bulkhead_actor_messages_rejected_total{actor}`,
//! `bulkhead_actor_restarts_total{actor}`, `bulkhead_actor_mailbox_depth{actor}` (sent minus
//! handled; approximate when a stopped actor drops its queue).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use metrics::{Counter, Gauge};
use tokio::sync::oneshot;

use crate::ActorError;

/// Where a handler sends its answer.
pub type Reply<T> = oneshot::Sender<Result<T, ActorError>>;

/// Metric handles of one actor kind, registered once (install the metrics recorder before
/// starting actors) so the request path only does atomic adds.
#[derive(Debug)]
pub struct Meter {
    kind: &'static str,
    processed: Counter,
    rejected: Counter,
    restarts: Counter,
    depth: Gauge,
    restart_count: AtomicU64,
}

impl Meter {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            processed: metrics::counter!("bulkhead_actor_messages_processed_total", "actor" => kind),
            rejected: metrics::counter!("bulkhead_actor_messages_rejected_total", "actor" => kind),
            restarts: metrics::counter!("bulkhead_actor_restarts_total", "actor" => kind),
            depth: metrics::gauge!("bulkhead_actor_mailbox_depth", "actor" => kind),
            restart_count: AtomicU64::new(0),
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// A message was accepted into the mailbox.
    pub fn sent(&self) {
        self.depth.increment(1.0);
    }

    /// A message was refused (mailbox full or closed).
    pub fn rejected(&self) {
        self.rejected.increment(1);
    }

    /// A handler took a message out of the mailbox.
    pub fn handled(&self) {
        self.depth.decrement(1.0);
        self.processed.increment(1);
    }

    /// Called from `Supervised::restarting`.
    pub fn restarted(&self) {
        self.restarts.increment(1);
        self.restart_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Restarts of this actor instance group since start (also exported as a metric).
    pub fn restarts(&self) -> u64 {
        self.restart_count.load(Ordering::Relaxed)
    }
}

/// Fail-fast `try_send` of a message without a reply (installs, notifications).
pub fn tell<A, M>(addr: &Addr<A>, meter: &Meter, msg: M) -> Result<(), ActorError>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    match addr.try_send(msg) {
        Ok(()) => {
            meter.sent();
            Ok(())
        }
        Err(err) => {
            meter.rejected();
            Err(send_error(&err))
        }
    }
}

/// Request/reply: fail-fast send, then the reply under `deadline`.
pub async fn ask<A, M, T>(
    addr: &Addr<A>,
    meter: &Meter,
    deadline: Duration,
    make: impl FnOnce(Reply<T>) -> M,
) -> Result<T, ActorError>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    let (tx, rx) = oneshot::channel();
    tell(addr, meter, make(tx))?;
    with_deadline(deadline, rx).await
}

async fn with_deadline<T>(
    deadline: Duration,
    rx: impl Future<Output = Result<Result<T, ActorError>, oneshot::error::RecvError>>,
) -> Result<T, ActorError> {
    match tokio::time::timeout(deadline, rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_dropped)) => Err(ActorError::Unavailable),
        Err(_elapsed) => Err(ActorError::Timeout),
    }
}

fn send_error<M>(err: &SendError<M>) -> ActorError {
    match err {
        // A full mailbox clears as fast as the actor drains it: ask again in a second.
        SendError::Full(_) => ActorError::Overloaded {
            retry_after: Duration::from_secs(1),
        },
        SendError::Closed(_) => ActorError::Unavailable,
    }
}

/// Runs a handler body with panics contained: on panic the caller (if any) gets
/// `Panicked`, and the actor stops so its supervisor restarts it.
pub fn contain<A, T>(
    ctx: &mut A::Context,
    meter: &Meter,
    reply: Option<Reply<T>>,
    body: impl FnOnce() -> Result<T, ActorError>,
) where
    A: Actor,
    A::Context: ActorContext,
{
    meter.handled();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(answer) => {
            if let Some(reply) = reply {
                // The caller may have given up (deadline, cancel): nothing to do then.
                let _ = reply.send(answer);
            }
        }
        Err(_panic) => {
            tracing::error!(actor = meter.kind(), "actor handler panicked; restarting");
            if let Some(reply) = reply {
                let _ = reply.send(Err(ActorError::Panicked {
                    actor: meter.kind(),
                }));
            }
            ctx.stop();
        }
    }
}
