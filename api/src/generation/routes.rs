//! Generation endpoints and image files: thin handlers over `service`.

use super::service;
use super::store;
use super::types::{
    CreateGenerationRequest, FileQuery, Generation, GenerationFilter, GenerationPage, Variant,
    WebhookSecret,
};
use super::webhooks::{self, WebhookStatus};
use super::{GenerationId, ImageId, Visibility};
use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::http::idempotency::{self, IdempotencyKey};
use crate::identity::{Principal, Scope};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use std::time::{Duration, Instant};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_generation)
        .service(list_generations)
        .service(get_generation)
        .service(create_generation_cancel)
        .service(get_generation_events)
        .service(get_generation_webhook)
        .service(get_webhook_secret)
        .service(create_webhook_secret_rotation)
        .service(get_image_file);
}

/// `Prefer: wait=N` (RFC 7240, as Replicate's API takes it), capped at 60 seconds.
fn prefer_wait(req: &HttpRequest) -> Option<Duration> {
    let value = req.headers().get("prefer")?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let seconds: u64 = part.trim().strip_prefix("wait=")?.trim().parse().ok()?;
        Some(Duration::from_secs(seconds.min(60)))
    })
}

/// Start a generation: reserves its full cost and queues it (202), or with `dry_run` quotes it (200).
#[utoipa::path(
    tag = "generations",
    security(("session" = []), ("api_key" = ["generate"])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same key and body for 24 h"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` (N ≤ 60): hold the response until the generation finishes or N seconds pass"),
    ),
    request_body = CreateGenerationRequest,
    responses(
        (status = 202, description = "Accepted and queued (or still running after `Prefer: wait`)", body = Generation,
         headers(("Location" = String, description = "The generation"))),
        (status = 200, description = "A dry run's quote, or a finished generation after `Prefer: wait`", body = super::types::CreateGenerationOk),
        (status = 402, description = "`insufficient_credits` (with `needed` and `available`) or `credits_owed`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`pro_model_requires_purchase`, or an API key without the generate scope", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid inputs, naming the allowed values", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_in_flight` or `rate_limited`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/generations")]
pub async fn create_generation(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    body: Json<CreateGenerationRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Generate)?;
    let wait = prefer_wait(&req);
    let digest = body.digest().to_vec();
    let response = idempotency::run(&state, principal.user_id, &key, &req, &digest, || async {
        let plan = service::plan(&state, &body)?;
        let plan = service::with_input(&state, &principal, plan, body.image_input).await?;
        if body.dry_run {
            return Ok(HttpResponse::Ok().json(service::quote(&state, &principal, &plan).await?));
        }
        // The generation as accepted: a worker may already have picked it up since.
        let settings = plan.settings;
        let input = plan
            .input
            .as_ref()
            .map(crate::inputs::store::InputRow::source);
        let row = service::create(&state, &principal, plan).await?;
        let id = row.id;
        let generation = service::present_queued(row, settings, input.as_ref());
        Ok(HttpResponse::Accepted()
            .insert_header((header::LOCATION, format!("/v1/generations/{id}")))
            .json(generation))
    })
    .await?;
    // Waiting happens outside the idempotent part: a replay waits afresh rather than replaying a wait.
    match (wait, response.status().as_u16()) {
        (Some(wait), 202) => {
            let id = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.rsplit('/').next())
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .map(GenerationId);
            match id {
                Some(id) => wait_for(&state, &principal, id, wait).await,
                None => Ok(response),
            }
        }
        _ => Ok(response),
    }
}

async fn wait_for(
    state: &AppState,
    principal: &Principal,
    id: GenerationId,
    wait: Duration,
) -> Result<HttpResponse, ApiError> {
    let until = Instant::now() + wait;
    // Watching before the first read: a change in between is not missed.
    let mut watch = state.changes.watch(id);
    loop {
        let generation = service::get(state, principal, id).await?;
        let location = (header::LOCATION, format!("/v1/generations/{id}"));
        if generation.status.is_terminal() {
            return Ok(HttpResponse::Ok().insert_header(location).json(generation));
        }
        if Instant::now() >= until {
            return Ok(HttpResponse::Accepted()
                .insert_header(location)
                .json(generation));
        }
        let _ = tokio::time::timeout_at(until.into(), watch.next()).await;
    }
}

/// My generations, newest first.
#[utoipa::path(
    tag = "generations",
    security(("session" = []), ("api_key" = ["read"])),
    params(PageParams, GenerationFilter),
    responses((status = 200, description = "A page of generations", body = GenerationPage))
)]
#[get("/v1/generations")]
pub async fn list_generations(
    state: web::Data<AppState>,
    principal: Principal,
    page: crate::http::extract::Query<PageParams>,
    filter: crate::http::extract::Query<GenerationFilter>,
) -> Result<web::Json<Page<Generation>>, ApiError> {
    principal.require(Scope::Read)?;
    Ok(web::Json(
        service::list(&state, &principal, &page, filter.status).await?,
    ))
}

/// One of my generations, with its images, progress and any error.
#[utoipa::path(
    tag = "generations",
    security(("session" = []), ("api_key" = ["read"])),
    params(("id" = GenerationId, Path, description = "The generation")),
    responses(
        (status = 200, description = "The generation", body = Generation),
        (status = 404, description = "No such generation of mine", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/generations/{id}")]
pub async fn get_generation(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<GenerationId>,
) -> Result<web::Json<Generation>, ApiError> {
    principal.require(Scope::Read)?;
    Ok(web::Json(
        service::get(&state, &principal, id.into_inner()).await?,
    ))
}

/// Where the webhook of one of my generations stands: its URL, attempts, and when it was delivered
/// or is tried next.
#[utoipa::path(
    tag = "generations",
    security(("session" = []), ("api_key" = ["read"])),
    params(("id" = GenerationId, Path, description = "The generation")),
    responses(
        (status = 200, description = "The webhook's state", body = WebhookStatus),
        (status = 404, description = "No such generation of mine, or it has no webhook", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/generations/{id}/webhook")]
pub async fn get_generation_webhook(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<GenerationId>,
) -> Result<web::Json<WebhookStatus>, ApiError> {
    principal.require(Scope::Read)?;
    let mut conn = state.pool.get().await?;
    let status = webhooks::status_of(&mut conn, principal.user_id, id.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(web::Json(status))
}

/// My webhook signing secret (made on first request). Deliveries carry `webhook-id`,
/// `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>` over
/// `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64 bytes after `whsec_`.
#[utoipa::path(
    tag = "account",
    security(("session" = []), ("api_key" = ["generate"])),
    responses(
        (status = 200, description = "The secret", body = WebhookSecret),
    )
)]
#[get("/v1/me/webhook-secret")]
pub async fn get_webhook_secret(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<WebhookSecret>, ApiError> {
    principal.require(Scope::Generate)?;
    let mut conn = state.pool.get().await?;
    let secret = webhooks::secret_of(&mut conn, principal.user_id).await?;
    Ok(web::Json(WebhookSecret { secret }))
}

/// Replace my webhook signing secret. Deliveries from now on, retries included, are signed with
/// the new one.
#[utoipa::path(
    tag = "account",
    security(("session" = []), ("api_key" = ["generate"])),
    responses(
        (status = 200, description = "The new secret", body = WebhookSecret),
    )
)]
#[post("/v1/me/webhook-secret/rotate")]
pub async fn create_webhook_secret_rotation(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<WebhookSecret>, ApiError> {
    principal.require(Scope::Generate)?;
    let mut conn = state.pool.get().await?;
    let secret = webhooks::rotate_secret(&mut conn, principal.user_id).await?;
    Ok(web::Json(WebhookSecret { secret }))
}

/// Cancel a running generation and refund it. On a finished one it changes nothing.
#[utoipa::path(
    tag = "generations",
    security(("session" = []), ("api_key" = ["generate"])),
    params(("id" = GenerationId, Path, description = "The generation")),
    responses(
        (status = 200, description = "The generation, canceled (or as it finished)", body = Generation),
        (status = 404, description = "No such generation of mine", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/generations/{id}/cancel")]
pub async fn create_generation_cancel(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<GenerationId>,
) -> Result<web::Json<Generation>, ApiError> {
    principal.require(Scope::Generate)?;
    Ok(web::Json(
        service::cancel(&state, &principal, id.into_inner()).await?,
    ))
}

/// Server-Sent Events for one of my generations: an event whenever its status or progress changes,
/// ending with the terminal state. A reconnect with `Last-Event-ID` resumes without repeating the
/// state it had already seen.
#[utoipa::path(
    tag = "generations",
    security(("session" = []), ("api_key" = ["read"])),
    params(
        ("id" = GenerationId, Path, description = "The generation"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received"),
    ),
    responses(
        (status = 200, description = "`event: generation` with the generation as JSON; the id is `<status>:<progress>`",
         content_type = "text/event-stream", body = String),
        (status = 404, description = "No such generation of mine", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/generations/{id}/events")]
pub async fn get_generation_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<GenerationId>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Read)?;
    let id = id.into_inner();
    // Checks ownership before the stream starts, so a stranger gets a plain 404.
    service::get(&state, &principal, id).await?;
    let last_seen = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let stream = super::events::stream(state.into_inner(), principal, id, last_seen);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}

/// An image's file. Private images only to their owner (others get 404). Supports `If-None-Match`
/// and single byte ranges.
#[utoipa::path(
    tag = "images",
    security((), ("session" = []), ("api_key" = ["read"])),
    params(("id" = ImageId, Path, description = "The image"), FileQuery),
    responses(
        (status = 200, description = "The bytes: the original as stored (PNG), or the WebP thumbnail",
         content((super::types::FileBytes = "image/png"), (super::types::FileBytes = "image/webp")),
         headers(
            ("ETag" = String, description = "The file's content hash"),
            ("Content-Disposition" = String, description = "`inline; filename=\"easel-{id}.png\"` (the extension of the stored type), or `easel-{id}-thumb.webp`"))),
        (status = 206, description = "A byte range of the file", content((super::types::FileBytes = "image/png"), (super::types::FileBytes = "image/webp"))),
        (status = 304, description = "Not modified (ETag matched)"),
        (status = 404, description = "No such image, or not yours", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/images/{id}/file")]
pub async fn get_image_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<ImageId>,
    query: crate::http::extract::Query<FileQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let image = store::find_image(&mut conn, id.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("image"))?;
    drop(conn);
    let visibility = Visibility::from_db(&image.visibility);
    let open_to_all = visibility != Visibility::Private && !image.nsfw;
    if !open_to_all {
        // Only now is a credential needed: public files stay cacheable and anonymous.
        let principal = match crate::identity::principal::bearer(&req) {
            Ok(token) => crate::identity::service::authenticate(&state, &token)
                .await
                .ok(),
            Err(_) => None,
        };
        let owner =
            principal.is_some_and(|p| p.user_id == image.user_id && p.require(Scope::Read).is_ok());
        if !owner {
            return Err(ApiError::not_found("image"));
        }
    }
    let cache = if visibility == Visibility::Public && !image.nsfw {
        "public, max-age=31536000, immutable"
    } else {
        "private, max-age=3600"
    };
    if query.variant == Some(Variant::Thumb) {
        let name = format!("easel-{}-thumb", image.id.0);
        let file = ("thumbs", image.thumb_hash.as_str());
        if let Some(response) =
            try_serve_file(&req, &state, file, "image/webp", &name, cache).await?
        {
            return Ok(response);
        }
        let hash = service::remake_lost_thumb(&state, &image)
            .await?
            .ok_or_else(|| missing_file(file))?;
        return serve_file(&req, &state, ("thumbs", &hash), "image/webp", &name, cache).await;
    }
    let name = format!("easel-{}", image.id.0);
    let file = ("originals", image.content_hash.as_str());
    serve_file(&req, &state, file, &image.content_type, &name, cache).await
}

/// A row whose file is gone is our fault, not the caller's: logged with its key, and said plainly,
/// since asking again will not bring it back.
fn missing_file((kind, hash): (&str, &str)) -> ApiError {
    ApiError {
        source: Some(anyhow::anyhow!("stored file {kind}/{hash} is missing")),
        ..ApiError::new(
            crate::error::ErrorCode::FileMissing,
            "this file is missing from storage; asking again will not bring it back. The operator \
             can find it with `easel admin verify-files` (quote the request_id)",
        )
    }
}

/// A stored file (`kind` and hash) with its hash as ETag (304 when it matches) and single byte
/// ranges, read as it is sent rather than held in memory whole. `name` is what a browser saves it
/// as, with the extension of its type added.
pub async fn serve_file(
    req: &HttpRequest,
    state: &AppState,
    file: (&str, &str),
    content_type: &str,
    name: &str,
    cache: &'static str,
) -> Result<HttpResponse, ApiError> {
    try_serve_file(req, state, file, content_type, name, cache)
        .await?
        .ok_or_else(|| missing_file(file))
}

/// [`serve_file`], or `None` when storage does not have the file.
pub async fn try_serve_file(
    req: &HttpRequest,
    state: &AppState,
    (kind, hash): (&str, &str),
    content_type: &str,
    name: &str,
    cache: &'static str,
) -> Result<Option<HttpResponse>, ApiError> {
    let etag = format!("\"{hash}\"");
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Ok(Some(
            HttpResponse::NotModified()
                .insert_header((header::ETAG, etag))
                .insert_header((header::CACHE_CONTROL, cache))
                .finish(),
        ));
    }
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::storage::ByteRange::parse);
    let Some(reading) = state
        .storage
        .open(kind, hash, range)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(None);
    };
    let mut response = match reading.range {
        Some((start, end)) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", reading.size),
            ));
            r
        }
        None => HttpResponse::Ok(),
    };
    let len = reading.len();
    Ok(Some(
        response
            .content_type(content_type)
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache))
            .insert_header((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "inline; filename=\"{name}.{}\"",
                    crate::storage::extension_of(content_type)
                ),
            ))
            // The type was judged from the bytes when they were stored; a browser must not guess again.
            .insert_header((
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .body(actix_web::body::SizedStream::new(len, reading.body)),
    ))
}
