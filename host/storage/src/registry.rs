//! The rule plugin registry: uploaded plugin versions (component bytes and metadata) and which version of each
//! plugin is active, plus the one active before it (the rollback target).
//!
//! Every change bumps one registry-wide revision counter in the same transaction. Host instances compare it with
//! the revision they last applied, so "has anything changed?" costs one tiny query; the row lock on the counter
//! also serializes concurrent registry changes across instances.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Result, StorageError};

/// Lifecycle of a plugin version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginStatus {
    /// Stored, not (yet) proven: validation is running or was interrupted. Cannot be activated.
    Uploaded,
    /// Passed upload validation; may be activated.
    Validated,
    /// The version evaluations use when a goal does not pin one.
    Active,
    /// Was active and has been replaced; may be activated again.
    Retired,
}

impl PluginStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            PluginStatus::Uploaded => "uploaded",
            PluginStatus::Validated => "validated",
            PluginStatus::Active => "active",
            PluginStatus::Retired => "retired",
        }
    }
}

impl fmt::Display for PluginStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PluginStatus {
    type Err = StorageError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "uploaded" => Ok(PluginStatus::Uploaded),
            "validated" => Ok(PluginStatus::Validated),
            "active" => Ok(PluginStatus::Active),
            "retired" => Ok(PluginStatus::Retired),
            other => Err(StorageError::corrupt(format!("unknown plugin status '{other}'"))),
        }
    }
}

/// A stored plugin version, without its component bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersion {
    pub name: String,
    pub version: String,
    /// Lowercase hex sha256 of the component bytes.
    pub sha256: String,
    pub size_bytes: i64,
    /// The WIT world the component implements, e.g. `challenge:rules/rule-plugin@0.1.0`.
    pub wit_world: String,
    pub description: String,
    /// The plugin's limits as JSON text (the host owns the format).
    pub limits: String,
    pub status: PluginStatus,
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
}

/// A version to store.
#[derive(Debug, Clone)]
pub struct NewPluginVersion<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub sha256: &'a str,
    pub component: &'a [u8],
    pub wit_world: &'a str,
    pub description: &'a str,
    pub limits: &'a str,
    /// [`PluginStatus::Uploaded`] or [`PluginStatus::Validated`]; active is reached only through activation.
    pub status: PluginStatus,
    pub uploaded_by: &'a str,
    pub uploaded_at: DateTime<Utc>,
}

/// What [`PluginRegistry::insert_plugin_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted(PluginVersion),
    /// The same name and version with the same bytes already exists (nothing written).
    Existing(PluginVersion),
    /// The same name and version exists with different bytes (nothing written): versions are immutable.
    Conflict(PluginVersion),
}

/// Which version of a plugin is active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginActivation {
    pub name: String,
    pub active_version: String,
    /// What a rollback returns to.
    pub previous_version: Option<String>,
    pub activated_by: String,
    pub activated_at: DateTime<Utc>,
}

/// What [`PluginRegistry::activate_plugin_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationOutcome {
    Activated(PluginActivation),
    /// The version was already active; nothing changed (the previous version is kept).
    AlreadyActive(PluginActivation),
    NotFound,
    /// The version is still [`PluginStatus::Uploaded`].
    NotValidated,
}

/// What [`PluginRegistry::rollback_plugin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackOutcome {
    /// The previous version is active again; the version rolled back from became the new previous one.
    RolledBack(PluginActivation),
    /// The plugin has no active version.
    NotActive,
    /// There is no previous version (never replaced, or it was deleted).
    NoPrevious,
}

/// What [`PluginRegistry::delete_plugin_version`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// The version is active and cannot be deleted.
    Active,
}

/// Stored plugin versions and activations. Reached through [`crate::Store::registry`].
#[async_trait]
pub trait PluginRegistry: Send + Sync {
    /// The registry revision: it increases with every change.
    async fn registry_revision(&self) -> Result<i64>;

    /// Stores a version unless that name and version exist already (see [`InsertOutcome`]).
    async fn insert_plugin_version(&self, new: &NewPluginVersion<'_>) -> Result<InsertOutcome>;

    /// Moves an [`PluginStatus::Uploaded`] version to [`PluginStatus::Validated`]. False when there is no such
    /// uploaded version.
    async fn mark_plugin_validated(&self, name: &str, version: &str) -> Result<bool>;

    /// Versions (without bytes) of one plugin, or of all plugins, ordered by name then upload time.
    async fn plugin_versions(&self, name: Option<&str>) -> Result<Vec<PluginVersion>>;

    async fn plugin_version(&self, name: &str, version: &str) -> Result<Option<PluginVersion>>;

    /// The component bytes of a version.
    async fn plugin_component(&self, name: &str, version: &str) -> Result<Option<Vec<u8>>>;

    /// Every plugin's activation, ordered by name.
    async fn plugin_activations(&self) -> Result<Vec<PluginActivation>>;

    /// Makes `version` the active one; the version active before becomes the previous one and is retired.
    async fn activate_plugin_version(
        &self,
        name: &str,
        version: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ActivationOutcome>;

    /// Activates `version` only if the plugin has no active version yet (first start of a host). True if it did.
    async fn activate_if_unset(&self, name: &str, version: &str, by: &str, now: DateTime<Utc>) -> Result<bool>;

    /// Swaps the active and the previous version.
    async fn rollback_plugin(&self, name: &str, by: &str, now: DateTime<Utc>) -> Result<RollbackOutcome>;

    /// Replaces the limits of every version of a plugin. Returns how many versions were updated.
    async fn set_plugin_limits(&self, name: &str, limits: &str) -> Result<u64>;

    /// Deletes a version that is not active (if it was the previous one, the plugin loses its rollback target).
    /// Removes the unvalidated leftovers of a failed upload too.
    async fn delete_plugin_version(&self, name: &str, version: &str) -> Result<DeleteOutcome>;
}

pub(crate) fn parse_plugin_status(text: &str) -> Result<PluginStatus> {
    text.parse()
}

/// Refuses statuses an insert may not write.
pub(crate) fn check_insert(new: &NewPluginVersion<'_>) -> Result<()> {
    if !matches!(new.status, PluginStatus::Uploaded | PluginStatus::Validated) {
        return Err(StorageError::InvalidInput(format!(
            "a new plugin version is stored as uploaded or validated, not {}",
            new.status
        )));
    }
    if new.name.is_empty() || new.version.is_empty() {
        return Err(StorageError::InvalidInput("plugin name and version must not be empty".to_owned()));
    }
    Ok(())
}

/// The outcome for an insert that found `existing` with the same name and version.
pub(crate) fn existing_outcome(existing: PluginVersion, sha256: &str) -> InsertOutcome {
    if existing.sha256 == sha256 { InsertOutcome::Existing(existing) } else { InsertOutcome::Conflict(existing) }
}
