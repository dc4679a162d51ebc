//! Push, Pull and Exists end to end: a real Redis, the daemon on a real
//! socket, a real gRPC client.

mod support;

use bytes::Bytes;
use modelsync::proto::v1 as api;
use support::{header, pull, push, push_messages, sample, Daemon, RedisServer};
use tonic::Code;

const CHUNK: u64 = 64 << 10;

async fn daemon_with_small_chunks(redis: &RedisServer) -> Daemon {
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = CHUNK;
    Daemon::start_with(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_around_chunk_boundaries_come_back_identical() {
    let redis = RedisServer::start();
    let daemon = daemon_with_small_chunks(&redis).await;
    let mut client = daemon.client().await;

    for (i, size) in [
        0,
        1,
        CHUNK as usize,
        CHUNK as usize + 1,
        3 * CHUNK as usize - 1,
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("k{i}");
        let data = sample(size, i as u64);
        let pushed = push(&mut client, header("ns", &key), data.clone())
            .await
            .unwrap();
        assert_eq!(pushed.raw_size, size as u64);
        assert_eq!(
            pushed.chunk_count,
            (size as u64).div_ceil(CHUNK),
            "size {size}"
        );

        let (head, back) = pull(&mut client, "ns", &key).await.unwrap();
        assert_eq!(head.raw_size, size as u64);
        assert_eq!(back, data, "size {size}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips() {
    let redis = RedisServer::start();
    let daemon = daemon_with_small_chunks(&redis).await;
    let mut client = daemon.client().await;
    let data = sample(5 * CHUNK as usize + 17, 9);

    for codec in [
        "none",
        "zstd",
        "zstd:7",
        "zlib",
        "zlib:1",
        "shuffle-zstd",
        "shuffle-zstd:3",
    ] {
        let mut head = header("ns", codec);
        head.codec = codec.into();
        push(&mut client, head, data.clone()).await.unwrap();
        let (info, back) = pull(&mut client, "ns", codec).await.unwrap();
        assert_eq!(info.codec, codec.split(':').next().unwrap());
        assert_eq!(back, data, "{codec}");
    }
}

/// `auto`, the default, stores what looks like fixed-width numbers with
/// shuffle-zstd, anything else with zstd, and says which in the answer and
/// in the pulled header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_codec_shuffles_numbers_and_leaves_other_bytes_to_zstd() {
    let redis = RedisServer::start();
    let daemon = daemon_with_small_chunks(&redis).await;
    let mut client = daemon.client().await;

    // Words whose top byte is always zero, as small integers or the
    // exponents of similar floats make it.
    let numbers = sample(3 * CHUNK as usize + 8, 5);
    // 39 bytes a line, so no element width lines up with its repeats.
    let text = Bytes::from("notes on a model card, in plain words. ".repeat(8000));
    let mut tiny_doubles = header("ns", "tiny-doubles");
    tiny_doubles
        .metadata
        .insert("modelsync.dtype".into(), Bytes::from("<f8"));
    let mut asked = header("ns", "asked");
    asked.codec = "auto:3".into();
    let cases = [
        (header("ns", "numbers"), numbers.clone(), "shuffle-zstd"),
        (asked, numbers, "shuffle-zstd"),
        (header("ns", "text"), text, "zstd"),
        // Too short to judge by a sample, and nothing names a width.
        (header("ns", "tiny"), sample(4000, 6), "zstd"),
        // The dtype names the width, so no sample is needed.
        (tiny_doubles, sample(4000, 7), "shuffle-zstd"),
    ];
    for (head, data, expected) in cases {
        let key = head.key.clone();
        let pushed = push(&mut client, head, data.clone()).await.unwrap();
        assert_eq!(pushed.codec, expected, "{key}");

        let (info, back) = pull(&mut client, "ns", &key).await.unwrap();
        assert_eq!(info.codec, expected, "{key}");
        assert_eq!(back, data, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffling_by_any_element_width_round_trips() {
    let redis = RedisServer::start();
    let daemon = daemon_with_small_chunks(&redis).await;
    let mut client = daemon.client().await;
    let data = sample(2 * CHUNK as usize + 5, 11);

    let widths = [
        (Some(2), None),
        (None, Some("<f8")),
        (None, Some(">i2")),
        (Some(3), Some("<f4")),
    ];
    for (i, (width, dtype)) in widths.into_iter().enumerate() {
        let key = format!("w{i}");
        let mut head = header("ns", &key);
        head.codec = "shuffle-zstd".into();
        head.element_width = width;
        if let Some(dtype) = dtype {
            head.metadata
                .insert("modelsync.dtype".into(), Bytes::from(dtype));
        }
        push(&mut client, head, data.clone()).await.unwrap();
        assert_eq!(
            pull(&mut client, "ns", &key).await.unwrap().1,
            data,
            "{width:?} {dtype:?}"
        );
    }

    let mut head = header("ns", "bad");
    head.codec = "shuffle-zstd".into();
    head.element_width = Some(0);
    let err = push(&mut client, head, data).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_comes_back_byte_exact() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;

    let mut head = header("ns", "meta");
    head.metadata
        .insert("dtype".into(), Bytes::from_static(b"<f4"));
    head.metadata
        .insert("raw".into(), Bytes::from_static(&[0, 255, 128, 10, 13]));
    head.metadata.insert("empty".into(), Bytes::new());
    push(&mut client, head.clone(), sample(100, 1))
        .await
        .unwrap();

    let (info, _) = pull(&mut client, "ns", "meta").await.unwrap();
    assert_eq!(info.metadata, head.metadata);
    assert_eq!(info.updater, "node-test");

    let exists = client
        .exists(api::ExistsRequest {
            namespace: "ns".into(),
            key: "meta".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(exists.exists);
    assert_eq!(exists.header.unwrap().metadata, head.metadata);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_push_gets_a_higher_version_and_pull_returns_it() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;

    let first = push(&mut client, header("ns", "k"), sample(1000, 1))
        .await
        .unwrap();
    let second = push(&mut client, header("ns", "k"), sample(2000, 2))
        .await
        .unwrap();
    assert!(second.version > first.version);

    let (info, data) = pull(&mut client, "ns", "k").await.unwrap();
    assert_eq!(info.version, second.version);
    assert_eq!(data, sample(2000, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_is_not_found_for_pull_and_false_for_exists() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;

    let err = pull(&mut client, "ns", "absent").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("absent"), "{}", err.message());

    let exists = client
        .exists(api::ExistsRequest {
            namespace: "ns".into(),
            key: "absent".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!exists.exists);
    assert!(exists.header.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_invalid_argument_naming_the_field() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;

    let long = "x".repeat(1025);
    let cases = [
        ("", "k", "namespace"),
        ("ns", "", "key"),
        (long.as_str(), "k", "namespace"),
        ("ns", "a\nb", "key"),
    ];
    for (namespace, key, field) in cases {
        let err = push(&mut client, header(namespace, key), sample(10, 0))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with(field), "{}", err.message());

        let err = pull(&mut client, namespace, key).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
    assert_eq!(
        pull(&mut client, &"y".repeat(1024), "k")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_out_of_order_are_invalid_argument_and_store_nothing() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    let data = |b: &'static [u8]| api::PushRequest {
        message: Some(api::push_request::Message::Data(Bytes::from_static(b))),
    };
    let head = || api::PushRequest {
        message: Some(api::push_request::Message::Header(header("ns", "k"))),
    };

    let err = push_messages(&mut client, vec![data(b"abc"), head()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = push_messages(&mut client, vec![head(), data(b"abc"), head()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = push_messages(&mut client, vec![]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    assert_eq!(
        pull(&mut client, "ns", "k").await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_size_the_data_does_not_match_is_refused() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .unwrap();

    for declared in [9, 11] {
        let mut head = header("ns", "k");
        head.raw_size = Some(declared);
        let err = push(&mut client, head, sample(10, 2)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "declared {declared}");
    }
    let (_, data) = pull(&mut client, "ns", "k").await.unwrap();
    assert_eq!(data, sample(10, 1), "the stored version is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_message_over_the_limit_is_resource_exhausted() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    config.max_message_bytes = 4096;
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;

    let message = |len: usize| api::PushRequest {
        message: Some(api::push_request::Message::Data(sample(len, 3))),
    };
    let head = api::PushRequest {
        message: Some(api::push_request::Message::Header(header("ns", "k"))),
    };
    push_messages(&mut client, vec![head.clone(), message(4096)])
        .await
        .unwrap();
    let err = push_messages(&mut client, vec![head, message(4097)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_data_messages_stay_within_the_limit() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    push(&mut client, header("ns", "k"), sample(9 << 20, 4))
        .await
        .unwrap();

    let request = api::PullRequest {
        namespace: "ns".into(),
        key: "k".into(),
        ..Default::default()
    };
    let mut stream = client.pull(request).await.unwrap().into_inner();
    while let Some(message) = stream.message().await.unwrap() {
        if let Some(api::pull_response::Message::Data(bytes)) = message.message {
            assert!(bytes.len() <= 1 << 20, "{} bytes", bytes.len());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_delete_cover_every_version() {
    let redis = RedisServer::start();
    let daemon = daemon_with_small_chunks(&redis).await;
    let mut client = daemon.client().await;
    for key in ["a", "b:1", "{c}"] {
        push(
            &mut client,
            header("ns", key),
            sample(3 * CHUNK as usize, 1),
        )
        .await
        .unwrap();
    }
    push(&mut client, header("other", "d"), sample(10, 1))
        .await
        .unwrap();

    let mut listed = Vec::new();
    let mut stream = client
        .list(api::ListRequest {
            namespace: "ns".into(),
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(item) = stream.message().await.unwrap() {
        listed.push(item.header.unwrap().key);
    }
    listed.sort();
    assert_eq!(listed, ["a", "b:1", "{c}"]);

    let delete = |key: &str| api::DeleteRequest {
        namespace: "ns".into(),
        key: key.into(),
    };
    assert!(
        client
            .delete(delete("a"))
            .await
            .unwrap()
            .into_inner()
            .deleted
    );
    assert!(
        !client
            .delete(delete("a"))
            .await
            .unwrap()
            .into_inner()
            .deleted
    );
    assert_eq!(
        pull(&mut client, "ns", "a").await.unwrap_err().code(),
        Code::NotFound
    );

    let mut conn = redis.connection();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("modelsync:ns:a:*")
        .query(&mut conn)
        .unwrap();
    assert!(left.is_empty(), "chunks left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_against_a_stale_version_is_aborted_and_writes_nothing() {
    let redis = RedisServer::start();
    let daemon = daemon_with_small_chunks(&redis).await;
    let mut client = daemon.client().await;

    let mut first = header("ns", "k");
    first.expected_version = Some(0);
    let v1 = push(&mut client, first, sample(3 * CHUNK as usize, 1))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);

    let mut stale = header("ns", "k");
    stale.expected_version = Some(0);
    let err = push(&mut client, stale, sample(3 * CHUNK as usize, 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert!(err.message().contains("version 1"), "{}", err.message());

    let mut conn = redis.connection();
    let chunks: Vec<String> = redis::cmd("KEYS")
        .arg("modelsync:ns:k:chunk:*")
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        chunks.len(),
        3,
        "only the first version's chunks exist: {chunks:?}"
    );

    let mut current = header("ns", "k");
    current.expected_version = Some(1);
    assert_eq!(
        push(&mut client, current, sample(10, 3))
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(pull(&mut client, "ns", "k").await.unwrap().1, sample(10, 3));
}
