//! Listing the models of a namespace and removing a model.

use futures::Stream;

use super::manifest::Checked;
use super::reader::model_info;
use super::{keys, ModelInfo, Store};
use crate::config::Layout;
use crate::error::Result;
use crate::redis::Redis;

/// Removes a manifest and hands back what it was, in one atomic step, so
/// that a push committing at the same moment is either deleted whole or
/// kept whole.
const TAKE_MANIFEST: &str = r"
local manifest = redis.call('HGET', KEYS[1], 'manifest')
redis.call('DEL', KEYS[1])
return manifest or ''
";

/// Hashed once; Redis runs it by that hash.
static TAKE_MANIFEST_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(TAKE_MANIFEST));

/// How many keys SCAN is asked to look at per round trip.
const SCAN_COUNT: u64 = 1000;

impl Store {
    /// Removes a model and every chunk of its current version; answers
    /// whether there was one. Chunks of replaced versions expire with their
    /// grace period.
    pub(super) async fn delete_chunked(&self, namespace: &str, key: &str) -> Result<bool> {
        let script = &*TAKE_MANIFEST_SCRIPT;
        let mut invocation = script.key(keys::manifest(namespace, key));
        let previous: Vec<u8> = self.redis.script(&mut invocation).await?;
        if previous.is_empty() {
            return Ok(false);
        }

        // A damaged manifest still counts as deleted: its chunks, if any,
        // expire with their TTL.
        if let Ok(old) = Checked::decode(&previous) {
            let names: Vec<String> = (0..old.manifest.chunk_count)
                .map(|i| keys::chunk(namespace, key, &old.manifest.blob, i))
                .collect();
            for batch in names.chunks(512) {
                self.redis
                    .query::<()>(redis::cmd("UNLINK").arg(batch))
                    .await?;
            }
        }
        Ok(true)
    }

    /// Every model of a namespace, found with SCAN a batch at a time. A
    /// model committed or expiring during the walk may or may not appear.
    pub async fn list(
        &self,
        namespace: &str,
    ) -> Result<impl Stream<Item = Result<Vec<ModelInfo>>> + Send + 'static> {
        let redis = self.redis.clone();
        let namespace = namespace.to_string();
        let legacy =
            (self.agreed(&namespace).await?.layout == Layout::Legacy).then(|| self.clone());
        Ok(futures::stream::try_unfold(Some(0u64), move |cursor| {
            let redis = redis.clone();
            let namespace = namespace.clone();
            let legacy = legacy.clone();
            async move {
                let Some(cursor) = cursor else {
                    return Ok(None);
                };
                if let Some(store) = legacy {
                    return Ok(Some((store.list_legacy(&namespace).await?, None)));
                }
                let (next, infos) = scan_batch(&redis, &namespace, cursor).await?;
                let next = (next != 0).then_some(next);
                Ok(Some((infos, next)))
            }
        }))
    }
}

/// One SCAN round, then the manifests it found, read in one pipeline.
async fn scan_batch(redis: &Redis, namespace: &str, cursor: u64) -> Result<(u64, Vec<ModelInfo>)> {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(keys::manifest_pattern(namespace))
        .arg("COUNT")
        .arg(SCAN_COUNT);
    let (next, names): (u64, Vec<Vec<u8>>) = redis.query(&scan).await?;
    if names.is_empty() {
        return Ok((next, Vec::new()));
    }

    let mut pipe = redis::pipe();
    for name in &names {
        pipe.cmd("HMGET").arg(name).arg("version").arg("manifest");
        pipe.cmd("PTTL").arg(name);
    }
    let rows: Vec<redis::Value> = redis.pipeline(&pipe).await?;
    let mut infos = Vec::with_capacity(names.len());
    for (name, pair) in names.iter().zip(rows.chunks(2)) {
        let Some(key) = keys::key_of_manifest(namespace, name) else {
            continue;
        };
        let (version, manifest): (Option<u64>, Option<Vec<u8>>) =
            redis::from_redis_value(pair[0].clone()).unwrap_or((None, None));
        let ttl_ms: i64 = redis::from_redis_value(pair[1].clone()).unwrap_or(0);
        // Gone since SCAN saw it, or damaged: Pull reports the damage;
        // a listing skips it.
        let (Some(version), Some(manifest)) = (version, manifest) else {
            continue;
        };
        if let Ok(checked) = Checked::decode(&manifest) {
            infos.push(model_info(namespace, &key, version, &checked, ttl_ms));
        }
    }
    Ok((next, infos))
}
