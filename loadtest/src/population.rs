//! The simulated players, the events made for them, and the ledger of acknowledged events that the database is
//! checked against afterwards.
//!
//! Per (player, stat code) the ledger counts acknowledged events: the server increments
//! `user_stat_values.event_count` by one per committed event for every stat code one of the player's active goals
//! listens to (a login counts under each login stat code). Only events sent after the player's `initialize`
//! succeeded are counted, since before that the player has no goals and the event is legitimately ignored.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use rand::Rng;

use crate::auth::TokenMinter;
use crate::error::Result;

pub struct Player {
    pub id: String,
    pub bearer: String,
    initialized: AtomicBool,
}

impl Player {
    pub fn new(id: String, minter: &TokenMinter) -> Result<Self> {
        let bearer = minter.bearer(&id)?;
        Ok(Self { id, bearer, initialized: AtomicBool::new(false) })
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Acquire)
    }

    pub fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::Release);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Login,
    /// `code` indexes [`Population::stat_codes`].
    Stat {
        code: usize,
        latest_value: f64,
        inc: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub player: usize,
    pub kind: EventKind,
    /// Whether the player was initialized when the event was made (only those are checked in the database).
    pub tracked: bool,
}

/// What the events mix looks like.
#[derive(Debug, Clone)]
pub struct EventMix {
    /// Share of login events (the rest are stat updates).
    pub login_share: f64,
    /// A stat update adds 1..=inc_max to the player's running value of that stat.
    pub inc_max: u32,
}

pub struct Population {
    pub run_id: String,
    /// Event ids start with the run id and a per-process nonce: a repeated `--run-id` must not send ids that
    /// the server's dedupe window still remembers from the last run (they would be acknowledged, not counted).
    event_prefix: String,
    pub namespace: String,
    pub players: Vec<Player>,
    /// Login stat codes a login event counts under (those of the default login goals).
    pub login_codes: Vec<String>,
    /// Statistic codes events are sent for.
    pub stat_codes: Vec<String>,
    mix: EventMix,
    /// Running value per (player, stat code), so `latestValue` grows like a real stat.
    values: Vec<AtomicI64>,
    /// Acknowledged increments per (player, code); codes are the login codes then the stat codes.
    expected: Vec<AtomicU64>,
    sent: AtomicU64,
    acknowledged: AtomicU64,
    untracked: AtomicU64,
    next_event: AtomicU64,
}

impl Population {
    pub fn new(
        run_id: &str,
        namespace: &str,
        users: usize,
        login_codes: Vec<String>,
        stat_codes: Vec<String>,
        mix: EventMix,
        minter: &TokenMinter,
    ) -> Result<Self> {
        let players =
            (0..users).map(|i| Player::new(player_id(run_id, "u", i as u64), minter)).collect::<Result<Vec<_>>>()?;
        let codes = login_codes.len() + stat_codes.len();
        Ok(Self {
            run_id: run_id.to_owned(),
            event_prefix: format!("{run_id}-{:08x}", rand::random::<u32>()),
            namespace: namespace.to_owned(),
            values: (0..users * stat_codes.len()).map(|_| AtomicI64::new(0)).collect(),
            expected: (0..users * codes).map(|_| AtomicU64::new(0)).collect(),
            players,
            login_codes,
            stat_codes,
            mix,
            sent: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
            next_event: AtomicU64::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.players.len()
    }

    pub fn is_empty(&self) -> bool {
        self.players.is_empty()
    }

    pub fn random_player(&self, rng: &mut impl Rng) -> usize {
        rng.random_range(0..self.players.len())
    }

    fn event_id(&self) -> String {
        format!("{}-e{}", self.event_prefix, self.next_event.fetch_add(1, Ordering::Relaxed))
    }

    pub fn login(&self, player: usize) -> Event {
        Event { id: self.event_id(), player, kind: EventKind::Login, tracked: self.players[player].is_initialized() }
    }

    pub fn stat(&self, player: usize, code: usize, rng: &mut impl Rng) -> Event {
        let inc = i64::from(rng.random_range(1..=self.mix.inc_max.max(1)));
        let slot = &self.values[player * self.stat_codes.len() + code];
        let latest = slot.fetch_add(inc, Ordering::Relaxed) + inc;
        Event {
            id: self.event_id(),
            player,
            kind: EventKind::Stat { code, latest_value: latest as f64, inc: inc as f64 },
            tracked: self.players[player].is_initialized(),
        }
    }

    /// One event of the configured mix for a random player.
    pub fn random_event(&self, rng: &mut impl Rng) -> Event {
        let player = self.random_player(rng);
        if self.stat_codes.is_empty() || rng.random_bool(self.mix.login_share.clamp(0.0, 1.0)) {
            self.login(player)
        } else {
            let code = rng.random_range(0..self.stat_codes.len());
            self.stat(player, code, rng)
        }
    }

    /// Counts events handed to a transport (acknowledged or not).
    pub fn count_sent(&self, events: usize) {
        self.sent.fetch_add(events as u64, Ordering::Relaxed);
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Records that the server acknowledged (committed) `event`.
    pub fn acknowledge(&self, event: &Event) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
        if !event.tracked {
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let codes = self.login_codes.len() + self.stat_codes.len();
        let row = event.player * codes;
        match event.kind {
            EventKind::Login => {
                for slot in &self.expected[row..row + self.login_codes.len()] {
                    slot.fetch_add(1, Ordering::Relaxed);
                }
            }
            EventKind::Stat { code, .. } => {
                self.expected[row + self.login_codes.len() + code].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    pub fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }

    /// Every (player id, stat code, expected count), zero counts included.
    pub fn expected_counts(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        let codes: Vec<&str> = self.login_codes.iter().chain(&self.stat_codes).map(String::as_str).collect();
        self.players.iter().enumerate().flat_map(move |(p, player)| {
            let codes = codes.clone();
            codes.into_iter().enumerate().map(move |(c, code)| {
                let count =
                    self.expected[p * (self.login_codes.len() + self.stat_codes.len()) + c].load(Ordering::Relaxed);
                (player.id.as_str(), code, count)
            })
        })
    }

    pub fn stat_code(&self, code: usize) -> &str {
        &self.stat_codes[code]
    }
}

/// Player ids start with the run id so runs never share players.
pub fn player_id(run_id: &str, kind: &str, index: u64) -> String {
    format!("{run_id}-{kind}{index:06}")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn population() -> Population {
        let minter = TokenMinter::new("k", "ns");
        Population::new(
            "r1",
            "ns",
            3,
            vec!["login_count".into()],
            vec!["kills".into(), "wins".into()],
            EventMix { login_share: 0.2, inc_max: 5 },
            &minter,
        )
        .expect("population")
    }

    #[test]
    fn only_events_of_initialized_players_are_expected() {
        let population = population();
        let mut rng = SmallRng::seed_from_u64(7);
        let early = population.stat(0, 1, &mut rng);
        population.players[0].mark_initialized();
        let login = population.login(0);
        let stat = population.stat(0, 1, &mut rng);
        for event in [&early, &login, &stat] {
            population.acknowledge(event);
        }
        assert_eq!(population.acknowledged(), 3);
        assert_eq!(population.untracked(), 1);
        let counts: Vec<_> = population.expected_counts().filter(|(_, _, n)| *n > 0).collect();
        assert_eq!(counts, vec![("r1-u000000", "login_count", 1), ("r1-u000000", "wins", 1)]);
    }

    #[test]
    fn stat_values_grow_and_ids_are_unique() {
        let population = population();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut last = 0.0;
        let mut ids = std::collections::HashSet::new();
        for _ in 0..50 {
            let event = population.stat(2, 0, &mut rng);
            let EventKind::Stat { latest_value, inc, .. } = event.kind else { unreachable!() };
            assert_eq!(latest_value, last + inc);
            assert!((1.0..=5.0).contains(&inc));
            last = latest_value;
            assert!(ids.insert(event.id));
        }
    }
}
