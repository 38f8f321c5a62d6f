//! Uploading input images, deciding which file a generation may take as its input, and purging
//! uploads nobody used.

use super::store::{self, InputRow, UploadRow};
use super::{MAX_INPUT_PIXELS, UPLOAD_TTL_HOURS, UploadId};
use crate::app::AppState;
use crate::catalog::Model;
use crate::error::{ApiError, ErrorCode};
use crate::identity::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An uploaded input image.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Upload {
    pub id: UploadId,
    /// The type sniffed from the bytes: `image/png`, `image/jpeg` or `image/webp`.
    pub content_type: String,
    pub byte_size: i64,
    pub width: i32,
    pub height: i32,
    /// The file, for its uploader.
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// Unless a generation uses it by then, it is deleted at this time.
    pub expires_at: DateTime<Utc>,
    /// When a generation first used it (it is then kept).
    pub used_at: Option<DateTime<Utc>>,
}

pub fn view(row: &UploadRow) -> Upload {
    Upload {
        id: row.id,
        content_type: row.content_type.clone(),
        byte_size: row.byte_size,
        width: row.width,
        height: row.height,
        url: format!("/v1/uploads/{}/file", row.id),
        created_at: row.created_at,
        expires_at: row.created_at + chrono::Duration::hours(UPLOAD_TTL_HOURS),
        used_at: row.used_at,
    }
}

/// The type and pixel size of an image file, judged by its bytes alone.
pub fn inspect(bytes: &[u8]) -> Result<(&'static str, u32, u32), ApiError> {
    let content_type = crate::storage::sniff(bytes)
        .filter(|t| crate::catalog::IMAGE_FORMATS.contains(t))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the file is not a PNG, JPEG or WebP image (judged by its contents, not its name)",
            )
        })?;
    let (width, height) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_dimensions().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("the file starts like {content_type} but cannot be read as one"),
            )
        })?;
    if u64::from(width) * u64::from(height) > MAX_INPUT_PIXELS || width == 0 || height == 0 {
        return Err(ApiError::field(
            "file",
            format!("{width}x{height} pixels is too large; at most {MAX_INPUT_PIXELS} pixels"),
        ));
    }
    Ok((content_type, width, height))
}

/// Stores an uploaded image (content-addressed) and records it as the uploader's.
pub async fn upload(
    state: &AppState,
    principal: &Principal,
    bytes: Vec<u8>,
) -> Result<Upload, ApiError> {
    let (content_type, width, height) = inspect(&bytes)?;
    let byte_size = i64::try_from(bytes.len()).map_err(ApiError::internal)?;
    let hash = crate::storage::content_hash(&bytes);
    let mut conn = state.pool.get().await?;
    let row = UploadRow {
        id: UploadId::new(),
        user_id: principal.user_id,
        content_hash: hash.clone(),
        content_type: content_type.to_owned(),
        byte_size,
        width: i32::try_from(width).map_err(ApiError::internal)?,
        height: i32::try_from(height).map_err(ApiError::internal)?,
        created_at: Utc::now(),
        used_at: None,
    };
    // Under the file's lock, so the purge cannot remove the file between the write and the row.
    diesel_async::AsyncConnection::transaction::<_, ApiError, _>(&mut conn, async |conn| {
        crate::gallery::store::lock_file(conn, &hash).await?;
        state
            .storage
            .put("uploads", bytes)
            .await
            .map_err(ApiError::internal)?;
        store::insert_upload(conn, &row).await?;
        Ok(())
    })
    .await?;
    Ok(view(&row))
}

pub async fn get(
    state: &AppState,
    principal: &Principal,
    id: UploadId,
) -> Result<UploadRow, ApiError> {
    let mut conn = state.pool.get().await?;
    store::find_upload(&mut conn, principal.user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("upload"))
}

/// The input a generation of `model` would take from `id`: an upload of the caller's, or an image
/// they may see. Anything else is a 404 that names neither, so nobody learns what exists.
pub async fn resolve(
    state: &AppState,
    principal: &Principal,
    model: &Model,
    id: uuid::Uuid,
) -> Result<InputRow, ApiError> {
    let mut conn = state.pool.get().await?;
    let found = match store::find_upload(&mut conn, principal.user_id, UploadId(id)).await? {
        Some(upload) => Some((
            "upload",
            upload.content_hash,
            upload.content_type,
            upload.byte_size,
            upload.width,
            upload.height,
        )),
        None => store::usable_image(&mut conn, principal.user_id, id)
            .await?
            .map(|(hash, content_type, size, width, height)| {
                ("image", hash, content_type, size, width, height)
            }),
    };
    let Some((source, content_hash, content_type, byte_size, width, height)) = found else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "image_input is not an upload of yours or an image you may use",
        ));
    };
    if !model.image_formats.contains(&content_type) {
        return Err(ApiError::field(
            "image_input",
            format!(
                "{content_type} is not accepted by {}; use {}",
                model.id,
                model.image_formats.join(", ")
            ),
        ));
    }
    if u64::try_from(byte_size).unwrap_or(u64::MAX) > model.image_max_bytes {
        return Err(ApiError::field(
            "image_input",
            format!(
                "the image is {byte_size} bytes; {} takes at most {}",
                model.id, model.image_max_bytes
            ),
        ));
    }
    Ok(InputRow {
        generation_id: uuid::Uuid::nil(),
        source: source.to_owned(),
        source_id: id,
        content_hash,
        content_type,
        byte_size,
        width,
        height,
    })
}

/// Erases a deleted account's uploads: each row, the records of the generations that used it,
/// and its file when nothing else holds it, in one transaction under the file's lock (as
/// [`purge`] does). Returns how many uploads went.
pub async fn erase_owner(
    state: &AppState,
    owner: crate::identity::UserId,
) -> anyhow::Result<usize> {
    let mut conn = state.pool.get().await?;
    let uploads = store::uploads_of(&mut conn, owner).await?;
    for (id, hash) in &uploads {
        diesel_async::AsyncConnection::transaction::<_, anyhow::Error, _>(
            &mut conn,
            async |conn| {
                crate::gallery::store::lock_file(conn, hash).await?;
                store::delete_upload_and_uses(conn, *id).await?;
                if !store::upload_file_in_use(conn, hash).await? {
                    state.storage.delete("uploads", hash).await?;
                }
                Ok(())
            },
        )
        .await?;
    }
    Ok(uploads.len())
}

/// Deletes uploads unused for a day, and their files when nothing else holds them.
///
/// Each upload goes in one transaction under its file's lock: the row is deleted, then the file,
/// then the deletion commits. A crash in between leaves the row, which the next purge takes again
/// (an expired upload can no longer be used, see [`store::record_input`]); never a file that no
/// row points to.
pub async fn purge(state: &AppState) -> anyhow::Result<usize> {
    let mut conn = state.pool.get().await?;
    let before = Utc::now() - chrono::Duration::hours(UPLOAD_TTL_HOURS);
    let mut purged = 0;
    loop {
        let expired = store::unused_before(&mut conn, before, 100).await?;
        if expired.is_empty() {
            return Ok(purged);
        }
        for (id, hash) in expired {
            let deleted = diesel_async::AsyncConnection::transaction::<_, anyhow::Error, _>(
                &mut conn,
                async |conn| {
                    crate::gallery::store::lock_file(conn, &hash).await?;
                    if !store::delete_unused(conn, id, before).await? {
                        return Ok(false);
                    }
                    if !store::upload_file_in_use(conn, &hash).await? {
                        state.storage.delete("uploads", &hash).await?;
                    }
                    Ok(true)
                },
            )
            .await?;
            purged += usize::from(deleted);
        }
    }
}
