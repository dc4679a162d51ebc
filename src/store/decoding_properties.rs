//! Property tests for every decoder of stored data: the manifest, the
//! chunk framing (a stored chunk against its manifest's size and
//! checksum, inline or not), each codec (`none`, `zstd`, `zlib`,
//! `shuffle-zstd` at every element width), and the legacy hash's content
//! and time. Whatever bytes Redis hands back,
//! random or a valid encoding with bytes flipped, cut or appended, a
//! decoder returns an error or a value that keeps its invariants, never
//! panics, and never produces more than it was told to expect.
//!
//! The inputs come from a seeded generator, so a failure reproduces; the
//! seed and the number of cases can be raised through the environment
//! (`MODELSYNC_PROPERTY_SEED`, `MODELSYNC_PROPERTY_CASES`) for longer runs.

use bytes::Bytes;
use rand::{Rng, SeedableRng};

use super::manifest::{Checked, Draft};
use crate::codec::Codec;
use crate::error::Error;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(setting("MODELSYNC_PROPERTY_SEED", 20261204))
}

fn cases() -> u64 {
    setting("MODELSYNC_PROPERTY_CASES", 20000)
}

/// A valid encoding damaged in one of the ways storage damages things.
fn damage(rng: &mut impl Rng, valid: &[u8]) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    match rng.random_range(0..5) {
        0 if !bytes.is_empty() => {
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << rng.random_range(0..8);
        }
        1 => bytes.truncate(rng.random_range(0..=bytes.len())),
        2 => bytes.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        3 if bytes.len() > 1 => {
            let at = rng.random_range(0..bytes.len());
            bytes.remove(at);
        }
        _ => {
            let mut noise = vec![0u8; rng.random_range(0..512)];
            rng.fill_bytes(&mut noise);
            bytes = noise;
        }
    }
    bytes
}

#[test]
fn codecs_never_panic_nor_exceed_the_expected_size() {
    let mut rng = rng();
    let codecs = ["none", "zstd", "zlib", "shuffle-zstd"];
    for case in 0..cases() {
        let codec: Codec = codecs[case as usize % codecs.len()].parse().unwrap();
        let len = rng.random_range(0..4096);
        let raw: Vec<u8> = (0..len)
            .map(|i| (i % 7) as u8 ^ rng.random::<u8>() & 3)
            .collect();
        let mut stored = Vec::new();
        codec
            .encode(&[Bytes::from(raw.clone())], &mut stored)
            .unwrap();

        let input = damage(&mut rng, &stored);
        let expected = if rng.random_bool(0.5) {
            raw.len()
        } else {
            rng.random_range(0..8192)
        };
        if let Ok(out) = codec.decode(Bytes::from(input), expected) {
            assert_eq!(out.len(), expected, "case {case}: {codec}");
        }
    }
}

#[test]
fn manifests_never_panic_and_accepted_ones_are_consistent() {
    let mut rng = rng();
    for case in 0..cases() {
        let chunk_size = rng.random_range(1..=64u64) * 4096;
        let raw_size = rng.random_range(0..=10 * chunk_size);
        let chunks = raw_size.div_ceil(chunk_size) as usize;
        let valid = Draft {
            blob: "0123456789abcdef".into(),
            codec: "zstd".parse().unwrap(),
            chunk_size,
            raw_size,
            stored_size: raw_size / 2,
            chunk_checksums: (0..chunks).map(|_| rng.random()).collect(),
            updater: "node".into(),
            updated_at_ms: 1,
            metadata: Default::default(),
            inline: Vec::new(),
        }
        .encode();
        Checked::decode(&valid).expect("a fresh manifest decodes");

        let Ok(checked) = Checked::decode(&damage(&mut rng, &valid)) else {
            continue;
        };
        let m = &checked.manifest;
        let total: u64 = (0..m.chunk_count)
            .map(|i| checked.chunk_len(i) as u64)
            .sum();
        assert_eq!(total, m.raw_size, "case {case}");
        assert!(m.chunk_size <= super::MAX_CHUNK_SIZE, "case {case}");
        (0..m.chunk_count).for_each(|i| {
            let _ = checked.chunk_checksum(i);
        });
    }
}

#[test]
fn legacy_content_never_panics() {
    let mut rng = rng();
    for _ in 0..cases() {
        let raw: Vec<u8> = (0..rng.random_range(0..2048))
            .map(|_| rng.random::<u8>() & 7)
            .collect();
        let mut stored = Vec::new();
        let codec = Codec::Zlib { level: 6 };
        codec.encode(&[Bytes::from(raw)], &mut stored).unwrap();
        let _ = super::legacy::inflate(&damage(&mut rng, &stored));
    }
}

#[test]
fn shuffle_zstd_round_trips_at_every_element_width_and_survives_damage() {
    let mut rng = rng();
    for case in 0..cases() / 4 {
        let width = rng.random_range(1..=64u8);
        let codec = Codec::ShuffleZstd { level: 1, width };
        // Lengths that are and are not whole elements, shorter than one too.
        let len = rng.random_range(0..(width as usize * 40));
        let raw: Vec<u8> = (0..len)
            .map(|i| (i % 5) as u8 ^ rng.random::<u8>() & 1)
            .collect();
        let mut stored = Vec::new();
        codec
            .encode(&[Bytes::from(raw.clone())], &mut stored)
            .unwrap();
        let back = codec.decode(Bytes::from(stored.clone()), len).unwrap();
        assert_eq!(back.as_ref(), raw.as_slice(), "case {case}: width {width}");

        let input = damage(&mut rng, &stored);
        if let Ok(out) = codec.decode(Bytes::from(input), len) {
            assert_eq!(out.len(), len, "case {case}: width {width}");
        }
    }
}

/// A model cut into chunks with `codec`, and the manifest that commits it.
fn chunked_model(rng: &mut impl Rng, codec: Codec) -> (Vec<u8>, Vec<Vec<u8>>, Checked) {
    let chunk_size = rng.random_range(1..=4u64) * 4096;
    let raw: Vec<u8> = (0..rng.random_range(0..=3 * chunk_size))
        .map(|i| (i % 11) as u8 ^ rng.random::<u8>() & 3)
        .collect();
    let mut stored = Vec::new();
    let mut checksums = Vec::new();
    for piece in raw.chunks(chunk_size as usize) {
        let mut out = Vec::new();
        codec
            .encode(&[Bytes::copy_from_slice(piece)], &mut out)
            .unwrap();
        stored.push(out);
        checksums.push(xxhash_rust::xxh3::xxh3_64(piece));
    }
    let inline = if stored.len() == 1 && rng.random_bool(0.5) {
        stored[0].clone()
    } else {
        Vec::new()
    };
    let manifest = Draft {
        blob: "0123456789abcdef".into(),
        codec,
        chunk_size,
        raw_size: raw.len() as u64,
        stored_size: stored.iter().map(|s| s.len() as u64).sum(),
        chunk_checksums: checksums,
        updater: "node".into(),
        updated_at_ms: 1,
        metadata: Default::default(),
        inline,
    }
    .encode();
    let checked = Checked::decode(&manifest).expect("a fresh manifest decodes");
    (raw, stored, checked)
}

#[test]
fn a_stored_chunk_decodes_to_exactly_its_recorded_bytes_or_to_data_loss() {
    let mut rng = rng();
    let codecs = ["none", "zstd", "zlib", "shuffle-zstd"];
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..cases() / 4 {
        let mut codec: Codec = codecs[case as usize % codecs.len()].parse().unwrap();
        if codec.width() > 0 {
            codec = codec.with_width(rng.random_range(1..=64));
        }
        let (raw, stored, checked) = chunked_model(&mut rng, codec);
        if stored.is_empty() {
            continue;
        }
        let info = super::reader::model_info("ns", "k", 1, &checked, 0);
        let index = rng.random_range(0..stored.len());
        // Intact, damaged, or another chunk's bytes in its place.
        let input = match rng.random_range(0..4) {
            0 => stored[index].clone(),
            1 => stored[rng.random_range(0..stored.len())].clone(),
            _ => damage(&mut rng, &stored[index]),
        };
        let size = checked.manifest.chunk_size as usize;
        let expected = &raw[index * size..((index + 1) * size).min(raw.len())];
        match super::reader::decode_chunk(&checked, &info, index as u64, Bytes::from(input)) {
            Ok(out) => {
                assert_eq!(out.as_ref(), expected, "case {case}: {codec}");
                accepted += 1;
            }
            Err(Error::DataLoss(_)) => refused += 1,
            Err(other) => panic!("case {case}: {codec}: not DATA_LOSS: {other}"),
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn a_damaged_manifest_with_an_inline_chunk_gives_checked_bytes_or_data_loss() {
    let mut rng = rng();
    let mut reached = 0;
    for case in 0..cases() / 4 {
        let codec: Codec = ["none", "zstd", "zlib", "shuffle-zstd"][case as usize % 4]
            .parse()
            .unwrap();
        let (_, _, checked) = chunked_model(&mut rng, codec);
        let valid = checked.manifest.clone();
        let encoded = prost::Message::encode_to_vec(&valid);
        let Ok(damaged) = Checked::decode(&damage(&mut rng, &encoded)) else {
            continue;
        };
        if damaged.manifest.inline.is_empty() {
            continue;
        }
        let info = super::reader::model_info("ns", "k", 1, &damaged, 0);
        reached += 1;
        let inline = Bytes::from(damaged.manifest.inline.clone());
        match super::reader::decode_chunk(&damaged, &info, 0, inline) {
            Ok(out) => {
                assert_eq!(out.len() as u64, damaged.manifest.raw_size, "case {case}");
                assert_eq!(xxhash_rust::xxh3::xxh3_64(&out), damaged.chunk_checksum(0));
            }
            Err(Error::DataLoss(_)) => {}
            Err(other) => panic!("case {case}: not DATA_LOSS: {other}"),
        }
    }
    assert!(
        reached > 0,
        "no damaged manifest with an inline chunk was accepted"
    );
}

#[test]
fn legacy_update_times_never_panic_and_read_as_milliseconds() {
    let mut rng = rng();
    let samples = [
        "1700000000",
        "1700000000.25",
        " 1.5e9 ",
        "NaN",
        "inf",
        "-1",
        "",
        "x",
    ];
    for text in samples {
        let _ = super::legacy::parse_seconds(Some(text));
    }
    assert_eq!(
        super::legacy::parse_seconds(Some("1700000000.25")),
        1_700_000_000_250
    );
    assert_eq!(super::legacy::parse_seconds(None), 0);
    for _ in 0..cases() {
        let bytes: Vec<u8> = (0..rng.random_range(0..32)).map(|_| rng.random()).collect();
        let _ = super::legacy::parse_seconds(Some(&String::from_utf8_lossy(&bytes)));
        let seconds = rng.random_range(0..4_000_000_000u64);
        let millis = super::legacy::parse_seconds(Some(&seconds.to_string()));
        assert_eq!(millis, seconds as i64 * 1000);
    }
}
