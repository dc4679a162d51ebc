//! The daemon's one lasting connection to Redis: multiplexed, reconnecting
//! with backoff, and bounded in time. Start-up never waits for Redis; while
//! it is away, calls fail fast with an error that names the endpoint, and
//! the next call after it returns goes through.
//!
//! This is the one place that knows how connections are built, TLS
//! included: [`client`] turns the configuration into a `redis::Client`, and
//! [`Redis::classify`] names what went wrong when a handshake fails.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    ClientTlsConfig, Cmd, FromRedisValue, Pipeline, RedisError, ScriptInvocation, TlsCertificates,
};

use crate::config::RedisConfig;
use crate::error::Error;

mod probe;

use probe::Probe;

/// Builds the Redis client the configuration describes: plain for
/// `redis://`, and for `rediss://` TLS that trusts the configured CA (or,
/// without one, the bundled Mozilla roots) and presents the client
/// certificate when one is configured.
pub fn client(config: &RedisConfig) -> Result<redis::Client, Error> {
    let built = if config.is_tls() {
        install_crypto_provider();
        let certificates = TlsCertificates {
            root_cert: config.tls.ca.as_ref().map(|ca| ca.pem.clone()),
            client_tls: config.tls.client.as_ref().map(|id| ClientTlsConfig {
                client_cert: id.cert.pem.clone(),
                client_key: id.key.pem.clone(),
            }),
        };
        redis::Client::build_with_tls(config.connection.clone(), certificates)
    } else {
        redis::Client::open(config.connection.clone())
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

/// A handle on the Redis connection; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    manager: ConnectionManager,
    endpoint: String,
    tls: bool,
    /// Asks the port what it speaks when a connection fails oddly.
    probe: Option<Probe>,
    connect_timeout: Duration,
    timeout: Duration,
}

impl Redis {
    /// Prepares the connection without opening it: it opens on first use.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        let client = client(config)?;

        // Few quick retries: a call waits at most a couple of connect
        // timeouts before it fails, and the next call tries again.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| Error::Internal(format!("redis connection manager: {e}")))?;

        Ok(Redis {
            client,
            manager,
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

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        let mut conn = self.manager.clone();
        self.bounded(cmd.query_async(&mut conn)).await
    }

    /// Runs a pipeline in one round trip.
    pub async fn pipeline<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, Error> {
        let mut conn = self.manager.clone();
        self.bounded(pipe.query_async(&mut conn)).await
    }

    /// Runs a Lua script by its hash, loading it first where Redis lacks it.
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        let mut conn = self.manager.clone();
        self.bounded(invocation.invoke_async(&mut conn)).await
    }

    /// Opens a connection of its own, subscribed to the channels that
    /// match `pattern`: pub/sub cannot share the lasting connection.
    pub async fn subscriber(&self, pattern: &str) -> Result<redis::aio::PubSub, Error> {
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.psubscribe(pattern).await?;
            Ok(pubsub)
        };
        match tokio::time::timeout(self.connect_timeout * 2, subscribe).await {
            Ok(result) => result.map_err(|e| self.classify(e)),
            Err(_) => Err(Error::Timeout {
                endpoint: self.endpoint.clone(),
                timeout: self.connect_timeout * 2,
            }),
        }
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
