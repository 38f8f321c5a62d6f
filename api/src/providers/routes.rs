//! What model providers call: Replicate's signed webhooks, Cog's token-addressed webhooks, and the
//! upload endpoint a Cog server started with `--upload-url` puts its output files to.

use super::remote::{self, Prediction};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::generation::GenerationId;
use crate::generation::store::{self, DeliveryFor};
use crate::http::signature;
use crate::identity::types::WebhookAck;
use actix_web::{HttpRequest, HttpResponse, post, put, web};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_replicate_event)
        .service(create_cog_event)
        .service(create_cog_upload);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplicateWebhookQuery {
    /// The generation the prediction belongs to, as our webhook URL names it.
    pub generation: Option<GenerationId>,
}

fn parse_prediction(body: &[u8]) -> Result<(Prediction, serde_json::Value), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("not a prediction: {e}")))?;
    let prediction: Prediction = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::bad_request(format!("not a prediction: {e}")))?;
    Ok((prediction, value))
}

/// Replicate's prediction webhooks, signed the Standard Webhooks way. Each delivery is stored on
/// its job only if it is newer than what the job has, so repeats, late and out-of-order deliveries
/// change nothing; the job's worker takes it from there.
#[utoipa::path(
    tag = "webhooks",
    params(
        ReplicateWebhookQuery,
        ("webhook-id" = String, Header, description = "Delivery id"),
        ("webhook-timestamp" = String, Header, description = "Unix seconds"),
        ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC>` signatures, space separated"),
    ),
    request_body(content = Object, description = "A prediction, as Replicate describes it", content_type = "application/json"),
    responses(
        (status = 200, description = "Received; `applied` is false when it changed nothing", body = WebhookAck),
        (status = 401, description = "`invalid_signature`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`webhook_not_configured`: Replicate is not set up", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/replicate")]
pub async fn create_replicate_event(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: crate::http::extract::Query<ReplicateWebhookQuery>,
    body: web::Bytes,
) -> Result<web::Json<WebhookAck>, ApiError> {
    let replicate = &state.providers.replicate;
    if !replicate.configured() {
        return Err(ApiError::new(
            ErrorCode::WebhookNotConfigured,
            "Replicate is not configured (EASEL_REPLICATE_API_TOKEN)",
        ));
    }
    let secret = replicate.webhook_secret().await.map_err(|e| {
        ApiError::new(
            ErrorCode::WebhookNotConfigured,
            format!("the Replicate webhook secret is not available: {e}"),
        )
    })?;
    signature::verify(
        secret.expose(),
        req.headers(),
        &body,
        chrono::Utc::now().timestamp(),
    )?;
    let (prediction, value) = parse_prediction(&body)?;
    let mut conn = state.pool.get().await?;
    let applied = store::deliver(
        &mut conn,
        DeliveryFor::Replicate {
            prediction: &prediction.id,
            generation: query.generation,
        },
        remote::rank(&prediction.status),
        &value,
    )
    .await?;
    tracing::info!(prediction = %prediction.id, status = %prediction.status, applied, "replicate webhook");
    Ok(web::Json(WebhookAck { applied }))
}

/// A Cog server's prediction webhooks. Cog does not sign them: the unguessable per-job token in the
/// path is the authentication, and an unknown token is a 404 that changes nothing.
#[utoipa::path(
    tag = "webhooks",
    params(("token" = String, Path, description = "The job's webhook token")),
    request_body(content = Object, description = "A prediction, as Cog describes it", content_type = "application/json"),
    responses(
        (status = 200, description = "Received; `applied` is false when it changed nothing", body = WebhookAck),
        (status = 404, description = "No job has this token", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/cog/{token}")]
pub async fn create_cog_event(
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<WebhookAck>, ApiError> {
    let token = token.into_inner();
    let mut conn = state.pool.get().await?;
    // Tokens are hex; anything else (NUL included, which PostgreSQL text cannot hold) is unknown.
    let well_formed = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed || !store::cog_token_known(&mut conn, &token).await? {
        return Err(ApiError::not_found("webhook"));
    }
    let (prediction, value) = parse_prediction(&body)?;
    let applied = store::deliver(
        &mut conn,
        DeliveryFor::CogToken(&token),
        remote::rank(&prediction.status),
        &value,
    )
    .await?;
    tracing::info!(prediction = %prediction.id, status = %prediction.status, applied, "cog webhook");
    Ok(web::Json(WebhookAck { applied }))
}

/// Output files from a Cog server started with `--upload-url {EASEL_PUBLIC_URL}/uploads/cog/{secret}/`.
/// Cog names the prediction in `X-Prediction-Id`; only a running one of ours may upload. The file is
/// stored content-addressed and Cog gets back the URL it will report as the output.
#[utoipa::path(
    tag = "webhooks",
    params(
        ("secret" = String, Path, description = "EASEL_COG_UPLOAD_SECRET"),
        ("filename" = String, Path, description = "Cog's name for the file"),
        ("x-prediction-id" = String, Header, description = "The prediction the file belongs to"),
    ),
    request_body(content = Vec<u8>, description = "The file's bytes", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored; `Location` is the URL Cog reports as the output"),
        (status = 404, description = "Unknown secret or prediction", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The file is not an image", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Uploads are not configured (EASEL_COG_UPLOAD_SECRET)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[put("/uploads/cog/{secret}/{filename}")]
pub async fn create_cog_upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(expected) = &state.config.providers.cog_upload_secret else {
        return Err(ApiError::new(
            ErrorCode::WebhookNotConfigured,
            "Cog uploads are not configured (EASEL_COG_UPLOAD_SECRET)",
        ));
    };
    let (secret, _filename) = path.into_inner();
    let secret_ok: bool =
        subtle::ConstantTimeEq::ct_eq(secret.as_bytes(), expected.expose().as_bytes()).into();
    if !secret_ok {
        return Err(ApiError::not_found("upload"));
    }
    let prediction = req
        .headers()
        .get("x-prediction-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut conn = state.pool.get().await?;
    if !store::cog_prediction_active(&mut conn, &prediction).await? {
        return Err(ApiError::not_found("prediction"));
    }
    drop(conn);
    let limit = state.config.providers.download_max_bytes;
    let mut bytes = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the file is larger than the limit of {limit} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    if crate::storage::sniff(&bytes).is_none() {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the file is not an image (PNG, JPEG, WebP or GIF)",
        ));
    }
    let hash = state
        .storage
        .put("uploads", bytes)
        .await
        .map_err(ApiError::internal)?;
    let location = format!("{}{hash}", remote::upload_prefix(&state.config.public_url));
    Ok(HttpResponse::Created()
        .insert_header(("Location", location))
        .finish())
}
