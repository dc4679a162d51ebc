//! The legacy Python client, run against the benchmark's Redis on the same
//! bytes, so that every baseline comes from the same run as the figure it
//! is compared with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::measure::{rate, Percentiles};
use crate::options::Options;
use crate::report::{item, section};
use crate::small::SmallCalls;

/// A Python that has what the legacy client imports.
struct Python {
    program: String,
    baseline: PathBuf,
}

/// The legacy client's large transfers, fastest round each, and Python's
/// own raw SET and GET of the same bytes.
#[derive(Debug, Clone, Copy)]
pub struct Transfers {
    pub push: Duration,
    pub pull: Duration,
    pub raw_set: Duration,
    pub raw_get: Duration,
    /// Stored size over raw size with zlib at level 9.
    pub ratio: f64,
}

/// Both legacy runs, or why each could not be made.
pub struct Baseline {
    pub transfers: Result<Transfers, String>,
    pub small: Result<SmallCalls, String>,
}

type Lines = HashMap<String, Vec<f64>>;

impl Baseline {
    pub fn measure(options: &Options, redis_url: &str, model: &Path) -> Self {
        match Python::probe(options) {
            Ok(python) => Baseline {
                transfers: python.transfers(redis_url, model, options.rounds),
                small: python.small_calls(redis_url, options.latency_calls),
            },
            Err(reason) => Baseline {
                transfers: Err(reason.clone()),
                small: Err(reason),
            },
        }
    }

    pub fn print(&self, bytes: u64) {
        section("legacy Python client, same Redis, same bytes");
        match &self.transfers {
            Ok(t) => {
                item("push (pickle, zlib 9)", rate(bytes, t.push));
                item("pull", rate(bytes, t.pull));
                item("stored / raw", format!("{:.3}", t.ratio));
                item("raw SET, redis-py", rate(bytes, t.raw_set));
                item("raw GET, redis-py", rate(bytes, t.raw_get));
            }
            Err(reason) => item("large transfers", format!("skipped: {reason}")),
        }
        match &self.small {
            Ok(calls) => {
                item("4 KB push", calls.push);
                item("4 KB pull", calls.pull);
            }
            Err(reason) => item("4 KB calls", format!("skipped: {reason}")),
        }
    }
}

impl Python {
    /// Finds a Python that imports numpy and redis, or says why not.
    fn probe(options: &Options) -> Result<Python, String> {
        let python = Python {
            program: options.python.clone(),
            baseline: options.shared.join("baseline"),
        };
        python
            .output(&["-c", "import numpy, redis"])
            .map_err(|e| format!("the legacy client needs numpy and redis: {e}"))?;
        Ok(python)
    }

    fn transfers(&self, redis_url: &str, model: &Path, rounds: usize) -> Result<Transfers, String> {
        let script = self.baseline.join("legacy_push_pull.py");
        let lines = parse(&self.output(&[
            &script.to_string_lossy(),
            "bench",
            "--redis",
            redis_url,
            "--file",
            &model.to_string_lossy(),
            "--rounds",
            &rounds.to_string(),
        ])?);
        Ok(Transfers {
            push: seconds(&lines, "legacy_push", 0)?,
            pull: seconds(&lines, "legacy_pull", 0)?,
            raw_set: seconds(&lines, "raw_set", 0)?,
            raw_get: seconds(&lines, "raw_get", 0)?,
            ratio: value(&lines, "legacy_ratio", 0)?,
        })
    }

    fn small_calls(&self, redis_url: &str, calls: usize) -> Result<SmallCalls, String> {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/modelsync/legacy_latency.py");
        let lines = parse(&self.output(&[
            &script.to_string_lossy(),
            &self.baseline.to_string_lossy(),
            redis_url,
            &calls.to_string(),
        ])?);
        let percentiles = |phase| -> Result<Percentiles, String> {
            Ok(Percentiles {
                p50: seconds(&lines, phase, 0)?,
                p99: seconds(&lines, phase, 1)?,
            })
        };
        Ok(SmallCalls {
            push: percentiles("legacy_push_4k")?,
            pull: percentiles("legacy_pull_4k")?,
            floor: None,
        })
    }

    /// Runs Python and returns what it printed, or why it failed.
    fn output(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.program)
            .args(args)
            // Keeps the shared folder free of bytecode caches.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.program))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().last().unwrap_or("no message");
            return Err(format!("{} {} failed: {last}", self.program, args[0]));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Reads lines of `name number...`; other lines are ignored.
fn parse(stdout: &str) -> Lines {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?.to_string();
            let numbers = words
                .map(str::parse)
                .collect::<Result<Vec<f64>, _>>()
                .ok()?;
            Some((name, numbers))
        })
        .collect()
}

fn value(lines: &Lines, name: &str, index: usize) -> Result<f64, String> {
    lines
        .get(name)
        .and_then(|numbers| numbers.get(index).copied())
        .ok_or_else(|| format!("the legacy run printed no {name} line"))
}

fn seconds(lines: &Lines, name: &str, index: usize) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value(lines, name, index)?).map_err(|e| format!("{name}: {e}"))
}
