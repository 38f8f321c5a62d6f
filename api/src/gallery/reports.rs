//! Reports: a person signed in reports an image they can see (sexual, violent, hateful, spam,
//! copyright, other), and support works through the images reported, oldest report first,
//! deciding once per image: hide it (flagged, as a safety checker's image is: its owner alone
//! sees it) or dismiss its reports. A later report of a dismissed image opens it again.

use super::ReportId;
use super::service::visible_image;
use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::generation::ImageId;
use crate::identity::{Principal, Scope, UserId};
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_image_report)
        .service(list_admin_reports)
        .service(create_image_moderation);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    Sexual,
    Violent,
    Hateful,
    Spam,
    Copyright,
    Other,
}

impl ReportReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sexual => "sexual",
            Self::Violent => "violent",
            Self::Hateful => "hateful",
            Self::Spam => "spam",
            Self::Copyright => "copyright",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReportRequest {
    pub reason: ReportReason,
    /// What is wrong, for support to read; up to 1000 characters.
    #[schema(max_length = 1000)]
    pub details: Option<String>,
}

/// My report of an image.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Report {
    pub id: ReportId,
    pub image_id: ImageId,
    pub reason: String,
    pub details: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `open` until support decides; then `hidden` or `dismissed` (or `restored`, a hide taken
    /// back).
    pub status: String,
}

/// An image with reports support has not decided on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportedImage {
    pub image_id: ImageId,
    pub thumb_url: String,
    pub owner_id: UserId,
    pub owner_username: String,
    pub title: Option<String>,
    pub prompt: String,
    pub visibility: String,
    /// Open reports, and the reasons they give.
    pub reports: i64,
    pub reasons: Vec<String>,
    /// The first few reporters' own words.
    pub details: Vec<String>,
    pub first_reported_at: DateTime<Utc>,
    /// Its oldest open report (the queue's order).
    pub first_report_id: ReportId,
}

/// A page of [`ReportedImage`]s.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportedImagePage {
    pub data: Vec<ReportedImage>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModerationAction {
    /// Flag the image: only its owner sees it from now on.
    Hide,
    /// Leave it as it is and close its reports.
    Dismiss,
    /// Take back a hide: the image is shown as before, and the reports that hid it read
    /// `restored`. Only for an image support hid.
    Restore,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModerationRequest {
    pub action: ModerationAction,
}

/// What a decision did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Moderation {
    pub image_id: ImageId,
    /// `hidden`, `dismissed` or `restored`.
    pub resolution: String,
    /// The open reports it closed.
    pub reports_closed: i64,
}

/// Report an image I can see (not my own). Once per image: reporting it again answers the first
/// report.
#[utoipa::path(
    tag = "images",
    security(("session" = []), ("api_key" = ["generate"])),
    params(("id" = ImageId, Path, description = "The image")),
    request_body = CreateReportRequest,
    responses(
        (status = 201, description = "Reported", body = Report),
        (status = 200, description = "Reported already: the first report", body = Report),
        (status = 404, description = "No such image, or not one the caller may see", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "My own image, or details too long (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/images/{id}/reports")]
pub async fn create_image_report(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<ImageId>,
    body: crate::http::extract::Json<CreateReportRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Generate)?;
    let (report, new) = report(&state, &principal, id.into_inner(), &body).await?;
    Ok(if new {
        HttpResponse::Created().json(report)
    } else {
        HttpResponse::Ok().json(report)
    })
}

/// Images with open reports, oldest first report first (admins, signed in).
#[utoipa::path(
    tag = "admin",
    security(("session" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of reported images", body = ReportedImagePage),
        (status = 403, description = "Not an admin, or an API key", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/reports")]
pub async fn list_admin_reports(
    state: web::Data<AppState>,
    principal: Principal,
    page: crate::http::extract::Query<PageParams>,
) -> Result<web::Json<Page<ReportedImage>>, ApiError> {
    principal.require_support(&state.config.auth)?;
    Ok(web::Json(queue(&state, &page).await?))
}

/// Decide on an image: hide it or dismiss its reports, every open report of it closed so (hiding
/// works on any image, reported or not); or restore an image support hid.
#[utoipa::path(
    tag = "admin",
    security(("session" = [])),
    params(("id" = ImageId, Path, description = "The image")),
    request_body = ModerationRequest,
    responses(
        (status = 200, description = "Decided", body = Moderation),
        (status = 403, description = "Not an admin, or an API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such image", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`restore` of an image support did not hide (`conflict`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/images/{id}/moderation")]
pub async fn create_image_moderation(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<ImageId>,
    body: crate::http::extract::Json<ModerationRequest>,
) -> Result<web::Json<Moderation>, ApiError> {
    principal.require_support(&state.config.auth)?;
    Ok(web::Json(
        decide(&state, principal.user_id, id.into_inner(), body.action).await?,
    ))
}

#[derive(QueryableByName)]
struct ReportRow {
    #[diesel(sql_type = SqlUuid)]
    id: ReportId,
    #[diesel(sql_type = SqlUuid)]
    image_id: ImageId,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = Nullable<Text>)]
    details: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    resolution: Option<String>,
}

impl From<ReportRow> for Report {
    fn from(row: ReportRow) -> Self {
        Self {
            id: row.id,
            image_id: row.image_id,
            reason: row.reason,
            details: row.details,
            created_at: row.created_at,
            status: row.resolution.unwrap_or_else(|| "open".to_owned()),
        }
    }
}

const REPORT_COLUMNS: &str = "id, image_id, reason, details, created_at, resolution";

/// Records my report; the report and whether it is new.
async fn report(
    state: &AppState,
    principal: &Principal,
    image: ImageId,
    body: &CreateReportRequest,
) -> Result<(Report, bool), ApiError> {
    let details = body
        .details
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    // A NUL never gets here: the JSON extractor refuses it in any string.
    if details.is_some_and(|d| d.chars().count() > 1000) {
        return Err(ApiError::validation(vec![FieldError {
            field: "details".to_owned(),
            message: "must be at most 1000 characters".to_owned(),
        }]));
    }
    let mut conn = state.pool.get().await?;
    let row = visible_image(&mut conn, Some(principal.user_id), image).await?;
    if row.user_id == principal.user_id {
        return Err(ApiError::validation(vec![FieldError {
            field: "id".to_owned(),
            message: "is your own image: make it private or delete it instead".to_owned(),
        }]));
    }
    let inserted: Option<ReportRow> = diesel::sql_query(format!(
        "INSERT INTO image_reports (id, image_id, reporter_id, reason, details) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (image_id, reporter_id) DO NOTHING \
         RETURNING {REPORT_COLUMNS}"
    ))
    .bind::<SqlUuid, _>(ReportId::new())
    .bind::<SqlUuid, _>(image)
    .bind::<SqlUuid, _>(principal.user_id)
    .bind::<Text, _>(body.reason.as_str())
    .bind::<Nullable<Text>, _>(details)
    .get_result(&mut conn)
    .await
    .optional()?;
    if let Some(row) = inserted {
        tracing::info!(image.id = %image, reason = body.reason.as_str(), "image reported");
        return Ok((row.into(), true));
    }
    let first: ReportRow = diesel::sql_query(format!(
        "SELECT {REPORT_COLUMNS} FROM image_reports WHERE image_id = $1 AND reporter_id = $2"
    ))
    .bind::<SqlUuid, _>(image)
    .bind::<SqlUuid, _>(principal.user_id)
    .get_result(&mut conn)
    .await?;
    Ok((first.into(), false))
}

#[derive(QueryableByName)]
struct QueueRow {
    #[diesel(sql_type = SqlUuid)]
    image_id: ImageId,
    #[diesel(sql_type = SqlUuid)]
    owner_id: UserId,
    #[diesel(sql_type = Text)]
    owner_username: String,
    #[diesel(sql_type = Nullable<Text>)]
    title: Option<String>,
    #[diesel(sql_type = Text)]
    prompt: String,
    #[diesel(sql_type = Text)]
    visibility: String,
    #[diesel(sql_type = BigInt)]
    reports: i64,
    #[diesel(sql_type = Array<Text>)]
    reasons: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    details: Vec<String>,
    #[diesel(sql_type = SqlUuid)]
    first_report: ReportId,
    #[diesel(sql_type = Timestamptz)]
    first_reported_at: DateTime<Utc>,
}

/// A page of images with open reports, by their oldest open report.
async fn queue(state: &AppState, page: &PageParams) -> Result<Page<ReportedImage>, ApiError> {
    let page = page.parse::<ReportId>("reports")?;
    let mut conn = state.pool.get().await?;
    let rows: Vec<QueueRow> = diesel::sql_query(
        // PostgreSQL has no min() for uuid: the first of the ids in order stands in.
        "SELECT i.id AS image_id, i.user_id AS owner_id, u.username AS owner_username, i.title, \
                i.prompt, i.visibility, o.reports, o.reasons, o.details, o.first_report, \
                o.first_reported_at \
         FROM (SELECT r.image_id, count(*) AS reports, array_agg(DISTINCT r.reason) AS reasons, \
                      (array_remove(array_agg(r.details ORDER BY r.id), NULL))[1:5] AS details, \
                      (array_agg(r.id ORDER BY r.id))[1] AS first_report, \
                      min(r.created_at) AS first_reported_at \
               FROM image_reports r WHERE r.resolved_at IS NULL GROUP BY r.image_id) AS o \
         JOIN images i ON i.id = o.image_id AND i.deleted_at IS NULL \
         JOIN users u ON u.id = i.user_id \
         WHERE $1::uuid IS NULL OR o.first_report > $1 \
         ORDER BY o.first_report LIMIT $2",
    )
    .bind::<Nullable<SqlUuid>, _>(page.after)
    .bind::<BigInt, _>(page.limit + 1)
    .load(&mut conn)
    .await?;
    let items = rows
        .into_iter()
        .map(|row| ReportedImage {
            thumb_url: super::service::file_url(row.image_id, "thumb"),
            image_id: row.image_id,
            owner_id: row.owner_id,
            owner_username: row.owner_username,
            title: row.title,
            prompt: row.prompt,
            visibility: row.visibility,
            reports: row.reports,
            reasons: row.reasons,
            details: row.details,
            first_reported_at: row.first_reported_at,
            first_report_id: row.first_report,
        })
        .collect();
    Ok(Page::from_rows(
        "reports",
        items,
        page.limit,
        |item: &ReportedImage| item.first_report_id,
    ))
}

#[derive(QueryableByName)]
struct Closed {
    #[diesel(sql_type = BigInt)]
    closed: i64,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Bool)]
    found: bool,
}

/// Hides an image or dismisses its reports, closing every open report of it, in one transaction.
async fn decide(
    state: &AppState,
    admin: UserId,
    image: ImageId,
    action: ModerationAction,
) -> Result<Moderation, ApiError> {
    let resolution = match action {
        ModerationAction::Hide => "hidden",
        ModerationAction::Dismiss => "dismissed",
        ModerationAction::Restore => "restored",
    };
    let mut conn = state.pool.get().await?;
    let closed = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let found: Found = diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM images WHERE id = $1 AND deleted_at IS NULL) AS found",
            )
            .bind::<SqlUuid, _>(image)
            .get_result(conn)
            .await?;
            if !found.found {
                return Err(ApiError::not_found("image"));
            }
            match action {
                ModerationAction::Hide => hide(conn, image, true).await?,
                ModerationAction::Restore => {
                    // Only support's own hide is taken back: a safety checker's flag stays.
                    let restored: Closed = diesel::sql_query(
                        "WITH restored AS ( \
                             UPDATE image_reports SET resolution = 'restored', resolved_by = $2, \
                                    resolved_at = now() \
                             WHERE image_id = $1 AND resolution = 'hidden' RETURNING 1) \
                         SELECT count(*) AS closed FROM restored",
                    )
                    .bind::<SqlUuid, _>(image)
                    .bind::<SqlUuid, _>(admin)
                    .get_result(conn)
                    .await?;
                    if restored.closed == 0 {
                        return Err(ApiError::new(
                            ErrorCode::Conflict,
                            "support did not hide this image, so there is nothing to take back",
                        ));
                    }
                    hide(conn, image, false).await?;
                }
                ModerationAction::Dismiss => {}
            }
            let closed: Closed = diesel::sql_query(
                "WITH closed AS ( \
                     UPDATE image_reports SET resolved_at = now(), resolved_by = $2, resolution = $3 \
                     WHERE image_id = $1 AND resolved_at IS NULL RETURNING 1) \
                 SELECT count(*) AS closed FROM closed",
            )
            .bind::<SqlUuid, _>(image)
            .bind::<SqlUuid, _>(admin)
            .bind::<Text, _>(resolution)
            .get_result(conn)
            .await?;
            Ok(closed.closed)
        })
        .await?;
    tracing::info!(admin.id = %admin, image.id = %image, resolution, reports = closed, "image moderated");
    Ok(Moderation {
        image_id: image,
        resolution: resolution.to_owned(),
        reports_closed: closed,
    })
}

/// Flags an image (or takes the flag back), as a safety checker's flag does: out of every public
/// list and link, its owner alone sees it.
async fn hide(conn: &mut AsyncPgConnection, image: ImageId, hidden: bool) -> Result<(), ApiError> {
    diesel::sql_query("UPDATE images SET nsfw = $2 WHERE id = $1")
        .bind::<SqlUuid, _>(image)
        .bind::<Bool, _>(hidden)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_named_as_the_database_checks_them() {
        for (reason, name) in [
            (ReportReason::Sexual, "sexual"),
            (ReportReason::Copyright, "copyright"),
            (ReportReason::Other, "other"),
        ] {
            assert_eq!(reason.as_str(), name);
            assert_eq!(
                serde_json::to_value(reason).ok(),
                Some(serde_json::Value::String(name.to_owned()))
            );
        }
    }
}
