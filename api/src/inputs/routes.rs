//! `POST /v1/uploads`, an upload's file for its owner, and a job's input for the provider holding
//! its signed link.

use super::service::{self, Upload};
use super::{UploadId, store};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::generation::GenerationId;
use crate::identity::{Principal, Scope};
use actix_multipart::{Multipart, MultipartError};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use futures_util::TryStreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_upload)
        .service(get_upload_file)
        .service(get_generation_input);
}

/// The multipart form of an upload.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "describes the form for the spec; the handler reads the multipart stream"
)]
pub struct UploadForm {
    /// The image: PNG, JPEG or WebP (judged by its bytes), at most `EASEL_UPLOAD_MAX_BYTES`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload an image to use as a generation's `image_input`. It is private to you, and deleted after a
/// day unless a generation used it.
#[utoipa::path(
    tag = "uploads",
    security(("session" = []), ("api_key" = ["generate"])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored", body = Upload,
         headers(("Location" = String, description = "The upload's file"))),
        (status = 400, description = "A broken multipart body (`bad_request`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the upload limit (`payload_too_large`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a multipart/form-data body, or the file is not a PNG, JPEG or WebP image (`unsupported_media_type`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "No `file` field, more than one, or too many pixels (`validation_failed`, naming the field)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/uploads")]
pub async fn create_upload(
    state: web::Data<AppState>,
    principal: Principal,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Generate)?;
    let limit = state.config.generation.upload_max_bytes;
    let bad = |detail: &str| ApiError::new(ErrorCode::BadRequest, detail.to_owned());
    let mut file: Option<Vec<u8>> = None;
    while let Some(mut field) = form.try_next().await.map_err(|e| match e {
        // The wrong kind of body, as a JSON route answers a body that is not JSON.
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the image as multipart/form-data, in a field named `file`".to_owned(),
        ),
        e => bad(&format!("the multipart/form-data body is broken: {e}")),
    })? {
        if field.name() != Some("file") {
            continue;
        }
        if file.is_some() {
            return Err(ApiError::field("file", "send one file, not several"));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field
            .try_next()
            .await
            .map_err(|e| bad(&format!("the upload was cut off: {e}")))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the file is larger than the upload limit of {limit} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some(bytes);
    }
    let bytes = file.ok_or_else(|| ApiError::field("file", "required: the image to upload"))?;
    let upload = service::upload(&state, &principal, bytes).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, upload.url.clone()))
        .json(upload))
}

/// An upload's file, for the person who uploaded it.
#[utoipa::path(
    tag = "uploads",
    security(("session" = []), ("api_key" = ["read"])),
    params(("id" = UploadId, Path, description = "The upload")),
    responses(
        (status = 200, description = "The bytes", content(
            (crate::generation::types::FileBytes = "image/png"),
            (crate::generation::types::FileBytes = "image/jpeg"),
            (crate::generation::types::FileBytes = "image/webp"))),
        (status = 304, description = "Not modified (ETag matched)"),
        (status = 404, description = "No such upload of mine", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/uploads/{id}/file")]
pub async fn get_upload_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<UploadId>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Read)?;
    let upload = service::get(&state, &principal, id.into_inner()).await?;
    crate::generation::routes::serve_file(
        &req,
        &state,
        ("uploads", &upload.content_hash),
        &upload.content_type,
        &format!("upload-{}", upload.id.0),
        "private, max-age=3600",
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InputQuery {
    /// When the link stops working (unix seconds).
    pub expires: i64,
    /// The link's signature.
    #[param(pattern = "^[0-9a-f]{64}$")]
    pub sig: String,
}

/// A generation's input image, for the model provider running it. The link is signed for that one
/// job and works for 15 minutes; it needs no other credential.
#[utoipa::path(
    tag = "generations",
    params(("id" = GenerationId, Path, description = "The generation"), InputQuery),
    responses(
        (status = 200, description = "The input image", content(
            (crate::generation::types::FileBytes = "image/png"),
            (crate::generation::types::FileBytes = "image/jpeg"),
            (crate::generation::types::FileBytes = "image/webp"))),
        (status = 404, description = "No such input, or the link expired or was altered", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/generations/{id}/input")]
pub async fn get_generation_input(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<GenerationId>,
    query: crate::http::extract::Query<InputQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    state.signer.check(
        id.0,
        query.expires,
        &query.sig,
        chrono::Utc::now().timestamp(),
    )?;
    let mut conn = state.pool.get().await?;
    let input = store::input_of(&mut conn, id.0)
        .await?
        .ok_or_else(|| ApiError::not_found("input"))?;
    drop(conn);
    crate::generation::routes::serve_file(
        &req,
        &state,
        (input.storage_kind(), &input.content_hash),
        &input.content_type,
        &format!("input-{}", id.0),
        "private, no-store",
    )
    .await
}
