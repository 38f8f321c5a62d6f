//! Changing an account's email: the new address confirms it by a link mailed there, so nobody can
//! move an account to an address they do not read (or take someone else's), and the old address
//! is told, so a change the owner did not make does not go unseen.

use super::domain::Email;
use super::principal::Principal;
use super::{service, store, tokens};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode, FieldError};
use chrono::Utc;
use diesel_async::AsyncConnection;

/// How long a confirmation link works: a day, as mail can be slow to arrive or be read.
pub const LINK_TTL_HOURS: i64 = 24;

/// Asks to change my email to `new_email`, given my password: mails the new address a link that
/// makes the change, and the old one a notice.
pub async fn request(
    state: &AppState,
    principal: &Principal,
    new_email: &str,
    password: &str,
) -> Result<(), ApiError> {
    principal.require_person()?;
    if !state.mailer.configured() {
        return Err(ApiError::new(
            ErrorCode::EmailNotConfigured,
            "this server sends no email, so an email cannot be confirmed; ask its operator",
        ));
    }
    let new_email = Email::parse(new_email).map_err(|e| ApiError::validation(vec![e]))?;
    let mut conn = state.pool.get().await?;
    let user = service::confirm_password(state, &mut conn, principal, password, "password").await?;
    if user.email.as_deref() == Some(new_email.as_str()) {
        return Err(ApiError::validation(vec![FieldError {
            field: "email".to_owned(),
            message: "is already this account's email".to_owned(),
        }]));
    }
    if store::email_taken(&mut conn, new_email.as_str(), user.id).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "an account with this email already exists",
        ));
    }
    let (token, hash) = tokens::new_opaque_token();
    let expires_at = Utc::now() + chrono::Duration::hours(LINK_TTL_HOURS);
    store::insert_email_change(&mut conn, &hash, user.id, new_email.as_str(), expires_at).await?;
    let link = format!(
        "{}/confirm-email?token={token}",
        state.config.public_url.trim_end_matches('/')
    );
    let confirm = format!(
        "Someone, we hope you, asked to make this address the email of the Easel account {}.\n\n\
         Open this link within {LINK_TTL_HOURS} hours to confirm it:\n\n{link}\n\n\
         If you did not ask, ignore this message: nothing changes.\n",
        user.username
    );
    let notice = format!(
        "Someone signed in to your Easel account {} asked to change its email to {}.\n\n\
         It changes only once that address confirms it. If this was not you, change your password \
         now: that also signs out every other device.\n",
        user.username,
        new_email.as_str()
    );
    let mut mails = vec![(
        new_email.as_str().to_owned(),
        "Confirm your new Easel email",
        confirm,
    )];
    if let Some(old) = &user.email {
        mails.push((old.clone(), "Your Easel email is being changed", notice));
    }
    let mailer = state.mailer.clone();
    let user_id = user.id;
    tokio::spawn(async move {
        for (to, subject, body) in mails {
            if let Err(e) = mailer.send(&to, subject, body).await {
                tracing::warn!(user.id = %user_id, error = %e, "email change mail not sent");
            }
        }
    });
    Ok(())
}

/// Makes a requested change of email, with the token from the link mailed to the new address.
pub async fn confirm(state: &AppState, token: &str) -> Result<String, ApiError> {
    let hash = tokens::sha256(token);
    let mut conn = state.pool.get().await?;
    let changed = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let Some((user, email)) = store::use_email_change(conn, &hash).await? else {
                return Ok(None);
            };
            // Another account may have taken the address since: its unique index answers 409.
            store::set_email(conn, user, &email).await?;
            Ok(Some((user, email)))
        })
        .await?;
    let Some((user, email)) = changed else {
        return Err(ApiError::validation(vec![FieldError {
            field: "token".to_owned(),
            message: "is not a working confirmation link: it was used, has expired, or its \
                      account is closed; ask for a new one"
                .to_owned(),
        }]));
    };
    tracing::info!(user.id = %user, "email changed");
    Ok(email)
}
