//! Who is calling: bearer JWTs for players (HS256 shared secret, or RS256/ES256 keys from a JWKS URL), an admin
//! credential for operators, and an explicit, loudly logged development mode that accepts unsigned tokens.
//!
//! A player is identified by the token's `sub`; every player operation only ever touches that user's rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// `dev` when the server runs embedded (no DATABASE_URL), otherwise refuse to start until configured.
    Auto,
    /// Tokens signed with `hs256_secret`.
    Hs256,
    /// RS256/ES256 tokens verified with keys from `jwks_url`.
    Jwks,
    /// Accept unsigned (or unverified) tokens. Development only; logged loudly at start-up.
    Dev,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub hs256_secret: Option<String>,
    pub jwks_url: Option<String>,
    /// How often the key set is refreshed; an unknown `kid` also triggers a (rate-limited) refresh.
    pub jwks_refresh_secs: u64,
    /// Claim holding the player's namespace.
    pub namespace_claim: String,
    /// Expected `iss` / `aud`, when set.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Static bearer token for the admin API (compare in constant time). Unset: admin needs a JWT with `admin_role`.
    pub admin_token: Option<String>,
    /// A JWT whose `roles` (or `permissions`) claim lists this is an admin.
    pub admin_role: String,
    /// Clock skew tolerated on `exp`/`nbf`.
    pub leeway_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::Auto,
            hs256_secret: None,
            jwks_url: None,
            jwks_refresh_secs: 600,
            namespace_claim: "namespace".to_owned(),
            issuer: None,
            audience: None,
            admin_token: None,
            admin_role: "challenge-admin".to_owned(),
            leeway_secs: 30,
        }
    }
}

/// An authenticated player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    pub user_id: String,
    pub namespace: Option<String>,
}

/// An authenticated operator (admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub subject: String,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<i64>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(flatten)]
    other: HashMap<String, serde_json::Value>,
}

enum Verifier {
    Hs256(DecodingKey),
    Jwks(JwksCache),
    Dev,
}

pub struct Authenticator {
    verifier: Verifier,
    settings: AuthSettings,
}

impl Authenticator {
    /// Builds the authenticator; `embedded` tells whether the server runs on its embedded defaults.
    pub fn new(settings: AuthSettings, embedded: bool) -> anyhow::Result<Self> {
        let mode = match settings.mode {
            AuthMode::Auto if embedded => AuthMode::Dev,
            AuthMode::Auto => anyhow::bail!(
                "auth.mode is not configured: set CHALLENGE_AUTH__MODE to hs256 or jwks (dev accepts unsigned tokens)"
            ),
            mode => mode,
        };
        let verifier = match mode {
            AuthMode::Hs256 => {
                let secret = settings.hs256_secret.as_deref().filter(|s| s.len() >= 16).ok_or_else(|| {
                    anyhow::anyhow!("auth.mode = hs256 needs auth.hs256_secret of at least 16 characters")
                })?;
                Verifier::Hs256(DecodingKey::from_secret(secret.as_bytes()))
            }
            AuthMode::Jwks => {
                let url =
                    settings.jwks_url.clone().ok_or_else(|| anyhow::anyhow!("auth.mode = jwks needs auth.jwks_url"))?;
                Verifier::Jwks(JwksCache::new(url, Duration::from_secs(settings.jwks_refresh_secs)))
            }
            AuthMode::Dev => {
                tracing::warn!("==================================================================");
                tracing::warn!("AUTH IS IN DEVELOPMENT MODE: UNSIGNED TOKENS ARE ACCEPTED.");
                tracing::warn!("Anyone can act as any player. Never run this way in production.");
                tracing::warn!("==================================================================");
                Verifier::Dev
            }
            AuthMode::Auto => unreachable!("resolved above"),
        };
        Ok(Self { verifier, settings })
    }

    pub fn is_dev_mode(&self) -> bool {
        matches!(self.verifier, Verifier::Dev)
    }

    /// Authenticates a player from an `Authorization` header value.
    pub async fn player(&self, authorization: Option<&str>) -> Result<Player, ApiError> {
        let claims = self.claims(authorization).await?;
        let user_id = claims
            .sub
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::unauthenticated("the token has no subject (sub)"))?;
        let namespace = claims.other.get(&self.settings.namespace_claim).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(Player { user_id, namespace })
    }

    /// Authenticates an operator: the configured admin token, or a valid JWT carrying the admin role.
    /// A valid player token without the role gets 403.
    pub async fn admin(&self, authorization: Option<&str>) -> Result<Admin, ApiError> {
        let token = bearer(authorization)?;
        if let Some(expected) = &self.settings.admin_token
            && constant_time_eq(token.as_bytes(), expected.as_bytes())
        {
            return Ok(Admin { subject: "admin-token".to_owned() });
        }
        let claims = self.claims(authorization).await?;
        let role = &self.settings.admin_role;
        if claims.roles.iter().chain(&claims.permissions).any(|r| r == role) {
            Ok(Admin { subject: claims.sub.unwrap_or_default() })
        } else {
            Err(ApiError::forbidden(format!("the admin API needs the '{role}' role")))
        }
    }

    async fn claims(&self, authorization: Option<&str>) -> Result<Claims, ApiError> {
        let token = bearer(authorization)?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| ApiError::unauthenticated(format!("malformed token: {e}")));
        match &self.verifier {
            Verifier::Dev => {
                let claims = insecure_claims(token)?;
                if let Some(exp) = claims.exp
                    && exp + self.settings.leeway_secs as i64 <= chrono::Utc::now().timestamp()
                {
                    return Err(ApiError::unauthenticated("the token has expired"));
                }
                Ok(claims)
            }
            Verifier::Hs256(key) => {
                header?;
                self.verify(token, key, Algorithm::HS256)
            }
            Verifier::Jwks(cache) => {
                let header = header?;
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(ApiError::unauthenticated(format!("unsupported token algorithm {:?}", header.alg)));
                }
                let key = cache.key(header.kid.as_deref()).await?;
                self.verify(token, &key, header.alg)
            }
        }
    }

    fn verify(&self, token: &str, key: &DecodingKey, algorithm: Algorithm) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.settings.leeway_secs;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.settings.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| ApiError::unauthenticated(format!("invalid token: {e}")))
    }
}

fn bearer(authorization: Option<&str>) -> Result<&str, ApiError> {
    let value = authorization.ok_or_else(|| ApiError::unauthenticated("missing Authorization header"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthenticated("Authorization must be 'Bearer <token>'"))?;
    Ok(token)
}

/// Reads a token's claims without checking its signature (development mode only).
fn insecure_claims(token: &str) -> Result<Claims, ApiError> {
    let payload = token.split('.').nth(1).ok_or_else(|| ApiError::unauthenticated("malformed token"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| ApiError::unauthenticated("malformed token payload"))?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::unauthenticated("malformed token claims"))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Keys fetched from a JWKS URL, cached and refreshed; an unknown `kid` triggers at most one refresh per
/// [`MIN_REFETCH`], so forged `kid`s cannot hammer the identity provider.
struct JwksCache {
    url: String,
    refresh: Duration,
    keys: ArcSwapOption<(Instant, HashMap<String, DecodingKey>)>,
    fetch_lock: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

const MIN_REFETCH: Duration = Duration::from_secs(10);

impl JwksCache {
    fn new(url: String, refresh: Duration) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { url, refresh, keys: ArcSwapOption::empty(), fetch_lock: Mutex::new(None), http }
    }

    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, ApiError> {
        let kid = kid.unwrap_or("");
        if let Some(cached) = self.keys.load_full()
            && cached.0.elapsed() < self.refresh
            && let Some(key) = lookup(&cached.1, kid)
        {
            return Ok(key);
        }
        self.refetch().await?;
        let cached = self
            .keys
            .load_full()
            .ok_or_else(|| ApiError::unavailable("JWKS_UNAVAILABLE", "signing keys unavailable"))?;
        lookup(&cached.1, kid).ok_or_else(|| ApiError::unauthenticated(format!("unknown signing key '{kid}'")))
    }

    async fn refetch(&self) -> Result<(), ApiError> {
        let mut last = self.fetch_lock.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_REFETCH) && self.keys.load().is_some() {
            return Ok(());
        }
        *last = Some(Instant::now());
        let set: JwkSet = async { self.http.get(&self.url).send().await?.error_for_status()?.json().await }
            .await
            .map_err(|e: reqwest::Error| {
                tracing::error!(url = %self.url, error = %e, "fetching JWKS failed");
                ApiError::unavailable("JWKS_UNAVAILABLE", "signing keys unavailable")
            })?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(jwk.common.key_id.clone().unwrap_or_default(), key);
            }
        }
        self.keys.store(Some(Arc::new((Instant::now(), keys))));
        Ok(())
    }
}

/// A token without `kid` is accepted when the set holds exactly one key.
fn lookup(keys: &HashMap<String, DecodingKey>, kid: &str) -> Option<DecodingKey> {
    keys.get(kid)
        .cloned()
        .or_else(|| if kid.is_empty() && keys.len() == 1 { keys.values().next().cloned() } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "unit-test-secret-0123456789";

    fn hs256() -> Authenticator {
        let settings = AuthSettings { mode: AuthMode::Hs256, hs256_secret: Some(SECRET.into()), ..Default::default() };
        Authenticator::new(settings, false).unwrap()
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        let t = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
        format!("Bearer {t}")
    }

    fn in_an_hour() -> i64 {
        chrono::Utc::now().timestamp() + 3600
    }

    #[tokio::test]
    async fn a_signed_token_names_the_player() {
        let auth = hs256();
        let header = token(json!({"sub": "alice", "namespace": "game", "exp": in_an_hour()}), SECRET);
        let player = auth.player(Some(&header)).await.unwrap();
        assert_eq!(player, Player { user_id: "alice".into(), namespace: Some("game".into()) });
    }

    #[tokio::test]
    async fn expired_malformed_unsigned_and_wrongly_signed_tokens_are_401() {
        let auth = hs256();
        let cases = [
            token(json!({"sub": "alice", "exp": chrono::Utc::now().timestamp() - 3600}), SECRET),
            token(json!({"sub": "alice", "exp": in_an_hour()}), "another-secret-0123456789"),
            "Bearer not.a.token".to_owned(),
            "Basic abc".to_owned(),
            format!("Bearer {}", dev_token(json!({"sub": "alice", "exp": in_an_hour()}))),
        ];
        for header in cases {
            let err = auth.player(Some(&header)).await.unwrap_err();
            assert_eq!(err.http_status(), 401, "{header}: {err}");
        }
        assert_eq!(auth.player(None).await.unwrap_err().http_status(), 401);
    }

    fn dev_token(claims: serde_json::Value) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.", engine.encode(br#"{"alg":"none"}"#), engine.encode(claims.to_string()))
    }

    #[tokio::test]
    async fn dev_mode_is_explicit_and_still_checks_expiry() {
        assert!(Authenticator::new(AuthSettings::default(), false).is_err(), "auto mode refuses outside embedded");
        let auth = Authenticator::new(AuthSettings::default(), true).unwrap();
        assert!(auth.is_dev_mode());
        let ok = format!("Bearer {}", dev_token(json!({"sub": "bob"})));
        assert_eq!(auth.player(Some(&ok)).await.unwrap().user_id, "bob");
        let expired = format!("Bearer {}", dev_token(json!({"sub": "bob", "exp": 1})));
        assert_eq!(auth.player(Some(&expired)).await.unwrap_err().http_status(), 401);
    }

    #[tokio::test]
    async fn admin_needs_the_role_or_the_admin_token() {
        let settings = AuthSettings {
            mode: AuthMode::Hs256,
            hs256_secret: Some(SECRET.into()),
            admin_token: Some("ops-token-xyz".into()),
            ..Default::default()
        };
        let auth = Authenticator::new(settings, false).unwrap();
        let player = token(json!({"sub": "alice", "exp": in_an_hour()}), SECRET);
        assert_eq!(auth.admin(Some(&player)).await.unwrap_err().http_status(), 403);
        let admin = token(json!({"sub": "ops", "exp": in_an_hour(), "roles": ["challenge-admin"]}), SECRET);
        assert_eq!(auth.admin(Some(&admin)).await.unwrap().subject, "ops");
        assert!(auth.admin(Some("Bearer ops-token-xyz")).await.is_ok());
        assert_eq!(auth.admin(Some("Bearer wrong")).await.unwrap_err().http_status(), 401);
    }
}
