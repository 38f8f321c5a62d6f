//! `POST /webhooks/identity`: the identity provider's user events (Svix-signed, Clerk's shapes).

use super::service::{self, ProviderProfile};
use super::store::{self, UserChangeset};
use crate::app::AppState;
use crate::config::DeletedUsers;
use crate::error::{ApiError, ErrorCode};
use crate::http::signature;
use actix_web::http::header::HeaderMap;
use diesel_async::AsyncConnection;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    event_type: String,
    data: EventUser,
}

#[derive(Debug, Deserialize)]
struct EventUser {
    id: String,
    #[serde(default)]
    email_addresses: Vec<EmailAddress>,
    primary_email_address_id: Option<String>,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EmailAddress {
    id: String,
    email_address: String,
}

impl EventUser {
    fn profile(&self) -> ProviderProfile {
        let email = self
            .email_addresses
            .iter()
            .find(|e| Some(&e.id) == self.primary_email_address_id.as_ref())
            .or_else(|| self.email_addresses.first())
            .map(|e| e.email_address.clone());
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        ProviderProfile {
            email,
            username: self.username.clone(),
            display_name: (!name.trim().is_empty()).then(|| name.trim().to_owned()),
        }
    }
}

/// Verifies and applies one delivery. Returns false when it had been applied before.
pub async fn receive(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<bool, ApiError> {
    let secret = state.config.auth.webhook_secret.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::WebhookNotConfigured,
            "identity webhooks are not configured (EASEL_IDENTITY_WEBHOOK_SECRET)",
        )
    })?;
    let delivery = signature::verify(
        secret.expose(),
        headers,
        body,
        chrono::Utc::now().timestamp(),
    )?;
    let event: Event = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("not an identity event: {e}")))?;
    let mut conn = state.pool.get().await?;
    let erase = state.config.auth.deleted_users == DeletedUsers::Erase;
    // The account to erase once the transaction has closed it.
    let mut closed = None;
    // The event id is recorded in the same transaction as its effect: a retry finds it and stops.
    let applied = conn.transaction::<_, ApiError, _>(async |conn| {
        if !store::record_identity_event(conn, &delivery.id, &event.event_type).await? {
            return Ok(false);
        }
        let existing = store::find_user_by(conn, store::UserKey::Subject(&event.data.id)).await?;
        match (event.event_type.as_str(), existing) {
            // A deleted account stays closed and nameless, whatever comes after.
            (other, Some(user)) if user.deleted_at.is_some() => {
                tracing::debug!(user.id = %user.id, event_type = other, "identity event for a deleted account ignored");
            }
            ("user.created" | "user.updated", None) => {
                service::create_external_user(conn, &event.data.id, &event.data.profile()).await?;
            }
            ("user.created" | "user.updated", Some(user)) => {
                let profile = event.data.profile();
                let changes = UserChangeset {
                    display_name: profile.display_name.map(Some),
                    ..UserChangeset::default()
                };
                if changes.display_name.is_some() {
                    store::update_user(conn, user.id, &changes).await?;
                }
            }
            ("user.deleted", Some(user)) if erase => {
                // As if the person had deleted it here: closed now, erased after the commit.
                if super::deletion::close(conn, user.id).await? {
                    closed = Some(user.id);
                    tracing::info!(user.id = %user.id, "account deleted by the identity provider");
                }
            }
            ("user.deleted", Some(user)) => {
                // Disabled, not deleted: the ledger, purchases and images keep their owner.
                let changes = UserChangeset {
                    disabled_at: Some(Some(chrono::Utc::now())),
                    ..UserChangeset::default()
                };
                store::update_user(conn, user.id, &changes).await?;
                store::revoke_user_sessions(conn, user.id, "account_disabled").await?;
                tracing::info!(user.id = %user.id, "account disabled by the identity provider");
            }
            (other, _) => tracing::debug!(event_type = other, "identity event ignored"),
        }
        Ok(true)
    })
    .await?;
    drop(conn);
    if let Some(user) = closed {
        super::deletion::erase_now(state, user).await;
    }
    Ok(applied)
}
