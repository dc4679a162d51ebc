//! modelsync: a per-node daemon that moves compressed, chunked, versioned
//! models between training jobs and a shared Redis, over gRPC on a Unix
//! socket.
//!
//! Modules, in the order a push travels through them:
//! - [`socket`]: binds the Unix socket, replacing leftovers safely.
//! - [`server`]: the gRPC servers on the socket and, optionally, on TCP.
//! - [`service`]: the gRPC API; checks requests and calls the store.
//! - [`status`]: the one mapping from errors to gRPC codes.
//! - [`store`]: the storage layout on Redis: keys, manifest, writer, reader.
//! - [`codec`]: compression of single chunks, as pure functions on bytes.
//! - [`aggregation`]: the element-wise arithmetic of Aggregate, on spans.
//! - [`redis`]: the lasting, reconnecting, time-bounded Redis connection.
//!
//! Around them: [`access`] (which user ids may call), [`config`] (every
//! option and its default), [`identity`]
//! (the node's address), [`shutdown`] (signals and the drain), [`error`]
//! (why a call failed), [`call`] (accounting for calls), [`health`] (the
//! gRPC health service, following Redis), [`metrics`] (what is counted,
//! and the Prometheus endpoint), [`cli`] (the client commands) and
//! [`proto`] (the generated API and storage types).

pub mod access;
pub mod aggregation;
pub mod call;
pub mod cli;
pub mod codec;
pub mod config;
pub mod error;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod redis;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod socket;
pub mod status;
pub mod store;

/// Types generated from `proto/`.
pub mod proto {
    /// The API every client speaks.
    pub mod v1 {
        tonic::include_proto!("modelsync.v1");
    }

    /// The manifest as stored in Redis.
    pub mod storage {
        tonic::include_proto!("modelsync.storage.v1");
    }

    /// Every message and service above, for gRPC reflection.
    pub const DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("modelsync_descriptor");
}

use std::future::Future;
use std::sync::Arc;

use tokio::net::UnixListener;
use tracing::{info, warn};

use crate::call::Counters;
use crate::config::Config;
use crate::proto::v1::model_sync_server::ModelSyncServer;
use crate::server::Services;
use crate::service::Service;
use crate::store::Store;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Redis(#[from] error::Error),

    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),

    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Serves the API on `listener` until `shutdown` resolves, then lets calls
/// in flight finish for the configured grace period and closes the rest.
pub async fn run(
    listener: UnixListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let tcp = match &config.tcp {
        Some(tcp) => Some(bind_tcp(tcp.addr).await?),
        None => None,
    };
    let redis = redis::Redis::new(&config.redis)?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_not_serving::<ModelSyncServer<Service>>().await;
    let redis_state = Arc::new(health::RedisState::default());
    let probe = health::watch_redis(redis.clone(), reporter, redis_state.clone());
    let _probe = AbortOnDrop(tokio::spawn(probe));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| error::Error::Internal(format!("reflection: {e}")))?;

    let store = Arc::new(Store::new(
        redis,
        config.storage.clone(),
        config.identity.address.clone(),
    ));
    let counters = Arc::new(Counters::default());
    let draining = counters.clone();
    let trigger = async move {
        shutdown.await;
        info!(
            in_flight = draining.in_flight(),
            "no longer accepting calls; draining"
        );
    };
    let (stop, deadline) = shutdown::with_deadline(trigger, config.shutdown_grace);
    let api = Service::new(store, &config, counters.clone(), redis_state, stop.clone());
    let services = Services {
        api: Arc::new(api),
        health,
        reflection,
        limit: server::message_limit(config.max_message_bytes),
    };

    let access = access::PeerAccess::new(config.allowed_uids.clone());
    let unix = services.clone().serve_unix(listener, access, stop.clone());
    let token = access::BearerToken::new(config.tcp.as_ref().and_then(|t| t.token.as_deref()));
    let tcp = async move {
        match tcp {
            Some(listener) => services.serve_tcp(listener, token, stop).await,
            None => Ok(()),
        }
    };

    tokio::select! {
        (unix, tcp) = futures::future::join(unix, tcp) => {
            unix?;
            tcp?;
            info!("stopped after every call finished");
        }
        _ = deadline => {
            warn!(in_flight = counters.in_flight(), grace_s = config.shutdown_grace.as_secs_f32(), "grace period over; closing the calls still running");
        }
    }
    Ok(())
}

async fn bind_tcp(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, RunError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })?;
    info!(%addr, "also listening on TCP");
    Ok(listener)
}

/// Ends a background task when its owner ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
