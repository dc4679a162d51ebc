//! How figures are taken and written: the fastest of a few rounds, latency
//! percentiles, and MB as the legacy client counts it (10^6 bytes).

use std::time::{Duration, Instant};

/// Runs `round` `rounds` times and keeps the fastest, the round least
/// disturbed by whatever else the machine was doing; also returns what
/// that round produced.
pub fn best_of<T>(rounds: usize, mut round: impl FnMut() -> T) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let out = round();
        let elapsed = start.elapsed();
        if best.as_ref().is_none_or(|(fastest, _)| elapsed < *fastest) {
            best = Some((elapsed, out));
        }
    }
    best.expect("at least one round ran")
}

pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// The median and the 99th percentile of a set of call durations.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Percentiles {
            p50: nearest_rank(&samples, 0.50),
            p99: nearest_rank(&samples, 0.99),
        }
    }
}

/// The smallest sample with at least `p` of all samples at or below it;
/// `legacy_latency.py` computes the same, so the two compare exactly.
fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// A transfer's time and rate, as the sections print it.
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    format!(
        "{:.1} MB/s ({:.3} s)",
        mb_per_s(bytes, elapsed),
        elapsed.as_secs_f64()
    )
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.3} ms, p99 {:.3} ms",
            millis(self.p50),
            millis(self.p99)
        )
    }
}

/// A byte count with thousands separators, as the project's docs write it.
pub fn grouped(bytes: u64) -> String {
    let digits = bytes.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
