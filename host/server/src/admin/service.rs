//! The admin operations on rule plugins and the challenge configuration, independent of the transport: REST and
//! gRPC authenticate the caller and then call these. Registry changes are applied on this instance before the
//! call returns, then announced to the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use challenge_core::config::BUILTIN_PLUGIN;
use challenge_plugin_runtime::{
    ALLOWED_IMPORTS, EvaluationRequest, Event, EventKind, GoalInput, GoalSpec, GoalState, GoalStatus, LoadedPlugin,
    PluginError, PluginLimits, ProgressMode,
};
use challenge_storage::{
    ActivationOutcome, DeleteOutcome, InsertOutcome, NewPluginVersion, PluginActivation, PluginStatus, PluginVersion,
    RollbackOutcome,
};
use serde::{Deserialize, Serialize};

use super::metrics::{VersionMetrics, plugin_metrics};
use super::samples::{self, Outcome, SampleEvent, SampleGoal};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorKind};
use crate::rules::registry::{EMBEDDED_UPLOADER, Exclusive, Limits, LimitsPatch, PluginLifecycle, wit_world};
use crate::state::{ActiveConfig, AppState};

/// Most goals and events in one dry run.
const MAX_DRY_RUN_GOALS: usize = 1_000;
const MAX_DRY_RUN_EVENTS: usize = 10_000;
/// Most configured goals a smoke evaluation includes.
const MAX_SMOKE_GOALS: usize = 256;
/// The user id of smoke evaluations.
pub const SMOKE_USER: &str = "smoke-test";

/// A stored plugin version as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub wit_world: String,
    pub description: String,
    /// `uploaded`, `validated`, `active` or `retired`.
    pub status: String,
    pub uploaded_by: String,
    pub uploaded_at: String,
    pub limits: Limits,
    /// Whether this instance has the version loaded (ready to evaluate).
    pub loaded: bool,
    /// Goal kinds and params schema, as the plugin describes itself (when loaded here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params_schema: Option<String>,
}

/// A plugin: its activation and stored versions.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    pub name: String,
    /// The active version in the registry.
    pub active_version: Option<String>,
    /// What a rollback returns to.
    pub previous_version: Option<String>,
    pub activated_by: Option<String>,
    pub activated_at: Option<String>,
    /// The version evaluations on this instance use right now (equal to `activeVersion` once applied).
    pub serving_version: Option<String>,
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryView {
    /// The registry's revision, and the one this instance has applied.
    pub registry_revision: i64,
    pub applied_revision: i64,
    /// Why this instance could not apply the registry last time, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_error: Option<String>,
    pub plugins: Vec<PluginView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationView {
    pub name: String,
    pub active_version: String,
    pub previous_version: Option<String>,
    pub activated_by: String,
    pub activated_at: String,
    /// False when the version was active already.
    pub changed: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitsView {
    pub name: String,
    pub limits: Limits,
    pub versions_updated: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigView {
    pub version: String,
    pub challenges: usize,
    pub goals: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRunView {
    pub plugin: String,
    pub version: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsView {
    pub plugin: String,
    /// The version evaluations on this instance use.
    pub active_version: Option<String>,
    pub versions: Vec<VersionMetrics>,
}

/// Sample goals and events for a dry run (see [`super::samples`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DryRunRequest {
    pub user_id: Option<String>,
    pub goals: Vec<SampleGoal>,
    pub events: Vec<SampleEvent>,
}

fn rejected(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Unprocessable, code, message)
}

fn storage(err: challenge_storage::StorageError) -> ApiError {
    ApiError::from(err)
}

fn version_not_found(name: &str, version: &str) -> ApiError {
    ApiError::not_found("VERSION_NOT_FOUND", format!("plugin {name} has no version {version}"))
}

fn plugin_not_found(name: &str) -> ApiError {
    ApiError::not_found("PLUGIN_NOT_FOUND", format!("no plugin named '{name}' is registered"))
}

/// A change that reached the registry but could not be applied here (the poll retries it).
fn not_applied(err: String) -> ApiError {
    ApiError::new(ErrorKind::Internal, "NOT_APPLIED", format!("stored in the registry, but not applied here: {err}"))
}

/// Plugin names and versions end up in URLs, metric labels and logs: keep them plain.
fn check_identifier(what: &str, value: &str) -> Result<(), ApiError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+');
    if value.is_empty()
        || value.len() > 64
        || !value.chars().all(plain)
        || !value.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(rejected(
            "INVALID_PLUGIN_INFO",
            format!(
                "the plugin's {what} '{value}' must be 1 to 64 letters, digits, '.', '_', '-' or '+', \
                 starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

fn version_view(row: &PluginVersion, loaded: Option<&Arc<LoadedPlugin>>) -> VersionView {
    VersionView {
        name: row.name.clone(),
        version: row.version.clone(),
        sha256: row.sha256.clone(),
        size_bytes: row.size_bytes,
        wit_world: row.wit_world.clone(),
        description: row.description.clone(),
        status: row.status.to_string(),
        uploaded_by: row.uploaded_by.clone(),
        uploaded_at: row.uploaded_at.to_rfc3339(),
        limits: Limits::parse(&row.limits).unwrap_or_default(),
        loaded: loaded.is_some(),
        kinds: loaded.map(|plugin| plugin.info().kinds.clone()),
        params_schema: loaded.map(|plugin| plugin.info().params_schema.clone()),
    }
}

fn activation_view(activation: PluginActivation, changed: bool) -> ActivationView {
    ActivationView {
        name: activation.name,
        active_version: activation.active_version,
        previous_version: activation.previous_version,
        activated_by: activation.activated_by,
        activated_at: activation.activated_at.to_rfc3339(),
        changed,
    }
}

fn config_view(config: &ActiveConfig) -> ConfigView {
    ConfigView {
        version: config.catalog.version().to_owned(),
        challenges: config.catalog.challenges().len(),
        goals: config.catalog.goal_count(),
    }
}

/// Goals of the active configuration that would use `name@version`: those naming the plugin without a version
/// (once it is active) and those pinning this version. With their challenge, for messages.
fn goals_using(config: &ActiveConfig, name: &str, version: &str) -> Vec<(String, String, GoalSpec)> {
    config
        .catalog
        .goals()
        .filter(|goal| {
            goal.rule_plugin() == name
                && goal.rule.as_ref().and_then(|rule| rule.version.as_deref()).is_none_or(|pinned| pinned == version)
        })
        .filter_map(|goal| {
            let rule = config.rules.rule(&goal.id)?;
            Some((goal.id.clone(), goal.challenge_id.clone(), GoalSpec::clone(&rule.spec)))
        })
        .collect()
}

/// The version whose limits stand for the plugin's: the active one, else the newest.
fn reference_version(versions: &[PluginVersion]) -> Option<&PluginVersion> {
    versions.iter().find(|v| v.status == PluginStatus::Active).or(versions.last())
}

/// The limits a new version of `name` starts with: those of the plugin's active version (so a raised budget
/// survives an upgrade), else of its newest version, else the defaults.
async fn inherited_limits(lifecycle: &PluginLifecycle, name: &str) -> Result<Limits, ApiError> {
    let versions = lifecycle.registry().plugin_versions(Some(name)).await.map_err(storage)?;
    Ok(reference_version(&versions).and_then(|row| Limits::parse(&row.limits).ok()).unwrap_or_default())
}

/// Upload: checks the bytes are a rules component importing only what the world allows, stores the version as
/// `uploaded`, checks the params of every configured goal that would use it and a smoke evaluation within its
/// limits, then marks it `validated` and loads it on every instance (not active). A rejected upload stores
/// nothing. Uploading a version that exists with the same bytes returns it unchanged (`created` false).
pub async fn upload(
    state: &AppState,
    admin: &Admin,
    bytes: Vec<u8>,
    patch: &LimitsPatch,
) -> Result<(VersionView, bool), ApiError> {
    let lifecycle = &state.plugins;
    let max = lifecycle.settings.plugins.max_upload_bytes;
    if bytes.is_empty() {
        return Err(ApiError::invalid("EMPTY_UPLOAD", "send the component's bytes as the request body"));
    }
    if bytes.len() > max {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            "COMPONENT_TOO_LARGE",
            format!("the component is {} bytes; the limit is {max} bytes (plugins.max_upload_bytes)", bytes.len()),
        ));
    }
    let rules = lifecycle.rules.clone();
    let (plugin, bytes) = tokio::task::spawn_blocking(move || check_component(&rules, bytes))
        .await
        .map_err(|err| ApiError::internal(format!("component check failed: {err}")))??;
    let (name, version) = (plugin.name().to_owned(), plugin.version().to_owned());
    check_identifier("name", &name)?;
    check_identifier("version", &version)?;

    let limits = patch.apply(&inherited_limits(lifecycle, &name).await?);
    let runtime_limits = limits.to_runtime().map_err(|err| ApiError::invalid("INVALID_LIMITS", err))?;
    plugin.set_limits(runtime_limits);

    let registry = lifecycle.registry();
    let sha256 = plugin.sha256_hex();
    let limits_json = limits.to_json();
    let wit_world = wit_world();
    let new = NewPluginVersion {
        name: &name,
        version: &version,
        sha256: &sha256,
        component: &bytes,
        wit_world: &wit_world,
        description: &plugin.info().description,
        limits: &limits_json,
        status: PluginStatus::Uploaded,
        uploaded_by: &admin.subject,
        uploaded_at: chrono::Utc::now(),
    };
    match registry.insert_plugin_version(&new).await.map_err(storage)? {
        InsertOutcome::Existing(row) if row.status != PluginStatus::Uploaded => {
            let loaded = lifecycle.rules.loaded(&name, &version);
            return Ok((version_view(&row, loaded.as_ref()), false));
        }
        // Inserted now, or left `uploaded` by a validation that never finished: validate.
        InsertOutcome::Existing(_) | InsertOutcome::Inserted(_) => {}
        InsertOutcome::Conflict(row) => {
            return Err(ApiError::conflict(
                "VERSION_EXISTS",
                format!(
                    "{name}@{version} is already stored with other content (sha256 {}); versions are immutable, \
                     so give the new build another version in describe()",
                    row.sha256
                ),
            ));
        }
    }

    if let Err(err) = validate_for_configuration(lifecycle, &plugin).await {
        if let Err(cleanup) = registry.delete_plugin_version(&name, &version).await {
            tracing::warn!(plugin = %name, version = %version, error = %cleanup, "could not remove a rejected upload");
        }
        metrics::counter!("plugin_uploads_total", "outcome" => "rejected").increment(1);
        return Err(err);
    }
    registry.mark_plugin_validated(&name, &version).await.map_err(storage)?;
    metrics::counter!("plugin_uploads_total", "outcome" => "validated").increment(1);
    tracing::info!(plugin = %name, version = %version, by = %admin.subject, %sha256, "plugin version uploaded");

    let exclusive = lifecycle.exclusive().await;
    if lifecycle.rules.loaded(&name, &version).is_none() {
        lifecycle.rules.install(plugin, false);
        exclusive.manage(&name, &version, true);
    }
    if let Err(err) = exclusive.sync().await {
        tracing::warn!(error = %err, "registry sync after an upload failed; will retry");
    }
    drop(exclusive);
    lifecycle.announce().await;
    let row = registry
        .plugin_version(&name, &version)
        .await
        .map_err(storage)?
        .ok_or_else(|| version_not_found(&name, &version))?;
    let loaded = lifecycle.rules.loaded(&name, &version);
    Ok((version_view(&row, loaded.as_ref()), true))
}

/// Compiles the bytes and checks they are a rule plugin component; returns it loaded with default limits.
fn check_component(rules: &crate::rules::RuleEngine, bytes: Vec<u8>) -> Result<(Arc<LoadedPlugin>, Vec<u8>), ApiError> {
    let runtime = rules.runtime();
    let imports = runtime.inspect_imports(&bytes).map_err(|err| {
        rejected("NOT_A_COMPONENT", format!("the upload is not a usable WebAssembly component: {}", message(&err)))
    })?;
    let forbidden: Vec<&str> =
        imports.iter().map(String::as_str).filter(|import| !ALLOWED_IMPORTS.contains(import)).collect();
    if !forbidden.is_empty() {
        return Err(rejected(
            "FORBIDDEN_IMPORTS",
            format!(
                "the component imports {}; a rule plugin may import only {} (build it without std/WASI)",
                forbidden.join(", "),
                ALLOWED_IMPORTS.join(", ")
            ),
        ));
    }
    let plugin = runtime.load(&bytes, PluginLimits::default()).map_err(|err| match err {
        PluginError::InvalidComponent(detail) => rejected(
            "NOT_RULES_WORLD",
            format!("the component does not implement the rules world {}: {detail}", wit_world()),
        ),
        other => ApiError::unavailable("PLUGIN_RUNTIME_BUSY", format!("the plugin could not be started: {other}")),
    })?;
    Ok((plugin, bytes))
}

/// The runtime's message without its "invalid plugin component:" prefix.
fn message(err: &PluginError) -> String {
    match err {
        PluginError::InvalidComponent(detail) => detail.clone(),
        other => other.to_string(),
    }
}

/// The checks that depend on this deployment: every configured goal that would use the plugin passes its
/// `validate-params`, and a smoke evaluation of those goals (or, with none, of one sample goal per kind it
/// declares) succeeds within the plugin's limits.
async fn validate_for_configuration(lifecycle: &PluginLifecycle, plugin: &Arc<LoadedPlugin>) -> Result<(), ApiError> {
    let goals = match lifecycle.config() {
        Some(config) => goals_using(&config.load(), plugin.name(), plugin.version()),
        None => Vec::new(),
    };
    let plugin = plugin.clone();
    tokio::task::spawn_blocking(move || {
        let mut problems = Vec::new();
        for (goal_id, challenge_id, spec) in &goals {
            if let Err(err) = plugin.validate_params(spec) {
                problems.push(format!("goal '{goal_id}' in challenge '{challenge_id}': {err}"));
            }
        }
        if !problems.is_empty() {
            return Err(rejected(
                "PARAMS_REJECTED",
                format!(
                    "{}@{} rejects the params of {} configured goal(s) that would use it: {}",
                    plugin.name(),
                    plugin.version(),
                    problems.len(),
                    problems.join("; ")
                ),
            ));
        }
        let specs: Vec<GoalSpec> = goals.into_iter().map(|(_, _, spec)| spec).collect();
        smoke_test(&plugin, specs).map_err(|err| {
            let limits = plugin.limits();
            rejected(
                "SMOKE_TEST_FAILED",
                format!(
                    "the smoke evaluation failed within the plugin's limits ({} fuel per call, {} bytes of \
                     memory): {err}",
                    limits.fuel_per_call, limits.max_memory_bytes
                ),
            )
        })
    })
    .await
    .map_err(|err| ApiError::internal(format!("validation task failed: {err}")))?
}

/// One evaluate call with a login and two statistic events per stat code against not-started goals.
pub fn smoke_test(plugin: &LoadedPlugin, configured: Vec<GoalSpec>) -> Result<(), PluginError> {
    let mut goals: Vec<GoalSpec> = configured.into_iter().take(MAX_SMOKE_GOALS).collect();
    if goals.is_empty() {
        goals = plugin
            .info()
            .kinds
            .iter()
            .map(|kind| GoalSpec {
                goal_id: format!("smoke-{kind}"),
                kind: kind.clone(),
                stat_code: "smoke".to_owned(),
                target: 2,
                progress_mode: ProgressMode::Absolute,
                daily: false,
                params: "{}".to_owned(),
            })
            .filter(|spec| plugin.validate_params(spec).is_ok())
            .collect();
    }
    let mut codes: Vec<&str> = goals.iter().map(|goal| goal.stat_code.as_str()).collect();
    codes.push("smoke");
    codes.sort_unstable();
    codes.dedup();
    let mut events = Vec::new();
    for code in codes {
        let base = 1_704_067_200_000;
        events.push(smoke_event(code, EventKind::Login, 0.0, 1, base));
        events.push(smoke_event(code, EventKind::Statistic, 1.0, 2, base + 1_000));
        events.push(smoke_event(code, EventKind::Statistic, 2.0, 3, base + 86_400_000));
    }
    let not_started =
        GoalState { progress: 0, status: GoalStatus::NotStarted, completed_at_ms: None, baseline: None, state: None };
    let request = EvaluationRequest {
        user_id: SMOKE_USER.to_owned(),
        events,
        goals: goals.into_iter().map(|spec| GoalInput { spec: spec.into(), state: not_started.clone() }).collect(),
    };
    plugin.evaluate(&request).map(|_| ())
}

fn smoke_event(code: &str, kind: EventKind, value: f64, sequence: i64, timestamp_ms: i64) -> Event {
    Event {
        id: format!("smoke-{code}-{sequence}"),
        kind,
        stat_code: code.to_owned(),
        value,
        increment: 1.0,
        sequence,
        timestamp_ms,
    }
}

/// Every plugin in the registry with its versions.
pub async fn list(state: &AppState, name: Option<&str>) -> Result<RegistryView, ApiError> {
    let lifecycle = &state.plugins;
    let registry = lifecycle.registry();
    let revision = registry.registry_revision().await.map_err(storage)?;
    let versions = registry.plugin_versions(name).await.map_err(storage)?;
    let activations = registry.plugin_activations().await.map_err(storage)?;
    let mut plugins: BTreeMap<String, PluginView> = BTreeMap::new();
    for row in &versions {
        let view = plugins.entry(row.name.clone()).or_insert_with(|| {
            let activation = activations.iter().find(|a| a.name == row.name);
            PluginView {
                name: row.name.clone(),
                active_version: activation.map(|a| a.active_version.clone()),
                previous_version: activation.and_then(|a| a.previous_version.clone()),
                activated_by: activation.map(|a| a.activated_by.clone()),
                activated_at: activation.map(|a| a.activated_at.to_rfc3339()),
                serving_version: lifecycle.rules.resolve(&row.name, None).map(|p| p.version().to_owned()),
                versions: Vec::new(),
            }
        });
        view.versions.push(version_view(row, lifecycle.rules.loaded(&row.name, &row.version).as_ref()));
    }
    Ok(RegistryView {
        registry_revision: revision,
        applied_revision: lifecycle.applied_revision(),
        sync_error: lifecycle.last_error(),
        plugins: plugins.into_values().collect(),
    })
}

pub async fn plugin(state: &AppState, name: &str) -> Result<PluginView, ApiError> {
    list(state, Some(name)).await?.plugins.into_iter().next().ok_or_else(|| plugin_not_found(name))
}

pub async fn show(state: &AppState, name: &str, version: &str) -> Result<VersionView, ApiError> {
    let lifecycle = &state.plugins;
    let row = lifecycle.registry().plugin_version(name, version).await.map_err(storage)?;
    let row = row.ok_or_else(|| version_not_found(name, version))?;
    Ok(version_view(&row, lifecycle.rules.loaded(name, version).as_ref()))
}

/// A stored version, loaded here (it is, unless it is retired and unused), for activation or rollback.
async fn ready_version(exclusive: &Exclusive<'_>, row: &PluginVersion) -> Result<Arc<LoadedPlugin>, ApiError> {
    let lifecycle = exclusive.lifecycle;
    if let Some(plugin) = lifecycle.rules.loaded(&row.name, &row.version) {
        return Ok(plugin);
    }
    let limits = Limits::parse(&row.limits).and_then(|limits| limits.to_runtime()).map_err(ApiError::internal)?;
    let plugin = exclusive.load(row, limits).await.map_err(|err| rejected("NOT_LOADABLE", err))?;
    lifecycle.rules.install(plugin.clone(), false);
    exclusive.manage(&row.name, &row.version, true);
    Ok(plugin)
}

/// Makes a version active on every instance, after checking the configured goals that would use it accept it.
pub async fn activate(state: &AppState, admin: &Admin, name: &str, version: &str) -> Result<ActivationView, ApiError> {
    let lifecycle = &state.plugins;
    let registry = lifecycle.registry();
    let exclusive = lifecycle.exclusive().await;
    let row = registry.plugin_version(name, version).await.map_err(storage)?;
    let row = row.ok_or_else(|| version_not_found(name, version))?;
    if row.status == PluginStatus::Uploaded {
        return Err(not_validated(name, version));
    }
    let plugin = ready_version(&exclusive, &row).await?;
    check_swap(&exclusive, &plugin).await?;
    let view = match registry.activate_plugin_version(name, version, &admin.subject, chrono::Utc::now()).await {
        Ok(ActivationOutcome::Activated(activation)) => activation_view(activation, true),
        Ok(ActivationOutcome::AlreadyActive(activation)) => activation_view(activation, false),
        Ok(ActivationOutcome::NotFound) => return Err(version_not_found(name, version)),
        Ok(ActivationOutcome::NotValidated) => return Err(not_validated(name, version)),
        Err(err) => return Err(storage(err)),
    };
    exclusive.sync().await.map_err(not_applied)?;
    drop(exclusive);
    lifecycle.announce().await;
    tracing::info!(plugin = %name, version = %version, by = %admin.subject, "plugin version activated");
    Ok(view)
}

fn not_validated(name: &str, version: &str) -> ApiError {
    ApiError::conflict("NOT_VALIDATED", format!("{name}@{version} has not passed upload validation; upload it again"))
}

/// Refuses a swap the active configuration does not accept.
async fn check_swap(exclusive: &Exclusive<'_>, plugin: &Arc<LoadedPlugin>) -> Result<(), ApiError> {
    exclusive.check_config(std::slice::from_ref(plugin)).await.map(|_| ()).map_err(|report| {
        ApiError::conflict(
            "ACTIVATION_REJECTED",
            format!(
                "{}@{} cannot become active with the current challenges: {report}",
                plugin.name(),
                plugin.version()
            ),
        )
    })
}

/// Returns a plugin to its previous version (the active one becomes the new rollback target).
pub async fn rollback(state: &AppState, admin: &Admin, name: &str) -> Result<ActivationView, ApiError> {
    let lifecycle = &state.plugins;
    let registry = lifecycle.registry();
    let exclusive = lifecycle.exclusive().await;
    let activations = registry.plugin_activations().await.map_err(storage)?;
    let activation = activations.into_iter().find(|a| a.name == name).ok_or_else(|| plugin_not_found(name))?;
    let previous = activation.previous_version.ok_or_else(|| no_previous(name))?;
    let row = registry.plugin_version(name, &previous).await.map_err(storage)?;
    let row = row.ok_or_else(|| version_not_found(name, &previous))?;
    let plugin = ready_version(&exclusive, &row).await?;
    check_swap(&exclusive, &plugin).await?;
    let view = match registry.rollback_plugin(name, &admin.subject, chrono::Utc::now()).await.map_err(storage)? {
        RollbackOutcome::RolledBack(activation) => activation_view(activation, true),
        RollbackOutcome::NotActive => return Err(plugin_not_found(name)),
        RollbackOutcome::NoPrevious => return Err(no_previous(name)),
    };
    exclusive.sync().await.map_err(not_applied)?;
    drop(exclusive);
    lifecycle.announce().await;
    tracing::info!(plugin = %name, version = %view.active_version, by = %admin.subject, "plugin rolled back");
    Ok(view)
}

fn no_previous(name: &str) -> ApiError {
    ApiError::conflict("NO_PREVIOUS_VERSION", format!("plugin {name} has no previous version to roll back to"))
}

/// Sets limits for every version of a plugin; loaded versions use them from their next call, on every instance.
/// Limits under which the plugin (its active version) fails the upload checks are refused: they would fail
/// every evaluation.
pub async fn set_limits(state: &AppState, name: &str, patch: &LimitsPatch) -> Result<LimitsView, ApiError> {
    if patch.is_empty() {
        return Err(ApiError::invalid("NO_LIMITS", "give at least one limit (e.g. fuelPerCall, maxMemoryBytes)"));
    }
    let lifecycle = &state.plugins;
    let registry = lifecycle.registry();
    let exclusive = lifecycle.exclusive().await;
    let versions = registry.plugin_versions(Some(name)).await.map_err(storage)?;
    let reference = reference_version(&versions).ok_or_else(|| plugin_not_found(name))?;
    let limits = patch.apply(&Limits::parse(&reference.limits).unwrap_or_default());
    let runtime_limits = limits.to_runtime().map_err(|err| ApiError::invalid("INVALID_LIMITS", err))?;
    // A copy of the version loaded with the new limits goes through the checks; the live one is untouched.
    let too_low = |detail: &str| {
        rejected("LIMITS_TOO_LOW", format!("{name}@{} would fail with these limits: {detail}", reference.version))
    };
    let probe = exclusive.load(reference, runtime_limits).await.map_err(|err| too_low(&err))?;
    validate_for_configuration(lifecycle, &probe).await.map_err(|err| too_low(&err.message))?;
    let updated = registry.set_plugin_limits(name, &limits.to_json()).await.map_err(storage)?;
    exclusive.sync().await.map_err(not_applied)?;
    drop(exclusive);
    lifecycle.announce().await;
    tracing::info!(plugin = %name, ?limits, "plugin limits set");
    Ok(LimitsView { name: name.to_owned(), limits, versions_updated: updated })
}

/// Deletes a version no goal uses: not active, not pinned by a configured goal, not the built-in version.
pub async fn delete(state: &AppState, name: &str, version: &str) -> Result<(), ApiError> {
    let lifecycle = &state.plugins;
    let registry = lifecycle.registry();
    let exclusive = lifecycle.exclusive().await;
    let row = registry.plugin_version(name, version).await.map_err(storage)?;
    let row = row.ok_or_else(|| version_not_found(name, version))?;
    if row.name == BUILTIN_PLUGIN && row.uploaded_by == EMBEDDED_UPLOADER {
        return Err(ApiError::conflict(
            "BUILTIN_VERSION",
            format!("{name}@{version} ships with the host binary and cannot be deleted"),
        ));
    }
    if let Some(config) = lifecycle.config() {
        let config = config.load();
        let pinned: Vec<String> = config
            .catalog
            .goals()
            .filter(|goal| {
                goal.rule.as_ref().is_some_and(|rule| rule.plugin == name && rule.version.as_deref() == Some(version))
            })
            .map(|goal| goal.id.clone())
            .collect();
        if !pinned.is_empty() {
            return Err(ApiError::conflict(
                "VERSION_IN_USE",
                format!("{name}@{version} is pinned by goal(s) {}", pinned.join(", ")),
            ));
        }
    }
    match registry.delete_plugin_version(name, version).await.map_err(storage)? {
        DeleteOutcome::Deleted => {}
        DeleteOutcome::NotFound => return Err(version_not_found(name, version)),
        DeleteOutcome::Active => {
            return Err(ApiError::conflict(
                "VERSION_ACTIVE",
                format!("{name}@{version} is active; activate another version (or roll back) first"),
            ));
        }
    }
    exclusive.sync().await.map_err(not_applied)?;
    drop(exclusive);
    lifecycle.announce().await;
    tracing::info!(plugin = %name, version = %version, "plugin version deleted");
    Ok(())
}

/// Evaluates sample goals and events with a version (loaded here, or loaded just for this call) and returns each
/// goal's resulting state. Nothing is stored.
pub async fn dry_run(
    state: &AppState,
    name: &str,
    version: &str,
    request: DryRunRequest,
) -> Result<DryRunView, ApiError> {
    if request.goals.len() > MAX_DRY_RUN_GOALS || request.events.len() > MAX_DRY_RUN_EVENTS {
        return Err(ApiError::invalid(
            "DRY_RUN_TOO_LARGE",
            format!("a dry run takes at most {MAX_DRY_RUN_GOALS} goals and {MAX_DRY_RUN_EVENTS} events"),
        ));
    }
    let lifecycle = &state.plugins;
    let plugin = match lifecycle.rules.loaded(name, version) {
        Some(plugin) => plugin,
        None => {
            let row = lifecycle.registry().plugin_version(name, version).await.map_err(storage)?;
            let row = row.ok_or_else(|| version_not_found(name, version))?;
            let limits =
                Limits::parse(&row.limits).and_then(|limits| limits.to_runtime()).map_err(ApiError::internal)?;
            // Loaded for this call only (not installed).
            lifecycle.exclusive().await.load(&row, limits).await.map_err(|err| rejected("NOT_LOADABLE", err))?
        }
    };
    let config = state.config();
    let goals = request
        .goals
        .iter()
        .map(|goal| samples::prepare_goal(goal, config.rules.rule(&goal.goal_id).map(|rule| rule.spec.as_ref())))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|err| ApiError::invalid("INVALID_SAMPLE", err))?;
    let events = samples::prepare_events(&request.events, &mut Default::default(), 0)
        .map_err(|err| ApiError::invalid("INVALID_SAMPLE", err))?;
    let user_id = request.user_id.unwrap_or_else(|| "dry-run".to_owned());
    let evaluating = plugin.clone();
    let outcome = tokio::task::spawn_blocking(move || samples::evaluate(&evaluating, &user_id, &goals, events))
        .await
        .map_err(|err| ApiError::internal(format!("dry run failed: {err}")))?;
    Ok(DryRunView { plugin: name.to_owned(), version: version.to_owned(), outcome })
}

/// Calls, errors by kind and latency per version of a plugin on this instance, and its active version.
pub async fn metrics(state: &AppState, name: &str) -> Result<MetricsView, ApiError> {
    let lifecycle = &state.plugins;
    let active = lifecycle.rules.resolve(name, None);
    let known =
        active.is_some() || !lifecycle.registry().plugin_versions(Some(name)).await.map_err(storage)?.is_empty();
    if !known {
        return Err(plugin_not_found(name));
    }
    let mut versions = plugin_metrics(&state.metrics.render(), name);
    for (_, loaded_version, is_active) in lifecycle.rules.loaded_versions().into_iter().filter(|(n, _, _)| n == name) {
        let entry = versions
            .entry(loaded_version.clone())
            .or_insert_with(|| VersionMetrics { version: loaded_version.clone(), ..VersionMetrics::default() });
        entry.active = is_active;
    }
    Ok(MetricsView {
        plugin: name.to_owned(),
        active_version: active.map(|plugin| plugin.version().to_owned()),
        versions: versions.into_values().collect(),
    })
}

/// Reloads the challenge definitions (see [`PluginLifecycle::reload_config`]).
pub async fn reload_config(state: &AppState) -> Result<ConfigView, ApiError> {
    let loaded = state.plugins.reload_config().await.map_err(|report| {
        rejected("CONFIG_INVALID", format!("the configuration was not reloaded (nothing changed): {report}"))
    })?;
    Ok(config_view(&loaded))
}
