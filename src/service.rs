//! The gRPC service: checks each request, calls the store, and turns what
//! comes back into responses. The only module that sees both the API types
//! and the store.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::aggregation::{ElementType, Operation};
use crate::call::{Call, Counters};
use crate::config::{Config, Layout, NamespaceSettings};
use crate::error::Error;
use crate::health::RedisState;
use crate::identity::Identity;
use crate::proto::v1 as api;
use crate::proto::v1::model_sync_server::ModelSync;
use crate::shutdown::Stop;
use crate::store::{AggregationRequest, ModelInfo, NewVersion, Newer, Store, MAX_WAIT};

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
    redis_state: Arc<RedisState>,
    /// Ends waiting calls when the daemon stops, instead of holding up its
    /// drain until their deadline.
    stop: Stop,
}

impl Service {
    pub fn new(
        store: Arc<Store>,
        config: &Config,
        counters: Arc<Counters>,
        redis_state: Arc<RedisState>,
        stop: Stop,
    ) -> Self {
        Service {
            store,
            identity: config.identity.clone(),
            max_message_bytes: config.max_message_bytes,
            started: Instant::now(),
            counters,
            redis_state,
            stop,
        }
    }

    /// Runs a call that may wait, ending it early if the daemon stops.
    async fn unless_stopping<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::select! {
            result = call => result,
            _ = self.stop.requested() => Err(Error::ShuttingDown),
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
        let call = Call::start(&self.counters, "push");
        call.finish(
            self.receive_push(request.into_inner())
                .await
                .map(Response::new),
        )
    }

    type PullStream = ResponseStream<api::PullResponse>;

    async fn pull(
        &self,
        request: Request<api::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let call = Call::start(&self.counters, "pull");
        match self.open_pull(request.into_inner()).await {
            Ok((stream, on_success)) => Ok(Response::new(Box::pin(call.track(stream, on_success)))),
            Err(status) => call.finish(Err(status)),
        }
    }

    async fn exists(
        &self,
        request: Request<api::ExistsRequest>,
    ) -> Result<Response<api::ExistsResponse>, Status> {
        let call = Call::start(&self.counters, "exists");
        let result = self
            .look_up(request.into_inner())
            .await
            .map_err(|e| fail("exists", e));
        call.finish(result.map(Response::new))
    }

    type ListStream = ResponseStream<api::ListResponse>;

    async fn list(
        &self,
        request: Request<api::ListRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let call = Call::start(&self.counters, "list");
        let namespace = request.into_inner().namespace;
        if let Err(e) = check_name("namespace", &namespace) {
            return call.finish(Err(fail("list", e)));
        }
        debug!(%namespace, "list");

        let batches = match self.store.list(&namespace).await {
            Ok(batches) => batches,
            Err(e) => return call.finish(Err(fail("list", e))),
        };
        let stream = batches.flat_map(|batch| {
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
        Ok(Response::new(Box::pin(call.track(Box::pin(stream), || {}))))
    }

    async fn delete(
        &self,
        request: Request<api::DeleteRequest>,
    ) -> Result<Response<api::DeleteResponse>, Status> {
        let call = Call::start(&self.counters, "delete");
        let api::DeleteRequest { namespace, key } = request.into_inner();
        let result = async {
            check_names(&namespace, &key)?;
            debug!(%namespace, %key, "delete");
            let deleted = self.store.delete(&namespace, &key).await?;
            Ok(api::DeleteResponse { deleted })
        };
        call.finish(
            result
                .await
                .map(Response::new)
                .map_err(|e| fail("delete", e)),
        )
    }

    async fn status(
        &self,
        _request: Request<api::StatusRequest>,
    ) -> Result<Response<api::StatusResponse>, Status> {
        let call = Call::start(&self.counters, "status");
        let redis_connected = self.redis_state.is_up();
        let configured = &self.store.settings().namespaces;
        call.finish(Ok(Response::new(api::StatusResponse {
            address: self.identity.address.clone(),
            labels: self.identity.labels.clone().into_iter().collect(),
            redis_endpoint: self.store.redis().endpoint().to_string(),
            redis_connected,
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            calls_served: self.counters.served(),
            max_message_bytes: self.max_message_bytes as u64,
            redis_rtt_ms: self.redis_state.rtt().as_secs_f64() * 1000.0,
            namespaces: configured
                .iter()
                .map(|(name, settings)| namespace_info(name, settings))
                .collect(),
        })))
    }

    async fn namespace(
        &self,
        request: Request<api::NamespaceRequest>,
    ) -> Result<Response<api::NamespaceInfo>, Status> {
        let call = Call::start(&self.counters, "namespace");
        let namespace = request.into_inner().namespace;
        let result = async {
            check_name("namespace", &namespace)?;
            let settings = self.store.agreed(&namespace).await?;
            Ok(namespace_info(&namespace, &settings))
        };
        let result = result.await.map_err(|e| fail("namespace", e));
        call.finish(result.map(Response::new))
    }

    type WatchStream = ResponseStream<api::WatchResponse>;

    async fn watch(
        &self,
        request: Request<api::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let call = Call::start(&self.counters, "watch");
        match self.open_watch(request.into_inner()).await {
            Ok(stream) => Ok(Response::new(Box::pin(call.track(stream, || {})))),
            Err(e) => call.finish(Err(fail("watch", e))),
        }
    }

    type AggregateStream = ResponseStream<api::AggregateResponse>;

    async fn aggregate(
        &self,
        request: Request<api::AggregateRequest>,
    ) -> Result<Response<Self::AggregateStream>, Status> {
        let call = Call::start(&self.counters, "aggregate");
        match self.open_aggregate(request.into_inner()).await {
            Ok(stream) => Ok(Response::new(Box::pin(call.track(stream, || {})))),
            Err(e) => call.finish(Err(fail("aggregate", e))),
        }
    }
}

/// What a pull answers with: its response stream, and what to record once
/// that stream has ended whole.
type PullAnswer = (ResponseStream<api::PullResponse>, Box<dyn FnOnce() + Send>);

impl Service {
    async fn receive_push(
        &self,
        mut messages: Streaming<api::PushRequest>,
    ) -> Result<api::PushResponse, Status> {
        let header = match messages.message().await?.and_then(|m| m.message) {
            Some(api::push_request::Message::Header(header)) => header,
            _ => {
                let error = Error::invalid("the first message of a push must be its header");
                return Err(fail("push", error));
            }
        };
        let new = Service::new_version(header).map_err(|e| fail("push", e))?;
        debug!(namespace = %new.namespace, key = %new.key, "push");

        let data = push_data(messages, self.max_message_bytes);
        let committed = self
            .store
            .push(new, data)
            .await
            .map_err(|e| fail("push", e))?;
        crate::metrics::transferred(
            "push",
            &committed.codec,
            committed.raw_size,
            committed.stored_size,
            committed.chunk_count,
        );
        Ok(api::PushResponse {
            version: committed.version,
            raw_size: committed.raw_size,
            stored_size: committed.stored_size,
            chunk_count: committed.chunk_count,
            codec: committed.codec,
        })
    }

    async fn open_pull(&self, request: api::PullRequest) -> Result<PullAnswer, Status> {
        let api::PullRequest {
            namespace,
            key,
            newer_than,
            wait_ms,
        } = request;
        check_names(&namespace, &key).map_err(|e| fail("pull", e))?;
        let newer = newer(newer_than, wait_ms).map_err(|e| fail("pull", e))?;
        debug!(%namespace, %key, ?newer, "pull");

        let snapshot = match newer {
            Some(newer) => {
                self.unless_stopping(self.store.open_newer(&namespace, &key, newer))
                    .await
            }
            None => self.store.open(&namespace, &key).await,
        };
        let snapshot = snapshot.map_err(|e| fail("pull", e))?;
        let info = snapshot.info.clone();
        let header = api::PullResponse {
            message: Some(api::pull_response::Message::Header(to_header(&info))),
        };
        let data = data_messages(
            self.store.chunks(snapshot),
            self.max_message_bytes,
            "pull",
            |bytes| api::PullResponse {
                message: Some(api::pull_response::Message::Data(bytes)),
            },
        );
        let stream = futures::stream::once(async { Ok(header) }).chain(data);
        let on_success = move || {
            crate::metrics::transferred(
                "pull",
                &info.codec,
                info.raw_size,
                info.stored_size,
                info.chunk_count,
            )
        };
        Ok((Box::pin(stream), Box::new(on_success)))
    }

    async fn open_aggregate(
        &self,
        request: api::AggregateRequest,
    ) -> Result<ResponseStream<api::AggregateResponse>, Error> {
        let request = aggregation_request(request)?;
        debug!(namespace = %request.namespace, inputs = request.keys.len(), operation = ?request.operation, "aggregate");

        let aggregation = self.store.aggregate(request).await?;
        let header = api::AggregateResponse {
            message: Some(api::aggregate_response::Message::Header(
                api::AggregateHeader {
                    element_count: aggregation.element_count,
                    raw_size: aggregation.raw_size,
                    inputs: aggregation.inputs.iter().map(to_header).collect(),
                    metadata: aggregation.metadata,
                },
            )),
        };
        let data = data_messages(
            aggregation.data,
            self.max_message_bytes,
            "aggregate",
            |bytes| api::AggregateResponse {
                message: Some(api::aggregate_response::Message::Data(bytes)),
            },
        );
        Ok(Box::pin(
            futures::stream::once(async { Ok(header) }).chain(data),
        ))
    }

    async fn look_up(&self, request: api::ExistsRequest) -> Result<api::ExistsResponse, Error> {
        let api::ExistsRequest {
            namespace,
            key,
            newer_than,
            wait_ms,
        } = request;
        check_names(&namespace, &key)?;
        let newer = newer(newer_than, wait_ms)?;
        debug!(%namespace, %key, ?newer, "exists");

        let info = match newer {
            Some(newer) => Some(
                self.unless_stopping(self.store.head_newer(&namespace, &key, newer))
                    .await?,
            ),
            None => self.store.head(&namespace, &key).await?,
        };
        Ok(api::ExistsResponse {
            exists: info.is_some(),
            header: info.map(|info| to_header(&info)),
        })
    }

    async fn open_watch(
        &self,
        request: api::WatchRequest,
    ) -> Result<ResponseStream<api::WatchResponse>, Error> {
        let api::WatchRequest {
            namespace,
            keys,
            current,
        } = request;
        check_name("namespace", &namespace)?;
        for key in &keys {
            check_name("key", key)?;
        }
        debug!(%namespace, keys = keys.len(), current, "watch");

        let commits = self.store.watch(&namespace, keys, current).await?;
        let stopped = self.stop.requested();
        let stream = commits
            .map(|commit| {
                commit
                    .map(|notice| api::WatchResponse {
                        key: notice.key,
                        version: notice.version,
                        updater: notice.updater,
                    })
                    .map_err(|e| fail("watch", e))
            })
            .take_until(stopped);
        Ok(Box::pin(stream))
    }
}

/// What a pull or exists call waits for, if anything.
fn newer(newer_than: Option<u64>, wait_ms: u64) -> Result<Option<Newer>, Error> {
    let wait = Duration::from_millis(wait_ms);
    if wait > MAX_WAIT {
        return Err(Error::invalid(format!(
            "wait_ms is {wait_ms}; at most {} (a day) is allowed",
            MAX_WAIT.as_millis()
        )));
    }
    if newer_than.is_none() && wait.is_zero() {
        return Ok(None);
    }
    Ok(Some(Newer {
        than: newer_than.unwrap_or(0),
        wait,
    }))
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
        // A message over the transport's limit surfaces here, as an error of
        // the stream rather than a message.
        Err(status) if matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted) => {
            Err(Error::TooLarge(format!("a push message is too large: {}", status.message())))
        }
        Err(status) => Err(Error::Cancelled(status.message().to_string())),
    })
}

/// Checks an Aggregate request's names and enums and turns it into what
/// the store needs.
fn aggregation_request(request: api::AggregateRequest) -> Result<AggregationRequest, Error> {
    check_name("namespace", &request.namespace)?;
    for key in &request.keys {
        check_name("key", key)?;
    }
    let element = match api::ElementType::try_from(request.element_type) {
        Ok(api::ElementType::Float32) => ElementType::Float32,
        Ok(api::ElementType::Float64) => ElementType::Float64,
        _ => {
            return Err(Error::invalid(format!(
                "element_type {} is not one this daemon knows; give FLOAT32 or FLOAT64",
                request.element_type
            )))
        }
    };
    let operation = match api::Operation::try_from(request.operation) {
        Ok(api::Operation::Sum) => Operation::Sum,
        Ok(api::Operation::Mean) => Operation::Mean,
        Ok(api::Operation::WeightedMean) => Operation::WeightedMean,
        Ok(api::Operation::Min) => Operation::Min,
        Ok(api::Operation::Max) => Operation::Max,
        _ => {
            return Err(Error::invalid(format!(
            "operation {} is not one this daemon knows; give SUM, MEAN, WEIGHTED_MEAN, MIN or MAX",
            request.operation
        )))
        }
    };
    Ok(AggregationRequest {
        namespace: request.namespace,
        keys: request.keys,
        element,
        operation,
        weights: request.weights,
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

/// Data messages of at most `max` bytes each, cut from a stream of chunks
/// without copying; the first error ends the stream, logged once.
fn data_messages<T>(
    chunks: impl Stream<Item = Result<Bytes, Error>>,
    max: usize,
    method: &'static str,
    message: fn(Bytes) -> T,
) -> impl Stream<Item = Result<T, Status>> {
    chunks.flat_map(move |chunk| {
        let pieces: Vec<Result<T, Status>> = match chunk {
            Ok(chunk) => split(chunk, max).map(|bytes| Ok(message(bytes))).collect(),
            Err(e) => vec![Err(fail(method, e))],
        };
        futures::stream::iter(pieces)
    })
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
