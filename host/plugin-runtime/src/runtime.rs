use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::bindings::{RulePlugin, RulePluginPre};
use crate::cache::ComponentCache;
use crate::error::PluginError;
use crate::limits::{HostState, PluginLimits};
use crate::plugin::LoadedPlugin;

/// The only imports a rule plugin may have.
pub const ALLOWED_IMPORTS: &[&str] = &["challenge:rules/log@0.2.0"];

/// The WIT world rule plugins implement (`/wit/rules.wit`).
pub const WIT_WORLD: &str = "challenge:rules/rule-plugin@0.2.0";

/// Engine-wide settings. The defaults suit a small (2-core) host running a handful of plugins.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled components are cached across restarts (`None`: compile on every load).
    pub cache_dir: Option<PathBuf>,
    /// Instance slots in the pooling allocator, shared by all plugins; each plugin uses up to its
    /// [`PluginLimits::max_instances`]. Slots are address space reservations, committed only as used.
    pub max_total_instances: u32,
    /// Hard ceiling on any plugin's [`PluginLimits::max_memory_bytes`] (the pool's per-memory size). With the
    /// defaults, every slot grown to this ceiling would still fit in RAM (128 x 128 MiB = 16 GiB).
    pub max_memory_bytes_per_instance: usize,
    /// Hard ceiling on any plugin's [`PluginLimits::max_table_elements`].
    pub max_table_elements_per_instance: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            max_total_instances: 128,
            max_memory_bytes_per_instance: 128 << 20,
            max_table_elements_per_instance: 100_000,
        }
    }
}

/// Ceilings that plugin limits are clipped to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub max_memory_bytes: usize,
    pub max_table_elements: usize,
}

impl Caps {
    pub fn clip(&self, mut limits: PluginLimits) -> PluginLimits {
        if limits.max_memory_bytes > self.max_memory_bytes || limits.max_table_elements > self.max_table_elements {
            tracing::warn!(?limits, ?self, "plugin limits exceed the runtime's ceilings; clipping them");
        }
        limits.max_memory_bytes = limits.max_memory_bytes.min(self.max_memory_bytes);
        limits.max_table_elements = limits.max_table_elements.min(self.max_table_elements);
        limits.max_instances = limits.max_instances.max(1);
        limits
    }
}

/// Compiles, checks and loads rule plugins. Cheap to share behind an `Arc`; loaded plugins stay usable after the
/// runtime is dropped.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    caps: Caps,
}

impl PluginRuntime {
    pub fn new(options: RuntimeOptions) -> Result<Self, PluginError> {
        let slots = options.max_total_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        // A Rust guest component is a handful of core instances (main module plus adapter shims) with one memory.
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(4))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .max_memory_size(options.max_memory_bytes_per_instance)
            .table_elements(options.max_table_elements_per_instance);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .cranelift_opt_level(OptLevel::Speed)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| PluginError::Runtime(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        RulePlugin::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|e| PluginError::Runtime(format!("{e:#}")))?;

        describe_metrics();
        Ok(PluginRuntime {
            cache: options.cache_dir.map(|dir| ComponentCache::new(dir, &engine)),
            engine,
            linker,
            caps: Caps {
                max_memory_bytes: options.max_memory_bytes_per_instance,
                max_table_elements: options.max_table_elements_per_instance,
            },
        })
    }

    /// Compiles (or takes from the cache) a component, checks that it imports only [`ALLOWED_IMPORTS`] and exports
    /// the `rules` interface, starts one instance and asks it to `describe` itself.
    pub fn load(&self, bytes: &[u8], limits: PluginLimits) -> Result<Arc<LoadedPlugin>, PluginError> {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        let component = self.compile(bytes, &sha256)?;
        let forbidden: Vec<String> = component_imports(&component, &self.engine)
            .into_iter()
            .filter(|i| !ALLOWED_IMPORTS.contains(&i.as_str()))
            .collect();
        if !forbidden.is_empty() {
            return Err(PluginError::InvalidComponent(format!(
                "the component imports {}, but rule plugins may import only {} (build guests without std/WASI)",
                forbidden.join(", "),
                ALLOWED_IMPORTS.join(", ")
            )));
        }
        let pre =
            self.linker.instantiate_pre(&component).map_err(|e| PluginError::InvalidComponent(format!("{e:#}")))?;
        let pre = RulePluginPre::new(pre).map_err(|e| {
            PluginError::InvalidComponent(format!("the component does not export challenge:rules/rules@0.2.0: {e:#}"))
        })?;
        LoadedPlugin::start(self.engine.clone(), pre, sha256, self.caps, limits)
    }

    /// Names of everything a component imports (for example `challenge:rules/log@0.2.0`), without loading it.
    pub fn inspect_imports(&self, bytes: &[u8]) -> Result<Vec<String>, PluginError> {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        Ok(component_imports(&self.compile(bytes, &sha256)?, &self.engine))
    }

    fn compile(&self, bytes: &[u8], sha256: &[u8; 32]) -> Result<Component, PluginError> {
        check_component_header(bytes)?;
        if let Some(component) = self.cache.as_ref().and_then(|cache| cache.load(&self.engine, sha256)) {
            return Ok(component);
        }
        let component =
            Component::new(&self.engine, bytes).map_err(|e| PluginError::InvalidComponent(format!("{e:#}")))?;
        if let Some(cache) = &self.cache {
            cache.store(&component, sha256);
        }
        Ok(component)
    }
}

fn component_imports(component: &Component, engine: &Engine) -> Vec<String> {
    component.component_type().imports(engine).map(|(name, _)| name.to_owned()).collect()
}

/// Tells apart components, core modules and non-Wasm bytes before compiling, for a precise message.
fn check_component_header(bytes: &[u8]) -> Result<(), PluginError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(PluginError::InvalidComponent(
            "this is a core WebAssembly module, not a component (build the plugin for wasm32-wasip2)".into(),
        )),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        _ => Err(PluginError::InvalidComponent("not a WebAssembly component (bad magic/version header)".into())),
    }
}

fn describe_metrics() {
    metrics::describe_counter!("plugin_calls_total", "Rule plugin evaluate calls.");
    metrics::describe_counter!("plugin_errors_total", "Failed rule plugin evaluate calls, by error kind.");
    metrics::describe_histogram!("plugin_eval_seconds", metrics::Unit::Seconds, "Rule plugin evaluate call time.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_apart() {
        assert!(
            matches!(check_component_header(b"\0asm\x01\0\0\0"), Err(PluginError::InvalidComponent(m)) if m.contains("core"))
        );
        assert!(
            matches!(check_component_header(b"hello world"), Err(PluginError::InvalidComponent(m)) if m.contains("magic"))
        );
        assert!(check_component_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
