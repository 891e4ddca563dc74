//! Turns one flush worth of events into the writes that commit them (no I/O here).
//!
//! Per user, events become stat-code signals (a login becomes one per login stat code). Only signals some of the
//! user's event-accepting goals listen to matter. Each plugin gets one call per user with those goals and signals,
//! in order. Writes stay O(1) per event: one stat row per (user, stat code) per flush, and a goal row only when
//! the plugin changed something the stat row cannot re-derive (status, baseline, plugin state, stored progress).

use std::sync::Arc;

use challenge_core::progress::{GoalProgress, GoalStatus, ProgressSource, StatValue};
use challenge_plugin_runtime::{
    EvaluationRequest, Event as PluginEvent, EventKind as PluginEventKind, GoalInput, GoalState,
    GoalStatus as PluginGoalStatus, GoalUpdate, ProgressSource as PluginProgressSource,
};
use challenge_storage::{FlushBatch, GoalWrite, ParkedEvaluation, StatWrite};
use chrono::{DateTime, TimeZone, Utc};

use super::event::{Event, EventKind};
use super::state::{Listener, UserState, UserStates};
use crate::rules::{GoalRule, RuleBook, RuleEngine, Signal, SignalSource};
use foldhash::{HashMap, HashMapExt};

/// The writes of one flush. A plugin call that failed leaves its goals untouched and is parked in
/// `batch.parked` (with its events) for replay; the events themselves are still committed.
#[derive(Debug, Default)]
pub struct FlushPlan {
    pub batch: FlushBatch,
    pub plugin_calls: usize,
    /// Events no active goal of their user listens to (acknowledged, nothing to write).
    pub ignored_events: usize,
}

/// Plans the writes for `events` (in arrival order, any users) given the users' current rows.
pub fn plan_flush(
    events: &[Event],
    states: &UserStates,
    book: &RuleBook,
    engine: &RuleEngine,
    now: DateTime<Utc>,
) -> FlushPlan {
    let mut events_by_user: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut user_slot: HashMap<&str, usize> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let slot = *user_slot.entry(event.user_id.as_str()).or_insert_with(|| {
            events_by_user.push((event.user_id.as_str(), Vec::new()));
            events_by_user.len() - 1
        });
        events_by_user[slot].1.push(index);
    }

    let mut plan = FlushPlan::default();
    for (user_id, event_indexes) in events_by_user {
        let Some(state) = states.get(user_id) else {
            plan.ignored_events += event_indexes.len();
            continue;
        };
        let mut signals = signals_of(events, &event_indexes, book);
        let goals = listening_goals(state, &signals, book, now);
        signals.retain(|signal| goals.iter().any(|(_, rule)| rule.listens_to(signal)));
        if signals.is_empty() {
            plan.ignored_events += event_indexes.len();
            continue;
        }
        let user = UserFlush { user_id, goals: &goals, stats: &state.stats, events, now };
        user.plan(&signals, engine, &mut plan);
    }
    plan
}

/// The stat-code signals of a user's events, in event order.
fn signals_of<'e>(events: &'e [Event], event_indexes: &[usize], book: &'e RuleBook) -> Vec<Signal<'e>> {
    let mut signals = Vec::new();
    for &event_index in event_indexes {
        match &events[event_index].kind {
            EventKind::Login => {
                for code in book.login_stat_codes() {
                    signals.push(Signal {
                        source: SignalSource::Login,
                        stat_code: code,
                        value: None,
                        inc: 1.0,
                        event_index,
                    });
                }
            }
            EventKind::Stat { stat_code, latest_value, inc } if book.is_tracked_stat(stat_code) => {
                signals.push(Signal {
                    source: SignalSource::Statistic,
                    stat_code,
                    value: Some(*latest_value),
                    inc: *inc,
                    event_index,
                });
            }
            EventKind::Stat { .. } => {}
        }
    }
    signals
}

/// The user's goals that accept events at `now` and listen to at least one of the signals, in row order.
fn listening_goals<'s>(
    state: &'s UserState,
    signals: &[Signal<'_>],
    book: &'s RuleBook,
    now: DateTime<Utc>,
) -> Vec<(&'s GoalProgress, &'s GoalRule)> {
    let index = state.listeners(book);
    let mut listeners: Vec<Listener> =
        signals.iter().flat_map(|signal| index.rows(signal.source, signal.stat_code)).copied().collect();
    listeners.sort_unstable();
    listeners.dedup();
    listeners
        .into_iter()
        .map(|listener| (state.goals[listener.row].as_ref(), book.rule_at(listener.rule)))
        .filter(|(row, _)| row.accepts_events(now))
        .collect()
}

/// A plugin by name and, when a goal pins one, version.
type PluginKey<'a> = (&'a str, Option<&'a str>);

struct UserFlush<'a> {
    user_id: &'a str,
    /// The user's goals that listen to the flush's signals.
    goals: &'a [(&'a GoalProgress, &'a GoalRule)],
    stats: &'a [Arc<StatValue>],
    events: &'a [Event],
    now: DateTime<Utc>,
}

impl UserFlush<'_> {
    /// `signals`: the user's signals some of `goals` listen to, in event order.
    fn plan(&self, signals: &[Signal<'_>], engine: &RuleEngine, plan: &mut FlushPlan) {
        let sequences = self.write_stats(signals, plan);

        // One call per plugin (and pinned version), goals in a stable order.
        let mut by_plugin: Vec<(PluginKey<'_>, Vec<usize>)> = Vec::new();
        for (goal_index, (_, rule)) in self.goals.iter().enumerate() {
            let key = (rule.plugin.as_str(), rule.pinned_version.as_deref());
            match by_plugin.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(goal_index),
                None => by_plugin.push((key, vec![goal_index])),
            }
        }
        for ((plugin_name, pinned), members) in by_plugin {
            self.evaluate_with(plugin_name, pinned, &members, signals, &sequences, engine, plan);
        }
    }

    fn stat(&self, stat_code: &str) -> Option<&StatValue> {
        self.stats.iter().find(|stat| stat.stat_code == stat_code).map(Arc::as_ref)
    }

    /// Adds one stat write per touched stat code and returns each signal's event sequence number.
    fn write_stats(&self, signals: &[Signal<'_>], plan: &mut FlushPlan) -> Vec<i64> {
        let mut running: HashMap<&str, (i64, Option<f64>, i64)> = HashMap::new();
        let mut sequences = Vec::with_capacity(signals.len());
        for signal in signals {
            let entry = running.entry(signal.stat_code).or_insert_with(|| {
                let base = self.stat(signal.stat_code).map_or(0, |s| s.event_count);
                (base, None, 0)
            });
            entry.0 += 1;
            entry.2 += 1;
            if signal.value.is_some() {
                entry.1 = signal.value;
            }
            sequences.push(entry.0);
        }
        let mut codes: Vec<_> = running.into_iter().collect();
        codes.sort_by(|a, b| a.0.cmp(b.0));
        for (stat_code, (_, value, count_delta)) in codes {
            plan.batch.stats.push(StatWrite {
                user_id: self.user_id.to_owned(),
                stat_code: stat_code.to_owned(),
                value,
                count_delta,
                updated_at: self.now,
            });
        }
        sequences
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate_with(
        &self,
        plugin_name: &str,
        pinned: Option<&str>,
        members: &[usize],
        signals: &[Signal<'_>],
        sequences: &[i64],
        engine: &RuleEngine,
        plan: &mut FlushPlan,
    ) {
        let listened: Vec<usize> =
            (0..signals.len()).filter(|&i| members.iter().any(|&g| self.goals[g].1.listens_to(&signals[i]))).collect();
        let events: Vec<PluginEvent> = listened.iter().map(|&i| self.plugin_event(&signals[i], sequences[i])).collect();
        let goals: Vec<GoalInput> = members
            .iter()
            .map(|&g| {
                let (row, rule) = self.goals[g];
                GoalInput { spec: rule.spec.clone(), state: self.goal_state(row, rule) }
            })
            .collect();
        let park = |request: &EvaluationRequest, version: &str, kind: &str, error: String| ParkedEvaluation {
            user_id: self.user_id.to_owned(),
            plugin: plugin_name.to_owned(),
            plugin_version: version.to_owned(),
            goal_ids: serde_json::json!(request.goals.iter().map(|g| &g.spec.goal_id).collect::<Vec<_>>()).to_string(),
            events: events_json(&request.events),
            error_kind: kind.to_owned(),
            error,
            parked_at: self.now,
        };
        let request = EvaluationRequest { user_id: self.user_id.to_owned(), events, goals };
        let Some(plugin) = engine.resolve(plugin_name, pinned) else {
            let parked =
                park(&request, pinned.unwrap_or("active"), "not_loaded", "plugin version is not loaded".into());
            plan.batch.parked.push(parked);
            return;
        };
        plan.plugin_calls += 1;
        match plugin.evaluate(&request) {
            Ok(updates) => {
                for update in updates {
                    let Some(&g) = members.get(update.goal_index as usize) else { continue };
                    if let Some(write) = goal_write(self.goals[g].0, &update, self.now) {
                        plan.batch.goals.push(write);
                    }
                }
            }
            Err(err) => {
                let info = plugin.info();
                tracing::warn!(
                    plugin = %info.name, version = %info.version, user_id = self.user_id, kind = err.kind(), error = %err,
                    "plugin evaluation failed; its goals are parked, the events are committed"
                );
                plan.batch.parked.push(park(&request, &info.version, err.kind(), err.to_string()));
            }
        }
    }

    fn plugin_event(&self, signal: &Signal<'_>, sequence: i64) -> PluginEvent {
        let event = &self.events[signal.event_index];
        PluginEvent {
            id: event.id.clone(),
            kind: match signal.source {
                SignalSource::Login => PluginEventKind::Login,
                SignalSource::Statistic => PluginEventKind::Statistic,
            },
            stat_code: signal.stat_code.to_owned(),
            value: signal.value.unwrap_or(0.0),
            increment: signal.inc,
            sequence,
            timestamp_ms: event.occurred_at.timestamp_millis(),
        }
    }

    fn goal_state(&self, row: &GoalProgress, rule: &GoalRule) -> GoalState {
        let stat = self.stat(rule.primary_stat_code());
        GoalState {
            progress: row.displayed_progress(stat),
            status: plugin_status(row.status),
            completed_at_ms: row.completed_at.map(|t| t.timestamp_millis()),
            baseline: row.baseline_value,
            state: row.plugin_state.clone(),
        }
    }
}

/// The events of a parked call, as the plugin received them, for replay.
fn events_json(events: &[PluginEvent]) -> String {
    let list: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id,
                "kind": match e.kind { PluginEventKind::Login => "login", PluginEventKind::Statistic => "statistic" },
                "statCode": e.stat_code,
                "value": e.value,
                "increment": e.increment,
                "sequence": e.sequence,
                "timestampMs": e.timestamp_ms,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

fn plugin_status(status: GoalStatus) -> PluginGoalStatus {
    match status {
        GoalStatus::NotStarted => PluginGoalStatus::NotStarted,
        GoalStatus::InProgress => PluginGoalStatus::InProgress,
        GoalStatus::Completed => PluginGoalStatus::Completed,
        GoalStatus::Claimed => PluginGoalStatus::Claimed,
    }
}

fn core_status(status: PluginGoalStatus) -> GoalStatus {
    match status {
        PluginGoalStatus::NotStarted => GoalStatus::NotStarted,
        PluginGoalStatus::InProgress => GoalStatus::InProgress,
        PluginGoalStatus::Completed => GoalStatus::Completed,
        PluginGoalStatus::Claimed => GoalStatus::Claimed,
    }
}

fn core_source(source: PluginProgressSource) -> ProgressSource {
    match source {
        PluginProgressSource::Stored => ProgressSource::Stored,
        PluginProgressSource::StatValue => ProgressSource::StatValue,
        PluginProgressSource::EventCount => ProgressSource::EventCount,
    }
}

/// The row write an update needs, or `None` when the stat row already carries the change.
fn goal_write(row: &GoalProgress, update: &GoalUpdate, now: DateTime<Utc>) -> Option<GoalWrite> {
    let status = core_status(update.status);
    // Plugins cannot claim; the claim path alone moves a goal to claimed.
    if status == GoalStatus::Claimed {
        return None;
    }
    let source = core_source(update.source);
    let completed_at = update.completed_at_ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    let changed = status != row.status
        || source != row.progress_source
        || update.baseline != row.baseline_value
        || update.state != row.plugin_state
        || completed_at != row.completed_at
        || (source == ProgressSource::Stored && update.progress != row.progress);
    changed.then(|| GoalWrite {
        user_id: row.user_id.clone(),
        goal_id: row.goal_id.clone(),
        progress: update.progress.max(0),
        status,
        completed_at: if status == GoalStatus::Completed { completed_at.or(Some(now)) } else { completed_at },
        baseline_value: update.baseline,
        plugin_state: update.state.clone(),
        progress_source: source,
        updated_at: now,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use challenge_core::progress::GoalProgress;
    use challenge_storage::PipelineState;

    use super::*;
    use crate::pipeline::state::{UserWrites, split_by_user};

    fn states(state: PipelineState) -> UserStates {
        split_by_user(state, &[])
    }

    fn engine_and_book() -> (RuleEngine, RuleBook) {
        let engine = RuleEngine::with_builtin(None).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/challenges.json");
        let catalog = challenge_core::config::load_file(path, &engine).unwrap();
        let (_, book) = engine.prepare(catalog).unwrap();
        (engine, book)
    }

    fn row(user: &str, goal: &str) -> GoalProgress {
        let now = Utc::now();
        GoalProgress {
            user_id: user.into(),
            goal_id: goal.into(),
            challenge_id: "grind".into(),
            namespace: "ns".into(),
            progress: 0,
            status: GoalStatus::NotStarted,
            completed_at: None,
            claimed_at: None,
            is_active: true,
            assigned_at: Some(now),
            expires_at: None,
            baseline_value: None,
            plugin_state: None,
            progress_source: ProgressSource::Stored,
            created_at: now,
            updated_at: now,
        }
    }

    fn kills(user: &str, value: f64) -> Event {
        Event {
            id: format!("{user}-{value}"),
            user_id: user.into(),
            occurred_at: Utc::now(),
            kind: EventKind::Stat { stat_code: "kills".into(), latest_value: value, inc: 1.0 },
        }
    }

    #[test]
    fn many_events_for_many_goals_cost_one_stat_row_and_only_state_changes() {
        let (engine, book) = engine_and_book();
        // Two goals listen to kills (absolute and relative); 100 events in one flush.
        let state = PipelineState { goals: vec![row("u1", "kills-100"), row("u1", "kill-10")], stats: vec![] };
        let events: Vec<Event> = (1..=100).map(|i| kills("u1", f64::from(i))).collect();
        let plan = plan_flush(&events, &states(state), &book, &engine, Utc::now());
        assert_eq!(plan.batch.stats.len(), 1, "one stat row for 100 events");
        assert_eq!(plan.batch.stats[0].count_delta, 100);
        assert_eq!(plan.batch.stats[0].value, Some(100.0));
        // Each goal changed state once (first event / completion), so at most one write per goal.
        assert_eq!(plan.batch.goals.len(), 2);
        assert_eq!(plan.plugin_calls, 1, "one plugin call per user and plugin");

        // A steady-state event that only moves a derived progress writes no goal row.
        let mut started = row("u1", "kills-100");
        started.status = GoalStatus::InProgress;
        started.progress_source = ProgressSource::StatValue;
        let state = PipelineState { goals: vec![started], stats: vec![] };
        let plan = plan_flush(&[kills("u1", 50.0)], &states(state), &book, &engine, Utc::now());
        assert_eq!((plan.batch.stats.len(), plan.batch.goals.len()), (1, 0));
    }

    #[test]
    fn a_flush_visits_only_the_goal_rows_its_events_concern() {
        let (engine, book) = engine_and_book();
        let rows = vec![row("u1", "login-3-times"), row("u1", "kills-100"), row("u1", "kill-10"), row("u1", "wins-3")];
        let states = states(PipelineState { goals: rows, stats: vec![] });
        let state = &states["u1"];
        let index = state.listeners(&book);
        let rows = |source, code| -> Vec<(usize, &str)> {
            index.rows(source, code).iter().map(|l| (l.row, book.rule_at(l.rule).goal_id.as_str())).collect()
        };
        assert_eq!(rows(SignalSource::Statistic, "kills"), [(1, "kills-100"), (2, "kill-10")]);
        assert_eq!(rows(SignalSource::Statistic, "wins"), [(3, "wins-3")]);
        assert!(rows(SignalSource::Statistic, "login_count").is_empty(), "logins are another source");
        assert_eq!(rows(SignalSource::Login, "login_count"), [(0, "login-3-times")]);

        let plan = plan_flush(&[kills("u1", 7.0)], &states, &book, &engine, Utc::now());
        let mut written: Vec<&str> = plan.batch.goals.iter().map(|write| write.goal_id.as_str()).collect();
        written.sort_unstable();
        assert_eq!(written, ["kill-10", "kills-100"], "only the kills goals are evaluated");

        // The successor after a stat-only flush shares the goal rows and the index; a goal write copies the rows.
        let stat_only = state.after(&UserWrites { stats: plan.batch.stats.iter().collect(), goals: vec![] });
        assert!(Arc::ptr_eq(&stat_only.goals, &state.goals));
        assert!(Arc::ptr_eq(&stat_only.listeners(&book), &index));
        let with_goals = state
            .after(&UserWrites { stats: plan.batch.stats.iter().collect(), goals: plan.batch.goals.iter().collect() });
        assert!(!Arc::ptr_eq(&with_goals.goals, &state.goals));
        assert_eq!(with_goals.goals[1].status, GoalStatus::InProgress, "the write is applied to the copy");
        assert_eq!(state.goals[1].status, GoalStatus::NotStarted, "the cached original is untouched");
        assert_eq!(with_goals.stats[0].event_count, 1);
    }

    #[test]
    fn events_nobody_listens_to_write_nothing() {
        let (engine, book) = engine_and_book();
        let state = PipelineState { goals: vec![row("u1", "kills-100")], stats: vec![] };
        let unknown_stat = Event {
            kind: EventKind::Stat { stat_code: "fishing".into(), latest_value: 1.0, inc: 1.0 },
            ..kills("u1", 1.0)
        };
        let no_goals = kills("u2", 5.0);
        let plan = plan_flush(&[unknown_stat, no_goals], &states(state), &book, &engine, Utc::now());
        assert!(plan.batch.is_empty());
        assert_eq!(plan.ignored_events, 2);
    }
}
