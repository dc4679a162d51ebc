//! TLS to Redis against a real `redis-server` listening with TLS only, on a
//! CA and certificates each test makes for itself: round trips with and
//! without client certificates, an untrusted server certificate, and each
//! end speaking a different protocol from the other.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use modelsync::config::{Config, RedisTls};
use modelsync::proto::v1 as api;
use support::{
    header, pull, push, sample, Certificates, Client, ClientCertificates, Daemon, RedisServer,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

const BINARY: &str = env!("CARGO_BIN_EXE_modelsync");

/// A test daemon for `url` that trusts `ca` and presents the client
/// certificate of `client`, if given.
fn tls_config(url: &str, ca: &Certificates, client: Option<&Certificates>) -> Config {
    let mut config = support::config(url);
    let (cert, key) = match client {
        Some(c) => (Some(c.client_cert()), Some(c.client_key())),
        None => (None, None),
    };
    config.redis.tls = RedisTls::load(Some(&ca.ca()), cert.as_deref(), key.as_deref()).unwrap();
    config
}

fn exists_request() -> api::ExistsRequest {
    api::ExistsRequest {
        namespace: "ns".into(),
        key: "k".into(),
        ..Default::default()
    }
}

/// Pushes a small and a multi-chunk model, pulls both back whole.
async fn round_trip(client: &mut Client) {
    for (key, len, seed) in [("small", 1000, 1), ("large", 9 << 20, 2)] {
        let pushed = push(client, header("ns", key), sample(len, seed))
            .await
            .unwrap();
        assert_eq!(pushed.version, 1);
        let (_, data) = pull(client, "ns", key).await.unwrap();
        assert!(data == sample(len, seed), "{key} came back different");
    }
}

async fn health(daemon: &Daemon) -> ServingStatus {
    let channel = modelsync::cli::channel(&daemon.socket).await.unwrap();
    let request = HealthCheckRequest {
        service: "modelsync.v1.ModelSync".into(),
    };
    let response = HealthClient::new(channel).check(request).await.unwrap();
    response.into_inner().status()
}

/// The first call's error, and how long it took. The connect timeout of
/// the test daemon is 0.5 s.
async fn first_failure(config: Config) -> (tonic::Status, Duration) {
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;
    let started = Instant::now();
    let err = client.exists(exists_request()).await.unwrap_err();
    let took = started.elapsed();
    eprintln!("failed after {took:?}: {}", err.message());
    (err, took)
}

/// A bound on hanging, not a benchmark: ten times the connect timeout.
const NO_HANG: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_round_trip_over_rediss_with_a_ca_file() {
    let certificates = Certificates::generate("a");
    let redis = RedisServer::start_tls(&certificates, ClientCertificates::Optional);
    let daemon = Daemon::start_with(tls_config(&redis.url(), &certificates, None)).await;
    let mut client = daemon.client().await;

    round_trip(&mut client).await;
    let status = client
        .status(api::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.redis_endpoint,
        format!("rediss://127.0.0.1:{}/0", redis.port)
    );
    for _ in 0..50 {
        if health(&daemon).await == ServingStatus::Serving {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health never became SERVING over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_requiring_client_certificates_accepts_ours_and_refuses_none() {
    let certificates = Certificates::generate("a");
    let redis = RedisServer::start_tls(&certificates, ClientCertificates::Required);

    let with_cert = tls_config(&redis.url(), &certificates, Some(&certificates));
    let daemon = Daemon::start_with(with_cert).await;
    round_trip(&mut daemon.client().await).await;

    let without = tls_config(&redis.url(), &certificates, None);
    let (err, took) = first_failure(without).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("client certificate") && err.message().contains("redis_cert_file"),
        "{}",
        err.message()
    );
    assert!(took < NO_HANG, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_a_certificate_error() {
    let server_side = Certificates::generate("a");
    let other = Certificates::generate("b");
    let redis = RedisServer::start_tls(&server_side, ClientCertificates::Optional);

    let (err, took) = first_failure(tls_config(&redis.url(), &other, None)).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let message = err.message();
    assert!(
        message.contains("TLS handshake with redis at rediss://127.0.0.1:")
            && message.contains("not signed by a trusted CA")
            && message.contains("redis_ca_file"),
        "{message}"
    );
    assert!(took < NO_HANG, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_against_a_plain_port_fails_within_the_connect_timeout_naming_the_mismatch() {
    let certificates = Certificates::generate("a");
    let plain = RedisServer::start();
    let url = format!("rediss://127.0.0.1:{}/0", plain.port);

    let (err, took) = first_failure(tls_config(&url, &certificates, None)).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let expected = format!(
        "TLS handshake with redis at rediss://127.0.0.1:{}/0 failed",
        plain.port
    );
    assert!(
        err.message().contains(&expected)
            && err.message().contains("is that port plain (use redis://)?"),
        "{}",
        err.message()
    );
    assert!(took < NO_HANG, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_against_a_tls_port_fails_within_the_connect_timeout_suggesting_rediss() {
    let certificates = Certificates::generate("a");
    let redis = RedisServer::start_tls(&certificates, ClientCertificates::Optional);
    let url = format!("redis://127.0.0.1:{}/0", redis.port);

    let (err, took) = first_failure(support::config(&url)).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("redis://127.0.0.1:{}/0", redis.port))
            && err.message().contains("use rediss://"),
        "{}",
        err.message()
    );
    assert!(took < NO_HANG, "took {took:?}");
}

/// The daemon binary at trace level, its log drained by a thread.
struct Running {
    child: Child,
    logs: std::thread::JoinHandle<String>,
}

fn spawn_daemon(dir: &Path, args: &[&str]) -> Running {
    let identity = dir.join("identity.yaml");
    std::fs::write(&identity, "address: node-tls\n").unwrap();
    let mut child = Command::new(BINARY)
        .arg("--socket")
        .arg(dir.join("s.sock"))
        .arg("serve")
        .arg("--identity")
        .arg(&identity)
        .args(args)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    Running { child, logs }
}

fn stop(mut daemon: Running) -> String {
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    let _ = daemon.child.wait();
    daemon.logs.join().unwrap()
}

/// The base64 lines of a PEM file: what must never be shown of a key.
fn pem_body(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with("-----") && line.len() >= 16)
        .map(str::to_string)
        .collect();
    assert!(!lines.is_empty(), "{text}");
    lines
}

async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_key_never_reaches_logs_status_metrics_or_config_check() {
    let certificates = Certificates::generate("a");
    let redis = RedisServer::start_tls(&certificates, ClientCertificates::Required);
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (
        certificates.ca(),
        certificates.client_cert(),
        certificates.client_key(),
    );
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let url = redis.url();
    let args = [
        "--redis",
        url.as_str(),
        "--redis-ca-file",
        ca.to_str().unwrap(),
        "--redis-cert-file",
        cert.to_str().unwrap(),
        "--redis-key-file",
        key.to_str().unwrap(),
        "--metrics-addr",
        metrics.as_str(),
    ];
    let daemon = spawn_daemon(dir.path(), &args);
    let mut client = support::connect_when_ready(&dir.path().join("s.sock")).await;
    round_trip(&mut client).await;
    let status = client
        .status(api::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let text = scrape(&metrics).await;
    assert!(text.contains("modelsync_redis_up 1"), "{text}");

    let check = Command::new(BINARY)
        .args(["config", "check", "/dev/null", "--identity"])
        .arg(dir.path().join("identity.yaml"))
        .args(&args[..8])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(check.status.success(), "{check:?}");
    assert!(
        shown.contains("client.key"),
        "the key's path is shown: {shown}"
    );

    let logs = stop(daemon);
    assert!(logs.contains("TRACE"), "the log is at trace level");
    for line in pem_body(&key) {
        for (what, text) in [("log", &logs), ("config check", &shown), ("metrics", &text)] {
            assert!(
                !text.contains(&line),
                "the client key leaked into the {what}"
            );
        }
        assert!(!format!("{status:?}").contains(&line));
    }
}

#[test]
fn tls_settings_that_cannot_work_exit_64_with_one_line_naming_the_problem() {
    let certificates = Certificates::generate("a");
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.yaml");
    std::fs::write(&identity, "address: node-a\n").unwrap();
    let not_pem = dir.path().join("not-a-ca.txt");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let key = certificates.client_key().display().to_string();
    let ca = certificates.ca().display().to_string();
    let cases = [
        (
            format!("redis: rediss://127.0.0.1:6390/0\nredis_key_file: {key}\n"),
            "redis_key_file: is set without redis_cert_file",
        ),
        (
            format!(
                "redis: rediss://127.0.0.1:6390/0\nredis_ca_file: {}\n",
                not_pem.display()
            ),
            "not-a-ca.txt: holds no PEM certificate",
        ),
        (
            "redis: rediss://127.0.0.1:6390/0\nredis_ca_file: /nonexistent/ca.pem\n".to_string(),
            "/nonexistent/ca.pem: cannot read it",
        ),
        (
            format!("redis: redis://127.0.0.1:6390/0\nredis_ca_file: {ca}\n"),
            "use rediss://",
        ),
        (
            format!(
                "redis: rediss://127.0.0.1:6390/0\nredis_cert_file: {ca}\nredis_key_file: {key}\n"
            ),
            "client.key: the client certificate and key do not go together",
        ),
    ];
    for (text, expected) in cases {
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, format!("identity: {}\n{text}", identity.display())).unwrap();
        let output = Command::new(BINARY)
            .args(["config", "check"])
            .arg(&file)
            .env_remove("MODELSYNC_REDIS_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{text}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
}
