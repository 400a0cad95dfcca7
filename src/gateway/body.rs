//! Bodies crossing the gateway, both ways, through bounded channels.
//!
//! actix's request payload is `!Send` and lives on an actix worker, while the upstream
//! client runs on the gateway's own runtime: the two meet in a bounded channel of chunks,
//! so a body streams through with backpressure and never sits whole in memory (the
//! buffered case is the small replayable body of a retryable request).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Why a body stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The client's body failed or stalled past the deadline.
    Client,
    /// The upstream's body failed or stalled past the deadline.
    Upstream,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Client => "the client's request body failed",
            Self::Upstream => "the upstream's response body failed",
        })
    }
}

impl std::error::Error for BodyError {}

pub type Chunk = Result<Bytes, BodyError>;

/// Chunks in flight per body: enough to keep both sides busy, small enough that a slow
/// reader holds back the writer at once.
pub const CHANNEL_CHUNKS: usize = 8;

/// The body of an upstream request.
pub enum UpBody {
    Empty,
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Chunk>),
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpBody::Empty => Poll::Ready(None),
            UpBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            UpBody::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Empty => true,
            UpBody::Full(bytes) => bytes.is_none(),
            UpBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Empty => SizeHint::with_exact(0),
            UpBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            UpBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// What a request sends upstream: nothing, a buffered body every attempt can replay, or
/// a stream only the first attempt can send.
pub enum RequestBody {
    Empty,
    Buffered(Bytes),
    Streamed(mpsc::Receiver<Chunk>),
}

impl RequestBody {
    /// The body for the next attempt; `None` when a streamed body was already sent.
    pub fn for_attempt(&mut self) -> Option<UpBody> {
        match self {
            RequestBody::Empty => Some(UpBody::Empty),
            RequestBody::Buffered(b) => Some(UpBody::Full(Some(b.clone()))),
            RequestBody::Streamed(_) => match std::mem::replace(self, RequestBody::Empty) {
                RequestBody::Streamed(rx) => Some(UpBody::Stream(rx)),
                _ => None,
            },
        }
    }

    pub fn replayable(&self) -> bool {
        !matches!(self, RequestBody::Streamed(_))
    }
}
