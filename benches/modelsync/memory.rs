//! A model far larger than the daemon may hold, streamed through a fresh
//! daemon process and back: the process's peak resident memory tells
//! whether both directions stream. The benchmark generates the model piece
//! by piece and never holds it whole either.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use xxhash_rust::xxh3::Xxh3;

use crate::daemon::Daemon;
use crate::measure::rate;
use crate::report::{item, section};
use crate::transfer::{header, pull_checksum, push_stream, MESSAGE_BYTES};

const NAMESPACE: &str = "bench";
const KEY: &str = "huge";

#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub size: u64,
    pub push: Duration,
    pub pull: Duration,
    pub stored_size: u64,
    /// VmHWM once the daemon is listening with one client connected.
    pub idle_peak: u64,
    /// VmHWM after the push and the pull.
    pub peak: u64,
}

pub async fn measure(binary: &Path, redis_url: &str, size: u64) -> Memory {
    let daemon = Daemon::start(binary, redis_url).await;
    let mut client = daemon.client().await;
    let idle_peak = daemon.peak_resident_bytes();

    let start = Instant::now();
    let pushed = push_stream(
        &mut client,
        header(NAMESPACE, KEY, "", size),
        generated(size),
    )
    .await
    .unwrap_or_else(|e| panic!("push of the {size}-byte model: {e}"));
    let push = start.elapsed();

    let start = Instant::now();
    let (len, checksum) = pull_checksum(&mut client, NAMESPACE, KEY)
        .await
        .unwrap_or_else(|e| panic!("pull of the {size}-byte model: {e}"));
    let pull = start.elapsed();
    let peak = daemon.peak_resident_bytes();

    assert_eq!(len, size, "the pull returned a different length");
    assert_eq!(
        checksum,
        expected_checksum(size),
        "the pull differs from the push"
    );
    Memory {
        size,
        push,
        pull,
        stored_size: pushed.stored_size,
        idle_peak,
        peak,
    }
}

fn pieces(size: u64) -> impl Iterator<Item = Bytes> {
    let count = size.div_ceil(MESSAGE_BYTES as u64);
    (0..count).map(move |index| piece(index, size))
}

fn generated(size: u64) -> impl Stream<Item = Bytes> + Send + 'static {
    futures::stream::iter(pieces(size))
}

fn expected_checksum(size: u64) -> u64 {
    let mut hasher = Xxh3::new();
    pieces(size).for_each(|piece| hasher.update(&piece));
    hasher.digest()
}

/// Piece `index` of the model: float32-like words whose upper half is
/// fixed and lower half random, so that it compresses to about half, and
/// the daemon handles compressed chunks of a realistic size rather than
/// near-empty ones.
fn piece(index: u64, size: u64) -> Bytes {
    let piece_bytes = MESSAGE_BYTES as u64;
    let len = piece_bytes.min(size - index * piece_bytes) as usize;
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![0u8; len.next_multiple_of(8)];
    for word in out.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let pair = (state & 0x0000_FFFF_0000_FFFF) | 0x3C00_0000_3C00_0000;
        word.copy_from_slice(&pair.to_le_bytes());
    }
    out.truncate(len);
    out.into()
}

pub const MIB: f64 = (1u64 << 20) as f64;

impl Memory {
    pub fn peak_mib(&self) -> f64 {
        self.peak as f64 / MIB
    }

    pub fn print(&self) {
        section(&format!(
            "fresh daemon process, {} MiB generated model, streamed both ways",
            self.size >> 20
        ));
        item("push", rate(self.size, self.push));
        item("pull", rate(self.size, self.pull));
        item(
            "stored / raw",
            format!("{:.3}", self.stored_size as f64 / self.size as f64),
        );
        item(
            "peak resident, idle",
            format!("{:.1} MiB", self.idle_peak as f64 / MIB),
        );
        item(
            "peak resident, after",
            format!("{:.1} MiB", self.peak_mib()),
        );
    }
}
