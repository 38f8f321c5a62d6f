//! An account's email, confirmed by a link mailed to it: at sign-up, on asking again, and when it
//! is changed. A change waits for the new address to confirm it, so nobody can move an account to
//! an address they do not read (or take someone else's), and the old address is told, so a change
//! the owner did not make does not go unseen. Confirming the address an account already has is a
//! change to the same address: one table and one link page serve both.

use super::domain::Email;
use super::principal::Principal;
use super::store::User;
use super::{UserId, service, store, tokens};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode, FieldError};
use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};

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
    state.mailer.required_for("an email cannot be confirmed")?;
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
    let link = confirmation_link(state, &mut conn, user.id, new_email.as_str()).await?;
    let confirm = confirmation_mail(&user.username, &link, true);
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
    super::notices::send_later(state, user.id, mails);
    Ok(())
}

/// Asks again for a link that confirms my email as it is (the one mailed at sign-up may be lost).
pub async fn request_verification(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    principal.require_person()?;
    state.mailer.required_for("an email cannot be confirmed")?;
    service::limit_per_account(
        state,
        &format!("verify:{}", principal.user_id),
        "confirmation links for this account",
    )?;
    let mut conn = state.pool.get().await?;
    let user = store::find_user(&mut conn, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let Some(email) = user.email.clone() else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this account has no email to confirm",
        ));
    };
    if user.email_verified_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this account's email is confirmed already",
        ));
    }
    let link = confirmation_link(state, &mut conn, user.id, &email).await?;
    let body = confirmation_mail(&user.username, &link, false);
    super::notices::send_later(
        state,
        user.id,
        vec![(email, "Confirm your Easel email", body)],
    );
    Ok(())
}

/// Mails a new account's address the link that confirms it, when this server sends mail. The
/// account is made either way: a failure here is logged, and the owner can ask again.
pub async fn verify_after_signup(state: &AppState, conn: &mut AsyncPgConnection, user: &User) {
    let Some(email) = user.email.clone().filter(|_| state.mailer.configured()) else {
        return;
    };
    match confirmation_link(state, conn, user.id, &email).await {
        Ok(link) => {
            let body = confirmation_mail(&user.username, &link, false);
            super::notices::send_later(
                state,
                user.id,
                vec![(email, "Confirm your Easel email", body)],
            );
        }
        Err(e) => tracing::warn!(user.id = %user.id, error = %e, "no confirmation link made"),
    }
}

/// Records a pending change of `user`'s email to `email` (the same one, to confirm it) and returns
/// the link that makes it.
async fn confirmation_link(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user: UserId,
    email: &str,
) -> Result<String, ApiError> {
    let (token, hash) = tokens::new_opaque_token();
    let expires_at = Utc::now() + chrono::Duration::hours(LINK_TTL_HOURS);
    store::insert_email_change(conn, &hash, user, email, expires_at).await?;
    Ok(format!(
        "{}/confirm-email?token={token}",
        state.config.public_url.trim_end_matches('/')
    ))
}

fn confirmation_mail(username: &str, link: &str, change: bool) -> String {
    let what = if change {
        "make this address the email of"
    } else {
        "confirm this address as the email of"
    };
    format!(
        "Someone, we hope you, asked to {what} the Easel account {username}.\n\n\
         Open this link within {LINK_TTL_HOURS} hours to confirm it:\n\n{link}\n\n\
         If you did not ask, ignore this message: nothing changes.\n"
    )
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
            store::set_verified_email(conn, user, &email).await?;
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
