//! Waiting for a newer version instead of polling, and watching the
//! commits of a namespace: across daemons, with lost notices made up by
//! the periodic check, and refused where the layout keeps no versions.

mod support;

use std::time::Duration;

use modelsync::config::{Layout, NamespaceSettings};
use modelsync::proto::v1 as api;
use support::{header, push, sample, Client, Daemon, RedisServer};
use tonic::Code;

/// A daemon that checks Redis often, so that tests of lost notices end soon.
async fn daemon(redis: &RedisServer, address: &str) -> Daemon {
    let mut config = support::config(&redis.url());
    config.identity.address = address.into();
    config.storage.check_interval = Duration::from_millis(300);
    Daemon::start_with(config).await
}

/// Pulls with a wait: the header's version and the bytes.
async fn pull_newer(
    client: &mut Client,
    key: &str,
    newer_than: Option<u64>,
    wait: Duration,
) -> Result<(u64, Vec<u8>), tonic::Status> {
    let request = api::PullRequest {
        namespace: "ns".into(),
        key: key.into(),
        newer_than,
        wait_ms: wait.as_millis() as u64,
    };
    let mut stream = client.pull(request).await?.into_inner();
    let mut version = 0;
    let mut data = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.message {
            Some(api::pull_response::Message::Header(h)) => version = h.version,
            Some(api::pull_response::Message::Data(d)) => data.extend_from_slice(&d),
            None => {}
        }
    }
    Ok((version, data))
}

/// Starts a pull that waits up to `wait` for a version newer than `than`.
async fn waiting_pull(
    daemon: &Daemon,
    key: &'static str,
    than: u64,
    wait: Duration,
) -> tokio::task::JoinHandle<Result<(u64, Vec<u8>), tonic::Status>> {
    let mut client = daemon.client().await;
    tokio::spawn(async move { pull_newer(&mut client, key, Some(than), wait).await })
}

/// Raises a model's version in Redis without announcing it, as a lost
/// notice would leave it: the manifest stays valid, only its version moves.
fn bump_silently(redis: &RedisServer, key: &str) {
    let mut conn = redis.connection();
    let manifest = format!("modelsync:{{ns:{key}}}:manifest");
    let _: i64 = redis::cmd("HINCRBY")
        .arg(&manifest)
        .arg("version")
        .arg(1)
        .query(&mut conn)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_newer_than_the_current_version_returns_the_next_commit_from_another_daemon() {
    let redis = RedisServer::start();
    let here = daemon(&redis, "node-a").await;
    let there = daemon(&redis, "node-b").await;
    push(&mut there.client().await, header("ns", "k"), sample(10, 1))
        .await
        .unwrap();

    let waiting = waiting_pull(&here, "k", 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "nothing newer than 1 exists yet");
    let model = sample(200_000, 2);
    push(&mut there.client().await, header("ns", "k"), model.clone())
        .await
        .unwrap();

    let (version, data) = waiting.await.unwrap().unwrap();
    assert_eq!(version, 2);
    assert_eq!(data, model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_already_newer_is_answered_at_once() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, "node-a").await;
    let mut client = daemon.client().await;
    for seed in 1..=3 {
        push(&mut client, header("ns", "k"), sample(10, seed))
            .await
            .unwrap();
    }

    let (version, data) = pull_newer(&mut client, "k", Some(1), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((version, data), (3, sample(10, 3).to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_sees_no_newer_version_ends_with_deadline_exceeded() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, "node-a").await;
    let mut client = daemon.client().await;
    push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .unwrap();

    for wait in [Duration::ZERO, Duration::from_millis(700)] {
        let err = pull_newer(&mut client, "k", Some(1), wait)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
        assert!(err.message().contains("newer than 1"), "{}", err.message());
    }
    // The model itself is untouched.
    let (version, _) = pull_newer(&mut client, "k", Some(0), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_with_a_wait_alone_waits_for_the_key_to_appear() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, "node-a").await;
    let mut client = daemon.client().await;

    let mut waiter = daemon.client().await;
    let waiting = tokio::spawn(async move {
        let request = api::ExistsRequest {
            namespace: "ns".into(),
            key: "later".into(),
            newer_than: None,
            wait_ms: 60_000,
        };
        waiter.exists(request).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    push(&mut client, header("ns", "later"), sample(10, 1))
        .await
        .unwrap();

    let answer = waiting.await.unwrap().unwrap().into_inner();
    assert!(answer.exists);
    assert_eq!(answer.header.unwrap().version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_notice_was_lost_is_found_by_the_periodic_check() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, "node-a").await;
    let mut client = daemon.client().await;
    push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .unwrap();

    let waiting = waiting_pull(&daemon, "k", 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    bump_silently(&redis, "k");

    let (version, data) = waiting.await.unwrap().unwrap();
    assert_eq!((version, data), (2, sample(10, 1).to_vec()));
}

/// Reads the next commit of a watch, failing the test if none comes soon.
async fn next_commit(commits: &mut tonic::Streaming<api::WatchResponse>) -> (String, u64, String) {
    let commit = tokio::time::timeout(Duration::from_secs(30), commits.message())
        .await
        .expect("a commit within 30 s")
        .unwrap()
        .expect("the watch goes on");
    (commit.key, commit.version, commit.updater)
}

fn watch_request(keys: &[&str], current: bool) -> api::WatchRequest {
    api::WatchRequest {
        namespace: "ns".into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        current,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_reports_every_commit_of_the_namespace_with_its_updater() {
    let redis = RedisServer::start();
    let watcher = daemon(&redis, "node-a").await;
    let pusher = daemon(&redis, "node-b").await;
    let mut client = pusher.client().await;
    push(&mut client, header("ns", "old"), sample(10, 1))
        .await
        .unwrap();

    let mut commits = watcher
        .client()
        .await
        .watch(watch_request(&[], false))
        .await
        .unwrap()
        .into_inner();
    for (key, seed) in [("a", 2), ("b", 3), ("a", 4)] {
        push(&mut client, header("ns", key), sample(100, seed))
            .await
            .unwrap();
    }
    push(&mut client, header("elsewhere", "a"), sample(10, 5))
        .await
        .unwrap();
    push(&mut client, header("ns", "old"), sample(10, 6))
        .await
        .unwrap();

    let node = "node-b".to_string();
    assert_eq!(
        next_commit(&mut commits).await,
        ("a".into(), 1, node.clone())
    );
    assert_eq!(
        next_commit(&mut commits).await,
        ("b".into(), 1, node.clone())
    );
    assert_eq!(
        next_commit(&mut commits).await,
        ("a".into(), 2, node.clone())
    );
    assert_eq!(next_commit(&mut commits).await, ("old".into(), 2, node));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_some_keys_starts_with_their_current_versions_and_ignores_the_rest() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, "node-a").await;
    let mut client = daemon.client().await;
    push(&mut client, header("ns", "a"), sample(10, 1))
        .await
        .unwrap();
    push(&mut client, header("ns", "b"), sample(10, 2))
        .await
        .unwrap();

    let mut commits = client
        .watch(watch_request(&["a", "missing"], true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_commit(&mut commits).await.0, "a");
    push(&mut client, header("ns", "b"), sample(10, 3))
        .await
        .unwrap();
    push(&mut client, header("ns", "missing"), sample(10, 4))
        .await
        .unwrap();

    let (key, version, _) = next_commit(&mut commits).await;
    assert_eq!((key.as_str(), version), ("missing", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_reports_a_commit_whose_notice_was_lost() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, "node-a").await;
    let mut client = daemon.client().await;
    push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .unwrap();
    let mut commits = client
        .watch(watch_request(&[], false))
        .await
        .unwrap()
        .into_inner();

    bump_silently(&redis, "k");

    let (key, version, _) = next_commit(&mut commits).await;
    assert_eq!((key.as_str(), version), ("k", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_and_watches_survive_a_redis_restart() {
    let mut redis = RedisServer::start();
    let daemon = daemon(&redis, "node-a").await;
    let mut commits = daemon
        .client()
        .await
        .watch(watch_request(&[], false))
        .await
        .unwrap()
        .into_inner();
    let waiting = waiting_pull(&daemon, "k", 0, Duration::from_secs(60)).await;

    redis.restart();
    let mut client = daemon.client().await;
    let mut pushed = None;
    for _ in 0..100 {
        match push(&mut client, header("ns", "k"), sample(10, 1)).await {
            Ok(done) => {
                pushed = Some(done);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(pushed.is_some(), "a push succeeds once Redis is back");

    assert_eq!(waiting.await.unwrap().unwrap().0, 1);
    assert_eq!(next_commit(&mut commits).await.1, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_daemon_ends_waiting_calls_as_unavailable() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, "node-a").await;
    let waiting = waiting_pull(&daemon, "k", 0, Duration::from_secs(3600)).await;
    let mut commits = daemon
        .client()
        .await
        .watch(watch_request(&[], false))
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Within the 5 s grace period, without cutting the calls off.
    daemon.stop().await;
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("shutting down"), "{}", err.message());
    assert!(matches!(commits.message().await, Ok(None) | Err(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_and_watching_are_refused_where_the_layout_has_no_versions() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    let legacy = NamespaceSettings {
        layout: Layout::Legacy,
        ..config.storage.namespace("old")
    };
    config.storage.namespaces.insert("old".into(), legacy);
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;

    let request = api::PullRequest {
        namespace: "old".into(),
        key: "k".into(),
        newer_than: Some(0),
        wait_ms: 1000,
    };
    let err = client.pull(request).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("legacy"), "{}", err.message());

    let request = api::WatchRequest {
        namespace: "old".into(),
        ..Default::default()
    };
    let err = client.watch(request).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_longer_than_a_day_is_refused() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, "node-a").await;
    let err = pull_newer(
        &mut daemon.client().await,
        "k",
        Some(1),
        Duration::from_secs(86_401),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("wait_ms"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_heard_through_its_notice_long_before_any_check() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    // No check in the test's lifetime: only the notice can wake the calls.
    config.storage.check_interval = Duration::from_secs(3600);
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;
    let mut commits = client
        .watch(watch_request(&["k"], false))
        .await
        .unwrap()
        .into_inner();
    let waiting = waiting_pull(&daemon, "k", 0, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .unwrap();

    assert_eq!(waiting.await.unwrap().unwrap().0, 1);
    assert_eq!(next_commit(&mut commits).await.1, 1);
}
