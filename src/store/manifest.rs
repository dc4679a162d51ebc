//! The manifest of one committed version: what a reader needs to fetch and
//! check every chunk. Decoding checks that its numbers agree with each
//! other, so a damaged or forged manifest is refused before any chunk is
//! read and never sizes an allocation.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;
use xxhash_rust::xxh3::xxh3_64;

use crate::codec::Codec;
use crate::error::Error;

pub use crate::proto::storage::Manifest;

/// The manifest layout this daemon writes and reads.
pub const FORMAT: u32 = 1;

/// No chunk is ever larger, whatever a manifest says: this bounds what one
/// chunk can make the reader allocate.
pub const MAX_CHUNK_SIZE: u64 = 512 << 20;

/// A decoded manifest whose fields have been checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub manifest: Manifest,
    pub codec: Codec,
}

/// What the writer knows once every chunk is stored.
pub struct Draft {
    pub blob: String,
    pub codec: Codec,
    pub chunk_size: u64,
    pub raw_size: u64,
    pub stored_size: u64,
    pub chunk_checksums: Vec<u64>,
    pub updater: String,
    pub updated_at_ms: i64,
    pub metadata: HashMap<String, Bytes>,
    /// The stored chunk of a model kept inline; empty otherwise.
    pub inline: Vec<u8>,
}

impl Draft {
    pub fn encode(self) -> Vec<u8> {
        let chunk_checksums: Vec<u8> = self
            .chunk_checksums
            .iter()
            .flat_map(|c| c.to_le_bytes())
            .collect();
        Manifest {
            format: FORMAT,
            blob: self.blob,
            codec: self.codec.name().to_string(),
            chunk_size: self.chunk_size,
            chunk_count: self.chunk_checksums.len() as u64,
            raw_size: self.raw_size,
            stored_size: self.stored_size,
            checksum: xxh3_64(&chunk_checksums),
            chunk_checksums: chunk_checksums.into(),
            updater: self.updater,
            updated_at_ms: self.updated_at_ms,
            metadata: self.metadata,
            element_width: self.codec.width() as u32,
            inline: self.inline.into(),
        }
        .encode_to_vec()
    }
}

impl Checked {
    /// Decodes and checks a stored manifest.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let manifest =
            Manifest::decode(bytes).map_err(|e| damaged(format!("it does not decode: {e}")))?;
        if manifest.format != FORMAT {
            return Err(damaged(format!(
                "its format {} is not {FORMAT}; a newer daemon may have written it",
                manifest.format
            )));
        }
        // The parser's advice on what to configure means nothing here.
        let codec: Codec = manifest.codec.parse().map_err(|_| {
            damaged(format!(
                "it names the codec {:?}, which this daemon does not know",
                manifest.codec
            ))
        })?;
        if matches!(codec, Codec::Auto { .. }) {
            return Err(damaged(
                "it names the codec auto, which a push settles before it stores anything".into(),
            ));
        }
        if codec.width() > 0 && !(1..=64).contains(&manifest.element_width) {
            return Err(damaged(format!(
                "its element width {} is outside 1..=64",
                manifest.element_width
            )));
        }
        let codec = codec.with_width(manifest.element_width as u8);
        if manifest.chunk_size == 0 || manifest.chunk_size > MAX_CHUNK_SIZE {
            return Err(damaged(format!(
                "its chunk size {} is outside 1..={MAX_CHUNK_SIZE}",
                manifest.chunk_size
            )));
        }
        let expected_chunks = manifest.raw_size.div_ceil(manifest.chunk_size);
        if manifest.chunk_count != expected_chunks {
            return Err(damaged(format!(
                "it records {} chunks where {} bytes in chunks of {} need {expected_chunks}",
                manifest.chunk_count, manifest.raw_size, manifest.chunk_size
            )));
        }
        if manifest.chunk_count.checked_mul(8) != Some(manifest.chunk_checksums.len() as u64) {
            return Err(damaged(
                "its chunk checksums do not match its chunk count".into(),
            ));
        }
        if xxh3_64(&manifest.chunk_checksums) != manifest.checksum {
            return Err(damaged(
                "its checksum does not match its chunk checksums".into(),
            ));
        }
        if !manifest.inline.is_empty() && manifest.chunk_count != 1 {
            return Err(damaged(
                "it keeps a chunk inline but records several".into(),
            ));
        }
        Ok(Checked { manifest, codec })
    }

    /// The raw length of chunk `index`.
    pub fn chunk_len(&self, index: u64) -> usize {
        let m = &self.manifest;
        let start = index * m.chunk_size;
        (m.raw_size - start).min(m.chunk_size) as usize
    }

    /// The recorded checksum of stored chunk `index`.
    pub fn chunk_checksum(&self, index: u64) -> u64 {
        let at = index as usize * 8;
        let bytes = &self.manifest.chunk_checksums[at..at + 8];
        u64::from_le_bytes(bytes.try_into().expect("eight bytes"))
    }
}

fn damaged(reason: String) -> Error {
    Error::data_loss(format!("the stored manifest is damaged: {reason}"))
}
