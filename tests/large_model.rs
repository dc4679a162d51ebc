//! A model past 2 GiB goes through without the daemon or this test ever
//! holding it whole: both sides stream and compare checksums.

mod support;

use bytes::Bytes;
use futures::StreamExt;
use modelsync::proto::v1 as api;
use support::{header, Daemon, RedisServer};
use xxhash_rust::xxh3::Xxh3;

const SIZE: u64 = (2 << 30) + 1;
const PIECE: u64 = 1 << 20;

/// Piece `index` of the model: distinct per piece, cheap to make, and
/// compressible, so that Redis holds far less than 2 GiB.
fn piece(index: u64) -> Bytes {
    let len = PIECE.min(SIZE - index * PIECE) as usize;
    let word = index.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    let mut out: Vec<u8> = word.iter().copied().cycle().take(len).collect();
    if let Some(first) = out.first_mut() {
        *first = index as u8;
    }
    out.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_of_two_gib_and_one_byte_comes_back_identical() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;

    let mut head = header("ns", "huge");
    head.raw_size = Some(SIZE);
    let first = api::PushRequest {
        message: Some(api::push_request::Message::Header(head)),
    };
    let pieces = SIZE.div_ceil(PIECE);
    let mut sent = Xxh3::new();
    let data = futures::stream::iter(0..pieces).map(|i| {
        let bytes = piece(i);
        api::PushRequest {
            message: Some(api::push_request::Message::Data(bytes)),
        }
    });
    let pushed = client
        .push(futures::stream::iter([first]).chain(data))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pushed.raw_size, SIZE);
    for i in 0..pieces {
        sent.update(&piece(i));
    }

    let request = api::PullRequest {
        namespace: "ns".into(),
        key: "huge".into(),
        ..Default::default()
    };
    let mut stream = client.pull(request).await.unwrap().into_inner();
    let mut received = Xxh3::new();
    let mut total = 0u64;
    while let Some(message) = stream.message().await.unwrap() {
        match message.message {
            Some(api::pull_response::Message::Header(h)) => assert_eq!(h.raw_size, SIZE),
            Some(api::pull_response::Message::Data(bytes)) => {
                total += bytes.len() as u64;
                received.update(&bytes);
            }
            None => {}
        }
    }
    assert_eq!(total, SIZE);
    assert_eq!(received.digest(), sent.digest());
}
