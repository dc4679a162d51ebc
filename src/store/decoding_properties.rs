//! Property tests for every decoder of stored data: the manifest, the
//! chunk codecs and the legacy content. Whatever bytes Redis hands back,
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
