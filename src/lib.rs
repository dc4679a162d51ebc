//! modelsync: a per-node daemon that moves compressed, chunked, versioned
//! models between training jobs and a shared Redis, over gRPC on a Unix
//! socket.
//!
//! Modules, in the order a push travels through them:
//! - [`socket`]: binds the Unix socket, replacing leftovers safely.
//! - [`service`]: the gRPC API; checks requests and calls the store.
//! - [`status`]: the one mapping from errors to gRPC codes.
//! - [`store`]: the storage layout on Redis: keys, manifest, writer, reader.
//! - [`codec`]: compression of single chunks, as pure functions on bytes.
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
pub mod call;
pub mod cli;
pub mod codec;
pub mod config;
pub mod error;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod redis;
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
use tokio_stream::wrappers::UnixListenerStream;
use tonic::service::interceptor::InterceptedService;
use tracing::{info, warn};

use crate::call::Counters;
use crate::config::Config;
use crate::proto::v1::model_sync_server::ModelSyncServer;
use crate::service::{Service, MAX_METADATA_BYTES};
use crate::store::Store;

/// HTTP/2 flow-control windows. The protocol's default of 64 KiB makes a
/// 1 MiB message wait for many window updates; on a local socket a window
/// of several messages keeps both sides busy.
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 16 << 20;

/// The largest HTTP/2 frame peers may send: fewer, larger frames per
/// message. (The protocol's default is 16 KiB.)
pub const MAX_FRAME: u32 = 1 << 20;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Redis(#[from] error::Error),

    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the API on `listener` until `shutdown` resolves, then lets calls
/// in flight finish for the configured grace period and closes the rest.
pub async fn run(
    listener: UnixListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
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
    let service = Service::new(store, &config, counters.clone(), redis_state);
    // Room for one data message plus a header's metadata.
    let limit = config.max_message_bytes + MAX_METADATA_BYTES + (64 << 10);
    let api = ModelSyncServer::new(service)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let api = InterceptedService::new(api, access::PeerAccess::new(config.allowed_uids.clone()));

    let draining = counters.clone();
    let trigger = async move {
        shutdown.await;
        info!(
            in_flight = draining.in_flight(),
            "no longer accepting calls; draining"
        );
    };
    let (stop, deadline) = shutdown::with_deadline(trigger, config.shutdown_grace);
    let serving = tonic::transport::Server::builder()
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .add_service(api)
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop);

    tokio::select! {
        result = serving => {
            result?;
            info!("stopped after every call finished");
        }
        _ = deadline => {
            warn!(in_flight = counters.in_flight(), grace_s = config.shutdown_grace.as_secs_f32(), "grace period over; closing the calls still running");
        }
    }
    Ok(())
}

/// Ends a background task when its owner ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
