//! "Forgot your password?": a link by email that sets a new one.
//!
//! Asking answers the same whether or not an account has the email, so it tells nobody which
//! emails have accounts, nor in its time: the link is recorded and mailed after the answer. The
//! link carries a random token of which only the hash is kept; it works once, within
//! [`LINK_TTL_MINUTES`], and using it signs the account out everywhere (whoever knew the old
//! password is shut out).

use super::domain::{Email, Password};
use super::{password, service, store, tokens};
use crate::app::AppState;
use crate::error::{ApiError, FieldError};
use chrono::Utc;
use diesel_async::AsyncConnection;

/// How long a reset link works.
pub const LINK_TTL_MINUTES: i64 = 60;

/// Sends a reset link to the account with this email, if there is one that signs in with a
/// password. Answers alike either way.
pub async fn request(state: &AppState, email: &str) -> Result<(), ApiError> {
    state
        .mailer
        .required_for("a password cannot be reset by email")?;
    let email = Email::parse(email).map_err(|e| ApiError::validation(vec![e]))?;
    service::limit_per_account(
        state,
        &format!("reset:{}", email.as_str()),
        "password resets for this email",
    )?;
    let mut conn = state.pool.get().await?;
    let user = store::find_user_by(&mut conn, store::UserKey::Email(email.as_str()))
        .await?
        .filter(|u| u.disabled_at.is_none() && u.password_hash.is_some());
    let Some(user) = user else {
        tracing::info!("password reset asked for an email without a password account");
        return Ok(());
    };
    drop(conn);
    let (token, hash) = tokens::new_opaque_token();
    let expires_at = Utc::now() + chrono::Duration::minutes(LINK_TTL_MINUTES);
    let link = format!(
        "{}/reset-password?token={token}",
        state.config.public_url.trim_end_matches('/')
    );
    let body = format!(
        "Someone, we hope you, asked to reset the password of your Easel account {username}.\n\n\
         Open this link within {LINK_TTL_MINUTES} minutes to choose a new one:\n\n{link}\n\n\
         Setting it signs you out on every device.\n\n\
         If you did not ask, ignore this message: your password stays as it is.\n",
        username = user.username,
    );
    // The link is recorded and mailed after the answer: an email with an account then answers
    // in the time of one without (a look-up), so the time tells nobody which emails have one.
    let mailer = state.mailer.clone();
    let pool = state.pool.clone();
    let to = email.as_str().to_owned();
    let user_id = user.id;
    tokio::spawn(async move {
        let recorded = async {
            let mut conn = pool.get().await?;
            store::insert_password_reset(&mut conn, &hash, user_id, expires_at).await?;
            anyhow::Ok(())
        };
        if let Err(e) = recorded.await {
            tracing::warn!(user.id = %user_id, error = %e, "password reset link not recorded");
            return;
        }
        match mailer.send(&to, "Reset your Easel password", body).await {
            Ok(()) => tracing::info!(user.id = %user_id, "password reset link sent"),
            Err(e) => {
                tracing::warn!(user.id = %user_id, error = %e, "password reset link not sent")
            }
        }
    });
    Ok(())
}

/// Sets a new password with a reset link's token and signs the account out everywhere.
pub async fn confirm(state: &AppState, token: &str, new_password: &str) -> Result<(), ApiError> {
    let new = Password::parse(new_password).map_err(|mut e| {
        e.field = "new_password".to_owned();
        ApiError::validation(vec![e])
    })?;
    let token_hash = tokens::sha256(token);
    let mut conn = state.pool.get().await?;
    if !store::password_reset_open(&mut conn, &token_hash).await? {
        return Err(not_working());
    }
    let hash = password::hash(new.expose().to_owned()).await?;
    let user = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let Some(user) = store::use_password_reset(conn, &token_hash).await? else {
                return Ok(None);
            };
            store::set_password_hash(conn, user, &hash).await?;
            store::revoke_user_sessions(conn, user, "password_reset").await?;
            Ok(Some(user))
        })
        .await?;
    let Some(user) = user else {
        return Err(not_working());
    };
    tracing::info!(user.id = %user, "password reset");
    super::activity::record(
        &mut conn,
        user,
        super::activity::Activity::PasswordReset,
        super::activity::Source::Link,
    )
    .await;
    Ok(())
}

fn not_working() -> ApiError {
    ApiError::validation(vec![FieldError {
        field: "token".to_owned(),
        message: "is not a working reset link: it was used, has expired, or its account is \
                  closed; ask for a new one"
            .to_owned(),
    }])
}
