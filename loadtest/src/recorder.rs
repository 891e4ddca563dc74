//! Per-endpoint counters and latency histograms of one phase, and their summary.
//!
//! Latency is recorded in microseconds for every completed call, errors included, measured from the time the
//! call was *scheduled*, so a server (or generator) that falls behind shows up in the percentiles.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency the histograms track exactly; slower calls are clamped to it.
const MAX_TRACKED_MICROS: u64 = 120_000_000;

/// How one call ended, as far as the report is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Why the call failed (`"503 DATABASE_UNAVAILABLE"`, `"timeout"`, ...); `None` when it succeeded.
    pub error: Option<String>,
    /// A non-success answer the scenario expects (`"409 ALREADY_CLAIMED"` for a repeated claim).
    pub expected: Option<String>,
    pub events_sent: u64,
    pub events_acked: u64,
    /// Events the server refused inside an otherwise successful call, by error code.
    pub rejected: Vec<String>,
}

struct EndpointStats {
    sent: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    expected: BTreeMap<String, u64>,
    rejected: BTreeMap<String, u64>,
    events_sent: u64,
    events_acked: u64,
    latency: Histogram<u64>,
}

impl EndpointStats {
    fn new() -> Self {
        let latency = Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3).expect("static histogram bounds are valid");
        Self {
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            expected: BTreeMap::new(),
            rejected: BTreeMap::new(),
            events_sent: 0,
            events_acked: 0,
            latency,
        }
    }
}

#[derive(Default)]
struct Inner {
    endpoints: BTreeMap<String, EndpointStats>,
    dropped: BTreeMap<String, u64>,
    scheduled: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct Recorder {
    inner: Mutex<Inner>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EndpointReport {
    pub endpoint: String,
    pub sent: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub expected_outcomes: BTreeMap<String, u64>,
    pub events_sent: u64,
    pub events_acked: u64,
    pub events_rejected: BTreeMap<String, u64>,
    /// Successful calls per second over the phase.
    pub ok_per_s: f64,
    /// Acknowledged events per second over the phase.
    pub events_per_s: f64,
    pub latency: Percentiles,
}

impl EndpointReport {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamReport {
    pub stream: String,
    pub scheduled: u64,
    /// Arrivals not sent because `--max-in-flight` calls were already waiting: the generator (or the server) could
    /// not keep up. Never silently slowed down.
    pub dropped_overloaded_generator: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    pub endpoints: Vec<EndpointReport>,
    pub streams: Vec<StreamReport>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent in a way that matters here.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record(&self, endpoint: &str, latency: Duration, outcome: Outcome) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_TRACKED_MICROS);
        let mut inner = self.lock();
        let stats = match inner.endpoints.get_mut(endpoint) {
            Some(stats) => stats,
            None => inner.endpoints.entry(endpoint.to_owned()).or_insert_with(EndpointStats::new),
        };
        stats.sent += 1;
        stats.latency.saturating_record(micros);
        stats.events_sent += outcome.events_sent;
        stats.events_acked += outcome.events_acked;
        for code in outcome.rejected {
            *stats.rejected.entry(code).or_default() += 1;
        }
        match (outcome.error, outcome.expected) {
            (Some(error), _) => *stats.errors.entry(error).or_default() += 1,
            (None, Some(expected)) => {
                stats.ok += 1;
                *stats.expected.entry(expected).or_default() += 1;
            }
            (None, None) => stats.ok += 1,
        }
    }

    pub fn record_stream(&self, stream: &str, scheduled: u64, dropped: u64) {
        let mut inner = self.lock();
        *inner.scheduled.entry(stream.to_owned()).or_default() += scheduled;
        *inner.dropped.entry(stream.to_owned()).or_default() += dropped;
    }

    /// Summary over a phase that lasted `elapsed`.
    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        let inner = self.lock();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let endpoints = inner
            .endpoints
            .iter()
            .map(|(name, stats)| EndpointReport {
                endpoint: name.clone(),
                sent: stats.sent,
                ok: stats.ok,
                errors: stats.errors.clone(),
                expected_outcomes: stats.expected.clone(),
                events_sent: stats.events_sent,
                events_acked: stats.events_acked,
                events_rejected: stats.rejected.clone(),
                ok_per_s: stats.ok as f64 / secs,
                events_per_s: stats.events_acked as f64 / secs,
                latency: Percentiles::of(&stats.latency),
            })
            .collect();
        let streams = inner
            .scheduled
            .iter()
            .map(|(name, scheduled)| StreamReport {
                stream: name.clone(),
                scheduled: *scheduled,
                dropped_overloaded_generator: inner.dropped.get(name).copied().unwrap_or(0),
            })
            .collect();
        Snapshot { endpoints, streams }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Outcome {
        Outcome::default()
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let recorder = Recorder::new();
        for ms in 1..=1000u64 {
            recorder.record("GET /x", Duration::from_millis(ms), ok());
        }
        let snapshot = recorder.snapshot(Duration::from_secs(10));
        let report = &snapshot.endpoints[0];
        let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.002 + 0.001;
        assert_eq!(report.latency.count, 1000);
        assert!(close(report.latency.p50_ms, 500.0), "{:?}", report.latency);
        assert!(close(report.latency.p90_ms, 900.0), "{:?}", report.latency);
        assert!(close(report.latency.p95_ms, 950.0), "{:?}", report.latency);
        assert!(close(report.latency.p99_ms, 990.0), "{:?}", report.latency);
        assert!(close(report.latency.max_ms, 1000.0), "{:?}", report.latency);
        assert!(close(report.latency.mean_ms, 500.5), "{:?}", report.latency);
        assert_eq!(report.ok_per_s, 100.0);
    }

    #[test]
    fn errors_expected_outcomes_and_events_are_counted_apart() {
        let recorder = Recorder::new();
        recorder.record("claim", Duration::from_millis(2), ok());
        recorder.record(
            "claim",
            Duration::from_millis(3),
            Outcome { expected: Some("409 ALREADY_CLAIMED".into()), ..ok() },
        );
        recorder.record("claim", Duration::from_millis(4), Outcome { error: Some("timeout".into()), ..ok() });
        recorder.record(
            "events",
            Duration::from_millis(5),
            Outcome { events_sent: 10, events_acked: 9, rejected: vec!["INVALID".into()], ..ok() },
        );
        recorder.record_stream("api", 100, 3);
        let snapshot = recorder.snapshot(Duration::from_secs(1));
        let claim = snapshot.endpoints.iter().find(|e| e.endpoint == "claim").expect("claim");
        assert_eq!((claim.sent, claim.ok, claim.error_count()), (3, 2, 1));
        assert_eq!(claim.expected_outcomes["409 ALREADY_CLAIMED"], 1);
        assert_eq!(claim.errors["timeout"], 1);
        let events = snapshot.endpoints.iter().find(|e| e.endpoint == "events").expect("events");
        assert_eq!((events.events_sent, events.events_acked, events.events_per_s), (10, 9, 9.0));
        assert_eq!(events.events_rejected["INVALID"], 1);
        assert_eq!(snapshot.streams[0].dropped_overloaded_generator, 3);
        assert_eq!(snapshot.streams[0].scheduled, 100);
    }

    #[test]
    fn latencies_beyond_the_histogram_are_clamped_not_lost() {
        let recorder = Recorder::new();
        recorder.record("slow", Duration::from_secs(600), ok());
        recorder.record("fast", Duration::ZERO, ok());
        let snapshot = recorder.snapshot(Duration::from_secs(1));
        assert!(snapshot.endpoints.iter().all(|e| e.latency.count == 1));
    }
}
