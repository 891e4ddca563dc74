//! The Redis connection shared by the cache, event dedupe and cross-instance notifications.
//! Redis is optional and never a hard dependency: when it is down, callers fall back and count the error.

use std::time::Duration;

use anyhow::Context;
use fred::prelude::*;

/// How long start-up waits for the first connection before carrying on degraded.
const CONNECT_WAIT: Duration = Duration::from_secs(3);

/// Connects to `url`; a Redis that is down at start-up is logged, and the client keeps reconnecting.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let config = Config::from_url(url).with_context(|| format!("invalid REDIS_URL '{url}'"))?;
    let client = Builder::from_config(config)
        .with_connection_config(|connection| {
            connection.connection_timeout = Duration::from_secs(2);
            connection.internal_command_timeout = Duration::from_secs(2);
        })
        .with_performance_config(|performance| {
            performance.default_command_timeout = Duration::from_millis(500);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
        .context("building the Redis client")?;
    client.connect();
    match tokio::time::timeout(CONNECT_WAIT, client.wait_for_connect()).await {
        Ok(Ok(())) => tracing::info!("connected to Redis"),
        Ok(Err(err)) => tracing::error!(error = %err, "Redis unavailable at start-up; running degraded"),
        Err(_) => tracing::error!("Redis did not answer at start-up; running degraded"),
    }
    Ok(client)
}
