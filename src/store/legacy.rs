//! The legacy layout: one Redis hash per model at
//! `{namespace}_key-value:{key}:0` with the fields `updater`, `content`
//! (the zlib-compressed payload) and `lastUpdatedTime` (seconds since the
//! epoch), exactly as the legacy Python client reads and writes it. A
//! namespace uses it only where the configuration says so, so that nodes
//! still running that client keep exchanging models during a migration.
//!
//! The layout has no versions and no room for metadata: versions read as
//! 0, and a push with metadata is refused. The whole model is one Redis
//! value, held in memory while it is compressed or decompressed, so its
//! size is bounded by [`MAX_LEGACY_BYTES`].

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use futures::{Stream, StreamExt};

use super::{now_ms, Committed, ModelInfo, NewVersion, Store};
use crate::codec::Codec;
use crate::error::{Error, Result};

/// The largest raw model a legacy namespace holds: Redis's own limit for
/// one value.
pub const MAX_LEGACY_BYTES: u64 = 512 << 20;

/// The hash that holds a model, named as the legacy client names it.
pub fn hash_name(namespace: &str, key: &str) -> String {
    format!("{namespace}_key-value:{key}:0")
}

/// Refuses keys that the legacy naming cannot carry.
pub fn check_key(key: &str) -> Result<()> {
    if key.contains(':') {
        return Err(Error::invalid(format!(
            "key {key:?} contains ':', which the legacy layout cannot tell apart from its own separators; choose a key without ':'"
        )));
    }
    Ok(())
}

impl Store {
    pub(super) async fn push_legacy<S>(
        &self,
        request: NewVersion,
        mut data: S,
        codec: Codec,
        ttl: Duration,
    ) -> Result<Committed>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        check_key(&request.key)?;
        if !request.metadata.is_empty() {
            return Err(Error::invalid(
                "the legacy layout keeps no metadata; push without metadata to this namespace",
            ));
        }
        let level = match codec {
            Codec::Zlib { level } => level,
            _ => crate::codec::DEFAULT_ZLIB_LEVEL,
        };

        let mut pieces = Vec::new();
        let mut raw_size = 0u64;
        while let Some(piece) = data.next().await {
            let piece = piece?;
            raw_size += piece.len() as u64;
            if raw_size > MAX_LEGACY_BYTES {
                return Err(Error::TooLarge(format!(
                    "a legacy namespace holds models of at most {MAX_LEGACY_BYTES} bytes"
                )));
            }
            pieces.push(piece);
        }
        if let Some(declared) = request.raw_size.filter(|d| *d != raw_size) {
            return Err(Error::invalid(format!(
                "the push sent {raw_size} bytes where its header declared {declared}"
            )));
        }

        let content = tokio::task::spawn_blocking(move || zlib(&pieces, level))
            .await
            .map_err(|e| Error::Internal(format!("compress task: {e}")))?;
        let stored_size = content.len() as u64;
        let name = hash_name(&request.namespace, &request.key);
        let seconds = now_ms() as f64 / 1000.0;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&name)
            .arg("updater")
            .arg(&self.updater)
            .arg("content")
            .arg(content)
            .arg("lastUpdatedTime")
            .arg(format!("{seconds:.6}"))
            .ignore()
            .cmd("EXPIRE")
            .arg(&name)
            .arg(ttl.as_secs())
            .ignore();
        self.redis.pipeline::<()>(&pipe).await?;

        Ok(Committed {
            version: 0,
            raw_size,
            stored_size,
            chunk_count: 1,
            codec: "zlib".to_string(),
        })
    }

    /// Reads a legacy model whole, in one command, so that it cannot
    /// expire between a check and the read.
    pub(super) async fn read_legacy(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(ModelInfo, Bytes)>> {
        check_key(key)?;
        let name = hash_name(namespace, key);
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(&name)
            .arg("updater")
            .arg("lastUpdatedTime")
            .arg("content");
        pipe.cmd("PTTL").arg(&name);
        let ((updater, updated, content), ttl_ms): (
            (Option<String>, Option<String>, Option<Vec<u8>>),
            i64,
        ) = self.redis.pipeline(&pipe).await?;
        let Some(content) = content else {
            return Ok(None);
        };

        let stored_size = content.len() as u64;
        let raw = tokio::task::spawn_blocking(move || inflate(&content))
            .await
            .map_err(|e| Error::Internal(format!("decompress task: {e}")))?
            .map_err(|reason| {
                Error::data_loss(format!(
                    "{} holds content that does not decompress: {reason}",
                    Store::describe(namespace, key)
                ))
            })?;
        let info = ModelInfo {
            namespace: namespace.to_string(),
            key: key.to_string(),
            version: 0,
            updater: updater.unwrap_or_default(),
            updated_at_ms: parse_seconds(updated.as_deref()),
            raw_size: raw.len() as u64,
            metadata: Default::default(),
            codec: "zlib".to_string(),
            stored_size,
            chunk_count: 1,
            ttl_ms: ttl_ms.max(0),
        };
        Ok(Some((info, raw)))
    }

    /// Every model of a legacy namespace: SCAN over its hash names.
    pub(super) async fn list_legacy(&self, namespace: &str) -> Result<Vec<ModelInfo>> {
        let pattern = format!("{}_key-value:*:0", glob_escape(namespace));
        let prefix = format!("{namespace}_key-value:");
        let mut batches = std::pin::pin!(self.redis.scan(pattern, 1000));
        let mut infos = Vec::new();
        while let Some(names) = batches.try_next().await? {
            for name in names {
                let Some(key) = std::str::from_utf8(&name)
                    .ok()
                    .and_then(|n| n.strip_prefix(&prefix))
                    .and_then(|k| k.strip_suffix(":0"))
                else {
                    continue;
                };
                if let Ok(Some(info)) = self.legacy_header(namespace, key).await {
                    infos.push(info);
                }
            }
        }
        Ok(infos)
    }

    /// What is known of a legacy model without decompressing it: its raw
    /// size reads as 0, unknown.
    pub(super) async fn legacy_header(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<ModelInfo>> {
        let name = hash_name(namespace, key);
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(&name)
            .arg("updater")
            .arg("lastUpdatedTime");
        pipe.cmd("HSTRLEN").arg(&name).arg("content");
        pipe.cmd("PTTL").arg(&name);
        let ((updater, updated), stored, ttl_ms): ((Option<String>, Option<String>), u64, i64) =
            self.redis.pipeline(&pipe).await?;
        if stored == 0 && updater.is_none() {
            return Ok(None);
        }
        Ok(Some(ModelInfo {
            namespace: namespace.to_string(),
            key: key.to_string(),
            version: 0,
            updater: updater.unwrap_or_default(),
            updated_at_ms: parse_seconds(updated.as_deref()),
            raw_size: 0,
            metadata: Default::default(),
            codec: "zlib".to_string(),
            stored_size: stored,
            chunk_count: 1,
            ttl_ms: ttl_ms.max(0),
        }))
    }

    pub(super) async fn delete_legacy(&self, namespace: &str, key: &str) -> Result<bool> {
        check_key(key)?;
        let removed: u64 = self
            .redis
            .query(redis::cmd("DEL").arg(hash_name(namespace, key)))
            .await?;
        Ok(removed > 0)
    }
}

fn zlib(pieces: &[Bytes], level: u32) -> Vec<u8> {
    let total: usize = pieces.iter().map(Bytes::len).sum();
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(total / 2 + 64),
        flate2::Compression::new(level),
    );
    for piece in pieces {
        encoder
            .write_all(piece)
            .expect("writing to a Vec cannot fail");
    }
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Inflates at most [`MAX_LEGACY_BYTES`]: the stored content is the only
/// size there is, so a bomb is cut off there.
pub(super) fn inflate(content: &[u8]) -> std::result::Result<Bytes, String> {
    let mut out = Vec::with_capacity(content.len() * 2);
    flate2::read::ZlibDecoder::new(content)
        .take(MAX_LEGACY_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_LEGACY_BYTES {
        return Err(format!("it inflates past {MAX_LEGACY_BYTES} bytes"));
    }
    Ok(out.into())
}

/// `lastUpdatedTime` as the legacy client wrote it: seconds, maybe with a
/// fraction.
pub(super) fn parse_seconds(text: Option<&str>) -> i64 {
    text.and_then(|t| t.trim().parse::<f64>().ok())
        .map(|s| (s * 1000.0) as i64)
        .unwrap_or(0)
}

/// Escapes the characters that SCAN patterns treat as wildcards.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_content_is_refused() {
        let content = zlib(&[Bytes::from(vec![7u8; 100_000])], 6);
        assert!(inflate(&content[..content.len() - 5]).is_err());
    }

    #[test]
    fn hash_names_match_the_legacy_client() {
        assert_eq!(hash_name("fleet", "0x0"), "fleet_key-value:0x0:0");
    }
}
