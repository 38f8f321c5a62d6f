//! Our own session tokens: HS256 access JWTs and opaque refresh tokens (stored as SHA-256).

use super::{SessionId, UserId};
use crate::config::{AuthConfig, Config, Secret};
use crate::error::{ApiError, ErrorCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub const ISSUER: &str = "easel";
pub const AUDIENCE: &str = "easel";

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: UserId,
    /// The session (refresh-token family) this token was issued from; logout revokes it.
    pub sid: SessionId,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

pub struct SessionTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl SessionTokens {
    pub fn new(secret: &Secret, auth: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            access_ttl: auth.access_token_ttl,
            refresh_ttl: auth.refresh_token_ttl,
        }
    }

    /// A signed access token and its lifetime in seconds.
    pub fn issue(&self, user: UserId, session: SessionId) -> Result<(String, i64), ApiError> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(900);
        let claims = AccessClaims {
            sub: user,
            sid: session,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ttl,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, ttl))
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| jwt_error(&e))
    }
}

/// Maps a JWT validation failure to the code a client can act on.
pub fn jwt_error(error: &jsonwebtoken::errors::Error) -> ApiError {
    match error.kind() {
        ErrorKind::ExpiredSignature => ApiError::new(
            ErrorCode::TokenExpired,
            "the access token has expired; refresh it",
        ),
        ErrorKind::ImmatureSignature => ApiError::new(
            ErrorCode::TokenNotYetValid,
            "the token is not valid yet (nbf)",
        ),
        ErrorKind::InvalidIssuer => ApiError::new(
            ErrorCode::InvalidToken,
            "the token's issuer is not accepted",
        ),
        ErrorKind::InvalidAudience => ApiError::new(
            ErrorCode::InvalidToken,
            "the token's audience is not accepted",
        ),
        ErrorKind::MissingRequiredClaim(claim) => ApiError::new(
            ErrorCode::InvalidToken,
            format!("the token lacks the required claim {claim}"),
        ),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => ApiError::new(
            ErrorCode::InvalidToken,
            "the token's signing algorithm is not accepted",
        ),
        ErrorKind::InvalidSignature => {
            ApiError::new(ErrorCode::InvalidToken, "the token's signature is invalid")
        }
        _ => ApiError::new(ErrorCode::InvalidToken, "the token is malformed"),
    }
}

/// A new opaque token (256 random bits: a refresh token, a password-reset link's) and the hash we
/// store for it.
pub fn new_opaque_token() -> (String, Vec<u8>) {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = sha256(&token);
    (token, hash)
}

pub fn sha256(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// `EASEL_JWT_SECRET`, or outside production a random key generated once and kept in
/// `EASEL_DATA_DIR/jwt-secret`, so sessions survive restarts of `make run`.
pub fn load_or_create_secret(config: &Config) -> anyhow::Result<Secret> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(secret.clone());
    }
    let path = config.data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing.trim().len() >= 32 => return Ok(Secret::new(existing.trim())),
        Ok(_) => anyhow::bail!(
            "{} is too short; delete it to generate a new key",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
    let mut bytes = [0_u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    std::fs::create_dir_all(&config.data_dir)?;
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a development JWT signing key");
    Ok(Secret::new(secret))
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
