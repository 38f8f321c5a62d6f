//! Generation logic: validate against the catalog, quote, reserve and enqueue in one transaction,
//! cancel, fail with a refund exactly once, and present a generation with its images.

use super::store::{self, GenerationRow, ImageRow, NewGeneration, SubmitError};
use super::types::{CreateGenerationRequest, GeneratedImage, Generation, GenerationError, Quote};
use super::{GenerationId, Status, Visibility};
use crate::app::AppState;
use crate::catalog::{Input, Model};
use crate::credits;
use crate::db::batch::Batcher;
use crate::db::cursor::{Page, PageParams};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::identity::{Principal, Role};
use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::future::BoxFuture;

/// A request checked against its model: what will be made and what it costs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub model: Model,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub aspect_ratio: String,
    pub width: u32,
    pub height: u32,
    pub num_outputs: u32,
    pub seed: i64,
    pub style: Option<String>,
    pub settings: store::Settings,
    pub visibility: Visibility,
    pub cost: i64,
    /// The input image, once resolved (see [`with_input`]).
    pub input: Option<crate::inputs::store::InputRow>,
    /// Where `generation.completed` goes (see [`super::webhooks`]).
    pub webhook_url: Option<String>,
}

fn field(errors: &mut Vec<FieldError>, name: &str, message: impl Into<String>) {
    errors.push(FieldError {
        field: name.to_owned(),
        message: message.into(),
    });
}

/// Validates a request against the catalog, collecting every problem at once.
pub fn plan(state: &AppState, body: &CreateGenerationRequest) -> Result<Plan, ApiError> {
    let mut errors = Vec::new();
    let prompt = body.prompt.trim().to_owned();
    if prompt.is_empty() || prompt.chars().count() > 2000 {
        field(&mut errors, "prompt", "must be 1 to 2000 characters");
    }
    let Some(model) = state.catalog.get(&body.model) else {
        let ids: Vec<&str> = state.catalog.all().iter().map(|m| m.id.as_str()).collect();
        field(
            &mut errors,
            "model",
            format!("unknown model; choose one of {}", ids.join(", ")),
        );
        return Err(ApiError::validation(errors));
    };
    let aspect_ratio = body
        .aspect_ratio
        .clone()
        .unwrap_or_else(|| model.default_aspect_ratio.clone());
    let size = model.aspect_ratios.get(&aspect_ratio).copied();
    if size.is_none() {
        let allowed: Vec<&str> = model.aspect_ratios.keys().map(String::as_str).collect();
        field(
            &mut errors,
            "aspect_ratio",
            format!("must be one of {}", allowed.join(", ")),
        );
    }
    let num_outputs = body.num_outputs.unwrap_or(model.min_outputs);
    if !(model.min_outputs..=model.max_outputs).contains(&num_outputs) {
        field(
            &mut errors,
            "num_outputs",
            format!(
                "must be between {} and {} for this model",
                model.min_outputs, model.max_outputs
            ),
        );
    }
    let optional = [
        (
            "negative_prompt",
            body.negative_prompt.is_some(),
            Input::NegativePrompt,
        ),
        ("seed", body.seed.is_some(), Input::Seed),
        ("style", body.style.is_some(), Input::Style),
        ("steps", body.steps.is_some(), Input::Steps),
        ("guidance", body.guidance.is_some(), Input::Guidance),
    ];
    for (name, given, input) in optional {
        if given && !model.accepts(input) {
            field(
                &mut errors,
                name,
                format!("model {} does not accept {name}", model.id),
            );
        }
    }
    let negative_prompt = body
        .negative_prompt
        .as_ref()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if negative_prompt
        .as_ref()
        .is_some_and(|n| n.chars().count() > 2000)
    {
        field(
            &mut errors,
            "negative_prompt",
            "must be at most 2000 characters",
        );
    }
    if let Some(style) = &body.style
        && model.accepts(Input::Style)
        && !model.styles.contains(style)
    {
        field(
            &mut errors,
            "style",
            format!("must be one of {}", model.styles.join(", ")),
        );
    }
    if body
        .seed
        .is_some_and(|s| !(0..=i64::from(u32::MAX)).contains(&s))
    {
        field(&mut errors, "seed", "must be between 0 and 4294967295");
    }
    let steps = body.steps.and_then(|n| i16::try_from(n).ok());
    if body.steps.is_some() && !steps.is_some_and(|n| (1..=200).contains(&n)) {
        field(&mut errors, "steps", "must be between 1 and 200");
    }
    if body
        .guidance
        .is_some_and(|g| !(g.is_finite() && (0.0..=30.0).contains(&g)))
    {
        field(&mut errors, "guidance", "must be between 0 and 30");
    }
    let webhook_url = match body
        .webhook_url
        .as_deref()
        .map(|url| super::webhooks::accept_url(&state.config.generation.webhooks, url))
    {
        Some(Ok(url)) => Some(url),
        Some(Err(why)) => {
            field(&mut errors, "webhook_url", why);
            None
        }
        None => None,
    };
    match (model.image_input, body.image_input.is_some()) {
        (crate::catalog::ImageInput::None, true) => field(
            &mut errors,
            "image_input",
            format!("model {} takes no input image", model.id),
        ),
        (crate::catalog::ImageInput::Required, false) => field(
            &mut errors,
            "image_input",
            format!(
                "model {} needs an input image: an upload id or an image id",
                model.id
            ),
        ),
        _ => {}
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    state.moderation.check("prompt", &prompt)?;
    if let Some(negative) = &negative_prompt {
        state.moderation.check("negative_prompt", negative)?;
    }
    let [width, height] = size.unwrap_or([512, 512]);
    Ok(Plan {
        model: model.clone(),
        prompt,
        negative_prompt,
        aspect_ratio,
        width,
        height,
        num_outputs,
        seed: body
            .seed
            .unwrap_or_else(|| i64::from(rand::random::<u32>())),
        style: body.style.clone().filter(|s| s != "none"),
        settings: store::Settings {
            steps,
            guidance: body.guidance,
        },
        visibility: body.visibility.unwrap_or_default(),
        cost: model.cost_per_image * i64::from(num_outputs),
        input: None,
        webhook_url,
    })
}

/// Resolves the request's input image, if any: someone else's private image is a 404 before
/// anything is reserved.
pub async fn with_input(
    state: &AppState,
    principal: &Principal,
    mut plan: Plan,
    image_input: Option<uuid::Uuid>,
) -> Result<Plan, ApiError> {
    if let Some(id) = image_input {
        plan.input =
            Some(crate::inputs::service::resolve(state, principal, &plan.model, id).await?);
    }
    Ok(plan)
}

/// Grants the day's free credits if they are due.
async fn touch(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    principal: &Principal,
) -> Result<(), ApiError> {
    credits::touch(
        conn,
        principal.user_id,
        &state.config.credits,
        credits::service::today(Utc::now()),
    )
    .await?;
    Ok(())
}

/// What the caller can spend now, free and purchased (touching the daily grant first).
async fn available(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    principal: &Principal,
) -> Result<(i64, i64), ApiError> {
    touch(state, conn, principal).await?;
    let balance = credits::store::balance(conn, principal.user_id).await?;
    Ok(balance.map_or((0, 0), |b| (b.free, b.purchased)))
}

/// Whether this request must pass [`check_pro`]: a pro model, asked for by someone not an admin.
fn needs_purchase(plan: &Plan, principal: &Principal) -> bool {
    plan.model.is_pro && principal.role != Role::Admin
}

/// Pro models need credits the person paid for (or an operator granted) still in the non-expiring
/// bucket, or the admin role. The signup bonus shares that bucket but does not open pro models.
async fn check_pro(
    conn: &mut AsyncPgConnection,
    plan: &Plan,
    principal: &Principal,
    purchased: i64,
) -> Result<(), ApiError> {
    if !needs_purchase(plan, principal) {
        return Ok(());
    }
    if purchased <= 0 || !credits::store::has_bought(conn, principal.user_id).await? {
        return Err(ApiError::new(
            ErrorCode::ProModelRequiresPurchase,
            format!(
                "{} is a pro model: it needs purchased credits (buy a package) or the admin role",
                plan.model.id
            ),
        ));
    }
    Ok(())
}

pub async fn quote(
    state: &AppState,
    principal: &Principal,
    plan: &Plan,
) -> Result<Quote, ApiError> {
    let mut conn = state.pool.get().await?;
    let (free, purchased) = available(state, &mut conn, principal).await?;
    check_pro(&mut conn, plan, principal, purchased).await?;
    let spendable = if purchased < 0 { 0 } else { free + purchased };
    Ok(Quote {
        dry_run: true,
        model: plan.model.id.clone(),
        num_outputs: plan.num_outputs,
        credits_needed: plan.cost,
        credits_available: spendable,
        sufficient: spendable >= plan.cost,
    })
}

/// Submissions gathered into batches (see [`store::submit_many`]).
pub type Submissions = Batcher<store::Submission, Result<GenerationRow, SubmitError>>;

/// Batches of submissions that may run at once on one HTTP worker's pool.
const SUBMIT_LANES: usize = 2;

pub fn submissions(pool: crate::db::Pool) -> Submissions {
    Batcher::new(pool, SUBMIT_LANES, submit_batch)
}

fn submit_batch(
    pool: crate::db::Pool,
    batch: Vec<store::Submission>,
) -> BoxFuture<'static, Vec<Result<GenerationRow, SubmitError>>> {
    Box::pin(async move {
        let mut conn = match pool.get().await {
            Ok(conn) => conn,
            Err(e) => {
                let message = e.to_string();
                return batch
                    .iter()
                    .map(|_| Err(SubmitError::Unavailable(message.clone())))
                    .collect();
            }
        };
        if batch.len() > 1 {
            match store::submit_many(&mut conn, &batch).await {
                Ok(results) => return results,
                // Nothing of the batch was kept: each goes again on its own, so that only the one
                // at fault fails.
                Err(e) => tracing::warn!(error = %e, submissions = batch.len(),
                    "a batch of submissions failed; submitting them one at a time"),
            }
        }
        let mut results = Vec::with_capacity(batch.len());
        for s in &batch {
            results.push(store::submit(&mut conn, &s.new, s.today, s.max_in_flight).await);
        }
        results
    })
}

/// Reserves the full cost and enqueues the job in one step: either both happen or neither.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    plan: Plan,
) -> Result<GenerationRow, ApiError> {
    if needs_purchase(&plan, principal) {
        let mut conn = state.pool.get().await?;
        let (_, purchased) = available(state, &mut conn, principal).await?;
        check_pro(&mut conn, &plan, principal, purchased).await?;
    }
    let now = Utc::now();
    let deadline =
        now + chrono::Duration::seconds(i64::try_from(plan.model.deadline_secs).unwrap_or(600));
    let id = GenerationId::new();
    let today = credits::service::today(now);
    let max_in_flight = state.config.generation.max_in_flight;
    let submission = store::Submission {
        new: NewGeneration {
            id,
            user_id: principal.user_id,
            model: plan.model.id.clone(),
            prompt: plan.prompt.clone(),
            negative_prompt: plan.negative_prompt.clone(),
            aspect_ratio: plan.aspect_ratio.clone(),
            width: i32::try_from(plan.width).unwrap_or(512),
            height: i32::try_from(plan.height).unwrap_or(512),
            num_outputs: i32::try_from(plan.num_outputs).unwrap_or(1),
            seed: plan.seed,
            style: plan.style.clone(),
            visibility: plan.visibility.as_str(),
            credits_charged: plan.cost,
            reservation_id: credits::EntryId::new(),
            deadline_at: deadline,
        },
        today,
        max_in_flight,
    };
    let submit = async |submission: store::Submission| {
        if plan.input.is_none() && plan.settings.is_empty() && plan.webhook_url.is_none() {
            return state.submissions.call(submission).await.unwrap_or_else(|| {
                Err(SubmitError::Unavailable(
                    "the submission's batch was lost".to_owned(),
                ))
            });
        }
        // The input, the settings and the webhook are recorded with the generation, or none is: a
        // worker never claims the job without them.
        let mut conn = state
            .pool
            .get()
            .await
            .map_err(|e| SubmitError::Unavailable(e.to_string()))?;
        conn.transaction::<_, SubmitError, _>(async |conn| {
            let row = store::submit(conn, &submission.new, today, max_in_flight).await?;
            if let Some(input) = &plan.input {
                let input = crate::inputs::store::InputRow {
                    generation_id: id.0,
                    ..input.clone()
                };
                if !crate::inputs::store::record_input(conn, &input).await? {
                    return Err(SubmitError::InputGone);
                }
            }
            if !plan.settings.is_empty() {
                store::record_settings(conn, id, plan.settings).await?;
            }
            if let Some(url) = &plan.webhook_url {
                super::webhooks::record(conn, id, principal.user_id, url).await?;
            }
            Ok(row)
        })
        .await
    };
    let mut submitted = submit(submission.clone()).await;
    if let Err(SubmitError::GrantDue) = submitted {
        // Once a day (and at the account's first spend): the grant, then the submission again. The
        // grant is for the same day the submission checks, even if midnight passed in between.
        let mut conn = state.pool.get().await?;
        credits::touch(&mut conn, principal.user_id, &state.config.credits, today).await?;
        drop(conn);
        submitted = submit(submission).await;
    }
    let row = match submitted {
        Ok(row) => row,
        Err(SubmitError::TooManyInFlight) => {
            return Err(ApiError::new(
                ErrorCode::TooManyInFlight,
                format!(
                    "at most {max_in_flight} generations may run at once; wait for one to finish"
                ),
            )
            .with_header(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("2"),
            ));
        }
        Err(SubmitError::NotCovered) => {
            let mut conn = state.pool.get().await?;
            return Err(credits::service::refusal(&mut conn, principal.user_id, plan.cost).await?);
        }
        Err(SubmitError::InputGone) => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "image_input is not an upload of yours or an image you may use",
            ));
        }
        Err(SubmitError::GrantDue) => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "the day's credit grant was made but the submission still found it due"
            )));
        }
        Err(SubmitError::Unavailable(e)) => {
            return Err(ApiError::from_pool(e));
        }
        Err(SubmitError::Database(e)) => return Err(e.into()),
    };
    tracing::info!(generation.id = %row.id, user.id = %principal.user_id, model = %row.model, "generation queued");
    // One runner per process claims; a permit is kept if it is busy claiming right now.
    state.jobs_waiting.notify_one();
    Ok(row)
}

/// Ends an active generation as failed or canceled and refunds its reservation, all in one
/// transaction. Exactly once: only the call that moves it out of an active state refunds (and
/// counts it in `metrics`).
pub async fn end_with_refund(
    metrics: &crate::ops::metrics::Metrics,
    conn: &mut AsyncPgConnection,
    id: GenerationId,
    status: Status,
    error: Option<(&str, &str, bool)>,
) -> Result<bool, ApiError> {
    let ended = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let Some(row) = store::end(conn, id, status, error).await? else {
                return Ok(None);
            };
            if let Some(reservation) = row.reservation_id
                && let Some(refund) = credits::refund(conn, reservation).await?
            {
                store::set_refunded(conn, id, refund.free_delta + refund.purchased_delta).await?;
            }
            Ok(Some(row))
        })
        .await?;
    let Some(row) = ended else {
        return Ok(false);
    };
    tracing::info!(generation.id = %id, status = status.as_str(), error = ?error.map(|e| e.0), "generation ended and refunded");
    let ended_at = row.completed_at.unwrap_or_else(chrono::Utc::now);
    metrics.observe_finished(
        &row.model,
        status.as_str(),
        error.map(|e| e.0),
        ended_at - row.created_at,
    );
    Ok(true)
}

/// Cancels an active generation of the caller's and refunds it; on a finished one it changes nothing.
pub async fn cancel(
    state: &AppState,
    principal: &Principal,
    id: GenerationId,
) -> Result<Generation, ApiError> {
    let mut conn = state.pool.get().await?;
    store::find_owned(&mut conn, principal.user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))?;
    end_with_refund(
        &state.metrics,
        &mut conn,
        id,
        Status::Canceled,
        Some(("canceled", "canceled by its owner", false)),
    )
    .await?;
    let row = store::find(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))?;
    present(vec![row], &state.catalog, &mut conn)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("generation"))
}

/// Makes a lost thumbnail of `image` again from its original (see `verify::heal_thumb`), and
/// returns the hash to serve it under: a different one when this version's encoder differs from
/// the one that made it. `None` when it cannot be made (a 3D model, or the original is gone too).
pub async fn remake_lost_thumb(
    state: &AppState,
    image: &ImageRow,
) -> Result<Option<String>, ApiError> {
    let files = crate::gallery::store::ImageFiles {
        id: image.id,
        content_hash: image.content_hash.clone(),
        thumb_hash: image.thumb_hash.clone(),
        kind: image.kind.clone(),
    };
    if !crate::gallery::verify::heal_thumb(state, files)
        .await
        .map_err(ApiError::internal)?
    {
        return Ok(None);
    }
    tracing::warn!(image.id = %image.id.0, hash = %image.thumb_hash, "a lost thumbnail was made again from its original");
    let mut conn = state.pool.get().await?;
    Ok(store::find_image(&mut conn, image.id)
        .await?
        .map(|image| image.thumb_hash))
}

pub fn image_view(image: &ImageRow) -> GeneratedImage {
    GeneratedImage {
        id: image.id,
        kind: if image.kind == "model3d" {
            crate::catalog::OutputKind::Model3d
        } else {
            crate::catalog::OutputKind::Image
        },
        width: image.width,
        height: image.height,
        url: crate::gallery::service::file_url(image.id, "original"),
        thumb_url: crate::gallery::service::file_url(image.id, "thumb"),
    }
}

/// A page of my generations, newest first, all or in one status.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    page: &PageParams,
    status: Option<Status>,
) -> Result<Page<Generation>, ApiError> {
    let list = format!("generations:{}", status.map_or("all", Status::as_str));
    let page = page.parse::<GenerationId>(&list)?;
    let mut conn = state.pool.get().await?;
    let rows = store::list(&mut conn, principal.user_id, status, page.after, page.limit).await?;
    let items = present(rows, &state.catalog, &mut conn).await?;
    Ok(Page::from_rows(&list, items, page.limit, |g| g.id))
}

/// Generations as the API shows them, with their images loaded in one query.
pub async fn present(
    rows: Vec<GenerationRow>,
    catalog: &crate::catalog::Catalog,
    conn: &mut AsyncPgConnection,
) -> Result<Vec<Generation>, ApiError> {
    // Only a succeeded generation has images (they are stored in the same transaction).
    let ids: Vec<GenerationId> = rows
        .iter()
        .filter(|r| r.status == Status::Succeeded.as_str())
        .map(|r| r.id)
        .collect();
    let images = if ids.is_empty() {
        Vec::new()
    } else {
        store::images_of(conn, &ids).await?
    };
    // Only models that take steps or guidance can have settings: most reads skip the look-up. (A
    // model since removed from the catalog is looked up, to be safe.)
    let tunable: Vec<GenerationId> = rows
        .iter()
        .filter(|r| {
            catalog
                .get(&r.model)
                .is_none_or(|m| m.accepts(Input::Steps) || m.accepts(Input::Guidance))
        })
        .map(|r| r.id)
        .collect();
    let settings = if tunable.is_empty() {
        Vec::new()
    } else {
        store::settings_of(conn, &tunable).await?
    };
    // Likewise only models that take an input image can have had one.
    let fed: Vec<uuid::Uuid> = rows
        .iter()
        .filter(|r| {
            catalog
                .get(&r.model)
                .is_none_or(|m| m.image_input != crate::catalog::ImageInput::None)
        })
        .map(|r| r.id.0)
        .collect();
    let inputs = if fed.is_empty() {
        Vec::new()
    } else {
        crate::inputs::store::sources_of(conn, &fed).await?
    };
    let queued: Vec<GenerationId> = rows
        .iter()
        .filter(|r| r.status == Status::Queued.as_str())
        .map(|r| r.id)
        .collect();
    let ahead = if queued.is_empty() {
        Vec::new()
    } else {
        store::queued_ahead(conn, &queued).await?
    };
    Ok(rows
        .into_iter()
        .map(|row| {
            let settings = settings
                .iter()
                .find(|(id, _)| *id == row.id)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            let input = inputs
                .iter()
                .find(|(id, _)| *id == row.id.0)
                .map(|(_, source)| source);
            // A job claimed since its row was read is not counted: it is no longer waiting.
            let queued_ahead = ahead.iter().find(|(id, _)| *id == row.id).map(|(_, n)| *n);
            let mut generation = view(row, &images, settings, input);
            generation.queued_ahead = queued_ahead;
            generation
        })
        .collect())
}

/// A generation just accepted with `settings` and `input` (the upload or image it was given), as
/// the API shows it: queued, so without images yet.
pub fn present_queued(
    row: GenerationRow,
    settings: store::Settings,
    input: Option<&crate::inputs::store::Source>,
) -> Generation {
    view(row, &[], settings, input)
}

/// A generation as the API shows it, with its images among `images`.
fn view(
    row: GenerationRow,
    images: &[ImageRow],
    settings: store::Settings,
    input: Option<&crate::inputs::store::Source>,
) -> Generation {
    let error = row.error_code.clone().map(|code| GenerationError {
        code,
        message: row.error_message.clone().unwrap_or_default(),
        retryable: row.error_retryable.unwrap_or(false),
    });
    Generation {
        id: row.id,
        status: Status::from_db(&row.status),
        images: images
            .iter()
            .filter(|i| i.generation_id == row.id)
            .map(image_view)
            .collect(),
        model: row.model,
        prompt: row.prompt,
        negative_prompt: row.negative_prompt,
        aspect_ratio: row.aspect_ratio,
        width: row.width,
        height: row.height,
        num_outputs: row.num_outputs,
        seed: row.seed,
        style: row.style,
        steps: settings.steps.map(i32::from),
        guidance: settings.guidance,
        image_input: input.map(|source| source.id),
        image_input_url: input.map(crate::inputs::store::Source::url),
        visibility: Visibility::from_db(&row.visibility),
        credits_charged: row.credits_charged,
        credits_refunded: row.credits_refunded,
        error,
        progress: row.progress,
        queued_ahead: None,
        created_at: row.created_at,
        started_at: row.started_at,
        completed_at: row.completed_at,
    }
}

pub async fn get(
    state: &AppState,
    principal: &Principal,
    id: GenerationId,
) -> Result<Generation, ApiError> {
    let mut conn = state.pool.get().await?;
    let row = store::find_owned(&mut conn, principal.user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))?;
    present(vec![row], &state.catalog, &mut conn)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("generation"))
}
