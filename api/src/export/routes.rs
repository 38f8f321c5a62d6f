//! Export endpoints: a link to my data, and the archive behind it.

use super::ExportLink;
use crate::app::AppState;
use crate::error::ApiError;
use crate::identity::{Principal, SessionId, UserId};
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_export).service(get_export);
}

/// A link to download all my data as one zip archive: my account, generations, images with their
/// files, collections, credit ledger and purchases. The link works for 15 minutes, needs no other
/// credential, and stops working when this session signs out. People only: not API keys.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    responses(
        (status = 201, description = "The download link", body = ExportLink),
        (status = 403, description = "An API key", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/export")]
pub async fn create_export(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require_person()?;
    let expires = chrono::Utc::now().timestamp() + super::LINK_TTL_SECS;
    Ok(HttpResponse::Created().json(super::link(&state, &principal, expires)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The session the link was made in (absent for an identity provider's sign-in).
    pub session: Option<SessionId>,
    /// When the link stops working (unix seconds).
    pub expires: i64,
    /// The link's signature.
    #[param(pattern = "^[0-9a-f]{64}$")]
    pub sig: String,
}

/// A zip archive of the account's data, written as it is sent. Use the link
/// `POST /v1/me/export` gives; it needs no other credential.
#[utoipa::path(
    tag = "account",
    params(("user" = UserId, Path, description = "The account"), ExportQuery),
    responses(
        (status = 200, description = "The archive", content((crate::generation::types::FileBytes = "application/zip"))),
        (status = 404, description = "No such link: altered, expired, or its session ended", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "More than 10 downloads of this account's data this hour", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/exports/{user}")]
pub async fn get_export(
    state: web::Data<AppState>,
    user: web::Path<UserId>,
    query: crate::http::extract::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = chrono::Utc::now();
    let principal = super::open(
        &state,
        user.into_inner(),
        query.session,
        query.expires,
        &query.sig,
        now.timestamp(),
    )
    .await?;
    let name = format!(
        "easel-{}-{}.zip",
        principal.username,
        now.format("%Y-%m-%d")
    );
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(super::stream(state.into_inner(), principal)))
}
