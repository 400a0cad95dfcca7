//! Who a store call is made for, so the bulkheads can share their queues fairly.
//!
//! The HTTP layer runs each request's handler inside [`as_caller`] with a key for the
//! caller (a keyed hash of the user id, or of the client IP when anonymous); the
//! bulkhead guard in [`super::Services`] reads it. A task-local rather than a parameter:
//! every handler reaches the store through `Services::read`/`write`, and the caller is
//! a property of the request, not of each call. Work outside a request (bootstrap,
//! readiness probes) runs as the shared caller.

use std::future::Future;

use bulkhead_actors::bulkhead::SHARED_CALLER;

tokio::task_local! {
    static CALLER: u64;
}

/// Runs `fut` (a request's handler) as `caller`.
pub async fn as_caller<F: Future>(caller: u64, fut: F) -> F::Output {
    CALLER.scope(caller, fut).await
}

/// The caller of the current request, or the shared caller outside one.
pub fn current() -> u64 {
    CALLER.try_with(|c| *c).unwrap_or(SHARED_CALLER)
}
