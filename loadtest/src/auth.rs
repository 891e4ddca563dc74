//! HS256 player tokens, minted the way the server expects them (`sub` = user id, `namespace`, `iat`, `exp`).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Tokens live a day so no run outlasts them.
const TOKEN_LIFETIME_SECS: i64 = 24 * 60 * 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub namespace: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct TokenMinter {
    key: EncodingKey,
    header: Header,
    namespace: String,
}

impl TokenMinter {
    pub fn new(secret: &str, namespace: &str) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            header: Header::new(Algorithm::HS256),
            namespace: namespace.to_owned(),
        }
    }

    pub fn mint(&self, user_id: &str) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            namespace: self.namespace.clone(),
            iat: now,
            exp: now + TOKEN_LIFETIME_SECS,
        };
        Ok(jsonwebtoken::encode(&self.header, &claims, &self.key)?)
    }

    /// The `Authorization` header value.
    pub fn bearer(&self, user_id: &str) -> Result<String> {
        Ok(format!("Bearer {}", self.mint(user_id)?))
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    #[test]
    fn minted_token_decodes_with_the_secret() {
        let minter = TokenMinter::new("s3cret", "accelbyte");
        let token = minter.mint("run1-u000001").expect("mint");
        let decoded = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &Validation::new(Algorithm::HS256),
        )
        .expect("decodes with the same secret");
        assert_eq!(decoded.claims.sub, "run1-u000001");
        assert_eq!(decoded.claims.namespace, "accelbyte");
        assert_eq!(decoded.claims.exp - decoded.claims.iat, TOKEN_LIFETIME_SECS);
        let now = chrono::Utc::now().timestamp();
        assert!((decoded.claims.iat - now).abs() <= 5);
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let token = TokenMinter::new("one", "ns").mint("u").expect("mint");
        let result = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"two"),
            &Validation::new(Algorithm::HS256),
        );
        assert!(result.is_err());
    }

    #[test]
    fn bearer_prefixes_the_token() {
        let bearer = TokenMinter::new("k", "ns").bearer("u").expect("mint");
        assert!(bearer.starts_with("Bearer ey"));
    }
}
