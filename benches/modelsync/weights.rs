//! The real trained weights every comparison runs on, fetched once and
//! cached by the shared data script, which also checks their SHA-256.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use bytes::Bytes;

use crate::options::Options;

pub struct Weights {
    pub path: PathBuf,
    pub bytes: Bytes,
}

impl Weights {
    pub fn load(options: &Options) -> Self {
        let path = options.model.clone().unwrap_or_else(|| fetch(options));
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading the weights at {}: {e}", path.display()))
            .into();
        Weights { path, bytes }
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// 1,000 float32 from the middle of the weights: the 4 KB model.
    pub fn small(&self) -> Bytes {
        const SMALL: usize = 4_000;
        let start = (self.bytes.len() / 2).min(self.bytes.len().saturating_sub(SMALL));
        self.bytes
            .slice(start..(start + SMALL).min(self.bytes.len()))
    }
}

/// Runs the fetch script, which prints the cached file's path.
fn fetch(options: &Options) -> PathBuf {
    let script = options.shared.join("data/fetch-real-model.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}); set MODELSYNC_BENCH_MODEL to use another file",
        script.display(),
        output.status
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}
