//! Generation and image queries.

use super::{GenerationId, ImageId, Status};
use crate::credits::EntryId;
use crate::db::schema::{generations, images};
use crate::identity::UserId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = generations, check_for_backend(diesel::pg::Pg))]
pub struct GenerationRow {
    pub id: GenerationId,
    pub user_id: UserId,
    pub model: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub aspect_ratio: String,
    pub width: i32,
    pub height: i32,
    pub num_outputs: i32,
    pub seed: i64,
    pub style: Option<String>,
    pub visibility: String,
    pub status: String,
    pub progress: i16,
    pub credits_charged: i64,
    pub credits_refunded: i64,
    pub reservation_id: Option<EntryId>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub error_retryable: Option<bool>,
    pub attempts: i32,
    pub deadline_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub provider_ref: Option<String>,
    pub webhook_token: Option<String>,
}

/// A generation to submit: see [`submit`].
#[derive(Debug, Clone)]
pub struct NewGeneration {
    pub id: GenerationId,
    pub user_id: UserId,
    pub model: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub aspect_ratio: String,
    pub width: i32,
    pub height: i32,
    pub num_outputs: i32,
    pub seed: i64,
    pub style: Option<String>,
    pub visibility: &'static str,
    pub credits_charged: i64,
    /// The id the reservation's ledger entry gets.
    pub reservation_id: EntryId,
    pub deadline_at: DateTime<Utc>,
}

impl NewGeneration {
    /// The row as inserted: the columns' defaults for a queued job (see the generations table),
    /// with the insert's `created_at`.
    fn queued(self, created_at: DateTime<Utc>) -> GenerationRow {
        GenerationRow {
            id: self.id,
            user_id: self.user_id,
            model: self.model,
            prompt: self.prompt,
            negative_prompt: self.negative_prompt,
            aspect_ratio: self.aspect_ratio,
            width: self.width,
            height: self.height,
            num_outputs: self.num_outputs,
            seed: self.seed,
            style: self.style,
            visibility: self.visibility.to_owned(),
            status: "queued".to_owned(),
            progress: 0,
            credits_charged: self.credits_charged,
            credits_refunded: 0,
            reservation_id: Some(self.reservation_id),
            error_code: None,
            error_message: None,
            error_retryable: None,
            attempts: 0,
            deadline_at: self.deadline_at,
            created_at,
            started_at: None,
            completed_at: None,
            provider_ref: None,
            webhook_token: None,
        }
    }
}

/// A submission as [`submit_many`] takes it: the generation, the day its grant must be made for,
/// and the owner's cap on generations in flight.
#[derive(Debug, Clone)]
pub struct Submission {
    pub new: NewGeneration,
    pub today: chrono::NaiveDate,
    pub max_in_flight: i64,
}

pub const ACTIVE: [&str; 3] = ["queued", "starting", "processing"];

/// Why [`submit`] changed nothing.
#[derive(Debug)]
pub enum SubmitError {
    /// The day's free grant (or the account's opening) must be made first.
    GrantDue,
    TooManyInFlight,
    /// The credits do not cover the cost, or the account owes credits.
    NotCovered,
    /// The input image could not be recorded (see `inputs::store::record_input`).
    InputGone,
    /// No connection could be had, or the batch it went in was lost.
    Unavailable(String),
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for SubmitError {
    fn from(e: diesel::result::Error) -> Self {
        if let diesel::result::Error::DatabaseError(_, info) = &e {
            match info.message() {
                "easel_grant_due" => return Self::GrantDue,
                "easel_too_many_in_flight" => return Self::TooManyInFlight,
                "easel_not_covered" => return Self::NotCovered,
                _ => {}
            }
        }
        Self::Database(e)
    }
}

/// Reserves the generation's cost and enqueues it, in one call of `easel_submit_generation`
/// (migration 2026-11-25-000100): under the balance row's lock, checks that today's grant is made and
/// that fewer than `max_in_flight` of the owner's generations are active, then spends and inserts.
/// Atomic on its own; inside a transaction, part of it.
pub async fn submit(
    conn: &mut AsyncPgConnection,
    new: &NewGeneration,
    today: chrono::NaiveDate,
    max_in_flight: i64,
) -> Result<GenerationRow, SubmitError> {
    use diesel::sql_types::{BigInt, Date, Integer, Nullable, Text, Timestamptz, Uuid};
    // Prepared, so it names its columns (see `claim`).
    let query = diesel::sql_query(
        "SELECT id, user_id, model, prompt, negative_prompt, aspect_ratio, width, height, \
                num_outputs, seed, style, visibility, status, progress, credits_charged, \
                credits_refunded, reservation_id, error_code, error_message, error_retryable, \
                attempts, deadline_at, created_at, started_at, completed_at, provider_ref, \
                webhook_token \
         FROM easel_submit_generation($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                                      $15, $16, $17)",
    )
    .bind::<Uuid, _>(new.user_id)
    .bind::<Date, _>(today)
    .bind::<BigInt, _>(max_in_flight)
    .bind::<Uuid, _>(new.reservation_id)
    .bind::<Uuid, _>(new.id)
    .bind::<Text, _>(&new.model)
    .bind::<Text, _>(&new.prompt)
    .bind::<Nullable<Text>, _>(new.negative_prompt.as_deref())
    .bind::<Text, _>(&new.aspect_ratio)
    .bind::<Integer, _>(new.width)
    .bind::<Integer, _>(new.height)
    .bind::<Integer, _>(new.num_outputs)
    .bind::<BigInt, _>(new.seed)
    .bind::<Nullable<Text>, _>(new.style.as_deref())
    .bind::<Text, _>(new.visibility)
    .bind::<BigInt, _>(new.credits_charged)
    .bind::<Timestamptz, _>(new.deadline_at);
    Ok(crate::db::Prepared(query).get_result(conn).await?)
}

#[derive(QueryableByName)]
struct Outcome {
    #[diesel(sql_type = diesel::sql_types::Text)]
    outcome: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    created: Option<DateTime<Utc>>,
}

/// [`submit`] for many submissions in one transaction (`easel_submit_generations`, migration
/// 2026-11-25-000200): each is checked and reserved as `submit` would, in order, under its owner's
/// balance lock, and a refusal refuses only that one. One result per submission, in order. An
/// error of the database's is the whole batch's: nothing of it was kept.
pub async fn submit_many(
    conn: &mut AsyncPgConnection,
    batch: &[Submission],
) -> QueryResult<Vec<Result<GenerationRow, SubmitError>>> {
    use diesel::sql_types::{Array, BigInt, Date, Integer, Nullable, Text, Timestamptz, Uuid};
    let column = |f: fn(&Submission) -> uuid::Uuid| batch.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&Submission) -> &str| batch.iter().map(f).collect::<Vec<_>>();
    let query = diesel::sql_query(
        "SELECT outcome, created FROM easel_submit_generations($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                                                              $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind::<Array<Uuid>, _>(column(|s| s.new.user_id.0))
    .bind::<Array<Date>, _>(batch.iter().map(|s| s.today).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(batch.iter().map(|s| s.max_in_flight).collect::<Vec<_>>())
    .bind::<Array<Uuid>, _>(column(|s| s.new.reservation_id.0))
    .bind::<Array<Uuid>, _>(column(|s| s.new.id.0))
    .bind::<Array<Text>, _>(text(|s| &s.new.model))
    .bind::<Array<Text>, _>(text(|s| &s.new.prompt))
    .bind::<Array<Nullable<Text>>, _>(
        batch.iter().map(|s| s.new.negative_prompt.as_deref()).collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(text(|s| &s.new.aspect_ratio))
    .bind::<Array<Integer>, _>(batch.iter().map(|s| s.new.width).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(batch.iter().map(|s| s.new.height).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(batch.iter().map(|s| s.new.num_outputs).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(batch.iter().map(|s| s.new.seed).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        batch.iter().map(|s| s.new.style.as_deref()).collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(text(|s| s.new.visibility))
    .bind::<Array<BigInt>, _>(batch.iter().map(|s| s.new.credits_charged).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(batch.iter().map(|s| s.new.deadline_at).collect::<Vec<_>>());
    let outcomes: Vec<Outcome> = crate::db::Prepared(query).load(conn).await?;
    if outcomes.len() != batch.len() {
        return Err(diesel::result::Error::QueryBuilderError(
            format!(
                "easel_submit_generations answered {} rows for {} submissions",
                outcomes.len(),
                batch.len()
            )
            .into(),
        ));
    }
    Ok(batch
        .iter()
        .zip(outcomes)
        .map(|(submission, o)| match (o.outcome.as_str(), o.created) {
            ("queued", Some(created)) => Ok(submission.new.clone().queued(created)),
            ("grant_due", _) => Err(SubmitError::GrantDue),
            ("too_many_in_flight", _) => Err(SubmitError::TooManyInFlight),
            ("not_covered", _) => Err(SubmitError::NotCovered),
            (other, _) => Err(SubmitError::Database(
                diesel::result::Error::QueryBuilderError(
                    format!("easel_submit_generations: unknown outcome {other}").into(),
                ),
            )),
        })
        .collect())
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    id: GenerationId,
) -> QueryResult<Option<GenerationRow>> {
    generations::table
        .find(id)
        .select(GenerationRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The generations of `ids` that exist, in no order.
pub async fn find_many(
    conn: &mut AsyncPgConnection,
    ids: &[GenerationId],
) -> QueryResult<Vec<GenerationRow>> {
    generations::table
        .filter(generations::id.eq_any(ids))
        .select(GenerationRow::as_select())
        .load(conn)
        .await
}

/// A generation of `owner`'s; someone else's is indistinguishable from a missing one.
/// `owner`'s generations that have not ended.
pub async fn active_of(
    conn: &mut AsyncPgConnection,
    owner: UserId,
) -> QueryResult<Vec<GenerationId>> {
    generations::table
        .filter(generations::user_id.eq(owner))
        .filter(generations::completed_at.is_null())
        .select(generations::id)
        .load(conn)
        .await
}

/// Blanks the prompts of `owner`'s generations (a deleted account's): the jobs and their charges
/// stay, as the ledger names them.
pub async fn blank_prompts(conn: &mut AsyncPgConnection, owner: UserId) -> QueryResult<usize> {
    diesel::update(generations::table.filter(generations::user_id.eq(owner)))
        .set((
            generations::prompt.eq(""),
            generations::negative_prompt.eq(None::<String>),
        ))
        .execute(conn)
        .await
}

pub async fn find_owned(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    id: GenerationId,
) -> QueryResult<Option<GenerationRow>> {
    generations::table
        .find(id)
        .filter(generations::user_id.eq(owner))
        .select(GenerationRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    status: Option<Status>,
    after: Option<GenerationId>,
    limit: i64,
) -> QueryResult<Vec<GenerationRow>> {
    let mut query = generations::table
        .filter(generations::user_id.eq(owner))
        .select(GenerationRow::as_select())
        .order(generations::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(generations::status.eq(status.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(generations::id.lt(after));
    }
    query.load(conn).await
}

/// What [`list_all`] filters by; `None` is any.
#[derive(Debug, Default)]
pub struct AdminQuery<'a> {
    pub user_id: Option<UserId>,
    pub status: Option<Status>,
    pub model: Option<&'a str>,
    pub error_code: Option<&'a str>,
}

/// Every account's generations, newest first, after `after`: support's search.
pub async fn list_all(
    conn: &mut AsyncPgConnection,
    filter: &AdminQuery<'_>,
    after: Option<GenerationId>,
    limit: i64,
) -> QueryResult<Vec<GenerationRow>> {
    let mut query = generations::table
        .select(GenerationRow::as_select())
        .order(generations::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(user) = filter.user_id {
        query = query.filter(generations::user_id.eq(user));
    }
    if let Some(status) = filter.status {
        query = query.filter(generations::status.eq(status.as_str()));
    }
    if let Some(model) = filter.model {
        query = query.filter(generations::model.eq(model));
    }
    if let Some(code) = filter.error_code {
        query = query.filter(generations::error_code.eq(code));
    }
    if let Some(after) = after {
        query = query.filter(generations::id.lt(after));
    }
    query.load(conn).await
}

/// The process that holds each of `ids` (null when none does).
pub async fn workers_of(
    conn: &mut AsyncPgConnection,
    ids: &[GenerationId],
) -> QueryResult<Vec<(GenerationId, Option<String>)>> {
    generations::table
        .filter(generations::id.eq_any(ids))
        .select((generations::id, generations::claimed_by))
        .load(conn)
        .await
}

/// Claims the next due queued job for `worker`: `FOR UPDATE SKIP LOCKED`, so any number of workers
/// in any number of processes share the queue without taking the same job. Jobs are taken in the
/// order [`queued_ahead`] counts: by due time, then by id (submission order). The statement stays
/// prepared, so it names its columns: with `RETURNING *`, a column added by a newer server's
/// migration would break this server's prepared statement ("cached plan must not change result type").
pub async fn claim(
    conn: &mut AsyncPgConnection,
    worker: &str,
    limit: i32,
) -> QueryResult<Vec<GenerationRow>> {
    Ok(claim_noting_first(conn, worker, limit)
        .await?
        .into_iter()
        .map(|claimed| claimed.job)
        .collect())
}

/// A job [`claim_noting_first`] took.
#[derive(Debug, QueryableByName)]
pub struct Claimed {
    #[diesel(embed)]
    pub job: GenerationRow,
    /// This claim started it: no worker had taken it up before (a job handed back without
    /// spending its attempt also has `attempts` 1 again, but started earlier).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub first_start: bool,
}

/// [`claim`], saying of each job whether this claim is the first to take it up.
pub async fn claim_noting_first(
    conn: &mut AsyncPgConnection,
    worker: &str,
    limit: i32,
) -> QueryResult<Vec<Claimed>> {
    // The limit is hidden from the planner (a sub-select), so one generic plan serves every batch
    // size instead of a fresh plan per claim. `now()` is the transaction's start, the value a first
    // start writes to `started_at`.
    crate::db::Prepared(
        diesel::sql_query(
            "UPDATE generations \
             SET status = 'starting', claimed_by = $1, heartbeat_at = now(), attempts = attempts + 1, \
                 started_at = COALESCE(started_at, now()) \
             WHERE id IN (SELECT id FROM generations WHERE status = 'queued' AND run_after <= now() \
                          ORDER BY run_after, id LIMIT (SELECT $2) FOR UPDATE SKIP LOCKED) \
             RETURNING id, user_id, model, prompt, negative_prompt, aspect_ratio, width, height, \
                       num_outputs, seed, style, visibility, status, progress, credits_charged, \
                       credits_refunded, reservation_id, error_code, error_message, error_retryable, \
                       attempts, deadline_at, created_at, started_at, completed_at, provider_ref, \
                       webhook_token, started_at = now() AS first_start",
        )
        .bind::<diesel::sql_types::Text, _>(worker)
        .bind::<diesel::sql_types::Integer, _>(limit),
    )
    .load(conn)
    .await
}

/// The most [`queued_ahead`] counts for one job: beyond it the number says little, and the count
/// stays cheap however long the queue is.
pub const AHEAD_COUNTED: i64 = 1000;

#[derive(QueryableByName)]
struct Ahead {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: GenerationId,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ahead: i64,
}

/// For each of `ids` that is queued: how many queued jobs (anyone's) the workers will take before
/// it, in the order [`claim_noting_first`] takes them, counted up to [`AHEAD_COUNTED`]. Each count
/// walks the queue's own index.
pub async fn queued_ahead(
    conn: &mut AsyncPgConnection,
    ids: &[GenerationId],
) -> QueryResult<Vec<(GenerationId, i64)>> {
    let rows: Vec<Ahead> = diesel::sql_query(
        // The order makes the planner walk back from this job on the queue's index, which stops
        // at the limit; without it, it may filter another index's rows, the whole queue for each.
        "SELECT g.id, (SELECT count(*) FROM (SELECT 1 FROM generations q \
                        WHERE q.status = 'queued' AND (q.run_after, q.id) < (g.run_after, g.id) \
                        ORDER BY q.run_after DESC, q.id DESC LIMIT $2) AS nearest) AS ahead \
         FROM generations g WHERE g.id = ANY ($1) AND g.status = 'queued'",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
    .bind::<diesel::sql_types::BigInt, _>(AHEAD_COUNTED)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.ahead)).collect())
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: GenerationId,
}

/// Records the progress of `worker`'s running jobs and that it is alive, in one statement; returns
/// the jobs still the worker's. One missing was canceled, or reclaimed after a missed heartbeat,
/// which tells the worker to stop it. Running is written as in [`running_for`], for the same
/// reason.
///
/// A job whose row another transaction holds (it is being committed, or canceled) is skipped, not
/// waited for: its beat can wait half a second, and waiting would hold the other rows' locks
/// meanwhile. A commit locks its rows in another order, so the two would deadlock. Such a job is
/// still counted the worker's if it was when the statement began; the next beat tells.
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    worker: &str,
    jobs: &[(GenerationId, i16)],
) -> QueryResult<Vec<GenerationId>> {
    let (ids, progress): (Vec<GenerationId>, Vec<i16>) = jobs.iter().copied().unzip();
    let rows: Vec<Id> = crate::db::Prepared(
        diesel::sql_query(
            "WITH free AS ( \
                 SELECT id FROM generations \
                 WHERE id = ANY ($2::uuid[]) AND claimed_by = $1 AND status <> 'queued' \
                   AND completed_at IS NULL \
                 FOR NO KEY UPDATE SKIP LOCKED), \
             beat AS ( \
                 UPDATE generations AS g \
                 SET status = 'processing', progress = b.progress, heartbeat_at = now() \
                 FROM free JOIN unnest($2::uuid[], $3::smallint[]) AS b (id, progress) \
                      ON b.id = free.id \
                 WHERE g.id = free.id) \
             SELECT id FROM generations \
             WHERE id = ANY ($2::uuid[]) AND claimed_by = $1 AND status <> 'queued' \
               AND completed_at IS NULL",
        )
        .bind::<diesel::sql_types::Text, _>(worker)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
        .bind::<diesel::sql_types::Array<diesel::sql_types::SmallInt>, _>(progress),
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}

/// `worker`'s running jobs among `ids`. Running is "not queued and not ended" (ended rows have
/// `completed_at`, by the table's check), rather than `status IN ('starting', 'processing')`: that
/// form matches the in-flight partial index, and with statistics taken while the queue was short
/// the planner ANDs the whole index (every job in flight) into each commit's bitmap, a cost that
/// grows with the queue.
#[diesel::dsl::auto_type]
fn running_for<'a>(ids: &'a [GenerationId], worker: &'a str) -> _ {
    generations::id
        .eq_any(ids)
        .and(generations::claimed_by.eq(worker))
        .and(generations::status.ne("queued"))
        .and(generations::completed_at.is_null())
}

/// Marks `worker`'s running jobs among `ids` succeeded; returns those it did. A job missing was no
/// longer the worker's (canceled, or reclaimed), and its outputs must be discarded.
pub async fn finish_success(
    conn: &mut AsyncPgConnection,
    ids: &[GenerationId],
    worker: &str,
) -> QueryResult<Vec<GenerationId>> {
    crate::db::Prepared(
        diesel::update(generations::table.filter(running_for(ids, worker)))
            .set((
                generations::status.eq("succeeded"),
                generations::progress.eq(100_i16),
                generations::completed_at.eq(diesel::dsl::now),
                generations::heartbeat_at.eq(None::<DateTime<Utc>>),
            ))
            .returning(generations::id),
    )
    .get_results(conn)
    .await
}

/// Ends an active job as failed or canceled (whoever holds it), returning it when this call did so.
pub async fn end(
    conn: &mut AsyncPgConnection,
    id: GenerationId,
    status: Status,
    error: Option<(&str, &str, bool)>,
) -> QueryResult<Option<GenerationRow>> {
    diesel::update(
        generations::table
            .find(id)
            .filter(generations::status.eq_any(ACTIVE)),
    )
    .set((
        generations::status.eq(status.as_str()),
        generations::error_code.eq(error.map(|e| e.0)),
        generations::error_message.eq(error.map(|e| e.1)),
        generations::error_retryable.eq(error.map(|e| e.2)),
        generations::completed_at.eq(diesel::dsl::now),
        generations::heartbeat_at.eq(None::<DateTime<Utc>>),
    ))
    .returning(GenerationRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

pub async fn set_refunded(
    conn: &mut AsyncPgConnection,
    id: GenerationId,
    credits: i64,
) -> QueryResult<usize> {
    diesel::update(generations::table.find(id))
        .set(generations::credits_refunded.eq(credits))
        .execute(conn)
        .await
}

/// A job back in the queue, due at `run_after`: nobody's, and starting over (a remote prediction
/// it started is kept, and reports its progress again).
#[diesel::dsl::auto_type]
fn back_in_queue(run_after: DateTime<Utc>) -> _ {
    let nobody: Option<String> = None;
    let never: Option<DateTime<Utc>> = None;
    let start: i16 = 0;
    (
        generations::status.eq("queued"),
        generations::claimed_by.eq(nobody),
        generations::heartbeat_at.eq(never),
        generations::run_after.eq(run_after),
        generations::progress.eq(start),
    )
}

/// Puts a job back in the queue to run after `run_after` (a retry, or a dead worker's job).
pub async fn requeue(
    conn: &mut AsyncPgConnection,
    id: GenerationId,
    run_after: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        generations::table
            .find(id)
            .filter(generations::status.eq_any(["starting", "processing"])),
    )
    .set(back_in_queue(run_after))
    .execute(conn)
    .await
}

/// Puts `worker`'s unfinished jobs among `ids` back in the queue, due at `run_after`, their attempt
/// not counted: the worker is stopping, or the provider had no room, and the job did nothing wrong.
/// The remote prediction a job started is kept, for the next attempt to follow. Returns the jobs it
/// released.
pub async fn release(
    conn: &mut AsyncPgConnection,
    ids: &[GenerationId],
    worker: &str,
    run_after: DateTime<Utc>,
) -> QueryResult<Vec<GenerationId>> {
    diesel::update(generations::table.filter(running_for(ids, worker)))
        .set((
            back_in_queue(run_after),
            generations::attempts.eq(diesel::dsl::sql::<diesel::sql_types::Integer>(
                "GREATEST(attempts - 1, 0)",
            )),
        ))
        .returning(generations::id)
        .get_results(conn)
        .await
}

/// Active jobs past their deadline, with their status and whether a worker ever took them up.
pub async fn overdue(
    conn: &mut AsyncPgConnection,
) -> QueryResult<Vec<(GenerationId, String, bool)>> {
    generations::table
        .filter(generations::status.eq_any(ACTIVE))
        .filter(generations::deadline_at.lt(diesel::dsl::now))
        .select((
            generations::id,
            generations::status,
            generations::started_at.is_not_null(),
        ))
        .limit(100)
        .load(conn)
        .await
}

/// Running jobs whose worker has not reported since `before`: it died or hung.
pub async fn stale(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> QueryResult<Vec<(GenerationId, i32)>> {
    generations::table
        .filter(generations::status.eq_any(["starting", "processing"]))
        .filter(generations::heartbeat_at.lt(before))
        .select((generations::id, generations::attempts))
        .limit(100)
        .load(conn)
        .await
}

/// The queue across every process: active generations by status, and how long the oldest queued
/// one that is due has waited for a worker (0 when none waits).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueState {
    pub queued: i64,
    pub starting: i64,
    pub processing: i64,
    pub oldest_due_seconds: f64,
}

#[derive(QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    jobs: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    oldest_due: f64,
}

/// Reads [`QueueState`]: one pass over the active jobs' partial index.
pub async fn queue_state(conn: &mut AsyncPgConnection) -> QueryResult<QueueState> {
    // The earliest `run_after` is the oldest due job's when it has passed; when it has not, no job
    // is due and the difference is negative, so 0.
    let rows: Vec<StatusCount> = diesel::sql_query(
        "SELECT status, count(*) AS jobs, \
                GREATEST(EXTRACT(EPOCH FROM now() - min(run_after)), 0)::float8 AS oldest_due \
         FROM generations WHERE status IN ('queued', 'starting', 'processing') GROUP BY status",
    )
    .load(conn)
    .await?;
    let mut state = QueueState::default();
    for row in rows {
        match row.status.as_str() {
            "queued" => {
                state.queued = row.jobs;
                state.oldest_due_seconds = row.oldest_due;
            }
            "starting" => state.starting = row.jobs,
            _ => state.processing = row.jobs,
        }
    }
    Ok(state)
}

// ---- remote providers ----

/// Records the remote prediction a job started (and Cog's webhook token for it).
pub async fn remember_provider(
    conn: &mut AsyncPgConnection,
    id: GenerationId,
    provider_ref: &str,
    webhook_token: Option<&str>,
) -> QueryResult<usize> {
    diesel::update(generations::table.find(id))
        .set((
            generations::provider_ref.eq(provider_ref),
            generations::webhook_token.eq(webhook_token),
        ))
        .execute(conn)
        .await
}

/// The newest prediction state a webhook delivered for a job, with its rank.
pub async fn delivered_state(
    conn: &mut AsyncPgConnection,
    id: GenerationId,
) -> QueryResult<Option<(i16, serde_json::Value)>> {
    let row: Option<(i16, Option<serde_json::Value>)> = generations::table
        .find(id)
        .select((generations::provider_rank, generations::provider_state))
        .first(conn)
        .await
        .optional()?;
    Ok(row.and_then(|(rank, state)| state.map(|s| (rank, s))))
}

/// Which job a webhook delivery is for.
pub enum DeliveryFor<'a> {
    /// Replicate: the prediction id, and the generation our webhook URL named (when it did). The
    /// generation may not know its prediction yet: the first webhook can beat our own record of it.
    Replicate {
        prediction: &'a str,
        generation: Option<GenerationId>,
    },
    /// Cog: the per-job token in the webhook URL.
    CogToken(&'a str),
}

/// Stores a delivered prediction state on an active job unless a newer one is already there (a
/// lower rank: a late or out-of-order delivery). Returns whether anything changed; a repeat changes
/// nothing, so each delivery applies at most once.
pub async fn deliver(
    conn: &mut AsyncPgConnection,
    to: DeliveryFor<'_>,
    rank: i16,
    state: &serde_json::Value,
) -> QueryResult<bool> {
    let active = "status IN ('queued', 'starting', 'processing')                   AND (provider_rank < $2 OR (provider_rank = $2 AND provider_state IS DISTINCT FROM $1))";
    let updated = match to {
        DeliveryFor::Replicate {
            prediction,
            generation: Some(generation),
        } => {
            diesel::sql_query(format!(
                "UPDATE generations SET provider_state = $1, provider_rank = $2,                         provider_ref = COALESCE(provider_ref, $3)                  WHERE id = $4 AND (provider_ref IS NULL OR provider_ref = $3) AND {active}"
            ))
            .bind::<diesel::sql_types::Jsonb, _>(state)
            .bind::<diesel::sql_types::SmallInt, _>(rank)
            .bind::<diesel::sql_types::Text, _>(prediction)
            .bind::<diesel::sql_types::Uuid, _>(generation)
            .execute(conn)
            .await?
        }
        DeliveryFor::Replicate {
            prediction,
            generation: None,
        } => {
            diesel::sql_query(format!(
                "UPDATE generations SET provider_state = $1, provider_rank = $2                  WHERE provider_ref = $3 AND {active}"
            ))
            .bind::<diesel::sql_types::Jsonb, _>(state)
            .bind::<diesel::sql_types::SmallInt, _>(rank)
            .bind::<diesel::sql_types::Text, _>(prediction)
            .execute(conn)
            .await?
        }
        DeliveryFor::CogToken(token) => {
            diesel::sql_query(format!(
                "UPDATE generations SET provider_state = $1, provider_rank = $2                  WHERE webhook_token = $3 AND {active}"
            ))
            .bind::<diesel::sql_types::Jsonb, _>(state)
            .bind::<diesel::sql_types::SmallInt, _>(rank)
            .bind::<diesel::sql_types::Text, _>(token)
            .execute(conn)
            .await?
        }
    };
    Ok(updated == 1)
}

/// Whether some generation was ever given this Cog webhook token.
pub async fn cog_token_known(conn: &mut AsyncPgConnection, token: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        generations::table.filter(generations::webhook_token.eq(token)),
    ))
    .get_result(conn)
    .await
}

/// Whether a Cog prediction of ours (by its id, the generation's) is still running: only those may
/// upload outputs.
pub async fn cog_prediction_active(
    conn: &mut AsyncPgConnection,
    prediction: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        generations::table
            .filter(generations::provider_ref.eq(prediction))
            .filter(generations::webhook_token.is_not_null())
            .filter(generations::status.eq_any(ACTIVE)),
    ))
    .get_result(conn)
    .await
}

// ---- images ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = images, check_for_backend(diesel::pg::Pg))]
pub struct ImageRow {
    pub id: ImageId,
    pub user_id: UserId,
    pub generation_id: GenerationId,
    pub output_index: i32,
    pub width: i32,
    pub height: i32,
    pub visibility: String,
    pub content_hash: String,
    pub thumb_hash: String,
    pub content_type: String,
    pub nsfw: bool,
    pub deleted_at: Option<DateTime<Utc>>,
    pub kind: String,
}

#[derive(Debug)]
pub struct NewImage<'a> {
    pub id: ImageId,
    pub user_id: UserId,
    pub generation_id: GenerationId,
    pub output_index: i32,
    pub model: &'a str,
    pub prompt: &'a str,
    pub width: i32,
    pub height: i32,
    pub seed: i64,
    pub visibility: &'a str,
    pub content_hash: &'a str,
    pub thumb_hash: &'a str,
    pub content_type: &'a str,
    pub byte_size: i64,
    pub nsfw: bool,
    pub kind: &'a str,
    pub vertex_count: Option<i32>,
}

/// Inserts outputs' images, skipping any slot that already has one (a retried job never
/// duplicates). The rows go as one array per column: one statement text (and one kept plan) for
/// every batch size, where a multi-row VALUES list was a statement of its own, planned anew, for
/// each size on each connection.
pub async fn insert_images<'a>(
    conn: &mut AsyncPgConnection,
    new: &[NewImage<'a>],
) -> QueryResult<usize> {
    use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Uuid};
    let text = |f: fn(&NewImage<'a>) -> &'a str| new.iter().map(f).collect::<Vec<_>>();
    let int = |f: fn(&NewImage<'a>) -> i32| new.iter().map(f).collect::<Vec<_>>();
    let big = |f: fn(&NewImage<'a>) -> i64| new.iter().map(f).collect::<Vec<_>>();
    crate::db::Prepared(
        diesel::sql_query(
            "INSERT INTO images (id, user_id, generation_id, output_index, model, prompt, width, \
                                 height, seed, visibility, content_hash, thumb_hash, content_type, \
                                 byte_size, nsfw, kind, vertex_count) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::integer[], $5::text[], \
                                  $6::text[], $7::integer[], $8::integer[], $9::bigint[], $10::text[], \
                                  $11::text[], $12::text[], $13::text[], $14::bigint[], \
                                  $15::boolean[], $16::text[], $17::integer[]) \
             ON CONFLICT (generation_id, output_index) DO NOTHING",
        )
        .bind::<Array<Uuid>, _>(new.iter().map(|i| i.id.0).collect::<Vec<_>>())
        .bind::<Array<Uuid>, _>(new.iter().map(|i| i.user_id.0).collect::<Vec<_>>())
        .bind::<Array<Uuid>, _>(new.iter().map(|i| i.generation_id.0).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(int(|i| i.output_index))
        .bind::<Array<Text>, _>(text(|i| i.model))
        .bind::<Array<Text>, _>(text(|i| i.prompt))
        .bind::<Array<Integer>, _>(int(|i| i.width))
        .bind::<Array<Integer>, _>(int(|i| i.height))
        .bind::<Array<BigInt>, _>(big(|i| i.seed))
        .bind::<Array<Text>, _>(text(|i| i.visibility))
        .bind::<Array<Text>, _>(text(|i| i.content_hash))
        .bind::<Array<Text>, _>(text(|i| i.thumb_hash))
        .bind::<Array<Text>, _>(text(|i| i.content_type))
        .bind::<Array<BigInt>, _>(big(|i| i.byte_size))
        .bind::<Array<Bool>, _>(new.iter().map(|i| i.nsfw).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(text(|i| i.kind))
        .bind::<Array<Nullable<Integer>>, _>(
            new.iter().map(|i| i.vertex_count).collect::<Vec<_>>(),
        ),
    )
    .execute(conn)
    .await
}

/// The live images of these generations, in output order: one query for a whole page.
pub async fn images_of(
    conn: &mut AsyncPgConnection,
    ids: &[GenerationId],
) -> QueryResult<Vec<ImageRow>> {
    images::table
        .filter(images::generation_id.eq_any(ids))
        .filter(images::deleted_at.is_null())
        .order((images::generation_id, images::output_index))
        .select(ImageRow::as_select())
        .load(conn)
        .await
}

/// The owner's live images among `ids`, for their files.
pub async fn files_of(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    ids: &[ImageId],
) -> QueryResult<Vec<ImageRow>> {
    images::table
        .filter(images::id.eq_any(ids))
        .filter(images::user_id.eq(owner))
        .filter(images::deleted_at.is_null())
        .select(ImageRow::as_select())
        .load(conn)
        .await
}

pub async fn find_image(
    conn: &mut AsyncPgConnection,
    id: ImageId,
) -> QueryResult<Option<ImageRow>> {
    images::table
        .find(id)
        .filter(images::deleted_at.is_null())
        .select(ImageRow::as_select())
        .first(conn)
        .await
        .optional()
}

#[derive(Debug, Clone, QueryableByName)]
pub struct ModelUsageRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub model: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub generations: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub credits_spent: i64,
}

/// A user's generations created in `[start, end)` by model: how many, and credits charged less
/// credits refunded.
pub async fn usage_by_model(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<ModelUsageRow>> {
    diesel::sql_query(
        "SELECT model, count(*) AS generations, \
                COALESCE(SUM(credits_charged - credits_refunded), 0)::bigint AS credits_spent \
         FROM generations WHERE user_id = $1 AND created_at >= $2 AND created_at < $3 \
         GROUP BY model ORDER BY model",
    )
    .bind::<diesel::sql_types::Uuid, _>(owner)
    .bind::<diesel::sql_types::Timestamptz, _>(start)
    .bind::<diesel::sql_types::Timestamptz, _>(end)
    .load(conn)
    .await
}

/// An account whose in-flight counters (what the cap checks) disagree with its generations.
#[derive(Debug, Clone, QueryableByName)]
pub struct InFlightDrift {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub user_id: UserId,
    /// Submitted less ended, as the counters say.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub counted: i64,
    /// Queued, starting or processing, as the generations say.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub in_flight: i64,
}

/// Every account whose in-flight counters disagree with a count of its generations (none, unless
/// something wrote generations behind the counters' backs).
pub async fn in_flight_drift(conn: &mut AsyncPgConnection) -> QueryResult<Vec<InFlightDrift>> {
    diesel::sql_query(
        "SELECT b.user_id, b.generations_submitted - COALESCE(e.count, 0) AS counted, \
                COALESCE(a.n, 0) AS in_flight \
         FROM credit_balances AS b \
         LEFT JOIN (SELECT user_id, sum(count)::bigint AS count FROM generations_ended GROUP BY user_id) AS e \
                ON e.user_id = b.user_id \
         LEFT JOIN (SELECT user_id, count(*) AS n FROM generations \
                    WHERE status IN ('queued', 'starting', 'processing') GROUP BY user_id) AS a \
                ON a.user_id = b.user_id \
         WHERE b.generations_submitted - COALESCE(e.count, 0) <> COALESCE(a.n, 0) \
         ORDER BY 1",
    )
    .load(conn)
    .await
}

/// A generation's steps and guidance (`generation_settings`), for models that accept them.
#[derive(Debug, Clone, Copy, Default, PartialEq, QueryableByName)]
pub struct Settings {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::SmallInt>)]
    pub steps: Option<i16>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    pub guidance: Option<f64>,
}

impl Settings {
    /// Neither was asked for: nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.steps.is_none() && self.guidance.is_none()
    }
}

/// Keeps a generation's settings; call it in the submission's transaction.
pub async fn record_settings(
    conn: &mut AsyncPgConnection,
    id: GenerationId,
    settings: Settings,
) -> QueryResult<()> {
    use diesel::sql_types::{Double, Nullable, SmallInt, Uuid};
    diesel::sql_query(
        "INSERT INTO generation_settings (generation_id, steps, guidance) VALUES ($1, $2, $3)",
    )
    .bind::<Uuid, _>(id.0)
    .bind::<Nullable<SmallInt>, _>(settings.steps)
    .bind::<Nullable<Double>, _>(settings.guidance)
    .execute(conn)
    .await
    .map(|_| ())
}

#[derive(QueryableByName)]
struct SettingsOf {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    generation_id: GenerationId,
    #[diesel(embed)]
    settings: Settings,
}

/// The settings of those of `ids` that have any.
pub async fn settings_of(
    conn: &mut AsyncPgConnection,
    ids: &[GenerationId],
) -> QueryResult<Vec<(GenerationId, Settings)>> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    let rows: Vec<SettingsOf> = crate::db::Prepared(
        diesel::sql_query(
            "SELECT generation_id, steps, guidance FROM generation_settings \
             WHERE generation_id = ANY ($1)",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids),
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.generation_id, row.settings))
        .collect())
}
