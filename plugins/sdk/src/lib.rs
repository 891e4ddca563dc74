//! Guest SDK for challenge rule plugins.
//!
//! A plugin is a `no_std` `cdylib` built for `wasm32-wasip2` that implements [`Guest`] and calls [`export_plugin!`]:
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
//! [`Guest::evaluate`] gets the request as borrowed views ([`EvaluationRequest`], [`Event`], [`GoalInput`]) and
//! returns owned [`GoalUpdate`]s. On the wire, `evaluate` exchanges packed bytes (`wit/rules.wit`, crate
//! `challenge-plugin-wire`), which this SDK decodes and encodes so plugins never deal with the packing.
//!
//! [`export_plugin!`] also supplies the global allocator and panic handler, so a plugin's component imports nothing
//! but `challenge:rules/log`: no WASI, no clock, no randomness.
#![no_std]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::marker::PhantomData;

wit_bindgen::generate!({
    path: "../../wit",
    world: "rule-plugin",
    pub_export_macro: true,
    default_bindings_module: "challenge_plugin_sdk",
});

pub use challenge::rules::log::Level;
pub use challenge_plugin_wire::{
    DecodeError, EvaluationRequest, Event, EventKind, GoalInput, GoalSpec, GoalState, GoalStatus, GoalUpdate,
    ProgressMode, ProgressSource, decode_request, encode_updates,
};
pub use challenge_rules_logic::{MS_PER_DAY, same_code, stat_value_as_progress, utc_day};
pub use exports::challenge::rules::rules::PluginInfo;

use exports::challenge::rules::rules as wit;

/// A rule plugin: what [`export_plugin!`] exports as the component's `rules` interface.
pub trait Guest {
    /// Name, version, description, goal kinds and params schema; asked once when the host loads the plugin.
    fn describe() -> PluginInfo;

    /// Checks a goal's configuration at load time. `Err` rejects the goal with a message for the operator; `Ok`
    /// lists the stat codes the goal listens to beyond its own `stat_code` (empty for single-stat rules).
    fn validate_params(goal: GoalSpec<'_>) -> Result<Vec<String>, String>;

    /// Applies the request's events, in order, to its goals and returns one update per goal whose state changed
    /// (`goal_index` is the goal's position in `request.goals`). `Err` fails the whole call.
    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String>;

    /// `evaluate` on the packed bytes. The default decodes, calls [`Guest::evaluate`] and encodes; override it only
    /// to work on the packed form directly (the runtime's tests use this to send malformed answers).
    fn evaluate_packed(request: &[u8]) -> Result<Vec<u8>, String> {
        evaluate_packed::<Self>(request)
    }
}

/// The default [`Guest::evaluate_packed`].
pub fn evaluate_packed<P: Guest + ?Sized>(request: &[u8]) -> Result<Vec<u8>, String> {
    let request = decode_request(request).map_err(|e| alloc::format!("unreadable request: {e}"))?;
    let updates = P::evaluate(request)?;
    let mut out = Vec::new();
    encode_updates(&updates, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Adapts a [`Guest`] to the generated WIT bindings; used by [`export_plugin!`].
#[doc(hidden)]
pub struct __Export<P>(PhantomData<P>);

impl<P: Guest> wit::Guest for __Export<P> {
    fn describe() -> PluginInfo {
        P::describe()
    }

    fn validate_params(goal: wit::GoalSpec) -> Result<Vec<String>, String> {
        P::validate_params(GoalSpec {
            goal_id: &goal.goal_id,
            kind: &goal.kind,
            stat_code: &goal.stat_code,
            target: goal.target,
            progress_mode: match goal.progress_mode {
                wit::ProgressMode::Absolute => ProgressMode::Absolute,
                wit::ProgressMode::Relative => ProgressMode::Relative,
            },
            daily: goal.daily,
            params: &goal.params,
        })
    }

    fn evaluate(request: Vec<u8>) -> Result<Vec<u8>, String> {
        P::evaluate_packed(&request)
    }
}

/// Exports a [`Guest`] implementation as the plugin's `rules` and sets up the no_std guest runtime: a small global
/// allocator (talc), the canonical-ABI `cabi_realloc` hook (std would provide it) and a panic handler that traps, so
/// the host discards the instance and reports the failed call. Use once, in the plugin's `cdylib` crate.
///
/// `export_plugin!(MyRules, std)` exports without the runtime, for a guest that links std (which the host refuses
/// to load: std imports WASI; only the runtime's tests build one).
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty, std) => {
        type __ChallengePluginExport = $crate::__Export<$plugin>;
        $crate::export!(__ChallengePluginExport with_types_in $crate);
    };
    ($plugin:ty) => {
        $crate::export_plugin!($plugin, std);

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
pub fn settle(state: &mut GoalState<'_>, reached: bool, timestamp_ms: i64) {
    challenge_rules_logic::settle(&mut state.status, &mut state.completed_at_ms, reached, timestamp_ms);
}

/// The request's events for one stat code, in order.
pub fn events_for<'r, 'a>(events: &'r [Event<'a>], stat_code: &'r str) -> impl Iterator<Item = &'r Event<'a>> + 'r {
    events.iter().filter(move |e| same_code(e.stat_code, stat_code))
}

/// Builds the update for goal `index` if `new` differs from the goal's input state (copying its state bytes).
pub fn update_if_changed(
    index: usize,
    old: &GoalState<'_>,
    new: &GoalState<'_>,
    source: ProgressSource,
) -> Option<GoalUpdate> {
    (old != new).then(|| GoalUpdate {
        goal_index: index as u32,
        progress: new.progress,
        status: new.status,
        completed_at_ms: new.completed_at_ms,
        baseline: new.baseline,
        state: new.state.map(<[u8]>::to_vec),
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
