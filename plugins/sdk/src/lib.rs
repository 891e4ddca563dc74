//! Guest SDK for challenge rule plugins.
//!
//! A plugin is a `no_std` `cdylib` built for `wasm32-wasip2` that implements [`Guest`] and calls [`export!`]:
//!
//! ```ignore
//! #![no_std]
//! extern crate alloc;
//! use challenge_plugin_sdk::*;
//! struct MyRules;
//! impl Guest for MyRules { /* describe, validate_params, evaluate */ }
//! export_plugin!(MyRules);
//! ```
//!
//! [`export_plugin!`] also supplies the global allocator and panic handler, so a plugin's component imports nothing
//! but `challenge:rules/log`: no WASI, no clock, no randomness.
#![no_std]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

wit_bindgen::generate!({
    path: "../../wit",
    world: "rule-plugin",
    pub_export_macro: true,
    default_bindings_module: "challenge_plugin_sdk",
});

pub use challenge::rules::log::Level;
pub use challenge_rules_logic::{MS_PER_DAY, stat_value_as_progress, utc_day};
pub use exports::challenge::rules::rules::{
    EvaluationRequest, Event, EventKind, GoalInput, GoalSpec, GoalState, GoalStatus, GoalUpdate, Guest, PluginInfo,
    ProgressMode, ProgressSource,
};

/// Exports a [`Guest`] implementation as the plugin's `rules` and sets up the no_std guest runtime: a small global
/// allocator (talc), the canonical-ABI `cabi_realloc` hook (std would provide it) and a panic handler that traps, so
/// the host discards the instance and reports the failed call. Use once, in the plugin's `cdylib` crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident) => {
        $crate::export!($plugin);

        // Test builds link std, which brings its own.
        #[cfg(all(target_family = "wasm", not(target_feature = "atomics"), not(test)))]
        const _: () = {
            #[global_allocator]
            static ALLOCATOR: $crate::__talc::wasm::WasmDynamicTalc =
                $crate::__talc::wasm::new_wasm_dynamic_allocator();

            // memcpy/memcmp/memset come from wasi-libc's import-free string routines; nothing else of libc is linked.
            #[link(name = "c")]
            unsafe extern "C" {}

            /// Canonical ABI allocation hook, called by the host to place arguments in guest memory.
            ///
            /// # Safety
            /// Called only by the component host, with a pointer/size pair it got from this function.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn cabi_realloc(
                old_ptr: *mut u8,
                old_len: usize,
                align: usize,
                new_len: usize,
            ) -> *mut u8 {
                unsafe { $crate::__cabi_realloc(old_ptr, old_len, align, new_len) }
            }

            #[panic_handler]
            fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
                core::arch::wasm32::unreachable()
            }
        };
    };
}

#[doc(hidden)]
pub use talc as __talc;

/// Body of the `cabi_realloc` that [`export_plugin!`] defines: allocate, or reallocate a block this function returned.
///
/// # Safety
/// `align` must be a power of two and, when `old_len > 0`, `old_ptr`/`old_len`/`align` must describe a live block from
/// this allocator (the canonical ABI guarantees both).
#[doc(hidden)]
pub unsafe fn __cabi_realloc(old_ptr: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, realloc};
    if new_len == 0 {
        return align as *mut u8;
    }
    // SAFETY: the caller's contract above.
    let ptr = unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(old_ptr, Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    };
    // Out of memory: trap rather than hand the host a null pointer.
    assert!(!ptr.is_null(), "out of memory");
    ptr
}

/// Sends a line to the host's log (tagged there with this plugin's name; long lines are cut, floods dropped).
pub fn log(level: Level, message: &str) {
    challenge::rules::log::log(level, message);
}

/// Parses a goal's `params` JSON into `T`; empty text reads as `{}`. The error text is meant for the operator.
pub fn parse_params<T: serde::de::DeserializeOwned>(params: &str) -> Result<T, String> {
    let text = if params.trim().is_empty() { "{}" } else { params };
    serde_json::from_str(text).map_err(|e| alloc::format!("invalid params: {e}"))
}

/// Status after an event that moved a goal: completion is sticky (status and time are kept), otherwise completed at
/// `timestamp_ms` when `reached`, else in progress. Claimed goals must not be passed here.
pub fn settle(state: &mut GoalState, reached: bool, timestamp_ms: i64) {
    let mut status = to_logic_status(state.status);
    challenge_rules_logic::settle(&mut status, &mut state.completed_at_ms, reached, timestamp_ms);
    state.status = from_logic_status(status);
}

/// The request's events for one stat code, in order.
pub fn events_for<'a>(events: &'a [Event], stat_code: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
    events.iter().filter(move |e| e.stat_code == stat_code)
}

/// Builds the update for goal `index` if `new` differs from the goal's input state.
pub fn update_if_changed(index: usize, old: &GoalState, new: GoalState, source: ProgressSource) -> Option<GoalUpdate> {
    let changed = old.progress != new.progress
        || old.status != new.status
        || old.completed_at_ms != new.completed_at_ms
        || old.baseline != new.baseline
        || old.state != new.state;
    changed.then_some(GoalUpdate {
        goal_index: index as u32,
        progress: new.progress,
        status: new.status,
        completed_at_ms: new.completed_at_ms,
        baseline: new.baseline,
        state: new.state,
        source,
    })
}

/// Plugin info with the given kinds and schema.
pub fn plugin_info(name: &str, version: &str, description: &str, kinds: &[&str], params_schema: &str) -> PluginInfo {
    PluginInfo {
        name: name.to_string(),
        version: version.to_string(),
        description: description.to_string(),
        kinds: kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        params_schema: params_schema.to_string(),
    }
}

pub fn to_logic_status(status: GoalStatus) -> challenge_rules_logic::Status {
    use challenge_rules_logic::Status;
    match status {
        GoalStatus::NotStarted => Status::NotStarted,
        GoalStatus::InProgress => Status::InProgress,
        GoalStatus::Completed => Status::Completed,
        GoalStatus::Claimed => Status::Claimed,
    }
}

pub fn from_logic_status(status: challenge_rules_logic::Status) -> GoalStatus {
    use challenge_rules_logic::Status;
    match status {
        Status::NotStarted => GoalStatus::NotStarted,
        Status::InProgress => GoalStatus::InProgress,
        Status::Completed => GoalStatus::Completed,
        Status::Claimed => GoalStatus::Claimed,
    }
}
