//! Two-step sign-in: a time-based one-time password (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps)
//! from any authenticator app, or one of ten single-use recovery codes.
//!
//! Turning it on takes the password ([`begin`]: a new secret, shown once as a key and an
//! `otpauth://` link), then a first code from the app ([`confirm`]: on, and the recovery codes,
//! shown once). With it on, a right password at login answers a [`challenge`] (signed, good for
//! five minutes) instead of tokens, and the challenge with a code makes the session ([`finish`]).
//! A code works once (the last step used is kept), and the codes an account may try are limited
//! by the hour, so a stolen password alone cannot sign in.

use super::activity::{self, Activity, Source};
use super::principal::Principal;
use super::types::{
    RecoveryCodes, TokenResponse, TwoFactorChallenge, TwoFactorSetup, TwoFactorStatus,
};
use super::{UserId, notices, service, store};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode, FieldError};
use chrono::Utc;
use diesel_async::AsyncConnection;
use rand::RngCore;

/// Seconds per code.
const STEP_SECS: i64 = 30;
/// How long a password-checked sign-in waits for its code.
pub const CHALLENGE_TTL_SECS: i64 = 5 * 60;
/// Recovery codes made at a time.
const RECOVERY_CODES: usize = 10;
/// Codes an account may try per hour, right or wrong (a token bucket): with three codes valid at
/// any time, guessing one takes hundreds of thousands of tries, and a person signs in far less.
const CODES_PER_HOUR: u32 = 20;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps take keys.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0_u32, 0_u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The code for time step `step` (RFC 4226's dynamic truncation, 6 digits).
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = aws_lc_rs::hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    word % 1_000_000
}

/// Six digits: an app's code (anything else is taken as a recovery code).
fn is_app_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// The step of `code` if it is the code of the current step or either next to it (clocks drift),
/// and later than `used` (a code works once).
pub fn matching_step(secret: &[u8], code: &str, now: i64, used: i64) -> Option<i64> {
    if !is_app_code(code) {
        return None;
    }
    let given: u32 = code.parse().ok()?;
    let current = now.div_euclid(STEP_SECS);
    (current - 1..=current + 1)
        .filter(|step| *step > used)
        .find(|step| code_at(secret, *step) == given)
}

/// A recovery code as it is typed: case, spaces and dashes do not matter.
fn normal_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Ten new recovery codes (`xxxxx-xxxxx`, 50 random bits each) and their hashes.
fn new_recovery_codes() -> (Vec<String>, Vec<Vec<u8>>) {
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0_u8; 7];
            rng.fill_bytes(&mut bytes);
            let plain = base32(&bytes)[..10].to_ascii_lowercase();
            let hash = super::tokens::sha256(&plain);
            (format!("{}-{}", &plain[..5], &plain[5..]), hash)
        })
        .unzip()
}

fn conflict(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Conflict, message)
}

fn wrong_code(field: &str) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: field.to_owned(),
        message: "is not the code the authenticator app shows now, nor an unused recovery code"
            .to_owned(),
    }])
}

/// Counts one code tried for `user`, by the hour.
fn limit_codes(state: &AppState, user: UserId) -> Result<(), ApiError> {
    crate::http::rate_limit::enforce(
        state.rate_limits.as_ref(),
        &format!("two-factor:{user}"),
        CODES_PER_HOUR,
        crate::http::rate_limit::HOUR,
        "codes for this account",
    )
}

/// Whether two-step sign-in is on for the caller, and the recovery codes left.
pub async fn status(state: &AppState, principal: &Principal) -> Result<TwoFactorStatus, ApiError> {
    let mut conn = state.pool.get().await?;
    let user = store::find_user(&mut conn, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let left = match user.two_factor_at {
        Some(_) => store::recovery_codes_left(&mut conn, user.id).await?,
        None => 0,
    };
    Ok(TwoFactorStatus {
        enabled: user.two_factor_at.is_some(),
        enabled_at: user.two_factor_at,
        recovery_codes_left: left,
    })
}

/// Starts turning two-step sign-in on: a new secret for the authenticator app. Until a code from
/// it is confirmed, signing in is as before; asking again replaces the secret.
pub async fn begin(
    state: &AppState,
    principal: &Principal,
    password: &str,
) -> Result<TwoFactorSetup, ApiError> {
    principal.require_person()?;
    let mut conn = state.pool.get().await?;
    let user = service::confirm_password(state, &mut conn, principal, password, "password").await?;
    if user.two_factor_at.is_some() {
        return Err(conflict(
            "two-step sign-in is on already; turn it off first to use another app",
        ));
    }
    let mut secret = [0_u8; 20];
    rand::rng().fill_bytes(&mut secret);
    store::set_two_factor_secret(&mut conn, user.id, &secret).await?;
    let key = base32(&secret);
    Ok(TwoFactorSetup {
        otpauth_url: format!(
            "otpauth://totp/Easel:{name}?secret={key}&issuer=Easel&algorithm=SHA1&digits=6&period=30",
            name = user.username
        ),
        secret: key,
    })
}

/// Turns two-step sign-in on with the first code from the app, and makes the recovery codes.
pub async fn confirm(
    state: &AppState,
    principal: &Principal,
    code: &str,
) -> Result<RecoveryCodes, ApiError> {
    principal.require_person()?;
    limit_codes(state, principal.user_id)?;
    let (codes, hashes) = new_recovery_codes();
    let user = principal.user_id;
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let Some((secret, used)) = store::lock_two_factor_secret(conn, user).await? else {
            return Err(conflict("start with POST /v1/me/two-factor"));
        };
        if store::two_factor_on(conn, user).await? {
            return Err(conflict("two-step sign-in is on already"));
        }
        let step = matching_step(&secret, code.trim(), Utc::now().timestamp(), used)
            .ok_or_else(|| wrong_code("code"))?;
        if !store::use_two_factor_step(conn, user, step).await? {
            return Err(wrong_code("code"));
        }
        store::turn_two_factor(conn, user, true).await?;
        store::replace_recovery_codes(conn, user, &hashes).await?;
        Ok(())
    })
    .await?;
    tracing::info!(user.id = %user, "two-step sign-in turned on");
    activity::record(
        &mut conn,
        user,
        Activity::TwoFactorOn,
        Source::Principal(principal),
    )
    .await;
    if let Some(account) = store::find_user(&mut conn, user).await? {
        notices::security_notice(
            state,
            &account,
            "Two-step sign-in is on",
            "Two-step sign-in was turned on for your Easel account: signing in now takes a code \
             from your authenticator app, or one of your recovery codes.",
        );
    }
    Ok(RecoveryCodes { codes })
}

/// Turns two-step sign-in off (the password again); the secret and recovery codes go.
pub async fn remove(
    state: &AppState,
    principal: &Principal,
    password: &str,
) -> Result<(), ApiError> {
    principal.require_person()?;
    let mut conn = state.pool.get().await?;
    let account =
        service::confirm_password(state, &mut conn, principal, password, "password").await?;
    let user = account.id;
    let was_on = account.two_factor_at.is_some();
    conn.transaction::<_, ApiError, _>(async |conn| {
        store::forget_two_factor(conn, user).await?;
        Ok(())
    })
    .await?;
    if was_on {
        tracing::info!(user.id = %user, "two-step sign-in turned off");
        activity::record(
            &mut conn,
            user,
            Activity::TwoFactorOff,
            Source::Principal(principal),
        )
        .await;
        notices::security_notice(
            state,
            &account,
            "Two-step sign-in was turned off",
            "Two-step sign-in was turned off for your Easel account: its password alone signs in \
             again.",
        );
    }
    Ok(())
}

/// New recovery codes in place of the old ones (the password again).
pub async fn renew_recovery_codes(
    state: &AppState,
    principal: &Principal,
    password: &str,
) -> Result<RecoveryCodes, ApiError> {
    principal.require_person()?;
    let mut conn = state.pool.get().await?;
    let user = service::confirm_password(state, &mut conn, principal, password, "password").await?;
    if user.two_factor_at.is_none() {
        return Err(conflict(
            "two-step sign-in is off: there are no recovery codes",
        ));
    }
    let (codes, hashes) = new_recovery_codes();
    store::replace_recovery_codes(&mut conn, user.id, &hashes).await?;
    activity::record(
        &mut conn,
        user.id,
        Activity::RecoveryCodesRenewed,
        Source::Principal(principal),
    )
    .await;
    notices::security_notice(
        state,
        &user,
        "New Easel recovery codes",
        "New recovery codes were made for your Easel account; the old ones no longer work.",
    );
    Ok(RecoveryCodes { codes })
}

/// What a right password answers when the account asks for a code too.
pub fn challenge(state: &AppState, user: UserId, now: i64) -> TwoFactorChallenge {
    let expires = now + CHALLENGE_TTL_SECS;
    let sig = state.signer.sign(&format!("two-factor:{user}:{expires}"));
    TwoFactorChallenge {
        challenge: format!("{user}.{expires}.{sig}"),
        expires_at: chrono::DateTime::from_timestamp(expires, 0).unwrap_or_default(),
    }
}

/// The account a challenge was made for, if it is one [`challenge`] made and has not expired.
fn challenged(state: &AppState, challenge: &str, now: i64) -> Result<UserId, ApiError> {
    let refused = || {
        ApiError::new(
            ErrorCode::InvalidToken,
            "this sign-in has expired or is not ours; sign in again",
        )
    };
    let mut parts = challenge.split('.');
    let (Some(user), Some(expires), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused());
    };
    let user = uuid::Uuid::parse_str(user).map_err(|_| refused())?;
    let expires: i64 = expires.parse().map_err(|_| refused())?;
    let signed = state
        .signer
        .verifies(&format!("two-factor:{user}:{expires}"), sig);
    if !signed || now > expires || expires - now > CHALLENGE_TTL_SECS {
        return Err(refused());
    }
    Ok(UserId(user))
}

/// The second step of signing in: the challenge and a code from the app or a recovery code.
pub async fn finish(
    state: &AppState,
    challenge: &str,
    code: &str,
    device: &store::Device,
) -> Result<TokenResponse, ApiError> {
    let now = Utc::now().timestamp();
    let user = challenged(state, challenge, now)?;
    limit_codes(state, user)?;
    let mut conn = state.pool.get().await?;
    let account = store::find_user(&mut conn, user)
        .await?
        .filter(|u| u.two_factor_at.is_some())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidToken,
                "this account no longer asks for a code; sign in again",
            )
        })?;
    if account.disabled_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "this account is disabled",
        ));
    }
    let code = code.trim();
    let accepted = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if is_app_code(code) {
                let Some((secret, used)) = store::lock_two_factor_secret(conn, user).await? else {
                    return Ok(false);
                };
                return match matching_step(&secret, code, now, used) {
                    Some(step) => Ok(store::use_two_factor_step(conn, user, step).await?),
                    None => Ok(false),
                };
            }
            let hash = super::tokens::sha256(&normal_recovery_code(code));
            Ok(store::use_recovery_code(conn, user, &hash).await?)
        })
        .await?;
    if !accepted {
        return Err(wrong_code("code"));
    }
    let how = if is_app_code(code) {
        Activity::SignedIn
    } else {
        Activity::SignedInWithRecoveryCode
    };
    let tokens =
        service::start_session(state, &mut conn, &account, device, store::SignIn::TwoSteps).await?;
    activity::record(&mut conn, user, how, Source::Device(device)).await;
    if !is_app_code(code) {
        tracing::info!(user.id = %user, "a recovery code was used to sign in");
        notices::security_notice(
            state,
            &account,
            "A recovery code was used to sign in",
            "One of your Easel recovery codes was used to sign in to your account. Each works \
             once; make new ones on your Account page if few are left.",
        );
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 key and the 8-digit codes' last six digits.
    #[test]
    fn codes_match_the_rfc_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, 287_082),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            assert_eq!(code_at(secret, time / STEP_SECS), code, "at {time}");
        }
    }

    #[test]
    fn base32_is_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn a_code_works_within_a_step_of_now_and_once() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111;
        let step = now / STEP_SECS;
        let code = |s: i64| format!("{:06}", code_at(secret, s));
        assert_eq!(matching_step(secret, &code(step), now, 0), Some(step));
        assert_eq!(
            matching_step(secret, &code(step - 1), now, 0),
            Some(step - 1)
        );
        assert_eq!(
            matching_step(secret, &code(step + 1), now, 0),
            Some(step + 1)
        );
        assert_eq!(
            matching_step(secret, &code(step - 2), now, 0),
            None,
            "too old"
        );
        assert_eq!(matching_step(secret, &code(step), now, step), None, "used");
        assert_eq!(
            matching_step(secret, &code(step + 1), now, step),
            Some(step + 1),
            "the next one still works"
        );
        assert_eq!(matching_step(secret, "12345", now, 0), None);
        assert_eq!(matching_step(secret, "abcdef", now, 0), None);
    }

    #[test]
    fn recovery_codes_are_typed_loosely_and_differ() {
        assert_eq!(normal_recovery_code(" AbCdE-fGhIj "), "abcdefghij");
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
        );
        let distinct: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        assert_eq!(
            hashes[0],
            super::super::tokens::sha256(&normal_recovery_code(&codes[0]))
        );
    }
}
