//! What the benchmark can be told through the environment. Every variable
//! is listed, with its default, in the crate doc of `main.rs`.

use std::path::PathBuf;
use std::process::exit;
use std::time::Duration;

use crate::measure::grouped;

/// A bad value stops the run with EX_USAGE, naming the variable.
const EXIT_USAGE: i32 = 64;

pub const QUICK: &str = "MODELSYNC_BENCH_QUICK";
pub const DAEMON: &str = "MODELSYNC_BENCH_DAEMON";
pub const MODEL: &str = "MODELSYNC_BENCH_MODEL";
pub const PYTHON: &str = "MODELSYNC_BENCH_PYTHON";

/// The daemon built by the same `cargo bench` invocation as this file.
const BUILT_DAEMON: &str = env!("CARGO_BIN_EXE_modelsync");

#[derive(Debug)]
pub struct Options {
    pub quick: bool,
    /// Rounds of each large transfer; the fastest one counts.
    pub rounds: usize,
    /// Calls of each kind in the small-model latency runs.
    pub latency_calls: usize,
    pub clients: usize,
    pub concurrency_time: Duration,
    /// Size of the generated model whose daemon memory is measured.
    pub huge_size: u64,
    pub daemon: PathBuf,
    /// The weights to use instead of fetching the real ones.
    pub model: Option<PathBuf>,
    pub python: String,
    /// The shared folder (legacy client, data scripts), which sits beside
    /// the crate in every checkout.
    pub shared: PathBuf,
}

impl Options {
    pub fn from_env() -> Self {
        let quick = flag(QUICK);
        Options {
            quick,
            rounds: if quick { 1 } else { 5 },
            latency_calls: if quick { 200 } else { 2_000 },
            clients: 64,
            concurrency_time: Duration::from_secs(if quick { 2 } else { 10 }),
            huge_size: if quick { 256 << 20 } else { 2 << 30 },
            daemon: std::env::var_os(DAEMON).map_or_else(|| BUILT_DAEMON.into(), PathBuf::from),
            model: std::env::var_os(MODEL).map(PathBuf::from),
            python: std::env::var(PYTHON).unwrap_or_else(|_| "python3".into()),
            shared: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (best of {}, {} small calls, {} clients for {} s, {} MiB model for memory)",
            if self.quick { "quick" } else { "full" },
            self.rounds,
            grouped(self.latency_calls as u64),
            self.clients,
            self.concurrency_time.as_secs(),
            self.huge_size >> 20,
        )
    }
}

fn flag(name: &str) -> bool {
    match std::env::var(name).as_deref() {
        Err(_) | Ok("" | "0") => false,
        Ok("1") => true,
        Ok(other) => {
            eprintln!("{name}={other:?}: expected 1 or 0");
            exit(EXIT_USAGE);
        }
    }
}
