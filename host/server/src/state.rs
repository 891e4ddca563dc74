//! Shared state handed to every transport handler and background worker.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use challenge_core::config::Catalog;
use challenge_storage::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Authenticator;
use crate::pipeline::Pipeline;
use crate::player::PlayerApi;
use crate::rules::{RuleBook, RuleEngine};
use crate::settings::Settings;

/// The challenge definitions in force and the rule book derived from them; replaced as a whole on reload.
pub struct ActiveConfig {
    pub catalog: Catalog,
    pub rules: RuleBook,
}

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub config: Arc<ArcSwap<ActiveConfig>>,
    pub rules: Arc<RuleEngine>,
    pub pipeline: Arc<Pipeline>,
    /// The player API operations (with their cache and reward delivery).
    pub player: Arc<PlayerApi>,
    /// The plugin registry as this instance applies it (admin API, hot swap, configuration reloads).
    pub plugins: Arc<crate::rules::registry::PluginLifecycle>,
    pub auth: Arc<Authenticator>,
    pub redis: Option<fred::prelude::Client>,
    pub metrics: PrometheusHandle,
    pub started_at: Instant,
}

impl AppState {
    /// A consistent snapshot of the configuration; hold it for the duration of one request or flush.
    pub fn config(&self) -> Arc<ActiveConfig> {
        self.config.load_full()
    }
}

impl axum::extract::FromRef<AppState> for Arc<Pipeline> {
    fn from_ref(state: &AppState) -> Self {
        state.pipeline.clone()
    }
}
