//! Request and response bodies of the identity endpoints.

use super::{ApiKeyId, Role, Scope, SessionId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    #[schema(format = "email", max_length = 254, example = "ada@example.com")]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, example = "correct horse battery")]
    pub password: String,
    /// 3–32 characters of a-z, 0-9, `_` and `-` (upper case is folded to lower case).
    #[schema(pattern = "^[A-Za-z0-9_-]{3,32}$", example = "ada")]
    pub username: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// A new password for my account, given with the one it replaces.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(example = "correct horse battery")]
    pub current_password: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, example = "staple tongue ocean")]
    pub new_password: String,
}

/// The password of the account to delete, given again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// My password, given again to change how I sign in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordAgain {
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// A new authenticator app's key: add it to the app (type `secret`, or open `otpauth_url`, often
/// shown as a QR code), then confirm with the code the app shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorSetup {
    /// The key, base32, as apps take it when typed.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    pub secret: String,
    #[schema(
        example = "otpauth://totp/Easel:ada?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Easel&algorithm=SHA1&digits=6&period=30"
    )]
    pub otpauth_url: String,
}

/// A code from the authenticator app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoFactorCode {
    /// Six digits.
    #[schema(example = "123456", max_length = 64)]
    pub code: String,
}

/// Single-use codes that sign in in place of the app's code, shown once: keep them somewhere safe.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    #[schema(example = json!(["k3v9a-p2xqm"]))]
    pub codes: Vec<String>,
}

/// Whether my account asks for an authenticator code, and how many recovery codes are left.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorStatus {
    pub enabled: bool,
    /// When it was turned on.
    pub enabled_at: Option<DateTime<Utc>>,
    /// Unused recovery codes (0 when off).
    pub recovery_codes_left: i64,
}

/// The password was right; this account asks for a code too: send it with this challenge to
/// `POST /v1/auth/login/two-factor` within five minutes.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorChallenge {
    pub challenge: String,
    pub expires_at: DateTime<Utc>,
}

/// The second step of signing in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoFactorLogin {
    /// `challenge` from the login's 202: the account's id, the expiry and a signature.
    #[schema(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[0-9]{1,19}\.[0-9a-f]{64}$"
    )]
    pub challenge: String,
    /// The six digits the authenticator app shows, or one of the recovery codes (`xxxxx-xxxxx`;
    /// case, spaces and dashes do not matter).
    #[schema(example = "123456", pattern = "^[ A-Za-z0-9-]{1,64}$")]
    pub code: String,
}

/// A new email for my account, with my password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChangeRequest {
    #[schema(format = "email", max_length = 254, example = "ada@example.org")]
    pub email: String,
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// The token from the link mailed to the new address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChangeConfirmation {
    pub token: String,
}

/// Who forgot their password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(format = "email", max_length = 254, example = "ada@example.com")]
    pub email: String,
}

/// A new password, with the token from the reset link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirmation {
    /// The `token` parameter of the link in the email.
    pub token: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, example = "staple tongue ocean")]
    pub new_password: String,
}

/// The refresh token comes from this body or, for the SPA, from the `easel_refresh` cookie.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: Option<String>,
}

/// OAuth-style token response, so generic clients understand it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Short-lived bearer token for `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Seconds until `access_token` expires.
    pub expires_in: i64,
    /// Single-use token for `POST /v1/auth/refresh`; also set as an HttpOnly cookie.
    pub refresh_token: String,
    pub user: Me,
}

/// The signed-in account, as its owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub id: UserId,
    pub email: Option<String>,
    /// The email was confirmed by a link mailed to it.
    pub email_verified: bool,
    pub username: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    /// The public image of mine shown as my avatar.
    pub avatar_image_id: Option<crate::generation::ImageId>,
    pub role: Role,
    /// Signing in takes a code from an authenticator app too (`POST /v1/me/two-factor`).
    pub two_factor: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// Up to 64 characters; null clears it.
    #[schema(max_length = 64)]
    #[serde(default, with = "crate::http::extract::double_option")]
    pub display_name: Option<Option<String>>,
    #[schema(pattern = "^[A-Za-z0-9_-]{3,32}$")]
    pub username: Option<String>,
    /// Up to 500 characters; null clears it.
    #[schema(max_length = 500)]
    #[serde(default, with = "crate::http::extract::double_option")]
    pub bio: Option<Option<String>>,
    /// A public image of mine to show as my avatar; null clears it.
    #[serde(default, with = "crate::http::extract::double_option")]
    pub avatar_image_id: Option<Option<crate::generation::ImageId>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label to tell keys apart, 1–64 characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$",
        example = "render farm"
    )]
    pub name: String,
    /// At least one of `generate`, `read`, `billing`.
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
    /// When the key stops working; must be in the future. Omit for a key that does not expire.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A session signed in to my account: a browser or program, and where it signed in from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub id: SessionId,
    /// When it signed in.
    pub created_at: DateTime<Utc>,
    /// When it last renewed its access (every few minutes while in use).
    pub last_active_at: DateTime<Utc>,
    /// When it is signed out unless used again before.
    pub expires_at: DateTime<Utc>,
    /// The `User-Agent` it signed in with (at most 256 characters).
    pub user_agent: Option<String>,
    /// The address it signed in from, as this server saw it.
    pub ip: Option<String>,
    /// It signed in with a code after the password.
    pub second_factor: bool,
    /// This is the session asking.
    pub current: bool,
}

/// A page of [`Device`]s.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DevicePage {
    pub data: Vec<Device>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// An API key as listed: never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    /// The key's first characters, e.g. `esl_AbCd`.
    pub prefix: String,
    /// The key's last four characters.
    pub last_four: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A new API key: the only time the secret `key` is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The secret. Store it now: it cannot be shown again.
    #[schema(example = "esl_4f9XkQ2mN8pL0rT6vW1yZ3bC5dE7gH9j")]
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyPage {
    pub data: Vec<ApiKey>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// Acknowledges a webhook delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookAck {
    /// False when this delivery had already been applied (a retry).
    pub applied: bool,
}
