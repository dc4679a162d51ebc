//! The project's targets, each as a row: the daemon's figure, the baseline
//! it is held against (taken in the same run), and the bound.

use crate::concurrency::Concurrency;
use crate::large::{self, Large};
use crate::legacy::Baseline;
use crate::measure::{mb_per_s, millis, Percentiles};
use crate::memory::Memory;
use crate::raw_redis::RawRedis;
use crate::report::{Figure, Goal, Row, Unit};
use crate::small::SmallCalls;

/// Every figure of one run.
pub struct Run<'a> {
    pub raw_size: u64,
    pub legacy: &'a Baseline,
    pub raw: &'a RawRedis,
    pub large: &'a [Large],
    pub small: &'a SmallCalls,
    pub concurrency: &'a Concurrency,
    pub memory: &'a Memory,
}

const PEAK_MEMORY_MIB: f64 = 256.0;
const STORED_RATIO: f64 = 0.92;
const SHUFFLED_RATIO: f64 = 0.85;

pub fn rows(run: &Run) -> Vec<Row> {
    let mut rows = transfers(run);
    rows.push(small_calls(run.small, run.legacy));
    rows.extend(concurrency(
        run.concurrency,
        Large::of(run.large, &large::DEFAULT),
    ));
    rows.push(memory(run.memory));
    rows.push(stored(run));
    rows.push(shuffled(run));
    rows
}

fn transfers(run: &Run) -> Vec<Row> {
    let default = Large::of(run.large, &large::DEFAULT);
    let none = Large::of(run.large, &large::NONE);
    let legacy = run.legacy.transfers.as_ref().ok();
    let rate = |elapsed| Figure::new(mb_per_s(run.raw_size, elapsed), Unit::MegabytesPerSecond);
    let daemon = |value| Some(Figure::new(value, Unit::MegabytesPerSecond));

    vec![
        Row::new(
            "push, real weights, auto (default)",
            daemon(default.push_rate()),
            Goal::RatioAtLeast(25.0),
        )
        .against("legacy push", legacy.map(|t| rate(t.push))),
        Row::new(
            "pull, real weights, auto (default)",
            daemon(default.pull_rate()),
            Goal::RatioAtLeast(8.0),
        )
        .against("legacy pull", legacy.map(|t| rate(t.pull))),
        Row::new(
            "push, real weights, codec none",
            daemon(none.push_rate()),
            Goal::RatioAtLeast(0.7),
        )
        .against("redis-rs SET", Some(rate(run.raw.set))),
        Row::new(
            "pull, real weights, codec none",
            daemon(none.pull_rate()),
            Goal::RatioAtLeast(0.7),
        )
        .against("redis-rs GET", Some(rate(run.raw.get))),
    ]
}

fn small_calls(daemon: &SmallCalls, legacy: &Baseline) -> Row {
    let both = |calls: &SmallCalls| {
        let median = |p: Percentiles| millis(p.p50);
        Figure::new(median(calls.push) + median(calls.pull), Unit::Millis)
    };
    Row::new(
        "4 KB push + pull, p50",
        Some(both(daemon)),
        Goal::RatioAtMost(0.15),
    )
    .against(
        "legacy push + pull p50",
        legacy.small.as_ref().ok().map(both),
    )
}

fn concurrency(concurrency: &Concurrency, one_client: &Large) -> [Row; 2] {
    let clients = concurrency.clients;
    [
        Row::new(
            format!("{clients} clients, errors"),
            Some(Figure::new(concurrency.tally.errors as f64, Unit::Count)),
            Goal::Equal(Figure::new(0.0, Unit::Count)),
        ),
        Row::new(
            format!("{clients} clients, aggregate push + pull"),
            Some(Figure::new(
                concurrency.aggregate_rate(),
                Unit::MegabytesPerSecond,
            )),
            Goal::RatioAtLeast(0.7),
        )
        .against(
            "one client, real weights, push + pull",
            Some(Figure::new(
                one_client.round_trip_rate(),
                Unit::MegabytesPerSecond,
            )),
        ),
    ]
}

fn memory(memory: &Memory) -> Row {
    Row::new(
        format!("daemon peak resident, {} MiB model", memory.size >> 20),
        Some(Figure::new(memory.peak_mib(), Unit::Mebibytes)),
        Goal::AtMost(Figure::new(PEAK_MEMORY_MIB, Unit::Mebibytes)),
    )
}

fn shuffled(run: &Run) -> Row {
    let shuffled = Large::of(run.large, &large::SHUFFLE);
    let legacy = run.legacy.transfers.as_ref().ok();
    Row::new(
        "stored / raw, shuffle-zstd",
        Some(Figure::new(shuffled.stored_ratio(), Unit::Fraction)),
        Goal::AtMost(Figure::new(SHUFFLED_RATIO, Unit::Fraction)),
    )
    .against(
        "legacy zlib 9",
        legacy.map(|t| Figure::new(t.ratio, Unit::Fraction)),
    )
}

fn stored(run: &Run) -> Row {
    let default = Large::of(run.large, &large::DEFAULT);
    let legacy = run.legacy.transfers.as_ref().ok();
    Row::new(
        "stored / raw, auto (default)",
        Some(Figure::new(default.stored_ratio(), Unit::Fraction)),
        Goal::AtMost(Figure::new(STORED_RATIO, Unit::Fraction)),
    )
    .against(
        "legacy zlib 9",
        legacy.map(|t| Figure::new(t.ratio, Unit::Fraction)),
    )
}
