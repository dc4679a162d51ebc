//! Waiting for a newer version of a model, and watching the commits of a
//! namespace, instead of polling from the client.
//!
//! Both hear commits from the [`Feed`](super::feed::Feed) and, in case a
//! notice was lost, also read Redis every `check_interval` and after every
//! resubscription. A lost notice thus costs at most one interval.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::debug;

use super::feed::{Event, Listener, Notice};
use super::{ModelInfo, Snapshot, Store};
use crate::config::Layout;
use crate::error::{Error, Result};

/// The longest a call may ask to wait: a day.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A wait for a version newer than `than`, for at most `wait`.
#[derive(Debug, Clone, Copy)]
pub struct Newer {
    pub than: u64,
    pub wait: Duration,
}

impl Store {
    /// Opens the model's current version once it is newer than asked,
    /// waiting for it to be committed if need be.
    pub async fn open_newer(&self, namespace: &str, key: &str, newer: Newer) -> Result<Snapshot> {
        let read = || self.read_manifest(namespace, key);
        self.wait_newer(namespace, key, newer, read, |s| s.info.version)
            .await
    }

    /// The model's current header once it is newer than asked, waiting for
    /// it to be committed if need be.
    pub async fn head_newer(&self, namespace: &str, key: &str, newer: Newer) -> Result<ModelInfo> {
        let read = || async {
            let snapshot = self.read_manifest(namespace, key).await?;
            Ok(snapshot.map(|s| s.info))
        };
        self.wait_newer(namespace, key, newer, read, |info| info.version)
            .await
    }

    /// Reads until what is read is newer than asked, rereading on each
    /// notice for the key, on each check and after each resync. Redis
    /// being away for a while is not the waiter's failure: it reads again
    /// at the next check, until the deadline.
    async fn wait_newer<T, F, Fut>(
        &self,
        namespace: &str,
        key: &str,
        newer: Newer,
        read: F,
        version: impl Fn(&T) -> u64,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        self.require_versions(namespace).await?;
        let deadline = Instant::now() + newer.wait;
        // Listen before the first read, so that no commit falls between.
        let mut listener = (!newer.wait.is_zero()).then(|| self.feed.listen());
        let mut checks = self.checks();
        let mut last_error: Option<Error>;

        loop {
            match read().await {
                Ok(Some(found)) if version(&found) > newer.than => return Ok(found),
                Ok(_) => last_error = None,
                Err(e @ (Error::Unavailable { .. } | Error::Timeout { .. })) => {
                    debug!(error = %e, "read failed while waiting; reading again at the next check");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }

            let Some(listener) = listener.as_mut() else {
                return Err(self.not_newer(namespace, key, newer, last_error));
            };
            let woken = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => false,
                _ = wake_for(listener, &mut checks, namespace, key, newer.than) => true,
            };
            if !woken {
                return Err(self.not_newer(namespace, key, newer, last_error));
            }
        }
    }

    fn not_newer(&self, namespace: &str, key: &str, newer: Newer, cause: Option<Error>) -> Error {
        if let Some(cause) = cause {
            return cause;
        }
        Error::NoNewerVersion(format!(
            "no version of {} newer than {} was committed within {:.3}s",
            Store::describe(namespace, key),
            newer.than,
            newer.wait.as_secs_f64()
        ))
    }

    /// Refuses the legacy layout, which keeps no versions to wait for.
    async fn require_versions(&self, namespace: &str) -> Result<()> {
        if self.agreed(namespace).await?.layout == Layout::Legacy {
            return Err(Error::Unsupported(format!(
                "namespace {namespace:?} has the legacy layout, which keeps no versions: \
                 waiting and watching need the chunked layout"
            )));
        }
        Ok(())
    }

    /// Ticks every check interval, starting one interval from now.
    fn checks(&self) -> Interval {
        let every = self.settings.check_interval;
        let mut checks = tokio::time::interval_at(Instant::now() + every, every);
        checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        checks
    }
}

/// Resolves when there is a reason to read the key again: a notice of a
/// version of it newer than `than`, a resync, or the next check.
async fn wake_for(
    listener: &mut Listener,
    checks: &mut Interval,
    namespace: &str,
    key: &str,
    than: u64,
) {
    loop {
        tokio::select! {
            _ = checks.tick() => return,
            event = listener.next() => match event {
                Event::Resync => return,
                Event::Commit(notice)
                    if notice.namespace == namespace && notice.key == key && notice.version > than =>
                {
                    return
                }
                Event::Commit(_) => {}
            },
        }
    }
}

impl Store {
    /// Every commit in a namespace from now on (only of `keys`, unless
    /// empty), and first the current version of each model when `current`
    /// is set. A model's commits may be merged: when several land between
    /// two reads of a lost notice, only the newest is reported.
    pub async fn watch(
        &self,
        namespace: &str,
        keys: Vec<String>,
        current: bool,
    ) -> Result<impl Stream<Item = Result<Notice>> + Send + 'static> {
        self.require_versions(namespace).await?;
        let mut watch = Watch {
            store: self.clone(),
            namespace: namespace.to_string(),
            keys: keys.into_iter().collect(),
            listener: self.feed.listen(),
            checks: self.checks(),
            known: HashMap::new(),
            pending: VecDeque::new(),
        };
        watch.resync().await?;
        if !current {
            watch.pending.clear();
        }
        Ok(futures::stream::try_unfold(watch, |mut watch| async move {
            let notice = watch.next().await?;
            Ok(Some((notice, watch)))
        }))
    }
}

/// One watching call's state: the version last reported for each model.
struct Watch {
    store: Store,
    namespace: String,
    keys: HashSet<String>,
    listener: Listener,
    checks: Interval,
    known: HashMap<String, u64>,
    pending: VecDeque<Notice>,
}

impl Watch {
    /// The next commit to report.
    async fn next(&mut self) -> Result<Notice> {
        loop {
            if let Some(notice) = self.pending.pop_front() {
                return Ok(notice);
            }
            tokio::select! {
                _ = self.checks.tick() => self.resync_quietly().await,
                event = self.listener.next() => match event {
                    Event::Resync => self.resync_quietly().await,
                    Event::Commit(notice) => self.heard(&notice),
                },
            }
        }
    }

    /// Queues a notice of a watched model whose version changed.
    fn heard(&mut self, notice: &Notice) {
        let watched = self.keys.is_empty() || self.keys.contains(&notice.key);
        if notice.namespace != self.namespace || !watched {
            return;
        }
        if self.known.get(&notice.key) != Some(&notice.version) {
            self.known.insert(notice.key.clone(), notice.version);
            self.pending.push_back(notice.clone());
        }
    }

    /// A check that fails (Redis away) is tried again at the next one.
    async fn resync_quietly(&mut self) {
        if let Err(e) = self.resync().await {
            debug!(error = %e, namespace = %self.namespace, "watch check failed; trying again at the next one");
        }
    }

    /// Reads every watched model's version, and queues those that changed.
    /// A model that is gone is forgotten, so that its next version is
    /// reported even though versions start again at 1.
    async fn resync(&mut self) -> Result<()> {
        let current = self.current_versions().await?;
        self.known.retain(|key, _| current.contains_key(key));
        let mut changed: Vec<&ModelInfo> = current
            .values()
            .filter(|info| self.known.get(&info.key) != Some(&info.version))
            .collect();
        changed.sort_by(|a, b| a.key.cmp(&b.key));
        for info in changed {
            self.known.insert(info.key.clone(), info.version);
            self.pending.push_back(Notice {
                namespace: info.namespace.clone(),
                key: info.key.clone(),
                version: info.version,
                updater: info.updater.clone(),
            });
        }
        Ok(())
    }

    async fn current_versions(&self) -> Result<HashMap<String, ModelInfo>> {
        let infos: Vec<ModelInfo> = if self.keys.is_empty() {
            let batches: Vec<Vec<ModelInfo>> = self
                .store
                .list(&self.namespace)
                .await?
                .try_collect()
                .await?;
            batches.into_iter().flatten().collect()
        } else {
            let (store, namespace) = (self.store.clone(), self.namespace.clone());
            let keys: Vec<String> = self.keys.iter().cloned().collect();
            let heads = keys.into_iter().map(move |key| {
                let (store, namespace) = (store.clone(), namespace.clone());
                async move { store.head(&namespace, &key).await }
            });
            let found: Vec<Option<ModelInfo>> = futures::stream::iter(heads)
                .buffer_unordered(16)
                .try_collect()
                .await?;
            found.into_iter().flatten().collect()
        };
        Ok(infos.into_iter().map(|i| (i.key.clone(), i)).collect())
    }
}
