//! The daemon on a Redis Cluster of three masters and three replicas, each
//! a real `redis-server` the test starts: chunks spread over every shard,
//! the commit stays one step, and a failover mid-push never shows a torn
//! version.

mod support;

use std::time::Duration;

use modelsync::proto::v1 as api;
use support::cluster::{role, RedisCluster};
use support::{header, pull, push, sample, Daemon};
use tonic::Code;

async fn daemon(cluster: &RedisCluster) -> Daemon {
    Daemon::start(&cluster.url()).await
}

/// How many chunk keys of `namespace` a node holds.
fn chunks_on(node: &support::RedisServer, namespace: &str) -> usize {
    let pattern = format!("modelsync:{namespace}:*:chunk:*");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut node.connection())
        .unwrap();
    keys.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_mb_model_spreads_over_all_three_masters_and_comes_back_whole() {
    let cluster = RedisCluster::start();
    let daemon = daemon(&cluster).await;
    let mut client = daemon.client().await;
    let model = sample(500_000_000, 7);

    let pushed = push(&mut client, header("big", "model"), model.clone())
        .await
        .unwrap();
    assert!(pushed.chunk_count >= 100, "{pushed:?}");

    let per_master: Vec<usize> = cluster
        .masters()
        .iter()
        .map(|m| chunks_on(m, "big"))
        .collect();
    assert_eq!(per_master.iter().sum::<usize>() as u64, pushed.chunk_count);
    assert!(
        per_master.iter().all(|&n| n > 0),
        "every master holds chunks: {per_master:?}"
    );
    let (head, data) = pull(&mut client, "big", "model").await.unwrap();
    assert_eq!(head.version, 1);
    assert!(data == model, "the model comes back byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_deleting_waiting_and_agreement_work_across_shards() {
    let cluster = RedisCluster::start();
    let daemon = daemon(&cluster).await;
    let mut client = daemon.client().await;
    for i in 0..30 {
        push(
            &mut client,
            header("fleet", &format!("k{i}")),
            sample(5_000_000, i),
        )
        .await
        .unwrap();
    }

    let mut listed = Vec::new();
    let mut stream = client
        .list(api::ListRequest {
            namespace: "fleet".into(),
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(item) = stream.message().await.unwrap() {
        listed.push(item.header.unwrap().key);
    }
    listed.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    expected.sort();
    assert_eq!(listed, expected);

    let deleted = client
        .delete(api::DeleteRequest {
            namespace: "fleet".into(),
            key: "k3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted);
    let total: usize = cluster
        .masters()
        .iter()
        .map(|m| chunks_on(m, "fleet"))
        .sum();
    assert_eq!(
        total,
        29 * 2,
        "the deleted model's chunks are gone, 2 per model remain"
    );

    let mut waiter = daemon.client().await;
    let waiting = tokio::spawn(async move {
        let request = api::ExistsRequest {
            namespace: "fleet".into(),
            key: "k0".into(),
            newer_than: Some(1),
            wait_ms: 60_000,
        };
        waiter.exists(request).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    push(&mut client, header("fleet", "k0"), sample(10, 99))
        .await
        .unwrap();
    let answer = waiting.await.unwrap().unwrap().into_inner();
    assert_eq!(answer.header.unwrap().version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_during_a_push_ends_committed_or_retryable_and_never_torn() {
    let cluster = RedisCluster::start();
    let daemon = daemon(&cluster).await;
    let mut client = daemon.client().await;
    let before = sample(30_000_000, 1);
    push(&mut client, header("ns", "model"), before.clone())
        .await
        .unwrap();

    let during = sample(300_000_000, 2);
    let mut pusher = daemon.client().await;
    let pushing = {
        let during = during.clone();
        tokio::spawn(async move { push(&mut pusher, header("ns", "model"), during).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The replica of the manifest's master takes over, as an operator's
    // failover does; under load a manual failover may time out, so it is
    // asked again until it has happened.
    let replica = cluster.replica_of_key_holder("modelsync:{ns:model}:manifest");
    for _ in 0..20 {
        if role(replica) == "master" {
            break;
        }
        let _: redis::RedisResult<()> = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query(&mut replica.connection());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(role(replica), "master", "the failover happened");

    let outcome = pushing.await.unwrap();
    if let Err(status) = &outcome {
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Aborted
            ),
            "a failed push during failover is retryable: {status:?}"
        );
    }
    cluster.wait_until_ok();
    eprintln!("push during failover: {outcome:?}");
    let (head, data) = pull(&mut client, "ns", "model").await.unwrap();
    match (&outcome, head.version) {
        (Ok(done), version) if version == done.version => assert!(data == during),
        (_, 1) => assert!(data == before, "the previous version is whole"),
        other => panic!("unexpected outcome {other:?}"),
    }

    let again = push(&mut client, header("ns", "model"), during.clone())
        .await
        .unwrap();
    let (head, data) = pull(&mut client, "ns", "model").await.unwrap();
    assert_eq!(head.version, again.version);
    assert!(data == during);
}
