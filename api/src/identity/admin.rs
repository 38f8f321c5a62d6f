//! Support's view of accounts: look one up by id, email or username, and shut it (abuse, a
//! chargeback fraud, a compromised account) or open it again, or change its role. Admins only,
//! signed in.

use super::principal::Principal;
use super::store::{self, User, UserChangeset, UserKey};
use super::{Role, UserId};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use actix_web::{get, patch, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_admin_user).service(update_admin_user);
}

/// An account as support sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminUser {
    pub id: UserId,
    pub email: Option<String>,
    pub email_verified: bool,
    pub username: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// Shut by support (or by the identity provider): no sign-in, no session, no API key works.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Deleted by its owner; such an account cannot be opened again.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Signs in through the external identity provider rather than with a password here.
    pub external: bool,
    /// Signing in takes a code from an authenticator app too (`easel admin reset-two-factor`
    /// turns it off for a person who lost it).
    pub two_factor: bool,
    /// Daily free credits as of their last grant, and non-expiring ones (both 0 until the account
    /// first uses credits, which grants them).
    pub free_credits: i64,
    pub purchased_credits: i64,
    /// Devices signed in now.
    pub sessions: i64,
}

/// What support changes on an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAdminUserRequest {
    /// True shuts the account at once (its sessions end; its API keys stop working while it is
    /// shut); false opens it again.
    pub disabled: Option<bool>,
    pub role: Option<Role>,
}

/// One account, by its id, email or username.
#[utoipa::path(
    tag = "admin",
    security(("session" = [])),
    params(("user" = String, Path, description = "The account's id, email or username")),
    responses(
        (status = 200, description = "The account", body = AdminUser),
        (status = 403, description = "Not an admin, or an API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/users/{user}")]
pub async fn get_admin_user(
    state: web::Data<AppState>,
    principal: Principal,
    user: web::Path<String>,
) -> Result<web::Json<AdminUser>, ApiError> {
    principal.require_support(&state.config.auth)?;
    Ok(web::Json(look_up(&state, &user).await?))
}

/// Shut an account or open it again, or change its role. Not one's own: an admin cannot lock
/// themselves out or drop their own role by a slip.
#[utoipa::path(
    tag = "admin",
    security(("session" = [])),
    params(("user" = UserId, Path, description = "The account's id")),
    request_body = UpdateAdminUserRequest,
    responses(
        (status = 200, description = "The account after the change", body = AdminUser),
        (status = 403, description = "Not an admin, or an API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "One's own account, or a deleted one (`conflict`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/v1/admin/users/{user}")]
pub async fn update_admin_user(
    state: web::Data<AppState>,
    principal: Principal,
    user: web::Path<UserId>,
    body: crate::http::extract::Json<UpdateAdminUserRequest>,
) -> Result<web::Json<AdminUser>, ApiError> {
    principal.require_support(&state.config.auth)?;
    Ok(web::Json(
        update(&state, &principal, user.into_inner(), &body).await?,
    ))
}

async fn look_up(state: &AppState, user: &str) -> Result<AdminUser, ApiError> {
    let mut conn = state.pool.get().await?;
    let found = store::find_user_by(&mut conn, UserKey::named(user))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    present(&mut conn, found).await
}

async fn update(
    state: &AppState,
    principal: &Principal,
    id: UserId,
    body: &UpdateAdminUserRequest,
) -> Result<AdminUser, ApiError> {
    if id == principal.user_id {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this is your own account: another admin must change it",
        ));
    }
    let mut conn = state.pool.get().await?;
    let user = store::find_user(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if user.deleted_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this account was deleted by its owner and stays closed",
        ));
    }
    let changes = UserChangeset {
        disabled_at: body.disabled.map(|disabled| disabled.then(Utc::now)),
        role: body.role.map(|role| role.as_str().to_owned()),
        ..UserChangeset::default()
    };
    let user =
        diesel_async::AsyncConnection::transaction::<_, ApiError, _>(&mut conn, async |conn| {
            let user = if changes.disabled_at.is_none() && changes.role.is_none() {
                user
            } else {
                store::update_user(conn, id, &changes).await?
            };
            if body.disabled == Some(true) {
                store::revoke_user_sessions(conn, id, "disabled_by_admin").await?;
            }
            Ok(user)
        })
        .await?;
    tracing::info!(admin.id = %principal.user_id, user.id = %id, disabled = ?body.disabled, role = ?body.role.map(Role::as_str), "account changed by an admin");
    present(&mut conn, user).await
}

async fn present(
    conn: &mut diesel_async::AsyncPgConnection,
    user: User,
) -> Result<AdminUser, ApiError> {
    let balance = crate::credits::store::balance(conn, user.id).await?;
    let sessions = store::count_signed_in(conn, user.id).await?;
    Ok(AdminUser {
        id: user.id,
        email_verified: user.email.is_some() && user.email_verified_at.is_some(),
        email: user.email,
        username: user.username,
        display_name: user.display_name,
        role: Role::from_db(&user.role),
        created_at: user.created_at,
        disabled_at: user.disabled_at,
        deleted_at: user.deleted_at,
        external: user.external_subject.is_some(),
        two_factor: user.two_factor_at.is_some(),
        free_credits: balance.map_or(0, |b| b.free),
        purchased_credits: balance.map_or(0, |b| b.purchased),
        sessions,
    })
}
