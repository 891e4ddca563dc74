//! The per-player read cache behind the hot player reads (`GET /v1/challenges`, returning-player `initialize`).
//!
//! What is cached is each player's goal state as loaded from the database (small: a few dozen rows), not rendered
//! responses: responses are spliced from fragments pre-rendered once per configuration version (see
//! `crate::player`), which is cheap, keeps memory per player small, and lets time-dependent fields
//! (`expiresInSeconds`) stay exact.
//!
//! Correctness across instances without shipping state through Redis: every player has a *generation*. A change to
//! the player's rows (committed event flush, (de)activation, selection, claim) bumps it after the commit; a cached
//! value is served only while the generation it was loaded under is still current.
//! - The local generation lives in this process: a fresh number from a process-wide counter on every change, so a
//!   slot that was evicted and re-created never matches an older value.
//! - With Redis, a shared generation (`INCR {prefix}gen:{user}`) is read on every lookup (one pipelined `GET`), so a
//!   change on any instance invalidates every instance's copy at once.
//!
//! Loading a value then storing it under the generation read *before* the load is race-free: a change that commits
//! during the load bumps the generation afterwards, so the stored value never matches again.
//!
//! If Redis fails, the cache is bypassed (reads go to the database) for `redis_retry_ms`, the error is logged and
//! counted in `redis_errors_total`, and everything cached before the failure is dropped, because invalidations from
//! other instances may have been lost meanwhile. Entries also expire after `ttl_secs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use fred::prelude::*;

use crate::pipeline::CommitListener;
use crate::settings::CacheSettings;

/// Keeps Redis generation keys well beyond any cache entry's lifetime, so an expired key (read as 0) can never
/// make an old entry current again.
const MIN_GENERATION_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// The generations a value was loaded under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    local: u64,
    /// Shared generation from Redis (`None` without Redis).
    remote: Option<i64>,
    /// Redis failures seen by this process when the value was loaded.
    epoch: u64,
}

struct Stored<V> {
    token: Token,
    loaded_at: Instant,
    value: V,
}

struct Slot<V> {
    generation: AtomicU64,
    data: ArcSwapOption<Stored<V>>,
}

/// A lookup in progress: the generations read before loading. Pass it back to [`GenerationCache::put`].
pub struct Lookup<V> {
    slot: Option<Arc<Slot<V>>>,
    token: Option<Token>,
}

impl<V> Lookup<V> {
    /// A lookup that neither reads nor stores (cache disabled or Redis unavailable).
    fn bypass() -> Self {
        Lookup { slot: None, token: None }
    }
}

/// Per-player values valid while the player's generation does not change.
pub struct GenerationCache<V> {
    slots: moka::sync::Cache<String, Arc<Slot<V>>>,
    next_generation: AtomicU64,
    ttl: Duration,
    enabled: bool,
    redis: Option<RedisGenerations>,
}

impl<V: Clone + Send + Sync + 'static> GenerationCache<V> {
    pub fn new(settings: &CacheSettings, redis: Option<Client>) -> Self {
        let ttl = Duration::from_secs(settings.ttl_secs);
        let slots = moka::sync::Cache::builder().max_capacity(settings.max_users).time_to_idle(ttl).build();
        let redis = redis.map(|client| RedisGenerations {
            client,
            prefix: format!("{}gen:", settings.key_prefix),
            key_ttl: MIN_GENERATION_KEY_TTL.max(ttl * 10),
            retry: Duration::from_millis(settings.redis_retry_ms),
            down_until_ms: AtomicI64::new(0),
            epoch: AtomicU64::new(0),
        });
        Self { slots, next_generation: AtomicU64::new(1), ttl, enabled: settings.enabled, redis }
    }

    /// Reads the player's current generations; then [`Self::get`] answers from the cache or the caller loads
    /// the value and offers it to [`Self::put`].
    pub async fn begin(&self, user_id: &str) -> Lookup<V> {
        if !self.enabled {
            return Lookup::bypass();
        }
        let slot = self.slots.get_with_by_ref(user_id, || {
            Arc::new(Slot { generation: AtomicU64::new(self.fresh_generation()), data: ArcSwapOption::empty() })
        });
        let local = slot.generation.load(Ordering::Acquire);
        let (remote, epoch) = match &self.redis {
            None => (None, 0),
            Some(redis) => match redis.generation(user_id).await {
                Some((generation, epoch)) => (Some(generation), epoch),
                None => {
                    metrics::counter!("player_cache_total", "result" => "bypass").increment(1);
                    return Lookup::bypass();
                }
            },
        };
        Lookup { slot: Some(slot), token: Some(Token { local, remote, epoch }) }
    }

    /// The value stored under the lookup's generations, if any and not older than the TTL.
    pub fn get(&self, lookup: &Lookup<V>) -> Option<V> {
        let (slot, token) = (lookup.slot.as_ref()?, lookup.token?);
        let stored = slot.data.load_full();
        let hit = stored.filter(|stored| stored.token == token && stored.loaded_at.elapsed() < self.ttl);
        let result = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("player_cache_total", "result" => result).increment(1);
        hit.map(|stored| stored.value.clone())
    }

    /// Stores a value loaded after `lookup` began. A change committed meanwhile already moved the generation on,
    /// so such a value is stored but never served.
    pub fn put(&self, lookup: &Lookup<V>, value: V) {
        if let (Some(slot), Some(token)) = (&lookup.slot, lookup.token) {
            slot.data.store(Some(Arc::new(Stored { token, loaded_at: Instant::now(), value })));
        }
    }

    /// Marks the players' cached values stale, here and (through Redis) on every instance. Call after the change
    /// is committed.
    pub async fn invalidate(&self, user_ids: &[String]) {
        if !self.enabled || user_ids.is_empty() {
            return;
        }
        for user_id in user_ids {
            if let Some(slot) = self.slots.get(user_id) {
                slot.generation.store(self.fresh_generation(), Ordering::Release);
                slot.data.store(None);
            }
        }
        if let Some(redis) = &self.redis {
            redis.bump(user_ids).await;
        }
    }

    fn fresh_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl<V: Clone + Send + Sync + 'static> CommitListener for GenerationCache<V> {
    async fn progress_changed(&self, user_ids: &[String]) {
        self.invalidate(user_ids).await;
    }
}

/// The shared generations in Redis, with a short circuit breaker so an outage costs one timeout per
/// `retry` rather than one per request.
struct RedisGenerations {
    client: Client,
    prefix: String,
    key_ttl: Duration,
    retry: Duration,
    /// Unix milliseconds until which Redis is not tried.
    down_until_ms: AtomicI64,
    /// Failures seen so far; values loaded before the latest one are never served.
    epoch: AtomicU64,
}

impl RedisGenerations {
    fn key(&self, user_id: &str) -> String {
        format!("{}{user_id}", self.prefix)
    }

    fn is_down(&self) -> bool {
        now_ms() < self.down_until_ms.load(Ordering::Acquire)
    }

    /// `(generation, epoch)`, or `None` while Redis is unavailable.
    async fn generation(&self, user_id: &str) -> Option<(i64, u64)> {
        if self.is_down() {
            return None;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        match self.client.get::<Option<i64>, _>(self.key(user_id)).await {
            Ok(generation) => Some((generation.unwrap_or(0), epoch)),
            Err(err) => {
                self.failed("cache_get", &err);
                None
            }
        }
    }

    async fn bump(&self, user_ids: &[String]) {
        if self.is_down() {
            // Counted when the outage began; other instances' entries expire with their TTL.
            return;
        }
        let pipeline = self.client.pipeline();
        let ttl = self.key_ttl.as_secs() as i64;
        let queued: Result<(), Error> = async {
            for user_id in user_ids {
                let key = self.key(user_id);
                let _: () = pipeline.incr(key.clone()).await?;
                let _: () = pipeline.expire(key, ttl, None).await?;
            }
            Ok(())
        }
        .await;
        let sent = match queued {
            Ok(()) => pipeline.all::<Vec<Value>>().await.map(drop),
            Err(err) => Err(err),
        };
        if let Err(err) = sent {
            self.failed("cache_invalidate", &err);
        }
    }

    fn failed(&self, op: &'static str, err: &Error) {
        metrics::counter!("redis_errors_total", "op" => op).increment(1);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let was_down = self.is_down();
        self.down_until_ms.store(now_ms() + self.retry.as_millis() as i64, Ordering::Release);
        if was_down {
            tracing::debug!(op, error = %err, "Redis still unavailable");
        } else {
            tracing::error!(op, error = %err, "Redis unavailable: player reads bypass the cache");
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CacheSettings {
        CacheSettings { max_users: 100, ..CacheSettings::default() }
    }

    #[tokio::test]
    async fn values_are_served_until_the_player_changes() {
        let cache: GenerationCache<u32> = GenerationCache::new(&settings(), None);
        let lookup = cache.begin("alice").await;
        assert_eq!(cache.get(&lookup), None);
        cache.put(&lookup, 1);
        assert_eq!(cache.get(&cache.begin("alice").await), Some(1));
        assert_eq!(cache.get(&cache.begin("bob").await), None);
        cache.invalidate(&["alice".to_owned()]).await;
        assert_eq!(cache.get(&cache.begin("alice").await), None);
    }

    #[tokio::test]
    async fn a_value_loaded_across_a_change_is_never_served() {
        let cache: GenerationCache<u32> = GenerationCache::new(&settings(), None);
        let before = cache.begin("alice").await;
        // The change commits while the (old) value is being loaded.
        cache.invalidate(&["alice".to_owned()]).await;
        cache.put(&before, 1);
        assert_eq!(cache.get(&cache.begin("alice").await), None);
    }

    #[tokio::test]
    async fn a_disabled_cache_stores_nothing() {
        let cache: GenerationCache<u32> = GenerationCache::new(&CacheSettings { enabled: false, ..settings() }, None);
        let lookup = cache.begin("alice").await;
        cache.put(&lookup, 1);
        assert_eq!(cache.get(&cache.begin("alice").await), None);
    }
}
