//! The push path: cut the incoming bytes into chunks, encode them on the
//! blocking pool, write a bounded window of them to Redis at once, then
//! commit the manifest.

use std::borrow::Cow;
use std::io::Write;

use redis::RedisWrite;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::task::JoinSet;
use tracing::{debug, warn, Instrument};
use xxhash_rust::xxh3::Xxh3;

use super::manifest::{Checked, Draft};
use super::{keys, now_ms, Committed, NewVersion, Store};
use crate::codec::width::MAX_SAMPLE;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::redis::Redis;

/// Models of at most this many raw bytes are kept inside their
/// manifest: a push then costs one round trip to Redis, and a pull one.
pub const INLINE_MAX: usize = 64 << 10;

/// Chunk checks in flight at once before a commit on a cluster.
const KEEP_FAN_OUT: usize = 64;

/// Chunks up to this size are encoded on the calling task.
const SMALL_CHUNK: usize = 64 << 10;

/// Commits a manifest if every chunk it names is still stored and the
/// version matches what the caller expects, and announces the commit.
///
/// KEYS: the manifest, then every chunk. ARGV: the manifest, its TTL in ms,
/// the chunks' TTL in ms, the expected current version or "", the commit
/// channel, and "KEY\nUPDATER" for the notice.
/// Returns {1, new version, previous manifest or ""}, {2, index of a
/// missing chunk, ""} or {3, current version, ""}.
const COMMIT: &str = r"
for i = 2, #KEYS do
  if redis.call('PEXPIRE', KEYS[i], ARGV[3]) == 0 then
    return {2, i - 2, ''}
  end
end
local current = redis.call('HMGET', KEYS[1], 'version', 'manifest')
local version = tonumber(current[1]) or 0
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= version then
  return {3, version, ''}
end
redis.call('HSET', KEYS[1], 'version', version + 1, 'manifest', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[5], string.format('%d', version + 1) .. '\n' .. ARGV[6])
return {1, version + 1, current[2] or ''}
";

/// Hashed once; Redis runs it by that hash.
static COMMIT_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(COMMIT));

impl Store {
    /// Stores `data` as the next version of a chunked model and commits it.
    pub(super) async fn push_chunked<S>(
        &self,
        request: NewVersion,
        data: S,
        codec: Codec,
        ttl: Duration,
        chunk_size: u64,
    ) -> Result<Committed>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        if let Some(expected) = request.expected_version {
            self.check_version(&request.namespace, &request.key, expected)
                .await?;
        }
        let mut upload = Upload::new(self, &request, codec, ttl, chunk_size);
        let result = upload.receive(data).await;
        let result = match result {
            Ok(()) => upload.commit(request).await,
            Err(e) => Err(e),
        };
        if result.is_ok() {
            upload.committed = true;
        }
        // A failed upload cleans up when it is dropped, right here, as it
        // does when the call is dropped mid-way because the client left.
        result
    }
}

impl Store {
    /// Fails early, before any chunk is written, when the key is not at
    /// the expected version. The commit checks again, atomically.
    async fn check_version(&self, namespace: &str, key: &str, expected: u64) -> Result<()> {
        let name = keys::manifest(namespace, key);
        let current: Option<u64> = self
            .redis
            .query(redis::cmd("HGET").arg(&name).arg("version"))
            .await?;
        let current = current.unwrap_or(0);
        if current != expected {
            return Err(Error::Conflict { current, expected });
        }
        Ok(())
    }
}

/// One chunk, stored: its index, stored size and raw checksum.
type Written = (u64, u64, u64);

/// One push in progress.
struct Upload<'a> {
    store: &'a Store,
    namespace: String,
    key: String,
    blob: String,
    /// The codec asked for; `auto` is settled on the first chunk.
    requested: Codec,
    named_width: Option<u8>,
    /// The codec every chunk of this push is stored with, once settled.
    codec: Option<Codec>,
    chunk_size: u64,
    chunker: Chunker,
    declared: Option<u64>,
    chunk_ttl_ms: u64,
    manifest_ttl_ms: u64,
    in_flight: JoinSet<Result<Written>>,
    dispatched: u64,
    raw_size: u64,
    stored_size: u64,
    checksums: Vec<u64>,
    /// The one stored chunk of a small model, kept in the manifest.
    inline: Option<Vec<u8>>,
    started: Instant,
    /// Set once the manifest names the chunks, which must then stay.
    committed: bool,
}

impl<'a> Upload<'a> {
    fn new(
        store: &'a Store,
        request: &NewVersion,
        codec: Codec,
        ttl: Duration,
        chunk_size: u64,
    ) -> Self {
        let grace = store.settings.grace;
        Upload {
            store,
            namespace: request.namespace.clone(),
            key: request.key.clone(),
            blob: format!("{:016x}", rand::random::<u64>()),
            requested: codec,
            named_width: super::element_width(request),
            codec: None,
            chunk_size,
            chunker: Chunker::new(chunk_size as usize),
            declared: request.raw_size,
            chunk_ttl_ms: (ttl + grace).as_millis() as u64,
            manifest_ttl_ms: ttl.as_millis() as u64,
            in_flight: JoinSet::new(),
            dispatched: 0,
            raw_size: 0,
            stored_size: 0,
            checksums: Vec::new(),
            inline: None,
            started: Instant::now(),
            committed: false,
        }
    }

    /// Takes every piece of data, keeping at most a window of chunks in
    /// flight, until the client has sent everything.
    async fn receive<S>(&mut self, mut data: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        while let Some(piece) = data.next().await {
            let piece = piece?;
            self.raw_size += piece.len() as u64;
            if let Some(declared) = self.declared.filter(|d| self.raw_size > *d) {
                return Err(Error::invalid(format!(
                    "the push sent more than the {declared} bytes its header declared"
                )));
            }
            for chunk in self.chunker.push(piece) {
                self.dispatch(chunk).await?;
            }
        }

        if let Some(declared) = self.declared.filter(|d| self.raw_size != *d) {
            return Err(Error::invalid(format!(
                "the push sent {} bytes where its header declared {declared}",
                self.raw_size
            )));
        }
        if let Some(last) = self.chunker.finish() {
            if self.dispatched == 0 && self.raw_size as usize <= INLINE_MAX {
                self.keep_inline(&last)?;
            } else {
                self.dispatch(last).await?;
            }
        }
        while !self.in_flight.is_empty() {
            self.collect_one().await?;
        }
        Ok(())
    }

    /// Encodes a small model's only chunk for the manifest itself.
    fn keep_inline(&mut self, pieces: &[Bytes]) -> Result<()> {
        let codec = self.codec_for(pieces);
        let mut stored = Vec::new();
        let checksum = encode(codec, pieces, &mut stored)?;
        self.stored_size = stored.len() as u64;
        self.checksums = vec![checksum];
        self.inline = Some(stored);
        Ok(())
    }

    /// Starts storing one chunk, first waiting for room in the window.
    async fn dispatch(&mut self, pieces: Vec<Bytes>) -> Result<()> {
        while self.in_flight.len() >= self.store.settings.window {
            self.collect_one().await?;
        }
        let codec = self.codec_for(&pieces);
        let index = self.dispatched;
        let name = keys::chunk(&self.namespace, &self.key, &self.blob, index);
        let task = store_chunk(
            self.store.redis.clone(),
            codec,
            name,
            pieces,
            self.chunk_ttl_ms,
        );
        let span = tracing::debug_span!("chunk", index, blob = %self.blob);
        self.in_flight.spawn(
            async move {
                let (stored, checksum) = task.await?;
                Ok((index, stored, checksum))
            }
            .instrument(span),
        );
        self.dispatched += 1;
        Ok(())
    }

    /// The codec of this push, settled on its first chunk: a sample of
    /// that chunk decides what `auto` becomes.
    fn codec_for(&mut self, first: &[Bytes]) -> Codec {
        let (requested, named) = (self.requested, self.named_width);
        *self
            .codec
            .get_or_insert_with(|| requested.settle(named, &sample(first)))
    }

    /// Waits for the next chunk write to end and records its checksum.
    async fn collect_one(&mut self) -> Result<()> {
        let Some(joined) = self.in_flight.join_next().await else {
            return Ok(());
        };
        let (index, stored, checksum) =
            joined.map_err(|e| Error::Internal(format!("chunk task: {e}")))??;
        let index = index as usize;
        if self.checksums.len() <= index {
            self.checksums.resize(index + 1, 0);
        }
        self.checksums[index] = checksum;
        self.stored_size += stored;
        Ok(())
    }

    /// Writes the manifest: the moment the version becomes visible.
    async fn commit(&mut self, request: NewVersion) -> Result<Committed> {
        let chunk_count = self.checksums.len() as u64;
        // An empty model has no chunk to settle the codec on.
        let codec = self.codec_for(&[]);
        let draft = Draft {
            blob: self.blob.clone(),
            codec,
            chunk_size: self.chunk_size,
            raw_size: self.raw_size,
            stored_size: self.stored_size,
            chunk_checksums: std::mem::take(&mut self.checksums),
            updater: self.store.updater.clone(),
            updated_at_ms: now_ms(),
            metadata: request.metadata,
            inline: self.inline.take().unwrap_or_default(),
        };
        let stored_chunks = if draft.inline.is_empty() {
            chunk_count
        } else {
            0
        };

        let script = &*COMMIT_SCRIPT;
        let mut invocation = script.key(keys::manifest(&self.namespace, &self.key));
        if self.store.redis.is_cluster() {
            // A script's keys must share one slot, and chunks spread over
            // every shard: they are checked just before the commit instead.
            self.keep_chunks(stored_chunks).await?;
        } else {
            for index in 0..stored_chunks {
                invocation.key(keys::chunk(&self.namespace, &self.key, &self.blob, index));
            }
        }
        let expected = request
            .expected_version
            .map(|v| v.to_string())
            .unwrap_or_default();
        invocation
            .arg(draft.encode())
            .arg(self.manifest_ttl_ms)
            .arg(self.chunk_ttl_ms)
            .arg(expected)
            .arg(keys::commits_channel(&self.namespace))
            .arg(format!("{}\n{}", self.key, self.store.updater));
        let (status, number, previous): (i64, u64, Vec<u8>) =
            self.store.redis.script(&invocation).await?;

        match status {
            1 => {
                self.retire(previous);
                debug!(
                    namespace = %self.namespace, key = %self.key, version = number,
                    bytes = self.raw_size, stored = self.stored_size,
                    elapsed_ms = self.started.elapsed().as_millis() as u64, "committed"
                );
                Ok(Committed {
                    version: number,
                    raw_size: self.raw_size,
                    stored_size: self.stored_size,
                    chunk_count,
                    codec: codec.name().to_string(),
                })
            }
            2 => Err(self.vanished(number)),
            3 => Err(Error::Conflict {
                current: number,
                expected: request.expected_version.unwrap_or_default(),
            }),
            other => Err(Error::Internal(format!("commit script answered {other}"))),
        }
    }

    /// Checks that every chunk is still stored and gives it the TTL it
    /// keeps once committed, as the commit script does on one server. On a
    /// cluster this is not one atomic step with the commit: a chunk lost
    /// between the two (a master that fails before replicating it) makes
    /// later pulls fail with NOT_FOUND, never return other bytes.
    async fn keep_chunks(&self, count: u64) -> Result<()> {
        let redis = &self.store.redis;
        let checks = (0..count).map(|index| {
            let name = keys::chunk(&self.namespace, &self.key, &self.blob, index);
            let cmd = redis::cmd("PEXPIRE")
                .arg(name)
                .arg(self.chunk_ttl_ms)
                .clone();
            async move { Ok::<_, Error>((index, redis.query::<i64>(&cmd).await?)) }
        });
        let mut results = futures::stream::iter(checks).buffer_unordered(KEEP_FAN_OUT);
        while let Some(result) = results.next().await {
            if let (index, 0) = result? {
                return Err(self.vanished(index));
            }
        }
        Ok(())
    }

    fn vanished(&self, index: u64) -> Error {
        Error::Unavailable {
            endpoint: self.store.redis.endpoint().to_string(),
            reason: format!("chunk {index} of this push vanished before its commit (did Redis restart, fail over or evict it?); push again"),
        }
    }

    /// Lets the version this push replaced expire after the grace period,
    /// so that pulls already reading it can finish. It runs after the push
    /// has answered: the old chunks expire with their own TTL anyway, so
    /// this only frees memory sooner, and its failure is not the push's.
    fn retire(&self, previous: Vec<u8>) {
        let Ok(old) = Checked::decode(&previous) else {
            return;
        };
        if !old.manifest.inline.is_empty() || old.manifest.chunk_count == 0 {
            return;
        }
        let grace_ms = self.store.settings.grace.as_millis().max(1) as u64;
        let shorten: Vec<redis::Cmd> = (0..old.manifest.chunk_count)
            .map(|index| {
                let name = keys::chunk(&self.namespace, &self.key, &old.manifest.blob, index);
                redis::cmd("PEXPIRE").arg(name).arg(grace_ms).clone()
            })
            .collect();
        let redis = self.store.redis.clone();
        let span = tracing::debug_span!("retire", namespace = %self.namespace, key = %self.key, blob = %old.manifest.blob);
        tokio::spawn(
            async move {
                if let Err(e) = redis.each(shorten).await {
                    warn!(error = %e, "could not shorten the expiry of a replaced version");
                }
            }
            .instrument(span),
        );
    }
}

impl Drop for Upload<'_> {
    /// Removes what an uncommitted push wrote, in the background: the call
    /// may be failing because Redis is slow, and its caller should not wait
    /// for this too. A chunk write still in flight may land after the
    /// removal; its TTL removes it.
    fn drop(&mut self) {
        self.in_flight.abort_all();
        if self.committed || self.dispatched == 0 {
            return;
        }
        let mut del = redis::cmd("UNLINK");
        for index in 0..self.dispatched {
            del.arg(keys::chunk(&self.namespace, &self.key, &self.blob, index));
        }
        let redis = self.store.redis.clone();
        let span = tracing::debug_span!("discard", namespace = %self.namespace, key = %self.key, blob = %self.blob);
        let removal = async move {
            if let Err(e) = redis.query::<()>(&del).await {
                debug!(error = %e, "could not remove the chunks of a failed push; they expire with their TTL");
            }
        };
        // Outside a runtime (never in the daemon) the TTL alone cleans up.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(removal.instrument(span));
        }
    }
}

/// Encodes one chunk into the SET command that stores it, and
/// returns its stored size and raw checksum once Redis has it. Small chunks
/// are encoded here: handing them to the blocking pool costs more.
async fn store_chunk(
    redis: Redis,
    codec: Codec,
    name: String,
    pieces: Vec<Bytes>,
    ttl_ms: u64,
) -> Result<(u64, u64)> {
    let small = pieces_len(&pieces) <= SMALL_CHUNK;
    let build = move || {
        let mut cmd = redis::cmd("SET");
        cmd.arg(&name);
        let mut counted = Counter::default();
        let checksum = encode(
            codec,
            &pieces,
            Tee(&mut cmd.writer_for_next_arg(), &mut counted),
        )?;
        cmd.arg("PX").arg(ttl_ms);
        Ok::<_, Error>((cmd, counted.0, checksum))
    };
    let (cmd, stored, checksum) = if small {
        build()?
    } else {
        tokio::task::spawn_blocking(build)
            .await
            .map_err(|e| Error::Internal(format!("encode task: {e}")))??
    };
    redis.query::<()>(&cmd).await?;
    Ok((stored, checksum))
}

/// Up to [`likely_width`]'s sample of a chunk: from its middle, where a
/// file's own header (safetensors', say) is not, unless the chunk is too
/// short for that. The sample starts a multiple of 8 bytes into the chunk,
/// so on an element boundary, and is copied only when it spans pieces.
///
/// [`likely_width`]: crate::codec::likely_width
fn sample(pieces: &[Bytes]) -> Cow<'_, [u8]> {
    let len = pieces_len(pieces);
    let start = if len >= 2 * MAX_SAMPLE {
        len / 2 / 8 * 8
    } else {
        0
    };
    let want = MAX_SAMPLE.min(len - start);

    let mut offset = 0;
    let mut gathered = Vec::new();
    for piece in pieces {
        let end = offset + piece.len();
        if end > start {
            let from = &piece[start.max(offset) - offset..];
            if gathered.is_empty() && from.len() >= want {
                return Cow::Borrowed(&from[..want]);
            }
            gathered.extend_from_slice(&from[..from.len().min(want - gathered.len())]);
            if gathered.len() == want {
                break;
            }
        }
        offset = end;
    }
    Cow::Owned(gathered)
}

fn pieces_len(pieces: &[Bytes]) -> usize {
    pieces.iter().map(Bytes::len).sum()
}

/// Encodes a chunk into `out` and returns the checksum of its raw bytes.
fn encode(codec: Codec, pieces: &[Bytes], out: impl Write) -> Result<u64> {
    let mut hasher = Xxh3::new();
    pieces.iter().for_each(|p| hasher.update(p));
    codec
        .encode(pieces, out)
        .map_err(|e| Error::Internal(format!("encode: {e}")))?;
    Ok(hasher.digest())
}

/// Counts what passes through it.
#[derive(Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Tee<'a, A, B>(&'a mut A, &'a mut B);

impl<A: Write, B: Write> Write for Tee<'_, A, B> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Cuts a stream of pieces into chunks of one size without copying: a
/// piece that crosses a chunk boundary is split, not copied.
struct Chunker {
    size: usize,
    pieces: Vec<Bytes>,
    len: usize,
}

impl Chunker {
    fn new(size: usize) -> Self {
        Chunker {
            size,
            pieces: Vec::new(),
            len: 0,
        }
    }

    /// Adds a piece; returns the chunks it completes.
    fn push(&mut self, mut piece: Bytes) -> Vec<Vec<Bytes>> {
        let mut full = Vec::new();
        while !piece.is_empty() {
            let room = self.size - self.len;
            if piece.len() < room {
                self.len += piece.len();
                self.pieces.push(piece);
                break;
            }
            self.pieces.push(piece.split_to(room));
            full.push(std::mem::take(&mut self.pieces));
            self.len = 0;
        }
        full
    }

    /// The last, shorter chunk, if any bytes are left.
    fn finish(&mut self) -> Option<Vec<Bytes>> {
        self.len = 0;
        (!self.pieces.is_empty()).then(|| std::mem::take(&mut self.pieces))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunker_cuts_at_exact_sizes() {
        let mut chunker = Chunker::new(4);
        assert!(chunker.push(Bytes::from_static(b"abc")).is_empty());
        let full = chunker.push(Bytes::from_static(b"defghij"));
        let joined: Vec<Vec<u8>> = full.iter().map(|c| c.concat()).collect();
        assert_eq!(joined, vec![b"abcd".to_vec(), b"efgh".to_vec()]);
        assert_eq!(chunker.finish().unwrap().concat(), b"ij");
        assert!(chunker.finish().is_none());
    }

    #[test]
    fn a_codec_sample_comes_from_the_middle_on_an_element_boundary() {
        // An odd length, so that half of it is not already on a boundary.
        let chunk: Vec<u8> = (0..(1u32 << 20) + 101).map(|i| (i % 251) as u8).collect();
        let one = [Bytes::from(chunk.clone())];
        let middle = chunk.len() / 2 / 8 * 8;
        assert_ne!(middle, chunk.len() / 2);
        assert!(matches!(sample(&one), Cow::Borrowed(_)));
        assert_eq!(&*sample(&one), &chunk[middle..middle + MAX_SAMPLE]);

        // Pieces cut just after the middle: the sample spans two of them.
        let cut = middle + 100;
        let pieces = [
            Bytes::copy_from_slice(&chunk[..cut]),
            Bytes::copy_from_slice(&chunk[cut..cut + 10]),
            Bytes::copy_from_slice(&chunk[cut + 10..]),
        ];
        assert_eq!(&*sample(&pieces), &chunk[middle..middle + MAX_SAMPLE]);

        // A chunk too short for a sample from its middle gives its start.
        let short = [Bytes::copy_from_slice(&chunk[..MAX_SAMPLE + 8])];
        assert_eq!(&*sample(&short), &chunk[..MAX_SAMPLE]);
        assert!(sample(&[]).is_empty());
    }
}
