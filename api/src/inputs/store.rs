//! Uploads and generation inputs in the database.

use super::UploadId;
use crate::db::schema::{generation_inputs, images, uploads};
use crate::identity::UserId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = uploads)]
pub struct UploadRow {
    pub id: UploadId,
    pub user_id: UserId,
    pub content_hash: String,
    pub content_type: String,
    pub byte_size: i64,
    pub width: i32,
    pub height: i32,
    pub created_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert_upload(conn: &mut AsyncPgConnection, row: &UploadRow) -> QueryResult<()> {
    diesel::insert_into(uploads::table)
        .values(row)
        .execute(conn)
        .await
        .map(|_| ())
}

/// One of the user's uploads.
pub async fn find_upload(
    conn: &mut AsyncPgConnection,
    user: UserId,
    id: UploadId,
) -> QueryResult<Option<UploadRow>> {
    uploads::table
        .find(id)
        .filter(uploads::user_id.eq(user))
        .select(UploadRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The file of an image usable as an input by `user`: theirs, or public or unlisted and not
/// flagged; a live image (not deleted) and a picture (not a 3D model).
pub async fn usable_image(
    conn: &mut AsyncPgConnection,
    user: UserId,
    id: uuid::Uuid,
) -> QueryResult<Option<(String, String, i64, i32, i32)>> {
    images::table
        .find(id)
        .filter(images::deleted_at.is_null())
        .filter(images::kind.eq("image"))
        .filter(
            images::user_id.eq(user).or(images::visibility
                .eq_any(["public", "unlisted"])
                .and(images::nsfw.eq(false))),
        )
        .select((
            images::content_hash,
            images::content_type,
            images::byte_size,
            images::width,
            images::height,
        ))
        .first(conn)
        .await
        .optional()
}

/// A generation's input, as recorded when it was accepted.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = generation_inputs)]
pub struct InputRow {
    pub generation_id: uuid::Uuid,
    pub source: String,
    pub source_id: uuid::Uuid,
    pub content_hash: String,
    pub content_type: String,
    pub byte_size: i64,
    pub width: i32,
    pub height: i32,
}

impl InputRow {
    /// The storage area its file lives in.
    pub fn storage_kind(&self) -> &'static str {
        if self.source == "upload" {
            "uploads"
        } else {
            "originals"
        }
    }
}

/// Records the input and marks an upload used (so the purge keeps it), in the caller's transaction.
/// False when the upload was purged since it was looked up, or has expired unused (the purge may
/// have removed its file and not yet its row): the caller must not go on.
pub async fn record_input(conn: &mut AsyncPgConnection, row: &InputRow) -> QueryResult<bool> {
    if row.source == "upload" {
        let expired = Utc::now() - chrono::Duration::hours(super::UPLOAD_TTL_HOURS);
        let kept = diesel::update(uploads::table.find(UploadId(row.source_id)))
            .filter(
                uploads::used_at
                    .is_not_null()
                    .or(uploads::created_at.ge(expired)),
            )
            .set(uploads::used_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >("coalesce(used_at, now())")))
            .execute(conn)
            .await?;
        if kept == 0 {
            return Ok(false);
        }
    }
    diesel::insert_into(generation_inputs::table)
        .values(row)
        .execute(conn)
        .await?;
    Ok(true)
}

pub async fn input_of(
    conn: &mut AsyncPgConnection,
    generation: uuid::Uuid,
) -> QueryResult<Option<InputRow>> {
    generation_inputs::table
        .find(generation)
        .select(InputRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Where an input came from: an upload or an image, and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub kind: String,
    pub id: uuid::Uuid,
}

impl Source {
    /// Where the owner of a generation fetches this input.
    pub fn url(&self) -> String {
        if self.kind == "upload" {
            format!("/v1/uploads/{}/file", self.id)
        } else {
            format!("/v1/images/{}/file", self.id)
        }
    }
}

impl InputRow {
    pub fn source(&self) -> Source {
        Source {
            kind: self.source.clone(),
            id: self.source_id,
        }
    }
}

/// The upload or image each of `generations` that had an input was given.
pub async fn sources_of(
    conn: &mut AsyncPgConnection,
    generations: &[uuid::Uuid],
) -> QueryResult<Vec<(uuid::Uuid, Source)>> {
    let rows: Vec<(uuid::Uuid, String, uuid::Uuid)> = generation_inputs::table
        .filter(generation_inputs::generation_id.eq_any(generations))
        .select((
            generation_inputs::generation_id,
            generation_inputs::source,
            generation_inputs::source_id,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(generation, kind, id)| (generation, Source { kind, id }))
        .collect())
}

/// Up to `limit` uploads made before `before` and never used, with their files' hashes.
pub async fn unused_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<(UploadId, String)>> {
    uploads::table
        .filter(uploads::used_at.is_null())
        .filter(uploads::created_at.lt(before))
        .select((uploads::id, uploads::content_hash))
        .limit(limit)
        .load(conn)
        .await
}

/// Deletes the upload if it is still unused and made before `before`.
pub async fn delete_unused(
    conn: &mut AsyncPgConnection,
    id: UploadId,
    before: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::delete(uploads::table.find(id))
        .filter(uploads::used_at.is_null())
        .filter(uploads::created_at.lt(before))
        .execute(conn)
        .await
        .map(|deleted| deleted == 1)
}

/// Whether any upload or generation input still holds this uploaded file.
pub async fn upload_file_in_use(conn: &mut AsyncPgConnection, hash: &str) -> QueryResult<bool> {
    let uploads_left: bool = diesel::select(diesel::dsl::exists(
        uploads::table.filter(uploads::content_hash.eq(hash)),
    ))
    .get_result(conn)
    .await?;
    if uploads_left {
        return Ok(true);
    }
    diesel::select(diesel::dsl::exists(
        generation_inputs::table
            .filter(generation_inputs::content_hash.eq(hash))
            .filter(generation_inputs::source.eq("upload")),
    ))
    .get_result(conn)
    .await
}

/// `owner`'s uploads, oldest first (for the owner's data export).
pub async fn uploads_in_full(
    conn: &mut AsyncPgConnection,
    owner: UserId,
) -> QueryResult<Vec<UploadRow>> {
    uploads::table
        .filter(uploads::user_id.eq(owner))
        .order(uploads::id)
        .select(UploadRow::as_select())
        .load(conn)
        .await
}

/// `owner`'s uploads, with their files' hashes (a deleted account's, to erase).
pub async fn uploads_of(
    conn: &mut AsyncPgConnection,
    owner: UserId,
) -> QueryResult<Vec<(UploadId, String)>> {
    uploads::table
        .filter(uploads::user_id.eq(owner))
        .select((uploads::id, uploads::content_hash))
        .load(conn)
        .await
}

/// Deletes an upload and the records of the generations that used it as their input (a deleted
/// account's: its generations are kept, its photos are not).
pub async fn delete_upload_and_uses(conn: &mut AsyncPgConnection, id: UploadId) -> QueryResult<()> {
    diesel::delete(
        generation_inputs::table
            .filter(generation_inputs::source.eq("upload"))
            .filter(generation_inputs::source_id.eq(id.0)),
    )
    .execute(conn)
    .await?;
    diesel::delete(uploads::table.find(id))
        .execute(conn)
        .await?;
    Ok(())
}
