//! Support's view of every account's generations: find a person's job, see why it failed and where
//! it ran (the worker, the provider's prediction id), and cancel one with a refund. Admins only.

use super::service;
use super::store::{self, GenerationRow};
use super::types::Generation;
use super::{GenerationId, Status};
use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::ApiError;
use crate::identity::{Principal, UserId};
use actix_web::{get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_admin_generations)
        .service(get_admin_generation)
        .service(create_admin_generation_cancel);
}

/// A generation as support sees it: as its owner does, and how its job went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminGeneration {
    #[serde(flatten)]
    pub generation: Generation,
    /// Its owner, and the owner's username.
    pub user_id: UserId,
    pub username: String,
    /// Times a worker took it up (a retry after a provider error counts; a busy provider or a
    /// stopping worker does not).
    pub attempts: i32,
    /// The process running it now (`host:pid:…`); null unless it is running.
    pub worker: Option<String>,
    /// The provider's id for its prediction (Replicate's, or Cog's), to look it up there.
    pub provider_ref: Option<String>,
    /// When it fails with a refund unless it has ended.
    pub deadline_at: DateTime<Utc>,
}

/// A page of [`AdminGeneration`]s (the shape of every list).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminGenerationPage {
    pub data: Vec<AdminGeneration>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminGenerationFilter {
    /// Only this account's: its id, email or username.
    pub user: Option<String>,
    /// Only generations in this state.
    pub status: Option<Status>,
    /// Only this model's.
    pub model: Option<String>,
    /// Only those that failed with this code (`provider_unavailable`, `deadline_exceeded` …).
    pub error_code: Option<String>,
    /// How many items to return, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page; omit for the first page.
    pub cursor: Option<String>,
}

/// Every account's generations, newest first, by owner (id, email or username), state, model or
/// error.
#[utoipa::path(
    tag = "admin",
    security(("session" = [])),
    params(AdminGenerationFilter),
    responses(
        (status = 200, description = "A page of generations", body = AdminGenerationPage),
        (status = 403, description = "Not an admin, or an API key", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/generations")]
pub async fn list_admin_generations(
    state: web::Data<AppState>,
    principal: Principal,
    filter: crate::http::extract::Query<AdminGenerationFilter>,
) -> Result<web::Json<Page<AdminGeneration>>, ApiError> {
    principal.require_support(&state.config.auth)?;
    Ok(web::Json(search(&state, filter.into_inner()).await?))
}

/// One page of the generations `filter` asks for.
async fn search(
    state: &AppState,
    filter: AdminGenerationFilter,
) -> Result<Page<AdminGeneration>, ApiError> {
    // The cursor belongs to this filter: another filter's cursor is `invalid_cursor`.
    let list = format!(
        "admin-generations:{}:{}:{}:{}",
        filter.user.as_deref().unwrap_or_default(),
        filter.status.map_or("", Status::as_str),
        filter.model.as_deref().unwrap_or_default(),
        filter.error_code.as_deref().unwrap_or_default(),
    );
    let page = PageParams {
        limit: filter.limit,
        cursor: filter.cursor.clone(),
    }
    .parse::<GenerationId>(&list)?;
    let mut conn = state.pool.get().await?;
    let user_id = match filter.user.as_deref() {
        None => None,
        Some(user) => match account(&mut conn, user).await? {
            Some(id) => Some(id),
            // Nobody by that name has generations.
            None => {
                return Ok(Page::from_rows(
                    &list,
                    Vec::new(),
                    page.limit,
                    |g: &AdminGeneration| g.generation.id,
                ));
            }
        },
    };
    let query = store::AdminQuery {
        user_id,
        status: filter.status,
        model: filter.model.as_deref(),
        error_code: filter.error_code.as_deref(),
    };
    let rows = store::list_all(&mut conn, &query, page.after, page.limit).await?;
    let items = present(rows, state, &mut conn).await?;
    Ok(Page::from_rows(&list, items, page.limit, |g| {
        g.generation.id
    }))
}

/// Any account's generation, with how its job went.
#[utoipa::path(
    tag = "admin",
    security(("session" = [])),
    params(("id" = GenerationId, Path, description = "The generation")),
    responses(
        (status = 200, description = "The generation", body = AdminGeneration),
        (status = 403, description = "Not an admin, or an API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such generation", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/generations/{id}")]
pub async fn get_admin_generation(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<GenerationId>,
) -> Result<web::Json<AdminGeneration>, ApiError> {
    principal.require_support(&state.config.auth)?;
    Ok(web::Json(one(&state, id.into_inner()).await?))
}

/// Cancels any account's active generation and refunds it (a job its owner cannot stop, or one
/// support must stop); on a finished one it changes nothing.
#[utoipa::path(
    tag = "admin",
    security(("session" = [])),
    params(("id" = GenerationId, Path, description = "The generation")),
    responses(
        (status = 200, description = "The generation, canceled and refunded, or as it ended", body = AdminGeneration),
        (status = 403, description = "Not an admin, or an API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such generation", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/generations/{id}/cancel")]
pub async fn create_admin_generation_cancel(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<GenerationId>,
) -> Result<web::Json<AdminGeneration>, ApiError> {
    principal.require_support(&state.config.auth)?;
    Ok(web::Json(
        cancel(&state, &principal, id.into_inner()).await?,
    ))
}

/// Cancels `id` with a refund if it is still active; returns it as it is now.
async fn cancel(
    state: &AppState,
    principal: &Principal,
    id: GenerationId,
) -> Result<AdminGeneration, ApiError> {
    // 404 before anything changes.
    one(state, id).await?;
    let mut conn = state.pool.get().await?;
    let canceled = service::end_with_refund(
        &state.metrics,
        &mut conn,
        id,
        Status::Canceled,
        Some(("canceled", "canceled by support", false)),
    )
    .await?;
    if canceled {
        tracing::info!(admin.id = %principal.user_id, generation.id = %id, "generation canceled by support");
    }
    drop(conn);
    one(state, id).await
}

/// The account `user` names: its id, its email (with an `@`) or its username.
async fn account(
    conn: &mut diesel_async::AsyncPgConnection,
    user: &str,
) -> Result<Option<UserId>, ApiError> {
    use crate::identity::store::{UserKey, find_user_by};
    Ok(find_user_by(conn, UserKey::named(user))
        .await?
        .map(|found| found.id))
}

async fn one(state: &AppState, id: GenerationId) -> Result<AdminGeneration, ApiError> {
    let mut conn = state.pool.get().await?;
    let row = store::find(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))?;
    present(vec![row], state, &mut conn)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("generation"))
}

async fn present(
    rows: Vec<GenerationRow>,
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
) -> Result<Vec<AdminGeneration>, ApiError> {
    // Only a running job has a worker: a finished or requeued one's last claim is not news.
    let running: Vec<GenerationId> = rows
        .iter()
        .filter(|row| matches!(row.status.as_str(), "starting" | "processing"))
        .map(|row| row.id)
        .collect();
    let workers = if running.is_empty() {
        Vec::new()
    } else {
        store::workers_of(conn, &running).await?
    };
    let owners: Vec<UserId> = rows.iter().map(|row| row.user_id).collect();
    let names = crate::identity::store::usernames_of(conn, &owners).await?;
    let facts: Vec<JobFacts> = rows
        .iter()
        .map(|row| JobFacts {
            user_id: row.user_id,
            username: names
                .iter()
                .find(|(id, _)| *id == row.user_id)
                .map(|(_, name)| name.clone())
                .unwrap_or_default(),
            attempts: row.attempts,
            worker: workers
                .iter()
                .find(|(id, _)| *id == row.id)
                .and_then(|(_, worker)| worker.clone()),
            provider_ref: row.provider_ref.clone(),
            deadline_at: row.deadline_at,
        })
        .collect();
    let generations = service::present(rows, &state.catalog, conn).await?;
    Ok(generations
        .into_iter()
        .zip(facts)
        .map(|(generation, job)| AdminGeneration {
            generation,
            user_id: job.user_id,
            username: job.username,
            attempts: job.attempts,
            worker: job.worker,
            provider_ref: job.provider_ref,
            deadline_at: job.deadline_at,
        })
        .collect())
}

/// What support sees of a job beyond what its owner does.
struct JobFacts {
    user_id: UserId,
    username: String,
    attempts: i32,
    worker: Option<String>,
    provider_ref: Option<String>,
    deadline_at: DateTime<Utc>,
}
