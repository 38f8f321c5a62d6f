//! The durable job runner. Each process (`easel serve`, or `easel worker`) runs up to its share of
//! jobs at once: it claims due jobs in batches with `FOR UPDATE SKIP LOCKED`, runs each on its
//! provider, stores the outputs content-addressed, and finishes the jobs that end together in one
//! transaction. One statement reports the progress and liveness of all of them. A watchdog fails and
//! refunds jobs past their deadline and puts back in the queue jobs whose process stopped
//! heartbeating (it died, or was killed). A process told to stop drains: see [`Jobs::drain`].

use super::service::end_with_refund;
use super::store::{self, GenerationRow, NewImage};
use super::{GenerationId, ImageId, Status};
use crate::app::AppState;
use crate::catalog::Model;
use crate::providers::{Job, JobInput, Output, ProviderError, Tracker};
use crate::storage;
use chrono::Utc;
use diesel_async::AsyncConnection;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

/// The most jobs one claim takes, and one commit finishes.
const BATCH: usize = 64;

/// This process's runner: the jobs it is running, and the queue of outputs waiting to be committed.
struct Runner {
    state: Arc<AppState>,
    /// Written to `claimed_by`: only this process may heartbeat or finish the jobs it claimed.
    name: String,
    running: Mutex<HashMap<GenerationId, Running>>,
    commits: mpsc::UnboundedSender<Finished>,
    /// Set when the process is stopping: no more claims (see [`Jobs::drain`]).
    draining: watch::Sender<bool>,
}

/// A running job as the heartbeat sees it.
struct Running {
    progress: watch::Receiver<u8>,
    /// Set when the job is no longer this process's (canceled, or reclaimed).
    stop: watch::Sender<bool>,
}

/// A job whose outputs are stored, waiting for the commit that records them.
struct Finished {
    row: GenerationRow,
    stored: Vec<Stored>,
    /// Whether the job was still this process's and succeeded, or why the commit failed.
    done: oneshot::Sender<anyhow::Result<bool>>,
}

impl Runner {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<GenerationId, Running>> {
        // The map is consistent after any panic (single inserts and removes), so a poisoned lock is
        // still usable.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// This process's runner, to stop it cleanly (see [`Jobs::drain`]).
pub struct Jobs {
    runner: Arc<Runner>,
    claims: tokio::task::JoinHandle<()>,
}

/// How long jobs told to stop at the end of a drain get to let go before they are released anyway.
const LET_GO: Duration = Duration::from_secs(5);

/// How long a job that met a busy provider waits before it asks again (plus up to a second).
const BUSY_RETRY: Duration = Duration::from_secs(2);

impl Jobs {
    /// Stops claiming jobs, gives the running ones up to `grace` to finish, then stops those left
    /// and puts them straight back in the queue for another process, their attempt not counted: a
    /// deploy is not the job's fault, and another process picks them up at once rather than after
    /// the heartbeat timeout. A remote prediction is left running, and followed from there.
    pub async fn drain(self, grace: Duration) {
        let runner = self.runner;
        runner.draining.send_replace(true);
        // A claim under way finishes, and registers its jobs, before the loop ends. (One stuck past
        // the grace is dropped: any jobs it took are reclaimed once their heartbeats are missed.)
        let mut claims = self.claims;
        if tokio::time::timeout(grace, &mut claims).await.is_err() {
            claims.abort();
        }
        let running = runner.running().len();
        if running > 0 {
            tracing::info!(
                jobs = running,
                grace_secs = grace.as_secs(),
                "waiting for running jobs to finish"
            );
        }
        let until = tokio::time::Instant::now() + grace;
        while !runner.running().is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left: Vec<GenerationId> = {
            let running = runner.running();
            for job in running.values() {
                job.stop.send_replace(true);
            }
            running.keys().copied().collect()
        };
        if left.is_empty() {
            return;
        }
        let until = tokio::time::Instant::now() + LET_GO;
        while !runner.running().is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let released = match runner.state.pool.get().await {
            Ok(mut conn) => store::release(&mut conn, &left, &runner.name, Utc::now())
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        };
        match released {
            Ok(ids) => {
                for _ in &ids {
                    runner.state.metrics.observe_requeue("released");
                }
                tracing::info!(jobs = ids.len(), "unfinished jobs put back in the queue");
            }
            // The watchdog requeues them once their heartbeats are missed.
            Err(e) => {
                tracing::error!(error = %e, "could not put unfinished jobs back in the queue")
            }
        }
    }
}

/// Starts this process's runner, with up to `count` jobs at once, and one watchdog, on the current
/// runtime.
pub fn spawn(state: Arc<AppState>, count: usize) -> Jobs {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "easel".to_owned());
    let name = format!(
        "{host}:{}:{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    );
    let (commits, queue) = mpsc::unbounded_channel();
    let runner = Arc::new(Runner {
        state: Arc::clone(&state),
        name,
        running: Mutex::new(HashMap::new()),
        commits,
        draining: watch::Sender::new(false),
    });
    let claims = tokio::spawn(claim_loop(Arc::clone(&runner), count.max(1)));
    tokio::spawn(heartbeats(Arc::clone(&runner)));
    tokio::spawn(commit_loop(Arc::clone(&runner), queue));
    super::webhooks::spawn(Arc::clone(&state));
    tokio::spawn(watchdog(state));
    Jobs { runner, claims }
}

/// Claims as many due jobs as there are free slots, in one statement, and starts each; ends when
/// the runner drains.
async fn claim_loop(runner: Arc<Runner>, slots: usize) {
    let slots = Arc::new(Semaphore::new(slots));
    let mut draining = runner.draining.subscribe();
    loop {
        let first = tokio::select! {
            // Checked first: a free slot must not start another claim once the drain began.
            biased;
            _ = draining.wait_for(|draining| *draining) => return,
            permit = Arc::clone(&slots).acquire_owned() => permit,
        };
        let Ok(first) = first else {
            return;
        };
        let mut permits = vec![first];
        while permits.len() < BATCH {
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let wanted = permits.len();
        let claimed = match runner.state.pool.get().await {
            Ok(mut conn) => store::claim_noting_first(
                &mut conn,
                &runner.name,
                i32::try_from(wanted).unwrap_or(1),
            )
            .await
            .map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        };
        match claimed {
            Ok(jobs) => {
                let all = jobs.len() == wanted;
                for claimed in jobs.iter().filter(|claimed| claimed.first_start) {
                    let row = &claimed.job;
                    if let Some(started) = row.started_at {
                        runner
                            .state
                            .metrics
                            .observe_claimed(&row.model, started - row.created_at);
                    }
                }
                let rows = jobs.into_iter().map(|claimed| claimed.job);
                for (row, permit) in rows.zip(permits.drain(..)) {
                    // Registered before the task starts, so that a drain sees every claimed job.
                    let (progress_tx, progress) = watch::channel(0_u8);
                    let (stop, stopped) = watch::channel(false);
                    runner.running().insert(row.id, Running { progress, stop });
                    tokio::spawn(start(
                        Arc::clone(&runner),
                        row,
                        (progress_tx, stopped),
                        permit,
                    ));
                }
                drop(permits);
                if !all {
                    // Woken at once by a submission in this process; otherwise poll for other
                    // processes' jobs, and for retries coming due.
                    tokio::select! {
                        biased;
                        _ = draining.wait_for(|draining| *draining) => return,
                        _ = tokio::time::timeout(
                            Duration::from_millis(500),
                            runner.state.jobs_waiting.notified(),
                        ) => {}
                    }
                }
            }
            Err(e) => {
                drop(permits);
                tracing::warn!(error = %e, "could not claim jobs");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs one claimed job, registered for heartbeats while it runs; its slot frees when it ends.
async fn start(
    runner: Arc<Runner>,
    row: GenerationRow,
    (progress, stopped): (watch::Sender<u8>, watch::Receiver<bool>),
    _slot: OwnedSemaphorePermit,
) {
    let id = row.id;
    run(&runner, row, progress, stopped).await;
    runner.running().remove(&id);
}

fn job_of(
    row: &GenerationRow,
    model: &Model,
    input: Option<JobInput>,
    settings: store::Settings,
) -> Job {
    Job {
        input,
        steps: settings.steps.and_then(|n| u32::try_from(n).ok()),
        guidance: settings.guidance,
        id: row.id.0,
        provider_model: model.provider_model.clone(),
        aspect_ratio: row.aspect_ratio.clone(),
        remote: model.remote.clone(),
        provider_ref: row.provider_ref.clone(),
        webhook_token: row.webhook_token.clone(),
        prompt: row.prompt.clone(),
        negative_prompt: row.negative_prompt.clone(),
        width: u32::try_from(row.width).unwrap_or(512),
        height: u32::try_from(row.height).unwrap_or(512),
        seed: u64::try_from(row.seed).unwrap_or(0),
        style: row.style.clone(),
        num_outputs: u32::try_from(row.num_outputs).unwrap_or(1),
    }
}

/// Runs one claimed job to a terminal state (or back to the queue for a retry).
async fn run(
    runner: &Runner,
    row: GenerationRow,
    progress: watch::Sender<u8>,
    mut stopped: watch::Receiver<bool>,
) {
    let state = runner.state.as_ref();
    let id = row.id;
    tracing::info!(generation.id = %id, attempt = row.attempts, "job started");
    let Some(model) = state.catalog.get(&row.model).cloned() else {
        fail(
            state,
            &row,
            "model_removed",
            "the model is no longer in the catalog",
            false,
        )
        .await;
        return;
    };
    let Some(provider) = state.providers.get(&model.provider) else {
        fail(
            state,
            &row,
            "provider_unavailable",
            "this model's provider is not configured",
            true,
        )
        .await;
        return;
    };
    let input = match load_input(state, &model, &row).await {
        Ok(input) => input,
        Err(e) => {
            tracing::error!(generation.id = %id, error = %e, "reading the input image failed; will retry");
            retry_or_fail(
                state,
                &row,
                "storage_failed",
                "the input image could not be read",
            )
            .await;
            return;
        }
    };
    let settings = match load_settings(state, &model, &row).await {
        Ok(settings) => settings,
        Err(e) => {
            tracing::error!(generation.id = %id, error = %e, "reading the settings failed; will retry");
            retry_or_fail(
                state,
                &row,
                "database_unavailable",
                "the generation's settings could not be read",
            )
            .await;
            return;
        }
    };
    let job = job_of(&row, &model, input, settings);
    let tracker = RowTracker {
        state,
        id,
        progress,
    };
    let outcome = tokio::select! {
        result = provider.run(&job, &tracker) => Some(result),
        () = stop_signal(&mut stopped) => None,
    };
    match outcome {
        // Canceled, or reclaimed by the watchdog: this worker no longer owns the job.
        None => {
            tracing::info!(generation.id = %id, "job left this worker; stopped");
            stop_remote(state, provider.as_ref(), &job).await;
        }
        Some(Ok(outputs)) => {
            if let Some(refusal) = wrong_kind(&model, &outputs) {
                fail(state, &row, "output_refused", &refusal, false).await;
                return;
            }
            if let Err(e) = complete(runner, &row, outputs).await {
                tracing::error!(generation.id = %id, error = %e, "storing outputs failed; will retry");
                retry_or_fail(
                    state,
                    &row,
                    "storage_failed",
                    "the outputs could not be stored",
                )
                .await;
            }
        }
        Some(Err(ProviderError::Permanent { code, message })) => {
            fail(state, &row, &code, &message, false).await
        }
        Some(Err(ProviderError::Transient { code, message })) => {
            retry_or_fail(state, &row, &code, &message).await
        }
        Some(Err(ProviderError::Busy { message })) => wait_for_room(runner, &row, &message).await,
    }
}

/// The job's input image with a link a provider may fetch it from for a short while.
async fn load_input(
    state: &AppState,
    model: &Model,
    row: &GenerationRow,
) -> anyhow::Result<Option<JobInput>> {
    // Most models take no input: skip the look-up.
    if !model.supports_image_input {
        return Ok(None);
    }
    let mut conn = state.pool.get().await?;
    let Some(input) = crate::inputs::store::input_of(&mut conn, row.id.0).await? else {
        return Ok(None);
    };
    drop(conn);
    let bytes = state
        .storage
        .get(input.storage_kind(), &input.content_hash)
        .await?;
    let expires = Utc::now().timestamp() + crate::inputs::INPUT_URL_TTL_SECS;
    Ok(Some(JobInput {
        bytes: Arc::new(bytes.to_vec()),
        content_type: input.content_type,
        url: format!(
            "{}{}",
            state.config.public_url,
            state.signer.input_path(row.id.0, expires)
        ),
    }))
}

/// The job's steps and guidance; only looked up for models that take either.
async fn load_settings(
    state: &AppState,
    model: &Model,
    row: &GenerationRow,
) -> anyhow::Result<store::Settings> {
    use crate::catalog::Input;
    if !model.accepts(Input::Steps) && !model.accepts(Input::Guidance) {
        return Ok(store::Settings::default());
    }
    let mut conn = state.pool.get().await?;
    let found = store::settings_of(&mut conn, &[row.id]).await?;
    Ok(found.first().map(|(_, s)| *s).unwrap_or_default())
}

/// Why outputs are not what the model promises (an image model returning a mesh, or the reverse).
fn wrong_kind(model: &Model, outputs: &[Output]) -> Option<String> {
    let want_model = model.output_kind == crate::catalog::OutputKind::Model3d;
    outputs.iter().find_map(|output| {
        let sniffed = storage::sniff(&output.bytes);
        let is_model = sniffed == Some(crate::model3d::CONTENT_TYPE);
        (sniffed.is_none() || is_model != want_model).then(|| {
            format!(
                "the model returned {} where {} was expected",
                sniffed.unwrap_or("an unknown file type"),
                if want_model {
                    "a glTF binary model"
                } else {
                    "an image"
                }
            )
        })
    })
}

/// A job's side of a provider run, backed by its row.
struct RowTracker<'a> {
    state: &'a AppState,
    id: super::GenerationId,
    progress: watch::Sender<u8>,
}

impl Tracker for RowTracker<'_> {
    fn progress(&self, percent: u8) {
        self.progress.send_if_modified(|current| {
            let changed = *current != percent;
            *current = percent;
            changed
        });
    }

    fn remember<'b>(
        &'b self,
        provider_ref: &'b str,
        webhook_token: Option<&'b str>,
    ) -> BoxFuture<'b, anyhow::Result<()>> {
        Box::pin(async move {
            let mut conn = self.state.pool.get().await?;
            store::remember_provider(&mut conn, self.id, provider_ref, webhook_token).await?;
            Ok(())
        })
    }

    fn delivered(&self) -> BoxFuture<'_, anyhow::Result<Option<(i16, serde_json::Value)>>> {
        Box::pin(async move {
            let mut conn = self.state.pool.get().await?;
            Ok(store::delivered_state(&mut conn, self.id).await?)
        })
    }
}

/// A job that left its worker because it ended (canceled, or failed at its deadline) has its remote
/// prediction stopped, so nobody pays for work that will be thrown away. One reclaimed by the
/// watchdog keeps running: its next worker follows the same prediction.
async fn stop_remote(state: &AppState, provider: &dyn crate::providers::Provider, job: &Job) {
    let Ok(mut conn) = state.pool.get().await else {
        return;
    };
    let Ok(Some(row)) = store::find(&mut conn, super::GenerationId(job.id)).await else {
        return;
    };
    drop(conn);
    let ended = matches!(row.status.as_str(), "canceled" | "failed");
    if !ended || row.provider_ref.is_none() {
        return;
    }
    let job = Job {
        provider_ref: row.provider_ref,
        ..job.clone()
    };
    match provider.cancel(&job).await {
        Ok(()) => tracing::info!(generation.id = %row.id, "remote prediction canceled"),
        Err(e) => {
            tracing::warn!(generation.id = %row.id, error = %e, "could not cancel the remote prediction")
        }
    }
}

/// Resolves once the heartbeat finds the job is no longer this process's.
async fn stop_signal(stopped: &mut watch::Receiver<bool>) {
    if stopped.wait_for(|stop| *stop).await.is_err() {
        // The sender lives as long as the job is registered; without it, never stop.
        std::future::pending::<()>().await;
    }
}

/// Every half second, one statement reports the progress of all this process's running jobs and
/// that it is alive; a job that is no longer its own is told to stop. A job that ends sooner never
/// needs one (the claim set its heartbeat).
async fn heartbeats(runner: Arc<Runner>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let beats: Vec<(GenerationId, i16)> = runner
            .running()
            .iter()
            .map(|(id, job)| (*id, i16::from(*job.progress.borrow())))
            .collect();
        if beats.is_empty() {
            continue;
        }
        // A failed heartbeat stops nothing: the jobs carry on, and the watchdog judges silence.
        let Ok(mut conn) = runner.state.pool.get().await else {
            continue;
        };
        let Ok(ours) = store::heartbeat(&mut conn, &runner.name, &beats).await else {
            continue;
        };
        drop(conn);
        let running = runner.running();
        for (id, _) in beats {
            if !ours.contains(&id)
                && let Some(job) = running.get(&id)
            {
                job.stop.send_replace(true);
            }
        }
    }
}

/// An output stored under its hashes, with the bytes kept until its image row is committed.
struct Stored {
    content_hash: String,
    thumb_hash: String,
    content_type: &'static str,
    size: usize,
    width: u32,
    height: u32,
    nsfw: bool,
    bytes: Vec<u8>,
    thumb: Vec<u8>,
    kind: &'static str,
    vertex_count: Option<i32>,
}

/// Stores each output (original and thumbnail, content-addressed) the moment it arrives, then hands
/// them to the commit that records the images and marks the job succeeded.
async fn complete(
    runner: &Runner,
    row: &GenerationRow,
    outputs: Vec<Output>,
) -> anyhow::Result<()> {
    let state = runner.state.as_ref();
    // Images beyond those asked for were not paid for: only the first ones asked are kept (a model
    // that always makes a batch of its own size, whatever `num_outputs` says).
    let asked = usize::try_from(row.num_outputs).unwrap_or(1);
    let mut outputs = outputs;
    if outputs.len() > asked {
        tracing::warn!(generation.id = %row.id, asked, made = outputs.len(), "more images than asked; the rest dropped");
        outputs.truncate(asked);
    }
    let mut stored = Vec::with_capacity(outputs.len());
    for output in outputs {
        let content_type = storage::sniff(&output.bytes)
            .ok_or_else(|| anyhow::anyhow!("output is not an image or a model"))?;
        let size = output.bytes.len();
        let nsfw = output.nsfw;
        let decoded = output.decoded;
        let (preview, vertex_count, kind) = if content_type == crate::model3d::CONTENT_TYPE {
            let info = crate::model3d::inspect(&output.bytes)?;
            let preview = match output.preview {
                Some(preview) => preview,
                None => {
                    tokio::task::spawn_blocking(move || {
                        let image = crate::model3d::point_preview(&info.positions, 512);
                        let mut png = Vec::new();
                        image.write_to(
                            &mut std::io::Cursor::new(&mut png),
                            image::ImageFormat::Png,
                        )?;
                        anyhow::Ok(png)
                    })
                    .await??
                }
            };
            (preview, Some(i32::try_from(info.vertex_count)?), "model3d")
        } else {
            (output.bytes.clone(), None, "image")
        };
        // Thumbnail, size and (in a local store) both files in one trip to a blocking thread.
        let storage = state.storage.clone();
        let (original, thumb, width, height, hashes) = tokio::task::spawn_blocking(move || {
            // The provider's own pixels when it has them (the same image, not decoded again).
            let image = match decoded {
                Some(image) if kind == "image" => image,
                _ => image::load_from_memory(&preview)?,
            };
            let thumb = storage::thumbnail_of(&image, storage::THUMB_MAX)?;
            let (width, height) = (image.width(), image.height());
            // Staged: the commit makes its batch's files durable at once (`Storage::flush`).
            let hashes = match (
                storage.stage_blocking("originals", &output.bytes),
                storage.stage_blocking("thumbs", &thumb),
            ) {
                (Some(original), Some(thumb)) => Some((original?, thumb?)),
                _ => None,
            };
            anyhow::Ok((output.bytes, thumb, width, height, hashes))
        })
        .await??;
        let (content_hash, thumb_hash) = match hashes {
            Some(hashes) => hashes,
            None => tokio::try_join!(
                state.storage.put("originals", original.clone()),
                state.storage.put("thumbs", thumb.clone())
            )?,
        };
        stored.push(Stored {
            content_hash,
            thumb_hash,
            content_type,
            size,
            width,
            height,
            nsfw,
            bytes: original,
            thumb,
            kind,
            vertex_count,
        });
    }
    let count = stored.len();
    let (done, outcome) = oneshot::channel();
    runner
        .commits
        .send(Finished {
            row: row.clone(),
            stored,
            done,
        })
        .map_err(|_| anyhow::anyhow!("the commit loop has stopped"))?;
    if outcome.await?? {
        tracing::info!(generation.id = %row.id, images = count, "job succeeded");
    } else {
        tracing::info!(generation.id = %row.id, "job finished after it was canceled or reclaimed; outputs discarded");
    }
    Ok(())
}

/// How many group commits may run at once: while one waits on the database, the next batch
/// gathers and goes, so the jobs' outputs never queue behind a single transaction.
const COMMITS_AT_ONCE: usize = 2;

/// Commits the jobs whose outputs are stored, as many as are waiting, in one transaction each time
/// (a group commit), up to [`COMMITS_AT_ONCE`] transactions at a time. Two commits never deadlock:
/// their jobs differ, and the rows and locks they share (owners' counters, files) are taken in
/// sorted order.
async fn commit_loop(runner: Arc<Runner>, mut queue: mpsc::UnboundedReceiver<Finished>) {
    let lanes = Arc::new(Semaphore::new(COMMITS_AT_ONCE));
    loop {
        let Ok(lane) = Arc::clone(&lanes).acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(BATCH);
        if queue.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        tokio::spawn(commit_batch(Arc::clone(&runner), batch, lane));
    }
}

/// Commits one batch and tells each job how it went. If the batch fails, its jobs commit one by
/// one, so only the one at fault retries.
async fn commit_batch(runner: Arc<Runner>, mut batch: Vec<Finished>, _lane: OwnedSemaphorePermit) {
    match commit(&runner, &batch).await {
        Ok(succeeded) => {
            observe_succeeded(&runner, &batch, &succeeded);
            for job in batch.drain(..) {
                let _ = job.done.send(Ok(succeeded.contains(&job.row.id)));
            }
        }
        Err(e) if batch.len() == 1 => {
            if let Some(job) = batch.pop() {
                let _ = job.done.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = batch.len(), "a batch commit failed; committing its jobs one by one");
            for job in batch.drain(..) {
                let one = std::slice::from_ref(&job);
                let committed = commit(&runner, one).await.map(|succeeded| {
                    observe_succeeded(&runner, one, &succeeded);
                    succeeded.contains(&job.row.id)
                });
                let _ = job.done.send(committed);
            }
        }
    }
}

/// Counts the jobs of `batch` that a commit marked succeeded.
fn observe_succeeded(runner: &Runner, batch: &[Finished], succeeded: &[GenerationId]) {
    let now = Utc::now();
    for job in batch.iter().filter(|job| succeeded.contains(&job.row.id)) {
        let row = &job.row;
        runner
            .state
            .metrics
            .observe_finished(&row.model, "succeeded", None, now - row.created_at);
    }
}

/// In one transaction: marks the jobs still this process's succeeded, makes sure their files are
/// there, and records their images. Returns the jobs it marked.
async fn commit(runner: &Runner, batch: &[Finished]) -> anyhow::Result<Vec<GenerationId>> {
    let state = runner.state.as_ref();
    let ids: Vec<GenerationId> = batch.iter().map(|job| job.row.id).collect();
    // The batch's files were staged unsynced: on disk before any row points to them.
    state.storage.flush().await?;
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        let succeeded = store::finish_success(conn, &ids, &runner.name).await?;
        let kept: Vec<&Finished> = batch
            .iter()
            .filter(|job| succeeded.contains(&job.row.id))
            .collect();
        if kept.is_empty() {
            return Ok(succeeded);
        }
        // Content-addressed files are shared: the sweep may have removed one of these for a deleted
        // image a moment ago. Under the files' locks, make sure they are there.
        let files: Vec<(&str, &String, &Vec<u8>)> = kept
            .iter()
            .flat_map(|job| job.stored.iter())
            .flat_map(|item| {
                [
                    ("originals", &item.content_hash, &item.bytes),
                    ("thumbs", &item.thumb_hash, &item.thumb),
                ]
            })
            .collect();
        let hashes: Vec<&str> = files.iter().map(|(_, hash, _)| hash.as_str()).collect();
        crate::gallery::store::lock_files(conn, &hashes).await?;
        futures_util::future::try_join_all(files.iter().map(|(kind, hash, bytes)| async move {
            if !state.storage.exists(kind, hash).await? {
                state.storage.put(kind, (*bytes).clone()).await?;
            }
            anyhow::Ok(())
        }))
        .await?;
        let mut images = Vec::new();
        for job in &kept {
            let row = &job.row;
            for (index, item) in job.stored.iter().enumerate() {
                images.push(NewImage {
                    id: ImageId::new(),
                    user_id: row.user_id,
                    generation_id: row.id,
                    output_index: i32::try_from(index)?,
                    model: &row.model,
                    prompt: &row.prompt,
                    width: i32::try_from(item.width)?,
                    height: i32::try_from(item.height)?,
                    seed: row.seed + i64::try_from(index)?,
                    visibility: &row.visibility,
                    content_hash: &item.content_hash,
                    thumb_hash: &item.thumb_hash,
                    content_type: item.content_type,
                    byte_size: i64::try_from(item.size)?,
                    nsfw: item.nsfw,
                    kind: item.kind,
                    vertex_count: item.vertex_count,
                });
            }
        }
        store::insert_images(conn, &images).await?;
        for job in &kept {
            refund_missing_outputs(conn, job).await?;
        }
        Ok(succeeded)
    })
    .await
}

/// A model may make fewer images than asked (a safety checker drops some): the images not made
/// are refunded with the success, in its transaction. (The owner's balance row is already locked
/// by the success's in-flight count, so this takes no new lock out of order.)
async fn refund_missing_outputs(
    conn: &mut diesel_async::AsyncPgConnection,
    job: &Finished,
) -> anyhow::Result<()> {
    let row = &job.row;
    let made = i64::try_from(job.stored.len())?;
    let asked = i64::from(row.num_outputs);
    let (Some(reservation), true) = (row.reservation_id, made < asked && asked > 0) else {
        return Ok(());
    };
    let amount = row.credits_charged / asked * (asked - made);
    let refunded = crate::credits::service::refund_part(conn, reservation, amount)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(entry) = refunded {
        store::set_refunded(conn, row.id, entry.free_delta + entry.purchased_delta).await?;
        tracing::info!(generation.id = %row.id, asked, made, credits = amount, "fewer images than asked; the rest refunded");
    }
    Ok(())
}

async fn fail(state: &AppState, row: &GenerationRow, code: &str, message: &str, retryable: bool) {
    let result = match state.pool.get().await {
        Ok(mut conn) => end_with_refund(
            &state.metrics,
            &mut conn,
            row.id,
            Status::Failed,
            Some((code, message, retryable)),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}")),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    // If this fails the watchdog will end the job at its deadline; nothing is left unrefunded.
    if let Err(e) = result {
        tracing::error!(generation.id = %row.id, error = %e, "could not record the failure");
    }
}

/// A transient failure: back to the queue with exponential backoff, or failed once attempts run out.
async fn retry_or_fail(state: &AppState, row: &GenerationRow, code: &str, message: &str) {
    if row.attempts >= state.config.generation.max_attempts {
        fail(state, row, code, message, true).await;
        return;
    }
    let backoff = Duration::from_secs(1 << row.attempts.clamp(0, 6));
    let run_after =
        Utc::now() + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::seconds(1));
    let requeued = match state.pool.get().await {
        Ok(mut conn) => store::requeue(&mut conn, row.id, run_after)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    // If this fails the job stays claimed without heartbeats, and the watchdog requeues it.
    match requeued {
        Ok(0) => {}
        Ok(_) => {
            state.metrics.observe_requeue("transient");
            tracing::warn!(generation.id = %row.id, code, attempt = row.attempts, "transient failure; retrying");
        }
        Err(e) => tracing::error!(generation.id = %row.id, error = %e, "could not requeue"),
    }
}

/// The provider has no room for the job now: back to the queue for a moment, the attempt not
/// counted. It waits as long as that lasts, up to its deadline (then the watchdog fails it with a
/// refund). The jitter spreads out jobs that met a full provider together.
async fn wait_for_room(runner: &Runner, row: &GenerationRow, message: &str) {
    let state = runner.state.as_ref();
    let wait = BUSY_RETRY + Duration::from_millis(rand::random_range(0..1000));
    let run_after =
        Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(2));
    let requeued = match state.pool.get().await {
        Ok(mut conn) => store::release(&mut conn, &[row.id], &runner.name, run_after)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    match requeued {
        Ok(ids) if !ids.is_empty() => {
            state.metrics.observe_requeue("busy");
            tracing::info!(generation.id = %row.id, message, "the provider is busy; the job waits");
        }
        Ok(_) => {}
        // It stays claimed without heartbeats, and the watchdog requeues it.
        Err(e) => tracing::error!(generation.id = %row.id, error = %e, "could not requeue"),
    }
}

/// How long refunds wait after Stripe failed to take one, rather than ask every tick.
const REFUND_RETRY: Duration = Duration::from_secs(60);

async fn watchdog(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.generation.watchdog_interval);
    let mut refunds_after = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if tokio::time::Instant::now() >= refunds_after {
            match crate::billing::service::refund_closed_accounts(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purchases = n, "refunds asked for deleted accounts"),
                Err(e) => {
                    tracing::warn!(error = %e, "refunding a deleted account's payment failed; retrying in a minute");
                    refunds_after = tokio::time::Instant::now() + REFUND_RETRY;
                }
            }
        }
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "watchdog sweep failed");
        }
        match crate::gallery::service::sweep_files(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(images = n, "files of deleted images removed"),
            Err(e) => tracing::warn!(error = %e, "file sweep failed"),
        }
        match crate::identity::deletion::erase_pending(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(accounts = n, "deleted accounts erased"),
            Err(e) => tracing::warn!(error = %e, "erasing deleted accounts failed"),
        }
        match crate::identity::activity::purge(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "old security events purged"),
            Err(e) => tracing::warn!(error = %e, "security event purge failed"),
        }
        match crate::inputs::service::purge(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "unused uploads purged"),
            Err(e) => tracing::warn!(error = %e, "upload purge failed"),
        }
    }
}

/// Why a job missed its deadline, in words its owner can act on: it never reached a worker (the
/// service is short of workers), it waited for a busy model, or it ran too long.
fn late(status: &str, started: bool) -> &'static str {
    match (status, started) {
        ("queued", false) => "no worker took the generation up in time; try again later",
        ("queued", true) => {
            "the generation was waiting to run again (the model was busy, or a try failed) when \
             its time ran out; try again later"
        }
        _ => "the generation did not finish in time",
    }
}

/// One watchdog pass: overdue jobs fail with a refund; jobs of silent workers go back to the queue
/// (or fail once their attempts are spent).
pub async fn sweep(state: &AppState) -> anyhow::Result<()> {
    let mut conn = state.pool.get().await?;
    for (id, status, started) in store::overdue(&mut conn).await? {
        end_with_refund(
            &state.metrics,
            &mut conn,
            id,
            Status::Failed,
            Some(("deadline_exceeded", late(&status, started), true)),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let silent_since =
        Utc::now() - chrono::Duration::from_std(state.config.generation.heartbeat_timeout)?;
    for (id, attempts) in store::stale(&mut conn, silent_since).await? {
        if attempts >= state.config.generation.max_attempts {
            end_with_refund(
                &state.metrics,
                &mut conn,
                id,
                Status::Failed,
                Some(("worker_lost", "the worker running it stopped", true)),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        } else if store::requeue(&mut conn, id, Utc::now()).await? > 0 {
            state.metrics.observe_requeue("worker_lost");
            tracing::warn!(generation.id = %id, "worker stopped heartbeating; job requeued");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(bytes: Vec<u8>) -> Output {
        Output {
            bytes,
            content_type: String::new(),
            nsfw: false,
            preview: None,
            decoded: None,
        }
    }

    #[test]
    fn outputs_must_be_the_kind_the_model_promises() -> anyhow::Result<()> {
        let catalog = crate::catalog::Catalog::load(
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../config/models.toml"
            )),
            Duration::from_secs(600),
        )?;
        let image_model = catalog
            .get("easel-sketch")
            .ok_or_else(|| anyhow::anyhow!("sketch"))?;
        let mesh_model = catalog
            .get("easel-relief-3d")
            .ok_or_else(|| anyhow::anyhow!("relief"))?;
        let png = crate::providers::local::sample_png("x", 64, 64, 1)?;
        let glb = crate::model3d::relief(&image::RgbImage::new(8, 8), 4, &png).0;
        assert!(wrong_kind(image_model, &[output(png.clone())]).is_none());
        assert!(wrong_kind(mesh_model, &[output(glb.clone())]).is_none());
        assert!(wrong_kind(image_model, &[output(png.clone()), output(glb.clone())]).is_some());
        assert!(wrong_kind(mesh_model, &[output(png)]).is_some());
        assert!(wrong_kind(mesh_model, &[output(b"<html>".to_vec())]).is_some());
        Ok(())
    }
}
