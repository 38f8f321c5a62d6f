//! `/healthz` (the process answers), `/readyz` (it can do useful work) and `/openapi.json`.

use crate::app::{AppState, SpecJson};
use crate::db::migrate;
use crate::error::{ApiError, ErrorCode};
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    /// Always `ok` when the process answers.
    #[schema(example = "ok")]
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessStatus {
    /// `ready` when the database is reachable and every migration is applied.
    #[schema(example = "ready")]
    pub status: String,
    /// Version of the newest migration this build expects (and found applied).
    pub migration: Option<String>,
}

/// Liveness: the process is up and serving HTTP. Checks nothing else, so a slow database never
/// gets a healthy process restarted.
#[utoipa::path(tag = "ops", responses((status = 200, description = "The process is up", body = HealthStatus)))]
#[get("/healthz")]
pub async fn get_health() -> web::Json<HealthStatus> {
    web::Json(HealthStatus {
        status: "ok".to_owned(),
    })
}

/// Readiness: the database answers and its schema is at this build's newest migration.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Ready to serve traffic", body = ReadinessStatus),
        (status = 503, description = "Database unreachable or migrations pending", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn get_readiness(
    state: web::Data<AppState>,
) -> Result<web::Json<ReadinessStatus>, ApiError> {
    let mut conn = state.pool.get().await.map_err(|e| ApiError {
        source: Some(anyhow::anyhow!("{e}")),
        ..ApiError::new(ErrorCode::NotReady, "the database is unreachable")
    })?;
    let up_to_date = migrate::is_up_to_date(&mut conn)
        .await
        .map_err(|e| ApiError {
            source: Some(e.into()),
            ..ApiError::new(
                ErrorCode::NotReady,
                "the database did not answer the readiness check",
            )
        })?;
    if !up_to_date {
        return Err(ApiError::new(
            ErrorCode::NotReady,
            "database migrations are pending; run `easel migrate`",
        ));
    }
    Ok(web::Json(ReadinessStatus {
        status: "ready".to_owned(),
        migration: migrate::latest_version(),
    }))
}

/// This API's OpenAPI document (the same as `openapi/openapi.json` in the repository).
#[utoipa::path(
    tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
#[get("/openapi.json")]
pub async fn get_openapi(spec: web::Data<SpecJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(spec.0.clone())
}
