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

/// Tells every listener to stop accepting, once the trigger has fired.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves when the listeners must stop accepting.
    pub fn requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.0.clone();
        async move {
            // A dropped sender also ends the wait: nothing can trigger it.
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    }
}

/// Splits one shutdown trigger in two: [`Stop`] tells the listeners to stop
/// accepting, and the returned future, which also drives the trigger,
/// resolves `grace` later, when whatever is still running must be closed.
pub fn with_deadline(
    trigger: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> (Stop, impl Future<Output = ()> + Send) {
    let (tx, rx) = watch::channel(false);
    let deadline = async move {
        trigger.await;
        let _ = tx.send(true);
        tokio::time::sleep(grace).await;
    };
    (Stop(rx), deadline)
}
