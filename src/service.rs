//! The gRPC service: checks each request, calls the store, and turns what
//! comes back into responses. The only module that sees both the API types
//! and the store.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::config::{Config, Layout, NamespaceSettings};
use crate::error::Error;
use crate::identity::Identity;
use crate::proto::v1 as api;
use crate::proto::v1::model_sync_server::ModelSync;
use crate::store::{ModelInfo, NewVersion, Store};

/// Names longer than this are refused.
pub const MAX_NAME_BYTES: usize = 1024;

/// Metadata larger than this, keys and values together, is refused.
pub const MAX_METADATA_BYTES: usize = 1 << 20;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The daemon's implementation of the `ModelSync` API.
pub struct Service {
    store: Arc<Store>,
    identity: Identity,
    max_message_bytes: usize,
    started: Instant,
    counters: Arc<Counters>,
}

/// Calls served and in flight, for Status and for the shutdown log.
#[derive(Default)]
pub struct Counters {
    served: AtomicU64,
    in_flight: AtomicUsize,
}

impl Counters {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts a call from its start until it is dropped, which for a streaming
/// response is when the stream ends.
struct CallGuard(Arc<Counters>);

impl CallGuard {
    fn new(counters: &Arc<Counters>) -> Self {
        counters.served.fetch_add(1, Ordering::Relaxed);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        CallGuard(counters.clone())
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Service {
    pub fn new(store: Arc<Store>, config: &Config, counters: Arc<Counters>) -> Self {
        Service {
            store,
            identity: config.identity.clone(),
            max_message_bytes: config.max_message_bytes,
            started: Instant::now(),
            counters,
        }
    }

    /// Turns the header of a push into what the store needs, or refuses it.
    fn new_version(header: api::PushHeader) -> Result<NewVersion, Error> {
        check_name("namespace", &header.namespace)?;
        check_name("key", &header.key)?;
        let metadata_bytes: usize = header.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if metadata_bytes > MAX_METADATA_BYTES {
            return Err(Error::TooLarge(format!(
                "metadata holds {metadata_bytes} bytes; at most {MAX_METADATA_BYTES} are accepted"
            )));
        }
        let codec = match header.codec.as_str() {
            "" => None,
            name => Some(name.parse().map_err(Error::InvalidInput)?),
        };
        Ok(NewVersion {
            namespace: header.namespace,
            key: header.key,
            metadata: header.metadata,
            ttl: header.ttl_seconds.map(Duration::from_secs),
            raw_size: header.raw_size,
            codec,
            expected_version: header.expected_version,
            element_width: header
                .element_width
                .map(|w| u8::try_from(w).ok().filter(|w| (1..=64).contains(w)))
                .map(|w| w.ok_or_else(|| Error::invalid("element_width must be between 1 and 64")))
                .transpose()?,
        })
    }
}

#[tonic::async_trait]
impl ModelSync for Service {
    async fn push(
        &self,
        request: Request<Streaming<api::PushRequest>>,
    ) -> Result<Response<api::PushResponse>, Status> {
        let _call = CallGuard::new(&self.counters);
        let mut messages = request.into_inner();

        let first = messages.message().await?;
        let header = match first.and_then(|m| m.message) {
            Some(api::push_request::Message::Header(header)) => header,
            _ => {
                return Err(fail(
                    "push",
                    Error::invalid("the first message of a push must be its header"),
                ))
            }
        };
        let new = Service::new_version(header).map_err(|e| fail("push", e))?;
        let (namespace, key) = (new.namespace.clone(), new.key.clone());
        debug!(%namespace, %key, "push");

        let data = push_data(messages, self.max_message_bytes);
        let committed = self
            .store
            .push(new, data)
            .await
            .map_err(|e| fail("push", e))?;
        Ok(Response::new(api::PushResponse {
            version: committed.version,
            raw_size: committed.raw_size,
            stored_size: committed.stored_size,
            chunk_count: committed.chunk_count,
        }))
    }

    type PullStream = ResponseStream<api::PullResponse>;

    async fn pull(
        &self,
        request: Request<api::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let call = CallGuard::new(&self.counters);
        let api::PullRequest { namespace, key } = request.into_inner();
        check_names(&namespace, &key).map_err(|e| fail("pull", e))?;
        debug!(%namespace, %key, "pull");

        let snapshot = self
            .store
            .open(&namespace, &key)
            .await
            .map_err(|e| fail("pull", e))?;
        let header = api::PullResponse {
            message: Some(api::pull_response::Message::Header(to_header(
                &snapshot.info,
            ))),
        };
        let max = self.max_message_bytes;
        let data = self.store.chunks(snapshot).flat_map(move |chunk| {
            let pieces: Vec<Result<Bytes, Error>> = match chunk {
                Ok(chunk) => split(chunk, max).map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(pieces)
        });
        let data = data.map(move |piece| {
            let _ = &call;
            piece
                .map(|bytes| api::PullResponse {
                    message: Some(api::pull_response::Message::Data(bytes)),
                })
                .map_err(|e| fail("pull", e))
        });
        let stream = futures::stream::once(async { Ok(header) }).chain(data);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn exists(
        &self,
        request: Request<api::ExistsRequest>,
    ) -> Result<Response<api::ExistsResponse>, Status> {
        let _call = CallGuard::new(&self.counters);
        let api::ExistsRequest { namespace, key } = request.into_inner();
        check_names(&namespace, &key).map_err(|e| fail("exists", e))?;
        debug!(%namespace, %key, "exists");

        let snapshot = self
            .store
            .head(&namespace, &key)
            .await
            .map_err(|e| fail("exists", e))?;
        Ok(Response::new(api::ExistsResponse {
            exists: snapshot.is_some(),
            header: snapshot.map(|info| to_header(&info)),
        }))
    }

    type ListStream = ResponseStream<api::ListResponse>;

    async fn list(
        &self,
        request: Request<api::ListRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let call = CallGuard::new(&self.counters);
        let namespace = request.into_inner().namespace;
        check_name("namespace", &namespace).map_err(|e| fail("list", e))?;
        debug!(%namespace, "list");

        let batches = self.store.list(&namespace);
        let stream = batches.flat_map(move |batch| {
            let _ = &call;
            let items: Vec<Result<api::ListResponse, Status>> = match batch {
                Ok(infos) => infos
                    .iter()
                    .map(|info| {
                        Ok(api::ListResponse {
                            header: Some(to_header(info)),
                        })
                    })
                    .collect(),
                Err(e) => vec![Err(fail("list", e))],
            };
            futures::stream::iter(items)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn delete(
        &self,
        request: Request<api::DeleteRequest>,
    ) -> Result<Response<api::DeleteResponse>, Status> {
        let _call = CallGuard::new(&self.counters);
        let api::DeleteRequest { namespace, key } = request.into_inner();
        check_names(&namespace, &key).map_err(|e| fail("delete", e))?;
        debug!(%namespace, %key, "delete");

        let deleted = self
            .store
            .delete(&namespace, &key)
            .await
            .map_err(|e| fail("delete", e))?;
        Ok(Response::new(api::DeleteResponse { deleted }))
    }

    async fn status(
        &self,
        _request: Request<api::StatusRequest>,
    ) -> Result<Response<api::StatusResponse>, Status> {
        let _call = CallGuard::new(&self.counters);
        let redis_connected = self.store.redis().ping().await.is_ok();
        let configured = &self.store.settings().namespaces;
        Ok(Response::new(api::StatusResponse {
            address: self.identity.address.clone(),
            labels: self.identity.labels.clone().into_iter().collect(),
            redis_endpoint: self.store.redis().endpoint().to_string(),
            redis_connected,
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            calls_served: self.counters.served.load(Ordering::Relaxed),
            max_message_bytes: self.max_message_bytes as u64,
            namespaces: configured
                .iter()
                .map(|(name, settings)| namespace_info(name, settings))
                .collect(),
        }))
    }

    async fn namespace(
        &self,
        request: Request<api::NamespaceRequest>,
    ) -> Result<Response<api::NamespaceInfo>, Status> {
        let namespace = request.into_inner().namespace;
        check_name("namespace", &namespace).map_err(|e| fail("namespace", e))?;
        let settings = self.store.namespace(&namespace);
        Ok(Response::new(namespace_info(&namespace, &settings)))
    }
}

/// The data messages of a push, each checked against the size limit; any
/// message out of place ends the push.
fn push_data(
    messages: Streaming<api::PushRequest>,
    max: usize,
) -> impl Stream<Item = Result<Bytes, Error>> + Unpin {
    messages.map(move |message| match message {
        Ok(api::PushRequest {
            message: Some(api::push_request::Message::Data(bytes)),
        }) if bytes.len() > max => Err(Error::TooLarge(format!(
            "a data message holds {} bytes; this daemon takes at most {max} per message",
            bytes.len()
        ))),
        Ok(api::PushRequest {
            message: Some(api::push_request::Message::Data(bytes)),
        }) => Ok(bytes),
        Ok(api::PushRequest {
            message: Some(api::push_request::Message::Header(_)),
        }) => Err(Error::invalid(
            "a push carries exactly one header, as its first message",
        )),
        Ok(api::PushRequest { message: None }) => Err(Error::invalid(
            "the client aborted the push (a message with neither header nor data); nothing was stored",
        )),
        Err(status) => Err(Error::Cancelled(status.message().to_string())),
    })
}

/// Logs an error once, where the call ends, and turns it into a status.
fn fail(method: &'static str, error: Error) -> Status {
    if crate::status::is_server_side(&error) {
        warn!(method, error = %error, "call failed");
    } else {
        debug!(method, error = %error, "call refused");
    }
    error.into()
}

fn check_names(namespace: &str, key: &str) -> Result<(), Error> {
    check_name("namespace", namespace)?;
    check_name("key", key)
}

/// Refuses empty, oversized or control-character names, naming the field.
fn check_name(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{field} is empty; give it a name")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(format!(
            "{field} is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} contains a control character"
        )));
    }
    Ok(())
}

/// Cuts a chunk into message-sized slices without copying.
fn split(chunk: Bytes, max: usize) -> impl Iterator<Item = Bytes> {
    let len = chunk.len();
    (0..len)
        .step_by(max.max(1))
        .map(move |start| chunk.slice(start..(start + max).min(len)))
}

fn namespace_info(name: &str, settings: &NamespaceSettings) -> api::NamespaceInfo {
    let layout = match settings.layout {
        Layout::Chunked => "chunked",
        Layout::Legacy => "legacy",
    };
    api::NamespaceInfo {
        namespace: name.to_string(),
        layout: layout.to_string(),
        codec: settings.codec.to_string(),
        chunk_size: settings.chunk_size,
        ttl_seconds: settings.ttl.as_secs(),
        trust_pickle: settings.trust_pickle,
    }
}

fn to_header(info: &ModelInfo) -> api::ModelHeader {
    api::ModelHeader {
        namespace: info.namespace.clone(),
        key: info.key.clone(),
        version: info.version,
        updater: info.updater.clone(),
        updated_at_ms: info.updated_at_ms,
        raw_size: info.raw_size,
        metadata: info.metadata.clone(),
        codec: info.codec.clone(),
        stored_size: info.stored_size,
        chunk_count: info.chunk_count,
        ttl_ms: info.ttl_ms,
    }
}
