use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use challenge_plugin_wire::{self as wire, PackedUpdates};
use metrics::{Counter, Histogram};
use wasmtime::{Engine, Store, Trap};

use crate::bindings::{RulePlugin, RulePluginPre};
use crate::error::PluginError;
use crate::limits::{HostState, PluginIdent, PluginLimits};
use crate::runtime::Caps;
use crate::{EvaluationRequest, Event, GoalInput, GoalSpec, GoalStatus, GoalUpdate, PluginInfo};

/// Most extra stat codes `validate-params` may return for one goal.
const MAX_EXTRA_STAT_CODES: usize = 256;
/// A warm instance keeps its request buffer between calls unless a large request grew it beyond this.
const KEEP_PACKED_BYTES: usize = 256 << 10;

/// A loaded plugin version: its compiled component ready to instantiate, its limits and a pool of warm instances.
/// `Send + Sync`; calls are synchronous and CPU-bound, so run them on threads that may block.
pub struct LoadedPlugin {
    info: PluginInfo,
    sha256: [u8; 32],
    ident: Arc<PluginIdent>,
    engine: Engine,
    pre: RulePluginPre<HostState>,
    caps: Caps,
    pool: Mutex<Pool>,
    /// Signalled whenever an instance goes back to the pool or is discarded.
    freed: Condvar,
    metrics: PluginMetrics,
}

/// Instances of one plugin at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Instances that exist: idle plus in use.
    pub live: usize,
    /// Warm instances waiting for a call.
    pub idle: usize,
}

struct Pool {
    limits: PluginLimits,
    /// Bumped when limits change; instances from older generations are discarded instead of reused.
    generation: u64,
    idle: Vec<Warm>,
    live: usize,
    /// Callers blocked in `with_instance`; notifying only when there are any avoids a futex syscall per call.
    waiting: usize,
}

struct Warm {
    store: Store<HostState>,
    plugin: RulePlugin,
    generation: u64,
    /// Buffer the requests for this instance are packed into.
    packed: Vec<u8>,
}

struct PluginMetrics {
    calls: Counter,
    seconds: Histogram,
    errors: Vec<Counter>,
}

impl PluginMetrics {
    fn new(ident: &PluginIdent) -> Self {
        let labels = [("plugin", ident.name.clone()), ("version", ident.version.clone())];
        PluginMetrics {
            calls: metrics::counter!("plugin_calls_total", &labels),
            seconds: metrics::histogram!("plugin_eval_seconds", &labels),
            errors: PluginError::KINDS
                .iter()
                .map(|kind| {
                    let mut labels = labels.to_vec();
                    labels.push(("kind", (*kind).to_owned()));
                    metrics::counter!("plugin_errors_total", &labels)
                })
                .collect(),
        }
    }
}

impl LoadedPlugin {
    pub(crate) fn start(
        engine: Engine,
        pre: RulePluginPre<HostState>,
        sha256: [u8; 32],
        caps: Caps,
        limits: PluginLimits,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let limits = caps.clip(limits);
        // Until the plugin has described itself its logs are tagged with its hash.
        let loading =
            Arc::new(PluginIdent { name: format!("sha256:{}", hex::encode(&sha256[..8])), version: "?".into() });
        let mut warm = instantiate(&engine, &pre, &loading, &limits, 0)?;
        let info: PluginInfo =
            call(&mut warm, &limits, |store, plugin| plugin.challenge_rules_rules().call_describe(store))
                .map_err(|e| PluginError::InvalidComponent(format!("describe() failed: {e}")))?
                .into();
        check_info(&info)?;

        let ident = Arc::new(PluginIdent { name: info.name.clone(), version: info.version.clone() });
        warm.store.data_mut().set_ident(ident.clone());
        let plugin = LoadedPlugin {
            metrics: PluginMetrics::new(&ident),
            info,
            sha256,
            ident,
            engine,
            pre,
            caps,
            pool: Mutex::new(Pool { limits, generation: 0, idle: vec![warm], live: 1, waiting: 0 }),
            freed: Condvar::new(),
        };
        tracing::info!(plugin = %plugin.ident.name, version = %plugin.ident.version, sha256 = %plugin.sha256_hex(), "rule plugin loaded");
        Ok(Arc::new(plugin))
    }

    /// What the plugin said about itself at load time.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    pub fn version(&self) -> &str {
        &self.info.version
    }

    /// sha256 of the component bytes this plugin was loaded from.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    pub fn limits(&self) -> PluginLimits {
        self.lock().limits.clone()
    }

    /// Replaces the plugin's limits (clipped to the runtime's ceilings). Calls that start afterwards use them; warm
    /// instances created under the old limits are dropped.
    pub fn set_limits(&self, limits: PluginLimits) {
        let stale = {
            let mut pool = self.lock();
            pool.limits = self.caps.clip(limits);
            pool.generation += 1;
            pool.live -= pool.idle.len();
            std::mem::take(&mut pool.idle)
        };
        drop(stale);
        self.freed.notify_all();
    }

    pub fn pool_stats(&self) -> PoolStats {
        let pool = self.lock();
        PoolStats { live: pool.live, idle: pool.idle.len() }
    }

    /// Checks a goal's configuration. `Ok` holds the stat codes the goal listens to besides its own;
    /// [`PluginError::Rejected`] carries the plugin's reason for refusing it.
    pub fn validate_params(&self, goal: &GoalSpec) -> Result<Vec<String>, PluginError> {
        let goal = goal.to_wit();
        let result = self.with_instance(|warm, limits| {
            let codes =
                call(warm, limits, |store, plugin| plugin.challenge_rules_rules().call_validate_params(store, &goal))?
                    .map_err(PluginError::Rejected)?;
            if codes.len() > MAX_EXTRA_STAT_CODES || codes.iter().any(|c| c.is_empty()) {
                return Err(PluginError::BadOutput(format!(
                    "validate-params returned {} stat codes (at most {MAX_EXTRA_STAT_CODES}, none empty)",
                    codes.len()
                )));
            }
            Ok(codes)
        });
        if let Err(e) = &result
            && !matches!(e, PluginError::Rejected(_))
        {
            self.log_failure("validate-params", e);
        }
        result
    }

    /// Applies the request's events, in order, to its goals. Returns one update per goal whose state changed, checked
    /// against the request and the plugin's limits; negative progress is clamped to 0 (the host never shows
    /// negative progress).
    pub fn evaluate(&self, request: &EvaluationRequest) -> Result<Vec<GoalUpdate>, PluginError> {
        let started = Instant::now();
        self.metrics.calls.increment(1);
        let result = self.with_instance(|warm, limits| {
            let size = request_size(request);
            if size > limits.max_input_bytes {
                return Err(PluginError::InputTooLarge { size, limit: limits.max_input_bytes });
            }
            let mut packed = std::mem::take(&mut warm.packed);
            wire::encode_request(
                &mut packed,
                &request.user_id,
                &request.events,
                Event::view,
                &request.goals,
                GoalInput::view,
            )
            .map_err(|_| PluginError::InputTooLarge { size, limit: u32::MAX as usize })?;
            let answer =
                call(warm, limits, |store, plugin| plugin.challenge_rules_rules().call_evaluate(store, &packed));
            if packed.capacity() <= KEEP_PACKED_BYTES {
                warm.packed = packed;
            }
            unpack_updates(&answer?.map_err(PluginError::Rejected)?, request, limits)
        });
        self.metrics.seconds.record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics.errors[e.kind_index()].increment(1);
            self.log_failure("evaluate", e);
        }
        result
    }

    fn log_failure(&self, function: &str, error: &PluginError) {
        tracing::warn!(
            plugin = %self.ident.name,
            version = %self.ident.version,
            kind = error.kind(),
            %error,
            "rule plugin {function} failed"
        );
    }

    /// Releases the pool lock and wakes one waiting caller, if any.
    fn wake_one(&self, pool: MutexGuard<'_, Pool>) {
        let waiting = pool.waiting > 0;
        drop(pool);
        if waiting {
            self.freed.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a warm instance (waiting while `max_instances` are busy). The instance goes back to the pool only
    /// if `f` succeeded and the limits did not change meanwhile; after any failure it is dropped, so a guest left in
    /// a broken state never serves again.
    fn with_instance<R>(
        &self,
        f: impl FnOnce(&mut Warm, &PluginLimits) -> Result<R, PluginError>,
    ) -> Result<R, PluginError> {
        let (reused, limits, generation) = {
            let mut pool = self.lock();
            loop {
                if let Some(warm) = pool.idle.pop() {
                    break (Some(warm), pool.limits.clone(), pool.generation);
                }
                if pool.live < pool.limits.max_instances {
                    pool.live += 1;
                    break (None, pool.limits.clone(), pool.generation);
                }
                pool.waiting += 1;
                pool = self.freed.wait(pool).unwrap_or_else(PoisonError::into_inner);
                pool.waiting -= 1;
            }
        };
        // From here the reserved slot is released by the lease, whatever happens.
        let mut lease = Lease { plugin: self, warm: reused, returned: false };
        let warm = match &mut lease.warm {
            Some(warm) => warm,
            empty => empty.insert(instantiate(&self.engine, &self.pre, &self.ident, &limits, generation)?),
        };
        let result = f(warm, &limits);
        // A request refused before the call leaves the instance untouched.
        if matches!(result, Ok(_) | Err(PluginError::InputTooLarge { .. })) {
            lease.give_back();
        }
        result
    }
}

/// A reserved instance slot (and, once created, its instance). Dropping it without [`Lease::give_back`] discards
/// the instance and frees the slot.
struct Lease<'a> {
    plugin: &'a LoadedPlugin,
    warm: Option<Warm>,
    returned: bool,
}

impl Lease<'_> {
    fn give_back(&mut self) {
        let Some(warm) = self.warm.take() else { return };
        self.returned = true;
        let mut pool = self.plugin.lock();
        if warm.generation == pool.generation {
            pool.idle.push(warm);
        } else {
            pool.live -= 1;
        }
        self.plugin.wake_one(pool);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.returned {
            return;
        }
        let discarded = self.warm.take();
        let mut pool = self.plugin.lock();
        pool.live -= 1;
        self.plugin.wake_one(pool);
        drop(discarded);
    }
}

fn instantiate(
    engine: &Engine,
    pre: &RulePluginPre<HostState>,
    ident: &Arc<PluginIdent>,
    limits: &PluginLimits,
    generation: u64,
) -> Result<Warm, PluginError> {
    let mut store = Store::new(engine, HostState::new(ident.clone(), limits));
    store.limiter(|state| state);
    store.set_hostcall_fuel(limits.output_copy_budget());
    store.set_fuel(limits.fuel_per_call).map_err(|e| PluginError::Runtime(format!("{e:#}")))?;
    match pre.instantiate(&mut store) {
        Ok(plugin) => Ok(Warm { store, plugin, generation, packed: Vec::new() }),
        Err(e) => Err(match classify(&e, store.data()) {
            // Not a guest fault: the pool or the limits left no room for another instance.
            PluginError::BadOutput(detail) => PluginError::OutOfMemory(format!("could not instantiate: {detail}")),
            other => other,
        }),
    }
}

/// Calls into the guest with a fresh fuel budget and log allowance.
fn call<R>(
    warm: &mut Warm,
    limits: &PluginLimits,
    f: impl FnOnce(&mut Store<HostState>, &RulePlugin) -> wasmtime::Result<R>,
) -> Result<R, PluginError> {
    let store = &mut warm.store;
    store.data_mut().begin_call();
    store.set_fuel(limits.fuel_per_call).map_err(|e| PluginError::Runtime(format!("{e:#}")))?;
    let result = f(store, &warm.plugin);
    store.data_mut().end_call();
    result.map_err(|e| classify(&e, store.data()))
}

/// Maps a Wasmtime error from a call to its cause. Errors that are neither traps nor resource limits come from the
/// canonical ABI rejecting what the guest handed back (bad pointers, invalid UTF-8 or enum values, too much data).
fn classify(error: &wasmtime::Error, state: &HostState) -> PluginError {
    if let Some(detail) = &state.refused_growth {
        return PluginError::OutOfMemory(detail.clone());
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginError::OutOfFuel,
        Some(trap) => PluginError::Trap(trap.to_string()),
        None => PluginError::BadOutput(format!("{error:#}")),
    }
}

fn check_info(info: &PluginInfo) -> Result<(), PluginError> {
    let sane = |s: &str| !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control);
    if !sane(&info.name) || !sane(&info.version) {
        return Err(PluginError::InvalidComponent(format!(
            "describe() must give a name and version of 1 to 128 printable characters (got {:?} {:?})",
            info.name, info.version
        )));
    }
    if info.kinds.is_empty() {
        return Err(PluginError::InvalidComponent("describe() lists no goal kinds".into()));
    }
    Ok(())
}

/// Unpacks a plugin's answer and checks it against the request and limits, clamping negative progress to 0. The
/// update count is checked before anything is copied, and each state's size before it is copied.
fn unpack_updates(
    packed: &[u8],
    request: &EvaluationRequest,
    limits: &PluginLimits,
) -> Result<Vec<GoalUpdate>, PluginError> {
    let bad = |detail: String| Err(PluginError::BadOutput(detail));
    let updates = PackedUpdates::parse(packed).map_err(|e| PluginError::BadOutput(e.to_string()))?;
    if updates.len() > limits.max_output_updates {
        return bad(format!("{} updates, limit {}", updates.len(), limits.max_output_updates));
    }
    let mut seen = vec![false; if updates.len() > 1 { request.goals.len() } else { 0 }];
    let mut unpacked = Vec::with_capacity(updates.len());
    for update in updates.iter() {
        let update = update.map_err(|e| PluginError::BadOutput(e.to_string()))?;
        let index = update.goal_index as usize;
        let Some(goal) = request.goals.get(index) else {
            return bad(format!("goal-index {index} out of range ({} goals in the request)", request.goals.len()));
        };
        if let Some(seen) = seen.get_mut(index) {
            if *seen {
                return bad(format!("goal-index {index} updated twice"));
            }
            *seen = true;
        }
        if goal.state.status == GoalStatus::Claimed {
            return bad(format!("update for claimed goal '{}'", goal.spec.goal_id));
        }
        if update.status == GoalStatus::Claimed {
            return bad(format!("goal '{}' set to claimed (only the host claims)", goal.spec.goal_id));
        }
        if update.status == GoalStatus::Completed && update.completed_at_ms.is_none() {
            return bad(format!("goal '{}' completed without completed-at-ms", goal.spec.goal_id));
        }
        if let Some(state) = update.state
            && state.len() > limits.max_state_bytes
        {
            return bad(format!(
                "state of goal '{}' is {} bytes, limit {}",
                goal.spec.goal_id,
                state.len(),
                limits.max_state_bytes
            ));
        }
        let mut update = update.to_owned();
        update.progress = update.progress.max(0);
        unpacked.push(update);
    }
    Ok(unpacked)
}

/// Estimated size of a request in bytes: its strings and blobs plus a fixed cost per event and goal (roughly their
/// size in the guest's memory). This is what [`PluginLimits::max_input_bytes`] is compared with.
pub fn request_size(request: &EvaluationRequest) -> usize {
    const EVENT_FIXED: usize = 48;
    const GOAL_FIXED: usize = 96;
    let events: usize = request.events.iter().map(|e| EVENT_FIXED + e.id.len() + e.stat_code.len()).sum();
    let goals: usize = request
        .goals
        .iter()
        .map(|g| {
            let spec = &g.spec;
            GOAL_FIXED
                + spec.goal_id.len()
                + spec.kind.len()
                + spec.stat_code.len()
                + spec.params.len()
                + g.state.state.as_ref().map_or(0, Vec::len)
        })
        .sum();
    request.user_id.len() + events + goals
}
