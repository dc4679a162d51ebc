//! Every option of the daemon with its default, read from flags and then
//! the environment (clap does both), and checked once at start-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::codec::Codec;
use crate::identity::{Identity, IdentityError, DEFAULT_IDENTITY_PATH};

pub const DEFAULT_SOCKET: &str = "/tmp/modelsync.sock";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;
pub const DEFAULT_WINDOW: usize = 8;
pub const DEFAULT_TTL_SECONDS: u64 = 3600;
pub const DEFAULT_GRACE_SECONDS: u64 = 60;
/// Seconds between the checks of Redis that back up commit notices.
pub const DEFAULT_CHECK_INTERVAL_SECONDS: f64 = 2.0;
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
pub const DEFAULT_CONNECT_TIMEOUT_SECONDS: f64 = 2.0;
pub const DEFAULT_REDIS_TIMEOUT_SECONDS: f64 = 10.0;
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: f64 = 10.0;

/// The options of `modelsync serve`. Each `///` line is its `--help` text.
/// A flag wins over its environment variable, which wins over the
/// configuration file, which wins over the default.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// A YAML configuration file with any of the options below and
    /// per-namespace settings
    #[arg(long, env = "MODELSYNC_CONFIG")]
    pub config: Option<PathBuf>,

    /// The node's identity file (YAML with an `address`) [default: /tmp/identity.yaml]
    #[arg(long, env = "ID_FILE")]
    pub identity: Option<PathBuf>,

    /// The manager Redis, as redis://[user:password@]host:port/db (rediss://
    /// for TLS); when unset,
    /// REDIS_HOST/REDIS_DB_HOST, REDIS_PORT/REDIS_DB_PORT and
    /// REDIS_AUTH_TOKEN/REDIS_DB_PWD are read [default: redis://127.0.0.1:6379/0]
    #[arg(long, env = "MODELSYNC_REDIS_URL", hide_env_values = true)]
    pub redis: Option<String>,

    /// A file whose content (less a trailing newline) is the Redis password,
    /// used instead of one in the URL; keeps it out of the environment
    #[arg(long, env = "MODELSYNC_REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<PathBuf>,

    /// For rediss://: a PEM file of the CA certificates that sign the
    /// server's certificate [default: the bundled Mozilla roots]
    #[arg(long, env = "MODELSYNC_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// For rediss://: a PEM file with the client certificate (chain) to
    /// present, for a Redis with tls-auth-clients; needs --redis-key-file
    #[arg(long, env = "MODELSYNC_REDIS_CERT_FILE")]
    pub redis_cert_file: Option<PathBuf>,

    /// For rediss://: a PEM file with the client certificate's private key
    #[arg(long, env = "MODELSYNC_REDIS_KEY_FILE")]
    pub redis_key_file: Option<PathBuf>,

    /// Codec for new versions: auto[:LEVEL], none, zstd[:LEVEL], zlib[:LEVEL] or shuffle-zstd[:LEVEL] [default: auto:1, which picks shuffle-zstd or zstd per push]
    #[arg(long, env = "MODELSYNC_CODEC")]
    pub codec: Option<String>,

    /// Raw bytes per stored chunk [default: 4194304]
    #[arg(long, env = "MODELSYNC_CHUNK_SIZE")]
    pub chunk_size: Option<u64>,

    /// Chunks in flight between the socket and Redis, per call [default: 8]
    #[arg(long, env = "MODELSYNC_WINDOW")]
    pub window: Option<usize>,

    /// Seconds a pushed model lives unless the push sets its own TTL [default: 3600]
    #[arg(long, env = "MODELSYNC_TTL")]
    pub ttl: Option<u64>,

    /// Seconds a replaced version stays readable for pulls in flight [default: 60]
    #[arg(long, env = "MODELSYNC_GRACE")]
    pub grace: Option<u64>,

    /// Seconds between checks of Redis by calls that wait for a new version
    /// or watch a namespace, in case a commit notice was lost [default: 2]
    #[arg(long, env = "MODELSYNC_CHECK_INTERVAL")]
    pub check_interval: Option<f64>,

    /// Largest payload of one data message, in bytes, both ways [default: 1048576]
    #[arg(long, env = "MODELSYNC_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Seconds to wait for a connection to Redis [default: 2]
    #[arg(long, env = "MODELSYNC_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<f64>,

    /// Seconds to wait for any one answer from Redis [default: 10]
    #[arg(long, env = "MODELSYNC_REDIS_TIMEOUT")]
    pub redis_timeout: Option<f64>,

    /// Seconds that calls in flight get to finish after SIGTERM or SIGINT [default: 10]
    #[arg(long, env = "MODELSYNC_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<f64>,

    /// Permissions of the socket file, in octal [default: 660]
    #[arg(long, env = "MODELSYNC_SOCKET_MODE")]
    pub socket_mode: Option<String>,

    /// Where a namespace's settings recorded in Redis differ from this
    /// daemon's, use the recorded ones instead of refusing calls
    #[arg(long, env = "MODELSYNC_ADOPT_NAMESPACES")]
    pub adopt_namespaces: bool,

    /// Also serve the API on this TCP address; it must be loopback unless a
    /// bearer token is set [default: off]
    #[arg(long, env = "MODELSYNC_LISTEN_TCP")]
    pub listen_tcp: Option<SocketAddr>,

    /// A file holding the bearer token that calls over TCP must present
    #[arg(long, env = "MODELSYNC_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Only these user ids may call (comma-separated); anyone who can open
    /// the socket when unset
    #[arg(long, env = "MODELSYNC_ALLOWED_UIDS", value_delimiter = ',')]
    pub allowed_uids: Option<Vec<u32>>,

    /// Serve Prometheus metrics at http://ADDR/metrics, such as
    /// 127.0.0.1:9464; a bare port means loopback [default: off]
    #[arg(long, env = "MODELSYNC_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

/// The configuration file: the same options as the flags, plus settings
/// for single namespaces. Unknown fields are refused, so a typo is caught.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub socket: Option<PathBuf>,
    pub identity: Option<PathBuf>,
    pub redis: Option<String>,
    pub redis_password_file: Option<PathBuf>,
    pub redis_ca_file: Option<PathBuf>,
    pub redis_cert_file: Option<PathBuf>,
    pub redis_key_file: Option<PathBuf>,
    pub codec: Option<String>,
    pub chunk_size: Option<u64>,
    pub window: Option<usize>,
    pub ttl: Option<u64>,
    pub grace: Option<u64>,
    pub check_interval: Option<f64>,
    pub max_message_bytes: Option<usize>,
    pub connect_timeout: Option<f64>,
    pub redis_timeout: Option<f64>,
    pub shutdown_grace: Option<f64>,
    pub socket_mode: Option<String>,
    pub metrics_addr: Option<String>,
    pub allowed_uids: Option<Vec<u32>>,
    pub adopt_namespaces: Option<bool>,
    pub listen_tcp: Option<SocketAddr>,
    pub token_file: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceFile>,
}

/// One namespace's settings in the configuration file.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceFile {
    pub layout: Option<Layout>,
    pub codec: Option<String>,
    pub chunk_size: Option<u64>,
    pub ttl: Option<u64>,
    #[serde(default)]
    pub trust_pickle: bool,
}

/// How log lines are written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// How a namespace's models are laid out in Redis.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Chunked, compressed, versioned, committed by a manifest.
    #[default]
    Chunked,
    /// One hash per model, exactly as the legacy Python client wrote it.
    Legacy,
}

/// Why the configuration cannot be used. Start-up stops with its message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Identity(#[from] IdentityError),

    #[error("configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },

    #[error("{option}: {problem}")]
    Invalid { option: String, problem: String },
}

/// The daemon's effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub identity: Identity,
    pub redis: RedisConfig,
    pub storage: StorageConfig,
    pub max_message_bytes: usize,
    pub shutdown_grace: Duration,
    pub socket_mode: u32,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// The user ids that may call; empty: whoever can open the socket.
    pub allowed_uids: Vec<u32>,
    /// The optional TCP listener and the token its callers must present.
    pub tcp: Option<TcpConfig>,
    /// From the file; the global `--log-format` flag wins over it.
    pub log_format: LogFormat,
}

/// The optional TCP listener. `Debug` shows whether a token is set, never
/// the token.
#[derive(Clone)]
pub struct TcpConfig {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl std::fmt::Debug for TcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_some() {
            "set"
        } else {
            "not set"
        };
        f.debug_struct("TcpConfig")
            .field("addr", &self.addr)
            .field("token", &token)
            .finish()
    }
}

/// How models are cut and kept in Redis: defaults, and the namespaces
/// that have settings of their own.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub codec: Codec,
    pub chunk_size: u64,
    pub window: usize,
    pub ttl: Duration,
    pub grace: Duration,
    /// How often waiting and watching calls check Redis themselves.
    pub check_interval: Duration,
    pub namespaces: BTreeMap<String, NamespaceSettings>,
    /// Use the settings recorded in Redis for a namespace when they differ
    /// from this daemon's, instead of refusing.
    pub adopt: bool,
}

/// The effective settings of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSettings {
    pub layout: Layout,
    pub codec: Codec,
    pub chunk_size: u64,
    pub ttl: Duration,
    /// Legacy layout only: clients may unpickle what they pull.
    pub trust_pickle: bool,
}

/// Where Redis is and how long to wait for it. `Debug` shows whether a
/// password is set, never the password.
#[derive(Clone)]
pub struct RedisConfig {
    /// The one server, or the first seed node of a cluster.
    pub connection: ConnectionInfo,
    /// Every seed node of a Redis Cluster (`redis+cluster://`); empty for
    /// one server.
    pub cluster: Vec<ConnectionInfo>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// Certificates for `rediss://`; empty for plain Redis.
    pub tls: RedisTls,
}

/// The certificates of a `rediss://` connection, read at start-up. With no
/// CA, the server's certificate must chain to the bundled Mozilla roots;
/// the operating system's store is not consulted.
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    /// The CAs that sign the server's certificate; they replace the roots.
    pub ca: Option<PemFile>,
    /// The certificate and key to present to a Redis that asks for one.
    pub client: Option<ClientIdentity>,
}

/// A client certificate and its private key.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub cert: PemFile,
    pub key: PemFile,
}

/// A PEM file's path and content. `Debug` shows the path only, so that a
/// private key never reaches a log line or `config check`'s output.
#[derive(Clone)]
pub struct PemFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.path)
    }
}

impl Config {
    /// A configuration with every default, for the given identity and Redis.
    pub fn new(identity: Identity, redis: RedisConfig) -> Self {
        Config {
            socket: PathBuf::from(DEFAULT_SOCKET),
            identity,
            redis,
            storage: StorageConfig::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            shutdown_grace: Duration::from_secs_f64(DEFAULT_SHUTDOWN_GRACE_SECONDS),
            socket_mode: 0o660,
            metrics_addr: None,
            allowed_uids: Vec::new(),
            tcp: None,
            log_format: LogFormat::Text,
        }
    }

    /// Merges flags, environment, the configuration file and defaults,
    /// loads the identity file and checks the result. `socket` is the
    /// global `--socket` flag, if given.
    pub fn load(args: &ServeArgs, socket: Option<PathBuf>) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let identity_path = args.identity.clone().or(file.identity.clone());
        let identity =
            Identity::load(&identity_path.unwrap_or_else(|| DEFAULT_IDENTITY_PATH.into()))?;
        let url = args.redis.as_deref().or(file.redis.as_deref());
        let mut connection = redis_connection(url)?;
        let mut cluster = cluster_nodes(url)?;
        if let Some(path) = args
            .redis_password_file
            .as_ref()
            .or(file.redis_password_file.as_ref())
        {
            connection = with_password_from(connection, path)?;
            cluster = cluster
                .into_iter()
                .map(|node| with_password_from(node, path))
                .collect::<Result<_, _>>()?;
        }
        let tls = RedisTls::load(
            args.redis_ca_file
                .as_deref()
                .or(file.redis_ca_file.as_deref()),
            args.redis_cert_file
                .as_deref()
                .or(file.redis_cert_file.as_deref()),
            args.redis_key_file
                .as_deref()
                .or(file.redis_key_file.as_deref()),
        )?;
        let redis = RedisConfig {
            connection,
            tls,
            cluster,
            connect_timeout: seconds(
                "connect_timeout",
                args.connect_timeout.or(file.connect_timeout),
                DEFAULT_CONNECT_TIMEOUT_SECONDS,
            )?,
            response_timeout: seconds(
                "redis_timeout",
                args.redis_timeout.or(file.redis_timeout),
                DEFAULT_REDIS_TIMEOUT_SECONDS,
            )?,
        };

        let mut config = Config::new(identity, redis);
        config.socket = socket
            .or(file.socket.clone())
            .unwrap_or_else(|| DEFAULT_SOCKET.into());
        config.storage = StorageConfig::from_sources(args, &file)?;
        config.max_message_bytes = args
            .max_message_bytes
            .or(file.max_message_bytes)
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        config.shutdown_grace = seconds(
            "shutdown_grace",
            args.shutdown_grace.or(file.shutdown_grace),
            DEFAULT_SHUTDOWN_GRACE_SECONDS,
        )?;
        let mode = args
            .socket_mode
            .clone()
            .or(file.socket_mode.clone())
            .unwrap_or_else(|| "660".into());
        config.socket_mode = u32::from_str_radix(&mode, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                invalid(
                    "socket_mode",
                    format!("{mode:?} is not an octal file mode such as 660"),
                )
            })?;
        let metrics = args
            .metrics_addr
            .as_deref()
            .or(file.metrics_addr.as_deref());
        config.metrics_addr = metrics.map(metrics_addr).transpose()?;
        config.tcp = tcp_config(args, &file)?;
        config.log_format = file.log_format.unwrap_or_default();
        config.allowed_uids = args
            .allowed_uids
            .clone()
            .or(file.allowed_uids.clone())
            .unwrap_or_default();
        config.check()?;
        Ok(config)
    }

    /// Refuses values that would make the daemon misbehave later.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.storage.check()?;
        self.redis.check()?;
        if !(1024..=(64 << 20)).contains(&self.max_message_bytes) {
            return Err(invalid(
                "max_message_bytes",
                "must be between 1024 and 67108864".into(),
            ));
        }
        Ok(())
    }
}

impl FileConfig {
    /// Reads a configuration file; errors name the file and, where the YAML
    /// reader knows it, the line.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            reason: format!("cannot read it: {e}"),
        })?;
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

impl StorageConfig {
    fn from_sources(args: &ServeArgs, file: &FileConfig) -> Result<Self, ConfigError> {
        let codec = match args.codec.as_deref().or(file.codec.as_deref()) {
            Some(text) => text.parse().map_err(|problem| invalid("codec", problem))?,
            None => StorageConfig::default().codec,
        };
        let mut storage = StorageConfig {
            codec,
            chunk_size: args
                .chunk_size
                .or(file.chunk_size)
                .unwrap_or(DEFAULT_CHUNK_SIZE),
            window: args.window.or(file.window).unwrap_or(DEFAULT_WINDOW),
            ttl: Duration::from_secs(args.ttl.or(file.ttl).unwrap_or(DEFAULT_TTL_SECONDS)),
            grace: Duration::from_secs(args.grace.or(file.grace).unwrap_or(DEFAULT_GRACE_SECONDS)),
            check_interval: seconds(
                "check_interval",
                args.check_interval.or(file.check_interval),
                DEFAULT_CHECK_INTERVAL_SECONDS,
            )?,
            namespaces: BTreeMap::new(),
            adopt: args.adopt_namespaces || file.adopt_namespaces.unwrap_or(false),
        };
        for (name, settings) in &file.namespaces {
            let resolved = storage.resolve(name, settings)?;
            storage.namespaces.insert(name.clone(), resolved);
        }
        Ok(storage)
    }

    /// One namespace's settings from the file, filled in with the defaults.
    fn resolve(&self, name: &str, file: &NamespaceFile) -> Result<NamespaceSettings, ConfigError> {
        let option = |field: &str| format!("namespaces.{name}.{field}");
        let layout = file.layout.unwrap_or_default();
        let codec = match (&file.codec, layout) {
            (Some(text), _) => text.parse().map_err(|p| invalid(&option("codec"), p))?,
            (None, Layout::Legacy) => Codec::Zlib {
                level: crate::codec::DEFAULT_ZLIB_LEVEL,
            },
            (None, Layout::Chunked) => self.codec,
        };
        if layout == Layout::Legacy && !matches!(codec, Codec::Zlib { .. }) {
            return Err(invalid(
                &option("codec"),
                "the legacy layout stores zlib only".into(),
            ));
        }
        if file.trust_pickle && layout != Layout::Legacy {
            return Err(invalid(
                &option("trust_pickle"),
                "applies to the legacy layout only".into(),
            ));
        }
        Ok(NamespaceSettings {
            layout,
            codec,
            chunk_size: file.chunk_size.unwrap_or(self.chunk_size),
            ttl: Duration::from_secs(file.ttl.unwrap_or(self.ttl.as_secs())),
            trust_pickle: file.trust_pickle,
        })
    }

    /// The settings of a namespace: its own, or the defaults.
    pub fn namespace(&self, name: &str) -> NamespaceSettings {
        self.namespaces
            .get(name)
            .cloned()
            .unwrap_or_else(|| NamespaceSettings {
                layout: Layout::Chunked,
                codec: self.codec,
                chunk_size: self.chunk_size,
                ttl: self.ttl,
                trust_pickle: false,
            })
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !(1..=256).contains(&self.window) {
            return Err(invalid("window", "must be between 1 and 256 chunks".into()));
        }
        let defaults = (
            String::from("chunk_size"),
            String::from("ttl"),
            self.namespace(""),
        );
        let named = self.namespaces.iter().map(|(name, settings)| {
            (
                format!("namespaces.{name}.chunk_size"),
                format!("namespaces.{name}.ttl"),
                settings.clone(),
            )
        });
        for (chunk_option, ttl_option, settings) in std::iter::once(defaults).chain(named) {
            if !(4096..=crate::store::MAX_CHUNK_SIZE).contains(&settings.chunk_size) {
                return Err(invalid(
                    &chunk_option,
                    "must be between 4096 and 536870912 bytes".into(),
                ));
            }
            if settings.ttl.is_zero() || settings.ttl > crate::store::MAX_TTL {
                return Err(invalid(
                    &ttl_option,
                    format!(
                        "must be between 1 and {} seconds",
                        crate::store::MAX_TTL.as_secs()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            codec: Codec::Auto {
                level: crate::codec::DEFAULT_ZSTD_LEVEL,
            },
            chunk_size: DEFAULT_CHUNK_SIZE,
            window: DEFAULT_WINDOW,
            ttl: Duration::from_secs(DEFAULT_TTL_SECONDS),
            grace: Duration::from_secs(DEFAULT_GRACE_SECONDS),
            check_interval: Duration::from_secs_f64(DEFAULT_CHECK_INTERVAL_SECONDS),
            namespaces: BTreeMap::new(),
            adopt: false,
        }
    }
}

impl RedisConfig {
    /// Parses a redis:// or rediss:// URL with the default timeouts.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        Ok(RedisConfig {
            connection: redis_connection(Some(url))?,
            tls: RedisTls::default(),
            cluster: cluster_nodes(Some(url))?,
            connect_timeout: Duration::from_secs_f64(DEFAULT_CONNECT_TIMEOUT_SECONDS),
            response_timeout: Duration::from_secs_f64(DEFAULT_REDIS_TIMEOUT_SECONDS),
        })
    }

    /// Whether the connection is `rediss://`.
    pub fn is_tls(&self) -> bool {
        matches!(self.connection.addr(), ConnectionAddr::TcpTls { .. })
    }

    /// Refuses TLS settings that cannot take effect, and a client key that
    /// does not belong to its certificate.
    pub fn check(&self) -> Result<(), ConfigError> {
        let tls_set = self.tls.ca.is_some() || self.tls.client.is_some();
        if tls_set && !self.is_tls() {
            return Err(invalid(
                "redis",
                format!(
                    "{} is plain Redis, but redis_ca_file or redis_cert_file is set: use rediss:// for TLS",
                    self.endpoint()
                ),
            ));
        }
        if let ConnectionAddr::TcpTls { insecure: true, .. } = self.connection.addr() {
            return Err(invalid(
                "redis",
                "rediss:// with #insecure (no certificate check) is not supported: set redis_ca_file to the CA that signed the server's certificate".into(),
            ));
        }
        crate::redis::check_client_identity(self).map_err(|problem| {
            let files = match &self.tls.client {
                Some(id) => format!("{} and {}: ", id.cert.path.display(), id.key.path.display()),
                None => String::new(),
            };
            invalid("redis_key_file", format!("{files}{problem}"))
        })
    }

    /// The endpoint as shown in logs and errors: scheme, host, port and
    /// database, without credentials.
    pub fn endpoint(&self) -> String {
        if !self.cluster.is_empty() {
            let nodes: Vec<String> = self
                .cluster
                .iter()
                .map(|node| node.addr().to_string())
                .collect();
            return format!("redis+cluster://{}", nodes.join(","));
        }
        let db = self.connection.redis_settings().db();
        match self.connection.addr() {
            ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}/{db}"),
            ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}/{db}"),
            ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={db}", path.display()),
            other => format!("{other}"),
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings = self.connection.redis_settings();
        let set = |present: bool| if present { "set" } else { "not set" };
        f.debug_struct("RedisConfig")
            .field("endpoint", &self.endpoint())
            .field("username", &set(settings.username().is_some()))
            .field("password", &set(settings.password().is_some()))
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// The URL scheme of a Redis Cluster, with its seed nodes.
const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The seed nodes of `redis+cluster://[user:password@]host:port[,host:port…]`;
/// none for any other URL.
fn cluster_nodes(url: Option<&str>) -> Result<Vec<ConnectionInfo>, ConfigError> {
    let Some(rest) = url.and_then(|u| u.strip_prefix(CLUSTER_SCHEME)) else {
        return Ok(Vec::new());
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), rest),
    };
    let refuse = || {
        invalid(
            "redis",
            "not a Redis Cluster URL: expected redis+cluster://[user:password@]host:port[,host:port...]"
                .into(),
        )
    };
    if hosts.is_empty() || hosts.contains('/') {
        return Err(refuse());
    }
    hosts
        .split(',')
        .map(|host| {
            format!("redis://{credentials}{}", host.trim())
                .into_connection_info()
                .map_err(|_| refuse())
        })
        .collect()
}

/// The Redis to use: the URL when given, else the legacy variables, else
/// the local default.
fn redis_connection(url: Option<&str>) -> Result<ConnectionInfo, ConfigError> {
    if let Some(first) = cluster_nodes(url)?.into_iter().next() {
        return Ok(first);
    }
    if let Some(url) = url {
        return url.into_connection_info().map_err(|_| {
            invalid(
                "redis",
                "not a Redis URL: expected redis[s]://[user:password@]host:port/db".into(),
            )
        });
    }
    let var = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    };
    let host = var(["REDIS_HOST", "REDIS_DB_HOST"]);
    let port = var(["REDIS_PORT", "REDIS_DB_PORT"]);
    let password = var(["REDIS_AUTH_TOKEN", "REDIS_DB_PWD"]);
    if host.is_none() && port.is_none() && password.is_none() {
        return Ok(DEFAULT_REDIS_URL
            .into_connection_info()
            .expect("the default URL parses"));
    }

    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| invalid("REDIS_PORT", format!("{p:?} is not a port number")))?,
        None => 6379,
    };
    let address = ConnectionAddr::Tcp(host.unwrap_or_else(|| "127.0.0.1".into()), port);
    let mut settings = RedisConnectionInfo::default();
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    let info = address
        .into_connection_info()
        .expect("a TCP address is a connection");
    Ok(info.set_redis_settings(settings))
}

impl RedisTls {
    /// Reads the CA, certificate and key files; the certificate and the key
    /// come together or not at all.
    pub fn load(
        ca: Option<&std::path::Path>,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
    ) -> Result<Self, ConfigError> {
        let client = match (cert, key) {
            (Some(cert), Some(key)) => Some(ClientIdentity {
                cert: PemFile::certificates("redis_cert_file", cert)?,
                key: PemFile::private_key("redis_key_file", key)?,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "redis_cert_file",
                    "is set without redis_key_file: give both, or neither".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "redis_key_file",
                    "is set without redis_cert_file: give both, or neither".into(),
                ))
            }
        };
        let ca = ca
            .map(|path| PemFile::certificates("redis_ca_file", path))
            .transpose()?;
        Ok(RedisTls { ca, client })
    }
}

impl PemFile {
    /// A file of one or more PEM certificates.
    fn certificates(option: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};

        let file = PemFile::read(option, path)?;
        let certificates = CertificateDer::pem_slice_iter(&file.pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                invalid(
                    option,
                    format!("{}: not a PEM certificate file: {e}", path.display()),
                )
            })?;
        if certificates.is_empty() {
            return Err(invalid(
                option,
                format!(
                    "{}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ),
            ));
        }
        Ok(file)
    }

    /// A file holding one PEM private key. Its content never appears in an
    /// error: only the path and what was expected.
    fn private_key(option: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        use rustls::pki_types::{pem::PemObject, PrivateKeyDer};

        let file = PemFile::read(option, path)?;
        if PrivateKeyDer::from_pem_slice(&file.pem).is_err() {
            return Err(invalid(
                option,
                format!(
                    "{}: holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)",
                    path.display()
                ),
            ));
        }
        Ok(file)
    }

    fn read(option: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        let pem = std::fs::read(path)
            .map_err(|e| invalid(option, format!("{}: cannot read it: {e}", path.display())))?;
        Ok(PemFile {
            path: path.to_owned(),
            pem,
        })
    }
}

/// The TCP listener, refused when it would be reachable from other hosts
/// without a token.
fn tcp_config(args: &ServeArgs, file: &FileConfig) -> Result<Option<TcpConfig>, ConfigError> {
    let Some(addr) = args.listen_tcp.or(file.listen_tcp) else {
        return Ok(None);
    };
    let token = match args.token_file.as_ref().or(file.token_file.as_ref()) {
        Some(path) => Some(read_secret("token_file", path)?),
        None => None,
    };
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(invalid(
            "listen_tcp",
            format!("{addr} is not a loopback address: set token_file so that callers must present a token"),
        ));
    }
    Ok(Some(TcpConfig { addr, token }))
}

/// A secret kept in a file, less a trailing newline.
fn read_secret(option: &str, path: &std::path::Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(option, format!("{}: cannot read it: {e}", path.display())))?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(invalid(option, format!("{} is empty", path.display())));
    }
    Ok(secret.to_string())
}

/// Sets the password read from `path`, keeping the URL's user name.
fn with_password_from(
    connection: ConnectionInfo,
    path: &std::path::Path,
) -> Result<ConnectionInfo, ConfigError> {
    let password = read_secret("redis_password_file", path)?;
    let settings = connection.redis_settings().clone().set_password(password);
    Ok(connection.set_redis_settings(settings))
}

/// An address to listen on; a bare port (`9464` or `:9464`) is loopback.
fn metrics_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    let port = text.strip_prefix(':').unwrap_or(text);
    if let Ok(port) = port.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|_| {
        invalid(
            "metrics_addr",
            format!("{text:?} is not an address such as 127.0.0.1:9464"),
        )
    })
}

fn seconds(option: &str, value: Option<f64>, default: f64) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            invalid(
                option,
                format!("{value} is not a positive number of seconds"),
            )
        })
}

fn invalid(option: &str, problem: String) -> ConfigError {
    ConfigError::Invalid {
        option: option.to_string(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_url_is_accepted_and_shown_as_rediss() {
        let config = RedisConfig::from_url("rediss://127.0.0.1:6380/0").unwrap();
        assert!(config.is_tls());
        assert_eq!(config.endpoint(), "rediss://127.0.0.1:6380/0");
        config.check().unwrap();
    }

    #[test]
    fn a_tls_url_without_certificate_checks_is_refused() {
        let config = RedisConfig::from_url("rediss://127.0.0.1:6380/0#insecure").unwrap();
        let err = config.check().unwrap_err().to_string();
        assert!(
            err.contains("#insecure") && err.contains("redis_ca_file"),
            "{err}"
        );
    }

    #[test]
    fn a_key_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, "unused").unwrap();
        let err = RedisTls::load(None, None, Some(&key))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("redis_key_file: is set without redis_cert_file"),
            "{err}"
        );
        let err = RedisTls::load(None, Some(&key), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("redis_cert_file: is set without redis_key_file"),
            "{err}"
        );
    }

    #[test]
    fn missing_and_non_pem_certificate_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent-ca.pem");
        let err = RedisTls::load(Some(&missing), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent-ca.pem: cannot read it"), "{err}");

        let text = dir.path().join("ca.txt");
        std::fs::write(&text, "just some words\n").unwrap();
        let err = RedisTls::load(Some(&text), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ca.txt: holds no PEM certificate"), "{err}");
    }

    #[test]
    fn a_key_file_that_is_not_pem_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("client.pem");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, "secret-key-material-4711\n").unwrap();
        let err = RedisTls::load(None, Some(&cert), Some(&key))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("client.key: holds no PEM private key"),
            "{err}"
        );
        assert!(!err.contains("secret-key-material-4711"), "{err}");
    }

    #[test]
    fn tls_files_with_a_plain_url_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let mut config = RedisConfig::from_url("redis://127.0.0.1:6380/0").unwrap();
        config.tls = RedisTls::load(Some(&ca), None, None).unwrap();
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("use rediss://"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = RedisConfig::from_url("redis://app:hunter2secret@127.0.0.1:6390/2").unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert!(shown.contains("password: \"set\""), "{shown}");
        assert_eq!(config.endpoint(), "redis://127.0.0.1:6390/2");
    }

    #[test]
    fn a_cluster_url_gives_every_seed_with_the_credentials_and_hides_them() {
        let url = "redis+cluster://app:hunter2secret@10.0.0.5:7000,10.0.0.6:7001/";
        let config = RedisConfig::from_url(url).unwrap();
        assert_eq!(config.cluster.len(), 2);
        for node in &config.cluster {
            assert_eq!(node.redis_settings().password(), Some("hunter2secret"));
        }
        assert_eq!(
            config.endpoint(),
            "redis+cluster://10.0.0.5:7000,10.0.0.6:7001"
        );
        assert!(!format!("{config:?}").contains("hunter2secret"));
    }

    #[test]
    fn a_cluster_url_without_nodes_is_refused_saying_what_is_expected() {
        for url in [
            "redis+cluster://",
            "redis+cluster://h:1/0",
            "redis+cluster://h:x",
        ] {
            let err = RedisConfig::from_url(url).unwrap_err().to_string();
            assert!(err.contains("redis+cluster://"), "{url}: {err}");
        }
    }
}
