//! How soon a commit reaches a watcher on another node: one daemon pushes a
//! 4 KB model, another has a `Watch` open on the key, both on the same
//! Redis, as two trainers' nodes would be.

use std::time::{Duration, Instant};

use bytes::Bytes;
use modelsync::proto::v1 as api;
use tokio::sync::mpsc;

use crate::daemon::Client;
use crate::measure::{grouped, Percentiles};
use crate::report::{item, section};
use crate::transfer::{header, push};

const NAMESPACE: &str = "bench-watch";
const KEY: &str = "global";

/// Delays from a push to the watcher hearing of it.
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    /// From the start of the push call to the watcher's event.
    pub from_push_start: Percentiles,
    /// From the pusher's answer to the watcher's event; an event that came
    /// first counts as zero.
    pub from_push_answer: Percentiles,
    /// Events that reached the watcher before the push answered its caller.
    pub before_answer: usize,
}

pub async fn measure(
    pusher: &mut Client,
    watcher: &mut Client,
    model: Bytes,
    calls: usize,
) -> Notification {
    let events = watch(watcher).await;
    let mut events = events;
    let head = header(NAMESPACE, KEY, "", model.len() as u64);
    let (mut from_start, mut from_answer, mut before_answer) = (vec![], vec![], 0);

    for _ in 0..calls {
        let start = Instant::now();
        let version = push(pusher, head.clone(), model.clone())
            .await
            .unwrap_or_else(|e| panic!("a 4 KB push failed: {e}"))
            .version;
        let answered = Instant::now();
        let heard = heard(&mut events, version).await;

        from_start.push(heard - start);
        from_answer.push(heard.saturating_duration_since(answered));
        before_answer += usize::from(heard < answered);
    }

    Notification {
        from_push_start: Percentiles::of(from_start),
        from_push_answer: Percentiles::of(from_answer),
        before_answer,
    }
}

/// Opens the watch and stamps each event as it arrives, on a task of its
/// own so that the stamp is not delayed by the pusher.
async fn watch(watcher: &mut Client) -> mpsc::UnboundedReceiver<(u64, Instant)> {
    let request = api::WatchRequest {
        namespace: NAMESPACE.into(),
        keys: vec![KEY.into()],
        current: false,
    };
    let mut stream = watcher
        .watch(request)
        .await
        .unwrap_or_else(|e| panic!("opening a watch failed: {e}"))
        .into_inner();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(commit)) = stream.message().await {
            if sender.send((commit.version, Instant::now())).is_err() {
                return;
            }
        }
    });
    receiver
}

/// When the watcher heard of `version`.
async fn heard(events: &mut mpsc::UnboundedReceiver<(u64, Instant)>, version: u64) -> Instant {
    let wait = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Some((seen, at)) if seen >= version => return at,
                Some(_) => continue,
                None => panic!("the watch ended"),
            }
        }
    });
    wait.await
        .unwrap_or_else(|_| panic!("version {version} was not reported within 30 s"))
}

impl Notification {
    pub fn print(&self, calls: usize) {
        section(&format!(
            "commit to Watch event on another daemon, 4 KB model, {} pushes",
            grouped(calls as u64)
        ));
        item("from push start", self.from_push_start);
        item("from push answer", self.from_push_answer);
        item(
            "events before the push answered",
            format!("{} of {}", self.before_answer, grouped(calls as u64)),
        );
    }
}
