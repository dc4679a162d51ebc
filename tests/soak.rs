//! A bounded soak: 8 clients push and pull models of varied sizes over the
//! daemon's Unix socket while Redis is restarted every 10 s, for 120 s by
//! default (`MODELSYNC_SOAK_SECONDS` sets another length, at least 15).
//!
//! Redis runs without persistence, as the other fixtures do: a restart
//! empties it, so models committed before it vanish and pulls of them are
//! `NOT_FOUND`. That is expected. What must never happen is a pull that
//! returns bytes other than exactly those of one push: each push records
//! the seed, length and XXH3 hash of its payload in its metadata, and every
//! pulled byte is checked against them. Calls that fail with `UNAVAILABLE`
//! or `DEADLINE_EXCEEDED` are retried with a small backoff and counted.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use modelsync::proto::v1 as api;
use support::{header, pull, push, sample, Client, Daemon, RedisServer};
use tonic::{Code, Status};

const CLIENTS: u64 = 8;
const KEYS_PER_CLIENT: u64 = 3;
const RESTART_EVERY: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 20;

/// What every client saw, summed.
#[derive(Default)]
struct Tally {
    pushes: AtomicU64,
    pulls_verified: AtomicU64,
    pulls_not_found: AtomicU64,
    retries: AtomicU64,
    corrupted: AtomicU64,
    /// The restart count when a push, and a verified pull, last succeeded.
    last_push_epoch: AtomicU64,
    last_pull_epoch: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    first_corruption: Mutex<Option<String>>,
}

impl Tally {
    fn failed(&self, code: &str) {
        *self
            .failures
            .lock()
            .unwrap()
            .entry(code.into())
            .or_default() += 1;
    }

    fn corrupted(&self, what: String) {
        self.corrupted.fetch_add(1, Ordering::Relaxed);
        self.first_corruption.lock().unwrap().get_or_insert(what);
    }
}

fn soak_duration() -> Duration {
    let seconds = std::env::var("MODELSYNC_SOAK_SECONDS")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .expect("MODELSYNC_SOAK_SECONDS is a number")
        })
        .unwrap_or(120);
    assert!(seconds >= 15, "a soak needs at least 15 s to see a restart");
    Duration::from_secs(seconds)
}

/// A payload size: small ones stored inline in their manifest, and
/// multi-chunk ones of a few MiB, in turn.
fn size_for(seed: u64) -> usize {
    if seed % 2 == 0 {
        1 + (seed as usize * 7919) % (64 << 10)
    } else {
        (1 << 20) + (seed as usize * 104_729) % (2 << 20)
    }
}

fn metadata_of(seed: u64, data: &Bytes) -> std::collections::HashMap<String, Bytes> {
    let hash = xxhash_rust::xxh3::xxh3_64(data);
    [
        ("seed", seed.to_string()),
        ("len", data.len().to_string()),
        ("xxh3", format!("{hash:016x}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Bytes::from(v)))
    .collect()
}

/// Checks pulled bytes against what their own metadata says was pushed.
fn verify(key: &str, header: &api::ModelHeader, data: &[u8]) -> Result<(), String> {
    let field = |name: &str| {
        header
            .metadata
            .get(name)
            .and_then(|v| std::str::from_utf8(v).ok().map(str::to_string))
            .ok_or_else(|| format!("{key} v{}: metadata {name} missing", header.version))
    };
    let seed: u64 = field("seed")?.parse().map_err(|e| format!("{e}"))?;
    let len: usize = field("len")?.parse().map_err(|e| format!("{e}"))?;
    let hash = field("xxh3")?;
    if data.len() != len || header.raw_size != len as u64 {
        return Err(format!(
            "{key} v{}: {} bytes, header says {}, push said {len}",
            header.version,
            data.len(),
            header.raw_size
        ));
    }
    let actual = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data));
    if actual != hash || data != sample(len, seed).as_ref() {
        return Err(format!(
            "{key} v{}: bytes differ from seed {seed}",
            header.version
        ));
    }
    Ok(())
}

/// Whether a failed call is worth retrying after a pause.
fn transient(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded)
}

/// Runs `call` until it succeeds, fails for good, or runs out of attempts;
/// counts every retry and every final failure by code.
async fn with_retries<T, F, Fut>(tally: &Tally, mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = match tokio::time::timeout(Duration::from_secs(60), call()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Status::new(
                Code::DeadlineExceeded,
                "client gave up after 60 s",
            )),
        };
        match outcome {
            Err(status) if transient(&status) && attempt < ATTEMPTS => {
                tally.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(status) => {
                if status.code() != Code::NotFound {
                    tally.failed(&format!("{:?}", status.code()));
                }
                return Err(status);
            }
            Ok(value) => return Ok(value),
        }
    }
}

/// One client: push a model to one of its keys, then pull a key of its
/// own or of a neighbour, and check every byte.
async fn client_loop(
    client: Client,
    id: u64,
    tally: Arc<Tally>,
    epoch: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let seed = id * 1_000_000 + round;
        let key = format!("c{id}-k{}", round % KEYS_PER_CLIENT);
        let data = sample(size_for(seed), seed);
        let mut head = header("soak", &key);
        head.metadata = metadata_of(seed, &data);
        head.raw_size = Some(data.len() as u64);
        let pushed = with_retries(&tally, || {
            let (mut client, head, data) = (client.clone(), head.clone(), data.clone());
            async move { push(&mut client, head, data).await }
        })
        .await;
        if pushed.is_ok() {
            let seen = epoch.load(Ordering::SeqCst);
            tally.pushes.fetch_add(1, Ordering::Relaxed);
            tally.last_push_epoch.fetch_max(seen, Ordering::SeqCst);
        }

        let owner = (id + round) % CLIENTS;
        let key = format!("c{owner}-k{}", round % KEYS_PER_CLIENT);
        let seen = epoch.load(Ordering::SeqCst);
        let pulled = with_retries(&tally, || {
            let (mut client, key) = (client.clone(), key.clone());
            async move { pull(&mut client, "soak", &key).await }
        })
        .await;
        match pulled {
            Ok((head, data)) => match verify(&key, &head, &data) {
                Ok(()) => {
                    tally.pulls_verified.fetch_add(1, Ordering::Relaxed);
                    tally.last_pull_epoch.fetch_max(seen, Ordering::SeqCst);
                }
                Err(what) => tally.corrupted(what),
            },
            Err(status) if status.code() == Code::NotFound => {
                tally.pulls_not_found.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_across_redis_restarts_every_ten_seconds_never_read_wrong_bytes() {
    let duration = soak_duration();
    let mut redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = 1 << 20;
    let daemon = Daemon::start_with(config).await;

    let tally = Arc::new(Tally::default());
    let epoch = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let client = daemon.client().await;
        let (tally, epoch, stop) = (tally.clone(), epoch.clone(), stop.clone());
        clients.push(tokio::spawn(client_loop(client, id, tally, epoch, stop)));
    }

    // Restarts stop 5 s before the end, so that calls after the last one
    // have time to succeed.
    let started = Instant::now();
    let restarter_epoch = epoch.clone();
    let restarter = tokio::task::spawn_blocking(move || {
        let mut restarts = 0u64;
        while started.elapsed() + RESTART_EVERY + Duration::from_secs(5) <= duration {
            std::thread::sleep(RESTART_EVERY);
            redis.restart();
            restarts += 1;
            restarter_epoch.store(restarts, Ordering::SeqCst);
        }
        (redis, restarts)
    });
    let (_redis, restarts) = restarter.await.unwrap();
    tokio::time::sleep(duration.saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let failures = tally.failures.lock().unwrap().clone();
    let operations = tally.pushes.load(Ordering::Relaxed)
        + tally.pulls_verified.load(Ordering::Relaxed)
        + tally.pulls_not_found.load(Ordering::Relaxed);
    println!(
        "soak: {}s, {restarts} restarts, {operations} operations ({} pushes, {} verified pulls, {} pulls not found), {} retries, failures {failures:?}, corrupted or partial reads {}",
        duration.as_secs(),
        tally.pushes.load(Ordering::Relaxed),
        tally.pulls_verified.load(Ordering::Relaxed),
        tally.pulls_not_found.load(Ordering::Relaxed),
        tally.retries.load(Ordering::Relaxed),
        tally.corrupted.load(Ordering::Relaxed),
    );

    assert_eq!(
        tally.corrupted.load(Ordering::Relaxed),
        0,
        "first: {:?}",
        tally.first_corruption.lock().unwrap()
    );
    assert!(restarts >= 1);
    assert_eq!(failures.get("DataLoss"), None, "{failures:?}");
    assert_eq!(failures.get("Internal"), None, "{failures:?}");
    assert_eq!(
        tally.last_push_epoch.load(Ordering::SeqCst),
        restarts,
        "no push succeeded after the last restart"
    );
    assert_eq!(
        tally.last_pull_epoch.load(Ordering::SeqCst),
        restarts,
        "no pull succeeded after the last restart"
    );
    daemon.stop().await;
}
