//! Integration tests of the actor crate: real actors in an actix System, paused tokio
//! clocks for everything time-dependent, real threads for the concurrency checks.

mod bulkhead;
mod bulkhead_queue;
mod cache;
mod cache_versions;
mod circuit;
mod fleet;
mod ratelimit;
// The service's fleet tests use the same helper.
#[path = "../../../tests/common/redis_server.rs"]
mod redis_server;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Polls a future exactly once, without letting any other task (or the clock) run.
pub fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    fut.poll(&mut cx)
}

/// Lets spawned actors run their `started()` and pending messages.
pub async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}
