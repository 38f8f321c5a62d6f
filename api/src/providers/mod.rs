//! Model providers behind one trait. `local` renders in-process and needs no network; `replicate`
//! and `cog` arrive with their own issue.

pub mod local;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

/// What a provider is asked to make.
#[derive(Debug, Clone)]
pub struct Job {
    pub provider_model: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    pub style: Option<String>,
    pub num_outputs: u32,
}

/// One finished output, already downloaded (or rendered) into memory.
#[derive(Debug, Clone)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub nsfw: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Retrying will not help (the model rejected the input, or failed on it).
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
    /// Worth retrying with backoff (timeouts, 5xx, the provider is busy).
    #[error("{code}: {message}")]
    Transient { code: String, message: String },
}

pub trait Provider: Send + Sync {
    /// Runs `job` to completion, reporting progress (0–100) on `progress` as it goes.
    fn run<'a>(
        &'a self,
        job: &'a Job,
        progress: &'a watch::Sender<u8>,
    ) -> BoxFuture<'a, Result<Vec<Output>, ProviderError>>;
}

/// The configured providers by name, as the catalog's `provider` field names them.
#[derive(Clone, Default)]
pub struct Providers(std::collections::HashMap<String, std::sync::Arc<dyn Provider>>);

impl Providers {
    pub fn new(config: &crate::config::Config) -> Self {
        let mut map: std::collections::HashMap<String, std::sync::Arc<dyn Provider>> =
            std::collections::HashMap::new();
        map.insert(
            "local".to_owned(),
            std::sync::Arc::new(local::Local {
                render_time: config.generation.local_render_time,
            }),
        );
        Self(map)
    }

    pub fn get(&self, name: &str) -> Option<&std::sync::Arc<dyn Provider>> {
        self.0.get(name)
    }
}
