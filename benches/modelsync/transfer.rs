//! Moving models through the daemon's API the way a trainer does: a header,
//! then data in messages of at most 1 MiB; and back.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use modelsync::proto::v1 as api;
use tonic::{Status, Streaming};
use xxhash_rust::xxh3::Xxh3;

use crate::daemon::Client;

/// The daemon's default limit on one data message.
pub const MESSAGE_BYTES: usize = 1 << 20;

/// The header of a push of `raw_size` bytes; an empty codec means the
/// daemon's default.
pub fn header(namespace: &str, key: &str, codec: &str, raw_size: u64) -> api::PushHeader {
    api::PushHeader {
        namespace: namespace.into(),
        key: key.into(),
        codec: codec.into(),
        raw_size: Some(raw_size),
        ..Default::default()
    }
}

/// Pushes `data` as a new version; the messages share its memory.
pub async fn push(
    client: &mut Client,
    header: api::PushHeader,
    data: Bytes,
) -> Result<api::PushResponse, Status> {
    let len = data.len();
    let pieces = (0..len)
        .step_by(MESSAGE_BYTES)
        .map(move |start| data.slice(start..(start + MESSAGE_BYTES).min(len)));
    push_stream(client, header, futures::stream::iter(pieces)).await
}

/// Pushes pieces as they are produced, so that the model never has to be
/// in memory whole.
pub async fn push_stream(
    client: &mut Client,
    header: api::PushHeader,
    pieces: impl Stream<Item = Bytes> + Send + 'static,
) -> Result<api::PushResponse, Status> {
    let first = api::PushRequest {
        message: Some(api::push_request::Message::Header(header)),
    };
    let data = pieces.map(|bytes| api::PushRequest {
        message: Some(api::push_request::Message::Data(bytes)),
    });
    let messages = futures::stream::iter([first]).chain(data);
    Ok(client.push(messages).await?.into_inner())
}

/// Pulls the newest version into one buffer, as a trainer loading it does.
pub async fn pull(client: &mut Client, namespace: &str, key: &str) -> Result<Vec<u8>, Status> {
    let (header, mut stream) = open(client, namespace, key).await?;
    let mut model = Vec::with_capacity(header.raw_size as usize);
    while let Some(piece) = next_piece(&mut stream).await? {
        model.extend_from_slice(&piece);
    }
    Ok(model)
}

/// Pulls the newest version without keeping it: its length and checksum.
pub async fn pull_checksum(
    client: &mut Client,
    namespace: &str,
    key: &str,
) -> Result<(u64, u64), Status> {
    let (_, mut stream) = open(client, namespace, key).await?;
    let mut hasher = Xxh3::new();
    let mut len = 0;
    while let Some(piece) = next_piece(&mut stream).await? {
        len += piece.len() as u64;
        hasher.update(&piece);
    }
    Ok((len, hasher.digest()))
}

async fn open(
    client: &mut Client,
    namespace: &str,
    key: &str,
) -> Result<(api::ModelHeader, Streaming<api::PullResponse>), Status> {
    let request = api::PullRequest {
        namespace: namespace.into(),
        key: key.into(),
        ..Default::default()
    };
    let mut stream = client.pull(request).await?.into_inner();
    match stream.message().await?.and_then(|m| m.message) {
        Some(api::pull_response::Message::Header(header)) => Ok((header, stream)),
        _ => Err(Status::internal("the pull did not start with a header")),
    }
}

async fn next_piece(stream: &mut Streaming<api::PullResponse>) -> Result<Option<Bytes>, Status> {
    match stream.message().await? {
        None => Ok(None),
        Some(api::PullResponse {
            message: Some(api::pull_response::Message::Data(bytes)),
        }) => Ok(Some(bytes)),
        Some(_) => Err(Status::internal(
            "a pull sent something other than data after its header",
        )),
    }
}
