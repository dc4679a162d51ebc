//! Who may call the daemon. The socket's file mode is the first gate; where
//! the configuration lists user ids, the peer's credentials, as the kernel
//! reports them for the Unix socket, are the second.

use std::collections::BTreeSet;
use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};
use tracing::warn;

/// Admits calls from the listed user ids only; everyone when the list is
/// empty.
#[derive(Debug, Clone, Default)]
pub struct PeerAccess {
    allowed: Arc<BTreeSet<u32>>,
}

impl PeerAccess {
    pub fn new(allowed: impl IntoIterator<Item = u32>) -> Self {
        PeerAccess {
            allowed: Arc::new(allowed.into_iter().collect()),
        }
    }
}

impl Interceptor for PeerAccess {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.allowed.is_empty() {
            return Ok(request);
        }
        let credentials = request
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|info| info.peer_cred);
        match credentials {
            Some(peer) if self.allowed.contains(&peer.uid()) => Ok(request),
            Some(peer) => {
                warn!(uid = peer.uid(), pid = ?peer.pid(), "refused a caller whose user id is not allowed");
                Err(Status::permission_denied(format!(
                    "user id {} may not call this daemon; ask its operator to add it to allowed_uids",
                    peer.uid()
                )))
            }
            None => {
                warn!("refused a caller whose credentials the socket did not report");
                Err(Status::permission_denied(
                    "the caller's credentials are unknown, and this daemon admits listed user ids only",
                ))
            }
        }
    }
}

/// Admits TCP calls that carry `authorization: Bearer <token>`; all calls
/// when no token is configured (the listener is then loopback only).
#[derive(Clone, Default)]
pub struct BearerToken {
    expected: Option<Arc<str>>,
}

impl BearerToken {
    pub fn new(token: Option<&str>) -> Self {
        BearerToken {
            expected: token.map(Arc::from),
        }
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.expected.is_some() {
            "set"
        } else {
            "not set"
        };
        f.debug_struct("BearerToken")
            .field("token", &state)
            .finish()
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match presented {
            Some(token) if same(token.as_bytes(), expected.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("the bearer token is wrong")),
            None => Err(Status::unauthenticated(
                "calls over TCP need `authorization: Bearer <token>` metadata",
            )),
        }
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
