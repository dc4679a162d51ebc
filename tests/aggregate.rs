//! Aggregate end to end: models pushed through the daemon into a real
//! Redis, combined by the daemon, checked against values computed here in
//! float64 in the same order (so every result must match bit for bit).

mod support;

use std::collections::HashMap;

use bytes::Bytes;
use modelsync::config::{Layout, NamespaceSettings};
use modelsync::proto::v1 as api;
use support::{header, push, Client, Daemon, RedisServer};
use tonic::{Code, Status};

const FLOAT32: i32 = api::ElementType::Float32 as i32;
const FLOAT64: i32 = api::ElementType::Float64 as i32;

/// Every operation, with the weights the weighted mean takes.
const OPERATIONS: [api::Operation; 5] = [
    api::Operation::Sum,
    api::Operation::Mean,
    api::Operation::WeightedMean,
    api::Operation::Min,
    api::Operation::Max,
];

/// What an Aggregate call streamed back.
struct Answer {
    header: api::AggregateHeader,
    data: Vec<u8>,
    largest_message: usize,
}

async fn aggregate(client: &mut Client, request: api::AggregateRequest) -> Result<Answer, Status> {
    let mut stream = client.aggregate(request).await?.into_inner();
    let header = match stream.message().await?.and_then(|m| m.message) {
        Some(api::aggregate_response::Message::Header(h)) => h,
        other => panic!("an aggregation must start with its header, got {other:?}"),
    };
    let mut data = Vec::new();
    let mut largest_message = 0;
    while let Some(message) = stream.message().await? {
        match message.message {
            Some(api::aggregate_response::Message::Data(bytes)) => {
                largest_message = largest_message.max(bytes.len());
                data.extend_from_slice(&bytes);
            }
            other => panic!("only data may follow the header, got {other:?}"),
        }
    }
    Ok(Answer {
        header,
        data,
        largest_message,
    })
}

fn request(keys: &[&str], element_type: i32, operation: api::Operation) -> api::AggregateRequest {
    api::AggregateRequest {
        namespace: "ns".into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        element_type,
        operation: operation as i32,
        weights: HashMap::new(),
    }
}

/// Deterministic values spread over many magnitudes, so that rounding
/// shows if the daemon adds in another precision or order.
fn values(count: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let magnitude = 10f64.powi((state % 7) as i32 - 3);
            unit * magnitude
        })
        .collect()
}

fn f32_bytes(values: &[f64]) -> Bytes {
    values
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect()
}

fn f64_bytes(values: &[f64]) -> Bytes {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inputs as the daemon reads them: float32 inputs widened exactly.
fn as_read(values: &[f64], element_type: i32) -> Vec<f64> {
    if element_type == FLOAT32 {
        values.iter().map(|&v| v as f32 as f64).collect()
    } else {
        values.to_vec()
    }
}

/// The expected result, computed in float64 in the inputs' order.
fn reference(inputs: &[Vec<f64>], operation: api::Operation, weights: &[f64]) -> Vec<f64> {
    let n = inputs[0].len();
    (0..n)
        .map(|j| {
            let column = inputs.iter().map(|input| input[j]);
            match operation {
                api::Operation::Sum => column.reduce(|a, x| a + x).unwrap(),
                api::Operation::Mean => column.reduce(|a, x| a + x).unwrap() / inputs.len() as f64,
                api::Operation::WeightedMean => {
                    let total = weights.iter().copied().reduce(|a, w| a + w).unwrap();
                    let mut terms = column.zip(weights).map(|(x, w)| w * x);
                    let first = terms.next().unwrap();
                    terms.fold(first, |a, t| a + t) / total
                }
                api::Operation::Min => column.reduce(f64::min).unwrap(),
                api::Operation::Max => column.reduce(f64::max).unwrap(),
                api::Operation::Unspecified => unreachable!(),
            }
        })
        .collect()
}

fn decoded(data: &[u8], element_type: i32) -> Vec<f64> {
    if element_type == FLOAT32 {
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

/// The reference rounded to the element type, as the daemon rounds it.
fn rounded(values: Vec<f64>, element_type: i32) -> Vec<f64> {
    as_read(&values, element_type)
}

fn assert_same_bits(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let differing = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a.to_bits() != e.to_bits());
    if let Some(i) = differing {
        panic!(
            "{what}: element {i} is {} where {} was expected",
            actual[i], expected[i]
        );
    }
}

async fn push_array(client: &mut Client, key: &str, data: Bytes, dtype: &str, codec: &str) -> u64 {
    let mut head = header("ns", key);
    head.codec = codec.into();
    head.metadata
        .insert("modelsync.dtype".into(), Bytes::from(dtype.to_string()));
    push(client, head, data).await.unwrap().version
}

async fn daemon_with(redis: &RedisServer, chunk_size: u64, max_message_bytes: usize) -> Daemon {
    let mut config = support::config(&redis.url());
    config.storage.chunk_size = chunk_size;
    config.max_message_bytes = max_message_bytes;
    Daemon::start_with(config).await
}

/// A message limit that is not a whole number of elements of either type.
const ODD_MESSAGE_LIMIT: usize = (64 << 10) + 3;

/// Pushes three inputs of `count` elements and checks every operation
/// against the reference.
async fn every_operation_matches_the_reference(element_type: i32) {
    let redis = RedisServer::start();
    let pusher = daemon_with(&redis, 256 << 10, 1 << 20).await;
    let mut client = pusher.client().await;
    let head = daemon_with(&redis, 256 << 10, ODD_MESSAGE_LIMIT).await;
    let count = 300_001;
    let (dtype, encode): (&str, fn(&[f64]) -> Bytes) = if element_type == FLOAT32 {
        ("<f4", f32_bytes)
    } else {
        ("<f8", f64_bytes)
    };

    let keys = ["w1", "w2", "w3"];
    let mut inputs = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let v = values(count, i as u64 + 1);
        push_array(&mut client, key, encode(&v), dtype, "zstd").await;
        inputs.push(as_read(&v, element_type));
    }

    let weights = [3.0, 0.5, 1.25];
    for operation in OPERATIONS {
        let mut ask = request(&keys, element_type, operation);
        if operation == api::Operation::WeightedMean {
            ask.weights = keys.iter().map(|k| k.to_string()).zip(weights).collect();
        }
        let answer = aggregate(&mut head.client().await, ask).await.unwrap();
        assert_eq!(answer.header.element_count, count as u64);
        assert_eq!(answer.data.len() as u64, answer.header.raw_size);
        // Messages are cut at the limit, even inside an element.
        assert_eq!(answer.largest_message, ODD_MESSAGE_LIMIT);
        let expected = rounded(reference(&inputs, operation, &weights), element_type);
        let what = format!("{operation:?} of {dtype}");
        assert_same_bits(&decoded(&answer.data, element_type), &expected, &what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_on_float32_matches_a_float64_reference_bit_for_bit() {
    every_operation_matches_the_reference(FLOAT32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_on_float64_matches_the_reference_bit_for_bit() {
    every_operation_matches_the_reference(FLOAT64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_pushed_with_different_chunk_sizes_and_codecs_combine_correctly() {
    // The namespace's chunk size changes between pushes (its record is
    // removed and a daemon with another size takes over), as when an
    // operator changes the setting: older models keep their chunks. None
    // of the sizes is a multiple of 8, so elements straddle chunks too.
    let redis = RedisServer::start();
    let count = 12_500; // 100,000 bytes of float64
    let pushes = [
        (4099, "w1", "none"),
        (6007, "w2", "zlib"),
        (10_001, "w3", "shuffle-zstd"),
    ];
    let mut inputs = Vec::new();
    let mut chunk_counts = Vec::new();
    let mut last = None;
    for (i, (chunk_size, key, codec)) in pushes.into_iter().enumerate() {
        let mut conn = redis.connection();
        redis::cmd("DEL")
            .arg("modelsync:namespace:ns")
            .query::<()>(&mut conn)
            .unwrap();
        let daemon = daemon_with(&redis, chunk_size, 1 << 20).await;
        let v = values(count, 10 + i as u64);
        let mut client = daemon.client().await;
        let mut head = header("ns", key);
        head.codec = codec.into();
        let pushed = push(&mut client, head, f64_bytes(&v)).await.unwrap();
        chunk_counts.push(pushed.chunk_count);
        inputs.push(v);
        last = Some(daemon);
    }
    assert_eq!(chunk_counts, [25, 17, 10], "the inputs' chunks differ");

    let last = last.unwrap();
    let mut client = last.client().await;
    for operation in [api::Operation::Mean, api::Operation::Max] {
        let answer = aggregate(
            &mut client,
            request(&["w1", "w2", "w3"], FLOAT64, operation),
        )
        .await
        .unwrap();
        let expected = reference(&inputs, operation, &[]);
        let what = format!("{operation:?}");
        assert_same_bits(&decoded(&answer.data, FLOAT64), &expected, &what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_model_of_the_namespace_is_combined_in_key_order_when_no_keys_are_named() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;

    let empty = aggregate(&mut client, request(&[], FLOAT32, api::Operation::Sum))
        .await
        .err()
        .expect("an empty namespace has nothing to combine");
    assert_eq!(empty.code(), Code::NotFound);
    assert!(empty.message().contains("no models"), "{}", empty.message());

    let mut inputs = Vec::new();
    for (i, key) in ["c", "a", "b"].into_iter().enumerate() {
        let v = values(1000, 20 + i as u64);
        push_array(&mut client, key, f32_bytes(&v), "<f4", "zstd").await;
        inputs.push((key, as_read(&v, FLOAT32)));
    }
    // A second version of one key: the header must name it.
    let v = values(1000, 30);
    push_array(&mut client, "a", f32_bytes(&v), "<f4", "zstd").await;
    inputs[1].1 = as_read(&v, FLOAT32);
    inputs.sort_by_key(|(key, _)| *key);

    let answer = aggregate(&mut client, request(&[], FLOAT32, api::Operation::Sum))
        .await
        .unwrap();
    let named: Vec<(&str, u64)> = answer
        .header
        .inputs
        .iter()
        .map(|h| (h.key.as_str(), h.version))
        .collect();
    assert_eq!(named, [("a", 2), ("b", 1), ("c", 1)]);
    let ordered: Vec<Vec<f64>> = inputs.into_iter().map(|(_, v)| v).collect();
    let expected = rounded(reference(&ordered, api::Operation::Sum, &[]), FLOAT32);
    assert_same_bits(&decoded(&answer.data, FLOAT32), &expected, "sum");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_carries_the_inputs_shape_when_they_agree_and_a_flat_one_otherwise() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    let data = f32_bytes(&values(12, 1));
    for (key, shape, order) in [
        ("a", "[3, 4]", "F"),
        ("b", "[3, 4]", "F"),
        ("c", "[4, 3]", "C"),
    ] {
        let mut head = header("ns", key);
        head.metadata = HashMap::from([
            ("modelsync.dtype".to_string(), Bytes::from("<f4")),
            ("modelsync.shape".to_string(), Bytes::from(shape)),
            ("modelsync.order".to_string(), Bytes::from(order)),
            ("epoch".to_string(), Bytes::from("7")),
        ]);
        push(&mut client, head, data.clone()).await.unwrap();
    }

    let metadata = |answer: &Answer| {
        let mut entries: Vec<(String, String)> = answer
            .header
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        entries.sort();
        entries
    };
    let same = aggregate(
        &mut client,
        request(&["a", "b"], FLOAT32, api::Operation::Mean),
    )
    .await
    .unwrap();
    assert_eq!(
        metadata(&same),
        [
            ("modelsync.dtype".into(), "<f4".into()),
            ("modelsync.order".into(), "F".into()),
            ("modelsync.shape".into(), "[3, 4]".into())
        ]
    );
    let differing = aggregate(
        &mut client,
        request(&["a", "c"], FLOAT32, api::Operation::Mean),
    )
    .await
    .unwrap();
    assert_eq!(
        metadata(&differing),
        [
            ("modelsync.dtype".into(), "<f4".into()),
            ("modelsync.order".into(), "C".into()),
            ("modelsync.shape".into(), "[12]".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_that_cannot_be_combined_are_refused_naming_them() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    push_array(
        &mut client,
        "small",
        f32_bytes(&values(100, 1)),
        "<f4",
        "zstd",
    )
    .await;
    push_array(
        &mut client,
        "large",
        f32_bytes(&values(101, 2)),
        "<f4",
        "zstd",
    )
    .await;
    push_array(
        &mut client,
        "doubles",
        f64_bytes(&values(50, 3)),
        "<f8",
        "zstd",
    )
    .await;
    push_array(
        &mut client,
        "odd",
        Bytes::from(vec![0u8; 402]),
        "<f4",
        "zstd",
    )
    .await;
    push(
        &mut client,
        header("ns", "raw"),
        Bytes::from(vec![0u8; 400]),
    )
    .await
    .unwrap();

    let probe = client.clone();
    let refused = move |keys: &'static [&'static str], element_type| {
        let mut client = probe.clone();
        async move {
            let ask = request(keys, element_type, api::Operation::Mean);
            let error = aggregate(&mut client, ask).await.err().expect("refused");
            (error.code(), error.message().to_string())
        }
    };
    let (code, message) = refused(&["small", "large"], FLOAT32).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("\"small\"") && message.contains("\"large\"") && message.contains("404"),
        "{message}"
    );

    let (code, message) = refused(&["small", "doubles"], FLOAT32).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("\"doubles\"") && message.contains("<f8"),
        "{message}"
    );

    let (code, message) = refused(&["odd", "odd"], FLOAT32).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("named twice"), "{message}");

    let (code, message) = refused(&["raw", "large"], FLOAT32).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("\"raw\""), "{message}");

    let (code, message) = refused(&["odd"], FLOAT32).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("whole number of 4-byte elements"),
        "{message}"
    );

    // Without dtype metadata the bytes are taken as the requested type.
    let answer = aggregate(
        &mut client,
        request(&["raw", "small"], FLOAT32, api::Operation::Max),
    )
    .await
    .unwrap();
    assert_eq!(answer.header.element_count, 100);

    let (code, message) = refused(&["small", "gone"], FLOAT32).await;
    assert_eq!(code, Code::NotFound);
    assert!(message.contains("\"gone\""), "{message}");

    let (code, message) = refused(&["small"], FLOAT64).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("<f4"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_weights_and_unknown_operations_are_refused() {
    let redis = RedisServer::start();
    let daemon = Daemon::start(&redis.url()).await;
    let mut client = daemon.client().await;
    for key in ["a", "b"] {
        push_array(&mut client, key, f32_bytes(&values(10, 1)), "<f4", "zstd").await;
    }

    let weighted = |pairs: &[(&str, f64)], operation: api::Operation| {
        let mut ask = request(&["a", "b"], FLOAT32, operation);
        ask.weights = pairs.iter().map(|(k, w)| (k.to_string(), *w)).collect();
        ask
    };
    let cases = [
        (
            weighted(&[("a", 1.0)], api::Operation::WeightedMean),
            "\"b\" has none",
        ),
        (
            weighted(&[("a", 1.0), ("b", -2.0)], api::Operation::WeightedMean),
            ">= 0",
        ),
        (
            weighted(
                &[("a", 1.0), ("b", f64::INFINITY)],
                api::Operation::WeightedMean,
            ),
            "finite",
        ),
        (
            weighted(&[("a", 0.0), ("b", 0.0)], api::Operation::WeightedMean),
            "add up to 0",
        ),
        (
            weighted(&[("a", 1.0), ("z", 1.0)], api::Operation::WeightedMean),
            "\"z\"",
        ),
        (
            weighted(&[("a", 1.0), ("b", 1.0)], api::Operation::Sum),
            "only taken by the weighted mean",
        ),
        (weighted(&[], api::Operation::Unspecified), "operation 0"),
        (
            api::AggregateRequest {
                operation: 42,
                ..weighted(&[], api::Operation::Sum)
            },
            "operation 42",
        ),
        (
            api::AggregateRequest {
                element_type: 0,
                ..weighted(&[], api::Operation::Sum)
            },
            "element_type 0",
        ),
        (
            api::AggregateRequest {
                namespace: String::new(),
                ..weighted(&[], api::Operation::Sum)
            },
            "namespace is empty",
        ),
    ];
    for (ask, says) in cases {
        let error = aggregate(&mut client, ask).await.err().expect("refused");
        assert_eq!(
            error.code(),
            Code::InvalidArgument,
            "{says}: {}",
            error.message()
        );
        assert!(
            error.message().contains(says),
            "{says}: {}",
            error.message()
        );
    }

    let too_many: Vec<String> = (0..=modelsync::store::MAX_INPUTS)
        .map(|i| format!("k{i}"))
        .collect();
    let ask = api::AggregateRequest {
        keys: too_many,
        ..request(&[], FLOAT32, api::Operation::Sum)
    };
    let error = aggregate(&mut client, ask).await.err().expect("refused");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("at most 1024"),
        "{}",
        error.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_namespace_is_refused_as_a_failed_precondition() {
    let redis = RedisServer::start();
    let mut config = support::config(&redis.url());
    let legacy = NamespaceSettings {
        layout: Layout::Legacy,
        codec: "zlib".parse().unwrap(),
        chunk_size: config.storage.chunk_size,
        ttl: config.storage.ttl,
        trust_pickle: false,
    };
    config.storage.namespaces.insert("ns".into(), legacy);
    let daemon = Daemon::start_with(config).await;
    let mut client = daemon.client().await;
    push(&mut client, header("ns", "a"), f32_bytes(&values(10, 1)))
        .await
        .unwrap();

    let error = aggregate(&mut client, request(&["a"], FLOAT32, api::Operation::Mean))
        .await
        .err()
        .expect("refused");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error.message().contains("legacy layout"),
        "{}",
        error.message()
    );
}
