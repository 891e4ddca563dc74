use std::sync::Arc;

use wasmtime::ResourceLimiter;

use crate::bindings::challenge::rules::log::{Host as LogHost, Level};

/// Operator limits for one plugin. They apply per call (fuel, input, output) or per instance (memory, tables), and can
/// be changed for a loaded plugin with [`crate::LoadedPlugin::set_limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLimits {
    /// CPU budget of one call, in Wasmtime fuel units (roughly one per Wasm instruction).
    pub fuel_per_call: u64,
    /// Largest linear memory an instance may grow to.
    pub max_memory_bytes: usize,
    /// Largest table (function pointers) an instance may grow to.
    pub max_table_elements: usize,
    /// Instances of this plugin alive at once (idle warm ones plus calls in flight). Callers beyond it wait.
    pub max_instances: usize,
    /// Largest request accepted, as estimated by [`crate::request_size`]; bigger ones fail without calling the guest.
    pub max_input_bytes: usize,
    /// Most updates one call may return.
    pub max_output_updates: usize,
    /// Largest plugin state blob per goal.
    pub max_state_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            fuel_per_call: 10_000_000,
            max_memory_bytes: 16 << 20,
            max_table_elements: 10_000,
            max_instances: 4,
            max_input_bytes: 1 << 20,
            max_output_updates: 1024,
            max_state_bytes: 4096,
        }
    }
}

impl PluginLimits {
    /// Bytes the host may copy out of the guest in one call (Wasmtime's "hostcall fuel"): enough for the largest
    /// valid answer. It caps host allocations while lifting results, before [`PluginLimits::max_output_updates`] and
    /// [`PluginLimits::max_state_bytes`] can be checked, so a guest cannot make the host allocate far more than its
    /// own memory (for example by pointing many updates at the same large blob).
    pub(crate) fn output_copy_budget(&self) -> usize {
        let per_update = size_of::<crate::GoalUpdate>().saturating_add(self.max_state_bytes);
        self.max_output_updates.saturating_mul(per_update).saturating_add(64 << 10)
    }
}

/// Name and version used to tag a plugin's logs and metrics.
#[derive(Debug)]
pub(crate) struct PluginIdent {
    pub name: String,
    pub version: String,
}

/// Longest guest log line kept; the rest is cut.
const MAX_LOG_LINE: usize = 512;
/// Guest log lines forwarded per call; further lines are counted and reported once.
const LOG_LINES_PER_CALL: u32 = 16;

/// Per-store host state: resource accounting and log budget.
pub(crate) struct HostState {
    ident: Arc<PluginIdent>,
    max_memory_bytes: usize,
    max_table_elements: usize,
    /// Set when the guest asked for more memory or table space than allowed (the growth then traps).
    pub refused_growth: Option<String>,
    log_lines: u32,
    logs_dropped: u32,
}

impl HostState {
    pub fn new(ident: Arc<PluginIdent>, limits: &PluginLimits) -> Self {
        HostState {
            ident,
            max_memory_bytes: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            refused_growth: None,
            log_lines: 0,
            logs_dropped: 0,
        }
    }

    pub fn set_ident(&mut self, ident: Arc<PluginIdent>) {
        self.ident = ident;
    }

    /// Resets per-call accounting before a call.
    pub fn begin_call(&mut self) {
        self.refused_growth = None;
        self.log_lines = 0;
        self.logs_dropped = 0;
    }

    /// Reports log lines dropped during the call that just ended.
    pub fn end_call(&mut self) {
        if self.logs_dropped > 0 {
            tracing::warn!(
                plugin = %self.ident.name,
                version = %self.ident.version,
                dropped = self.logs_dropped,
                "plugin log lines dropped (limit {LOG_LINES_PER_CALL} per call)"
            );
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            let detail = format!(
                "memory growth from {current} to {desired} bytes refused (limit {} bytes)",
                self.max_memory_bytes
            );
            self.refused_growth = Some(detail.clone());
            // Trapping (rather than failing the grow) makes the limit deterministic and easy to attribute.
            return Err(wasmtime::Error::msg(detail));
        }
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            let detail = format!(
                "table growth from {current} to {desired} elements refused (limit {})",
                self.max_table_elements
            );
            self.refused_growth = Some(detail.clone());
            return Err(wasmtime::Error::msg(detail));
        }
        Ok(true)
    }

    // A rule component holds a few core instances, one memory and a few tables; anything far beyond is hostile.
    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

impl LogHost for HostState {
    fn log(&mut self, level: Level, message: String) {
        if self.log_lines >= LOG_LINES_PER_CALL {
            self.logs_dropped = self.logs_dropped.saturating_add(1);
            return;
        }
        self.log_lines += 1;
        let message = truncate(&message, MAX_LOG_LINE);
        let (name, version) = (&self.ident.name, &self.ident.version);
        match level {
            Level::Trace => tracing::trace!(plugin = %name, version = %version, "{message}"),
            Level::Debug => tracing::debug!(plugin = %name, version = %version, "{message}"),
            Level::Info => tracing::info!(plugin = %name, version = %version, "{message}"),
            Level::Warn => tracing::warn!(plugin = %name, version = %version, "{message}"),
            Level::Error => tracing::error!(plugin = %name, version = %version, "{message}"),
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
