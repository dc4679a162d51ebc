//! Start-up and shutdown of the real binary and of its socket: leftovers,
//! a live daemon in the way, bad identity files, SIGTERM mid-pull.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use modelsync::proto::v1 as api;
use modelsync::socket::{bind, SocketError};
use support::{header, push, sample, Daemon, RedisServer};

const BINARY: &str = env!("CARGO_BIN_EXE_modelsync");

#[tokio::test]
async fn a_leftover_socket_is_replaced_and_folders_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/nested/modelsync.sock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "the leftover is there");

    let (_listener, file) = bind(&path, 0o660).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    drop(file);
    assert!(!path.exists(), "the socket is removed with its guard");

    let fresh = dir.path().join("a/b/c.sock");
    let (_listener, _file) = bind(&fresh, 0o600).unwrap();
    assert!(fresh.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_daemon_keeps_its_socket() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;

    let err = bind(&daemon.socket, 0o660).unwrap_err();
    assert!(matches!(err, SocketError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("already listening"), "{err}");

    let mut client = daemon.client().await;
    push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .expect("the first daemon still serves");
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("modelsync.sock");
    std::fs::write(&path, b"precious").unwrap();

    let err = bind(&path, 0o660).unwrap_err();
    assert!(matches!(err, SocketError::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

fn serve(socket: &Path, identity: &Path, redis: &str) -> Child {
    Command::new(BINARY)
        .arg("--socket")
        .arg(socket)
        .arg("serve")
        .arg("--identity")
        .arg(identity)
        .args(["--redis", redis, "--shutdown-grace", "20"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn startup_error(identity_text: Option<&str>) -> (i32, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.yaml");
    if let Some(text) = identity_text {
        std::fs::write(&identity, text).unwrap();
    }
    let output = serve(
        &dir.path().join("s.sock"),
        &identity,
        "redis://127.0.0.1:1/0",
    )
    .wait_with_output()
    .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    (output.status.code().unwrap(), stderr, identity)
}

#[test]
fn a_bad_identity_file_stops_startup_with_one_line_and_status_64() {
    let cases = [
        (None, "cannot read it"),
        (Some("address: [unclosed\n"), "not valid YAML"),
        (Some("name: node-a\n"), "`address` is missing"),
        (Some("address:\n"), "`address` is empty"),
        (Some("- a\n- b\n"), "expected a mapping"),
    ];
    for (text, problem) in cases {
        let (code, stderr, path) = startup_error(text);
        assert_eq!(code, 64, "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(stderr.contains(problem), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_is_kept_exactly_as_written() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.yaml");
    std::fs::write(&identity, "address: 0x00Ab12\nrack: 007\nzone: 'eu-1'\n").unwrap();
    let socket = dir.path().join("s.sock");
    let mut daemon = serve(&socket, &identity, &redis.url());
    support::connect_when_ready(&socket).await;

    let mut client = modelsync::cli::connect(&socket).await.unwrap();
    let status = client
        .status(api::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.address, "0x00Ab12");
    assert_eq!(status.labels["rack"], "007");
    assert_eq!(status.labels["zone"], "eu-1");

    push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .unwrap();
    let (info, _) = support::pull(&mut client, "ns", "k").await.unwrap();
    assert_eq!(info.updater, "0x00Ab12");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_pull_lets_it_finish_then_removes_the_socket() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.yaml");
    std::fs::write(&identity, "address: node-a\n").unwrap();
    let socket = dir.path().join("s.sock");
    let daemon = serve(&socket, &identity, &redis.url());
    support::connect_when_ready(&socket).await;

    let mut client = modelsync::cli::connect(&socket).await.unwrap();
    let data = sample(48 << 20, 3);
    push(&mut client, header("ns", "big"), data.clone())
        .await
        .unwrap();

    let request = api::PullRequest {
        namespace: "ns".into(),
        key: "big".into(),
        ..Default::default()
    };
    let mut stream = client.pull(request).await.unwrap().into_inner();
    let _header = stream.message().await.unwrap().unwrap();
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };

    let mut received = Vec::with_capacity(data.len());
    while let Some(message) = stream.message().await.unwrap() {
        if let Some(api::pull_response::Message::Data(bytes)) = message.message {
            received.extend_from_slice(&bytes);
        }
    }
    assert!(received == data, "the pull in flight finished whole");

    let status = tokio::task::spawn_blocking(move || daemon.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(!socket.exists(), "the socket file is removed");
    let log = String::from_utf8_lossy(&status.stderr);
    assert!(log.contains("draining") && log.contains("stopped"), "{log}");
}
