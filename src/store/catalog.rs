//! Listing the models of a namespace and removing a model.

use futures::{Stream, StreamExt, TryStreamExt};

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

/// Manifests read at once while listing.
const PARALLEL_READS: usize = 64;

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
        let layout = self.agreed(namespace).await?.layout;
        let namespace = namespace.to_string();
        if layout == Layout::Legacy {
            let store = self.clone();
            let all = async move { store.list_legacy(&namespace).await };
            return Ok(futures::stream::once(all).boxed());
        }
        let redis = self.redis.clone();
        let names = self
            .redis
            .scan(keys::manifest_pattern(&namespace), SCAN_COUNT);
        let infos = names.and_then(move |names| {
            let (redis, namespace) = (redis.clone(), namespace.clone());
            async move { read_manifests(&redis, &namespace, names).await }
        });
        Ok(infos.boxed())
    }
}

/// The manifests SCAN found, each read with its TTL in one round trip of
/// its own (on a cluster they lie in different slots), many at once.
async fn read_manifests(
    redis: &Redis,
    namespace: &str,
    names: Vec<Vec<u8>>,
) -> Result<Vec<ModelInfo>> {
    let reads = names.into_iter().map(|name| async move {
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(&name).arg("version").arg("manifest");
        pipe.cmd("PTTL").arg(&name);
        let row: ((Option<u64>, Option<Vec<u8>>), i64) = redis.pipeline(&pipe).await?;
        Ok::<_, crate::error::Error>((name, row))
    });
    let rows: Vec<_> = futures::stream::iter(reads)
        .buffered(PARALLEL_READS)
        .try_collect()
        .await?;

    let mut infos = Vec::with_capacity(rows.len());
    for (name, ((version, manifest), ttl_ms)) in rows {
        let Some(key) = keys::key_of_manifest(namespace, &name) else {
            continue;
        };
        // Gone since SCAN saw it, or damaged: Pull reports the damage;
        // a listing skips it.
        let (Some(version), Some(manifest)) = (version, manifest) else {
            continue;
        };
        if let Ok(checked) = Checked::decode(&manifest) {
            infos.push(model_info(namespace, &key, version, &checked, ttl_ms));
        }
    }
    Ok(infos)
}
