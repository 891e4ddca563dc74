//! Rule plugins as the server uses them: which plugin version evaluates which goal, and the load-time checks
//! that keep a bad goal configuration from ever reaching event time.

mod book;
pub mod registry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use challenge_core::config::{self, BUILTIN_PLUGIN, Catalog, PluginDirectory};
use challenge_plugin_runtime::{LoadedPlugin, PluginLimits, PluginRuntime, RuntimeOptions};

pub use book::{GoalRule, RuleBook, Signal, SignalSource};

/// Loaded plugin versions and which version of each plugin is active.
pub struct RuleEngine {
    runtime: PluginRuntime,
    /// name -> version -> plugin.
    versions: ArcSwap<HashMap<String, HashMap<String, Arc<LoadedPlugin>>>>,
    /// name -> the version evaluations use when a goal does not pin one.
    active: ArcSwap<HashMap<String, Arc<LoadedPlugin>>>,
}

impl RuleEngine {
    /// A runtime with the built-in rules plugin loaded and active.
    pub fn with_builtin(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let runtime = PluginRuntime::new(RuntimeOptions { cache_dir, ..RuntimeOptions::default() })
            .context("starting the plugin runtime")?;
        let engine = Self { runtime, versions: ArcSwap::default(), active: ArcSwap::default() };
        let builtin = engine
            .runtime
            .load(challenge_plugin_runtime::BUILTIN_RULES_WASM, PluginLimits::default())
            .context("loading the built-in rules plugin")?;
        anyhow::ensure!(
            builtin.info().name == BUILTIN_PLUGIN,
            "the built-in plugin calls itself '{}', expected '{BUILTIN_PLUGIN}'",
            builtin.info().name
        );
        engine.install(builtin, true);
        Ok(engine)
    }

    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Loads plugin component files and activates each (the last file wins for a repeated plugin name).
    pub fn load_files(&self, files: &[PathBuf]) -> anyhow::Result<()> {
        for file in files {
            let bytes = std::fs::read(file).with_context(|| format!("reading plugin {}", file.display()))?;
            let plugin = self
                .runtime
                .load(&bytes, PluginLimits::default())
                .with_context(|| format!("loading plugin {}", file.display()))?;
            tracing::info!(plugin = plugin.name(), version = plugin.version(), file = %file.display(), "plugin loaded");
            self.install(plugin, true);
        }
        Ok(())
    }

    /// Registers a loaded version; with `activate`, evaluations that start afterwards use it.
    pub fn install(&self, plugin: Arc<LoadedPlugin>, activate: bool) {
        let name = plugin.info().name.clone();
        let version = plugin.info().version.clone();
        self.versions.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.entry(name.clone()).or_default().insert(version.clone(), plugin.clone());
            next
        });
        if activate {
            self.active.rcu(|current| {
                let mut next = HashMap::clone(current);
                next.insert(name.clone(), plugin.clone());
                next
            });
        }
    }

    /// The plugin a goal's evaluation uses right now: its pinned version, else the active one.
    pub fn resolve(&self, plugin: &str, pinned_version: Option<&str>) -> Option<Arc<LoadedPlugin>> {
        match pinned_version {
            Some(version) => self.versions.load().get(plugin)?.get(version).cloned(),
            None => self.active.load().get(plugin).cloned(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.active.load().contains_key(BUILTIN_PLUGIN)
    }

    /// Checks every goal's params with its plugin and records the extra stat codes plugins listen to.
    /// The error lists every rejected goal.
    pub fn prepare(&self, catalog: Catalog) -> Result<(Catalog, RuleBook), String> {
        prepare_with(catalog, &|plugin, pinned| self.resolve(plugin, pinned))
    }
}

/// Finds the plugin version a goal uses: (plugin name, pinned version) → loaded plugin.
pub type Resolver<'a> = dyn Fn(&str, Option<&str>) -> Option<Arc<LoadedPlugin>> + 'a;

/// [`RuleEngine::prepare`] with another way to find each goal's plugin: checks what a configuration would look
/// like with other plugin versions active, before activating them.
pub fn prepare_with(catalog: Catalog, resolve: &Resolver<'_>) -> Result<(Catalog, RuleBook), String> {
    let mut problems = Vec::new();
    let mut extra_stat_codes = HashMap::new();
    for goal in catalog.goals() {
        let pinned = goal.rule.as_ref().and_then(|rule| rule.version.as_deref());
        let Some(plugin) = resolve(goal.rule_plugin(), pinned) else {
            problems.push(format!("goal '{}': rule plugin '{}' is not loaded", goal.id, goal.rule_plugin()));
            continue;
        };
        match plugin.validate_params(&book::goal_spec(goal)) {
            Ok(extra) if extra.is_empty() => {}
            Ok(extra) => {
                extra_stat_codes.insert(goal.id.clone(), extra);
            }
            Err(err) => problems.push(format!(
                "goal '{}' in challenge '{}': rule: plugin {}@{} rejects its params: {err}",
                goal.id,
                goal.challenge_id,
                plugin.info().name,
                plugin.info().version
            )),
        }
    }
    if !problems.is_empty() {
        return Err(format!("{} problem(s):\n{}", problems.len(), problems.join("\n")));
    }
    let catalog = catalog.with_extra_stat_codes(&extra_stat_codes).map_err(|err| config::report(&err))?;
    let book = RuleBook::new(&catalog);
    Ok((catalog, book))
}

impl PluginDirectory for RuleEngine {
    fn knows(&self, plugin: &str, version: Option<&str>) -> bool {
        match version {
            Some(version) => self.versions.load().get(plugin).is_some_and(|v| v.contains_key(version)),
            None => self.versions.load().contains_key(plugin),
        }
    }
}
