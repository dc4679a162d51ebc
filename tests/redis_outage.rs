//! The daemon without its Redis: it starts anyway, calls fail fast with
//! UNAVAILABLE naming the endpoint, and it recovers by itself.

mod support;

use std::time::{Duration, Instant};

use modelsync::proto::v1 as api;
use support::{free_port, header, pull, push, sample, Daemon, RedisServer};
use tonic::Code;

fn exists_request() -> api::ExistsRequest {
    api::ExistsRequest {
        namespace: "ns".into(),
        key: "k".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_gives_unavailable_and_a_restarted_one_success() {
    let mut redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    push(&mut client, header("ns", "k"), sample(1000, 1))
        .await
        .unwrap();

    redis.stop();
    let started = Instant::now();
    let err = client.exists(exists_request()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains(&format!("127.0.0.1:{}", redis.port)),
        "{}",
        err.message()
    );
    // Connect timeout 0.5 s and response timeout 5 s: well within both.
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "took {:?}",
        started.elapsed()
    );
    let err = push(&mut client, header("ns", "k"), sample(1000, 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    redis.restart();
    let mut recovered = false;
    for _ in 0..50 {
        if push(&mut client, header("ns", "k"), sample(1000, 3))
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the daemon did not reconnect");
    let (_, data) = pull(&mut client, "ns", "k").await.unwrap();
    assert_eq!(data, sample(1000, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_starts_without_redis_and_connects_when_it_appears() {
    let port = free_port();
    let daemon = Daemon::start(&format!("redis://127.0.0.1:{port}/0")).await;
    let mut client = daemon.client().await;

    let err = client.exists(exists_request()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    let redis = RedisServer::start_on(port);
    let mut answered = false;
    for _ in 0..50 {
        if let Ok(response) = client.exists(exists_request()).await {
            assert!(!response.into_inner().exists);
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered,
        "the daemon never reached redis on port {}",
        redis.port
    );
}
