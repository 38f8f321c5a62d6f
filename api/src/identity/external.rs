//! An external identity provider's JWTs (RS256 or ES256), verified against its JWKS. Keys are cached
//! and refetched when a token names an unknown `kid`, at most once a minute, so a flood of forged
//! `kid`s cannot make us hammer the provider.

use crate::config::ExternalIdentity;
use crate::error::{ApiError, ErrorCode};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The claims we read from a provider's token; others are ignored.
#[derive(Debug, Deserialize)]
pub struct ExternalClaims {
    pub sub: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    /// Clerk's "authorized party": the origin the token was minted for.
    pub azp: Option<String>,
}

pub struct Jwks {
    config: ExternalIdentity,
    client: reqwest::Client,
    cache: RwLock<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
}

impl Jwks {
    pub fn new(config: ExternalIdentity) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            config,
            client,
            cache: RwLock::new(Cache::default()),
        }
    }

    pub async fn verify(&self, token: &str, header: &Header) -> Result<ExternalClaims, ApiError> {
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(ApiError::new(
                ErrorCode::InvalidToken,
                "the token's signing algorithm is not accepted",
            ));
        }
        let kid = header.kid.as_deref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidToken,
                "the token names no signing key (kid)",
            )
        })?;
        let (alg, key) = self.key(kid).await?;
        if alg != header.alg {
            return Err(ApiError::new(
                ErrorCode::InvalidToken,
                "the token's algorithm does not match its key",
            ));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<ExternalClaims>(token, &key, &validation)
            .map_err(|e| super::tokens::jwt_error(&e))?
            .claims;
        if !self.config.authorized_parties.is_empty()
            && !claims
                .azp
                .as_ref()
                .is_some_and(|azp| self.config.authorized_parties.contains(azp))
        {
            return Err(ApiError::new(
                ErrorCode::InvalidToken,
                "the token was issued for another party (azp)",
            ));
        }
        Ok(claims)
    }

    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), ApiError> {
        if let Some(found) = self.cache.read().await.keys.get(kid) {
            return Ok(found.clone());
        }
        let mut cache = self.cache.write().await;
        let due = cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= REFRESH_INTERVAL);
        if due && !cache.keys.contains_key(kid) {
            cache.fetched_at = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => cache.keys = keys,
                Err(e) => {
                    tracing::warn!(error = %e, "could not refresh the identity provider's JWKS")
                }
            }
        }
        cache.keys.get(kid).cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownSigningKey,
                "the token is signed with a key the identity provider does not publish",
            )
        })
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, (Algorithm, DecodingKey)>> {
        let set: JwkSet = self
            .client
            .get(&self.config.jwks_url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // The algorithm comes from the key, never from the token: that is what stops a token
            // from choosing how it is checked.
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, (alg, key));
                }
                Err(e) => tracing::warn!(kid = %kid, error = %e, "skipping an unusable JWK"),
            }
        }
        Ok(keys)
    }
}
