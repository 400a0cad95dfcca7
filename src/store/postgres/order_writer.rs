//! The order writer: orders placed at the same time share one transaction.
//!
//! An order alone costs Postgres two round trips, five statements and a commit (its WAL
//! flush), and most of that is the same whatever the number of orders: statements over
//! arrays place several orders for far less than as many transactions (pgbench, 16
//! clients, four orders a transaction against one: 2.2-2.3x the orders a second). So
//! `create_order` queues its order, and `database.order_writers` tasks on the store's
//! runtime each take every order waiting (up to `database.order_batch_max`) and place
//! them together ([`placing::place`]). Nothing waits to fill a batch: a writer takes what
//! is queued the moment it is free, so a lone order is a transaction of one, as before,
//! and batches grow only when orders arrive faster than the writers commit them (group
//! commit, as a database does with its WAL flushes).
//!
//! Each order's outcome is what it would have been placed alone in the batch's order
//! (the same checks, the stock left by the orders before it, a key used twice is in use
//! for the second). A batch whose transaction the *data* refuses (a statement error, say
//! a foreign key of one order's user deleted meanwhile) is rolled back and its orders are
//! placed one by one, so that one order's failure is only its own; a failure of the
//! database (unreachable, a timeout) is every order's, as it would be each one's alone.
//!
//! Bounded: the queue holds [`QUEUE`] orders (callers come through the `db_write`
//! bulkhead, which bounds them long before; a full queue answers 503 at once), a batch
//! `order_batch_max`, and every transaction has a deadline (`database.pool_wait_timeout_ms`
//! plus twice `statement_timeout_ms`) past which its connection is closed (the server
//! rolls back) and its orders answer 503. An order whose caller has gone (a timeout, a
//! client that hung up) is still placed once queued, as one whose commit was on its way:
//! its key replays it.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::pipelined::PipelinedTx;
use super::placing::{self, Job};
use super::{pool_err, Outbox};
use crate::domain::order::Placed;
use crate::store::StoreError;

/// Orders queued for the writers at most.
const QUEUE: usize = 1024;

/// What the writers place with: the write pool, the outbox, the deadline.
#[derive(Clone)]
pub(super) struct Placing {
    pub pool: Pool,
    pub outbox: Option<Outbox>,
    pub deadline: Duration,
}

struct Queued {
    job: Job,
    reply: oneshot::Sender<Result<Placed, StoreError>>,
}

/// The queue of orders and the writers that drain it (they stop when it is dropped).
pub(super) struct OrderWriter {
    queue: mpsc::Sender<Queued>,
}

impl OrderWriter {
    /// `writers` tasks on `runtime` (the store's own), each placing up to `batch_max`
    /// orders a transaction.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        placing: Placing,
        writers: usize,
        batch_max: usize,
    ) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            runtime.spawn(write(rx.clone(), placing.clone(), batch_max));
        }
        Self { queue }
    }

    /// Queue `job` and wait for its outcome.
    pub async fn place(&self, job: Job) -> Result<Placed, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .try_send(Queued { job, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("the order queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => stopped(),
            })?;
        outcome.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the order writer stopped".into())
}

/// One writer: whoever holds the receiver waits for the next order, then takes every
/// order already queued behind it, lets go of the receiver (the next writer waits
/// meanwhile) and places its batch.
async fn write(queue: Arc<Mutex<mpsc::Receiver<Queued>>>, placing: Placing, batch_max: usize) {
    loop {
        let batch = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < batch_max {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        metrics::histogram!("bulkhead_order_batch_size").record(batch.len() as f64);
        let (jobs, replies): (Vec<Job>, Vec<_>) =
            batch.into_iter().map(|q| (q.job, q.reply)).unzip();
        let outcomes = place_batch(&placing, &jobs).await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that has gone wants no answer.
            let _ = reply.send(outcome);
        }
    }
}

/// Place `jobs` in one transaction, or each alone when the data refused the batch's
/// (module docs): one outcome a job, in their order.
async fn place_batch(placing: &Placing, jobs: &[Job]) -> Vec<Result<Placed, StoreError>> {
    match transact(placing, jobs).await {
        Ok(outcomes) => outcomes,
        Err(e) if jobs.len() > 1 && !e.is_dependency_failure() => {
            tracing::debug!(error = %e, orders = jobs.len(), "order batch refused; placing each alone");
            let mut outcomes = Vec::with_capacity(jobs.len());
            for job in jobs {
                outcomes.push(place_alone(placing, job).await);
            }
            outcomes
        }
        Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Place `job` in a transaction of its own (`database.order_batch_max = 1`, or a batch
/// placed order by order).
pub(super) async fn place_alone(placing: &Placing, job: &Job) -> Result<Placed, StoreError> {
    transact(placing, std::slice::from_ref(job))
        .await?
        .pop()
        .unwrap_or_else(|| Err(StoreError::Internal("an order without an outcome".into())))
}

/// One transaction placing `jobs`, within the deadline. It is ended here, before any
/// answer, whatever the outcome: a transaction left open would hold the keys' locks past
/// the answers (a retry right after would find its key in use). A future dropped mid-way
/// (the deadline) closes the connection instead (`PipelinedTx`).
async fn transact(
    placing: &Placing,
    jobs: &[Job],
) -> Result<Vec<Result<Placed, StoreError>>, StoreError> {
    let work = async {
        let mut tx = PipelinedTx::new(placing.pool.get().await.map_err(pool_err)?);
        match placing::place(&tx, placing.outbox.as_ref(), jobs).await {
            Ok(outcomes) => {
                tx.finish();
                let created = outcomes
                    .iter()
                    .any(|o| matches!(o, Ok(Placed::Created { .. })));
                if let (Some(outbox), true) = (&placing.outbox, created) {
                    outbox.committed();
                }
                Ok(outcomes)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    };
    tokio::time::timeout(placing.deadline, work)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the order's transaction passed its deadline".into(),
            ))
        })
}
