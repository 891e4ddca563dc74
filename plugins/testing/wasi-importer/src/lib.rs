//! Test guest built with std: printing and reading the clock make its component import WASI interfaces, which the
//! host must refuse at load time.

use challenge_plugin_sdk::{EvaluationRequest, GoalSpec, GoalUpdate, Guest, PluginInfo, export_plugin, plugin_info};

struct WasiImporter;

impl Guest for WasiImporter {
    fn describe() -> PluginInfo {
        plugin_info("wasi-importer", "0.1.0", "Imports WASI through std.", &["wasi"], "{}")
    }

    fn validate_params(_: GoalSpec<'_>) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        let now = std::time::SystemTime::now();
        println!("evaluating {} at {now:?}", request.user_id);
        Ok(Vec::new())
    }
}

export_plugin!(WasiImporter, std);
