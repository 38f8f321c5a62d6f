//! Model providers behind one trait: `local` renders in-process and needs no network; `replicate`
//! calls Replicate's API; `cog` calls a self-hosted Cog server. Remote providers learn of progress by
//! webhook (stored on the job by whichever process receives it) and, where the provider allows, by
//! polling when no webhook comes.

pub mod cog;
pub mod local;
pub mod remote;
pub mod replicate;
pub mod routes;

use crate::catalog::RemoteOptions;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

/// What a provider is asked to make.
#[derive(Debug, Clone)]
pub struct Job {
    /// The generation's id; Cog uses it as the prediction id, so a resubmission is idempotent.
    pub id: uuid::Uuid,
    pub provider_model: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub aspect_ratio: String,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    pub style: Option<String>,
    /// Denoising steps and guidance, when asked for (the model's defaults otherwise).
    pub steps: Option<u32>,
    pub guidance: Option<f64>,
    pub num_outputs: u32,
    pub remote: RemoteOptions,
    /// The remote prediction an earlier attempt started: a resumed job follows it instead of
    /// starting (and paying for) another.
    pub provider_ref: Option<String>,
    pub webhook_token: Option<String>,
    /// The input image, for models that take one.
    pub input: Option<JobInput>,
}

/// A job's input image: its bytes for providers that run here or take a data URI, and a signed
/// link that works for a short while for providers that fetch it.
#[derive(Debug, Clone)]
pub struct JobInput {
    pub bytes: std::sync::Arc<Vec<u8>>,
    pub content_type: String,
    pub url: String,
}

impl JobInput {
    pub fn data_uri(&self) -> String {
        use base64::Engine;
        format!(
            "data:{};base64,{}",
            self.content_type,
            base64::engine::general_purpose::STANDARD.encode(self.bytes.as_slice())
        )
    }
}

/// One finished output, already downloaded (or rendered) into memory.
#[derive(Debug, Clone)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub nsfw: bool,
    /// For a 3D model: a preview image the provider made (else one is rendered from the mesh).
    pub preview: Option<Vec<u8>>,
    /// For an image the provider made in-process: its pixels, exactly what `bytes` decode to, so
    /// the thumbnail is made without decoding `bytes` again.
    pub decoded: Option<image::DynamicImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Retrying will not help (the model rejected the input, or failed on it).
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
    /// Worth retrying with backoff (timeouts, 5xx).
    #[error("{code}: {message}")]
    Transient { code: String, message: String },
    /// The provider has no room for it now (a Cog server runs one prediction at a time; a rate
    /// limit): the job waits in the queue without spending an attempt, until its deadline.
    #[error("provider_busy: {message}")]
    Busy { message: String },
}

impl ProviderError {
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self::Permanent {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn transient(code: &str, message: impl Into<String>) -> Self {
        Self::Transient {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The job's side of a run: progress, the remote prediction's id, and what webhooks delivered.
pub trait Tracker: Send + Sync {
    fn progress(&self, percent: u8);
    /// Records the remote prediction (and Cog's webhook token) before anything can be delivered for it.
    fn remember<'a>(
        &'a self,
        provider_ref: &'a str,
        webhook_token: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// The newest prediction state a webhook delivered, with its rank (see `remote::rank`).
    fn delivered(&self) -> BoxFuture<'_, anyhow::Result<Option<(i16, serde_json::Value)>>>;
}

pub trait Provider: Send + Sync {
    /// Runs `job` to completion, reporting through `tracker` as it goes.
    fn run<'a>(
        &'a self,
        job: &'a Job,
        tracker: &'a dyn Tracker,
    ) -> BoxFuture<'a, Result<Vec<Output>, ProviderError>>;

    /// Stops the job's remote prediction, where the provider can.
    fn cancel<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The configured providers by name, as the catalog's `provider` field names them.
#[derive(Clone)]
pub struct Providers {
    by_name: HashMap<String, Arc<dyn Provider>>,
    pub replicate: Arc<replicate::Replicate>,
}

impl Providers {
    pub fn new(config: &crate::config::Config, storage: &crate::storage::Storage) -> Self {
        let fetcher = remote::Fetcher::new(config, storage.clone());
        let replicate = Arc::new(replicate::Replicate::new(config, fetcher.clone()));
        let mut by_name: HashMap<String, Arc<dyn Provider>> = HashMap::new();
        by_name.insert(
            "local".to_owned(),
            Arc::new(local::Local {
                render_time: config.generation.local_render_time,
            }),
        );
        by_name.insert("replicate".to_owned(), replicate.clone());
        by_name.insert("cog".to_owned(), Arc::new(cog::Cog::new(config, fetcher)));
        Self { by_name, replicate }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }
}
