//! `GET /v1/models` and `GET /v1/models/{id}`: public.

use super::Model;
use crate::app::AppState;
use crate::error::ApiError;
use actix_web::{get, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_models).service(get_model);
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    pub data: Vec<Model>,
}

/// Every model, with its cost and accepted inputs.
#[utoipa::path(tag = "models", responses((status = 200, description = "The catalog", body = ModelList)))]
#[get("/v1/models")]
pub async fn list_models(state: web::Data<AppState>) -> web::Json<ModelList> {
    web::Json(ModelList {
        data: state.catalog.all().to_vec(),
    })
}

/// One model.
#[utoipa::path(
    tag = "models",
    params(("id" = String, Path, description = "The model id, e.g. easel-sketch")),
    responses(
        (status = 200, description = "The model", body = Model),
        (status = 404, description = "No such model", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/models/{id}")]
pub async fn get_model(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<Model>, ApiError> {
    state
        .catalog
        .get(&id)
        .cloned()
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found("model"))
}
