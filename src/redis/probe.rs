//! Asking a Redis port directly what it speaks, after a connection failed
//! in a way that suggests the two ends disagree on TLS. A plain Redis
//! waits in silence for the end of a TLS hello's "line", so a `rediss://`
//! connection to it only times out; a TLS-only Redis resets a plain
//! connection. Neither error says why, and one short exchange does.

use std::sync::Arc;
use std::time::Duration;

use redis::ConnectionAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// One TCP endpoint to ask, and how long to wait for it.
#[derive(Clone)]
pub struct Probe {
    host: String,
    port: u16,
    limit: Duration,
}

impl Probe {
    /// A probe of a TCP endpoint; none for a Unix socket.
    pub fn new(addr: &ConnectionAddr, limit: Duration) -> Option<Self> {
        let (host, port) = match addr {
            ConnectionAddr::Tcp(host, port) => (host, port),
            ConnectionAddr::TcpTls { host, port, .. } => (host, port),
            _ => return None,
        };
        Some(Probe {
            host: host.clone(),
            port: *port,
            limit,
        })
    }

    /// Whether the port answers a plain PING as Redis does (`+PONG`, or an
    /// error such as `-NOAUTH`).
    pub async fn answers_plain_redis(&self) -> bool {
        matches!(self.first_byte(b"PING\r\n").await, Some(b'+' | b'-'))
    }

    /// Whether the port answers a TLS hello with a TLS handshake.
    pub async fn answers_tls(&self) -> bool {
        let Some(hello) = client_hello(&self.host) else {
            return false;
        };
        self.first_byte(&hello).await == Some(TLS_HANDSHAKE)
    }

    async fn first_byte(&self, hello: &[u8]) -> Option<u8> {
        let exchange = async {
            let mut stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .ok()?;
            stream.write_all(hello).await.ok()?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.ok()?;
            Some(byte[0])
        };
        tokio::time::timeout(self.limit, exchange)
            .await
            .ok()
            .flatten()
    }
}

/// The bytes of a TLS client hello for `host`. Nothing is verified: the
/// probe reads only the first byte of the answer.
fn client_hello(host: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::ServerName;

    super::install_crypto_provider();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid name"));
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let mut hello = Vec::new();
    connection.write_tls(&mut hello).ok()?;
    Some(hello)
}
