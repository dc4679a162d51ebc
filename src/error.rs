//! The one error type of a call's path through the daemon, from request
//! checks down to Redis. Each variant says what the caller should do next;
//! `status.rs` turns it into a gRPC status in one place.

use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong: fix it before trying again.
    #[error("{0}")]
    InvalidInput(String),

    /// The request is larger than a configured limit.
    #[error("{0}")]
    TooLarge(String),

    /// Nothing is stored under the name (or it has expired).
    #[error("{0}")]
    NotFound(String),

    /// What is stored is damaged: a checksum or a decoder failed.
    #[error("{0}")]
    DataLoss(String),

    /// Redis cannot be reached just now; trying again later may work.
    #[error("redis at {endpoint} is unreachable: {reason}")]
    Unavailable { endpoint: String, reason: String },

    /// The TLS handshake with Redis failed: the ends disagree on TLS, or
    /// on whom to trust. The problem says which and what to change.
    #[error("TLS handshake with redis at {endpoint} failed: {problem}")]
    Tls { endpoint: String, problem: String },

    /// Redis did not answer in time.
    #[error("redis at {endpoint} did not answer within {}s", timeout.as_secs_f32())]
    Timeout { endpoint: String, timeout: Duration },

    /// The push expected another current version: someone else pushed first.
    #[error("the key is at version {current}, not the expected {expected}: pull it, then push against the version you saw")]
    Conflict { current: u64, expected: u64 },

    /// This daemon's settings for a namespace disagree with what Redis
    /// records for it.
    #[error("{0}")]
    Mismatch(String),

    /// No version newer than the one asked for was committed in time.
    #[error("{0}")]
    NoNewerVersion(String),

    /// The daemon is stopping and no longer waits on anything.
    #[error("the modelsync daemon is shutting down; call again once it is back")]
    ShuttingDown,

    /// Redis is out of memory and refuses writes.
    #[error("redis at {endpoint} is out of memory and refuses writes: free memory or raise maxmemory, then push again")]
    OutOfMemory { endpoint: String },

    /// Redis refused the daemon's credentials.
    #[error("redis at {endpoint} refused the credentials: check the user and password")]
    Unauthenticated { endpoint: String },

    /// The call cannot work on what the namespace holds, as it is stored
    /// (such as arithmetic on the pickles of a legacy namespace).
    #[error("{0}")]
    Unsupported(String),

    /// The client gave up on the call, or its stream broke.
    #[error("the client's stream ended abnormally: {0}")]
    Cancelled(String),

    /// A bug or an answer from Redis that makes no sense; details are logged.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    pub fn data_loss(message: impl Into<String>) -> Self {
        Error::DataLoss(message.into())
    }
}
