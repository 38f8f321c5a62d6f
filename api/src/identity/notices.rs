//! Mails that tell a person how their account signs in has changed (password, two-step sign-in),
//! so that a change they did not make does not go unnoticed. Sent after the answer, and only when
//! this server sends mail and the account has an email; a failure is logged, never the caller's.

use super::UserId;
use super::store::User;
use crate::app::AppState;

/// Sends `mails` (to, subject, body) after the answer, logging what fails.
pub fn send_later(state: &AppState, user: UserId, mails: Vec<(String, &'static str, String)>) {
    let mailer = state.mailer.clone();
    tokio::spawn(async move {
        for (to, subject, body) in mails {
            if let Err(e) = mailer.send(&to, subject, body).await {
                tracing::warn!(user.id = %user, error = %e, "account mail not sent");
            }
        }
    });
}

/// Tells `user` that `what` happened to their account just now.
pub fn security_notice(state: &AppState, user: &User, subject: &'static str, what: &str) {
    let Some(email) = user.email.clone().filter(|_| state.mailer.configured()) else {
        return;
    };
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let body = format!(
        "{what}\n\nAccount: {username}\nWhen: {when}\n\n\
         If this was you, there is nothing to do. If it was not, someone else can sign in to your \
         account: reset your password at {public_url}/forgot-password, then check the devices \
         signed in on your Account page.\n",
        username = user.username,
        public_url = state.config.public_url,
    );
    send_later(state, user.id, vec![(email, subject, body)]);
}
