//! The plugin registry (in the database) as one host instance applies it: which versions are loaded here, with
//! which limits, and which version of each plugin is active.
//!
//! Every registry change bumps a revision. An instance applies the registry when the revision differs from the
//! one it applied last: after its own admin calls (synchronously), when another instance announces a change over
//! Redis pub/sub, and on a periodic poll (the fallback for missed messages, and the only path without Redis).
//! Applying is idempotent and serialized per instance, so any number of triggers converge on the same state.
//!
//! Hot swap: activation replaces an `Arc<LoadedPlugin>` in the engine's active map (an `ArcSwap`). An evaluation
//! that already resolved its plugin finishes on that version; every evaluation that resolves afterwards uses the
//! new one. Events are neither dropped nor re-queued by a swap: the pipeline never sees it.
//!
//! Which versions an instance keeps loaded: active ones, rollback targets, validated (not yet activated) ones
//! (so an activation anywhere is only a pointer swap everywhere), and those the challenge configuration pins.
//! Retired versions nobody needs are dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use challenge_core::config::BUILTIN_PLUGIN;
use challenge_plugin_runtime::{ALLOWED_IMPORTS, BUILTIN_RULES_WASM, LoadedPlugin, PluginLimits, RuntimeOptions};
use challenge_storage::{
    InsertOutcome, NewPluginVersion, PluginActivation, PluginRegistry, PluginStatus, PluginVersion, Store,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{RuleEngine, prepare_with};
use crate::settings::Settings;
use crate::state::ActiveConfig;

/// The WIT world every rule plugin implements (checked when a component is loaded), e.g.
/// `challenge:rules/rule-plugin@0.1.0`: the runtime's WIT package version.
pub fn wit_world() -> String {
    let package_version = ALLOWED_IMPORTS.iter().find_map(|import| import.rsplit_once('@')).map_or("?", |(_, v)| v);
    format!("challenge:rules/rule-plugin@{package_version}")
}
/// Who "uploaded" the built-in plugin version the host seeds into the registry.
pub const EMBEDDED_UPLOADER: &str = "host (embedded)";

/// A plugin's limits as stored in the registry and shown by the admin API (camelCase JSON). Missing fields take
/// the runtime's defaults, so older rows stay readable when a limit is added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Limits {
    pub fuel_per_call: u64,
    pub max_memory_bytes: u64,
    pub max_table_elements: u64,
    pub max_instances: u64,
    pub max_input_bytes: u64,
    pub max_output_updates: u64,
    pub max_state_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&PluginLimits::default())
    }
}

impl From<&PluginLimits> for Limits {
    fn from(limits: &PluginLimits) -> Self {
        Limits {
            fuel_per_call: limits.fuel_per_call,
            max_memory_bytes: limits.max_memory_bytes as u64,
            max_table_elements: limits.max_table_elements as u64,
            max_instances: limits.max_instances as u64,
            max_input_bytes: limits.max_input_bytes as u64,
            max_output_updates: limits.max_output_updates as u64,
            max_state_bytes: limits.max_state_bytes as u64,
        }
    }
}

/// Bounds of each limit: lower bounds keep a plugin usable, upper bounds are the runtime's ceilings (a limit above
/// them would be clipped silently, so it is refused instead).
const FUEL_RANGE: (u64, u64) = (10_000, 10_000_000_000);
const INSTANCES_MAX: u64 = 32;

impl Limits {
    /// Parses stored limits (JSON).
    pub fn parse(json: &str) -> Result<Limits, String> {
        serde_json::from_str(json).map_err(|err| format!("invalid plugin limits {json}: {err}"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The runtime's limits, after checking every value is within bounds (the error names the field).
    pub fn to_runtime(&self) -> Result<PluginLimits, String> {
        let caps = RuntimeOptions::default();
        let check = |field: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(usize::try_from(value).unwrap_or(usize::MAX))
            } else {
                Err(format!("{field} must be between {min} and {max} (got {value})"))
            }
        };
        Ok(PluginLimits {
            fuel_per_call: check("fuelPerCall", self.fuel_per_call, FUEL_RANGE.0, FUEL_RANGE.1)? as u64,
            max_memory_bytes: check(
                "maxMemoryBytes",
                self.max_memory_bytes,
                1 << 20,
                caps.max_memory_bytes_per_instance as u64,
            )?,
            max_table_elements: check(
                "maxTableElements",
                self.max_table_elements,
                1,
                caps.max_table_elements_per_instance as u64,
            )?,
            max_instances: check("maxInstances", self.max_instances, 1, INSTANCES_MAX)?,
            max_input_bytes: check("maxInputBytes", self.max_input_bytes, 1 << 10, 64 << 20)?,
            max_output_updates: check("maxOutputUpdates", self.max_output_updates, 1, 1 << 20)?,
            max_state_bytes: check("maxStateBytes", self.max_state_bytes, 0, 1 << 20)?,
        })
    }
}

/// A change to some limits (absent fields keep their value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsPatch {
    pub fuel_per_call: Option<u64>,
    pub max_memory_bytes: Option<u64>,
    pub max_table_elements: Option<u64>,
    pub max_instances: Option<u64>,
    pub max_input_bytes: Option<u64>,
    pub max_output_updates: Option<u64>,
    pub max_state_bytes: Option<u64>,
}

impl LimitsPatch {
    pub fn is_empty(&self) -> bool {
        self == &LimitsPatch::default()
    }

    pub fn apply(&self, base: &Limits) -> Limits {
        Limits {
            fuel_per_call: self.fuel_per_call.unwrap_or(base.fuel_per_call),
            max_memory_bytes: self.max_memory_bytes.unwrap_or(base.max_memory_bytes),
            max_table_elements: self.max_table_elements.unwrap_or(base.max_table_elements),
            max_instances: self.max_instances.unwrap_or(base.max_instances),
            max_input_bytes: self.max_input_bytes.unwrap_or(base.max_input_bytes),
            max_output_updates: self.max_output_updates.unwrap_or(base.max_output_updates),
            max_state_bytes: self.max_state_bytes.unwrap_or(base.max_state_bytes),
        }
    }
}

/// Loaded versions of plugins, and which is active, on this instance.
impl RuleEngine {
    /// Whether a version is loaded here.
    pub fn loaded(&self, plugin: &str, version: &str) -> Option<Arc<LoadedPlugin>> {
        self.resolve(plugin, Some(version))
    }

    /// (name, version, active) of every loaded version, sorted.
    pub fn loaded_versions(&self) -> Vec<(String, String, bool)> {
        let active = self.active.load();
        let mut list: Vec<(String, String, bool)> = self
            .versions
            .load()
            .iter()
            .flat_map(|(name, versions)| {
                let active = active.get(name).map(|plugin| plugin.version().to_owned());
                versions.keys().map(move |version| (name.clone(), version.clone(), active.as_deref() == Some(version)))
            })
            .collect();
        list.sort();
        list
    }

    /// Unloads a version unless it is the active one; calls already running keep their `Arc`.
    fn uninstall(&self, plugin: &str, version: &str) -> bool {
        if self.active.load().get(plugin).is_some_and(|active| active.version() == version) {
            return false;
        }
        self.versions.rcu(|current| {
            let mut next = HashMap::clone(current);
            if let Some(versions) = next.get_mut(plugin) {
                versions.remove(version);
                if versions.is_empty() {
                    next.remove(plugin);
                }
            }
            next
        });
        true
    }
}

/// What the registry holds at one revision.
pub struct Snapshot {
    pub revision: i64,
    pub versions: Vec<PluginVersion>,
    pub activations: Vec<PluginActivation>,
}

/// The registry as applied by this instance, and the lock that serializes changes to the engine's active versions
/// and to the challenge configuration here (admin calls, registry sync, configuration reloads).
pub struct PluginLifecycle {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) rules: Arc<RuleEngine>,
    pub(crate) settings: Arc<Settings>,
    config: OnceLock<Arc<ArcSwap<ActiveConfig>>>,
    redis: OnceLock<fred::prelude::Client>,
    /// Registry revision last applied here.
    applied: AtomicI64,
    /// Versions this instance loaded from the registry (the built-in and `plugin_files` ones are never unloaded).
    managed: Mutex<HashSet<(String, String)>>,
    last_error: Mutex<Option<String>>,
    lock: tokio::sync::Mutex<()>,
}

/// Proof that the caller holds the lifecycle lock.
pub struct Exclusive<'a> {
    pub(crate) lifecycle: &'a PluginLifecycle,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl PluginLifecycle {
    /// Start-up: registers the built-in plugin version in the registry (and activates it if the plugin has no
    /// active version yet), then loads and activates what the registry says, plus the versions `pins` names.
    /// Runs before the challenge configuration is loaded, so goals can use registry plugins.
    pub async fn start_up(
        store: Arc<dyn Store>,
        rules: Arc<RuleEngine>,
        settings: Arc<Settings>,
        pins: &[(String, String)],
    ) -> anyhow::Result<Arc<Self>> {
        let lifecycle = Arc::new(PluginLifecycle {
            store,
            rules,
            settings,
            config: OnceLock::new(),
            redis: OnceLock::new(),
            applied: AtomicI64::new(-1),
            managed: Mutex::new(HashSet::new()),
            last_error: Mutex::new(None),
            lock: tokio::sync::Mutex::new(()),
        });
        lifecycle.seed_builtin().await?;
        let exclusive = lifecycle.exclusive().await;
        let snapshot =
            lifecycle.snapshot().await.map_err(|err| anyhow::anyhow!("reading the plugin registry: {err}"))?;
        let (changes, problems) = exclusive.apply(&snapshot, pins).await;
        for problem in &problems {
            tracing::error!("plugin registry: {problem}");
        }
        for plugin in changes {
            tracing::info!(
                plugin = plugin.name(),
                version = plugin.version(),
                "active plugin version from the registry"
            );
            lifecycle.rules.install(plugin, true);
        }
        if problems.is_empty() {
            lifecycle.applied.store(snapshot.revision, Ordering::SeqCst);
        } else {
            // Left unapplied, so the poll retries (the registry may have been unreachable only briefly).
            lifecycle.record_error(Some(problems.join("; ")));
        }
        drop(exclusive);
        lifecycle.update_gauges();
        Ok(lifecycle)
    }

    /// Once the configuration is loaded: keeps this instance in step with the registry (Redis notifications and
    /// the poll) and reloads the challenge configuration on SIGHUP, until `stopped`.
    pub fn run(
        self: &Arc<Self>,
        config: Arc<ArcSwap<ActiveConfig>>,
        redis: Option<fred::prelude::Client>,
        stopped: watch::Receiver<bool>,
        tasks: &mut JoinSet<anyhow::Result<()>>,
    ) {
        let _ = self.config.set(config);
        if let Some(client) = redis {
            let _ = self.redis.set(client);
        }
        tasks.spawn(self.clone().poll(stopped.clone()));
        if let Some(url) = self.settings.redis_url.clone() {
            tasks.spawn(self.clone().listen(url, stopped.clone()));
        }
        #[cfg(unix)]
        tasks.spawn(self.clone().reload_on_hangup(stopped));
    }

    pub(crate) fn config(&self) -> Option<&Arc<ArcSwap<ActiveConfig>>> {
        self.config.get()
    }

    pub(crate) fn registry(&self) -> &dyn PluginRegistry {
        self.store.registry()
    }

    /// The registry revision this instance applied last.
    pub fn applied_revision(&self) -> i64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Why the last sync failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) async fn exclusive(&self) -> Exclusive<'_> {
        Exclusive { lifecycle: self, _guard: self.lock.lock().await }
    }

    pub(crate) async fn snapshot(&self) -> challenge_storage::Result<Snapshot> {
        let registry = self.registry();
        // The revision first: a change that lands while the rest is read moves it, so the next sync sees it.
        let revision = registry.registry_revision().await?;
        Ok(Snapshot {
            revision,
            versions: registry.plugin_versions(None).await?,
            activations: registry.plugin_activations().await?,
        })
    }

    /// Applies the registry if it changed since the last time. Safe to call from anywhere at any time.
    pub async fn sync(&self) -> Result<(), String> {
        self.exclusive().await.sync().await
    }

    /// Tells the other instances that the registry changed (best effort: their poll catches up otherwise).
    pub(crate) async fn announce(&self) {
        use fred::prelude::PubsubInterface;
        let Some(client) = self.redis.get() else { return };
        let revision = self.applied_revision();
        if let Err(err) = client.publish::<i64, _, _>(self.settings.plugins.notify_channel.as_str(), revision).await {
            tracing::warn!(error = %err, "could not announce the plugin registry change; other instances will poll");
        }
    }

    /// Adds the embedded built-in version to the registry once, and makes it active if nothing else is: an
    /// uploaded `builtin-rules` version activated later replaces it, and a rollback can return to it.
    async fn seed_builtin(&self) -> anyhow::Result<()> {
        let Some(builtin) = self.rules.resolve(BUILTIN_PLUGIN, None) else {
            anyhow::bail!("the built-in rules plugin is not loaded");
        };
        let registry = self.registry();
        let sha256 = builtin.sha256_hex();
        let limits = Limits::from(&builtin.limits()).to_json();
        let wit_world = wit_world();
        let now = chrono::Utc::now();
        let new = NewPluginVersion {
            name: builtin.name(),
            version: builtin.version(),
            sha256: &sha256,
            component: BUILTIN_RULES_WASM,
            wit_world: &wit_world,
            description: &builtin.info().description,
            limits: &limits,
            status: PluginStatus::Validated,
            uploaded_by: EMBEDDED_UPLOADER,
            uploaded_at: now,
        };
        let seeded = async {
            if let InsertOutcome::Conflict(stored) = registry.insert_plugin_version(&new).await? {
                tracing::warn!(
                    version = builtin.version(),
                    stored_sha256 = %stored.sha256,
                    embedded_sha256 = %sha256,
                    "the registry holds other bytes for the built-in plugin version; this host uses its embedded copy"
                );
            }
            registry.activate_if_unset(builtin.name(), builtin.version(), EMBEDDED_UPLOADER, now).await
        };
        seeded.await.map_err(|err| anyhow::anyhow!("registering the built-in plugin in the registry: {err}"))?;
        Ok(())
    }

    fn record_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = error;
    }

    fn update_gauges(&self) {
        for (name, version, active) in self.rules.loaded_versions() {
            metrics::gauge!("plugin_active", "plugin" => name, "version" => version).set(if active {
                1.0
            } else {
                0.0
            });
        }
        metrics::gauge!("plugin_registry_revision").set(self.applied_revision() as f64);
    }

    async fn poll(self: Arc<Self>, mut stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut interval = tokio::time::interval(Duration::from_millis(self.settings.plugins.poll_interval_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop_requested(&mut stopped) => return Ok(()),
                _ = interval.tick() => self.sync_logged("poll").await,
            }
        }
    }

    /// Follows the registry channel on a connection of its own (a subscribed connection serves nothing else).
    async fn listen(self: Arc<Self>, url: String, mut stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
        use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
        let client = crate::redis::connect(&url).await?;
        let channel = self.settings.plugins.notify_channel.clone();
        let mut messages = client.message_rx();
        let mut reconnects = client.reconnect_rx();
        if let Err(err) = client.subscribe(channel.as_str()).await {
            tracing::warn!(error = %err, "could not subscribe to plugin registry changes; relying on the poll");
        }
        loop {
            tokio::select! {
                () = stop_requested(&mut stopped) => break,
                message = messages.recv() => match message {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        self.sync_logged("notification").await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                reconnected = reconnects.recv() => {
                    if reconnected.is_err() {
                        break;
                    }
                    // Subscriptions do not survive a reconnect, and messages sent meanwhile are lost.
                    if let Err(err) = client.subscribe(channel.as_str()).await {
                        tracing::warn!(error = %err, "could not re-subscribe to plugin registry changes");
                    }
                    self.sync_logged("reconnect").await;
                }
            }
        }
        let _ = client.quit().await;
        Ok(())
    }

    async fn sync_logged(&self, trigger: &'static str) {
        if let Err(err) = self.sync().await {
            tracing::warn!(trigger, error = %err, "plugin registry sync failed; will retry");
        }
    }

    #[cfg(unix)]
    async fn reload_on_hangup(self: Arc<Self>, mut stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; reload through the admin API instead");
                return Ok(());
            }
        };
        loop {
            tokio::select! {
                () = stop_requested(&mut stopped) => return Ok(()),
                received = hangup.recv() => {
                    if received.is_none() {
                        return Ok(());
                    }
                    tracing::info!("SIGHUP: reloading the challenge configuration");
                    if let Err(err) = self.reload_config().await {
                        tracing::error!("configuration reload refused, the previous configuration stays: {err}");
                    }
                }
            }
        }
    }

    /// Re-reads the challenge definitions (the configured file, or the built-in sample), validates them against
    /// the loaded plugins, and swaps them in atomically. A bad file changes nothing; the error lists every problem.
    pub async fn reload_config(&self) -> Result<Arc<ActiveConfig>, String> {
        let exclusive = self.exclusive().await;
        let source = crate::server::challenge_source(&self.settings);
        // Versions the new file pins must be loaded before it can be validated.
        let pins = source_pins(&source)?;
        exclusive.load_pins(&pins).await?;
        let rules = self.rules.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::server::load_catalog_from(&rules, source))
            .await
            .map_err(|err| format!("configuration reload failed: {err}"))??;
        let loaded = Arc::new(loaded);
        if let Some(config) = self.config.get() {
            config.store(loaded.clone());
        }
        tracing::info!(
            version = loaded.catalog.version(),
            challenges = loaded.catalog.challenges().len(),
            "challenge configuration reloaded"
        );
        metrics::counter!("config_reloads_total").increment(1);
        Ok(loaded)
    }
}

impl Exclusive<'_> {
    /// Applies the registry if its revision moved: loads and unloads versions, applies limits, and swaps active
    /// versions after checking the challenge configuration accepts them (all swaps of one sync, or none).
    pub(crate) async fn sync(&self) -> Result<(), String> {
        let lifecycle = self.lifecycle;
        let revision = lifecycle.registry().registry_revision().await.map_err(|err| err.to_string())?;
        if revision == lifecycle.applied_revision() {
            metrics::counter!("plugin_registry_syncs_total", "outcome" => "unchanged").increment(1);
            return Ok(());
        }
        let outcome = self.apply_snapshot().await;
        let label = if outcome.is_ok() { "applied" } else { "failed" };
        metrics::counter!("plugin_registry_syncs_total", "outcome" => label).increment(1);
        lifecycle.record_error(outcome.as_ref().err().cloned());
        lifecycle.update_gauges();
        outcome
    }

    async fn apply_snapshot(&self) -> Result<(), String> {
        let lifecycle = self.lifecycle;
        let snapshot = lifecycle.snapshot().await.map_err(|err| err.to_string())?;
        let pins = lifecycle.config().map(|config| configured_pins(&config.load())).unwrap_or_default();
        let (changes, problems) = self.apply(&snapshot, &pins).await;
        if !changes.is_empty() {
            self.swap_in(changes).await?;
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        lifecycle.applied.store(snapshot.revision, Ordering::SeqCst);
        Ok(())
    }

    /// Makes `plugins` active together with the configuration re-checked against them, or changes nothing.
    pub(crate) async fn swap_in(&self, plugins: Vec<Arc<LoadedPlugin>>) -> Result<(), String> {
        let lifecycle = self.lifecycle;
        let checked = match lifecycle.config() {
            Some(config) => Some((config, self.check_config(&plugins).await?)),
            None => None,
        };
        for plugin in plugins {
            tracing::info!(plugin = plugin.name(), version = plugin.version(), "plugin version activated");
            metrics::counter!("plugin_swaps_total", "plugin" => plugin.name().to_owned()).increment(1);
            lifecycle.rules.install(plugin, true);
        }
        if let Some((config, prepared)) = checked {
            config.store(Arc::new(prepared));
        }
        Ok(())
    }

    /// The current challenge configuration re-prepared as if `plugins` were active: every goal that would use
    /// them must pass their `validate-params`. The error lists the goals they reject.
    pub(crate) async fn check_config(&self, plugins: &[Arc<LoadedPlugin>]) -> Result<ActiveConfig, String> {
        let lifecycle = self.lifecycle;
        let Some(config) = lifecycle.config() else {
            return Err("the challenge configuration is not loaded yet".to_owned());
        };
        let catalog = config.load().catalog.clone();
        let overrides: HashMap<String, Arc<LoadedPlugin>> =
            plugins.iter().map(|plugin| (plugin.name().to_owned(), plugin.clone())).collect();
        let rules = lifecycle.rules.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            prepare_with(catalog, &|name, pinned| match (pinned, overrides.get(name)) {
                (None, Some(plugin)) => Some(plugin.clone()),
                _ => rules.resolve(name, pinned),
            })
        })
        .await
        .map_err(|err| format!("checking the configuration failed: {err}"))??;
        Ok(ActiveConfig { catalog: prepared.0, rules: prepared.1 })
    }

    /// Loads what `snapshot` needs here, applies its limits, unloads what it no longer needs, and returns the
    /// versions to activate (those whose active version differs from the engine's) plus the problems met.
    async fn apply(&self, snapshot: &Snapshot, pins: &[(String, String)]) -> (Vec<Arc<LoadedPlugin>>, Vec<String>) {
        let lifecycle = self.lifecycle;
        let rules = &lifecycle.rules;
        let mut problems = Vec::new();
        let mut ready: HashSet<(String, String)> = snapshot
            .versions
            .iter()
            .filter(|v| matches!(v.status, PluginStatus::Validated | PluginStatus::Active))
            .map(|v| (v.name.clone(), v.version.clone()))
            .collect();
        for activation in &snapshot.activations {
            ready.insert((activation.name.clone(), activation.active_version.clone()));
            if let Some(previous) = &activation.previous_version {
                ready.insert((activation.name.clone(), previous.clone()));
            }
        }
        ready.extend(pins.iter().cloned());

        for row in snapshot.versions.iter().filter(|v| ready.contains(&(v.name.clone(), v.version.clone()))) {
            let limits = match Limits::parse(&row.limits).and_then(|limits| limits.to_runtime()) {
                Ok(limits) => limits,
                Err(err) => {
                    problems.push(format!("{}@{}: {err}", row.name, row.version));
                    continue;
                }
            };
            match rules.loaded(&row.name, &row.version) {
                Some(plugin) => {
                    if plugin.limits() != limits {
                        tracing::info!(plugin = %row.name, version = %row.version, ?limits, "plugin limits changed");
                        plugin.set_limits(limits);
                    }
                }
                None => match self.load(row, limits).await {
                    Ok(plugin) => {
                        rules.install(plugin, false);
                        self.manage(&row.name, &row.version, true);
                    }
                    Err(err) => problems.push(err),
                },
            }
        }

        let managed: Vec<(String, String)> =
            lifecycle.managed.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect();
        for (name, version) in managed {
            if !ready.contains(&(name.clone(), version.clone())) && rules.uninstall(&name, &version) {
                tracing::info!(plugin = %name, version = %version, "plugin version unloaded");
                self.manage(&name, &version, false);
            }
        }

        let mut changes = Vec::new();
        for activation in &snapshot.activations {
            let wanted = rules.loaded(&activation.name, &activation.active_version);
            let current = rules.resolve(&activation.name, None);
            match (wanted, current) {
                (None, _) => problems.push(format!(
                    "{}@{} is active in the registry but could not be loaded here",
                    activation.name, activation.active_version
                )),
                (Some(wanted), Some(current)) if Arc::ptr_eq(&wanted, &current) => {}
                (Some(wanted), _) => changes.push(wanted),
            }
        }
        (changes, problems)
    }

    /// Loads versions the configuration pins that are in the registry but not loaded here.
    async fn load_pins(&self, pins: &[(String, String)]) -> Result<(), String> {
        for (name, version) in pins {
            if self.lifecycle.rules.loaded(name, version).is_some() {
                continue;
            }
            let Some(row) = self.lifecycle.registry().plugin_version(name, version).await.map_err(|e| e.to_string())?
            else {
                continue; // The configuration check reports the unknown version.
            };
            let limits = Limits::parse(&row.limits).and_then(|limits| limits.to_runtime())?;
            let plugin = self.load(&row, limits).await?;
            self.lifecycle.rules.install(plugin, false);
            self.manage(name, version, true);
        }
        Ok(())
    }

    /// Loads a stored version (compiling it, or taking it from the compiled-component cache).
    pub(crate) async fn load(&self, row: &PluginVersion, limits: PluginLimits) -> Result<Arc<LoadedPlugin>, String> {
        let registry = self.lifecycle.registry();
        let bytes = registry
            .plugin_component(&row.name, &row.version)
            .await
            .map_err(|err| err.to_string())?
            .ok_or_else(|| format!("{}@{} disappeared from the registry", row.name, row.version))?;
        let rules = self.lifecycle.rules.clone();
        let plugin = tokio::task::spawn_blocking(move || rules.runtime().load(&bytes, limits))
            .await
            .map_err(|err| format!("loading {}@{} failed: {err}", row.name, row.version))?
            .map_err(|err| format!("{}@{} cannot be loaded: {err}", row.name, row.version))?;
        if plugin.name() != row.name || plugin.version() != row.version {
            return Err(format!(
                "{}@{} describes itself as {}@{}",
                row.name,
                row.version,
                plugin.name(),
                plugin.version()
            ));
        }
        tracing::info!(plugin = %row.name, version = %row.version, "plugin version loaded from the registry");
        Ok(plugin)
    }

    /// Records that this instance loaded (or unloaded) a registry version.
    pub(crate) fn manage(&self, name: &str, version: &str, loaded: bool) {
        let mut managed = self.lifecycle.managed.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (name.to_owned(), version.to_owned());
        if loaded {
            managed.insert(key);
        } else {
            managed.remove(&key);
        }
    }
}

/// (plugin, version) of every goal that pins a version in the active configuration.
pub fn configured_pins(config: &ActiveConfig) -> Vec<(String, String)> {
    let mut pins: Vec<(String, String)> = config
        .catalog
        .goals()
        .filter_map(|goal| {
            let rule = goal.rule.as_ref()?;
            Some((rule.plugin.clone(), rule.version.clone()?))
        })
        .collect();
    pins.sort();
    pins.dedup();
    pins
}

/// Resolves once the server is stopping (the watch guard is not held across the caller's awaits).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// The versions a challenge source pins (see [`pinned_versions`]).
pub(crate) fn source_pins(source: &crate::server::ChallengeSource) -> Result<Vec<(String, String)>, String> {
    use crate::server::ChallengeSource;
    match source {
        ChallengeSource::File(path) => std::fs::read(path)
            .map(|bytes| pinned_versions(&bytes))
            .map_err(|err| format!("cannot read {}: {err}", path.display())),
        ChallengeSource::BuiltInSample => Ok(pinned_versions(crate::server::SAMPLE_CHALLENGES.as_bytes())),
    }
}

/// (plugin, version) pairs that a challenges file pins (`challenges[].goals[].rule.{plugin,version}`), read
/// leniently: the file is validated properly afterwards.
pub fn pinned_versions(bytes: &[u8]) -> Vec<(String, String)> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
    else {
        return Vec::new();
    };
    let goals =
        doc["challenges"].as_array().into_iter().flatten().flat_map(|c| c["goals"].as_array().into_iter().flatten());
    let mut pins: Vec<(String, String)> = goals
        .filter_map(|goal| {
            let rule = &goal["rule"];
            Some((rule["plugin"].as_str()?.to_owned(), rule["version"].as_str()?.to_owned()))
        })
        .collect();
    pins.sort();
    pins.dedup();
    pins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_round_trip_and_patch() {
        let limits = Limits::default();
        assert_eq!(Limits::parse(&limits.to_json()).unwrap(), limits);
        assert_eq!(limits.to_runtime().unwrap(), PluginLimits::default());
        // Missing fields take the defaults; unknown ones are refused.
        assert_eq!(Limits::parse(r#"{"fuelPerCall": 123456}"#).unwrap().max_instances, limits.max_instances);
        assert!(Limits::parse(r#"{"fuel": 1}"#).is_err());
        let patched = LimitsPatch { fuel_per_call: Some(50_000), ..Default::default() }.apply(&limits);
        assert_eq!(patched.fuel_per_call, 50_000);
        assert_eq!(patched.max_memory_bytes, limits.max_memory_bytes);
        let too_big = LimitsPatch { max_memory_bytes: Some(1 << 40), ..Default::default() }.apply(&limits);
        assert!(too_big.to_runtime().unwrap_err().contains("maxMemoryBytes"));
    }

    #[test]
    fn pins_are_read_from_the_raw_file() {
        let file = br#"{"challenges": [{"goals": [
            {"goalId": "a", "rule": {"plugin": "streak", "version": "1.0.0"}},
            {"goalId": "b", "rule": {"plugin": "streak"}},
            {"goalId": "c"}
        ]}]}"#;
        assert_eq!(pinned_versions(file), vec![("streak".to_owned(), "1.0.0".to_owned())]);
        assert!(pinned_versions(b"not json").is_empty());
    }
}
