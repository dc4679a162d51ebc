//! Opening a gRPC channel to the daemon over its Unix socket.

use std::path::Path;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::CliError;
use crate::proto::v1::model_sync_client::ModelSyncClient;

/// Connects to the daemon listening at `socket`.
pub async fn connect(socket: &Path) -> Result<ModelSyncClient<Channel>, CliError> {
    Ok(ModelSyncClient::new(channel(socket).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// Opens a channel to the daemon at `socket`, for any of its services.
pub async fn channel(socket: &Path) -> Result<Channel, CliError> {
    let path = socket.to_owned();
    // The URI is required by the API but unused: every connection goes to
    // the socket. "localhost" keeps the HTTP/2 authority valid.
    let channel = Endpoint::from_static("http://localhost")
        .initial_stream_window_size(crate::server::STREAM_WINDOW)
        .initial_connection_window_size(crate::server::CONNECTION_WINDOW)
        .max_frame_size(crate::server::MAX_FRAME)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| CliError::Unreachable {
            socket: socket.to_owned(),
            reason: source_text(&e),
        })?;
    Ok(channel)
}

/// The innermost cause, which says more than the transport's own wrapper.
fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}
