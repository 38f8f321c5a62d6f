//! Deleting an account, as its owner asks. Two steps, so that nothing is half done:
//!
//! 1. At once, in one transaction: the account is marked deleted and shut (disabled, every
//!    session and API key revoked), and what names the person leaves it (email, username,
//!    profile, password, two-step key, and the addresses and browsers its sessions came from). The email and username are free again.
//! 2. Then [`erase`]: its running generations are canceled with their refunds, and its images,
//!    uploaded photos, collections, likes, prompts, webhooks and stored idempotent answers go. If that is cut
//!    short (a crash, or a submission that slipped in as the account closed), the watchdog's
//!    [`erase_pending`] finishes it.
//!
//! The ledger, purchases and generations stay, prompts blanked: they are the record of the money.

use super::principal::Principal;
use super::{UserId, service, store};
use crate::app::AppState;
use crate::error::ApiError;
use crate::generation::{self, Status};
use diesel_async::AsyncConnection;

/// Deletes the caller's account, given its password. Nothing changes on a wrong password.
pub async fn delete_account(
    state: &AppState,
    principal: &Principal,
    password: &str,
) -> Result<(), ApiError> {
    principal.require_person()?;
    let mut conn = state.pool.get().await?;
    let user = service::confirm_password(state, &mut conn, principal, password, "password").await?;
    conn.transaction::<_, ApiError, _>(async |conn| Ok(close(conn, user.id).await?))
        .await?;
    tracing::info!(user.id = %user.id, "account deleted");
    drop(conn);
    erase_now(state, user.id).await;
    Ok(())
}

/// The first step, in the caller's transaction: the account is marked deleted and shut, and what
/// names the person leaves it. False when it was closed already.
pub async fn close(
    conn: &mut diesel_async::AsyncPgConnection,
    user: UserId,
) -> diesel::QueryResult<bool> {
    // The id's random end: the placeholder cannot be guessed in advance, so nobody can hold it.
    let simple = user.0.simple().to_string();
    let placeholder = format!("deleted-{}", &simple[simple.len() - 24..]);
    if !store::mark_deleted(conn, user, &placeholder).await? {
        return Ok(false);
    }
    store::revoke_user_sessions(conn, user, "account_deleted").await?;
    store::forget_devices(conn, user).await?;
    store::revoke_user_api_keys(conn, user).await?;
    store::forget_two_factor(conn, user).await?;
    Ok(true)
}

/// The second step for an account just closed. If it fails now, the watchdog finishes it.
pub async fn erase_now(state: &AppState, user: UserId) {
    if let Err(e) = erase(state, user).await {
        tracing::warn!(user.id = %user, error = %e, "erasing a deleted account was cut short");
    }
}

/// Erases what a deleted account made; true once nothing of it is left running. Safe to run again.
pub async fn erase(state: &AppState, user: UserId) -> anyhow::Result<bool> {
    let mut conn = state.pool.get().await?;
    // Its webhooks first, so the cancels below send none.
    generation::webhooks::forget(&mut conn, user).await?;
    for id in generation::store::active_of(&mut conn, user).await? {
        generation::service::end_with_refund(
            &state.metrics,
            &mut conn,
            id,
            Status::Canceled,
            Some(("canceled", "canceled: the account was deleted", false)),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    // The photos it uploaded as inputs, files and all.
    crate::inputs::service::erase_owner(state, user).await?;
    let erased = conn
        .transaction::<_, anyhow::Error, _>(async |conn| {
            let images = crate::gallery::store::erase_owner(conn, user).await?;
            generation::store::blank_prompts(conn, user).await?;
            generation::webhooks::forget(conn, user).await?;
            crate::http::idempotency::forget(conn, user).await?;
            super::activity::forget(conn, user).await?;
            // A generation submitted as the account closed may still be running: erase again
            // once it has ended (the watchdog will).
            let done = generation::store::active_of(conn, user).await?.is_empty();
            if done {
                store::mark_erased(conn, user).await?;
            }
            tracing::info!(user.id = %user, images, done, "deleted account erased");
            Ok(done)
        })
        .await?;
    Ok(erased)
}

/// Finishes erasing every deleted account not yet erased (the watchdog runs this). Returns how
/// many it finished.
pub async fn erase_pending(state: &AppState) -> anyhow::Result<usize> {
    let pending = {
        let mut conn = state.pool.get().await?;
        store::awaiting_erasure(&mut conn, 100).await?
    };
    let mut finished = 0;
    for user in pending {
        finished += usize::from(erase(state, user).await?);
    }
    Ok(finished)
}
