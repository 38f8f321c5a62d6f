//! Who is calling: accounts and passwords, sessions (access JWTs + rotating refresh tokens), API
//! keys, an optional external identity provider (JWKS + Svix webhooks), and the `Principal`
//! extractor every protected handler takes.

pub mod activity;
pub mod admin;
pub mod api_keys;
pub mod deletion;
pub mod domain;
pub mod email_change;
pub mod external;
pub mod notices;
pub mod password;
pub mod principal;
pub mod reset;
pub mod routes;
pub mod service;
pub mod store;
pub mod tokens;
pub mod two_factor;
pub mod types;
pub mod webhook;

use crate::config::Config;
use std::sync::Arc;

crate::uuid_id!(
    /// A person's account.
    UserId
);
crate::uuid_id!(
    /// One login: the family of refresh tokens issued from it.
    SessionId
);
crate::uuid_id!(
    /// An API key (the id, not the secret).
    ApiKeyId
);

pub use domain::{Role, Scope};
pub use principal::Principal;

/// Everything identity needs at request time, built once per process.
pub struct Identity {
    pub tokens: tokens::SessionTokens,
    pub external: Option<Arc<external::Jwks>>,
}

impl Identity {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let secret = tokens::load_or_create_secret(config)?;
        Ok(Self {
            tokens: tokens::SessionTokens::new(&secret, &config.auth),
            external: config
                .auth
                .external
                .clone()
                .map(|external| Arc::new(external::Jwks::new(external))),
        })
    }
}
