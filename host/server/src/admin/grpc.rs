//! The gRPC admin service (`challenge.admin.v1.PluginAdmin`): the REST admin operations, same checks and errors.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use challenge_proto::challenge::admin::v1 as pb;
use pb::plugin_admin_server::{PluginAdmin, PluginAdminServer};
use tonic::{Request, Response, Status};

use super::metrics::VersionMetrics;
use super::samples::{SampleEvent, SampleEventKind, SampleGoal, SampleMode, SampleState, SampleStatus};
use super::service::{self, ActivationView, DryRunRequest, PluginView, VersionView};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::rules::registry::{Limits, LimitsPatch};
use crate::state::AppState;

#[derive(Clone)]
pub struct AdminService {
    state: AppState,
}

/// The service, accepting messages big enough for a component upload.
pub fn service(state: AppState, max_message_bytes: usize) -> PluginAdminServer<AdminService> {
    let max = max_message_bytes.max(state.settings.plugins.max_upload_bytes.saturating_add(64 << 10));
    PluginAdminServer::new(AdminService { state }).max_decoding_message_size(max)
}

impl AdminService {
    async fn admin<T>(&self, request: &Request<T>) -> Result<Admin, Status> {
        let authorization = request.metadata().get("authorization").and_then(|value| value.to_str().ok());
        Ok(self.state.auth.admin(authorization).await?)
    }
}

fn limits(limits: &Limits) -> pb::Limits {
    pb::Limits {
        fuel_per_call: limits.fuel_per_call,
        max_memory_bytes: limits.max_memory_bytes,
        max_table_elements: limits.max_table_elements,
        max_instances: limits.max_instances,
        max_input_bytes: limits.max_input_bytes,
        max_output_updates: limits.max_output_updates,
        max_state_bytes: limits.max_state_bytes,
    }
}

fn patch(patch: Option<pb::LimitsPatch>) -> LimitsPatch {
    let patch = patch.unwrap_or_default();
    LimitsPatch {
        fuel_per_call: patch.fuel_per_call,
        max_memory_bytes: patch.max_memory_bytes,
        max_table_elements: patch.max_table_elements,
        max_instances: patch.max_instances,
        max_input_bytes: patch.max_input_bytes,
        max_output_updates: patch.max_output_updates,
        max_state_bytes: patch.max_state_bytes,
    }
}

fn version(view: VersionView) -> pb::PluginVersion {
    pb::PluginVersion {
        name: view.name,
        version: view.version,
        sha256: view.sha256,
        size_bytes: view.size_bytes,
        wit_world: view.wit_world,
        description: view.description,
        status: view.status,
        uploaded_by: view.uploaded_by,
        uploaded_at: view.uploaded_at,
        limits: Some(limits(&view.limits)),
        loaded: view.loaded,
        kinds: view.kinds.unwrap_or_default(),
        params_schema: view.params_schema.unwrap_or_default(),
    }
}

fn plugin(view: PluginView) -> pb::Plugin {
    pb::Plugin {
        name: view.name,
        active_version: view.active_version.unwrap_or_default(),
        previous_version: view.previous_version.unwrap_or_default(),
        activated_by: view.activated_by.unwrap_or_default(),
        activated_at: view.activated_at.unwrap_or_default(),
        serving_version: view.serving_version.unwrap_or_default(),
        versions: view.versions.into_iter().map(version).collect(),
    }
}

fn activation(view: ActivationView) -> pb::Activation {
    pb::Activation {
        name: view.name,
        active_version: view.active_version,
        previous_version: view.previous_version.unwrap_or_default(),
        activated_by: view.activated_by,
        activated_at: view.activated_at,
        changed: view.changed,
    }
}

fn version_metrics(metrics: VersionMetrics) -> pb::VersionMetrics {
    let latency = metrics.latency;
    pb::VersionMetrics {
        version: metrics.version,
        active: metrics.active,
        calls: metrics.calls,
        errors: metrics.errors.into_iter().collect(),
        latency: Some(pb::Latency {
            count: latency.count,
            sum_seconds: latency.sum_seconds,
            mean_seconds: latency.mean_seconds,
            p50_seconds: latency.p50_seconds,
            p90_seconds: latency.p90_seconds,
            p99_seconds: latency.p99_seconds,
            buckets: latency.buckets.into_iter().map(|b| pb::Bucket { le: b.le, count: b.count }).collect(),
        }),
    }
}

/// A word from a closed set, in the request's spelling (the same words as the REST JSON).
fn word<T: serde::de::DeserializeOwned>(field: &str, value: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(value.to_owned())).map_err(|_| {
        ApiError::invalid("INVALID_SAMPLE", format!("{field} '{value}' is not one of the accepted values"))
    })
}

fn sample_state(state: Option<pb::GoalState>) -> Result<SampleState, ApiError> {
    let Some(state) = state else { return Ok(SampleState::default()) };
    Ok(SampleState {
        progress: state.progress,
        status: if state.status.is_empty() { SampleStatus::default() } else { word("status", &state.status)? },
        completed_at_ms: state.completed_at_ms,
        baseline: state.baseline,
        state: state.state.map(|bytes| BASE64.encode(bytes)),
    })
}

fn goal_state(state: SampleState) -> pb::GoalState {
    let status = serde_json::to_value(state.status).ok().and_then(|v| v.as_str().map(str::to_owned));
    pb::GoalState {
        progress: state.progress,
        status: status.unwrap_or_default(),
        completed_at_ms: state.completed_at_ms,
        baseline: state.baseline,
        state: state.state.and_then(|text| BASE64.decode(text).ok()),
    }
}

fn dry_run_request(request: pb::DryRunRequest) -> Result<DryRunRequest, ApiError> {
    let goals = request
        .goals
        .into_iter()
        .map(|goal| {
            Ok(SampleGoal {
                goal_id: goal.goal_id,
                kind: goal.kind,
                stat_code: goal.stat_code,
                target: goal.target,
                progress_mode: goal
                    .progress_mode
                    .as_deref()
                    .map(|mode| word::<SampleMode>("progressMode", mode))
                    .transpose()?,
                daily: goal.daily,
                params: goal
                    .params_json
                    .as_deref()
                    .map(|text| {
                        serde_json::from_str(text).map_err(|err| {
                            ApiError::invalid("INVALID_SAMPLE", format!("params_json is not JSON: {err}"))
                        })
                    })
                    .transpose()?,
                state: sample_state(goal.state)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let events = request
        .events
        .into_iter()
        .map(|event| {
            Ok(SampleEvent {
                id: Some(event.id).filter(|id| !id.is_empty()),
                kind: if event.kind.is_empty() { SampleEventKind::default() } else { word("kind", &event.kind)? },
                stat_code: Some(event.stat_code).filter(|code| !code.is_empty()),
                value: event.value,
                increment: event.increment,
                sequence: event.sequence,
                timestamp_ms: event.timestamp_ms,
                timestamp: None,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(DryRunRequest { user_id: Some(request.user_id).filter(|id| !id.is_empty()), goals, events })
}

#[tonic::async_trait]
impl PluginAdmin for AdminService {
    async fn upload_plugin(
        &self,
        request: Request<pb::UploadPluginRequest>,
    ) -> Result<Response<pb::UploadPluginResponse>, Status> {
        let admin = self.admin(&request).await?;
        let request = request.into_inner();
        let (view, created) = service::upload(&self.state, &admin, request.component, &patch(request.limits)).await?;
        Ok(Response::new(pb::UploadPluginResponse { version: Some(version(view)), created }))
    }

    async fn list_plugins(
        &self,
        request: Request<pb::ListPluginsRequest>,
    ) -> Result<Response<pb::ListPluginsResponse>, Status> {
        self.admin(&request).await?;
        let name = Some(request.into_inner().name).filter(|name| !name.is_empty());
        let view = service::list(&self.state, name.as_deref()).await?;
        Ok(Response::new(pb::ListPluginsResponse {
            registry_revision: view.registry_revision,
            applied_revision: view.applied_revision,
            sync_error: view.sync_error.unwrap_or_default(),
            plugins: view.plugins.into_iter().map(plugin).collect(),
        }))
    }

    async fn get_plugin_version(
        &self,
        request: Request<pb::PluginVersionRef>,
    ) -> Result<Response<pb::PluginVersion>, Status> {
        self.admin(&request).await?;
        let target = request.into_inner();
        Ok(Response::new(version(service::show(&self.state, &target.name, &target.version).await?)))
    }

    async fn dry_run(&self, request: Request<pb::DryRunRequest>) -> Result<Response<pb::DryRunResponse>, Status> {
        self.admin(&request).await?;
        let request = request.into_inner();
        let (name, version) = (request.name.clone(), request.version.clone());
        let view = service::dry_run(&self.state, &name, &version, dry_run_request(request)?).await?;
        Ok(Response::new(pb::DryRunResponse {
            name: view.plugin,
            version: view.version,
            results: view
                .outcome
                .results
                .into_iter()
                .map(|result| pb::GoalResult {
                    goal_id: result.goal_id,
                    changed: result.changed,
                    state: Some(goal_state(result.state)),
                    source: result
                        .source
                        .and_then(|source| serde_json::to_value(source).ok())
                        .and_then(|value| value.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    params_error: result.params_error.unwrap_or_default(),
                })
                .collect(),
            error: view.outcome.error.map(|failure| pb::PluginFailure { kind: failure.kind, message: failure.message }),
        }))
    }

    async fn activate_version(
        &self,
        request: Request<pb::PluginVersionRef>,
    ) -> Result<Response<pb::Activation>, Status> {
        let admin = self.admin(&request).await?;
        let target = request.into_inner();
        let view = service::activate(&self.state, &admin, &target.name, &target.version).await?;
        Ok(Response::new(activation(view)))
    }

    async fn rollback(&self, request: Request<pb::PluginRef>) -> Result<Response<pb::Activation>, Status> {
        let admin = self.admin(&request).await?;
        let view = service::rollback(&self.state, &admin, &request.into_inner().name).await?;
        Ok(Response::new(activation(view)))
    }

    async fn set_limits(
        &self,
        request: Request<pb::SetLimitsRequest>,
    ) -> Result<Response<pb::SetLimitsResponse>, Status> {
        self.admin(&request).await?;
        let request = request.into_inner();
        let view = service::set_limits(&self.state, &request.name, &patch(request.limits)).await?;
        Ok(Response::new(pb::SetLimitsResponse {
            name: view.name,
            limits: Some(limits(&view.limits)),
            versions_updated: view.versions_updated,
        }))
    }

    async fn delete_version(
        &self,
        request: Request<pb::PluginVersionRef>,
    ) -> Result<Response<pb::DeleteVersionResponse>, Status> {
        self.admin(&request).await?;
        let target = request.into_inner();
        service::delete(&self.state, &target.name, &target.version).await?;
        Ok(Response::new(pb::DeleteVersionResponse {}))
    }

    async fn get_metrics(&self, request: Request<pb::PluginRef>) -> Result<Response<pb::PluginMetrics>, Status> {
        self.admin(&request).await?;
        let view = service::metrics(&self.state, &request.into_inner().name).await?;
        Ok(Response::new(pb::PluginMetrics {
            plugin: view.plugin,
            active_version: view.active_version.unwrap_or_default(),
            versions: view.versions.into_iter().map(version_metrics).collect(),
        }))
    }

    async fn reload_config(
        &self,
        request: Request<pb::ReloadConfigRequest>,
    ) -> Result<Response<pb::ConfigSummary>, Status> {
        self.admin(&request).await?;
        let view = service::reload_config(&self.state).await?;
        Ok(Response::new(pb::ConfigSummary {
            version: view.version,
            challenges: view.challenges as u64,
            goals: view.goals as u64,
        }))
    }
}
