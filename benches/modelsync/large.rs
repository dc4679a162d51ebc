//! The real weights pushed and pulled whole through the daemon, once per
//! codec; every round stores a new version of the same key, as a trainer
//! publishing its model does.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::runtime::Runtime;

use crate::daemon::Client;
use crate::measure::mb_per_s;
use crate::report::{item, section};
use crate::transfer::{header, pull, push};

const NAMESPACE: &str = "bench";

/// A codec as the table names it, as a push header asks for it (empty:
/// the daemon's default), and the key its runs store under.
pub struct Codec {
    pub label: &'static str,
    pub request: &'static str,
    key: &'static str,
}

pub const NONE: Codec = Codec {
    label: "none",
    request: "none",
    key: "weights-none",
};
pub const DEFAULT: Codec = Codec {
    label: "auto (default)",
    request: "",
    key: "weights-default",
};
pub const ZSTD: Codec = Codec {
    label: "zstd",
    request: "zstd",
    key: "weights-zstd",
};
pub const ZLIB: Codec = Codec {
    label: "zlib",
    request: "zlib",
    key: "weights-zlib",
};
pub const SHUFFLE: Codec = Codec {
    label: "shuffle-zstd",
    request: "shuffle-zstd",
    key: "weights-shuffle",
};
const CODECS: [Codec; 5] = [NONE, DEFAULT, ZSTD, SHUFFLE, ZLIB];

#[derive(Debug, Clone)]
pub struct Large {
    pub codec: &'static str,
    /// What the daemon stored with, which for `auto` is its choice.
    pub stored_as: String,
    pub raw_size: u64,
    pub push: Duration,
    pub pull: Duration,
    pub stored_size: u64,
}

/// Rounds take the codecs in turn, a push then a pull each, so that a slow
/// spell of a shared machine falls on every codec alike instead of on
/// whichever one was being measured then. Each codec keeps its fastest
/// push and its fastest pull.
pub fn measure(rt: &Runtime, client: &mut Client, weights: &Bytes, rounds: usize) -> Vec<Large> {
    let mut fastest: Vec<Option<Large>> = CODECS.iter().map(|_| None).collect();
    for _ in 0..rounds.max(1) {
        for (codec, best) in CODECS.iter().zip(&mut fastest) {
            let round = measure_round(rt, client, codec, weights);
            *best = Some(match best.take() {
                Some(so_far) => so_far.faster(round),
                None => round,
            });
        }
    }
    fastest
        .into_iter()
        .map(|best| best.expect("at least one round ran"))
        .collect()
}

fn measure_round(rt: &Runtime, client: &mut Client, codec: &Codec, weights: &Bytes) -> Large {
    let head = header(NAMESPACE, codec.key, codec.request, weights.len() as u64);
    let started = Instant::now();
    let pushed = rt
        .block_on(push(client, head, weights.clone()))
        .unwrap_or_else(|e| panic!("push with codec {}: {e}", codec.label));
    let push_time = started.elapsed();

    let started = Instant::now();
    let pulled = rt
        .block_on(pull(client, NAMESPACE, codec.key))
        .unwrap_or_else(|e| panic!("pull with codec {}: {e}", codec.label));
    let pull_time = started.elapsed();
    assert!(
        pulled == weights[..],
        "codec {}: the pull differs from the push",
        codec.label
    );

    Large {
        codec: codec.label,
        stored_as: pushed.codec,
        raw_size: weights.len() as u64,
        push: push_time,
        pull: pull_time,
        stored_size: pushed.stored_size,
    }
}

impl Large {
    /// The faster push and the faster pull of two rounds of one codec.
    fn faster(self, other: Large) -> Large {
        Large {
            push: self.push.min(other.push),
            pull: self.pull.min(other.pull),
            ..other
        }
    }

    pub fn push_rate(&self) -> f64 {
        mb_per_s(self.raw_size, self.push)
    }

    pub fn pull_rate(&self) -> f64 {
        mb_per_s(self.raw_size, self.pull)
    }

    /// One client alternating pushes and pulls: bytes moved over the time
    /// both took, as the concurrent clients are counted.
    pub fn round_trip_rate(&self) -> f64 {
        mb_per_s(2 * self.raw_size, self.push + self.pull)
    }

    pub fn stored_ratio(&self) -> f64 {
        self.stored_size as f64 / self.raw_size as f64
    }

    /// The run of one codec among those measured.
    pub fn of<'a>(runs: &'a [Large], codec: &Codec) -> &'a Large {
        runs.iter()
            .find(|run| run.codec == codec.label)
            .expect("every codec is measured")
    }

    pub fn print_all(runs: &[Large], rounds: usize) {
        section(&format!(
            "daemon, real weights, one client, fastest of {rounds} (MB/s; stored / raw)"
        ));
        for run in runs {
            let mut figures = format!(
                "push {:>7.1}  pull {:>7.1}  stored {:.3}",
                run.push_rate(),
                run.pull_rate(),
                run.stored_ratio()
            );
            if run.stored_as != run.codec {
                figures.push_str(&format!(" as {}", run.stored_as));
            }
            item(run.codec, figures);
        }
    }
}
