//! The open-loop scheduler: arrivals at fixed intervals, independent of how fast the server answers.
//!
//! Arrival `i` of a stream with rate `r` is due at `start + i / r`. Each arrival runs as its own task and is told
//! its scheduled instant, so latency can be measured from when the request *should* have left. When
//! `max_in_flight` calls are already outstanding, the arrival is dropped and counted ("dropped: overloaded
//! generator") instead of quietly stretching the schedule (coordinated omission).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Work done for one arrival: `(sequence number, scheduled instant)`.
pub type Job = Arc<dyn Fn(u64, Instant) -> BoxFuture<'static, ()> + Send + Sync>;

pub struct Stream {
    pub name: String,
    /// Arrivals per second.
    pub rate: f64,
    pub job: Job,
}

/// Offset of arrival `index` from the start of the stream.
pub fn arrival_offset(index: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(index as f64 / rate)
}

/// Arrivals of a stream of `rate` per second that fall within `duration`.
pub fn arrival_count(rate: f64, duration: Duration) -> u64 {
    if rate <= 0.0 || !rate.is_finite() {
        return 0;
    }
    // The small epsilon keeps 0.1/s * 10 s at exactly one arrival despite float rounding.
    (rate * duration.as_secs_f64() + 1e-9).floor() as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamRun {
    pub scheduled: u64,
    pub dropped: u64,
}

/// Caps the calls outstanding across the streams of a phase.
#[derive(Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    capacity: u32,
}

impl InFlight {
    pub fn new(capacity: u32) -> Self {
        let capacity = capacity.max(1);
        Self { permits: Arc::new(Semaphore::new(capacity as usize)), capacity }
    }

    /// Calls dispatched and not finished yet.
    pub fn outstanding(&self) -> u64 {
        u64::from(self.capacity).saturating_sub(self.permits.available_permits() as u64)
    }

    /// Waits until every dispatched call has finished, at most `limit`. Returns whether all did.
    pub async fn drain(&self, limit: Duration) -> bool {
        match tokio::time::timeout(limit, self.permits.acquire_many(self.capacity)).await {
            Ok(Ok(all)) => {
                drop(all);
                true
            }
            _ => false,
        }
    }
}

/// Runs `stream` from `start` for `duration`, returning once the last arrival has been dispatched (not answered).
pub async fn run_stream(stream: &Stream, start: Instant, duration: Duration, in_flight: &InFlight) -> StreamRun {
    let total = arrival_count(stream.rate, duration);
    let mut run = StreamRun { scheduled: total, dropped: 0 };
    let mut index = 0;
    while index < total {
        tokio::time::sleep_until(start + arrival_offset(index, stream.rate)).await;
        // The timer wakes with millisecond granularity: dispatch everything due by now, each with its own
        // scheduled instant, so the slack counts as latency instead of disappearing.
        let now = Instant::now();
        while index < total {
            let scheduled = start + arrival_offset(index, stream.rate);
            if scheduled > now {
                break;
            }
            match in_flight.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let work = (stream.job)(index, scheduled);
                    tokio::spawn(async move {
                        work.await;
                        drop(permit);
                    });
                }
                Err(_) => run.dropped += 1,
            }
            index += 1;
        }
    }
    run
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::FutureExt;

    use super::*;

    #[test]
    fn arrivals_are_evenly_spaced() {
        assert_eq!(arrival_offset(0, 250.0), Duration::ZERO);
        assert_eq!(arrival_offset(1, 250.0), Duration::from_millis(4));
        assert_eq!(arrival_offset(250, 250.0), Duration::from_secs(1));
        assert_eq!(arrival_offset(3, 0.5), Duration::from_secs(6));
        assert_eq!(arrival_count(250.0, Duration::from_secs(2)), 500);
        assert_eq!(arrival_count(0.1, Duration::from_secs(10)), 1);
        assert_eq!(arrival_count(3.0, Duration::from_millis(500)), 1);
        assert_eq!(arrival_count(0.0, Duration::from_secs(10)), 0);
        assert_eq!(arrival_count(f64::NAN, Duration::from_secs(10)), 0);
    }

    fn recording_job(seen: Arc<Mutex<Vec<(u64, Instant, Instant)>>>, hold: Duration) -> Job {
        Arc::new(move |index, scheduled| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push((index, scheduled, Instant::now()));
                tokio::time::sleep(hold).await;
            }
            .boxed()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn dispatches_every_arrival_at_its_scheduled_time() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stream =
            Stream { name: "s".into(), rate: 100.0, job: recording_job(seen.clone(), Duration::from_millis(5)) };
        let in_flight = InFlight::new(64);
        let start = Instant::now();
        let run = run_stream(&stream, start, Duration::from_secs(1), &in_flight).await;
        assert!(in_flight.drain(Duration::from_secs(1)).await);
        assert_eq!(run, StreamRun { scheduled: 100, dropped: 0 });
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 100);
        for &(index, scheduled, started) in seen.iter() {
            assert_eq!(scheduled - start, Duration::from_millis(10 * index));
            let lag = started - scheduled;
            assert!(lag <= Duration::from_millis(1), "arrival {index} started {lag:?} late");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slow_responses_do_not_slow_the_schedule() {
        // Each call takes 200 ms, arrivals come every 10 ms: an open loop keeps ~20 in flight and sends them all.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stream =
            Stream { name: "s".into(), rate: 100.0, job: recording_job(seen.clone(), Duration::from_millis(200)) };
        let in_flight = InFlight::new(64);
        let start = Instant::now();
        let run = run_stream(&stream, start, Duration::from_secs(2), &in_flight).await;
        assert!(Instant::now() - start < Duration::from_millis(2001));
        assert!(in_flight.drain(Duration::from_secs(1)).await);
        assert_eq!(run.dropped, 0);
        assert_eq!(seen.lock().expect("lock").len(), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn arrivals_beyond_the_in_flight_cap_are_dropped_and_counted() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stream =
            Stream { name: "s".into(), rate: 100.0, job: recording_job(seen.clone(), Duration::from_secs(60)) };
        let in_flight = InFlight::new(5);
        let run = run_stream(&stream, Instant::now(), Duration::from_secs(1), &in_flight).await;
        assert_eq!(run, StreamRun { scheduled: 100, dropped: 95 });
        assert_eq!(seen.lock().expect("lock").len(), 5);
        assert!(!in_flight.drain(Duration::from_secs(1)).await, "the five calls are still running");
    }
}
