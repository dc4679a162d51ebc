//! The real `modelsync` binary as a process of its own, as trainers meet
//! it: on a socket in a temporary folder, with the benchmark's Redis, and
//! killed when dropped. Being a separate process is what lets its peak
//! resident memory be read from the kernel.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use modelsync::cli::connect;
use modelsync::proto::v1::model_sync_client::ModelSyncClient;
use tempfile::TempDir;
use tonic::transport::Channel;

pub type Client = ModelSyncClient<Channel>;

pub struct Daemon {
    child: Child,
    socket: PathBuf,
    dir: TempDir,
}

impl Daemon {
    /// Starts the daemon with its default settings and waits until it
    /// accepts connections.
    pub async fn start(binary: &Path, redis_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder for the daemon");
        let socket = dir.path().join("modelsync.sock");
        let identity = dir.path().join("identity.yaml");
        fs::write(&identity, "address: bench-node\n").expect("writing the identity file");
        let log = File::create(dir.path().join("daemon.log")).expect("creating the daemon log");

        let mut command = Command::new(binary);
        // Settings exported for some other daemon must not change this one.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MODELSYNC_") {
                command.env_remove(name);
            }
        }
        let child = command
            .arg("--socket")
            .arg(&socket)
            .arg("serve")
            .arg("--identity")
            .arg(&identity)
            .args(["--redis", redis_url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));

        let mut daemon = Daemon { child, socket, dir };
        daemon.wait_until_ready().await;
        daemon
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn client(&self) -> Client {
        connect(&self.socket)
            .await
            .unwrap_or_else(|e| panic!("connecting to the daemon: {e}"))
    }

    /// The most memory the process has held resident since it started
    /// (VmHWM), in bytes.
    pub fn peak_resident_bytes(&self) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{path} has no VmHWM line"));
        kib << 10
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the daemon exited at start ({status}):\n{}", self.log());
            }
            if connect(&self.socket).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the daemon did not listen within 10 s:\n{}", self.log());
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
