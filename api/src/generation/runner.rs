//! The durable job runner. Workers (inside `easel serve`, or `easel worker`) claim due jobs with
//! `FOR UPDATE SKIP LOCKED`, run them on their provider while sending heartbeats, store the outputs
//! content-addressed, and finish the job. A watchdog fails and refunds jobs past their deadline and
//! puts back in the queue jobs whose worker stopped heartbeating (it died, or was killed).

use super::service::end_with_refund;
use super::store::{self, GenerationRow, NewImage};
use super::{ImageId, Status};
use crate::app::AppState;
use crate::catalog::Model;
use crate::providers::{Job, JobInput, Output, ProviderError, Tracker};
use crate::storage;
use chrono::Utc;
use diesel_async::AsyncConnection;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Starts `count` workers and one watchdog on the current runtime.
pub fn spawn(state: Arc<AppState>, count: usize) {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "easel".to_owned());
    for n in 0..count {
        let state = Arc::clone(&state);
        let name = format!(
            "{host}:{}:{n}:{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        tokio::spawn(async move { work(state, name).await });
    }
    tokio::spawn(watchdog(state));
}

async fn work(state: Arc<AppState>, worker: String) {
    loop {
        let claimed = match state.pool.get().await {
            Ok(mut conn) => store::claim(&mut conn, &worker)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        };
        match claimed {
            Ok(Some(job)) => run(&state, &worker, job).await,
            Ok(None) => {
                // Woken at once by a submission in this process; otherwise poll for other processes' jobs.
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), state.jobs_waiting.notified())
                        .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not claim a job");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn job_of(row: &GenerationRow, model: &Model, input: Option<JobInput>) -> Job {
    Job {
        input,
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
pub async fn run(state: &AppState, worker: &str, row: GenerationRow) {
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
    let job = job_of(&row, &model, input);
    let (progress_tx, progress_rx) = watch::channel(0_u8);
    let tracker = RowTracker {
        state,
        id,
        progress: progress_tx,
    };
    let outcome = tokio::select! {
        result = provider.run(&job, &tracker) => Some(result),
        () = heartbeats(state, id, worker, progress_rx) => None,
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
            if let Err(e) = complete(state, worker, &row, outputs).await {
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

/// Reports progress and liveness every half second; returns when the job is no longer ours.
async fn heartbeats(
    state: &AppState,
    id: super::GenerationId,
    worker: &str,
    progress: watch::Receiver<u8>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let percent = i16::from(*progress.borrow());
        let still_ours = match state.pool.get().await {
            Ok(mut conn) => store::heartbeat(&mut conn, id, worker, percent)
                .await
                .unwrap_or(true),
            Err(_) => true,
        };
        if !still_ours {
            return;
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

/// Stores each output (original and thumbnail, content-addressed) the moment it arrives, then in one
/// transaction records the images and marks the job succeeded.
async fn complete(
    state: &AppState,
    worker: &str,
    row: &GenerationRow,
    outputs: Vec<Output>,
) -> anyhow::Result<()> {
    let mut stored = Vec::with_capacity(outputs.len());
    for output in outputs {
        let content_type = storage::sniff(&output.bytes)
            .ok_or_else(|| anyhow::anyhow!("output is not an image or a model"))?;
        let size = output.bytes.len();
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
        let thumb = {
            let bytes = preview.clone();
            tokio::task::spawn_blocking(move || storage::thumbnail(&bytes, 384)).await??
        };
        let (width, height) = image::ImageReader::new(std::io::Cursor::new(&preview))
            .with_guessed_format()?
            .into_dimensions()?;
        let content_hash = state.storage.put("originals", output.bytes.clone()).await?;
        let thumb_hash = state.storage.put("thumbs", thumb.clone()).await?;
        stored.push(Stored {
            content_hash,
            thumb_hash,
            content_type,
            size,
            width,
            height,
            nsfw: output.nsfw,
            bytes: output.bytes,
            thumb,
            kind,
            vertex_count,
        });
    }
    let mut conn = state.pool.get().await?;
    let finished = conn
        .transaction::<_, anyhow::Error, _>(async |conn| {
            if !store::finish_success(conn, row.id, worker).await? {
                return Ok(false);
            }
            // Content-addressed files are shared: the sweep may have removed one of these for a
            // deleted image a moment ago. Under the files' locks, make sure they are there.
            let hashes: Vec<&str> = stored
                .iter()
                .flat_map(|item| [item.content_hash.as_str(), item.thumb_hash.as_str()])
                .collect();
            crate::gallery::store::lock_files(conn, &hashes).await?;
            for (index, item) in stored.iter().enumerate() {
                for (kind, hash, bytes) in [
                    ("originals", &item.content_hash, &item.bytes),
                    ("thumbs", &item.thumb_hash, &item.thumb),
                ] {
                    if !state.storage.exists(kind, hash).await? {
                        state.storage.put(kind, bytes.clone()).await?;
                    }
                }
                let new = NewImage {
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
                };
                store::insert_image(conn, &new).await?;
            }
            Ok(true)
        })
        .await?;
    if finished {
        tracing::info!(generation.id = %row.id, images = stored.len(), "job succeeded");
    } else {
        tracing::info!(generation.id = %row.id, "job finished after it was canceled or reclaimed; outputs discarded");
    }
    Ok(())
}

async fn fail(state: &AppState, row: &GenerationRow, code: &str, message: &str, retryable: bool) {
    let result = match state.pool.get().await {
        Ok(mut conn) => end_with_refund(
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
    if let Ok(mut conn) = state.pool.get().await
        && let Err(e) = store::requeue(&mut conn, row.id, run_after).await
    {
        tracing::error!(generation.id = %row.id, error = %e, "could not requeue");
    }
    tracing::warn!(generation.id = %row.id, code, attempt = row.attempts, "transient failure; retrying");
}

async fn watchdog(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.generation.watchdog_interval);
    loop {
        tick.tick().await;
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "watchdog sweep failed");
        }
        match crate::gallery::service::sweep_files(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(images = n, "files of deleted images removed"),
            Err(e) => tracing::warn!(error = %e, "file sweep failed"),
        }
        match crate::inputs::service::purge(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "unused uploads purged"),
            Err(e) => tracing::warn!(error = %e, "upload purge failed"),
        }
    }
}

/// One watchdog pass: overdue jobs fail with a refund; jobs of silent workers go back to the queue
/// (or fail once their attempts are spent).
pub async fn sweep(state: &AppState) -> anyhow::Result<()> {
    let mut conn = state.pool.get().await?;
    for id in store::overdue(&mut conn).await? {
        end_with_refund(
            &mut conn,
            id,
            Status::Failed,
            Some((
                "deadline_exceeded",
                "the generation did not finish in time",
                true,
            )),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let silent_since =
        Utc::now() - chrono::Duration::from_std(state.config.generation.heartbeat_timeout)?;
    for (id, attempts) in store::stale(&mut conn, silent_since).await? {
        if attempts >= state.config.generation.max_attempts {
            end_with_refund(
                &mut conn,
                id,
                Status::Failed,
                Some(("worker_lost", "the worker running it stopped", true)),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        } else {
            store::requeue(&mut conn, id, Utc::now()).await?;
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
        }
    }

    #[test]
    fn outputs_must_be_the_kind_the_model_promises() -> anyhow::Result<()> {
        let catalog = crate::catalog::Catalog::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/models.toml"
        )))?;
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
