//! What the validator needs to know about rule plugins: which names (and pinned versions) exist.
//! The plugin runtime owns the real registry; this module only defines the question.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The rule plugin compiled into the host; goals without a `rule` block use it. Always known, at any version.
pub const BUILTIN_PLUGIN: &str = "builtin-rules";

/// Answers whether a goal's `rule` names an installed plugin.
pub trait PluginDirectory {
    /// `version: None` asks whether any version of `plugin` is installed.
    fn knows(&self, plugin: &str, version: Option<&str>) -> bool;
}

/// Knows only [`BUILTIN_PLUGIN`] (the validator adds it to every directory).
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinOnly;

impl PluginDirectory for BuiltinOnly {
    fn knows(&self, _plugin: &str, _version: Option<&str>) -> bool {
        false
    }
}

/// Plugin names, any version.
impl PluginDirectory for HashSet<String> {
    fn knows(&self, plugin: &str, _version: Option<&str>) -> bool {
        self.contains(plugin)
    }
}

/// Plugin names with the versions installed for each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownPlugins {
    versions: BTreeMap<String, BTreeSet<String>>,
}

impl KnownPlugins {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `plugin` with the given versions (an empty slice registers the name alone).
    pub fn with(mut self, plugin: &str, versions: &[&str]) -> Self {
        let entry = self.versions.entry(plugin.to_owned()).or_default();
        entry.extend(versions.iter().map(|v| (*v).to_owned()));
        self
    }

    pub fn insert(&mut self, plugin: &str, version: Option<&str>) {
        let entry = self.versions.entry(plugin.to_owned()).or_default();
        if let Some(version) = version {
            entry.insert(version.to_owned());
        }
    }
}

impl PluginDirectory for KnownPlugins {
    fn knows(&self, plugin: &str, version: Option<&str>) -> bool {
        match (self.versions.get(plugin), version) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(versions), Some(version)) => versions.contains(version),
        }
    }
}

/// The directory as the validator consults it: the built-in plugin is always there.
pub(crate) fn is_known(directory: &dyn PluginDirectory, plugin: &str, version: Option<&str>) -> bool {
    plugin == BUILTIN_PLUGIN || directory.knows(plugin, version)
}
