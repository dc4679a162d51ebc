//! Aggregate on the store: open every input once, check that they can be
//! combined, then read them in lock-step a couple of chunks ahead and
//! combine span by span on the blocking pool. Memory stays near a few
//! chunks per input, whatever the models' size.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use super::lockstep::{ChunkStream, Lockstep};
use super::{ModelInfo, Snapshot, Store, DTYPE_METADATA};
use crate::aggregation::{Combination, ElementType, Operation};
use crate::config::Layout;
use crate::error::{Error, Result};

/// The most inputs one call combines: each holds a few chunks in memory.
pub const MAX_INPUTS: usize = 1024;

/// The metadata entries of an array's shape and memory order, as the
/// clients write them.
const SHAPE_METADATA: &str = "modelsync.shape";
const ORDER_METADATA: &str = "modelsync.order";

/// Chunks fetched ahead of the reader, per input: enough to keep Redis
/// busy while the previous chunk is combined, few enough that memory does
/// not grow with the number of chunks.
const PREFETCH: usize = 2;

/// The largest span combined in one step, per input. Small enough that a
/// step is a short task on the blocking pool.
const SPAN_BYTES: usize = 1 << 20;

/// Steps combined at once, so that both reading and arithmetic keep going.
const STEPS_IN_FLIGHT: usize = 2;

/// Inputs whose manifests are read at once.
const OPENS_IN_FLIGHT: usize = 16;

/// An Aggregate call as the store sees it.
#[derive(Debug)]
pub struct AggregationRequest {
    pub namespace: String,
    /// In the order they are combined; empty: every model of the namespace.
    pub keys: Vec<String>,
    pub element: ElementType,
    pub operation: Operation,
    /// By key; for the weighted mean only.
    pub weights: HashMap<String, f64>,
}

/// An aggregation, checked and ready to stream.
pub struct Aggregation {
    /// Every input, in the order combined, at the version being read.
    pub inputs: Vec<ModelInfo>,
    pub element_count: u64,
    pub raw_size: u64,
    /// The result's array metadata: dtype, shape and order.
    pub metadata: HashMap<String, Bytes>,
    /// The result's bytes, in order.
    pub data: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
}

impl Store {
    /// Checks an aggregation against what is stored and starts it. Every
    /// refusal happens here, before any byte of the result exists.
    pub async fn aggregate(&self, request: AggregationRequest) -> Result<Aggregation> {
        let namespace = request.namespace.as_str();
        if self.agreed(namespace).await?.layout == Layout::Legacy {
            return Err(Error::Unsupported(format!(
                "namespace {namespace:?} has the legacy layout, whose models are pickles: \
                 Aggregate only combines models of chunked namespaces"
            )));
        }
        let keys = self.aggregation_keys(namespace, request.keys).await?;
        let combination =
            Combination::new(request.element, request.operation, &keys, &request.weights)?;

        let snapshots = self.open_all(namespace, &keys).await?;
        let raw_size = common_size(&snapshots, combination.element)?;
        check_dtypes(&snapshots, combination.element)?;
        let width = combination.element.width();
        let metadata = result_metadata(&snapshots, combination.element, raw_size / width as u64);
        let inputs = snapshots.iter().map(|s| s.info.clone()).collect();

        let streams: Vec<(String, ChunkStream)> = snapshots
            .into_iter()
            .map(|s| {
                let name = Store::describe(&s.info.namespace, &s.info.key);
                (name, self.chunks_ahead(s, PREFETCH))
            })
            .collect();
        let steps = Lockstep::new(streams, raw_size, width, SPAN_BYTES).into_stream();
        let combination = Arc::new(combination);
        let data = steps
            .map(move |spans| combine(combination.clone(), spans))
            .buffered(STEPS_IN_FLIGHT);
        Ok(Aggregation {
            inputs,
            element_count: raw_size / width as u64,
            raw_size,
            metadata,
            data: Box::pin(data),
        })
    }

    /// The keys to combine: those named, each once, or every model of the
    /// namespace in the order of their keys' bytes.
    async fn aggregation_keys(&self, namespace: &str, keys: Vec<String>) -> Result<Vec<String>> {
        let keys = if keys.is_empty() {
            self.every_key(namespace).await?
        } else {
            keys
        };
        if keys.len() > MAX_INPUTS {
            return Err(Error::invalid(format!(
                "{} inputs were asked for; Aggregate combines at most {MAX_INPUTS} at once: \
                 combine them in groups, then combine the groups' sums",
                keys.len()
            )));
        }
        let mut seen = HashSet::new();
        if let Some(twice) = keys.iter().find(|k| !seen.insert(k.as_str())) {
            return Err(Error::invalid(format!(
                "key {twice:?} is named twice; name each input once (use a weighted mean to count one more)"
            )));
        }
        Ok(keys)
    }

    async fn every_key(&self, namespace: &str) -> Result<Vec<String>> {
        let mut found = std::collections::BTreeSet::new();
        let mut batches = Box::pin(self.list(namespace).await?);
        while let Some(batch) = batches.try_next().await? {
            found.extend(batch.into_iter().map(|info| info.key));
            if found.len() > MAX_INPUTS {
                break;
            }
        }
        if found.is_empty() {
            return Err(Error::NotFound(format!(
                "namespace {namespace:?} holds no models to aggregate; push some first"
            )));
        }
        Ok(found.into_iter().collect())
    }

    /// One snapshot of every input: each is then read at that version.
    async fn open_all(&self, namespace: &str, keys: &[String]) -> Result<Vec<Snapshot>> {
        // Owned names and a clone of the store keep each future 'static,
        // which the call's Send bound needs.
        let opens = keys.iter().cloned().map(|key| {
            let (store, namespace) = (self.clone(), namespace.to_string());
            async move { store.open(&namespace, &key).await }
        });
        futures::stream::iter(opens)
            .buffered(OPENS_IN_FLIGHT)
            .try_collect()
            .await
    }
}

/// Combines one step's spans on the blocking pool.
async fn combine(combination: Arc<Combination>, spans: Result<Vec<Bytes>>) -> Result<Bytes> {
    let spans = spans?;
    tokio::task::spawn_blocking(move || combination.apply(&spans))
        .await
        .map_err(|e| Error::Internal(format!("aggregation task: {e}")))
}

/// The size every input shares, a whole number of elements; otherwise an
/// error naming the inputs and their sizes.
fn common_size(snapshots: &[Snapshot], element: ElementType) -> Result<u64> {
    let mut by_size: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for snapshot in snapshots {
        let info = &snapshot.info;
        by_size.entry(info.raw_size).or_default().push(&info.key);
    }
    if by_size.len() > 1 {
        let groups: Vec<String> = by_size
            .iter()
            .map(|(size, keys)| format!("{size} bytes: {}", few(keys)))
            .collect();
        return Err(Error::invalid(format!(
            "the inputs differ in size ({}); every input must hold the same number of elements",
            groups.join("; ")
        )));
    }

    let size = snapshots.first().map_or(0, |s| s.info.raw_size);
    let width = element.width() as u64;
    if size % width != 0 {
        return Err(Error::invalid(format!(
            "the inputs hold {size} bytes, not a whole number of {width}-byte elements ({}); \
             ask for the element type they were pushed as",
            few(&by_size[&size])
        )));
    }
    Ok(size)
}

/// Refuses an input whose array metadata names another element type.
fn check_dtypes(snapshots: &[Snapshot], element: ElementType) -> Result<()> {
    for snapshot in snapshots {
        let Some(dtype) = snapshot.info.metadata.get(DTYPE_METADATA) else {
            continue;
        };
        let dtype = String::from_utf8_lossy(dtype);
        if !element.matches_dtype(&dtype) {
            return Err(Error::invalid(format!(
                "key {:?} holds an array of dtype {dtype:?}, not the requested {}; \
                 aggregate it with its own element type, or push it as {}",
                snapshot.info.key,
                element.dtype(),
                element.dtype()
            )));
        }
    }
    Ok(())
}

/// The result's array metadata: the requested dtype, and the inputs'
/// shape and order when every input is an array with the same ones (else
/// a flat shape).
fn result_metadata(
    snapshots: &[Snapshot],
    element: ElementType,
    count: u64,
) -> HashMap<String, Bytes> {
    let layout = |s: &Snapshot| {
        let m = &s.info.metadata;
        m.get(DTYPE_METADATA)?;
        let order = m
            .get(ORDER_METADATA)
            .cloned()
            .unwrap_or(Bytes::from_static(b"C"));
        Some((m.get(SHAPE_METADATA)?.clone(), order))
    };
    let first = snapshots.first().and_then(layout);
    let shared = first.filter(|f| snapshots.iter().all(|s| layout(s).as_ref() == Some(f)));
    let (shape, order) =
        shared.unwrap_or_else(|| (format!("[{count}]").into(), Bytes::from_static(b"C")));

    HashMap::from([
        (DTYPE_METADATA.to_string(), Bytes::from(element.dtype())),
        (SHAPE_METADATA.to_string(), shape),
        (ORDER_METADATA.to_string(), order),
    ])
}

/// A few keys for a message, then how many more there are.
fn few(keys: &[&str]) -> String {
    const SHOWN: usize = 4;
    let named: Vec<String> = keys.iter().take(SHOWN).map(|k| format!("{k:?}")).collect();
    match keys.len().saturating_sub(SHOWN) {
        0 => named.join(", "),
        more => format!("{} and {more} more", named.join(", ")),
    }
}
