//! The modelsync benchmark: the daemon against the legacy Python client it
//! replaces and against plain Redis, on the same real weights, the same
//! machine and the same Redis, in one run; then a table of the project's
//! targets, each marked met or NOT met.
//!
//! Run it with `cargo bench --bench modelsync`. It starts its own
//! `redis-server` on a free loopback port (and kills it at the end) and the
//! daemon binary as separate processes; it never connects to any other
//! Redis. The legacy baselines need `python3` with numpy and redis
//! (`bash .ci/setup --tests` installs them); without them those rows read
//! n/a and the reason is printed. The full run takes a few minutes.
//!
//! Environment:
//! - `MODELSYNC_BENCH_QUICK=1`: a smoke run: one round per transfer, 200
//!   small calls, 2 s of concurrency and a 256 MiB model for memory
//!   [default: 0: five rounds, 2,000 calls, 10 s and 2 GiB].
//! - `MODELSYNC_BENCH_DAEMON=PATH`: the daemon binary [default: the one
//!   built by the same `cargo bench`, `target/release/modelsync`].
//! - `MODELSYNC_BENCH_MODEL=PATH`: weights to use instead of the real ones,
//!   which `../shared/data/fetch-real-model.sh` fetches once and caches
//!   under `MODELSYNC_DATA_DIR` [default: `~/.cache/modelsync-data`].
//! - `MODELSYNC_BENCH_PYTHON=PROGRAM`: the Python for the legacy client
//!   [default: python3].
//!
//! MB is 10^6 bytes, as the legacy client counts it; MiB is 2^20. A
//! transfer's figure is its fastest round; latencies are nearest-rank
//! percentiles over every call.

mod concurrency;
mod daemon;
mod large;
mod legacy;
mod machine;
mod measure;
mod memory;
mod notification;
mod options;
mod raw_redis;
mod redis_server;
mod report;
mod small;
mod targets;
mod transfer;
mod weights;

use tokio::runtime::Runtime;

use crate::concurrency::Concurrency;
use crate::daemon::Daemon;
use crate::large::Large;
use crate::legacy::Baseline;
use crate::machine::Machine;
use crate::measure::grouped;
use crate::memory::MIB;
use crate::options::Options;
use crate::redis_server::RedisServer;
use crate::report::{item, section};
use crate::small::SmallCalls;
use crate::weights::Weights;

fn main() {
    // `cargo test --benches` runs this without `--bench`; a run of several
    // minutes has no place there.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("modelsync benchmark: run it with `cargo bench --bench modelsync`");
        return;
    }

    let options = Options::from_env();
    let weights = Weights::load(&options);
    print_preamble(&options, &weights);

    let redis = RedisServer::start();
    let url = redis.url();
    let runtime = Runtime::new().expect("starting the async runtime");

    let legacy = Baseline::measure(&options, &url, &weights.path);
    legacy.print(weights.len());
    let raw = raw_redis::measure(&url, &weights.bytes, options.rounds);
    raw.print(weights.len());
    let (large, small, concurrency) = through_one_daemon(&runtime, &options, &url, &weights);
    let notification = runtime.block_on(between_daemons(&options, &url, &weights));
    notification.print(options.latency_calls);
    let memory = runtime.block_on(memory::measure(&options.daemon, &url, options.huge_size));
    memory.print();

    section("targets");
    let run = targets::Run {
        raw_size: weights.len(),
        legacy: &legacy,
        raw: &raw,
        large: &large,
        small: &small,
        concurrency: &concurrency,
        memory: &memory,
    };
    report::print(&targets::rows(&run));
}

fn print_preamble(options: &Options, weights: &Weights) {
    let machine = Machine::probe();
    println!("modelsync benchmark");
    item("date", &machine.date);
    item(
        "machine",
        format!("{}, {} cores", machine.arch, machine.cores),
    );
    item("commit", &machine.commit);
    item("daemon", options.daemon.display());
    item(
        "weights",
        format!(
            "{} ({} bytes)",
            weights.path.display(),
            grouped(weights.len())
        ),
    );
    item("mode", options.describe());
}

/// Commit-to-notification delay from one daemon process to another.
async fn between_daemons(
    options: &Options,
    redis_url: &str,
    weights: &Weights,
) -> notification::Notification {
    let pushing = Daemon::start(&options.daemon, redis_url).await;
    let watching = Daemon::start(&options.daemon, redis_url).await;
    let (mut pusher, mut watcher) = (pushing.client().await, watching.client().await);
    notification::measure(
        &mut pusher,
        &mut watcher,
        weights.small(),
        options.latency_calls,
    )
    .await
}

/// Large transfers, small calls and many clients, all through one daemon
/// process with its default settings.
fn through_one_daemon(
    runtime: &Runtime,
    options: &Options,
    redis_url: &str,
    weights: &Weights,
) -> (Vec<Large>, SmallCalls, Concurrency) {
    let daemon = runtime.block_on(Daemon::start(&options.daemon, redis_url));
    let mut client = runtime.block_on(daemon.client());

    let large = large::measure(runtime, &mut client, &weights.bytes, options.rounds);
    Large::print_all(&large, options.rounds);

    let small = runtime.block_on(small::measure(
        &mut client,
        weights.small(),
        options.latency_calls,
    ));
    small.print(options.latency_calls);

    let concurrency = runtime.block_on(concurrency::measure(
        daemon.socket(),
        &weights.bytes,
        options.clients,
        options.concurrency_time,
    ));
    concurrency.print();
    item(
        "daemon peak resident so far",
        format!("{:.1} MiB", daemon.peak_resident_bytes() as f64 / MIB),
    );
    (large, small, concurrency)
}
