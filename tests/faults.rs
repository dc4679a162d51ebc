//! Faults around the daemon: Redis restarted, stalled or out of memory;
//! clients that give up mid-push; a model expiring under many readers; the
//! daemon binary killed or stopped with connections in every state; bad
//! identity and configuration files. Through all of it a reader sees one
//! whole version or a clear error, and nothing waits without bound.

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use modelsync::proto::storage::Manifest;
use modelsync::proto::v1 as api;
use modelsync::store::keys;
use prost::Message;
use support::{header, pull, push, sample, Client, Daemon, RedisServer};
use tokio::sync::mpsc;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

const BINARY: &str = env!("CARGO_BIN_EXE_modelsync");

/// Small chunks, so that small models have several.
const CHUNK: u64 = 16 << 10;

/// Longer than any call here may take; a call still running then hangs.
const NO_HANG: Duration = Duration::from_secs(30);

async fn daemon(redis: &RedisServer) -> Daemon {
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = CHUNK;
    config.storage.window = 4;
    Daemon::start_with(config).await
}

fn data_message(bytes: Bytes) -> api::PushRequest {
    api::PushRequest {
        message: Some(api::push_request::Message::Data(bytes)),
    }
}

fn header_message(header: api::PushHeader) -> api::PushRequest {
    api::PushRequest {
        message: Some(api::push_request::Message::Header(header)),
    }
}

/// A push whose messages the test sends one by one while the call runs.
struct OpenPush {
    messages: mpsc::Sender<api::PushRequest>,
    call: tokio::task::JoinHandle<Result<api::PushResponse, Status>>,
}

fn open_push(mut client: Client, header: api::PushHeader) -> OpenPush {
    let (messages, receiver) = mpsc::channel(4);
    messages.try_send(header_message(header)).unwrap();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|message| (message, receiver))
    });
    let call = tokio::spawn(async move { client.push(stream).await.map(|r| r.into_inner()) });
    OpenPush { messages, call }
}

fn model_manifest(conn: &mut redis::Connection, namespace: &str, key: &str) -> Option<Manifest> {
    let stored: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(keys::manifest(namespace, key))
        .arg("manifest")
        .query(conn)
        .unwrap();
    stored.map(|bytes| Manifest::decode(&bytes[..]).expect("the stored manifest decodes"))
}

/// Chunk keys of `namespace`/`key` that do not belong to the committed
/// version: what pushes that did not commit left behind.
fn stray_chunks(conn: &mut redis::Connection, namespace: &str, key: &str) -> Vec<String> {
    let committed = model_manifest(conn, namespace, key).map(|m| m.blob);
    let pattern = keys::chunk(namespace, key, "*", 0);
    let pattern = pattern.strip_suffix(":*:0").unwrap().to_string() + ":*";
    let all: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(conn).unwrap();
    all.into_iter()
        .filter(|name| match &committed {
            Some(blob) => !name.contains(&format!(":chunk:{blob}:")),
            None => true,
        })
        .collect()
}

/// Waits (bounded) until uncommitted chunks of the key have been removed;
/// asserts that any still there will expire by themselves, and answers
/// how many that is.
async fn assert_strays_removed_or_expiring(
    conn: &mut redis::Connection,
    namespace: &str,
    key: &str,
    case: &str,
) -> usize {
    let mut strays = stray_chunks(conn, namespace, key);
    for _ in 0..20 {
        if strays.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        strays = stray_chunks(conn, namespace, key);
    }
    for name in &strays {
        let ttl: i64 = redis::cmd("PTTL").arg(name).query(conn).unwrap();
        assert!(
            ttl > 0,
            "{case}: {name} is left without an expiry (PTTL {ttl})"
        );
    }
    if !strays.is_empty() {
        println!("{case}: {} chunks left behind, each expiring", strays.len());
    }
    strays.len()
}

// ---------------------------------------------------------------------
// Redis restarted under load.

#[derive(Debug)]
struct Outcome {
    started: Instant,
    ended: Instant,
    result: Result<(), Code>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_across_a_redis_restart_fail_cleanly_then_recover_and_never_mix_objects() {
    let mut redis = RedisServer::start();
    let daemon = daemon(&redis).await;
    let objects: Arc<Vec<Bytes>> = Arc::new(
        (0..100)
            .map(|i| sample(3 * CHUNK as usize + 97 * i, i as u64))
            .collect(),
    );
    let mut seed = daemon.client().await;
    push(&mut seed, header("ns", "k"), objects[0].clone())
        .await
        .unwrap();

    let run_for = Duration::from_millis(4500);
    let begun = Instant::now();
    let pusher = {
        let objects = objects.clone();
        let mut client = daemon.client().await;
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for object in objects.iter().skip(1) {
                if begun.elapsed() > run_for {
                    break;
                }
                let started = Instant::now();
                let result = tokio::time::timeout(
                    NO_HANG,
                    push(&mut client, header("ns", "k"), object.clone()),
                )
                .await
                .expect("a push hung");
                outcomes.push(Outcome {
                    started,
                    ended: Instant::now(),
                    result: result.map(drop).map_err(|s| s.code()),
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            outcomes
        })
    };
    let puller = {
        let known: HashSet<Vec<u8>> = objects.iter().map(|o| o.to_vec()).collect();
        let mut client = daemon.client().await;
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while begun.elapsed() < run_for {
                let started = Instant::now();
                let result = tokio::time::timeout(NO_HANG, pull(&mut client, "ns", "k"))
                    .await
                    .expect("a pull hung");
                if let Ok((info, data)) = &result {
                    assert_eq!(info.raw_size as usize, data.len());
                    assert!(
                        known.contains(data),
                        "a pull returned bytes that are no pushed object"
                    );
                }
                outcomes.push(Outcome {
                    started,
                    ended: Instant::now(),
                    result: result.map(drop).map_err(|s| s.code()),
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            outcomes
        })
    };

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let restart_began = Instant::now();
    tokio::task::block_in_place(|| redis.restart());
    let restarted = Instant::now();

    let pushes = pusher.await.unwrap();
    let pulls = puller.await.unwrap();
    for (calls, allowed) in [
        (&pushes, &[Code::Unavailable, Code::DeadlineExceeded][..]),
        (
            &pulls,
            &[Code::Unavailable, Code::DeadlineExceeded, Code::NotFound][..],
        ),
    ] {
        for call in calls.iter() {
            if let Err(code) = call.result {
                assert!(allowed.contains(&code), "{code:?} in {calls:?}");
                assert!(
                    call.ended >= restart_began,
                    "a call failed before the restart: {calls:?}"
                );
            }
        }
        // Once a call that began after the restart has succeeded, every
        // later one succeeds too.
        let recovered = calls
            .iter()
            .position(|c| c.started >= restarted && c.result.is_ok())
            .unwrap_or_else(|| panic!("no call succeeded after the restart: {calls:?}"));
        assert!(
            calls[recovered..].iter().all(|c| c.result.is_ok()),
            "a call failed after recovery: {calls:?}"
        );
    }
    let failed = |calls: &[Outcome]| {
        calls
            .iter()
            .filter_map(|c| c.result.err())
            .collect::<Vec<_>>()
    };
    println!(
        "{} pushes (failed: {:?}), {} pulls (failed: {:?})",
        pushes.len(),
        failed(&pushes),
        pulls.len(),
        failed(&pulls)
    );
    let before = pushes.iter().filter(|c| c.started < restart_began).count();
    assert!(before > 0, "pushes ran before the restart");
}

// ---------------------------------------------------------------------
// Redis stalled.

/// Sends SIGCONT when dropped, so a failing test never leaves a stopped
/// redis-server behind.
struct Resume<'a>(&'a RedisServer);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

async fn health(health: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    let request = HealthCheckRequest {
        service: "modelsync.v1.ModelSync".into(),
    };
    health.check(request).await.unwrap().into_inner().status()
}

async fn wait_for_health(
    client: &mut HealthClient<tonic::transport::Channel>,
    wanted: ServingStatus,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if health(client).await == wanted {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health did not become {wanted:?} within {within:?}");
}

/// Awaits a call that must end before `NO_HANG`; answers its result and
/// the time since `started`.
async fn timed<T>(started: Instant, call: impl std::future::Future<Output = T>) -> (T, Duration) {
    let result = tokio::time::timeout(NO_HANG, call)
        .await
        .expect("the call hung");
    (result, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_fails_calls_within_the_timeout_and_health_follows() {
    let redis = RedisServer::start();
    let config = support::config(&redis.url());
    // One Redis operation waits at most two connects and one answer; the
    // rest is slack for a busy machine.
    let bound =
        config.redis.connect_timeout * 2 + config.redis.response_timeout + Duration::from_secs(9);
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;
    let mut probe = HealthClient::new(modelsync::cli::channel(&daemon.socket).await.unwrap());
    let model = sample(3 << 20, 1);
    push(&mut client, header("ns", "k"), model.clone())
        .await
        .unwrap();
    wait_for_health(&mut probe, ServingStatus::Serving, Duration::from_secs(10)).await;

    redis.signal(libc::SIGSTOP);
    let resume = Resume(&redis);
    let started = Instant::now();
    let mut puller = daemon.client().await;
    let ((pushed, push_took), (pulled, pull_took), health_took) = tokio::join!(
        timed(started, async {
            push(&mut client, header("ns", "k"), sample(3 << 20, 2))
                .await
                .map(drop)
        }),
        timed(started, async {
            pull(&mut puller, "ns", "k").await.map(drop)
        }),
        wait_for_health(&mut probe, ServingStatus::NotServing, bound),
    );
    for (call, result, took) in [("push", pushed, push_took), ("pull", pulled, pull_took)] {
        let status = result.expect_err(call);
        assert!(
            matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{call}: {status:?}"
        );
        assert!(took < bound, "{call} failed only after {took:?}");
    }
    println!("push failed after {push_took:?}, pull after {pull_took:?}, health NOT_SERVING after {health_took:?}");

    drop(resume);
    let pushed = tokio::time::timeout(
        NO_HANG,
        push(&mut client, header("ns", "k"), sample(3 << 20, 3)),
    )
    .await
    .unwrap();
    assert!(pushed.is_ok(), "the first push after SIGCONT: {pushed:?}");
    let (_, data) = tokio::time::timeout(NO_HANG, pull(&mut client, "ns", "k"))
        .await
        .unwrap()
        .expect("the first pull after SIGCONT");
    assert!(data == sample(3 << 20, 3));
    wait_for_health(&mut probe, ServingStatus::Serving, Duration::from_secs(10)).await;
}

// ---------------------------------------------------------------------
// Redis out of memory.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_memory_redis_refuses_the_push_and_keeps_the_previous_version() {
    let redis =
        RedisServer::start_with(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = 1 << 20;
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;
    let small = sample(300_000, 1);
    push(&mut client, header("ns", "k"), small.clone())
        .await
        .unwrap();

    let status = tokio::time::timeout(
        NO_HANG,
        push(&mut client, header("ns", "k"), sample(32 << 20, 2)),
    )
    .await
    .expect("the push hung")
    .expect_err("32 MiB do not fit in 4 MB");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("out of memory"),
        "{}",
        status.message()
    );

    let (info, data) = pull(&mut client, "ns", "k").await.unwrap();
    assert_eq!(info.version, 1);
    assert!(data == small, "the previous version is pulled whole");
    let mut conn = redis.connection();
    assert_strays_removed_or_expiring(&mut conn, "ns", "k", "out of memory").await;
}

// ---------------------------------------------------------------------
// Pushes abandoned part-way.

/// Waits (bounded) until the open push has stored at least one chunk.
async fn wait_for_stray_chunk(conn: &mut redis::Connection, namespace: &str, key: &str) {
    for _ in 0..100 {
        if !stray_chunks(conn, namespace, key).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the push in progress stored no chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_abandoned_part_way_makes_nothing_visible_and_leaves_no_lasting_chunks() {
    // Short, so that whatever is left behind goes soon.
    const TTL_SECONDS: u64 = 5;
    const GRACE_SECONDS: u64 = 1;
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = CHUNK;
    config.storage.grace = Duration::from_secs(GRACE_SECONDS);
    let daemon = Daemon::start_with(config).await;
    let mut conn = redis.connection();
    let mut reader = daemon.client().await;
    let previous = sample(5 * CHUNK as usize, 1);

    #[derive(Clone, Copy, Debug)]
    enum GiveUp {
        /// The call is dropped; its connection stays open for others.
        CallDropped,
        /// The call and its connection are dropped.
        ConnectionClosed,
        /// The client sends the abort message the API defines.
        AbortMessage,
        /// The stream ends early, short of the size its header declared.
        EndsShortOfDeclared,
    }
    for way in [
        GiveUp::CallDropped,
        GiveUp::ConnectionClosed,
        GiveUp::AbortMessage,
        GiveUp::EndsShortOfDeclared,
    ] {
        // A key with a committed version and one without, each of its own
        // so that no case sees what another left behind.
        for had in [true, false] {
            let key = &format!("{way:?}-{}", if had { "had" } else { "new" });
            if had {
                push(&mut reader, header("ns", key), previous.clone())
                    .await
                    .unwrap();
            }
            let case = format!("{way:?}, key {key}");
            let mut head = header("ns", key);
            head.ttl_seconds = Some(TTL_SECONDS);
            head.raw_size = Some(40 * CHUNK);
            let client = daemon.client().await;
            let kept = client.clone();
            let open = open_push(client, head);
            for i in 0..4 {
                open.messages
                    .send(data_message(sample(CHUNK as usize, 10 + i)))
                    .await
                    .unwrap();
            }
            wait_for_stray_chunk(&mut conn, "ns", key).await;

            // Nothing of the push in progress is visible yet.
            let seen = pull(&mut reader, "ns", key).await;
            match had {
                true => assert!(seen.unwrap().1 == previous, "{case}: before giving up"),
                false => assert_eq!(
                    seen.unwrap_err().code(),
                    Code::NotFound,
                    "{case}: before giving up"
                ),
            }

            let OpenPush { messages, call } = open;
            match way {
                GiveUp::CallDropped => {
                    call.abort();
                    let _ = call.await;
                    drop(messages);
                    drop(kept);
                }
                GiveUp::ConnectionClosed => {
                    drop(kept);
                    call.abort();
                    let _ = call.await;
                    drop(messages);
                }
                GiveUp::AbortMessage => {
                    messages
                        .send(api::PushRequest { message: None })
                        .await
                        .unwrap();
                    let status = call.await.unwrap().expect_err(&case);
                    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
                    drop(messages);
                }
                GiveUp::EndsShortOfDeclared => {
                    drop(messages);
                    let status = call.await.unwrap().expect_err(&case);
                    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
                }
            }

            // The daemon is alive and Redis answers: it removes what the
            // abandoned push wrote, whichever way the push ended.
            let left = assert_strays_removed_or_expiring(&mut conn, "ns", key, &case).await;
            assert_eq!(
                left, 0,
                "{case}: the daemon left chunks of an abandoned push behind"
            );
            for name in stray_chunks(&mut conn, "ns", key) {
                let ttl: i64 = redis::cmd("PTTL").arg(&name).query(&mut conn).unwrap();
                assert!(
                    ttl <= (TTL_SECONDS + GRACE_SECONDS) as i64 * 1000,
                    "{case}: {name} outlives the push's TTL and grace (PTTL {ttl})"
                );
            }
            let seen = pull(&mut reader, "ns", key).await;
            match had {
                true => {
                    let (info, data) = seen.unwrap();
                    assert_eq!(info.version, 1, "{case}");
                    assert!(
                        data == previous,
                        "{case}: the previous version is pulled whole"
                    );
                }
                false => assert_eq!(seen.unwrap_err().code(), Code::NotFound, "{case}"),
            }
        }
    }
}

// ---------------------------------------------------------------------
// Expiry under many readers.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_expiring_under_a_thousand_pulls_gives_whole_bytes_or_not_found() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = CHUNK;
    // No grace: the chunks expire in the same millisecond as the manifest,
    // so a pull that read the manifest just before meets missing chunks.
    config.storage.grace = Duration::ZERO;
    let daemon = Daemon::start_with(config).await;
    let model = sample(8 * CHUNK as usize, 5);
    let mut client = daemon.client().await;
    let mut head = header("ns", "short");
    head.ttl_seconds = Some(1);
    push(&mut client, head, model.clone()).await.unwrap();
    let committed = Instant::now();

    let pullers: Vec<_> = (0..8)
        .map(|_| {
            let socket = daemon.socket.clone();
            let model = model.clone();
            tokio::spawn(async move {
                let mut client = modelsync::cli::connect(&socket).await.unwrap();
                // Start shortly before the expiry, end some time after it.
                tokio::time::sleep_until((committed + Duration::from_millis(600)).into()).await;
                let (mut whole, mut not_found) = (0u32, 0u32);
                while whole + not_found < 400 && committed.elapsed() < Duration::from_secs(6) {
                    match pull(&mut client, "ns", "short").await {
                        Ok((_, data)) => {
                            assert!(data == model, "a pull returned other bytes than the model");
                            whole += 1;
                        }
                        Err(status) => {
                            assert_eq!(status.code(), Code::NotFound, "{status:?}");
                            not_found += 1;
                        }
                    }
                    if not_found >= 20 && whole + not_found >= 120 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (whole, not_found)
            })
        })
        .collect();
    let (mut whole, mut not_found) = (0, 0);
    for puller in pullers {
        let (w, n) = puller.await.unwrap();
        whole += w;
        not_found += n;
    }
    println!("{whole} whole pulls and {not_found} NOT_FOUND around the expiry");
    assert!(whole + not_found >= 900, "only {} pulls", whole + not_found);
    assert!(whole > 0, "no pull came before the expiry");
    assert!(not_found > 0, "the model never expired");
}

// ---------------------------------------------------------------------
// The daemon binary.

/// The daemon binary with its own identity and socket; killed if the test
/// ends while it runs.
struct Binary {
    child: Child,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl Binary {
    fn spawn(dir: &Path, socket: &Path, redis_url: &str, extra: &[&str]) -> Self {
        let identity = dir.join("identity.yaml");
        std::fs::write(&identity, "address: node-faults\n").unwrap();
        let mut child = Command::new(BINARY)
            .env_clear()
            .env("RUST_LOG", "info")
            .arg("--socket")
            .arg(socket)
            .arg("serve")
            .arg("--identity")
            .arg(&identity)
            .args(["--redis", redis_url])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A full pipe would block the daemon mid-call.
        let mut stderr = child.stderr.take().unwrap();
        let logs = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Binary {
            child,
            logs: Some(logs),
        }
    }

    fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the process to end, at most `limit`; answers how it ended
    /// and when.
    async fn wait(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some((status, started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    fn logs(&mut self) -> String {
        self.logs
            .take()
            .map(|l| l.join().unwrap())
            .unwrap_or_default()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// Killed mid-push.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_push_starts_again_on_its_socket_and_shows_no_torn_version() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/modelsync.sock");
    let args = ["--chunk-size", "1048576"];
    let mut daemon = Binary::spawn(dir.path(), &socket, &redis.url(), &args);
    let mut client = support::connect_when_ready(&socket).await;
    let mut conn = redis.connection();
    let first = sample(3 << 20, 1);
    push(&mut client, header("ns", "k"), first.clone())
        .await
        .unwrap();

    let open = open_push(client.clone(), header("ns", "k"));
    let feeder = tokio::spawn(async move {
        for i in 0..64u64 {
            if open
                .messages
                .send(data_message(sample(1 << 20, 100 + i)))
                .await
                .is_err()
            {
                break;
            }
        }
        drop(open.messages);
        open.call.await.unwrap()
    });
    for _ in 0..200 {
        if stray_chunks(&mut conn, "ns", "k").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        stray_chunks(&mut conn, "ns", "k").len() >= 2,
        "the big push is under way"
    );
    daemon.signal(libc::SIGKILL);
    daemon
        .wait(Duration::from_secs(10))
        .await
        .expect("SIGKILL ends it");
    let pushed = tokio::time::timeout(NO_HANG, feeder)
        .await
        .expect("the push hung")
        .unwrap();
    assert!(
        pushed.is_err(),
        "a push cut off by SIGKILL cannot have succeeded: {pushed:?}"
    );
    assert!(socket.exists(), "SIGKILL leaves the socket file behind");

    let _again = Binary::spawn(dir.path(), &socket, &redis.url(), &args);
    let mut client = support::connect_when_ready(&socket).await;
    let (info, data) = pull(&mut client, "ns", "k").await.unwrap();
    assert_eq!(info.version, 1, "only the first version committed");
    assert!(data == first, "the first version is pulled whole");
    // Nobody is left to remove the killed push's chunks: they expire.
    let strays = stray_chunks(&mut conn, "ns", "k");
    assert!(!strays.is_empty());
    for name in &strays {
        let ttl: i64 = redis::cmd("PTTL").arg(name).query(&mut conn).unwrap();
        assert!(ttl > 0, "{name} is left without an expiry");
    }

    let second = sample(5 << 20, 2);
    let committed = push(&mut client, header("ns", "k"), second.clone())
        .await
        .unwrap();
    assert_eq!(committed.version, 2);
    let (_, data) = pull(&mut client, "ns", "k").await.unwrap();
    assert!(data == second);
}

// SIGTERM with connections in every state.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_idle_half_open_and_stalled_connections_exits_within_the_grace_period() {
    const GRACE: Duration = Duration::from_secs(2);
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("modelsync.sock");
    let mut daemon = Binary::spawn(
        dir.path(),
        &socket,
        &redis.url(),
        &["--shutdown-grace", "2"],
    );
    let mut client = support::connect_when_ready(&socket).await;
    // Larger than every buffer between Redis and the reader together: the
    // chunk window and both HTTP/2 flow-control windows.
    let model: Bytes = (0..96u32 << 20)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    push(&mut client, header("ns", "big"), model.clone())
        .await
        .unwrap();

    // (a) connected, nothing sent.
    let idle = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    // (b) the HTTP/2 client preface and nothing else.
    let mut preface = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    // (c) a pull whose reader stops after its first data message.
    let request = api::PullRequest {
        namespace: "ns".into(),
        key: "big".into(),
        ..Default::default()
    };
    let mut stalled = client.pull(request).await.unwrap().into_inner();
    let mut received = 0usize;
    while received == 0 {
        let message = stalled
            .message()
            .await
            .unwrap()
            .expect("the pull sends data");
        if let Some(api::pull_response::Message::Data(bytes)) = message.message {
            received += bytes.len();
        }
    }

    daemon.signal(libc::SIGTERM);
    let allowed = GRACE + Duration::from_secs(5);
    let ended = daemon.wait(allowed + Duration::from_secs(20)).await;
    let logs = daemon.logs();
    let (status, took) =
        ended.unwrap_or_else(|| panic!("the daemon did not exit after SIGTERM: {logs}"));
    println!("the daemon exited {took:?} after SIGTERM, with a {GRACE:?} grace period");
    assert!(
        took < allowed,
        "the daemon exited {took:?} after SIGTERM: {logs}"
    );
    assert!(status.success(), "{status:?}: {logs}");
    assert!(!socket.exists(), "the socket file is removed: {logs}");

    // The stalled reader, reading on, gets the model whole or an error;
    // never a clean end after part of it.
    let rest = tokio::time::timeout(NO_HANG, async {
        loop {
            match stalled.message().await {
                Ok(Some(message)) => {
                    if let Some(api::pull_response::Message::Data(bytes)) = message.message {
                        received += bytes.len();
                    }
                }
                Ok(None) => return Ok(()),
                Err(status) => return Err(status),
            }
        }
    })
    .await
    .expect("the stalled pull neither ended nor failed");
    if rest.is_ok() {
        assert_eq!(
            received,
            model.len(),
            "a pull cut off by shutdown ended cleanly after {received} bytes"
        );
    }
    drop((idle, preface));
}

// ---------------------------------------------------------------------
// Bad identity and configuration files.

/// Runs `modelsync serve` with the given arguments until it exits (it must
/// fail at start-up); answers its exit code and standard error.
fn failed_startup(dir: &Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    // A Redis address inside the test's folder that nothing listens on:
    // the daemon must stop before it looks, and no default applies.
    let redis = format!("redis+unix://{}/absent.sock", dir.display());
    let mut child = Command::new(BINARY)
        .env_clear()
        .arg("--socket")
        .arg(dir.join("s.sock"))
        .arg("serve")
        .args(["--redis", &redis])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("start-up with {args:?} did not fail; the daemon kept running");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Makes `path` unreadable; answers false (and says so) where that does
/// not stop this process reading it, as for root.
fn make_unreadable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(path).is_ok() {
        println!(
            "note: mode 000 does not stop this process reading {} (running as root?); the unreadable-file case is skipped",
            path.display()
        );
        return false;
    }
    true
}

/// One bad file: what to write (None: no file), and what the one line of
/// error must say besides the file's name.
struct BadFile {
    case: &'static str,
    text: Option<&'static str>,
    unreadable: bool,
    says: &'static [&'static str],
}

const fn bad(
    case: &'static str,
    text: Option<&'static str>,
    says: &'static [&'static str],
) -> BadFile {
    BadFile {
        case,
        text,
        unreadable: false,
        says,
    }
}

fn check_bad_files(flag: &str, files: &[BadFile], other_args: impl Fn(&Path) -> Vec<PathBuf>) {
    for file in files {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.yaml");
        if let Some(text) = file.text {
            std::fs::write(&path, text).unwrap();
        }
        if file.unreadable && !make_unreadable(&path) {
            continue;
        }
        let extra = other_args(dir.path());
        let mut args: Vec<&std::ffi::OsStr> = vec![flag.as_ref(), path.as_os_str()];
        args.extend(extra.iter().map(|p| p.as_os_str()));
        let (code, stderr) = failed_startup(dir.path(), &args);
        let case = file.case;
        assert_eq!(code, Some(64), "{case}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{case}: not one line: {stderr}"
        );
        assert!(
            stderr.contains(&path.display().to_string()),
            "{case}: the file is not named: {stderr}"
        );
        for words in file.says {
            assert!(
                stderr.contains(words),
                "{case}: {words:?} is not said: {stderr}"
            );
        }
    }
}

#[test]
fn a_bad_identity_file_stops_startup_with_status_64_and_one_line_naming_it() {
    let files = [
        bad("missing", None, &["identity file", "cannot read it"]),
        BadFile {
            unreadable: true,
            ..bad(
                "unreadable",
                Some("address: node-1\n"),
                &["identity file", "cannot read it"],
            )
        },
        bad(
            "not YAML",
            Some("address: node-1\nrack: [7, 8\n"),
            &["not valid YAML", "line 3"],
        ),
        bad(
            "tab-indented",
            Some("address: node-1\nlabels:\n\track: 7\n"),
            &["not valid YAML", "line 3"],
        ),
        bad(
            "no address",
            Some("name: node-1\nrack: 7\n"),
            &["`address` is missing"],
        ),
        bad("an empty file", Some(""), &["`address` is missing"]),
        bad(
            "a list",
            Some("- address: node-1\n"),
            &["expected a mapping"],
        ),
    ];
    check_bad_files("--identity", &files, |_| Vec::new());
}

#[test]
fn a_bad_configuration_file_stops_startup_with_status_64_and_one_line_naming_it() {
    let files = [
        bad("missing", None, &["configuration file", "cannot read it"]),
        BadFile {
            unreadable: true,
            ..bad(
                "unreadable",
                Some("ttl: 60\n"),
                &["configuration file", "cannot read it"],
            )
        },
        bad(
            "not YAML",
            Some("ttl: 60\nredis: 'unclosed\n"),
            &["configuration file", "line 2"],
        ),
        bad(
            "tab-indented",
            Some("ttl: 60\nnamespaces:\n\tvision:\n\t\tcodec: zstd\n"),
            &["configuration file", "line 3"],
        ),
        bad(
            "an unknown field",
            Some("ttl: 60\nchunk_sise: 4096\n"),
            &["chunk_sise", "line 2"],
        ),
        bad(
            "a field of the wrong type",
            Some("ttl: 60\nwindow: many\n"),
            &["window", "line 2"],
        ),
        bad(
            "an unknown field of a namespace",
            Some("namespaces:\n  vision:\n    layuot: legacy\n"),
            &["layuot", "line 3"],
        ),
    ];
    // A good identity file, so that only the configuration can fail.
    check_bad_files("--config", &files, |dir| {
        let identity = dir.join("identity.yaml");
        std::fs::write(&identity, "address: node-1\n").unwrap();
        vec!["--identity".into(), identity]
    });

    // A configuration that names an identity file lacking its address:
    // the line names that file.
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.yaml");
    std::fs::write(&identity, "rack: 7\n").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("identity: {}\n", identity.display())).unwrap();
    let (code, stderr) = failed_startup(dir.path(), &["--config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(64), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&identity.display().to_string()) && stderr.contains("`address` is missing"),
        "{stderr}"
    );
}
