//! The pull path: read the manifest once, then fetch a bounded window of
//! its chunks at a time, check and decode each on the blocking pool, and
//! hand them on in order.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use xxhash_rust::xxh3::xxh3_64;

use super::manifest::Checked;
use super::{keys, legacy, ModelInfo, Store};
use crate::config::Layout;
use crate::error::{Error, Result};
use crate::redis::Redis;

/// One committed version, as read from its manifest (or, in the legacy
/// layout, the whole model).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub info: ModelInfo,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Chunked(Arc<Checked>),
    Legacy(Bytes),
}

impl Store {
    /// What is known of a model's current version; `None` when there is
    /// none.
    pub async fn head(&self, namespace: &str, key: &str) -> Result<Option<ModelInfo>> {
        if self.agreed(namespace).await?.layout == Layout::Legacy {
            legacy::check_key(key)?;
            return self.legacy_header(namespace, key).await;
        }
        Ok(self.read_manifest(namespace, key).await?.map(|s| s.info))
    }

    /// Opens a model's current version for reading, or says there is none.
    pub async fn open(&self, namespace: &str, key: &str) -> Result<Snapshot> {
        let snapshot = if self.agreed(namespace).await?.layout == Layout::Legacy {
            self.read_legacy(namespace, key)
                .await?
                .map(|(info, raw)| Snapshot {
                    info,
                    body: Body::Legacy(raw),
                })
        } else {
            self.read_manifest(namespace, key).await?
        };
        snapshot.ok_or_else(|| {
            Error::NotFound(format!(
                "{} does not exist or has expired",
                Store::describe(namespace, key)
            ))
        })
    }

    pub(super) async fn read_manifest(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Snapshot>> {
        let name = keys::manifest(namespace, key);
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(&name).arg("version").arg("manifest");
        pipe.cmd("PTTL").arg(&name);
        let ((version, manifest), ttl_ms): ((Option<u64>, Option<Vec<u8>>), i64) =
            self.redis.pipeline(&pipe).await?;

        let (Some(version), Some(manifest)) = (version, manifest) else {
            return Ok(None);
        };
        let checked = Checked::decode(&manifest)?;
        let info = model_info(namespace, key, version, &checked, ttl_ms);
        Ok(Some(Snapshot {
            info,
            body: Body::Chunked(Arc::new(checked)),
        }))
    }

    /// The raw bytes of a snapshot, chunk by chunk, each checked against
    /// its checksum before it is handed on.
    pub fn chunks(&self, snapshot: Snapshot) -> Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>> {
        self.chunks_ahead(snapshot, self.settings.window)
    }

    /// The same, fetching at most `window` chunks ahead of the reader.
    pub fn chunks_ahead(
        &self,
        snapshot: Snapshot,
        window: usize,
    ) -> Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>> {
        let checked = match snapshot.body {
            Body::Legacy(raw) => return Box::pin(futures::stream::iter([Ok(raw)])),
            Body::Chunked(checked) => checked,
        };
        let info = snapshot.info;
        if !checked.manifest.inline.is_empty() {
            let stored = checked.manifest.inline.clone();
            return Box::pin(futures::stream::iter([decode_chunk(
                &checked, &info, 0, stored,
            )]));
        }

        let redis = self.redis.clone();
        let fetches = futures::stream::iter(0..info.chunk_count)
            .map(move |index| fetch_chunk(redis.clone(), checked.clone(), info.clone(), index));
        Box::pin(fetches.buffered(window.max(1)))
    }
}

/// Fetches one chunk and decodes it on the blocking pool.
async fn fetch_chunk(
    redis: Redis,
    checked: Arc<Checked>,
    info: ModelInfo,
    index: u64,
) -> Result<Bytes> {
    let name = keys::chunk(&info.namespace, &info.key, &checked.manifest.blob, index);
    let stored: Option<Vec<u8>> = redis.query(redis::cmd("GET").arg(&name)).await?;
    let Some(stored) = stored else {
        return Err(Error::NotFound(format!(
            "version {} of {} expired or was replaced while it was read (chunk {index} is gone); pull again",
            info.version,
            Store::describe(&info.namespace, &info.key)
        )));
    };
    tokio::task::spawn_blocking(move || decode_chunk(&checked, &info, index, stored.into()))
        .await
        .map_err(|e| Error::Internal(format!("decode task: {e}")))?
}

/// Decodes one stored chunk into exactly its recorded size and checks its
/// raw bytes against the recorded checksum.
pub(super) fn decode_chunk(
    checked: &Checked,
    info: &ModelInfo,
    index: u64,
    stored: Bytes,
) -> Result<Bytes> {
    let damaged = |problem: String| {
        Error::data_loss(format!(
            "chunk {index} of version {} of {} {problem}",
            info.version,
            Store::describe(&info.namespace, &info.key)
        ))
    };
    let raw = checked
        .codec
        .decode(stored, checked.chunk_len(index))
        .map_err(|e| damaged(format!("does not decode: {e}")))?;
    if xxh3_64(&raw) != checked.chunk_checksum(index) {
        return Err(damaged("fails its checksum".to_string()));
    }
    Ok(raw)
}

pub(super) fn model_info(
    namespace: &str,
    key: &str,
    version: u64,
    checked: &Checked,
    ttl_ms: i64,
) -> ModelInfo {
    let m = &checked.manifest;
    ModelInfo {
        namespace: namespace.to_string(),
        key: key.to_string(),
        version,
        updater: m.updater.clone(),
        updated_at_ms: m.updated_at_ms,
        raw_size: m.raw_size,
        metadata: m.metadata.clone(),
        codec: m.codec.clone(),
        stored_size: m.stored_size,
        chunk_count: m.chunk_count,
        ttl_ms: ttl_ms.max(0),
    }
}
