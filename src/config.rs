//! Every option of the daemon with its default, read from flags and then
//! the environment (clap does both), and checked once at start-up.

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
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
pub const DEFAULT_CONNECT_TIMEOUT_SECONDS: f64 = 2.0;
pub const DEFAULT_REDIS_TIMEOUT_SECONDS: f64 = 10.0;
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: f64 = 10.0;

/// The options of `modelsync serve`. Each `///` line is its `--help` text.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The node's identity file (YAML with an `address`)
    #[arg(long, env = "ID_FILE", default_value = DEFAULT_IDENTITY_PATH)]
    pub identity: PathBuf,

    /// The manager Redis, as redis://[user:password@]host:port/db; when unset,
    /// REDIS_HOST/REDIS_DB_HOST, REDIS_PORT/REDIS_DB_PORT and
    /// REDIS_AUTH_TOKEN/REDIS_DB_PWD are read, else redis://127.0.0.1:6379/0
    #[arg(long, env = "MODELSYNC_REDIS_URL", hide_env_values = true)]
    pub redis: Option<String>,

    /// Codec for new versions: none, zstd[:LEVEL] or zlib[:LEVEL]
    #[arg(long, env = "MODELSYNC_CODEC", default_value = "zstd")]
    pub codec: String,

    /// Raw bytes per stored chunk
    #[arg(long, env = "MODELSYNC_CHUNK_SIZE", default_value_t = DEFAULT_CHUNK_SIZE)]
    pub chunk_size: u64,

    /// Chunks in flight between the socket and Redis, per call
    #[arg(long, env = "MODELSYNC_WINDOW", default_value_t = DEFAULT_WINDOW)]
    pub window: usize,

    /// Seconds a pushed model lives unless the push sets its own TTL
    #[arg(long, env = "MODELSYNC_TTL", default_value_t = DEFAULT_TTL_SECONDS)]
    pub ttl: u64,

    /// Seconds a superseded version stays readable for pulls in flight
    #[arg(long, env = "MODELSYNC_GRACE", default_value_t = DEFAULT_GRACE_SECONDS)]
    pub grace: u64,

    /// Largest payload of one data message, in bytes, both ways
    #[arg(long, env = "MODELSYNC_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Seconds to wait for a connection to Redis
    #[arg(long, env = "MODELSYNC_CONNECT_TIMEOUT", default_value_t = DEFAULT_CONNECT_TIMEOUT_SECONDS)]
    pub connect_timeout: f64,

    /// Seconds to wait for any one answer from Redis
    #[arg(long, env = "MODELSYNC_REDIS_TIMEOUT", default_value_t = DEFAULT_REDIS_TIMEOUT_SECONDS)]
    pub redis_timeout: f64,

    /// Seconds that calls in flight get to finish after SIGTERM or SIGINT
    #[arg(long, env = "MODELSYNC_SHUTDOWN_GRACE", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECONDS)]
    pub shutdown_grace: f64,

    /// Permissions of the socket file, in octal
    #[arg(long, env = "MODELSYNC_SOCKET_MODE", default_value = "660")]
    pub socket_mode: String,
}

/// Why the configuration cannot be used. Start-up stops with its message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Identity(#[from] IdentityError),

    #[error("{option}: {problem}")]
    Invalid {
        option: &'static str,
        problem: String,
    },
}

/// The daemon's effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub identity: Identity,
    pub redis: RedisConfig,
    pub storage: StorageConfig,
    pub max_message_bytes: usize,
    pub shutdown_grace: Duration,
    pub socket_mode: u32,
}

/// How models are cut and kept in Redis.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub codec: Codec,
    pub chunk_size: u64,
    pub window: usize,
    pub ttl: Duration,
    pub grace: Duration,
}

/// Where Redis is and how long to wait for it. `Debug` shows whether a
/// password is set, never the password.
#[derive(Clone)]
pub struct RedisConfig {
    pub connection: ConnectionInfo,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl Config {
    /// A configuration with every default, for the given identity and Redis.
    pub fn new(identity: Identity, redis: RedisConfig) -> Self {
        Config {
            identity,
            redis,
            storage: StorageConfig::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            shutdown_grace: Duration::from_secs_f64(DEFAULT_SHUTDOWN_GRACE_SECONDS),
            socket_mode: 0o660,
        }
    }

    /// Checks the flags and environment and loads the identity file.
    pub fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        let identity = Identity::load(&args.identity)?;
        let connection = redis_connection(args.redis.as_deref())?;
        let redis = RedisConfig {
            connection,
            connect_timeout: seconds("--connect-timeout", args.connect_timeout)?,
            response_timeout: seconds("--redis-timeout", args.redis_timeout)?,
        };

        let mut config = Config::new(identity, redis);
        config.storage = StorageConfig {
            codec: args
                .codec
                .parse()
                .map_err(|problem| invalid("--codec", problem))?,
            chunk_size: args.chunk_size,
            window: args.window,
            ttl: Duration::from_secs(args.ttl),
            grace: Duration::from_secs(args.grace),
        };
        config.max_message_bytes = args.max_message_bytes;
        config.shutdown_grace = seconds("--shutdown-grace", args.shutdown_grace)?;
        config.socket_mode = u32::from_str_radix(&args.socket_mode, 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| {
                invalid(
                    "--socket-mode",
                    format!(
                        "{:?} is not an octal file mode such as 660",
                        args.socket_mode
                    ),
                )
            })?;
        config.check()?;
        Ok(config)
    }

    /// Refuses values that would make the daemon misbehave later.
    pub fn check(&self) -> Result<(), ConfigError> {
        let storage = &self.storage;
        if !(4096..=(512 << 20)).contains(&storage.chunk_size) {
            return Err(invalid(
                "--chunk-size",
                "must be between 4096 and 536870912 bytes".into(),
            ));
        }
        if !(1..=256).contains(&storage.window) {
            return Err(invalid(
                "--window",
                "must be between 1 and 256 chunks".into(),
            ));
        }
        if storage.ttl.is_zero() {
            return Err(invalid("--ttl", "must be at least 1 second".into()));
        }
        if !(1024..=(64 << 20)).contains(&self.max_message_bytes) {
            return Err(invalid(
                "--max-message-bytes",
                "must be between 1024 and 67108864".into(),
            ));
        }
        Ok(())
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            codec: Codec::Zstd {
                level: crate::codec::DEFAULT_ZSTD_LEVEL,
            },
            chunk_size: DEFAULT_CHUNK_SIZE,
            window: DEFAULT_WINDOW,
            ttl: Duration::from_secs(DEFAULT_TTL_SECONDS),
            grace: Duration::from_secs(DEFAULT_GRACE_SECONDS),
        }
    }
}

impl RedisConfig {
    /// Parses a redis:// or rediss:// URL with the default timeouts.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        Ok(RedisConfig {
            connection: redis_connection(Some(url))?,
            connect_timeout: Duration::from_secs_f64(DEFAULT_CONNECT_TIMEOUT_SECONDS),
            response_timeout: Duration::from_secs_f64(DEFAULT_REDIS_TIMEOUT_SECONDS),
        })
    }

    /// The endpoint as shown in logs and errors: scheme, host, port and
    /// database, without credentials.
    pub fn endpoint(&self) -> String {
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
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// The Redis to use: the URL when given, else the legacy variables, else
/// the local default.
fn redis_connection(url: Option<&str>) -> Result<ConnectionInfo, ConfigError> {
    if let Some(url) = url {
        return url.into_connection_info().map_err(|_| {
            invalid(
                "--redis",
                "not a Redis URL: expected redis://[user:password@]host:port/db".into(),
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

fn seconds(option: &'static str, value: f64) -> Result<Duration, ConfigError> {
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

fn invalid(option: &'static str, problem: String) -> ConfigError {
    ConfigError::Invalid { option, problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let config = RedisConfig::from_url("redis://app:hunter2secret@127.0.0.1:6390/2").unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert!(shown.contains("password: \"set\""), "{shown}");
        assert_eq!(config.endpoint(), "redis://127.0.0.1:6390/2");
    }
}
