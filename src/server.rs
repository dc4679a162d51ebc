//! The gRPC servers: one on the Unix socket, and optionally one on TCP,
//! serving the same API, health and reflection services. The socket admits
//! callers by their user id; TCP by a bearer token.

use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Router;
use tonic::transport::Server;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};

use crate::access::{BearerToken, PeerAccess};
use crate::proto::v1::model_sync_server::ModelSyncServer;
use crate::service::{Service, MAX_METADATA_BYTES};
use crate::shutdown::Stop;

/// HTTP/2 flow-control windows. The protocol's default of 64 KiB makes a
/// 1 MiB message wait for many window updates; on a local socket a window
/// of several messages keeps both sides busy.
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 16 << 20;

/// The largest HTTP/2 frame peers may send: fewer, larger frames per
/// message. (The protocol's default is 16 KiB.)
pub const MAX_FRAME: u32 = 1 << 20;

/// Everything a listener serves.
pub struct Services<H, R> {
    pub api: Arc<Service>,
    pub health: HealthServer<H>,
    pub reflection: ServerReflectionServer<R>,
    /// The largest message the API decodes or encodes.
    pub limit: usize,
}

/// The largest message the API takes: one data message of
/// `max_message_bytes` plus room for a header's metadata.
pub fn message_limit(max_message_bytes: usize) -> usize {
    max_message_bytes + MAX_METADATA_BYTES + (64 << 10)
}

// Written out because the derived impl would ask the services' inner types
// to be Clone, which the servers around them do not need.
impl<H, R> Clone for Services<H, R> {
    fn clone(&self) -> Self {
        Services {
            api: self.api.clone(),
            health: self.health.clone(),
            reflection: self.reflection.clone(),
            limit: self.limit,
        }
    }
}

impl<H: Health, R: ServerReflection> Services<H, R> {
    fn api(&self) -> ModelSyncServer<Service> {
        ModelSyncServer::from_arc(self.api.clone())
            .max_decoding_message_size(self.limit)
            .max_encoding_message_size(self.limit)
    }

    fn router<I>(&self, interceptor: I) -> Router
    where
        I: tonic::service::Interceptor + Clone + Send + Sync + 'static,
    {
        Server::builder()
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .add_service(InterceptedService::new(self.api(), interceptor))
            .add_service(self.health.clone())
            .add_service(self.reflection.clone())
    }

    /// Serves the Unix socket until `stop`, then drains.
    pub async fn serve_unix(
        self,
        listener: UnixListener,
        access: PeerAccess,
        stop: Stop,
    ) -> Result<(), tonic::transport::Error> {
        self.router(access)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop.requested())
            .await
    }

    /// Serves TCP until `stop`, then drains.
    pub async fn serve_tcp(
        self,
        listener: TcpListener,
        token: BearerToken,
        stop: Stop,
    ) -> Result<(), tonic::transport::Error> {
        self.router(token)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.requested())
            .await
    }
}
