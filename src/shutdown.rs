//! Signals, and the drain that gives calls in flight a deadline.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::info;

/// Resolves at the first SIGTERM or SIGINT.
pub async fn signal_received() {
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(signal = name, "shutdown requested");
}

/// Splits one shutdown trigger in two: the first future tells the server to
/// stop accepting, the second resolves `grace` later, when whatever is
/// still running must be closed.
pub fn with_deadline(
    trigger: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> (
    impl Future<Output = ()> + Send,
    impl Future<Output = ()> + Send,
) {
    let (tx, mut rx) = watch::channel(false);
    let stop = async move {
        trigger.await;
        let _ = tx.send(true);
    };
    let deadline = async move {
        // A dropped sender also ends the wait: the server has stopped.
        let _ = rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    (stop, deadline)
}
