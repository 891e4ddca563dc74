//! Rewards granted through an AccelByte-Platform-style HTTP API:
//! - items: `POST {base}/platform/admin/namespaces/{ns}/users/{userId}/fulfillment`
//!   with `{"itemId", "quantity", "source": "REWARD"}`;
//! - wallet credits: `PUT {base}/platform/admin/namespaces/{ns}/users/{userId}/wallets/{currency}/credit`
//!   with `{"amount", "source": "REWARD", "reason"}`.
//!
//! Every request carries `Authorization: Bearer <rewards.token>` (when set) and `Idempotency-Key: <grant key>`.
//! 2xx is success; 408, 429, 5xx and transport failures are retryable; other 4xx are permanent.

use std::time::Duration;

use async_trait::async_trait;
use challenge_storage::{RewardGrant, RewardType};
use reqwest::{Method, StatusCode, Url};
use serde_json::json;

use super::{RewardClient, RewardError};

/// Header carrying the grant's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Longest excerpt of an error response kept in the outbox's `last_error`.
const ERROR_BODY_CHARS: usize = 300;

pub struct HttpRewardClient {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl HttpRewardClient {
    pub fn new(base_url: &str, token: Option<String>, timeout: Duration) -> anyhow::Result<Self> {
        let base =
            Url::parse(base_url).map_err(|err| anyhow::anyhow!("invalid rewards.base_url '{base_url}': {err}"))?;
        anyhow::ensure!(!base.cannot_be_a_base(), "rewards.base_url '{base_url}' cannot be a base URL");
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .build()
            .map_err(|err| anyhow::anyhow!("building the rewards HTTP client: {err}"))?;
        Ok(Self { base, token, http })
    }

    /// `{base}/platform/admin/namespaces/{ns}/users/{user}/{tail...}`, every segment percent-encoded.
    fn url(&self, grant: &RewardGrant, tail: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            segments.extend(["platform", "admin", "namespaces", &grant.namespace, "users", &grant.user_id]);
            segments.extend(tail);
        }
        url
    }

    fn request(&self, grant: &RewardGrant) -> Result<(Method, Url, serde_json::Value), RewardError> {
        match grant.reward_type {
            RewardType::Item => {
                // The platform takes a 32-bit quantity.
                let quantity = i32::try_from(grant.quantity).map_err(|_| {
                    RewardError::Permanent(format!(
                        "item quantity {} does not fit the platform's range",
                        grant.quantity
                    ))
                })?;
                let body = json!({"itemId": grant.reward_id, "quantity": quantity, "source": "REWARD"});
                Ok((Method::POST, self.url(grant, &["fulfillment"]), body))
            }
            RewardType::Wallet => {
                let body = json!({
                    "amount": grant.quantity,
                    "source": "REWARD",
                    "reason": format!("challenge {} goal {}", grant.challenge_id, grant.goal_id),
                });
                Ok((Method::PUT, self.url(grant, &["wallets", &grant.reward_id, "credit"]), body))
            }
        }
    }
}

#[async_trait]
impl RewardClient for HttpRewardClient {
    async fn grant(&self, grant: &RewardGrant) -> Result<(), RewardError> {
        let (method, url, body) = self.request(grant)?;
        let mut request = self.http.request(method, url).header(IDEMPOTENCY_HEADER, &grant.idempotency_key).json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|err| RewardError::Retryable(format!("request failed: {err}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(ERROR_BODY_CHARS).collect();
        let message = format!("HTTP {}: {excerpt}", status.as_u16());
        if is_retryable(status) { Err(RewardError::Retryable(message)) } else { Err(RewardError::Permanent(message)) }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || !status.is_client_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use challenge_storage::GrantStatus;
    use chrono::Utc;

    fn grant(reward_type: RewardType, quantity: i64) -> RewardGrant {
        RewardGrant {
            id: 1,
            idempotency_key: "claim:u:g:1".into(),
            user_id: "user/with space".into(),
            namespace: "ns".into(),
            challenge_id: "c".into(),
            goal_id: "g".into(),
            reward_type,
            reward_id: "GOLD".into(),
            quantity,
            status: GrantStatus::Pending,
            attempts: 0,
            next_attempt_at: Utc::now(),
            last_error: None,
            created_at: Utc::now(),
            delivered_at: None,
        }
    }

    #[test]
    fn paths_follow_the_platform_api_and_encode_ids() {
        let client = HttpRewardClient::new("http://platform.local/base/", None, Duration::from_secs(1)).unwrap();
        let (method, url, body) = client.request(&grant(RewardType::Wallet, 5)).unwrap();
        assert_eq!(method, Method::PUT);
        assert_eq!(
            url.as_str(),
            "http://platform.local/base/platform/admin/namespaces/ns/users/user%2Fwith%20space/wallets/GOLD/credit"
        );
        assert_eq!(body["amount"], 5);
        let (method, url, body) = client.request(&grant(RewardType::Item, 2)).unwrap();
        assert_eq!(method, Method::POST);
        assert!(url.as_str().ends_with("/users/user%2Fwith%20space/fulfillment"), "{url}");
        assert_eq!((body["itemId"].as_str(), body["quantity"].as_i64()), (Some("GOLD"), Some(2)));
        assert!(matches!(client.request(&grant(RewardType::Item, 1 << 40)), Err(RewardError::Permanent(_))));
    }

    #[test]
    fn only_timeouts_throttling_and_server_errors_are_retried() {
        for code in [408, 429, 500, 502, 503] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }
}
