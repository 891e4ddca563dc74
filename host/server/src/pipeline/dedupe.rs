//! Duplicate-delivery protection: an event id is processed at most once within the dedupe window.
//!
//! An id is first *reserved* (in flight), then *committed* once the flush holding it is durable, or *released*
//! if that flush failed so the producer's retry is processed. A re-delivery that arrives while the original is
//! still in flight is refused as retryable rather than acknowledged, so nothing is acknowledged before it is
//! stored. Redis makes the window shared by every instance; without it each process keeps its own (bounded).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::{Expiration, SetOptions};

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
pub struct LocalDeduper {
    in_flight: moka::sync::Cache<String, ()>,
    committed: moka::sync::Cache<String, ()>,
}

impl LocalDeduper {
    pub fn new(window: Duration, max_ids: u64) -> Self {
        Self {
            in_flight: moka::sync::Cache::builder().time_to_live(IN_FLIGHT_TTL).max_capacity(max_ids).build(),
            committed: moka::sync::Cache::builder().time_to_live(window).max_capacity(max_ids).build(),
        }
    }

    fn reserve_one(&self, id: &str) -> Reservation {
        if self.committed.contains_key(id) {
            return Reservation::Duplicate;
        }
        let entry = self.in_flight.entry_by_ref(id).or_insert(());
        if entry.is_fresh() { Reservation::Fresh } else { Reservation::InFlight }
    }
}

#[async_trait]
impl Deduper for LocalDeduper {
    async fn reserve(&self, ids: &[String]) -> Vec<Reservation> {
        ids.iter().map(|id| self.reserve_one(id)).collect()
    }

    async fn commit(&self, ids: &[String]) {
        for id in ids {
            self.committed.insert(id.clone(), ());
            self.in_flight.invalidate(id);
        }
    }

    async fn release(&self, ids: &[String]) {
        for id in ids {
            self.in_flight.invalidate(id);
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

    /// One script call per batch of ids: a round trip and a command per call instead of one per id.
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
        if let [key] = keys.as_slice() {
            // One event per call (`OnMessage`): a plain SET NX costs Redis less than a script; only a repeat reads.
            let expiry = Some(Expiration::EX(IN_FLIGHT_TTL.as_secs() as i64));
            let set: Option<String> = self.client.set(key, IN_FLIGHT_MARK, expiry, Some(SetOptions::NX), false).await?;
            if set.is_some() {
                return Ok(vec![Reservation::Fresh]);
            }
            let mark: Option<String> = self.client.get(key).await?;
            return Ok(vec![if mark.as_deref() == Some(COMMITTED_MARK) {
                Reservation::Duplicate
            } else {
                Reservation::InFlight
            }]);
        }
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
}
