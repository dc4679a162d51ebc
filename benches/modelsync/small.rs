//! Latency of 4 KB models, one call at a time through one connected
//! client: what a trainer syncing a small model often feels.

use std::time::Instant;

use bytes::Bytes;

use crate::daemon::Client;
use crate::measure::{grouped, Percentiles};
use crate::report::{item, section};
use crate::transfer::{header, pull, push};

const NAMESPACE: &str = "bench";
const KEY: &str = "small";

/// Latency of 4 KB pushes and pulls.
#[derive(Debug, Clone, Copy)]
pub struct SmallCalls {
    pub push: Percentiles,
    pub pull: Percentiles,
    /// A call that never reaches Redis: the floor of the socket and gRPC.
    pub floor: Option<Percentiles>,
}

pub async fn measure(client: &mut Client, model: Bytes, calls: usize) -> SmallCalls {
    let head = header(NAMESPACE, KEY, "", model.len() as u64);
    let mut pushes = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        push(client, head.clone(), model.clone())
            .await
            .unwrap_or_else(|e| panic!("a 4 KB push failed: {e}"));
        pushes.push(start.elapsed());
    }

    let mut pulls = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        pull(client, NAMESPACE, KEY)
            .await
            .unwrap_or_else(|e| panic!("a 4 KB pull failed: {e}"));
        pulls.push(start.elapsed());
    }

    let mut floor = Vec::with_capacity(calls);
    for _ in 0..calls {
        let request = modelsync::proto::v1::NamespaceRequest {
            namespace: NAMESPACE.into(),
        };
        let start = Instant::now();
        client
            .namespace(request)
            .await
            .unwrap_or_else(|e| panic!("a Namespace call failed: {e}"));
        floor.push(start.elapsed());
    }

    SmallCalls {
        push: Percentiles::of(pushes),
        pull: Percentiles::of(pulls),
        floor: Some(Percentiles::of(floor)),
    }
}

impl SmallCalls {
    pub fn print(&self, calls: usize) {
        section(&format!(
            "daemon, 4 KB model, {} calls each, one client",
            grouped(calls as u64)
        ));
        item("push", self.push);
        item("pull", self.pull);
        if let Some(floor) = self.floor {
            item("Namespace call, no Redis", floor);
        }
    }
}
