//! Damaged, forged and hostile stored data, and requests at and over every
//! size limit. A reader gets a whole model or a clear error (DATA_LOSS or
//! NOT_FOUND), never bytes of a damaged chunk nor any past it; no stored
//! frame makes the daemon allocate what it claims; no request over a limit
//! is taken or left hanging.
//!
//! Damage is done to the stored bytes and to the manifest as the daemon
//! wrote them (decoded with prost, changed, encoded again). Where a
//! forgery must get past the per-chunk checksum to reach the decoder, the
//! checksum is recomputed the way the stored manifest shows it was made:
//! over the stored bytes or over the raw bytes of the chunk.

mod support;

use std::time::Duration;

use bytes::Bytes;
use modelsync::proto::storage::Manifest;
use modelsync::proto::v1 as api;
use modelsync::service::{MAX_METADATA_BYTES, MAX_NAME_BYTES};
use modelsync::store::keys;
use prost::Message;
use support::{header, push, push_messages, sample, Client, Daemon, RedisServer};
use tonic::{Code, Status};
use xxhash_rust::xxh3::xxh3_64;

/// Small chunks, so that a model of a few hundred KiB has several, each
/// stored under a chunk key of its own.
const CHUNK: u64 = 16 << 10;

/// Longer than any call here may take; a call still running then hangs.
const NO_HANG: Duration = Duration::from_secs(30);

/// Tests that watch the process's peak memory run one at a time, and so do
/// the tests that move multi-MiB messages, so that one does not disturb
/// the other's measurement.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn daemon(redis: &RedisServer, chunk_size: u64) -> Daemon {
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = chunk_size;
    config.storage.window = 4;
    Daemon::start_with(config).await
}

fn with_codec(namespace: &str, key: &str, codec: &str) -> api::PushHeader {
    let mut head = header(namespace, key);
    head.codec = codec.into();
    head
}

/// What one pull delivered: its header, its data, the largest data
/// message, and how the stream ended.
struct Pulled {
    header: Option<api::ModelHeader>,
    data: Vec<u8>,
    largest: usize,
    end: Result<(), Status>,
}

async fn pull_streamed(client: &mut Client, namespace: &str, key: &str) -> Pulled {
    let call = async {
        let mut out = Pulled {
            header: None,
            data: Vec::new(),
            largest: 0,
            end: Ok(()),
        };
        let request = api::PullRequest {
            namespace: namespace.into(),
            key: key.into(),
            ..Default::default()
        };
        let mut stream = match client.pull(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                out.end = Err(status);
                return out;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(message)) => match message.message {
                    Some(api::pull_response::Message::Header(h)) => {
                        assert!(out.header.is_none(), "a second header");
                        out.header = Some(h);
                    }
                    Some(api::pull_response::Message::Data(bytes)) => {
                        assert!(out.header.is_some(), "data before the header");
                        out.largest = out.largest.max(bytes.len());
                        out.data.extend_from_slice(&bytes);
                    }
                    None => panic!("a pull message with neither header nor data"),
                },
                Ok(None) => break,
                Err(status) => {
                    out.end = Err(status);
                    break;
                }
            }
        }
        out
    };
    tokio::time::timeout(NO_HANG, call)
        .await
        .expect("the pull neither ended nor failed")
}

/// Asserts that a pull of damaged data failed with one of `codes` and
/// delivered only an exact prefix of the original that ends before the
/// damaged chunk.
fn assert_refused(
    pulled: &Pulled,
    original: &[u8],
    damaged: u64,
    chunk: u64,
    codes: &[Code],
    case: &str,
) {
    let status = match &pulled.end {
        Ok(()) => panic!(
            "{case}: the pull succeeded with {} bytes (the original has {})",
            pulled.data.len(),
            original.len()
        ),
        Err(status) => status,
    };
    assert!(codes.contains(&status.code()), "{case}: {status:?}");
    let limit = (damaged * chunk) as usize;
    assert!(
        pulled.data.len() <= limit,
        "{case}: {} bytes were sent, past the damaged chunk {damaged} (which starts at byte {limit})",
        pulled.data.len()
    );
    assert!(
        pulled.data[..] == original[..pulled.data.len()],
        "{case}: the bytes sent before the error are not the original's"
    );
}

fn manifest(conn: &mut redis::Connection, namespace: &str, key: &str) -> Manifest {
    let stored: Vec<u8> = redis::cmd("HGET")
        .arg(keys::manifest(namespace, key))
        .arg("manifest")
        .query(conn)
        .unwrap();
    Manifest::decode(&stored[..]).expect("the stored manifest decodes")
}

/// Whether the manifest's own checksum covers its chunk checksums; then a
/// forgery that changes them must recompute it to get past that check.
fn checksum_covers_chunk_checksums(m: &Manifest) -> bool {
    m.checksum == xxh3_64(&m.chunk_checksums)
}

/// Decodes the stored manifest, lets `change` alter it and stores it back
/// (the hash keeps its expiry).
fn forge(
    conn: &mut redis::Connection,
    namespace: &str,
    key: &str,
    change: impl FnOnce(&mut Manifest),
) {
    let mut m = manifest(conn, namespace, key);
    let covered = checksum_covers_chunk_checksums(&m);
    change(&mut m);
    if covered {
        m.checksum = xxh3_64(&m.chunk_checksums);
    }
    let _: () = redis::cmd("HSET")
        .arg(keys::manifest(namespace, key))
        .arg("manifest")
        .arg(m.encode_to_vec())
        .query(conn)
        .unwrap();
}

fn chunk_checksum(m: &Manifest, index: u64) -> u64 {
    let at = index as usize * 8;
    u64::from_le_bytes(m.chunk_checksums[at..at + 8].try_into().unwrap())
}

fn set_chunk_checksum(m: &mut Manifest, index: u64, value: u64) {
    let mut all = m.chunk_checksums.to_vec();
    let at = index as usize * 8;
    all[at..at + 8].copy_from_slice(&value.to_le_bytes());
    m.chunk_checksums = all.into();
}

fn chunk_key(conn: &mut redis::Connection, namespace: &str, key: &str, index: u64) -> String {
    let m = manifest(conn, namespace, key);
    assert!(
        index < m.chunk_count,
        "chunk {index} of {} recorded",
        m.chunk_count
    );
    keys::chunk(namespace, key, &m.blob, index)
}

fn stored_chunk(conn: &mut redis::Connection, namespace: &str, key: &str, index: u64) -> Vec<u8> {
    let name = chunk_key(conn, namespace, key, index);
    let stored: Option<Vec<u8>> = redis::cmd("GET").arg(&name).query(conn).unwrap();
    stored.unwrap_or_else(|| panic!("chunk {index} is stored under {name}"))
}

fn replace_chunk(
    conn: &mut redis::Connection,
    namespace: &str,
    key: &str,
    index: u64,
    bytes: &[u8],
) {
    let name = chunk_key(conn, namespace, key, index);
    let _: () = redis::cmd("SET")
        .arg(&name)
        .arg(bytes)
        .arg("KEEPTTL")
        .query(conn)
        .unwrap();
}

/// Makes chunk `index`'s recorded checksum agree with what now stands in
/// its place, so that only the decoder and the size checks stand between
/// the damage and the client: over the new stored bytes where checksums
/// cover stored bytes, or over `lenient_raw` (what a decoder that ignored
/// the damage would give back) where they cover raw bytes.
fn match_checksum(
    conn: &mut redis::Connection,
    namespace: &str,
    key: &str,
    index: u64,
    original_stored: &[u8],
    new_stored: &[u8],
    lenient_raw: Option<&[u8]>,
) {
    let recorded = chunk_checksum(&manifest(conn, namespace, key), index);
    let value = if recorded == xxh3_64(original_stored) {
        xxh3_64(new_stored)
    } else if let Some(raw) = lenient_raw {
        xxh3_64(raw)
    } else {
        return;
    };
    forge(conn, namespace, key, |m| {
        set_chunk_checksum(m, index, value)
    });
}

/// Restores what a case damaged, so the next case starts from the model as
/// pushed.
fn restore(
    conn: &mut redis::Connection,
    namespace: &str,
    key: &str,
    index: u64,
    stored: &[u8],
    m: &Manifest,
) {
    replace_chunk(conn, namespace, key, index, stored);
    let _: () = redis::cmd("HSET")
        .arg(keys::manifest(namespace, key))
        .arg("manifest")
        .arg(m.encode_to_vec())
        .query(conn)
        .unwrap();
}

fn zstd(raw: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(raw, 1).unwrap()
}

/// The offset just past each block of a zstd frame, parsed from its frame
/// header and block headers (RFC 8878, section 3.1.1).
fn zstd_block_ends(frame: &[u8]) -> Vec<usize> {
    assert_eq!(frame[..4], [0x28, 0xB5, 0x2F, 0xFD], "zstd magic number");
    let descriptor = frame[4];
    let content_size_flag = descriptor >> 6;
    let single_segment = descriptor & 0x20 != 0;
    let has_checksum = descriptor & 0x04 != 0;
    let dictionary_bytes = [0, 1, 2, 4][(descriptor & 3) as usize];
    let content_size_bytes = match (content_size_flag, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let mut at = 5 + usize::from(!single_segment) + dictionary_bytes + content_size_bytes;
    let mut ends = Vec::new();
    loop {
        let block =
            u32::from(frame[at]) | u32::from(frame[at + 1]) << 8 | u32::from(frame[at + 2]) << 16;
        let last = block & 1 == 1;
        let kind = (block >> 1) & 3;
        assert_ne!(kind, 3, "reserved block type at {at}");
        let size = (block >> 3) as usize;
        // An RLE block stores its one byte, whatever size it stands for.
        at += 3 + if kind == 1 { 1 } else { size };
        ends.push(at);
        if last {
            break;
        }
    }
    assert_eq!(
        at + if has_checksum { 4 } else { 0 },
        frame.len(),
        "the frame parses to its end"
    );
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_cut_in_half_is_data_loss_with_every_codec() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, CHUNK).await;
    let mut client = daemon.client().await;
    let mut conn = redis.connection();
    let original = sample(6 * CHUNK as usize + 5000, 11);

    for codec in ["zstd", "zlib", "none", "shuffle-zstd"] {
        push(
            &mut client,
            with_codec("ns", codec, codec),
            original.clone(),
        )
        .await
        .unwrap();
        let pushed = manifest(&mut conn, "ns", codec);
        for (index, forged) in [(2, false), (2, true), (6, false), (6, true)] {
            let stored = stored_chunk(&mut conn, "ns", codec, index);
            let half = &stored[..stored.len() / 2];
            replace_chunk(&mut conn, "ns", codec, index, half);
            if forged {
                // With no codec, half the stored bytes are half the raw ones.
                let lenient = (codec == "none").then_some(half);
                match_checksum(&mut conn, "ns", codec, index, &stored, half, lenient);
            }
            let pulled = pull_streamed(&mut client, "ns", codec).await;
            let case = format!("{codec}, chunk {index} cut in half, checksum forged: {forged}");
            assert_refused(&pulled, &original, index, CHUNK, &[Code::DataLoss], &case);
            restore(&mut conn, "ns", codec, index, &stored, &pushed);
        }
        let whole = pull_streamed(&mut client, "ns", codec).await;
        assert!(
            whole.end.is_ok() && whole.data == original,
            "{codec}: restored model pulls whole"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zstd_chunk_cut_at_a_block_boundary_is_data_loss() {
    // Chunks of 512 KiB hold several zstd blocks (at most 128 KiB each).
    const BIG_CHUNK: u64 = 512 << 10;
    let redis = RedisServer::start();
    let daemon = daemon(&redis, BIG_CHUNK).await;
    let mut client = daemon.client().await;
    let mut conn = redis.connection();
    let original = sample(3 * BIG_CHUNK as usize + 7000, 12);
    push(&mut client, with_codec("ns", "k", "zstd"), original.clone())
        .await
        .unwrap();
    let pushed = manifest(&mut conn, "ns", "k");
    let index = 1;
    let raw = &original[BIG_CHUNK as usize..2 * BIG_CHUNK as usize];
    let stored = stored_chunk(&mut conn, "ns", "k", index);
    let ends = zstd_block_ends(&stored);
    assert!(
        ends.len() >= 3,
        "a chunk of 512 KiB holds several blocks: {ends:?}"
    );

    // Cut after the first block, and after every block but the last: each
    // a frame that stops cleanly between blocks.
    let mut cuts: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = [ends[0], ends[ends.len() - 2]]
        .into_iter()
        .map(|end| {
            (
                format!("cut at the block boundary {end}"),
                stored[..end].to_vec(),
                None,
            )
        })
        .collect();
    // A whole, valid frame of the chunk's first half: it decodes cleanly,
    // to too few bytes.
    let half = &raw[..raw.len() / 2];
    cuts.push((
        "a valid frame of the first half".into(),
        zstd(half),
        Some(half.to_vec()),
    ));

    for (what, damaged, lenient) in cuts {
        for forged in [false, true] {
            replace_chunk(&mut conn, "ns", "k", index, &damaged);
            if forged {
                match_checksum(
                    &mut conn,
                    "ns",
                    "k",
                    index,
                    &stored,
                    &damaged,
                    lenient.as_deref(),
                );
            }
            let pulled = pull_streamed(&mut client, "ns", "k").await;
            let case = format!("{what}, checksum forged: {forged}");
            assert_refused(
                &pulled,
                &original,
                index,
                BIG_CHUNK,
                &[Code::DataLoss],
                &case,
            );
            restore(&mut conn, "ns", "k", index, &stored, &pushed);
        }
    }
    let whole = pull_streamed(&mut client, "ns", "k").await;
    assert!(
        whole.end.is_ok() && whole.data == original,
        "the restored model pulls whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_first_or_last_chunk_is_not_found_with_no_bytes_past_it() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, CHUNK).await;
    let mut client = daemon.client().await;
    let mut conn = redis.connection();
    let original = sample(5 * CHUNK as usize + 300, 13);

    for codec in ["zstd", "zlib"] {
        for index in [0, 5] {
            let key = format!("{codec}-{index}");
            push(&mut client, with_codec("ns", &key, codec), original.clone())
                .await
                .unwrap();
            let name = chunk_key(&mut conn, "ns", &key, index);
            let deleted: i64 = redis::cmd("DEL").arg(&name).query(&mut conn).unwrap();
            assert_eq!(deleted, 1);
            let pulled = pull_streamed(&mut client, "ns", &key).await;
            let case = format!("{codec}, chunk {index} deleted");
            assert_refused(&pulled, &original, index, CHUNK, &[Code::NotFound], &case);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zlib_stream_missing_its_last_bytes_is_data_loss() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, CHUNK).await;
    let mut client = daemon.client().await;
    let mut conn = redis.connection();
    let original = sample(4 * CHUNK as usize + 2500, 14);
    push(&mut client, with_codec("ns", "k", "zlib"), original.clone())
        .await
        .unwrap();
    let pushed = manifest(&mut conn, "ns", "k");

    // One byte of the Adler-32 trailer, all four, and the trailer with the
    // end of the deflate data; in a middle chunk and in the last one.
    for index in [1, 4] {
        let start = (index * CHUNK) as usize;
        let raw = &original[start..(start + CHUNK as usize).min(original.len())];
        let stored = stored_chunk(&mut conn, "ns", "k", index);
        for dropped in [1, 4, 5, 16] {
            for forged in [false, true] {
                let damaged = &stored[..stored.len() - dropped];
                replace_chunk(&mut conn, "ns", "k", index, damaged);
                if forged {
                    // A decoder that ignored a missing trailer would give
                    // back the whole raw chunk.
                    let lenient = (dropped <= 4).then_some(raw);
                    match_checksum(&mut conn, "ns", "k", index, &stored, damaged, lenient);
                }
                let pulled = pull_streamed(&mut client, "ns", "k").await;
                let case = format!(
                    "chunk {index} without its last {dropped} bytes, checksum forged: {forged}"
                );
                assert_refused(&pulled, &original, index, CHUNK, &[Code::DataLoss], &case);
                restore(&mut conn, "ns", "k", index, &stored, &pushed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_whose_sizes_disagree_with_its_chunks_is_data_loss() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, CHUNK).await;
    let mut client = daemon.client().await;
    let mut conn = redis.connection();
    // Five whole chunks and a last one of 5000 bytes.
    let original = sample(5 * CHUNK as usize + 5000, 15);
    let raw = original.len() as u64;
    let last = 5;

    // (what, forged chunk size, forged raw size, first chunk that cannot
    // match, or None when the manifest itself must be refused)
    let cases: Vec<(&str, u64, u64, Option<u64>)> = vec![
        ("raw size needing one more chunk", CHUNK, raw + CHUNK, None),
        ("raw size needing one chunk fewer", CHUNK, raw - 5000, None),
        (
            "last chunk expected 1000 bytes shorter",
            CHUNK,
            raw - 1000,
            Some(last),
        ),
        (
            "last chunk expected 1000 bytes longer",
            CHUNK,
            raw + 1000,
            Some(last),
        ),
        (
            "last chunk expected one byte shorter",
            CHUNK,
            raw - 1,
            Some(last),
        ),
        (
            "last chunk expected one byte longer",
            CHUNK,
            raw + 1,
            Some(last),
        ),
        (
            "chunks expected twice as long",
            2 * CHUNK,
            5 * 2 * CHUNK + 5000,
            Some(0),
        ),
        (
            "chunks expected half as long",
            CHUNK / 2,
            5 * CHUNK / 2 + 5000,
            Some(0),
        ),
    ];
    for codec in ["zstd", "zlib", "none"] {
        push(
            &mut client,
            with_codec("ns", codec, codec),
            original.clone(),
        )
        .await
        .unwrap();
        let pushed = manifest(&mut conn, "ns", codec);
        for (what, chunk_size, raw_size, first_bad) in &cases {
            forge(&mut conn, "ns", codec, |m| {
                m.chunk_size = *chunk_size;
                m.raw_size = *raw_size;
            });
            let pulled = pull_streamed(&mut client, "ns", codec).await;
            let case = format!("{codec}: {what}");
            assert_refused(
                &pulled,
                &original,
                first_bad.unwrap_or(0),
                CHUNK,
                &[Code::DataLoss],
                &case,
            );
            if first_bad.is_none() {
                assert!(
                    pulled.header.is_none(),
                    "{case}: a refused manifest sends no header"
                );
            }
            let _: () = redis::cmd("HSET")
                .arg(keys::manifest("ns", codec))
                .arg("manifest")
                .arg(pushed.encode_to_vec())
                .query(&mut conn)
                .unwrap();
        }
        // The chunk count alone.
        forge(&mut conn, "ns", codec, |m| m.chunk_count += 1);
        let pulled = pull_streamed(&mut client, "ns", codec).await;
        assert_refused(
            &pulled,
            &original,
            0,
            CHUNK,
            &[Code::DataLoss],
            &format!("{codec}: chunk count"),
        );
    }
}

/// `auto` is settled before anything is stored, so a manifest naming it
/// was not written by a daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_naming_auto_or_an_unknown_codec_is_data_loss() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, CHUNK).await;
    let mut client = daemon.client().await;
    let mut conn = redis.connection();
    push(
        &mut client,
        with_codec("ns", "k", "zstd"),
        sample(3 * CHUNK as usize, 4),
    )
    .await
    .unwrap();

    forge(&mut conn, "ns", "k", |m| m.codec = "auto".into());
    let pulled = pull_streamed(&mut client, "ns", "k").await;
    let status = pulled.end.expect_err("a manifest naming auto is refused");
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert!(status.message().contains("auto"), "{status:?}");
    assert!(pulled.data.is_empty(), "no byte is sent");

    // A name no daemon writes is refused by name, without advice meant
    // for configuration.
    forge(&mut conn, "ns", "k", |m| m.codec = "lz4".into());
    let status = pull_streamed(&mut client, "ns", "k")
        .await
        .end
        .expect_err("an unknown codec is refused");
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert!(status.message().contains("\"lz4\""), "{status:?}");
    assert!(!status.message().contains("use auto"), "{status:?}");
}

// ---------------------------------------------------------------------
// Decompression bombs.

/// This process's resident memory and its peak, in bytes. The daemon runs
/// in this process, so what it allocates shows here.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib << 10)
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak to the current resident size where the kernel allows
/// it; answers the baseline to measure growth from.
fn memory_baseline() -> u64 {
    // Where the kernel refuses, the old peak is the baseline: growth past
    // it still shows.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    memory().1
}

const MEMORY_ALLOWANCE: u64 = 256 << 20;

/// A zstd frame of 18 bytes whose header declares `content_size` bytes of
/// content, with one RLE block of 100,000 zeros.
fn frame_claiming(content_size: u64) -> Vec<u8> {
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD];
    // Frame header descriptor: Frame_Content_Size_flag 3 (eight bytes),
    // not single-segment, no checksum, no dictionary.
    frame.push(0b1100_0000);
    // Window descriptor: exponent 10, mantissa 0, a window of 1 MiB.
    frame.push(10 << 3);
    frame.extend_from_slice(&content_size.to_le_bytes());
    // Block header: last block, type RLE (1), size 100,000; then its byte.
    let block: u32 = 1 | (1 << 1) | (100_000 << 3);
    frame.extend_from_slice(&block.to_le_bytes()[..3]);
    frame.push(0);
    frame
}

/// Stores `bomb` as chunk 1 of a pushed model, with its recorded checksum
/// made to match so that the decoder is reached, pulls it, and checks that
/// the pull is DATA_LOSS without this process's memory growing by more
/// than the allowance.
async fn pull_with_bomb(bomb: &[u8], case: &str) {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, CHUNK).await;
    let mut client = daemon.client().await;
    let mut conn = redis.connection();
    let original = sample(4 * CHUNK as usize, 21);
    push(&mut client, with_codec("ns", "k", "zstd"), original.clone())
        .await
        .unwrap();
    let stored = stored_chunk(&mut conn, "ns", "k", 1);
    replace_chunk(&mut conn, "ns", "k", 1, bomb);
    match_checksum(&mut conn, "ns", "k", 1, &stored, bomb, None);

    let baseline = memory_baseline();
    let pulled = pull_streamed(&mut client, "ns", "k").await;
    let (_, peak) = memory();
    assert_refused(&pulled, &original, 1, CHUNK, &[Code::DataLoss], case);
    let grown = peak.saturating_sub(baseline);
    assert!(
        grown < MEMORY_ALLOWANCE,
        "{case}: peak memory grew by {} MiB while pulling",
        grown >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_claiming_a_terabyte_is_data_loss_without_allocating_it() {
    let _one_at_a_time = MEMORY.lock().await;
    let bomb = frame_claiming(1 << 40);
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&bomb)
            .ok()
            .flatten(),
        Some(1 << 40),
        "the forged header declares a terabyte"
    );
    pull_with_bomb(&bomb, "a frame claiming 1 TiB").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_of_zeros_behind_a_small_manifest_is_data_loss_without_inflating_it() {
    use std::io::Read;

    let _one_at_a_time = MEMORY.lock().await;
    // Streamed, so the frame declares no content size and only decoding
    // tells how much it holds; and nothing here holds the gigabyte.
    let bomb = tokio::task::spawn_blocking(|| {
        let zeros = std::io::repeat(0).take(1 << 30);
        let mut encoder = zstd::stream::read::Encoder::new(zeros, 1).unwrap();
        let mut bomb = Vec::new();
        encoder.read_to_end(&mut bomb).unwrap();
        bomb
    })
    .await
    .unwrap();
    assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());
    // It does inflate: its first 64 MiB decode without an error.
    let inflated = std::io::copy(
        &mut zstd::stream::read::Decoder::new(&bomb[..])
            .unwrap()
            .take(64 << 20),
        &mut std::io::sink(),
    )
    .unwrap();
    assert_eq!(inflated, 64 << 20);

    pull_with_bomb(&bomb, "a gigabyte of zeros").await;
}

// ---------------------------------------------------------------------
// Size limits.

fn data(len: usize, seed: u64) -> api::PushRequest {
    api::PushRequest {
        message: Some(api::push_request::Message::Data(sample(len, seed))),
    }
}

fn head(header: api::PushHeader) -> api::PushRequest {
    api::PushRequest {
        message: Some(api::push_request::Message::Header(header)),
    }
}

/// Awaits `call`, failing the test if it takes longer than `NO_HANG`.
async fn timeout<F: std::future::Future>(
    call: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(NO_HANG, call).await
}

/// A push that must end, one way or the other, before `NO_HANG`.
async fn bounded_push(
    client: &mut Client,
    messages: Vec<api::PushRequest>,
) -> Result<api::PushResponse, Status> {
    tokio::time::timeout(NO_HANG, push_messages(client, messages))
        .await
        .expect("the push neither ended nor failed")
}

fn assert_too_large(result: Result<api::PushResponse, Status>, case: &str) {
    let status = result.expect_err(case);
    assert!(
        matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{case}: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_messages_at_the_limit_pass_and_one_byte_over_is_refused() {
    let _one_at_a_time = MEMORY.lock().await;
    let redis = RedisServer::start();
    for limit in [1usize << 20, 4 << 20] {
        let mut config = support::config(&redis.url());
        config.max_message_bytes = limit;
        let daemon = Daemon::start_with(config).await;
        let mut client = daemon.client().await;
        let key = format!("limit-{limit}");
        let case = |what: &str| format!("limit {limit}: {what}");

        let at = bounded_push(
            &mut client,
            vec![head(header("ns", &key)), data(limit, 1), data(limit, 2)],
        )
        .await;
        assert!(
            at.is_ok(),
            "{}: {at:?}",
            case("two messages of exactly the limit")
        );
        let mut expected = sample(limit, 1).to_vec();
        expected.extend_from_slice(&sample(limit, 2));

        assert_too_large(
            bounded_push(
                &mut client,
                vec![head(header("ns", &key)), data(limit + 1, 3)],
            )
            .await,
            &case("one byte over"),
        );
        assert_too_large(
            bounded_push(
                &mut client,
                vec![head(header("ns", &key)), data(limit, 4), data(limit + 1, 5)],
            )
            .await,
            &case("one byte over after a message at the limit"),
        );

        let pulled = pull_streamed(&mut client, "ns", &key).await;
        assert!(pulled.end.is_ok(), "{}: {:?}", case("pull"), pulled.end);
        assert!(
            pulled.data == expected,
            "{}",
            case("the version at the limit is the one stored")
        );
        assert_eq!(
            pulled.header.unwrap().version,
            1,
            "{}",
            case("refused pushes commit nothing")
        );
        daemon.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_message_over_the_transport_limit_is_refused_as_too_large() {
    let _one_at_a_time = MEMORY.lock().await;
    let redis = RedisServer::start();
    for limit in [1usize << 20, 4 << 20] {
        let mut config = support::config(&redis.url());
        config.max_message_bytes = limit;
        let daemon = Daemon::start_with(config).await;
        let mut client = daemon.client().await;
        // Over what the transport takes at all: a data message and the
        // largest header's metadata together, and one byte more.
        let transport = limit + MAX_METADATA_BYTES + (64 << 10);
        for messages in [
            vec![head(header("ns", "k")), data(transport + 1, 6)],
            vec![
                head(header("ns", "k")),
                data(limit, 7),
                data(transport + 1, 8),
            ],
        ] {
            assert_too_large(
                bounded_push(&mut client, messages).await,
                &format!("limit {limit}: a data message over the transport limit"),
            );
        }
        let pulled = pull_streamed(&mut client, "ns", "k").await;
        assert_eq!(
            pulled.end.unwrap_err().code(),
            Code::NotFound,
            "nothing was stored"
        );
        daemon.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_data_messages_never_exceed_the_configured_limit() {
    let _one_at_a_time = MEMORY.lock().await;
    let redis = RedisServer::start();
    // Chunks larger than, equal to and smaller than the limit, and of
    // sizes that do not divide by it.
    // Each case in a namespace of its own: a namespace keeps the chunk
    // size it was first used with.
    for (limit, chunk_size) in [
        (1usize << 20, 4u64 << 20),
        (1 << 20, (1 << 20) + 1),
        (4 << 20, 8 << 20),
        (4 << 20, 4 << 20),
        (4 << 20, (3 << 20) + 7),
    ] {
        let mut config = support::config(&redis.url());
        config.max_message_bytes = limit;
        config.storage.chunk_size = chunk_size;
        let daemon = Daemon::start_with(config).await;
        let mut client = daemon.client().await;
        let original = sample(2 * chunk_size as usize + 12345, 7);
        let namespace = format!("ns-{limit}-{chunk_size}");
        push(&mut client, header(&namespace, "k"), original.clone())
            .await
            .unwrap();
        let pulled = pull_streamed(&mut client, &namespace, "k").await;
        assert!(pulled.end.is_ok(), "{:?}", pulled.end);
        assert!(pulled.data == original, "limit {limit}, chunk {chunk_size}");
        assert!(
            pulled.largest <= limit,
            "limit {limit}, chunk {chunk_size}: a data message of {} bytes",
            pulled.largest
        );
        daemon.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_of_one_mebibyte_passes_and_one_byte_more_is_refused() {
    let _one_at_a_time = MEMORY.lock().await;
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    let with_metadata = |total: usize| {
        let mut h = header("ns", "meta");
        // Keys and values count together.
        h.metadata
            .insert("a".into(), Bytes::from(vec![b'x'; total / 2 - 1]));
        h.metadata
            .insert("bb".into(), Bytes::from(vec![b'y'; total - total / 2 - 2]));
        h
    };
    let at = with_metadata(MAX_METADATA_BYTES);
    let result = bounded_push(&mut client, vec![head(at.clone()), data(1000, 1)]).await;
    assert!(result.is_ok(), "metadata of exactly the limit: {result:?}");
    let pulled = pull_streamed(&mut client, "ns", "meta").await;
    assert!(pulled.end.is_ok(), "{:?}", pulled.end);
    assert_eq!(
        pulled.header.unwrap().metadata,
        at.metadata,
        "metadata comes back byte-exact"
    );

    assert_too_large(
        bounded_push(
            &mut client,
            vec![head(with_metadata(MAX_METADATA_BYTES + 1)), data(1000, 2)],
        )
        .await,
        "metadata one byte over",
    );
    assert_too_large(
        bounded_push(
            &mut client,
            vec![head(with_metadata(3 * MAX_METADATA_BYTES)), data(1000, 3)],
        )
        .await,
        "metadata over the transport limit",
    );
    let pulled = pull_streamed(&mut client, "ns", "meta").await;
    assert_eq!(
        pulled.header.unwrap().version,
        1,
        "refused pushes commit nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_of_1024_bytes_pass_and_1025_are_invalid_for_every_call() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    // Plain letters, and characters the key layout escapes to three bytes.
    let fits = [
        "n".repeat(MAX_NAME_BYTES),
        "{:}*".repeat(MAX_NAME_BYTES / 4),
    ];
    let long = [
        "n".repeat(MAX_NAME_BYTES + 1),
        format!("{}%", "{:}*".repeat(MAX_NAME_BYTES / 4)),
    ];

    for name in &fits {
        let model = sample(3000, 1);
        push(&mut client, header(name, name), model.clone())
            .await
            .unwrap();
        let pulled = pull_streamed(&mut client, name, name).await;
        assert!(
            pulled.end.is_ok() && pulled.data == model[..],
            "{:?}",
            pulled.end
        );
        let listed = client
            .list(api::ListRequest {
                namespace: name.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .message()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(listed.header.unwrap().key, *name);
        client
            .namespace(api::NamespaceRequest {
                namespace: name.clone(),
            })
            .await
            .unwrap();
        let exists = client
            .exists(api::ExistsRequest {
                namespace: name.clone(),
                key: name.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(exists.exists);
        let deleted = client
            .delete(api::DeleteRequest {
                namespace: name.clone(),
                key: name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(deleted.deleted);
    }

    let ok = fits[0].clone();
    for name in &long {
        for (namespace, key, field) in [(name, &ok, "namespace"), (&ok, name, "key")] {
            let (ns, k) = (namespace.clone(), key.clone());
            let mut results: Vec<(&str, Status)> = Vec::new();
            let pushed = timeout(push(&mut client, header(&ns, &k), sample(10, 1)))
                .await
                .unwrap();
            results.push(("push", pushed.unwrap_err()));
            let pulled = pull_streamed(&mut client, &ns, &k).await;
            results.push(("pull", pulled.end.unwrap_err()));
            let exists = client.exists(api::ExistsRequest {
                namespace: ns.clone(),
                key: k.clone(),
                ..Default::default()
            });
            results.push(("exists", timeout(exists).await.unwrap().unwrap_err()));
            let delete = client.delete(api::DeleteRequest {
                namespace: ns.clone(),
                key: k.clone(),
            });
            results.push(("delete", timeout(delete).await.unwrap().unwrap_err()));
            if field == "namespace" {
                let list = client.list(api::ListRequest {
                    namespace: ns.clone(),
                });
                let list = match timeout(list).await.unwrap() {
                    Err(status) => status,
                    Ok(stream) => stream.into_inner().message().await.unwrap_err(),
                };
                results.push(("list", list));
                let namespace = client.namespace(api::NamespaceRequest {
                    namespace: ns.clone(),
                });
                results.push(("namespace", timeout(namespace).await.unwrap().unwrap_err()));
            }
            for (call, status) in results {
                assert_eq!(
                    status.code(),
                    Code::InvalidArgument,
                    "{call} with a {field} of {} bytes",
                    name.len()
                );
                assert!(
                    status.message().contains(field),
                    "{call}: {}",
                    status.message()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_size_the_data_does_not_match_is_invalid_argument_and_stores_nothing() {
    let redis = RedisServer::start();
    let daemon = daemon(&redis, CHUNK).await;
    let mut client = daemon.client().await;
    let mut conn = redis.connection();
    let model = sample(3 * CHUNK as usize + 10, 31);
    let len = model.len() as u64;

    for declared in [0, 1, len - 1, len + 1, len + CHUNK, u64::MAX] {
        let mut h = header("ns", "declared");
        h.raw_size = Some(declared);
        let result = tokio::time::timeout(NO_HANG, push(&mut client, h, model.clone()))
            .await
            .expect("the push neither ended nor failed");
        let status = result.expect_err(&format!("declared {declared}, sent {len}"));
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "declared {declared}: {status:?}"
        );
    }
    let pulled = pull_streamed(&mut client, "ns", "declared").await;
    assert_eq!(pulled.end.unwrap_err().code(), Code::NotFound);

    // Chunks written before the mismatch showed are removed, or expire.
    let leftovers: Vec<String> = redis::cmd("KEYS")
        .arg("modelsync:ns:declared:chunk:*")
        .query(&mut conn)
        .unwrap();
    for name in leftovers {
        let ttl: i64 = redis::cmd("TTL").arg(&name).query(&mut conn).unwrap();
        assert!(ttl > 0, "{name} stays for ever (TTL {ttl})");
    }

    let mut h = header("ns", "declared");
    h.raw_size = Some(len);
    push(&mut client, h, model.clone()).await.unwrap();
    let pulled = pull_streamed(&mut client, "ns", "declared").await;
    assert!(pulled.data == model[..]);
    assert_eq!(pulled.header.unwrap().version, 1);
}
