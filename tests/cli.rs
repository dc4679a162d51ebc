//! The command line as a user runs it, on the real model weights.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{Daemon, RedisServer};

const BINARY: &str = env!("CARGO_BIN_EXE_modelsync");

fn cli(socket: &Path, args: &[&str]) -> Output {
    Command::new(BINARY)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

/// The real weights, fetched once by the shared script beside the
/// repository.
fn real_model() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fetch-real-model.sh");
    let output = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        output.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_weights_go_through_the_cli_byte_identical() {
    let model = real_model();
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let socket = daemon.socket.clone();
    let out = daemon.dir().join("pulled.safetensors");
    let model_arg = model.to_str().unwrap().to_string();
    let out_arg = out.to_str().unwrap().to_string();

    let (push, pull, exists) = tokio::task::spawn_blocking(move || {
        let push = cli(
            &socket,
            &[
                "push",
                "-n",
                "models",
                "-k",
                "minilm",
                &model_arg,
                "--meta",
                "format=safetensors",
            ],
        );
        let pull = cli(
            &socket,
            &["pull", "-n", "models", "-k", "minilm", "-o", &out_arg],
        );
        let exists = cli(&socket, &["exists", "-n", "models", "-k", "minilm"]);
        (push, pull, exists)
    })
    .await
    .unwrap();

    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    let summary = String::from_utf8_lossy(&push.stderr);
    assert!(
        summary.contains("pushed minilm version 1: 90868376 bytes"),
        "{summary}"
    );
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    assert!(
        std::fs::read(&model).unwrap() == std::fs::read(&out).unwrap(),
        "pulled bytes differ"
    );
    assert!(exists.status.success());
    assert!(String::from_utf8_lossy(&exists.stdout).contains("version 1: 90868376 bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_of_a_missing_key_exits_3_and_leaves_no_file() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let socket = daemon.socket.clone();
    let out = daemon.dir().join("never.bin");
    let out_arg = out.to_str().unwrap().to_string();

    let (pull, exists) = tokio::task::spawn_blocking(move || {
        let pull = cli(&socket, &["pull", "-n", "ns", "-k", "nope", "-o", &out_arg]);
        let exists = cli(&socket, &["exists", "-n", "ns", "-k", "nope"]);
        (pull, exists)
    })
    .await
    .unwrap();

    assert_eq!(pull.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&pull.stderr).contains("NOT_FOUND"));
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(daemon.dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().contains("partial")),
        "{leftovers:?}"
    );
    assert_eq!(exists.status.code(), Some(3));
}

#[test]
fn a_client_command_without_a_daemon_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let output = cli(&socket, &["exists", "-n", "ns", "-k", "k"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the daemon") && stderr.contains("absent.sock"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_input_fails_stores_nothing() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let socket = daemon.socket.clone();
    let folder = daemon.dir().to_owned();

    let (push, exists) = tokio::task::spawn_blocking(move || {
        // A folder as standard input: the first read fails.
        let push = Command::new(BINARY)
            .arg("--socket")
            .arg(&socket)
            .args(["push", "-n", "ns", "-k", "broken", "-"])
            .stdin(std::fs::File::open(&folder).unwrap())
            .output()
            .unwrap();
        let exists = cli(&socket, &["exists", "-n", "ns", "-k", "broken"]);
        (push, exists)
    })
    .await
    .unwrap();

    assert_eq!(push.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&push.stderr).contains("cannot read the input"));
    assert_eq!(exists.status.code(), Some(3), "nothing was stored");
}
