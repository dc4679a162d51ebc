//! What operators rely on: the health service following Redis, reflection,
//! Prometheus metrics after a known sequence of calls, JSON logs without
//! secrets, and `config check`.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use modelsync::proto::v1 as api;
use support::{free_port, header, pull, push, sample, Daemon, RedisServer};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

const BINARY: &str = env!("CARGO_BIN_EXE_modelsync");

async fn health(socket: &Path) -> ServingStatus {
    let channel = modelsync::cli::channel(socket).await.unwrap();
    let request = HealthCheckRequest {
        service: "modelsync.v1.ModelSync".into(),
    };
    let response = HealthClient::new(channel).check(request).await.unwrap();
    response.into_inner().status()
}

async fn wait_for_health(socket: &Path, wanted: ServingStatus) {
    for _ in 0..100 {
        if health(socket).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health never became {wanted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_only_while_redis_answers() {
    let mut redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;

    wait_for_health(&daemon.socket, ServingStatus::Serving).await;
    redis.stop();
    wait_for_health(&daemon.socket, ServingStatus::NotServing).await;
    redis.restart();
    wait_for_health(&daemon.socket, ServingStatus::Serving).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_api_and_health() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let channel = modelsync::cli::channel(&daemon.socket).await.unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a list of services: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"modelsync.v1.ModelSync".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}

/// The daemon binary, and a thread that drains its log: a full pipe would
/// block the daemon mid-call.
struct Running {
    child: Child,
    logs: std::thread::JoinHandle<String>,
}

/// The daemon binary with its own socket and identity in `dir`.
fn spawn_daemon(dir: &Path, redis_url: &str, extra: &[&str], rust_log: &str) -> Running {
    let identity = dir.join("identity.yaml");
    std::fs::write(&identity, "address: node-ops\n").unwrap();
    let mut child = Command::new(BINARY)
        .arg("--socket")
        .arg(dir.join("s.sock"))
        .arg("serve")
        .arg("--identity")
        .arg(&identity)
        .args(["--redis", redis_url])
        .args(extra)
        .env("RUST_LOG", rust_log)
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

/// Stops the daemon with SIGTERM and returns everything it logged.
fn stop(mut daemon: Running) -> String {
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    let _ = daemon.child.wait();
    daemon.logs.join().unwrap()
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_sequence_of_calls() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = spawn_daemon(dir.path(), &redis.url(), &["--metrics-addr", &addr], "warn");
    let mut client = support::connect_when_ready(&dir.path().join("s.sock")).await;

    push(&mut client, header("ns", "a"), sample(5000, 1))
        .await
        .unwrap();
    push(&mut client, header("ns", "b"), sample(7000, 2))
        .await
        .unwrap();
    pull(&mut client, "ns", "a").await.unwrap();
    pull(&mut client, "ns", "absent").await.unwrap_err();
    push(&mut client, header("", "k"), sample(1, 1))
        .await
        .unwrap_err();

    let text = scrape(&addr).await;
    assert_eq!(
        metric(
            &text,
            "modelsync_calls_total",
            &["method=\"push\"", "code=\"OK\""]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "modelsync_calls_total",
            &["method=\"push\"", "code=\"INVALID_ARGUMENT\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "modelsync_calls_total",
            &["method=\"pull\"", "code=\"OK\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "modelsync_calls_total",
            &["method=\"pull\"", "code=\"NOT_FOUND\""]
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "modelsync_raw_bytes_total", &["direction=\"push\""]),
        12000.0
    );
    assert_eq!(
        metric(&text, "modelsync_raw_bytes_total", &["direction=\"pull\""]),
        5000.0
    );
    assert_eq!(
        metric(
            &text,
            "modelsync_call_duration_seconds_count",
            &["method=\"push\""]
        ),
        3.0
    );
    assert!(metric(&text, "modelsync_stored_to_raw_ratio", &["codec=\"zstd\""]) > 0.0);
    assert_eq!(metric(&text, "modelsync_redis_up", &[]), 1.0);
    stop(daemon);
}

/// GET /metrics over a plain TCP connection to the daemon's own endpoint.
async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_line_by_line_and_never_show_the_password() {
    const PASSWORD: &str = "s3cret-Pa55word";
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    let daemon = spawn_daemon(dir.path(), &url, &["--log-format", "json"], "trace");
    let mut client = support::connect_when_ready(&dir.path().join("s.sock")).await;
    push(&mut client, header("ns", "k"), sample(100, 1))
        .await
        .unwrap();
    pull(&mut client, "ns", "k").await.unwrap();
    let status = client
        .status(api::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.redis_endpoint.contains(PASSWORD));

    let logs = stop(daemon);
    assert!(logs.lines().count() > 5, "{logs}");
    for line in logs.lines() {
        assert!(!line.contains(PASSWORD), "the password leaked: {line}");
        let _: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert!(
        logs.contains("listening") && logs.contains("stopped"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_reported_as_such_and_not_shown() {
    let redis = RedisServer::start_with(&["--requirepass", "right-one"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://:wrong-guess-77@127.0.0.1:{}/0", redis.port);
    let daemon = spawn_daemon(dir.path(), &url, &[], "debug");
    let mut client = support::connect_when_ready(&dir.path().join("s.sock")).await;

    let err = push(&mut client, header("ns", "k"), sample(10, 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("credentials"), "{}", err.message());
    assert!(!err.message().contains("wrong-guess-77"));
    let logs = stop(daemon);
    assert!(!logs.contains("wrong-guess-77"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_from_a_file_is_used_and_never_shown() {
    const PASSWORD: &str = "from-a-file-9f3b";
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("redis-password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let file = secret.to_str().unwrap();
    let daemon = spawn_daemon(dir.path(), &url, &["--redis-password-file", file], "trace");
    let mut client = support::connect_when_ready(&dir.path().join("s.sock")).await;

    push(&mut client, header("ns", "k"), sample(100, 1))
        .await
        .unwrap();
    assert_eq!(
        pull(&mut client, "ns", "k").await.unwrap().1,
        sample(100, 1)
    );
    let logs = stop(daemon);
    assert!(!logs.contains(PASSWORD), "the password leaked into the log");
}

#[test]
fn config_check_accepts_a_good_file_and_names_the_line_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.yaml");
    std::fs::write(&identity, "address: node-a\n").unwrap();
    let good = dir.path().join("good.yaml");
    let text = format!(
        "identity: {}\nredis: redis://app:hush-hush@127.0.0.1:6390/0\nnamespaces:\n  old:\n    layout: legacy\n    trust_pickle: true\n",
        identity.display()
    );
    std::fs::write(&good, text).unwrap();
    let output = Command::new(BINARY)
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        shown.contains("password: \"set\"") && !shown.contains("hush-hush"),
        "{shown}"
    );
    assert!(shown.contains("Legacy"), "{shown}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!("identity: {}\nchunk_sise: 10\n", identity.display()),
    )
    .unwrap();
    let output = Command::new(BINARY)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("chunk_sise") && stderr.contains("line 2"),
        "{stderr}"
    );
}
