//! Replicate: predictions for official models (`owner/name`) or versions, with webhooks to
//! `/webhooks/replicate` and polling as the fallback when none arrives in time.

use super::remote::{self, Fetcher, Prediction};
use super::{Job, Output, Provider, ProviderError, Tracker};
use crate::config::{Config, Secret};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::OnceCell;

pub struct Replicate {
    http: reqwest::Client,
    base: String,
    token: Option<Secret>,
    /// Where Replicate should deliver webhooks; None asks for none (polling only).
    webhook_url: Option<String>,
    poll_interval: Duration,
    fetcher: Fetcher,
    /// The webhook signing secret: from config, or fetched from Replicate once and kept.
    secret: OnceCell<Secret>,
}

#[derive(Deserialize)]
struct SecretAnswer {
    key: String,
}

impl Replicate {
    pub fn new(config: &Config, fetcher: Fetcher) -> Self {
        let secret = OnceCell::new();
        if let Some(configured) = &config.providers.replicate_webhook_secret {
            let _ = secret.set(configured.clone());
        }
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            base: config.providers.replicate_api_base.clone(),
            token: config.providers.replicate_api_token.clone(),
            webhook_url: config
                .providers
                .replicate_webhooks
                .then(|| format!("{}/webhooks/replicate", config.public_url)),
            poll_interval: config.providers.poll_interval,
            fetcher,
            secret,
        }
    }

    pub fn configured(&self) -> bool {
        self.token.is_some()
    }

    fn token(&self) -> Result<&str, ProviderError> {
        self.token.as_ref().map(Secret::expose).ok_or_else(|| {
            ProviderError::permanent(
                "provider_unavailable",
                "Replicate is not configured (EASEL_REPLICATE_API_TOKEN)",
            )
        })
    }

    /// The secret Replicate signs webhooks with.
    pub async fn webhook_secret(&self) -> Result<&Secret, ProviderError> {
        self.secret
            .get_or_try_init(async || {
                let answer: SecretAnswer = remote::read(
                    self.http
                        .get(format!("{}/v1/webhooks/default/secret", self.base))
                        .bearer_auth(self.token()?)
                        .send()
                        .await,
                )
                .await?;
                Ok(Secret::new(answer.key))
            })
            .await
    }

    async fn create(&self, job: &Job) -> Result<Prediction, ProviderError> {
        let mut body = json!({ "input": remote::input(job, remote::ImageAs::Link) });
        if let Some(url) = &self.webhook_url {
            body["webhook"] = json!(format!("{url}?generation={}", job.id));
            body["webhook_events_filter"] = json!(["start", "output", "logs", "completed"]);
        }
        let reference = job.provider_model.as_str();
        let url = match reference.split_once(':') {
            Some((_, version)) => {
                body["version"] = json!(version);
                format!("{}/v1/predictions", self.base)
            }
            None if !reference.contains('/') => {
                body["version"] = json!(reference);
                format!("{}/v1/predictions", self.base)
            }
            None => format!("{}/v1/models/{reference}/predictions", self.base),
        };
        let mut request = self.http.post(url).bearer_auth(self.token()?).json(&body);
        if let Some(wait) = job.remote.prefer_wait {
            request = request.header("Prefer", format!("wait={wait}"));
        }
        remote::read(request.send().await).await
    }

    async fn get(&self, id: &str) -> Result<Prediction, ProviderError> {
        remote::read(
            self.http
                .get(format!("{}/v1/predictions/{id}", self.base))
                .bearer_auth(self.token()?)
                .send()
                .await,
        )
        .await
    }
}

impl Provider for Replicate {
    fn run<'a>(
        &'a self,
        job: &'a Job,
        tracker: &'a dyn Tracker,
    ) -> BoxFuture<'a, Result<Vec<Output>, ProviderError>> {
        Box::pin(async move {
            let prediction = match &job.provider_ref {
                // An earlier attempt started it: follow that one rather than paying for another.
                Some(id) => self.get(id).await?,
                None => {
                    let created = self.create(job).await?;
                    tracker.remember(&created.id, None).await.map_err(|e| {
                        ProviderError::transient(
                            "storage_failed",
                            format!("could not record the prediction: {e}"),
                        )
                    })?;
                    created
                }
            };
            let id = prediction.id.clone();
            let poll =
                || -> BoxFuture<'_, Result<Prediction, ProviderError>> { Box::pin(self.get(&id)) };
            let done =
                remote::follow(job, tracker, prediction, self.poll_interval, Some(&poll)).await;
            self.fetcher.outcome(&done).await
        })
    }

    fn cancel<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let Some(id) = &job.provider_ref else {
                return Ok(());
            };
            let _: Value = remote::read(
                self.http
                    .post(format!("{}/v1/predictions/{id}/cancel", self.base))
                    .bearer_auth(self.token()?)
                    .send()
                    .await,
            )
            .await?;
            Ok(())
        })
    }
}
