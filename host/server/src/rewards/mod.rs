//! Delivery of claimed rewards from the `reward_grants` outbox.
//!
//! A claim writes its grant into the outbox in the same transaction that marks the goal claimed, so a grant is
//! never lost and never created twice. Delivery happens afterwards:
//! - right away, from the claim request, waiting at most `claim_wait_ms` (the response says `delivered` or
//!   `pending`); an attempt still running then finishes in the background;
//! - and by the [`worker`], which leases due grants (atomically, so several instances never deliver the same grant
//!   at once) and retries with exponential backoff until the platform acknowledges, or marks the grant `failed`
//!   on an error retrying cannot fix.
//!
//! Every attempt of a grant carries the grant's idempotency key, so the platform can ignore a repeat of a request
//! it already applied (a retry after a timeout, or a lease that ran out).

mod http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use challenge_storage::{GrantStatus, RewardGrant, Store};
use chrono::Utc;
use futures::StreamExt;
use rand::Rng;
use tokio::sync::watch;

pub use http::HttpRewardClient;

use crate::settings::RewardSettings;

/// Why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewardError {
    /// Worth retrying later: network trouble, timeouts, 408, 429, 5xx.
    #[error("{0}")]
    Retryable(String),
    /// Retrying the same request cannot succeed (unknown item or currency, rejected request).
    #[error("{0}")]
    Permanent(String),
}

/// Grants one reward on the platform. Implementations must pass `grant.idempotency_key` along.
#[async_trait]
pub trait RewardClient: Send + Sync {
    async fn grant(&self, grant: &RewardGrant) -> Result<(), RewardError>;
}

/// Development client: logs the grant and reports success.
pub struct LoggingRewardClient;

#[async_trait]
impl RewardClient for LoggingRewardClient {
    async fn grant(&self, grant: &RewardGrant) -> Result<(), RewardError> {
        tracing::info!(
            user = %grant.user_id,
            goal = %grant.goal_id,
            reward_type = grant.reward_type.as_str(),
            reward = %grant.reward_id,
            quantity = grant.quantity,
            idempotency_key = %grant.idempotency_key,
            "reward granted (logging client: nothing was sent)"
        );
        Ok(())
    }
}

/// The client the settings ask for: HTTP when `rewards.base_url` is set, else the logging client.
pub fn client_from_settings(settings: &RewardSettings, embedded: bool) -> anyhow::Result<Arc<dyn RewardClient>> {
    match &settings.base_url {
        Some(base_url) => Ok(Arc::new(HttpRewardClient::new(base_url, settings.token.clone(), settings.timeout())?)),
        None => {
            if !embedded {
                tracing::warn!("rewards.base_url is not set: claimed rewards are only logged, never granted");
            }
            Ok(Arc::new(LoggingRewardClient))
        }
    }
}

impl RewardSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    fn lease(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::seconds(self.lease_secs as i64)
    }

    /// Delay before the next attempt of a grant that has failed `attempts` times so far (this one included):
    /// exponential from `retry_initial_ms`, capped at `retry_max_ms`, with ±20% jitter so a recovering platform
    /// is not hit by every grant at once.
    fn backoff(&self, attempts: i32) -> Duration {
        let exponent = attempts.clamp(1, 30) as u32 - 1;
        let base = self.retry_initial_ms.saturating_mul(1u64 << exponent).min(self.retry_max_ms.max(1));
        let jitter = rand::rng().random_range(0.8..1.2);
        Duration::from_millis((base as f64 * jitter) as u64)
    }
}

/// Delivers grants and records each outcome in the outbox.
pub struct RewardDelivery {
    store: Arc<dyn Store>,
    client: Arc<dyn RewardClient>,
    settings: RewardSettings,
}

impl RewardDelivery {
    pub fn new(store: Arc<dyn Store>, client: Arc<dyn RewardClient>, settings: RewardSettings) -> Arc<Self> {
        Arc::new(Self { store, client, settings })
    }

    /// First delivery of a just-claimed grant: waits at most `claim_wait_ms` and reports where the grant stands.
    /// If another worker holds the grant, or the attempt outlasts the wait, the answer is `Pending` and the attempt
    /// (if any) carries on in the background.
    pub async fn deliver_now(self: &Arc<Self>, grant_id: i64) -> GrantStatus {
        let now = Utc::now();
        let grant = match self.store.lease_grant(grant_id, now, now + self.settings.lease()).await {
            Ok(Some(grant)) => grant,
            Ok(None) => return GrantStatus::Pending,
            Err(err) => {
                tracing::warn!(grant_id, error = %err, "could not lease a new grant; the outbox worker will deliver it");
                return GrantStatus::Pending;
            }
        };
        let delivery = Arc::clone(self);
        let mut attempt = tokio::spawn(async move { delivery.attempt(grant).await });
        let wait = Duration::from_millis(self.settings.claim_wait_ms);
        match tokio::time::timeout(wait, &mut attempt).await {
            Ok(Ok(status)) => status,
            Ok(Err(_)) | Err(_) => GrantStatus::Pending,
        }
    }

    /// One attempt of a leased grant; records the outcome and returns the grant's new status.
    async fn attempt(&self, grant: RewardGrant) -> GrantStatus {
        let started = Instant::now();
        let outcome = self.client.grant(&grant).await;
        metrics::histogram!("reward_delivery_seconds").record(started.elapsed().as_secs_f64());
        let (status, recorded) = match outcome {
            Ok(()) => {
                metrics::counter!("reward_deliveries_total", "outcome" => "delivered").increment(1);
                (GrantStatus::Delivered, self.store.mark_grant_delivered(grant.id, Utc::now()).await)
            }
            Err(RewardError::Retryable(error)) => {
                metrics::counter!("reward_deliveries_total", "outcome" => "retry").increment(1);
                let delay = self.settings.backoff(grant.attempts + 1);
                tracing::warn!(grant_id = grant.id, attempts = grant.attempts + 1, ?delay, %error, "reward delivery failed; will retry");
                let next = Utc::now() + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::MAX);
                (GrantStatus::Pending, self.store.reschedule_grant(grant.id, &error, next).await)
            }
            Err(RewardError::Permanent(error)) => {
                metrics::counter!("reward_deliveries_total", "outcome" => "failed").increment(1);
                tracing::error!(
                    grant_id = grant.id,
                    user = %grant.user_id,
                    goal = %grant.goal_id,
                    %error,
                    "reward delivery refused; the grant is marked failed and needs an operator"
                );
                (GrantStatus::Failed, self.store.mark_grant_failed(grant.id, &error).await)
            }
        };
        if let Err(err) = recorded {
            // The lease runs out and the grant is attempted again with the same idempotency key.
            tracing::error!(grant_id = grant.id, error = %err, "could not record a delivery outcome");
        }
        status
    }

    /// The outbox worker: delivers due grants until `stopped` turns true.
    ///
    /// It leaves a grant alone for `claim_wait_ms` after it falls due, so a fresh claim's own first attempt never
    /// races the worker for the lease (its response can then say `delivered`); retries start that much later.
    pub async fn worker(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let grace = chrono::TimeDelta::milliseconds(self.settings.claim_wait_ms as i64);
        loop {
            let now = Utc::now();
            let leased =
                self.store.lease_due_grants(now - grace, now + self.settings.lease(), self.settings.batch_size).await;
            let full_batch = match leased {
                Ok(grants) => {
                    let count = grants.len();
                    futures::stream::iter(grants)
                        .for_each_concurrent(self.settings.concurrency, |grant| async {
                            self.attempt(grant).await;
                        })
                        .await;
                    count == self.settings.batch_size as usize
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reward outbox unavailable; retrying");
                    false
                }
            };
            if *stopped.borrow() {
                return;
            }
            if !full_batch {
                tokio::select! {
                    _ = stopped.wait_for(|stop| *stop) => return,
                    () = tokio::time::sleep(poll) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = RewardSettings { retry_initial_ms: 1_000, retry_max_ms: 10_000, ..RewardSettings::default() };
        let within = |attempts, ms: u64| {
            let delay = settings.backoff(attempts).as_millis() as u64;
            assert!((ms * 8 / 10..=ms * 12 / 10).contains(&delay), "attempt {attempts}: {delay} ms, expected ~{ms}");
        };
        within(1, 1_000);
        within(2, 2_000);
        within(3, 4_000);
        within(5, 10_000);
        within(60, 10_000);
    }
}
