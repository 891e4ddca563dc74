//! The rule book: per goal, which plugin evaluates it, with what spec, listening to which events.
//! Built once per challenge configuration so the event path does no config lookups or JSON work.

// foldhash: the event path looks goals and stat codes up several times per event.
use foldhash::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use challenge_core::config::{Catalog, EventSource, Goal, GoalKind, ProgressMode};
use challenge_plugin_runtime::{GoalSpec, ProgressMode as PluginProgressMode};

/// Which kind of event reaches a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalSource {
    Login,
    Statistic,
}

/// One event as one goal-relevant stat update: a login becomes one signal per login stat code.
#[derive(Debug, Clone, Copy)]
pub struct Signal<'a> {
    pub source: SignalSource,
    pub stat_code: &'a str,
    /// Latest value for statistic events.
    pub value: Option<f64>,
    pub inc: f64,
    pub event_index: usize,
}

#[derive(Debug, Clone)]
pub struct GoalRule {
    pub goal_id: String,
    pub challenge_id: String,
    pub plugin: String,
    pub pinned_version: Option<String>,
    pub spec: Arc<GoalSpec>,
    pub source: SignalSource,
    /// The goal's own stat code first, then extra ones its plugin asked for.
    pub stat_codes: Vec<String>,
}

impl GoalRule {
    pub fn listens_to(&self, signal: &Signal<'_>) -> bool {
        signal.source == self.source && self.stat_codes.iter().any(|code| code == signal.stat_code)
    }

    pub fn primary_stat_code(&self) -> &str {
        &self.stat_codes[0]
    }
}

#[derive(Debug, Default)]
pub struct RuleBook {
    /// Unique per built book, so per-player indexes derived from one book are not used with another.
    revision: u64,
    rules: Vec<GoalRule>,
    /// Position in `rules` by goal id.
    rule_ids: HashMap<String, usize>,
    login_stat_codes: Vec<String>,
    statistic_codes: HashSet<String>,
    /// Goal ids per (source, stat code): which goal rows an event can concern.
    listeners: HashMap<(SignalSource, String), Vec<String>>,
}

impl RuleBook {
    pub fn new(catalog: &Catalog) -> Self {
        static REVISIONS: AtomicU64 = AtomicU64::new(1);
        let mut book = RuleBook { revision: REVISIONS.fetch_add(1, Ordering::Relaxed), ..RuleBook::default() };
        for goal in catalog.goals() {
            let source = match goal.event_source {
                EventSource::Login => SignalSource::Login,
                EventSource::Statistic => SignalSource::Statistic,
            };
            let mut stat_codes = goal.listens_to.clone();
            if stat_codes.is_empty() {
                stat_codes.push(goal.stat_code().to_owned());
            }
            match source {
                SignalSource::Login => {
                    for code in &stat_codes {
                        if !book.login_stat_codes.contains(code) {
                            book.login_stat_codes.push(code.clone());
                        }
                    }
                }
                SignalSource::Statistic => book.statistic_codes.extend(stat_codes.iter().cloned()),
            }
            for code in &stat_codes {
                book.listeners.entry((source, code.clone())).or_default().push(goal.id.clone());
            }
            let rule = GoalRule {
                goal_id: goal.id.clone(),
                challenge_id: goal.challenge_id.clone(),
                plugin: goal.rule_plugin().to_owned(),
                pinned_version: goal.rule.as_ref().and_then(|rule| rule.version.clone()),
                spec: Arc::new(goal_spec(goal)),
                source,
                stat_codes,
            };
            book.rule_ids.insert(goal.id.clone(), book.rules.len());
            book.rules.push(rule);
        }
        book
    }

    /// Identifies this book among every book built by the process.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn rule(&self, goal_id: &str) -> Option<&GoalRule> {
        self.rule_ids.get(goal_id).map(|&index| &self.rules[index])
    }

    /// A rule's position in this book: with [`Self::rule_at`], a per-player index built for this book (same
    /// [`Self::revision`]) finds rules without hashing goal ids.
    pub fn rule_index(&self, goal_id: &str) -> Option<usize> {
        self.rule_ids.get(goal_id).copied()
    }

    /// The rule at a position from [`Self::rule_index`] of this book.
    pub fn rule_at(&self, index: usize) -> &GoalRule {
        &self.rules[index]
    }

    /// Stat codes a login event updates (one signal each).
    pub fn login_stat_codes(&self) -> &[String] {
        &self.login_stat_codes
    }

    /// Goals that events of this source and stat code can concern.
    pub fn listeners(&self, source: SignalSource, stat_code: &str) -> &[String] {
        self.listeners.get(&(source, stat_code.to_owned())).map_or(&[], Vec::as_slice)
    }

    /// Whether any statistic goal listens to this stat code; other stat events are ignored.
    pub fn is_tracked_stat(&self, stat_code: &str) -> bool {
        self.statistic_codes.contains(stat_code)
    }
}

/// The plugin-facing description of a configured goal.
pub fn goal_spec(goal: &Goal) -> GoalSpec {
    GoalSpec {
        goal_id: goal.id.clone(),
        kind: match goal.kind {
            GoalKind::Absolute => "absolute",
            GoalKind::Increment => "increment",
            GoalKind::Daily => "daily",
        }
        .to_owned(),
        stat_code: goal.stat_code().to_owned(),
        target: goal.requirement.target_value,
        progress_mode: match goal.requirement.progress_mode {
            ProgressMode::Absolute => PluginProgressMode::Absolute,
            ProgressMode::Relative => PluginProgressMode::Relative,
        },
        daily: goal.daily,
        params: goal.rule.as_ref().map_or_else(|| "{}".to_owned(), |rule| rule.params.to_string()),
    }
}
