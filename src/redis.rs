//! The daemon's one lasting connection to Redis: multiplexed, reconnecting
//! with backoff, and bounded in time. Start-up never waits for Redis; while
//! it is away, calls fail fast with an error that names the endpoint, and
//! the next call after it returns goes through.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, ScriptInvocation};

use crate::config::RedisConfig;
use crate::error::Error;

/// A handle on the Redis connection; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    manager: ConnectionManager,
    endpoint: String,
    connect_timeout: Duration,
    timeout: Duration,
}

impl Redis {
    /// Prepares the connection without opening it: it opens on first use.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        let client = redis::Client::open(config.connection.clone())
            .map_err(|e| Error::Internal(format!("redis client: {e}")))?;

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
            connect_timeout: config.connect_timeout,
            endpoint: config.endpoint(),
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
            Ok(result) => result.map_err(|e| self.classify(e)),
            Err(_) => Err(Error::Timeout {
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            }),
        }
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
}
