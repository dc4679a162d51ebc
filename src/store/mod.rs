//! The storage layout on Redis: how a model is cut into chunks, committed
//! under a manifest, read back and removed. This module knows Redis and the
//! codecs, and nothing of gRPC.
//!
//! A push writes every chunk under keys of its own (see [`keys`]), then
//! commits the manifest with one Lua script that checks every chunk is
//! still there, raises the version and sets the TTL in one atomic step. A
//! reader reads the manifest once and then only chunks it names, so it sees
//! one whole version or an error, never a mix.

mod aggregate;
mod agreement;
mod catalog;
#[cfg(test)]
mod decoding_properties;
mod feed;
pub mod keys;
pub mod legacy;
mod lockstep;
mod manifest;
mod reader;
mod watch;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

pub use aggregate::{Aggregation, AggregationRequest, MAX_INPUTS};
pub use feed::Notice;
pub use manifest::MAX_CHUNK_SIZE;
pub use reader::Snapshot;
pub use watch::{Newer, MAX_WAIT};

use crate::codec::Codec;
use crate::config::{Layout, NamespaceSettings, StorageConfig};
use crate::error::{Error, Result};
use crate::redis::Redis;

/// The longest TTL a push may ask for: a year.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Reads and writes models in Redis; cheap to clone.
#[derive(Clone)]
pub struct Store {
    redis: Redis,
    settings: Arc<StorageConfig>,
    updater: String,
    feed: feed::Feed,
    /// Namespaces whose settings have been agreed through Redis.
    agreed: Arc<std::sync::Mutex<HashMap<String, NamespaceSettings>>>,
}

/// A push as the store sees it.
#[derive(Debug, Default)]
pub struct NewVersion {
    pub namespace: String,
    pub key: String,
    pub metadata: HashMap<String, Bytes>,
    pub ttl: Option<Duration>,
    /// The size the client declared, checked against what arrives.
    pub raw_size: Option<u64>,
    pub codec: Option<Codec>,
    /// Commit only if the key's current version is this one (0: absent).
    pub expected_version: Option<u64>,
    /// The element width a shuffling codec shuffles by.
    pub element_width: Option<u8>,
}

/// What a successful push stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub version: u64,
    pub raw_size: u64,
    pub stored_size: u64,
    pub chunk_count: u64,
    /// The codec's name, such as "zstd".
    pub codec: String,
}

/// What is known of one committed version of a model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub namespace: String,
    pub key: String,
    pub version: u64,
    pub updater: String,
    pub updated_at_ms: i64,
    pub raw_size: u64,
    pub metadata: HashMap<String, Bytes>,
    pub codec: String,
    pub stored_size: u64,
    pub chunk_count: u64,
    /// Milliseconds until it expires; 0 when it never does.
    pub ttl_ms: i64,
}

impl Store {
    /// A store that signs its pushes with `updater`, the node's address.
    pub fn new(redis: Redis, settings: StorageConfig, updater: String) -> Self {
        Store {
            feed: feed::Feed::new(redis.clone()),
            redis,
            settings: Arc::new(settings),
            updater,
            agreed: Arc::default(),
        }
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    pub fn settings(&self) -> &StorageConfig {
        &self.settings
    }

    /// How a namespace is stored.
    pub fn namespace(&self, name: &str) -> NamespaceSettings {
        self.settings.namespace(name)
    }

    /// Stores `data` as the next version of a model and commits it.
    pub async fn push<S>(&self, request: NewVersion, data: S) -> Result<Committed>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        let namespace = self.agreed(&request.namespace).await?;
        let ttl = request.ttl.unwrap_or(namespace.ttl);
        check_ttl(ttl)?;
        let codec = request.codec.unwrap_or(namespace.codec);
        match namespace.layout {
            Layout::Chunked => {
                self.push_chunked(request, data, codec, ttl, namespace.chunk_size)
                    .await
            }
            Layout::Legacy => self.push_legacy(request, data, codec, ttl).await,
        }
    }

    /// Removes a model; answers whether there was one.
    pub async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        match self.agreed(namespace).await?.layout {
            Layout::Chunked => self.delete_chunked(namespace, key).await,
            Layout::Legacy => self.delete_legacy(namespace, key).await,
        }
    }

    fn describe(namespace: &str, key: &str) -> String {
        format!("key {key:?} in namespace {namespace:?}")
    }
}

/// The metadata entry in which clients name a numpy dtype, such as "<f4".
pub const DTYPE_METADATA: &str = "modelsync.dtype";

/// The element width a push names: its own, else its dtype's item size.
fn element_width(request: &NewVersion) -> Option<u8> {
    let from_dtype = || {
        let dtype = std::str::from_utf8(request.metadata.get(DTYPE_METADATA)?).ok()?;
        let kind = dtype.trim_start_matches(['<', '>', '=', '|']);
        let (letter, digits) = kind.split_at(kind.find(|c: char| c.is_ascii_digit())?);
        let size: u8 = digits.parse().ok()?;
        match letter {
            "f" | "i" | "u" => Some(size),
            // Complex numbers are pairs of floats.
            "c" => Some(size / 2),
            _ => None,
        }
    };
    request
        .element_width
        .or_else(from_dtype)
        .filter(|w| (1..=64).contains(w))
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_millis() as i64
}

/// Raises an error for a TTL outside what Redis and this daemon accept.
fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
        return Err(Error::invalid(format!(
            "ttl_seconds must be between 1 and {}",
            MAX_TTL.as_secs()
        )));
    }
    Ok(())
}
