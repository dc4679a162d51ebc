//! What readers see while writers, expiry and damage happen: one whole
//! committed version or an error, never a mix and never partial bytes.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use modelsync::proto::v1 as api;
use support::{header, pull, push, sample, Daemon, RedisServer};
use tonic::Code;

const CHUNK: u64 = 16 << 10;

async fn daemon(redis: &RedisServer) -> Daemon {
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = CHUNK;
    config.storage.window = 4;
    Daemon::start_with(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers_see_only_whole_versions() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis).await;
    let objects: Vec<_> = (0..16)
        .map(|w| sample(5 * CHUNK as usize + w * 7, w as u64))
        .collect();
    let known: HashSet<Vec<u8>> = objects.iter().map(|o| o.to_vec()).collect();
    let mut seed = daemon.client().await;
    push(&mut seed, header("ns", "shared"), objects[0].clone())
        .await
        .unwrap();

    let writers = objects.iter().cloned().map(|object| {
        let socket = daemon.socket.clone();
        tokio::spawn(async move {
            let mut client = modelsync::cli::connect(&socket).await.unwrap();
            for _ in 0..4 {
                push(&mut client, header("ns", "shared"), object.clone())
                    .await
                    .unwrap();
            }
        })
    });
    let writers: Vec<_> = writers.collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let socket = daemon.socket.clone();
            let known = known.clone();
            tokio::spawn(async move {
                let mut client = modelsync::cli::connect(&socket).await.unwrap();
                let mut pulls = 0;
                for _ in 0..30 {
                    match pull(&mut client, "ns", "shared").await {
                        Ok((info, data)) => {
                            assert_eq!(info.raw_size as usize, data.len());
                            assert!(
                                known.contains(&data),
                                "a pull returned bytes no writer pushed"
                            );
                            pulls += 1;
                        }
                        // A version replaced and expired mid-read is the
                        // one error allowed; never partial data.
                        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
                    }
                }
                pulls
            })
        })
        .collect();

    for writer in writers {
        writer.await.unwrap();
    }
    let mut pulls = 0;
    for reader in readers {
        pulls += reader.await.unwrap();
    }
    assert!(pulls > 0);
    let (info, _) = pull(&mut seed, "ns", "shared").await.unwrap();
    assert_eq!(
        info.version,
        1 + 16 * 4,
        "every push committed exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_ttl_ends_in_not_found_never_partial_bytes() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis).await;
    let mut client = daemon.client().await;
    let data = sample(8 * CHUNK as usize, 5);
    let mut head = header("ns", "short");
    head.ttl_seconds = Some(1);
    push(&mut client, head, data.clone()).await.unwrap();

    let mut saw_not_found = false;
    for _ in 0..200 {
        match pull(&mut client, "ns", "short").await {
            Ok((_, back)) => assert_eq!(back, data),
            Err(status) => {
                assert_eq!(status.code(), Code::NotFound, "{status:?}");
                saw_not_found = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_not_found, "the model never expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_is_data_loss() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis).await;
    let mut client = daemon.client().await;
    push(
        &mut client,
        header("ns", "k"),
        sample(4 * CHUNK as usize, 6),
    )
    .await
    .unwrap();

    let mut conn = redis.connection();
    let chunks: Vec<String> = redis::cmd("KEYS")
        .arg("modelsync:ns:k:chunk:*:2")
        .query(&mut conn)
        .unwrap();
    let name = &chunks[0];
    let mut stored: Vec<u8> = redis::cmd("GET").arg(name).query(&mut conn).unwrap();
    stored[10] ^= 0x40;
    let _: () = redis::cmd("SET")
        .arg(name)
        .arg(stored)
        .arg("KEEPTTL")
        .query(&mut conn)
        .unwrap();

    let err = pull(&mut client, "ns", "k").await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    assert!(err.message().contains("chunk 2"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_chunk_is_not_found_and_no_bytes_past_it_are_sent() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis).await;
    let mut client = daemon.client().await;
    let data = sample(6 * CHUNK as usize, 7);
    push(&mut client, header("ns", "k"), data.clone())
        .await
        .unwrap();

    let mut conn = redis.connection();
    let chunks: Vec<String> = redis::cmd("KEYS")
        .arg("modelsync:ns:k:chunk:*:3")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("DEL").arg(&chunks[0]).query(&mut conn).unwrap();

    let request = api::PullRequest {
        namespace: "ns".into(),
        key: "k".into(),
        ..Default::default()
    };
    let mut stream = client.pull(request).await.unwrap().into_inner();
    let mut received = 0usize;
    let mut ended_with = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(api::PullResponse {
                message: Some(api::pull_response::Message::Data(bytes)),
            }) => received += bytes.len(),
            Ok(_) => {}
            Err(status) => {
                ended_with = Some(status.code());
                break;
            }
        }
    }
    assert_eq!(ended_with, Some(Code::NotFound));
    assert!(
        received <= 3 * CHUNK as usize,
        "bytes past the missing chunk were sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_version_stays_readable_for_the_grace_period() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = CHUNK;
    config.storage.grace = Duration::from_secs(30);
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;
    let old = sample(4 * CHUNK as usize, 8);
    push(&mut client, header("ns", "k"), old.clone())
        .await
        .unwrap();

    // A pull that has read the manifest but not yet the chunks...
    let request = api::PullRequest {
        namespace: "ns".into(),
        key: "k".into(),
        ..Default::default()
    };
    let mut slow = client.pull(request).await.unwrap().into_inner();
    // ...while a new version commits.
    let mut writer = daemon.client().await;
    push(
        &mut writer,
        header("ns", "k"),
        sample(4 * CHUNK as usize, 9),
    )
    .await
    .unwrap();

    let mut data = Vec::new();
    while let Some(message) = slow.message().await.unwrap() {
        if let Some(api::pull_response::Message::Data(bytes)) = message.message {
            data.extend_from_slice(&bytes);
        }
    }
    assert_eq!(data, old);

    let mut conn = redis.connection();
    let old_chunk: Vec<String> = redis::cmd("KEYS")
        .arg("modelsync:ns:k:chunk:*")
        .query(&mut conn)
        .unwrap();
    let ttls: Vec<i64> = old_chunk
        .iter()
        .map(|name| redis::cmd("TTL").arg(name).query(&mut conn).unwrap())
        .collect();
    assert!(
        ttls.iter().any(|ttl| *ttl <= 30),
        "the replaced chunks got the grace period: {ttls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_model_lives_in_its_manifest_and_damage_there_is_data_loss() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    let data = sample(4096, 12);
    push(&mut client, header("ns", "small"), data.clone())
        .await
        .unwrap();
    assert_eq!(pull(&mut client, "ns", "small").await.unwrap().1, data);

    let mut conn = redis.connection();
    let chunks: Vec<String> = redis::cmd("KEYS")
        .arg("modelsync:ns:small:chunk:*")
        .query(&mut conn)
        .unwrap();
    assert!(
        chunks.is_empty(),
        "a 4 KB model needs no chunk keys: {chunks:?}"
    );

    // Flip one byte near the end of the manifest, inside the inline chunk.
    let name = "modelsync:{ns:small}:manifest";
    let mut manifest: Vec<u8> = redis::cmd("HGET")
        .arg(name)
        .arg("manifest")
        .query(&mut conn)
        .unwrap();
    let at = manifest.len() - 10;
    manifest[at] ^= 0x01;
    let _: () = redis::cmd("HSET")
        .arg(name)
        .arg("manifest")
        .arg(manifest)
        .query(&mut conn)
        .unwrap();
    let err = pull(&mut client, "ns", "small").await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
}
