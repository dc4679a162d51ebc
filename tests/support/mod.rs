//! Fixtures shared by the integration tests: a real `redis-server` on a
//! free port in a temporary folder, killed when dropped; the daemon served
//! in-process through the library's `run` on a socket of its own; and a
//! gRPC client over that socket.

#![allow(dead_code)]

mod certificates;
pub mod cluster;

pub use certificates::Certificates;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use modelsync::cli::connect;
use modelsync::config::{Config, RedisConfig, RedisTls};
use modelsync::identity::Identity;
use modelsync::proto::v1 as api;
use modelsync::proto::v1::model_sync_client::ModelSyncClient;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Status;

pub type Client = ModelSyncClient<Channel>;

/// A `redis-server` of the test's own.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
    extra: Vec<String>,
    tls: Option<TlsListener>,
}

/// Whether a TLS server asks clients for a certificate
/// (`--tls-auth-clients`).
#[derive(Clone, Copy, Debug)]
pub enum ClientCertificates {
    Optional,
    Required,
}

/// A server that listens with TLS only, on certificates of the test's own.
struct TlsListener {
    certificates: Certificates,
    clients: ClientCertificates,
}

impl TlsListener {
    fn args(&self, port: u16) -> Vec<String> {
        let path = |p: PathBuf| p.display().to_string();
        let clients = match self.clients {
            ClientCertificates::Optional => "optional",
            ClientCertificates::Required => "yes",
        };
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(self.certificates.server_cert()),
            "--tls-key-file".into(),
            path(self.certificates.server_key()),
            "--tls-ca-cert-file".into(),
            path(self.certificates.ca()),
            "--tls-auth-clients".into(),
            clients.into(),
        ]
    }
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server on a given port.
    pub fn start_on(port: u16) -> Self {
        Self::start_full(port, &[])
    }

    /// Starts a server with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_full(free_port(), extra)
    }

    /// Starts a server that speaks TLS only, with the server certificate
    /// of `certificates`, trusting their CA for client certificates.
    pub fn start_tls(certificates: &Certificates, clients: ClientCertificates) -> Self {
        let tls = TlsListener {
            certificates: certificates.clone(),
            clients,
        };
        Self::start_inner(free_port(), &[], Some(tls))
    }

    /// Starts a server on a given port with extra `redis-server` arguments.
    pub fn start_full(port: u16, extra: &[&str]) -> Self {
        Self::start_inner(port, extra, None)
    }

    fn start_inner(port: u16, extra: &[&str], tls: Option<TlsListener>) -> Self {
        let mut server = RedisServer {
            child: None,
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls,
        };
        server.restart();
        server
    }

    /// `rediss://` for a TLS server, else `redis://`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// How to reach this server, with its CA and the client certificate
    /// when it speaks TLS.
    pub fn redis_config(&self) -> RedisConfig {
        let mut config = RedisConfig::from_url(&self.url()).unwrap();
        if let Some(tls) = &self.tls {
            let c = &tls.certificates;
            config.tls =
                RedisTls::load(Some(&c.ca()), Some(&c.client_cert()), Some(&c.client_key()))
                    .unwrap();
        }
        config
    }

    fn client(&self) -> redis::Client {
        modelsync::redis::client(&self.redis_config()).unwrap()
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let listen = match &self.tls {
            Some(tls) => tls.args(self.port),
            None => vec!["--port".into(), self.port.to_string()],
        };
        let child = Command::new("redis-server")
            .args(&listen)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (see .ci/run)");
        self.child = Some(child);
        self.wait_until_ready();
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (SIGSTOP, SIGCONT) to the server process.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        unsafe { libc::kill(pid, signal) };
    }

    /// A plain connection for inspecting or damaging what is stored.
    pub fn connection(&self) -> redis::Connection {
        self.client().get_connection().unwrap()
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = self.client();
        while Instant::now() < deadline {
            if let Ok(mut conn) = client.get_connection() {
                // A server that wants a password is up all the same.
                match redis::cmd("PING").query::<String>(&mut conn) {
                    Ok(_) => return,
                    Err(e) if e.code() == Some("NOAUTH") => return,
                    Err(_) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemon, served in-process on a socket in a temporary folder.
pub struct Daemon {
    pub socket: PathBuf,
    dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), modelsync::RunError>>>,
}

/// A configuration for a test daemon: identity `node-test`, short timeouts.
pub fn config(redis_url: &str) -> Config {
    let identity = Identity {
        address: "node-test".into(),
        labels: Default::default(),
    };
    let mut redis = RedisConfig::from_url(redis_url).unwrap();
    redis.connect_timeout = Duration::from_millis(500);
    redis.response_timeout = Duration::from_secs(5);
    let mut config = Config::new(identity, redis);
    config.shutdown_grace = Duration::from_secs(5);
    config
}

impl Daemon {
    pub async fn start(redis_url: &str) -> Self {
        Self::start_with(config(redis_url)).await
    }

    pub async fn start_with(config: Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("modelsync.sock");
        let (listener, socket_file) = modelsync::socket::bind(&socket, config.socket_mode).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = modelsync::run(listener, config, async {
                let _ = stopped.await;
            })
            .await;
            drop(socket_file);
            result
        });
        Daemon {
            socket,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client {
        connect(&self.socket)
            .await
            .expect("connect to the test daemon")
    }

    /// Asks the daemon to shut down and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Connects to a daemon started as a separate process, once it listens.
pub async fn connect_when_ready(socket: &Path) -> Client {
    for _ in 0..400 {
        if let Ok(client) = connect(socket).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the daemon never listened at {}", socket.display());
}

/// The header of a push.
pub fn header(namespace: &str, key: &str) -> api::PushHeader {
    api::PushHeader {
        namespace: namespace.into(),
        key: key.into(),
        ..Default::default()
    }
}

/// Pushes `data` in messages of at most 1 MiB.
pub async fn push(
    client: &mut Client,
    header: api::PushHeader,
    data: Bytes,
) -> Result<api::PushResponse, Status> {
    let mut messages = vec![api::PushRequest {
        message: Some(api::push_request::Message::Header(header)),
    }];
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + (1 << 20)).min(data.len());
        messages.push(api::PushRequest {
            message: Some(api::push_request::Message::Data(data.slice(offset..end))),
        });
        offset = end;
    }
    push_messages(client, messages).await
}

/// Pushes exactly the given messages, for tests of malformed pushes.
pub async fn push_messages(
    client: &mut Client,
    messages: Vec<api::PushRequest>,
) -> Result<api::PushResponse, Status> {
    client
        .push(futures::stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

/// Pulls a model whole: its header and its bytes.
pub async fn pull(
    client: &mut Client,
    namespace: &str,
    key: &str,
) -> Result<(api::ModelHeader, Vec<u8>), Status> {
    let request = api::PullRequest {
        namespace: namespace.into(),
        key: key.into(),
        ..Default::default()
    };
    let mut stream = client.pull(request).await?.into_inner();
    let header = match stream.message().await?.and_then(|m| m.message) {
        Some(api::pull_response::Message::Header(h)) => h,
        other => panic!("a pull must start with its header, got {other:?}"),
    };
    let mut data = Vec::with_capacity(header.raw_size as usize);
    while let Some(message) = stream.message().await? {
        match message.message {
            Some(api::pull_response::Message::Data(bytes)) => data.extend_from_slice(&bytes),
            other => panic!("only data may follow the header, got {other:?}"),
        }
    }
    Ok((header, data))
}

/// Deterministic bytes that compress somewhat, like real weights do.
pub fn sample(len: usize, seed: u64) -> Bytes {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let word = (state >> 33) as u32 & 0x00ff_ffff;
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.truncate(len);
    out.into()
}
