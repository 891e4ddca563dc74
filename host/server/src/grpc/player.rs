//! The player API over gRPC (`challenge.v1.ChallengeService`): the same operations as REST, authenticated by the
//! `authorization` metadata entry (`Bearer <jwt>`).

use challenge_proto::challenge::v1 as proto;
use proto::challenge_service_server::{ChallengeService, ChallengeServiceServer};
use tonic::{Request, Response, Status};

use crate::auth::Player;
use crate::error::ApiError;
use crate::player::Listing;
use crate::state::AppState;

pub struct PlayerService {
    state: AppState,
}

pub fn service(state: AppState, max_message_bytes: usize) -> ChallengeServiceServer<PlayerService> {
    ChallengeServiceServer::new(PlayerService { state }).max_decoding_message_size(max_message_bytes)
}

impl PlayerService {
    async fn player<T>(&self, request: &Request<T>) -> Result<Player, ApiError> {
        let authorization = request.metadata().get("authorization").and_then(|value| value.to_str().ok());
        self.state.auth.player(authorization).await
    }
}

#[tonic::async_trait]
impl ChallengeService for PlayerService {
    #[tracing::instrument(name = "grpc.GetUserChallenges", skip_all)]
    async fn get_user_challenges(
        &self,
        request: Request<proto::GetChallengesRequest>,
    ) -> Result<Response<proto::GetChallengesResponse>, Status> {
        let player = self.player(&request).await?;
        let listing = if request.get_ref().active_only { Listing::ActiveOnly } else { Listing::All };
        let list = self.state.player.challenges(&player, listing).await?;
        Ok(Response::new(list.proto()))
    }

    #[tracing::instrument(name = "grpc.GetUserChallenge", skip_all)]
    async fn get_user_challenge(
        &self,
        request: Request<proto::GetChallengeRequest>,
    ) -> Result<Response<proto::Challenge>, Status> {
        let player = self.player(&request).await?;
        let challenge = self.state.player.challenge(&player, &request.get_ref().challenge_id).await?;
        Ok(Response::new(challenge.proto()))
    }

    #[tracing::instrument(name = "grpc.InitializePlayer", skip_all)]
    async fn initialize_player(
        &self,
        request: Request<proto::InitializeRequest>,
    ) -> Result<Response<proto::InitializeResponse>, Status> {
        let player = self.player(&request).await?;
        Ok(Response::new(self.state.player.initialize(&player).await?.proto()))
    }

    #[tracing::instrument(name = "grpc.SetGoalActive", skip_all)]
    async fn set_goal_active(
        &self,
        request: Request<proto::SetGoalActiveRequest>,
    ) -> Result<Response<proto::SetGoalActiveResponse>, Status> {
        let player = self.player(&request).await?;
        let body = request.get_ref();
        let response =
            self.state.player.set_goal_active(&player, &body.challenge_id, &body.goal_id, body.is_active).await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(name = "grpc.BatchSelectGoals", skip_all)]
    async fn batch_select_goals(
        &self,
        request: Request<proto::BatchSelectRequest>,
    ) -> Result<Response<proto::GoalSelectionResponse>, Status> {
        let player = self.player(&request).await?;
        let body = request.get_ref();
        let response =
            self.state.player.batch_select(&player, &body.challenge_id, &body.goal_ids, body.replace_existing).await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(name = "grpc.RandomSelectGoals", skip_all)]
    async fn random_select_goals(
        &self,
        request: Request<proto::RandomSelectRequest>,
    ) -> Result<Response<proto::GoalSelectionResponse>, Status> {
        let player = self.player(&request).await?;
        let body = request.get_ref();
        let response = self
            .state
            .player
            .random_select(&player, &body.challenge_id, body.count, body.replace_existing, body.exclude_active)
            .await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(name = "grpc.ClaimGoalReward", skip_all)]
    async fn claim_goal_reward(
        &self,
        request: Request<proto::ClaimRewardRequest>,
    ) -> Result<Response<proto::ClaimRewardResponse>, Status> {
        let player = self.player(&request).await?;
        let body = request.get_ref();
        Ok(Response::new(self.state.player.claim(&player, &body.challenge_id, &body.goal_id).await?))
    }

    #[tracing::instrument(name = "grpc.GetRotationStatus", skip_all)]
    async fn get_rotation_status(
        &self,
        request: Request<proto::GetRotationStatusRequest>,
    ) -> Result<Response<proto::GetRotationStatusResponse>, Status> {
        let player = self.player(&request).await?;
        Ok(Response::new(self.state.player.rotation(&player, &request.get_ref().challenge_id)?))
    }
}
