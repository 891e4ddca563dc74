use thiserror::Error;

/// Why a plugin call (or load) failed. A failure affects only that call: the instance involved is discarded and the
/// plugin keeps serving with fresh instances.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PluginError {
    /// The guest trapped (panic, `unreachable`, stack overflow, out-of-bounds access...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The call used up its CPU budget (`PluginLimits::fuel_per_call`).
    #[error("plugin ran out of fuel (CPU budget of the call)")]
    OutOfFuel,
    /// The guest tried to grow past its memory or table limit, or no instance slot was free.
    #[error("plugin ran out of memory: {0}")]
    OutOfMemory(String),
    /// The guest returned something the host must not accept.
    #[error("plugin returned bad output: {0}")]
    BadOutput(String),
    /// The request is bigger than `PluginLimits::max_input_bytes`; the plugin was not called.
    #[error("request of about {size} bytes exceeds the plugin's input limit of {limit} bytes")]
    InputTooLarge { size: usize, limit: usize },
    /// The guest answered with an error (its own message).
    #[error("plugin rejected the call: {0}")]
    Rejected(String),
    /// The bytes are not a usable rule plugin (not a component, wrong world, forbidden imports, failed to start).
    #[error("invalid plugin component: {0}")]
    InvalidComponent(String),
    /// The runtime itself could not be set up (engine configuration); no plugin was involved.
    #[error("plugin runtime setup failed: {0}")]
    Runtime(String),
}

impl PluginError {
    /// Every value [`PluginError::kind`] can return, for pre-registering metrics.
    pub const KINDS: [&'static str; 8] = [
        "trap",
        "out_of_fuel",
        "out_of_memory",
        "bad_output",
        "input_too_large",
        "rejected",
        "invalid_component",
        "runtime",
    ];

    /// Short, stable name for metrics labels and logs.
    pub const fn kind(&self) -> &'static str {
        match self {
            PluginError::Trap(_) => "trap",
            PluginError::OutOfFuel => "out_of_fuel",
            PluginError::OutOfMemory(_) => "out_of_memory",
            PluginError::BadOutput(_) => "bad_output",
            PluginError::InputTooLarge { .. } => "input_too_large",
            PluginError::Rejected(_) => "rejected",
            PluginError::InvalidComponent(_) => "invalid_component",
            PluginError::Runtime(_) => "runtime",
        }
    }

    pub(crate) fn kind_index(&self) -> usize {
        let kind = self.kind();
        Self::KINDS.iter().position(|k| *k == kind).unwrap_or(0)
    }
}
