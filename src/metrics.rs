//! What the daemon counts, under one set of names, and the optional
//! Prometheus endpoint that exposes it. Recording is cheap and does nothing
//! until the endpoint is installed, so the library records unconditionally.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;

pub const CALLS: &str = "modelsync_calls_total";
pub const CALL_SECONDS: &str = "modelsync_call_duration_seconds";
pub const CALLS_IN_FLIGHT: &str = "modelsync_calls_in_flight";
pub const RAW_BYTES: &str = "modelsync_raw_bytes_total";
pub const STORED_BYTES: &str = "modelsync_stored_bytes_total";
pub const CHUNKS: &str = "modelsync_chunks_total";
pub const STORED_RATIO: &str = "modelsync_stored_to_raw_ratio";
pub const REDIS_UP: &str = "modelsync_redis_up";
pub const REDIS_RTT_SECONDS: &str = "modelsync_redis_rtt_seconds";
pub const REDIS_RECONNECTS: &str = "modelsync_redis_reconnects_total";

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics endpoint {addr}: {reason}")]
pub struct MetricsError {
    addr: SocketAddr,
    reason: String,
}

/// Serves `/metrics` on `addr` from now on. Call once, inside the runtime.
pub fn install(addr: SocketAddr) -> Result<(), MetricsError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(CALL_SECONDS.into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ],
        )
        .and_then(|builder| builder.install())
        .map_err(|e| MetricsError {
            addr,
            reason: e.to_string(),
        })
}

/// One call ended with `code` after `elapsed`.
pub fn call_ended(method: &'static str, code: tonic::Code, elapsed: Duration) {
    counter!(CALLS, "method" => method, "code" => code_name(code)).increment(1);
    histogram!(CALL_SECONDS, "method" => method).record(elapsed.as_secs_f64());
}

pub fn in_flight(count: usize) {
    gauge!(CALLS_IN_FLIGHT).set(count as f64);
}

/// Bytes of one model moved in (`push`) or out (`pull`).
pub fn transferred(direction: &'static str, codec: &str, raw: u64, stored: u64, chunks: u64) {
    let codec = codec.to_string();
    counter!(RAW_BYTES, "direction" => direction, "codec" => codec.clone()).increment(raw);
    counter!(STORED_BYTES, "direction" => direction, "codec" => codec.clone()).increment(stored);
    counter!(CHUNKS, "direction" => direction).increment(chunks);
    if direction == "push" && raw > 0 {
        gauge!(STORED_RATIO, "codec" => codec).set(stored as f64 / raw as f64);
    }
}

/// The outcome of one health probe of Redis.
pub fn redis_probe(up: bool, rtt: Option<Duration>) {
    gauge!(REDIS_UP).set(if up { 1.0 } else { 0.0 });
    if let Some(rtt) = rtt {
        gauge!(REDIS_RTT_SECONDS).set(rtt.as_secs_f64());
    }
}

pub fn redis_reconnected() {
    counter!(REDIS_RECONNECTS).increment(1);
}

/// The canonical upper-snake-case name of a gRPC code.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
