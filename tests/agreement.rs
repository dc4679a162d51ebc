//! Namespace agreement: daemons that would store a namespace differently
//! are refused, or adopt what the first one recorded.

mod support;

use modelsync::config::{Layout, NamespaceSettings};
use modelsync::proto::v1 as api;
use support::{header, pull, push, sample, Daemon, RedisServer};
use tonic::Code;

async fn daemon(redis: &RedisServer, chunk_size: u64, adopt: bool) -> Daemon {
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = chunk_size;
    config.storage.adopt = adopt;
    Daemon::start_with(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_with_another_chunk_size_is_refused_naming_both_values() {
    let redis = RedisServer::start();
    let first = daemon(&redis, 64 << 10, false).await;
    let second = daemon(&redis, 128 << 10, false).await;
    push(
        &mut first.client().await,
        header("shared", "k"),
        sample(300_000, 1),
    )
    .await
    .unwrap();

    let mut client = second.client().await;
    let err = push(&mut client, header("shared", "k"), sample(10, 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let message = err.message();
    assert!(
        message.contains("chunk_size") && message.contains("65536") && message.contains("131072"),
        "{message}"
    );
    assert_eq!(
        pull(&mut client, "shared", "k").await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    let (_, data) = pull(&mut first.client().await, "shared", "k")
        .await
        .unwrap();
    assert_eq!(
        data,
        sample(300_000, 1),
        "the first daemon's model is untouched"
    );
    // Another namespace is free to be recorded differently.
    push(&mut client, header("other", "k"), sample(10, 3))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_configured_to_adopt_uses_what_is_recorded() {
    let redis = RedisServer::start();
    let first = daemon(&redis, 64 << 10, false).await;
    let adopter = daemon(&redis, 128 << 10, true).await;
    push(
        &mut first.client().await,
        header("shared", "a"),
        sample(10, 1),
    )
    .await
    .unwrap();

    let mut client = adopter.client().await;
    let pushed = push(&mut client, header("shared", "b"), sample(300_000, 2))
        .await
        .unwrap();
    assert_eq!(pushed.chunk_count, 5, "300,000 bytes in chunks of 64 KiB");
    let info = client
        .namespace(api::NamespaceRequest {
            namespace: "shared".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.chunk_size, 64 << 10);
    assert_eq!(
        pull(&mut first.client().await, "shared", "b")
            .await
            .unwrap()
            .1,
        sample(300_000, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_mismatch_is_refused() {
    let redis = RedisServer::start();
    let chunked = daemon(&redis, 64 << 10, false).await;
    push(
        &mut chunked.client().await,
        header("fleet", "k"),
        sample(10, 1),
    )
    .await
    .unwrap();

    let mut config = support::config(&redis.url());
    config.storage.chunk_size = 64 << 10;
    let legacy = NamespaceSettings {
        layout: Layout::Legacy,
        codec: "zlib".parse().unwrap(),
        chunk_size: 64 << 10,
        ttl: config.storage.ttl,
        trust_pickle: false,
    };
    config.storage.namespaces.insert("fleet".into(), legacy);
    let other = Daemon::start_with(config).await;
    let err = pull(&mut other.client().await, "fleet", "k")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("layout chunked") && err.message().contains("legacy"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_show_prints_the_recorded_settings() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, 64 << 10, false).await;
    let socket = daemon.socket.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_modelsync"))
            .arg("--socket")
            .arg(&socket)
            .args(["namespace", "show", "vision"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        shown.contains("layout:     chunked") && shown.contains("chunk size: 65536"),
        "{shown}"
    );

    let mut conn = redis.connection();
    let recorded: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg("modelsync:namespace:vision")
        .query(&mut conn)
        .unwrap();
    assert!(
        recorded.contains(&("chunk_size".to_string(), "65536".to_string())),
        "{recorded:?}"
    );
}

/// Every manifest names its own codec, so daemons that compress new
/// versions differently (here the old default `zstd:1` and `auto`) share a
/// namespace and read each other's models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_that_differ_only_in_codec_share_a_namespace() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    config.storage.codec = "zstd:1".parse().unwrap();
    let zstd = Daemon::start_with(config).await;
    let auto = Daemon::start(&redis.url()).await;
    let numbers = sample(300_000, 4);

    push(
        &mut zstd.client().await,
        header("shared", "a"),
        numbers.clone(),
    )
    .await
    .unwrap();
    let mut client = auto.client().await;
    let pushed = push(&mut client, header("shared", "b"), numbers.clone())
        .await
        .unwrap();
    assert_eq!(pushed.codec, "shuffle-zstd");

    let (head, data) = pull(&mut client, "shared", "a").await.unwrap();
    assert_eq!(head.codec, "zstd");
    assert_eq!(data, numbers);
    let (head, data) = pull(&mut zstd.client().await, "shared", "b").await.unwrap();
    assert_eq!(head.codec, "shuffle-zstd");
    assert_eq!(data, numbers);
}
