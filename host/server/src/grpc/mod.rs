//! gRPC transport (tonic): event ingestion services and the player API, all on the gRPC port.

pub mod events;
pub mod player;

use std::sync::Arc;

use tonic::service::Routes;

use crate::pipeline::Pipeline;
use crate::state::AppState;

/// Every gRPC service of the server, ready to be served.
pub fn routes(state: AppState, pipeline: Arc<Pipeline>) -> Routes {
    let max = state.settings.grpc.max_message_bytes;
    events::routes(pipeline, max)
        .add_service(player::service(state.clone(), max))
        .add_service(crate::admin::grpc::service(state, max))
}
