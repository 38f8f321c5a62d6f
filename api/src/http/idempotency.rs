//! `Idempotency-Key` for creating POSTs: the first response to a key is stored for 24 hours and
//! replayed (with `Idempotent-Replayed: true`) for the same key and body; another body under the
//! same key is 422 `idempotency_conflict`; a duplicate arriving while the first still runs is 409
//! `idempotency_in_progress`. Keys are scoped per user.

use crate::app::AppState;
use crate::db::schema::idempotency_keys;
use crate::error::{ApiError, ErrorCode};
use crate::identity::UserId;
use actix_web::body::to_bytes;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::{Ready, ready};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a key's response is kept and replayed.
pub const RETENTION_HOURS: i64 = 24;
/// A first request that has not finished after this long is taken to have died with its process.
const ABANDONED_AFTER_SECS: i64 = 300;

/// The optional `Idempotency-Key` header: 1–255 printable ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(value) = req.headers().get(HEADER) else {
            return ready(Ok(Self(None)));
        };
        let valid = value
            .to_str()
            .ok()
            .filter(|v| (1..=255).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()));
        ready(match valid {
            Some(v) => Ok(Self(Some(v.to_owned()))),
            None => Err(ApiError::field(
                "Idempotency-Key",
                "must be 1 to 255 printable ASCII characters",
            )),
        })
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = idempotency_keys, check_for_backend(diesel::pg::Pg))]
struct Stored {
    method: String,
    path: String,
    request_digest: Vec<u8>,
    status: Option<i16>,
    response_body: Option<Vec<u8>>,
    response_content_type: Option<String>,
    response_location: Option<String>,
    created_at: DateTime<Utc>,
}

/// Runs `work` at most once per (user, key): see the module documentation. Without a key it simply
/// runs `work`. `digest` identifies the request body.
pub async fn run<Fut>(
    state: &AppState,
    user: UserId,
    key: &IdempotencyKey,
    req: &HttpRequest,
    digest: &[u8],
    work: impl FnOnce() -> Fut,
) -> Result<HttpResponse, ApiError>
where
    Fut: Future<Output = Result<HttpResponse, ApiError>>,
{
    let Some(key) = key.0.as_deref() else {
        return work().await;
    };
    let method = req.method().as_str();
    let path = req.path();
    let mut conn = state.pool.get().await?;
    if !claim(&mut conn, user, key, method, path, digest).await? {
        let stored = idempotency_keys::table
            .find((user, key))
            .select(Stored::as_select())
            .first(&mut conn)
            .await?;
        return replay(stored, method, path, digest);
    }
    drop(conn);

    let response = match work().await {
        Ok(response) => response,
        Err(error) => error.error_response(),
    };
    let status = response.status();
    let content_type = header_text(&response, header::CONTENT_TYPE);
    let location = header_text(&response, header::LOCATION);
    let (response, body) = response.into_parts();
    let bytes = to_bytes(body)
        .await
        .map_err(|_| ApiError::internal(anyhow::anyhow!("response body unreadable")))?;

    let mut conn = state.pool.get().await?;
    let target = idempotency_keys::table.find((user, key));
    // Failures worth retrying (5xx, rate limits, conflicts) release the key; results are kept.
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::CONFLICT
    {
        diesel::delete(target).execute(&mut conn).await?;
    } else {
        diesel::update(target)
            .set((
                idempotency_keys::status.eq(i16::try_from(status.as_u16()).unwrap_or(500)),
                idempotency_keys::response_body.eq(bytes.to_vec()),
                idempotency_keys::response_content_type.eq(content_type),
                idempotency_keys::response_location.eq(location),
            ))
            .execute(&mut conn)
            .await?;
    }
    Ok(response.set_body(bytes).map_into_boxed_body())
}

/// Inserts the key as in progress; false when it already exists (after clearing an expired or
/// abandoned one, which is taken over instead).
async fn claim(
    conn: &mut AsyncPgConnection,
    user: UserId,
    key: &str,
    method: &str,
    path: &str,
    digest: &[u8],
) -> Result<bool, ApiError> {
    let expired_before = Utc::now() - chrono::Duration::hours(RETENTION_HOURS);
    let abandoned_before = Utc::now() - chrono::Duration::seconds(ABANDONED_AFTER_SECS);
    diesel::delete(
        idempotency_keys::table.find((user, key)).filter(
            idempotency_keys::created_at
                .lt(expired_before)
                .or(idempotency_keys::status
                    .is_null()
                    .and(idempotency_keys::created_at.lt(abandoned_before))),
        ),
    )
    .execute(conn)
    .await?;
    let inserted = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::user_id.eq(user),
            idempotency_keys::key.eq(key),
            idempotency_keys::method.eq(method),
            idempotency_keys::path.eq(path),
            idempotency_keys::request_digest.eq(digest),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

fn replay(
    stored: Stored,
    method: &str,
    path: &str,
    digest: &[u8],
) -> Result<HttpResponse, ApiError> {
    if stored.method != method || stored.path != path || stored.request_digest != digest {
        return Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "this Idempotency-Key was used with a different request; use a new key for a new request",
        ));
    }
    let Some(status) = stored.status else {
        return Err(ApiError::new(
            ErrorCode::IdempotencyInProgress,
            format!(
                "a request with this Idempotency-Key is still running (since {}); retry shortly",
                stored.created_at.to_rfc3339()
            ),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")));
    };
    let status =
        StatusCode::from_u16(u16::try_from(status).unwrap_or(500)).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    if let Some(ct) = stored.response_content_type {
        response.insert_header((header::CONTENT_TYPE, ct));
    }
    if let Some(location) = stored.response_location {
        response.insert_header((header::LOCATION, location));
    }
    response.insert_header((
        HeaderName::from_static(REPLAYED),
        HeaderValue::from_static("true"),
    ));
    Ok(response.body(stored.response_body.unwrap_or_default()))
}

fn header_text(response: &HttpResponse, name: HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Deletes keys older than the retention period; the server runs this hourly.
pub async fn purge_expired(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    let before = Utc::now() - chrono::Duration::hours(RETENTION_HOURS);
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(before)))
        .execute(conn)
        .await
}

/// Deletes every key of `user` (a deleted account's: the stored answers hold what it made).
pub async fn forget(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<usize> {
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::user_id.eq(user)))
        .execute(conn)
        .await
}
