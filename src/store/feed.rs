//! Commits as they happen. Every commit publishes a notice on its
//! namespace's channel in the same atomic step that makes it visible (see
//! the commit script in [`super::writer`]); this feed listens on one
//! pub/sub connection of its own and hands each notice to every waiting
//! call in this daemon.
//!
//! Pub/sub delivers at most once: a notice published while the connection
//! is down, or to a subscriber that fell behind, is lost. So the feed is
//! only a fast path: whoever waits also checks Redis itself every
//! [`StorageConfig::check_interval`](crate::config::StorageConfig), and
//! after every (re)subscription, which the feed announces with
//! [`Event::Resync`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast;
use tracing::{debug, info};

use super::keys;
use crate::redis::Redis;

/// Notices a waiting call may fall behind by before it must resync.
const BACKLOG: usize = 4096;

/// One commit, as announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub namespace: String,
    pub key: String,
    pub version: u64,
    pub updater: String,
}

/// What a waiting call hears.
#[derive(Debug, Clone)]
pub enum Event {
    Commit(Arc<Notice>),
    /// Notices may have been missed: check Redis again.
    Resync,
}

/// The daemon's one subscription to commit notices; cheap to clone. It
/// subscribes on first use and stays subscribed while any clone lives.
#[derive(Clone)]
pub struct Feed {
    shared: Arc<Shared>,
}

struct Shared {
    events: broadcast::Sender<Event>,
    redis: Redis,
    started: std::sync::Once,
}

impl Feed {
    pub fn new(redis: Redis) -> Self {
        let (events, _) = broadcast::channel(BACKLOG);
        Feed {
            shared: Arc::new(Shared {
                events,
                redis,
                started: std::sync::Once::new(),
            }),
        }
    }

    /// Starts hearing notices; subscribes to Redis on the first call.
    pub fn listen(&self) -> Listener {
        let events = self.shared.events.subscribe();
        self.shared.started.call_once(|| {
            tokio::spawn(subscribe(Arc::downgrade(&self.shared)));
        });
        Listener { events }
    }
}

/// One waiting call's view of the feed.
pub struct Listener {
    events: broadcast::Receiver<Event>,
}

impl Listener {
    /// The next event; a listener that fell behind hears `Resync`. Never
    /// resolves once the feed is gone, so that waiting falls back on checks.
    pub async fn next(&mut self) -> Event {
        match self.events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                debug!(missed, "fell behind the commit feed");
                Event::Resync
            }
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// Keeps one pattern subscription to every namespace's commit channel,
/// resubscribing after each loss, until the feed is dropped.
async fn subscribe(shared: Weak<Shared>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let Some(redis) = shared.upgrade().map(|s| s.redis.clone()) else {
            return;
        };
        match redis.subscriber(keys::COMMITS_PATTERN).await {
            Ok(pubsub) => {
                info!("subscribed to commit notices");
                delay = Duration::from_millis(100);
                forward(pubsub, &shared).await;
                info!("lost the subscription to commit notices; waiting calls check Redis until it is back");
            }
            Err(e) => debug!(error = %e, "cannot subscribe to commit notices yet"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Hands on every notice until the connection ends or the feed is gone.
async fn forward(pubsub: redis::aio::PubSub, shared: &Weak<Shared>) {
    match shared.upgrade() {
        Some(s) => {
            let _ = s.events.send(Event::Resync);
        }
        None => return,
    }

    let mut messages = pubsub.into_on_message();
    // Wakes up now and then to notice a feed that is gone.
    let mut alive = tokio::time::interval(Duration::from_secs(1));
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = alive.tick() => {
                if shared.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        let Some(message) = message else {
            return;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match parse(
            message.get_channel_name().as_bytes(),
            message.get_payload_bytes(),
        ) {
            Some(notice) => {
                let _ = shared.events.send(Event::Commit(Arc::new(notice)));
            }
            None => debug!(
                channel = message.get_channel_name(),
                "ignored a malformed commit notice"
            ),
        }
    }
}

/// Reads a notice: the channel names the namespace, and the payload is
/// "VERSION\nKEY\nUPDATER" (keys hold no control characters).
fn parse(channel: &[u8], payload: &[u8]) -> Option<Notice> {
    let namespace = keys::namespace_of_channel(channel)?;
    let text = std::str::from_utf8(payload).ok()?;
    let mut fields = text.splitn(3, '\n');
    let version = fields.next()?.parse().ok()?;
    let key = fields.next()?.to_string();
    let updater = fields.next()?.to_string();
    Some(Notice {
        namespace,
        key,
        version,
        updater,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_read_from_its_channel_and_payload() {
        let channel = keys::commits_channel("ns:1");
        let notice = parse(channel.as_bytes(), b"7\nk/2\nnode\na").unwrap();
        assert_eq!(notice.namespace, "ns:1");
        assert_eq!(notice.key, "k/2");
        assert_eq!(notice.version, 7);
        assert_eq!(notice.updater, "node\na");
    }

    #[test]
    fn a_malformed_notice_is_ignored() {
        let channel = keys::commits_channel("ns");
        assert_eq!(parse(channel.as_bytes(), b"seven\nk\nu"), None);
        assert_eq!(parse(channel.as_bytes(), b"7\nk"), None);
        assert_eq!(parse(b"elsewhere", b"7\nk\nu"), None);
    }
}
