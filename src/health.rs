//! The standard gRPC health service, SERVING only while Redis answers. A
//! task probes Redis on an interval and flips the status; it also records
//! the round-trip time and counts the returns after an outage.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::proto::v1::model_sync_server::ModelSyncServer;
use crate::redis::Redis;
use crate::service::Service;

/// How often Redis is probed for the health status.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What the last probe of Redis found, for Status to show without waiting
/// on Redis itself.
#[derive(Debug, Default)]
pub struct RedisState {
    up: AtomicBool,
    rtt_micros: AtomicU64,
}

impl RedisState {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The last answered probe's round trip.
    pub fn rtt(&self) -> Duration {
        Duration::from_micros(self.rtt_micros.load(Ordering::Relaxed))
    }

    fn record(&self, rtt: Option<Duration>) {
        self.up.store(rtt.is_some(), Ordering::Relaxed);
        if let Some(rtt) = rtt {
            self.rtt_micros
                .store(rtt.as_micros() as u64, Ordering::Relaxed);
        }
        crate::metrics::redis_probe(rtt.is_some(), rtt);
    }
}

/// Probes Redis forever, reporting to `reporter` and `state`; the caller
/// aborts it.
pub async fn watch_redis(redis: Redis, reporter: HealthReporter, state: Arc<RedisState>) {
    let mut was_up = None;
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let started = Instant::now();
        let result = redis.ping().await;
        let up = result.is_ok();
        state.record(up.then(|| started.elapsed()));

        if was_up != Some(up) {
            if up {
                reporter
                    .set_service_status("", ServingStatus::Serving)
                    .await;
                reporter.set_serving::<ModelSyncServer<Service>>().await;
            } else {
                reporter
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
                reporter.set_not_serving::<ModelSyncServer<Service>>().await;
            }
            match (&was_up, result) {
                (Some(false), Ok(())) => {
                    crate::metrics::redis_reconnected();
                    info!(endpoint = redis.endpoint(), "redis answers again; serving");
                }
                (None, Ok(())) => info!(endpoint = redis.endpoint(), "connected to redis"),
                (_, Err(e)) => {
                    warn!(endpoint = redis.endpoint(), error = %e, "redis does not answer; health is NOT_SERVING")
                }
                _ => {}
            }
            was_up = Some(up);
        }
    }
}
