//! An account's security activity, for its owner to look over (`GET /v1/me/security-events`):
//! sign-ins, wrong passwords, and changes to how it signs in (password, two-step sign-in, API
//! keys, devices signed out) and data downloads. Each event names the session that
//! did it or, for a sign-in, the address and browser it came from. Kept [`KEPT_DAYS`] days, and
//! erased with the account.

use super::principal::{Principal, Via};
use super::store::Device;
use super::{SessionId, UserId};
use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How long events are kept.
pub const KEPT_DAYS: i64 = 180;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Signed in (with two steps when it is on).
    SignedIn,
    /// Signed in with a recovery code in place of the app's code.
    SignedInWithRecoveryCode,
    /// Someone gave this account's email with a wrong password.
    WrongPassword,
    PasswordChanged,
    /// Set anew from an emailed link.
    PasswordReset,
    TwoFactorOn,
    TwoFactorOff,
    RecoveryCodesRenewed,
    ApiKeyCreated,
    ApiKeyRevoked,
    DeviceSignedOut,
    DataDownloaded,
}

impl Activity {
    fn as_str(self) -> &'static str {
        match self {
            Self::SignedIn => "signed_in",
            Self::SignedInWithRecoveryCode => "signed_in_with_recovery_code",
            Self::WrongPassword => "wrong_password",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::TwoFactorOn => "two_factor_on",
            Self::TwoFactorOff => "two_factor_off",
            Self::RecoveryCodesRenewed => "recovery_codes_renewed",
            Self::ApiKeyCreated => "api_key_created",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::DeviceSignedOut => "device_signed_out",
            Self::DataDownloaded => "data_downloaded",
        }
    }

    fn from_db(value: &str) -> Option<Self> {
        [
            Self::SignedIn,
            Self::SignedInWithRecoveryCode,
            Self::WrongPassword,
            Self::PasswordChanged,
            Self::PasswordReset,
            Self::TwoFactorOn,
            Self::TwoFactorOff,
            Self::RecoveryCodesRenewed,
            Self::ApiKeyCreated,
            Self::ApiKeyRevoked,
            Self::DeviceSignedOut,
            Self::DataDownloaded,
        ]
        .into_iter()
        .find(|a| a.as_str() == value)
    }
}

/// Where an event came from.
pub enum Source<'a> {
    /// A signed-in caller: its session, when it has one.
    Principal(&'a Principal),
    /// A sign-in (no session yet), as the request showed it.
    Device(&'a Device),
    /// A link from an email: nothing to name.
    Link,
}

/// Records `activity` for `user`. A failure is logged, never the caller's: what it records has
/// happened already.
pub async fn record(
    conn: &mut AsyncPgConnection,
    user: UserId,
    activity: Activity,
    source: Source<'_>,
) {
    let (session, ip, user_agent) = match source {
        Source::Principal(principal) => match principal.via {
            Via::Session(id) => (Some(id), None, None),
            _ => (None, None, None),
        },
        Source::Device(device) => (None, device.ip.clone(), device.user_agent.clone()),
        Source::Link => (None, None, None),
    };
    let recorded = diesel::sql_query(
        "INSERT INTO security_events (id, user_id, kind, session_id, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind::<SqlUuid, _>(uuid::Uuid::now_v7())
    .bind::<SqlUuid, _>(user)
    .bind::<Text, _>(activity.as_str())
    .bind::<Nullable<SqlUuid>, _>(session)
    .bind::<Nullable<Text>, _>(ip)
    .bind::<Nullable<Text>, _>(user_agent)
    .execute(conn)
    .await;
    if let Err(e) = recorded {
        tracing::warn!(user.id = %user, activity = activity.as_str(), error = %e, "security event not recorded");
    }
}

/// One event as its owner sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecurityEvent {
    pub id: uuid::Uuid,
    pub activity: Activity,
    pub created_at: DateTime<Utc>,
    /// The address it came from, as this server saw it (unknown for emailed links).
    pub ip: Option<String>,
    /// The browser or program it came from.
    pub user_agent: Option<String>,
    /// It was this session.
    pub current: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecurityEventPage {
    pub data: Vec<SecurityEvent>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    session_id: Option<SessionId>,
    #[diesel(sql_type = Nullable<Text>)]
    ip: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    user_agent: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// My account's events, newest first. People only: not API keys.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    page: &PageParams,
) -> Result<Page<SecurityEvent>, ApiError> {
    principal.require_person()?;
    let page = page.parse::<uuid::Uuid>("security_events")?;
    let mut conn = state.pool.get().await?;
    // An event done by a session shows where that session signed in from.
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT e.id, e.kind, e.session_id, COALESCE(e.ip, s.ip) AS ip, \
                COALESCE(e.user_agent, s.user_agent) AS user_agent, e.created_at \
         FROM security_events e LEFT JOIN sessions s ON s.id = e.session_id \
         WHERE e.user_id = $1 AND ($2::uuid IS NULL OR e.id < $2) \
         ORDER BY e.id DESC LIMIT $3",
    )
    .bind::<SqlUuid, _>(principal.user_id)
    .bind::<Nullable<SqlUuid>, _>(page.after)
    .bind::<diesel::sql_types::BigInt, _>(page.limit + 1)
    .load(&mut conn)
    .await?;
    let current = match principal.via {
        Via::Session(id) => Some(id),
        _ => None,
    };
    let items = rows
        .into_iter()
        .filter_map(|row| {
            Some(SecurityEvent {
                id: row.id,
                activity: Activity::from_db(&row.kind)?,
                created_at: row.created_at,
                ip: row.ip,
                user_agent: row.user_agent,
                current: row.session_id.is_some() && row.session_id == current,
            })
        })
        .collect();
    Ok(Page::from_rows("security_events", items, page.limit, |e| {
        e.id
    }))
}

/// Removes `user`'s events (the account is erased).
pub async fn forget(conn: &mut AsyncPgConnection, user: UserId) -> diesel::QueryResult<usize> {
    diesel::sql_query("DELETE FROM security_events WHERE user_id = $1")
        .bind::<SqlUuid, _>(user)
        .execute(conn)
        .await
}

/// Removes events older than [`KEPT_DAYS`]; how many.
pub async fn purge(state: &AppState) -> anyhow::Result<usize> {
    let mut conn = state.pool.get().await?;
    Ok(diesel::sql_query(
        "DELETE FROM security_events WHERE created_at < now() - make_interval(days => $1)",
    )
    .bind::<diesel::sql_types::Integer, _>(KEPT_DAYS as i32)
    .execute(&mut conn)
    .await?)
}
