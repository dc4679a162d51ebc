//! Accounting for calls: how many were served and are in flight, and the
//! metrics of each by method and status code. A streaming call counts
//! until its stream ends or is dropped.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;
use tonic::{Code, Status};

use crate::metrics;

/// Calls served and in flight, for Status and for the shutdown log.
#[derive(Default)]
pub struct Counters {
    served: AtomicU64,
    in_flight: AtomicUsize,
}

impl Counters {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// One call from its start until it is dropped. A call dropped before it
/// says how it ended was cancelled by its client.
pub struct Call {
    counters: Arc<Counters>,
    method: &'static str,
    started: Instant,
    code: Option<Code>,
}

impl Call {
    pub fn start(counters: &Arc<Counters>, method: &'static str) -> Self {
        counters.served.fetch_add(1, Ordering::Relaxed);
        let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::in_flight(now);
        Call {
            counters: counters.clone(),
            method,
            started: Instant::now(),
            code: None,
        }
    }

    /// Records how a unary (or client-streaming) call ended.
    pub fn finish<T>(mut self, result: Result<T, Status>) -> Result<T, Status> {
        self.code = Some(result.as_ref().map_or_else(Status::code, |_| Code::Ok));
        result
    }

    /// Follows a response stream: its first error, or its end, says how
    /// the call ended; `on_success` runs when it ends whole.
    pub fn track<S, T>(self, stream: S, on_success: impl FnOnce() + Send + 'static) -> Tracked<S>
    where
        S: Stream<Item = Result<T, Status>>,
    {
        Tracked {
            stream,
            call: Some(self),
            on_success: Some(Box::new(on_success)),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let now = self.counters.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::in_flight(now);
        let code = self.code.unwrap_or(Code::Cancelled);
        metrics::call_ended(self.method, code, self.started.elapsed());
    }
}

/// A response stream that ends its call's accounting when it ends.
pub struct Tracked<S> {
    stream: S,
    call: Option<Call>,
    on_success: Option<Box<dyn FnOnce() + Send>>,
}

impl<S, T> Stream for Tracked<S>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = Pin::new(&mut self.stream).poll_next(cx);
        match &item {
            Poll::Ready(Some(Err(status))) => self.end(status.code()),
            Poll::Ready(None) => {
                if let Some(on_success) = self.on_success.take() {
                    if self.call.as_ref().is_some_and(|c| c.code.is_none()) {
                        on_success();
                    }
                }
                self.end(Code::Ok);
            }
            _ => {}
        }
        item
    }
}

impl<S> Tracked<S> {
    fn end(&mut self, code: Code) {
        if let Some(mut call) = self.call.take() {
            call.code.get_or_insert(code);
        }
    }
}
