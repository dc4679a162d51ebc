//! The daemon's one lasting connection to Redis: multiplexed, reconnecting
//! with backoff, and bounded in time. Start-up never waits for Redis; while
//! it is away, calls fail fast with an error that names the endpoint, and
//! the next call after it returns goes through.
//!
//! This is the one place that knows how connections are built, TLS
//! included: [`client`] turns the configuration into a `redis::Client`, and
//! [`Redis::classify`] names what went wrong when a handshake fails.
//!
//! The same handle speaks to one server or to a Redis Cluster, where it
//! follows MOVED and ASK redirections and topology changes itself. What it
//! cannot hide is that one command, pipeline or script must keep to one
//! hash slot there; callers that touch many keys use [`Redis::each`], and
//! SCAN walks every master in turn ([`Redis::scan`]).

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    ClientTlsConfig, Cmd, ConnectionInfo, FromRedisValue, IntoConnectionInfo, Pipeline, RedisError,
    ScriptInvocation, TlsCertificates,
};
use tokio::sync::OnceCell;

use crate::config::RedisConfig;
use crate::error::Error;

mod probe;

use probe::Probe;

/// Builds the Redis client the configuration describes: plain for
/// `redis://`, and for `rediss://` TLS that trusts the configured CA (or,
/// without one, the bundled Mozilla roots) and presents the client
/// certificate when one is configured.
pub fn client(config: &RedisConfig) -> Result<redis::Client, Error> {
    client_for(config, &config.connection)
}

/// The client of one server or cluster node, with the configuration's TLS.
fn client_for(config: &RedisConfig, node: &ConnectionInfo) -> Result<redis::Client, Error> {
    let built = if config.is_tls() {
        install_crypto_provider();
        let certificates = TlsCertificates {
            root_cert: config.tls.ca.as_ref().map(|ca| ca.pem.clone()),
            client_tls: config.tls.client.as_ref().map(|id| ClientTlsConfig {
                client_cert: id.cert.pem.clone(),
                client_key: id.key.pem.clone(),
            }),
        };
        redis::Client::build_with_tls(node.clone(), certificates)
    } else {
        redis::Client::open(node.clone())
    };
    // The error names which part failed, never the bytes of a key.
    built.map_err(|e| Error::Internal(format!("redis client for {}: {e}", config.endpoint())))
}

/// Checks, before anything connects, that the client key belongs to the
/// client certificate; `Err` says what is wrong without showing the key.
pub fn check_client_identity(config: &RedisConfig) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let Some(identity) = &config.tls.client else {
        return Ok(());
    };
    install_crypto_provider();
    let chain = CertificateDer::pem_slice_iter(&identity.cert.pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the client certificate does not parse: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&identity.key.pem)
        .map_err(|_| "the client key does not parse as a PEM private key".to_string())?;
    let roots = rustls::RootCertStore::empty();
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map(|_| ())
        .map_err(|e| format!("the client certificate and key do not go together: {e}"))
}

/// rustls needs one process-wide crypto provider; ring is the one built in.
pub(crate) fn install_crypto_provider() {
    // Fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Commands of one [`Redis::each`] call in flight at once on a cluster.
const CLUSTER_FAN_OUT: usize = 64;

/// A handle on the Redis connection; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    connection: Connection,
    /// Where pub/sub connections go: the server, or each seed in turn.
    subscribe_to: Arc<Vec<redis::Client>>,
    /// User, password and protocol, for connections to single cluster nodes.
    settings: redis::RedisConnectionInfo,
    endpoint: String,
    tls: bool,
    /// Asks the port what it speaks when a connection fails oddly.
    probe: Option<Probe>,
    connect_timeout: Duration,
    timeout: Duration,
}

#[derive(Clone)]
enum Connection {
    Server(ConnectionManager),
    /// Opened on first use; a failed opening is tried again by the next call.
    Cluster(Arc<ClusterClient>, Arc<OnceCell<ClusterConnection>>),
}

/// A node of the deployment that SCAN runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// The one server.
    Server,
    /// A cluster master.
    Master { host: String, port: u16 },
}

impl Redis {
    /// Prepares the connection without opening it: it opens on first use.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        let client = client(config)?;
        let connection = if config.cluster.is_empty() {
            Connection::Server(manager(client.clone(), config)?)
        } else {
            Connection::Cluster(Arc::new(cluster_client(config)?), Arc::default())
        };
        let mut subscribe_to = vec![client];
        for node in config.cluster.iter().skip(1) {
            subscribe_to.push(client_for(config, node)?);
        }

        Ok(Redis {
            connection,
            subscribe_to: Arc::new(subscribe_to),
            settings: config.connection.redis_settings().clone(),
            endpoint: config.endpoint(),
            tls: config.is_tls(),
            probe: Probe::new(config.connection.addr(), config.connect_timeout),
            connect_timeout: config.connect_timeout,
            // Covers connecting and answering, so that no call waits longer
            // than both together whatever state the connection is in.
            timeout: config.connect_timeout * 2 + config.response_timeout,
        })
    }

    /// The endpoint, without credentials.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.connection, Connection::Cluster(..))
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        self.bounded(async {
            match &self.connection {
                Connection::Server(manager) => cmd.query_async(&mut manager.clone()).await,
                Connection::Cluster(..) => cmd.query_async(&mut self.cluster().await?).await,
            }
        })
        .await
    }

    /// Runs a pipeline in one round trip. On a cluster, its keys must all
    /// share one hash slot.
    pub async fn pipeline<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, Error> {
        self.bounded(async {
            match &self.connection {
                Connection::Server(manager) => pipe.query_async(&mut manager.clone()).await,
                Connection::Cluster(..) => pipe.query_async(&mut self.cluster().await?).await,
            }
        })
        .await
    }

    /// Runs a Lua script by its hash, loading it first where Redis lacks it.
    /// On a cluster, its keys must all share one hash slot.
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        self.bounded(async {
            match &self.connection {
                Connection::Server(manager) => invocation.invoke_async(&mut manager.clone()).await,
                Connection::Cluster(..) => {
                    invocation.invoke_async(&mut self.cluster().await?).await
                }
            }
        })
        .await
    }

    /// Runs commands whose keys may lie in different hash slots, ignoring
    /// their answers: in one pipeline on a server, side by side on a
    /// cluster.
    pub async fn each(&self, commands: Vec<Cmd>) -> Result<(), Error> {
        if !self.is_cluster() {
            let mut pipe = redis::pipe();
            for cmd in commands {
                pipe.add_command(cmd).ignore();
            }
            return self.pipeline(&pipe).await;
        }
        futures::stream::iter(commands)
            .map(|cmd| async move { self.query::<redis::Value>(&cmd).await })
            .buffer_unordered(CLUSTER_FAN_OUT)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    /// Every key that matches `pattern`, a SCAN batch at a time, over the
    /// server or over every master of a cluster in turn. A key written or
    /// removed during the walk may or may not be seen.
    pub fn scan(
        &self,
        pattern: String,
        count: u64,
    ) -> impl futures::Stream<Item = Result<Vec<Vec<u8>>, Error>> + Send + 'static {
        let redis = self.clone();
        let start = (None::<Vec<Node>>, 0u64);
        futures::stream::try_unfold(start, move |(nodes, cursor)| {
            let (redis, pattern) = (redis.clone(), pattern.clone());
            async move {
                let mut nodes = match nodes {
                    Some(nodes) => nodes,
                    None => redis.scan_nodes().await?,
                };
                let Some(node) = nodes.last().cloned() else {
                    return Ok(None);
                };
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(count);
                let (next, names): (u64, Vec<Vec<u8>>) = redis.query_on(&node, &scan).await?;
                if next == 0 {
                    nodes.pop();
                }
                Ok(Some((names, (Some(nodes), next))))
            }
        })
    }

    /// The nodes that together hold every key: the server, or each master.
    pub async fn scan_nodes(&self) -> Result<Vec<Node>, Error> {
        if !self.is_cluster() {
            return Ok(vec![Node::Server]);
        }
        let nodes: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        Ok(masters(&nodes))
    }

    /// Runs one command on the given node.
    pub async fn query_on<T: FromRedisValue>(&self, node: &Node, cmd: &Cmd) -> Result<T, Error> {
        let Node::Master { host, port } = node else {
            return self.query(cmd).await;
        };
        // The cluster connection routes by address only to nodes it has
        // already connected to, so a node is asked on a connection of its own.
        let address = redis::ConnectionAddr::Tcp(host.clone(), *port);
        let info = address
            .into_connection_info()
            .map_err(|e| Error::Internal(format!("redis node {host}:{port}: {e}")))?
            .set_redis_settings(self.settings.clone());
        let client = redis::Client::open(info)
            .map_err(|e| Error::Internal(format!("redis node {host}:{port}: {e}")))?;
        self.bounded(async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            cmd.query_async(&mut conn).await
        })
        .await
    }

    /// Opens a connection of its own, subscribed to the channels that
    /// match `pattern`: pub/sub cannot share the lasting connection. On a
    /// cluster any node hears every message; the seeds are tried in turn.
    pub async fn subscriber(&self, pattern: &str) -> Result<redis::aio::PubSub, Error> {
        let mut last = None;
        for client in self.subscribe_to.iter() {
            let subscribe = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.psubscribe(pattern).await?;
                Ok(pubsub)
            };
            match tokio::time::timeout(self.connect_timeout * 2, subscribe).await {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(e)) => last = Some(self.classify(e)),
                Err(_) => {
                    last = Some(Error::Timeout {
                        endpoint: self.endpoint.clone(),
                        timeout: self.connect_timeout * 2,
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Internal("no Redis node to subscribe to".into())))
    }

    /// The cluster connection, opened now if it is not yet.
    async fn cluster(&self) -> redis::RedisResult<ClusterConnection> {
        let Connection::Cluster(client, connection) = &self.connection else {
            unreachable!("only called on a cluster");
        };
        let opened = connection
            .get_or_try_init(|| client.get_async_connection())
            .await?;
        Ok(opened.clone())
    }

    /// Answers whether Redis responds to PING now.
    pub async fn ping(&self) -> Result<(), Error> {
        self.query::<()>(&redis::cmd("PING")).await
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.explain(error).await),
            Err(_) => Err(Error::Timeout {
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            }),
        }
    }

    /// Names a disagreement on TLS between the URL and the port, found by
    /// asking the port when the error hints at one; else [`Self::classify`].
    async fn explain(&self, error: RedisError) -> Error {
        let Some(probe) = &self.probe else {
            return self.classify(error);
        };
        let endpoint = self.endpoint.clone();
        if self.tls && error.is_timeout() && probe.answers_plain_redis().await {
            let problem = format!(
                "no TLS answer within {}s, but the port answers plain Redis; is that port plain (use redis://)?",
                self.connect_timeout.as_secs_f32()
            );
            return Error::Tls { endpoint, problem };
        }
        let reset = error.is_connection_dropped() && !error.is_connection_refusal();
        if !self.tls && reset && probe.answers_tls().await {
            let reason =
                format!("{error}; the port answers TLS only: use rediss:// (and redis_ca_file)");
            return Error::Unavailable { endpoint, reason };
        }
        self.classify(error)
    }

    /// Sorts a Redis error by what the caller should do about it.
    fn classify(&self, error: RedisError) -> Error {
        let endpoint = self.endpoint.clone();
        if error.code() == Some("OOM") {
            return Error::OutOfMemory { endpoint };
        }
        if error.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(error.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
        {
            return Error::Unauthenticated { endpoint };
        }
        if let Some(mismatch) = self.handshake_failure(&error) {
            return mismatch;
        }
        if error.is_timeout() {
            return Error::Timeout {
                endpoint,
                timeout: self.timeout,
            };
        }
        if error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
        {
            return Error::Unavailable {
                endpoint,
                reason: error.to_string(),
            };
        }
        if matches!(
            error.code(),
            Some("LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN")
        ) {
            return Error::Unavailable {
                endpoint,
                reason: error.to_string(),
            };
        }
        Error::Internal(format!("redis at {endpoint}: {error}"))
    }

    /// Names a failed TLS handshake: an untrusted certificate, a server
    /// that wants a client certificate, or a port that is not TLS.
    fn handshake_failure(&self, error: &RedisError) -> Option<Error> {
        if !self.tls {
            return None;
        }
        let tls = rustls_error(error)?;
        Some(Error::Tls {
            endpoint: self.endpoint.clone(),
            problem: tls_problem(tls),
        })
    }
}

/// The rustls error behind a Redis error, if a TLS handshake or record
/// failed.
fn rustls_error(error: &RedisError) -> Option<&rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // Redis keeps its inner error behind an `Arc`.
        if let Some(shared) =
            current.downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
        {
            source = Some(shared.as_ref());
            continue;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return Some(tls);
            }
        }
        source = current.source();
    }
    None
}

/// What a TLS failure means for the operator.
fn tls_problem(error: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, CertificateError, Error as Tls};
    match error {
        Tls::InvalidCertificate(CertificateError::NotValidForName)
        | Tls::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => format!(
            "{error}; the server's certificate does not name the host in the URL"
        ),
        Tls::InvalidCertificate(_) => format!(
            "{error}; the server's certificate is not signed by a trusted CA: set redis_ca_file to the CA that signed it"
        ),
        Tls::AlertReceived(Alert::CertificateRequired)
        | Tls::AlertReceived(Alert::HandshakeFailure)
        | Tls::AlertReceived(Alert::BadCertificate)
        | Tls::AlertReceived(Alert::UnknownCA) => format!(
            "{error}; the server refused this client: it may require a client certificate (set redis_cert_file and redis_key_file) signed by a CA it trusts"
        ),
        Tls::InvalidMessage(_) | Tls::InappropriateMessage { .. } => format!(
            "{error}; is that port plain (use redis://)?"
        ),
        other => other.to_string(),
    }
}

/// The lasting connection to one server.
fn manager(client: redis::Client, config: &RedisConfig) -> Result<ConnectionManager, Error> {
    // One attempt per call: a call fails within one connect timeout when
    // Redis is away or speaks another protocol, and the next call tries
    // again.
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout))
        .set_number_of_retries(0)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, manager_config)
        .map_err(|e| Error::Internal(format!("redis connection manager: {e}")))
}

/// The client of a Redis Cluster. Its retries follow redirections and
/// failovers for a few seconds, within the call's own time bound.
fn cluster_client(config: &RedisConfig) -> Result<ClusterClient, Error> {
    let mut builder = ClusterClient::builder(config.cluster.clone())
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.response_timeout)
        .retries(8)
        .min_retry_wait(50)
        .max_retry_wait(1000);
    let settings = config.connection.redis_settings();
    if let Some(username) = settings.username() {
        builder = builder.username(username);
    }
    if let Some(password) = settings.password() {
        builder = builder.password(password);
    }
    builder
        .build()
        .map_err(|e| Error::Internal(format!("redis cluster client: {e}")))
}

/// The masters in the answer to CLUSTER NODES that are not failing.
fn masters(nodes: &str) -> Vec<Node> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = *fields.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            // host:port@bus-port[,hostname]
            let address = fields.get(1)?.split('@').next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some(Node::Master {
                host: host.to_string(),
                port: port.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes_and_failing_ones_skipped() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
";
        assert_eq!(
            masters(nodes),
            vec![
                Node::Master {
                    host: "127.0.0.1".into(),
                    port: 7000
                },
                Node::Master {
                    host: "127.0.0.1".into(),
                    port: 7001
                },
            ]
        );
    }
}
