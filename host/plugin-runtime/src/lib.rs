//! Sandboxed WebAssembly component host for goal-rule plugins.
//!
//! Rule plugins implement the `challenge:rules/rule-plugin@0.2.0` world (`/wit/rules.wit`): they export `rules`
//! (`describe`, `validate-params`, `evaluate`) and may import only `challenge:rules/log`. No WASI, so evaluation is
//! deterministic and replayable: time arrives with the events.
//!
//! Callers work with plain owned types ([`EvaluationRequest`], [`GoalUpdate`], ...). For each call the runtime packs
//! the request into the WIT's compact `packed-request` bytes and unpacks and checks the plugin's `packed-updates`
//! (crate `challenge-plugin-wire`): one copy each way instead of one canonical-ABI step per string and field.
//!
//! ```no_run
//! use challenge_plugin_runtime::*;
//! # fn main() -> Result<(), PluginError> {
//! let runtime = PluginRuntime::new(RuntimeOptions::default())?;
//! let builtin = runtime.load(BUILTIN_RULES_WASM, PluginLimits::default())?;
//! let request = EvaluationRequest { user_id: "u1".into(), events: vec![], goals: vec![] };
//! // CPU-bound and synchronous: call from a blocking-capable thread (e.g. tokio's spawn_blocking).
//! let updates = builtin.evaluate(&request)?;
//! # let _ = updates; Ok(()) }
//! ```
//!
//! One [`PluginRuntime`] holds the Wasmtime engine (pooling allocator, fuel metering) and loads plugins; each
//! [`LoadedPlugin`] keeps a small pool of warm instances. A call that traps, runs out of fuel or memory, or returns
//! malformed output fails alone with a [`PluginError`]; its instance is discarded and the next call gets a fresh one.
//!
//! Metrics (`metrics` crate; handles are bound at load time, so install the recorder before loading plugins):
//! `plugin_calls_total{plugin,version}`, `plugin_errors_total{plugin,version,kind}` and
//! `plugin_eval_seconds{plugin,version}`, all for `evaluate`.

mod cache;
mod error;
mod limits;
mod plugin;
mod runtime;
mod types;

pub use error::PluginError;
pub use limits::PluginLimits;
pub use plugin::{LoadedPlugin, PoolStats, request_size};
pub use runtime::{ALLOWED_IMPORTS, PluginRuntime, RuntimeOptions, WIT_WORLD};
pub use types::{
    EvaluationRequest, Event, EventKind, GoalInput, GoalSpec, GoalState, GoalStatus, GoalUpdate, PluginInfo,
    ProgressMode, ProgressSource,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "rule-plugin",
    });
}

/// Directory holding the guest plugins built for this crate (`<workspace>/target/guest-plugins/wasm32-wasip2/release`).
/// For tests and tools on the build machine; deployed binaries embed what they need (see [`BUILTIN_RULES_WASM`]).
pub const GUEST_PLUGIN_DIR: &str = env!("CHALLENGE_GUEST_PLUGIN_DIR");

/// The builtin rules component (plugin "builtin-rules" 1.0.0), embedded at build time.
pub const BUILTIN_RULES_WASM: &[u8] =
    include_bytes!(concat!(env!("CHALLENGE_GUEST_PLUGIN_DIR"), "/builtin_rules.wasm"));

/// Path of a guest component built from the `plugins/` workspace, by crate name (for example `"streak"` or
/// `"spin-forever"`).
pub fn guest_artifact(crate_name: &str) -> std::path::PathBuf {
    std::path::Path::new(GUEST_PLUGIN_DIR).join(format!("{}.wasm", crate_name.replace('-', "_")))
}
