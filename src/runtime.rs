//! A tokio runtime of its own, on threads of its own, for a network client.
//!
//! A client's connections are tasks (and sockets registered with the reactor) of the
//! runtime that opened them. An actix worker's single-threaded runtime would tie each
//! connection to whichever worker happened to open it, and its connection work would
//! compete with that worker's requests. So the clients that keep connections (the
//! gateway's HTTP client, the Postgres pools) open and drive them here: one runtime per
//! client, started once at startup and owned by the client's owner (the gateway, the
//! store), whose drop stops it and every connection on it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The runtime; dropping it stops its threads (and every connection on them).
pub struct OwnedRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl OwnedRuntime {
    /// `threads` threads named `name`: one is a current-thread runtime on a thread of its
    /// own (no work stealing, one thread to wake); more is a multi-thread runtime.
    pub fn start(name: &str, threads: usize) -> std::io::Result<Self> {
        // The thread below runs a current-thread runtime's tasks itself, so it takes the
        // name; a multi-thread runtime's workers take it, and this thread only owns them.
        let (rt, owner) = if threads <= 1 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            (rt, name.to_owned())
        } else {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name(name)
                .enable_all()
                .build()?;
            (rt, format!("{name}-owner"))
        };
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name(owner).spawn(move || {
            // Drives the runtime's tasks (a current-thread runtime runs them inside
            // `block_on`) until the owner goes; then the runtime drops on a plain
            // thread (dropping it inside an async context would panic).
            let _ = rt.block_on(stopped);
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `fut` on this runtime; the task is aborted if the returned future is dropped
    /// (the caller went away), so no call outlives its caller.
    pub fn run<F>(&self, fut: F) -> Detached<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Detached(self.handle.spawn(fut))
    }

    /// A handle for spawning from a client's own code (it does not keep the runtime up).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A task on an [`OwnedRuntime`], aborted on drop. `None` if it panicked or the runtime
/// stopped under it.
pub struct Detached<T>(JoinHandle<T>);

impl<T> Future for Detached<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

impl<T> Drop for Detached<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
