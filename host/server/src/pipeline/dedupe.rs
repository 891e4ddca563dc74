//! Duplicate-delivery protection: an event id is processed at most once within the dedupe window.
//!
//! An id is first *reserved* (in flight), then *committed* once the flush holding it is durable, or *released*
//! if that flush failed so the producer's retry is processed. A re-delivery that arrives while the original is
//! still in flight is refused as retryable rather than acknowledged, so nothing is acknowledged before it is
//! stored. Redis makes the window shared by every instance; without it each process keeps its own (bounded).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fred::prelude::*;

/// Outcome of reserving one event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// First time seen: process it.
    Fresh,
    /// Already committed within the window: acknowledge without effect.
    Duplicate,
    /// Another delivery of the same id is being processed: ask the producer to retry.
    InFlight,
}

#[async_trait]
pub trait Deduper: Send + Sync {
    async fn reserve(&self, ids: &[String]) -> Vec<Reservation>;
    async fn commit(&self, ids: &[String]);
    async fn release(&self, ids: &[String]);
}

/// How long a reservation survives a crashed flush before the id can be processed again.
const IN_FLIGHT_TTL: Duration = Duration::from_secs(60);

/// Per-process dedupe with a bounded number of remembered ids.
///
/// Ids are remembered as 64-bit keyed hashes, not strings: a window of 2M ids takes tens of MB instead of the
/// ~700 MB the strings and a general-purpose cache needed, and costs a hash-map operation per id. Two different
/// ids collide with probability about n / 2^64 (1e-13 per event with 2M ids remembered), far below the bus's own
/// loss rate.
pub struct LocalDeduper {
    hasher: foldhash::quality::RandomState,
    started: Instant,
    window: Mutex<Window>,
}

/// Times are whole seconds since the deduper started.
struct Window {
    /// Reserved ids and when they were reserved.
    in_flight: HashMap<u64, u32, foldhash::fast::RandomState>,
    /// In-flight size after the last sweep of abandoned reservations.
    swept_at_len: usize,
    /// Committed ids and when; `order` holds the same ids oldest first, for expiry and the size bound.
    committed: HashMap<u64, u32, foldhash::fast::RandomState>,
    order: VecDeque<(u32, u64)>,
    window_secs: u32,
    max_ids: usize,
}

impl Window {
    fn new(window_secs: u32, max_ids: usize) -> Self {
        Self {
            in_flight: HashMap::default(),
            swept_at_len: 0,
            committed: HashMap::default(),
            order: VecDeque::new(),
            window_secs,
            max_ids,
        }
    }

    /// Whether a reservation taken at `at` still blocks other deliveries at `now`.
    fn still_in_flight(at: u32, now: u32) -> bool {
        u64::from(now.saturating_sub(at)) < IN_FLIGHT_TTL.as_secs()
    }

    /// Forgets committed ids older than the window, and the oldest ones beyond the size bound.
    fn expire(&mut self, now: u32) {
        while let Some(&(at, id)) = self.order.front() {
            if now.saturating_sub(at) < self.window_secs && self.order.len() <= self.max_ids {
                break;
            }
            self.order.pop_front();
            // A later commit of the same id (after it had expired once) owns the entry now.
            if self.committed.get(&id) == Some(&at) {
                self.committed.remove(&id);
            }
        }
    }

    /// Drops reservations no commit or release will end (a caller that vanished between reserving and
    /// queueing), once the map has doubled since the last sweep.
    fn sweep_in_flight(&mut self, now: u32) {
        if self.in_flight.len() > 1_024 && self.in_flight.len() > 2 * self.swept_at_len {
            self.in_flight.retain(|_, at| Self::still_in_flight(*at, now));
            self.swept_at_len = self.in_flight.len();
        }
    }

    fn reserve(&mut self, id: u64, now: u32) -> Reservation {
        if self.committed.contains_key(&id) {
            return Reservation::Duplicate;
        }
        match self.in_flight.entry(id) {
            Entry::Occupied(entry) if Self::still_in_flight(*entry.get(), now) => Reservation::InFlight,
            Entry::Occupied(mut entry) => {
                entry.insert(now);
                Reservation::Fresh
            }
            Entry::Vacant(entry) => {
                entry.insert(now);
                Reservation::Fresh
            }
        }
    }

    fn commit(&mut self, id: u64, now: u32) {
        self.in_flight.remove(&id);
        self.committed.insert(id, now);
        self.order.push_back((now, id));
    }
}

impl LocalDeduper {
    pub fn new(window: Duration, max_ids: u64) -> Self {
        Self {
            hasher: foldhash::quality::RandomState::default(),
            started: Instant::now(),
            window: Mutex::new(Window::new(
                u32::try_from(window.as_secs()).unwrap_or(u32::MAX).max(1),
                usize::try_from(max_ids).unwrap_or(usize::MAX),
            )),
        }
    }

    fn now(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, Window> {
        // The window holds no invariant a panicking holder could break halfway that matters more than dedupe.
        self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Deduper for LocalDeduper {
    async fn reserve(&self, ids: &[String]) -> Vec<Reservation> {
        let hashes: Vec<u64> = ids.iter().map(|id| self.hash(id)).collect();
        let now = self.now();
        let mut window = self.locked();
        window.expire(now);
        window.sweep_in_flight(now);
        hashes.into_iter().map(|id| window.reserve(id, now)).collect()
    }

    async fn commit(&self, ids: &[String]) {
        let hashes: Vec<u64> = ids.iter().map(|id| self.hash(id)).collect();
        let now = self.now();
        let mut window = self.locked();
        for id in hashes {
            window.commit(id, now);
        }
        window.expire(now);
    }

    async fn release(&self, ids: &[String]) {
        let hashes: Vec<u64> = ids.iter().map(|id| self.hash(id)).collect();
        let mut window = self.locked();
        for id in hashes {
            window.in_flight.remove(&id);
        }
    }
}

const IN_FLIGHT_MARK: &str = "p";
const COMMITTED_MARK: &str = "d";

/// Dedupe shared by every instance through Redis. If Redis fails, it degrades to the local deduper
/// (logged and counted) instead of failing event ingestion.
pub struct RedisDeduper {
    client: Client,
    window: Duration,
    fallback: Arc<LocalDeduper>,
}

impl RedisDeduper {
    pub fn new(client: Client, window: Duration, fallback: Arc<LocalDeduper>) -> Self {
        Self { client, window, fallback }
    }

    fn key(id: &str) -> String {
        format!("challenge:dedupe:{id}")
    }

    /// One script call per flush's ids: a round trip and a command per flush instead of one per id.
    async fn try_reserve(&self, ids: &[String]) -> Result<Vec<Reservation>, fred::error::Error> {
        const RESERVE: &str = r"
            local out = {}
            for i, key in ipairs(KEYS) do
              if redis.call('SET', key, ARGV[1], 'NX', 'EX', ARGV[2]) then out[i] = 0
              elseif redis.call('GET', key) == ARGV[3] then out[i] = 1
              else out[i] = 2 end
            end
            return out";
        let keys: Vec<String> = ids.iter().map(|id| Self::key(id)).collect();
        let args = vec![IN_FLIGHT_MARK.to_owned(), IN_FLIGHT_TTL.as_secs().to_string(), COMMITTED_MARK.to_owned()];
        let answers: Vec<i64> = self.client.eval(RESERVE, keys, args).await?;
        if answers.len() != ids.len() {
            return Err(fred::error::Error::new(
                fred::error::ErrorKind::Protocol,
                format!("dedupe script answered {} values for {} ids", answers.len(), ids.len()),
            ));
        }
        Ok(answers
            .into_iter()
            .map(|answer| match answer {
                0 => Reservation::Fresh,
                1 => Reservation::Duplicate,
                _ => Reservation::InFlight,
            })
            .collect())
    }

    async fn try_commit(&self, ids: &[String]) -> Result<(), fred::error::Error> {
        const COMMIT: &str = r"
            for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'EX', ARGV[2]) end
            return #KEYS";
        let keys: Vec<String> = ids.iter().map(|id| Self::key(id)).collect();
        let args = vec![COMMITTED_MARK.to_owned(), self.window.as_secs().max(1).to_string()];
        let _: i64 = self.client.eval(COMMIT, keys, args).await?;
        Ok(())
    }

    async fn try_release(&self, ids: &[String]) -> Result<(), fred::error::Error> {
        let keys: Vec<String> = ids.iter().map(|id| Self::key(id)).collect();
        let _: i64 = self.client.del(keys).await?;
        Ok(())
    }

    fn degraded(op: &'static str, err: &fred::error::Error) {
        tracing::error!(op, error = %err, "Redis dedupe failed; using the in-process window");
        metrics::counter!("redis_errors_total", "op" => op).increment(1);
    }
}

#[async_trait]
impl Deduper for RedisDeduper {
    async fn reserve(&self, ids: &[String]) -> Vec<Reservation> {
        if ids.is_empty() {
            return Vec::new();
        }
        match self.try_reserve(ids).await {
            Ok(outcome) => outcome,
            Err(err) => {
                Self::degraded("dedupe_reserve", &err);
                self.fallback.reserve(ids).await
            }
        }
    }

    async fn commit(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        // The local window is always kept too, so a later Redis outage still catches recent duplicates.
        self.fallback.commit(ids).await;
        if let Err(err) = self.try_commit(ids).await {
            Self::degraded("dedupe_commit", &err);
        }
    }

    async fn release(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        self.fallback.release(ids).await;
        if let Err(err) = self.try_release(ids).await {
            Self::degraded("dedupe_release", &err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn local_window_tracks_reserve_commit_release() {
        let dedupe = LocalDeduper::new(Duration::from_secs(60), 1_000);
        assert_eq!(dedupe.reserve(&ids(&["a", "b"])).await, vec![Reservation::Fresh, Reservation::Fresh]);
        assert_eq!(dedupe.reserve(&ids(&["a"])).await, vec![Reservation::InFlight]);
        dedupe.commit(&ids(&["a"])).await;
        dedupe.release(&ids(&["b"])).await;
        assert_eq!(dedupe.reserve(&ids(&["a", "b"])).await, vec![Reservation::Duplicate, Reservation::Fresh]);
    }

    #[test]
    fn committed_ids_expire_after_the_window_and_beyond_the_size_bound() {
        let mut w = Window::new(60, 3);
        for id in 1..=3 {
            assert_eq!(w.reserve(id, 0), Reservation::Fresh);
            w.commit(id, 0);
        }
        w.expire(59);
        assert_eq!(w.reserve(1, 59), Reservation::Duplicate, "still inside the window");
        w.commit(4, 59);
        w.expire(59);
        assert_eq!(w.reserve(1, 59), Reservation::Fresh, "the oldest id makes room for the fourth");
        assert_eq!(w.reserve(2, 59), Reservation::Duplicate);
        w.expire(60);
        assert_eq!(w.reserve(2, 60), Reservation::Fresh, "ids committed at 0 are out of a 60 s window at 60");
        assert_eq!(w.reserve(4, 60), Reservation::Duplicate, "the one committed at 59 is kept");
        assert_eq!((w.committed.len(), w.order.len()), (1, 1), "expired ids leave both structures");
    }

    #[test]
    fn an_id_committed_again_after_expiring_keeps_its_new_entry() {
        let mut w = Window::new(10, 100);
        w.commit(7, 0);
        w.commit(7, 9); // re-processed and committed again while the old entry is still queued
        w.expire(10);
        assert_eq!(w.reserve(7, 10), Reservation::Duplicate, "the stale queue entry must not remove the new one");
        w.expire(19);
        assert_eq!(w.reserve(7, 19), Reservation::Fresh);
    }

    #[test]
    fn abandoned_reservations_stop_blocking_after_the_in_flight_ttl_and_are_swept() {
        let ttl = IN_FLIGHT_TTL.as_secs() as u32;
        let mut w = Window::new(3_600, 100);
        assert_eq!(w.reserve(1, 0), Reservation::Fresh);
        assert_eq!(w.reserve(1, ttl - 1), Reservation::InFlight);
        assert_eq!(w.reserve(1, ttl), Reservation::Fresh, "a reservation nobody ended expires");
        for id in 10..2_000 {
            w.reserve(id, 0);
        }
        w.sweep_in_flight(ttl + 1);
        assert_eq!(w.in_flight.len(), 1, "only the reservation taken at {ttl} survives the sweep");
    }
}
