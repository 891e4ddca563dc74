//! Per-player caches of goal state: the player read cache behind the hot player reads (`GET /v1/challenges`,
//! returning-player `initialize`) and the event pipeline's cache of the rows its flushes evaluate.
//!
//! What the read cache holds is each player's goal state as loaded from the database (small: a few dozen rows),
//! not rendered responses: responses are spliced from fragments pre-rendered once per configuration version (see
//! `crate::player`), which is cheap, keeps memory per player small, and lets time-dependent fields
//! (`expiresInSeconds`) stay exact.
//!
//! Correctness across instances without shipping state through Redis: every player has a *generation*, shared by
//! every cache of this process ([`Generations`]). A change to the player's rows (committed event flush,
//! (de)activation, selection, claim) bumps it after the commit; a cached value is served only while the
//! generation it was loaded under is still current.
//! - The local generation lives in this process: a fresh number from a process-wide counter on every change, so a
//!   slot that was evicted and re-created never matches an older value.
//! - With Redis, a shared generation (`INCR {prefix}gen:{user}`) is read on every lookup (one pipelined `GET`, or
//!   one `MGET` per flush), so a change on any instance invalidates every instance's copy at once.
//!
//! Loading a value then storing it under the generation read *before* the load is race-free: a change that commits
//! during the load bumps the generation afterwards, so the stored value never matches again.
//!
//! The writer that made a change may keep its own copy current ([`GenerationCache::put_after_own_change`]): when
//! its bump is the only one since its lookup (the local number was not replaced and the Redis `INCR` answered the
//! looked-up value plus one), nobody else changed the player meanwhile, so the value it computed is what the
//! database now holds.
//!
//! If Redis fails, the cache is bypassed (reads go to the database) for `redis_retry_ms`, the error is logged and
//! counted in `redis_errors_total`, and everything cached before the failure is dropped, because invalidations from
//! other instances may have been lost meanwhile. Entries also expire `ttl_secs` after they were loaded from the
//! database (own changes do not extend that).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::prelude::*;

use crate::settings::CacheSettings;

/// Keeps Redis generation keys well beyond any cache entry's lifetime, so an expired key (read as 0) can never
/// make an old entry current again.
const MIN_GENERATION_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Hashes the user-id keys: every event of a flush looks its user up several times, and moka's default SipHash
/// was a visible part of a flush.
type KeyHasher = foldhash::fast::RandomState;

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
    /// When the value (or the value it was derived from by own changes) was read from the database.
    loaded_at: Instant,
    value: V,
}

/// A lookup in progress: the generations read before loading. Pass it back to [`GenerationCache::put`].
pub struct Lookup {
    user_id: String,
    slot: Option<Arc<AtomicU64>>,
    token: Option<Token>,
}

impl Lookup {
    /// A lookup that neither reads nor stores (cache disabled or Redis unavailable).
    fn bypass(user_id: &str) -> Self {
        Lookup { user_id: user_id.to_owned(), slot: None, token: None }
    }

    /// Whether a value loaded for this lookup can be cached.
    pub fn is_cacheable(&self) -> bool {
        self.token.is_some()
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

/// The per-player generations every cache of this process checks its values against.
pub struct Generations {
    slots: moka::sync::Cache<String, Arc<AtomicU64>, KeyHasher>,
    next_generation: AtomicU64,
    enabled: bool,
    redis: Option<RedisGenerations>,
}

impl Generations {
    pub fn new(settings: &CacheSettings, redis: Option<Client>) -> Arc<Self> {
        let ttl = Duration::from_secs(settings.ttl_secs);
        let slots = moka::sync::Cache::builder()
            .max_capacity(settings.max_users)
            .time_to_idle(ttl)
            .build_with_hasher(KeyHasher::default());
        let redis = redis.map(|client| RedisGenerations {
            client,
            prefix: format!("{}gen:", settings.key_prefix),
            key_ttl: MIN_GENERATION_KEY_TTL.max(ttl * 10),
            retry: Duration::from_millis(settings.redis_retry_ms),
            down_until_ms: AtomicI64::new(0),
            epoch: AtomicU64::new(0),
        });
        Arc::new(Self { slots, next_generation: AtomicU64::new(1), enabled: settings.enabled, redis })
    }

    fn slot(&self, user_id: &str) -> Arc<AtomicU64> {
        self.slots.get_with_by_ref(user_id, || Arc::new(AtomicU64::new(self.fresh_generation())))
    }

    fn local_lookup(&self, user_id: &str, remote: Option<i64>, epoch: u64) -> Lookup {
        let slot = self.slot(user_id);
        let local = slot.load(Ordering::Acquire);
        Lookup { user_id: user_id.to_owned(), slot: Some(slot), token: Some(Token { local, remote, epoch }) }
    }

    async fn begin(&self, user_id: &str) -> Lookup {
        if !self.enabled {
            return Lookup::bypass(user_id);
        }
        let (remote, epoch) = match &self.redis {
            None => (None, 0),
            Some(redis) => match redis.generations(std::slice::from_ref(&user_id.to_owned())).await {
                Some((generations, epoch)) => (Some(generations[0]), epoch),
                None => return Lookup::bypass(user_id),
            },
        };
        self.local_lookup(user_id, remote, epoch)
    }

    async fn begin_many(&self, user_ids: &[String]) -> Vec<Lookup> {
        let bypass = || user_ids.iter().map(|user| Lookup::bypass(user)).collect();
        if !self.enabled {
            return bypass();
        }
        match &self.redis {
            None => user_ids.iter().map(|user| self.local_lookup(user, None, 0)).collect(),
            Some(redis) => match redis.generations(user_ids).await {
                Some((generations, epoch)) => user_ids
                    .iter()
                    .zip(generations)
                    .map(|(user, generation)| self.local_lookup(user, Some(generation), epoch))
                    .collect(),
                None => bypass(),
            },
        }
    }

    /// Marks the players' cached values stale, here and (through Redis) on every instance.
    async fn invalidate(&self, user_ids: &[String]) {
        if !self.enabled || user_ids.is_empty() {
            return;
        }
        for user_id in user_ids {
            if let Some(slot) = self.slots.get(user_id) {
                slot.store(self.fresh_generation(), Ordering::Release);
            }
        }
        if let Some(redis) = &self.redis {
            redis.bump(user_ids).await;
        }
    }

    /// Bumps the generations of the lookups' players and returns, per lookup, the token its value may be stored
    /// under: `Some` only when this bump was the only change since the lookup.
    async fn bump_own_change(&self, lookups: &[&Lookup]) -> Vec<Option<Token>> {
        if !self.enabled || lookups.is_empty() {
            return vec![None; lookups.len()];
        }
        let mut successors: Vec<Option<Token>> = lookups
            .iter()
            .map(|lookup| {
                let fresh = self.fresh_generation();
                // The slot in the map now: the looked-up one may have been evicted and replaced meanwhile.
                let current = self.slots.get(&lookup.user_id)?;
                let unchanged = match (&lookup.slot, lookup.token) {
                    (Some(slot), Some(token)) if Arc::ptr_eq(slot, &current) => current
                        .compare_exchange(token.local, fresh, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                        .then_some(token),
                    _ => None,
                };
                match unchanged {
                    Some(token) => Some(Token { local: fresh, ..token }),
                    None => {
                        // Someone else changed the player too: their bump may predate this commit.
                        current.store(fresh, Ordering::Release);
                        None
                    }
                }
            })
            .collect();
        if let Some(redis) = &self.redis {
            let user_ids: Vec<String> = lookups.iter().map(|lookup| lookup.user_id.clone()).collect();
            match redis.bump(&user_ids).await {
                Some((generations, epoch)) => {
                    for (successor, generation) in successors.iter_mut().zip(generations) {
                        *successor = successor.filter(|token| {
                            token.epoch == epoch && token.remote.is_some_and(|before| generation == before + 1)
                        });
                        if let Some(token) = successor {
                            token.remote = Some(generation);
                        }
                    }
                }
                None => successors.fill(None),
            }
        }
        successors
    }

    fn fresh_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }
}

/// Per-player values valid while the player's generation does not change.
pub struct GenerationCache<V> {
    generations: Arc<Generations>,
    values: moka::sync::Cache<String, Arc<Stored<V>>, KeyHasher>,
    ttl: Duration,
    /// Label of the `player_cache_total` metric.
    name: &'static str,
}

impl<V: Clone + Send + Sync + 'static> GenerationCache<V> {
    /// A cache with generations of its own.
    pub fn new(settings: &CacheSettings, redis: Option<Client>) -> Self {
        Self::sharing(Generations::new(settings, redis), settings, "player")
    }

    /// A cache whose values are invalidated together with every other cache on `generations`.
    pub fn sharing(generations: Arc<Generations>, settings: &CacheSettings, name: &'static str) -> Self {
        let ttl = Duration::from_secs(settings.ttl_secs);
        let values = moka::sync::Cache::builder()
            .max_capacity(settings.max_users)
            .time_to_idle(ttl)
            .build_with_hasher(KeyHasher::default());
        Self { generations, values, ttl, name }
    }

    pub fn generations(&self) -> &Arc<Generations> {
        &self.generations
    }

    /// Reads the player's current generations; then [`Self::get`] answers from the cache or the caller loads
    /// the value and offers it to [`Self::put`].
    pub async fn begin(&self, user_id: &str) -> Lookup {
        let lookup = self.generations.begin(user_id).await;
        if !lookup.is_cacheable() && self.generations.enabled {
            metrics::counter!("player_cache_total", "cache" => self.name, "result" => "bypass").increment(1);
        }
        lookup
    }

    /// [`Self::begin`] for many players at once (one Redis round trip).
    pub async fn begin_many(&self, user_ids: &[String]) -> Vec<Lookup> {
        let lookups = self.generations.begin_many(user_ids).await;
        if self.generations.enabled && lookups.first().is_some_and(|lookup| !lookup.is_cacheable()) {
            metrics::counter!("player_cache_total", "cache" => self.name, "result" => "bypass")
                .increment(lookups.len() as u64);
        }
        lookups
    }

    /// The value stored under the lookup's generations, if any and not older than the TTL.
    pub fn get(&self, lookup: &Lookup) -> Option<V> {
        self.get_with_load_time(lookup).map(|(value, _)| value)
    }

    /// [`Self::get`], with when the value was read from the database.
    pub fn get_with_load_time(&self, lookup: &Lookup) -> Option<(V, Instant)> {
        let token = lookup.token?;
        let stored = self.values.get(&lookup.user_id);
        let hit = stored.filter(|stored| stored.token == token && stored.loaded_at.elapsed() < self.ttl);
        let result = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("player_cache_total", "cache" => self.name, "result" => result).increment(1);
        hit.map(|stored| (stored.value.clone(), stored.loaded_at))
    }

    /// Stores a value loaded after `lookup` began. A change committed meanwhile already moved the generation on,
    /// so such a value is stored but never served.
    pub fn put(&self, lookup: &Lookup, value: V) {
        if let Some(token) = lookup.token {
            self.store(&lookup.user_id, token, Instant::now(), value);
        }
    }

    /// After committing a change to these players: bumps their generations (like [`Self::invalidate`]) and keeps
    /// each new value, computed by the committer from the value it looked up plus its change, where no other
    /// change happened since the lookup. `loaded_at` is when the value it started from was read from the database.
    pub async fn put_after_own_change(&self, changes: Vec<(Lookup, Instant, V)>) {
        let lookups: Vec<&Lookup> = changes.iter().map(|(lookup, _, _)| lookup).collect();
        let successors = self.generations.bump_own_change(&lookups).await;
        for ((lookup, loaded_at, value), successor) in changes.into_iter().zip(successors) {
            match successor {
                Some(token) => self.store(&lookup.user_id, token, loaded_at, value),
                None => self.values.invalidate(&lookup.user_id),
            }
        }
    }

    /// Marks the players' cached values stale, here and (through Redis) on every instance. Call after the change
    /// is committed.
    pub async fn invalidate(&self, user_ids: &[String]) {
        for user_id in user_ids {
            self.values.invalidate(user_id);
        }
        self.generations.invalidate(user_ids).await;
    }

    fn store(&self, user_id: &str, token: Token, loaded_at: Instant, value: V) {
        self.values.insert(user_id.to_owned(), Arc::new(Stored { token, loaded_at, value }));
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

    /// The players' generations (0 when never bumped) and the epoch, or `None` while Redis is unavailable.
    async fn generations(&self, user_ids: &[String]) -> Option<(Vec<i64>, u64)> {
        if self.is_down() {
            return None;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let keys: Vec<String> = user_ids.iter().map(|user| self.key(user)).collect();
        let answer = if keys.len() == 1 {
            self.client.get::<Option<i64>, _>(keys[0].clone()).await.map(|generation| vec![generation])
        } else {
            self.client.mget::<Vec<Option<i64>>, _>(keys).await
        };
        match answer {
            Ok(generations) if generations.len() == user_ids.len() => {
                Some((generations.into_iter().map(|generation| generation.unwrap_or(0)).collect(), epoch))
            }
            Ok(generations) => {
                let err = Error::new(
                    ErrorKind::Protocol,
                    format!("MGET answered {} values for {} keys", generations.len(), user_ids.len()),
                );
                self.failed("cache_get", &err);
                None
            }
            Err(err) => {
                self.failed("cache_get", &err);
                None
            }
        }
    }

    /// Increments the players' generations; returns the new values and the epoch, or `None` if Redis failed.
    async fn bump(&self, user_ids: &[String]) -> Option<(Vec<i64>, u64)> {
        if self.is_down() {
            // Counted when the outage began; other instances' entries expire with their TTL.
            return None;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        // One script call for all the players: a round trip and a command, not two commands per player.
        const BUMP: &str = r"
            local out = {}
            for i, key in ipairs(KEYS) do
              out[i] = redis.call('INCR', key)
              redis.call('EXPIRE', key, ARGV[1])
            end
            return out";
        let keys: Vec<String> = user_ids.iter().map(|user| self.key(user)).collect();
        let ttl = self.key_ttl.as_secs().max(1).to_string();
        let generations: Result<Vec<i64>, Error> = self.client.eval(BUMP, keys, vec![ttl]).await;
        match generations {
            Ok(generations) if generations.len() == user_ids.len() => Some((generations, epoch)),
            Ok(_) => {
                self.failed("cache_invalidate", &Error::new(ErrorKind::Protocol, "INCR answers missing"));
                None
            }
            Err(err) => {
                self.failed("cache_invalidate", &err);
                None
            }
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
            tracing::error!(op, error = %err, "Redis unavailable: player state is read from the database");
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
    async fn the_writer_keeps_its_own_change_only_when_nobody_else_changed_the_player() {
        let cache: GenerationCache<u32> = GenerationCache::new(&settings(), None);
        let alice = || "alice".to_owned();

        let lookup = cache.begin("alice").await;
        cache.put(&lookup, 1);
        let loaded_at = Instant::now();
        cache.put_after_own_change(vec![(lookup, loaded_at, 2)]).await;
        assert_eq!(cache.get(&cache.begin("alice").await), Some(2), "the sole writer's value is current");

        // Another change (a claim, say) commits between this writer's lookup and its own bump.
        let lookup = cache.begin("alice").await;
        cache.invalidate(&[alice()]).await;
        cache.put_after_own_change(vec![(lookup, loaded_at, 3)]).await;
        assert_eq!(cache.get(&cache.begin("alice").await), None, "a value that missed a change is never served");

        // Readers sharing the generations see the writer's bump.
        let reader: GenerationCache<u32> = GenerationCache::sharing(cache.generations().clone(), &settings(), "player");
        let read = reader.begin("alice").await;
        reader.put(&read, 10);
        cache.put_after_own_change(vec![(cache.begin("alice").await, loaded_at, 4)]).await;
        assert_eq!(reader.get(&reader.begin("alice").await), None);
        assert_eq!(cache.get(&cache.begin("alice").await), Some(4));
    }

    #[tokio::test]
    async fn a_disabled_cache_stores_nothing() {
        let cache: GenerationCache<u32> = GenerationCache::new(&CacheSettings { enabled: false, ..settings() }, None);
        let lookup = cache.begin("alice").await;
        cache.put(&lookup, 1);
        assert_eq!(cache.get(&cache.begin("alice").await), None);
    }
}
