//! Many trainers on one node at once: every client has its own connection
//! and its own key, and pushes then pulls a 1 MiB model until time is up.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use modelsync::cli::connect;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tonic::Status;

use crate::daemon::Client;
use crate::measure::mb_per_s;
use crate::report::{item, section};
use crate::transfer::{header, pull, push};

const NAMESPACE: &str = "bench";
pub const MODEL_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Concurrency {
    pub clients: usize,
    pub elapsed: Duration,
    pub tally: Tally,
}

/// What the clients did: bytes moved both ways, calls, and failures.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub bytes: u64,
    pub calls: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

pub async fn measure(
    socket: &Path,
    weights: &Bytes,
    clients: usize,
    time: Duration,
) -> Concurrency {
    // Everyone connects first and starts together, so that connection
    // set-up is not timed and no client runs alone for a while.
    let start_line = Arc::new(Barrier::new(clients + 1));
    let mut tasks = JoinSet::new();
    for index in 0..clients {
        let client = connect(socket)
            .await
            .unwrap_or_else(|e| panic!("client {index}: {e}"));
        let model = model_for(weights, index);
        tasks.spawn(run_client(client, index, model, start_line.clone(), time));
    }

    start_line.wait().await;
    let start = Instant::now();
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        tally.merge(joined.expect("a client task panicked"));
    }
    Concurrency {
        clients,
        elapsed: start.elapsed(),
        tally,
    }
}

/// A distinct 1 MiB window of the real weights for each client.
fn model_for(weights: &Bytes, index: usize) -> Bytes {
    assert!(
        weights.len() >= MODEL_BYTES,
        "the weights are smaller than 1 MiB"
    );
    let offset = (index * MODEL_BYTES) % (weights.len() - MODEL_BYTES + 1);
    weights.slice(offset..offset + MODEL_BYTES)
}

async fn run_client(
    mut client: Client,
    index: usize,
    model: Bytes,
    start_line: Arc<Barrier>,
    time: Duration,
) -> Tally {
    let key = format!("client-{index}");
    let head = header(NAMESPACE, &key, "", model.len() as u64);
    let mut tally = Tally::default();

    start_line.wait().await;
    let deadline = Instant::now() + time;
    while Instant::now() < deadline {
        let pushed = push(&mut client, head.clone(), model.clone()).await;
        tally.record(pushed.map(drop), model.len());
        let pulled = pull(&mut client, NAMESPACE, &key).await.and_then(|back| {
            if back == model[..] {
                Ok(())
            } else {
                Err(Status::data_loss("the pull differs from the push"))
            }
        });
        tally.record(pulled, model.len());
    }
    tally
}

impl Tally {
    fn record(&mut self, call: Result<(), Status>, bytes: usize) {
        self.calls += 1;
        match call {
            Ok(()) => self.bytes += bytes as u64,
            Err(status) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| status.to_string());
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.bytes += other.bytes;
        self.calls += other.calls;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

impl Concurrency {
    /// Bytes pushed and pulled by all clients together, per second.
    pub fn aggregate_rate(&self) -> f64 {
        mb_per_s(self.tally.bytes, self.elapsed)
    }

    pub fn print(&self) {
        section(&format!(
            "daemon, {} clients, 1 MiB model each, push then pull, {:.1} s",
            self.clients,
            self.elapsed.as_secs_f64()
        ));
        item("aggregate", format!("{:.1} MB/s", self.aggregate_rate()));
        item("calls", self.tally.calls);
        item("errors", self.tally.errors);
        if let Some(error) = &self.tally.first_error {
            item("first error", error);
        }
    }
}
