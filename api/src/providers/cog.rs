//! A self-hosted Cog server (the runtime Replicate itself uses), by base URL per model. Cog has no
//! way to read a prediction back: its state comes by webhook to `/webhooks/cog/{token}`, where the
//! unguessable per-job token is the authentication (Cog does not sign webhooks).

use super::remote::{self, Fetcher, Prediction};
use super::{Job, Output, Provider, ProviderError, Tracker};
use crate::config::Config;
use futures_util::future::BoxFuture;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

pub struct Cog {
    http: reqwest::Client,
    public_url: String,
    poll_interval: Duration,
    fetcher: Fetcher,
}

#[derive(Deserialize)]
struct Health {
    status: String,
}

/// Cog names predictions by the id we give it: the generation's.
fn prediction_id(job: &Job) -> String {
    job.id.simple().to_string()
}

impl Cog {
    pub fn new(config: &Config, fetcher: Fetcher) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            public_url: config.public_url.clone(),
            poll_interval: config.providers.poll_interval,
            fetcher,
        }
    }

    fn base<'a>(&self, job: &'a Job) -> &'a str {
        job.provider_model.trim_end_matches('/')
    }
}

impl Provider for Cog {
    fn run<'a>(
        &'a self,
        job: &'a Job,
        tracker: &'a dyn Tracker,
    ) -> BoxFuture<'a, Result<Vec<Output>, ProviderError>> {
        Box::pin(async move {
            // A resumed job whose end was already delivered needs nothing more from the server.
            if let Ok(Some((rank, state))) = tracker.delivered().await
                && rank >= remote::TERMINAL
                && let Ok(done) = serde_json::from_value::<Prediction>(state)
            {
                return self.fetcher.outcome(&done).await;
            }
            let base = self.base(job);
            let health: Health =
                remote::read(self.http.get(format!("{base}/health-check")).send().await).await?;
            if !matches!(health.status.as_str(), "READY" | "BUSY") {
                return Err(ProviderError::transient(
                    "provider_unavailable",
                    format!("the Cog server is not ready ({})", health.status),
                ));
            }
            let token = match &job.webhook_token {
                Some(token) => token.clone(),
                None => {
                    let mut bytes = [0_u8; 32];
                    rand::rng().fill_bytes(&mut bytes);
                    hex::encode(bytes)
                }
            };
            let id = prediction_id(job);
            tracker.remember(&id, Some(&token)).await.map_err(|e| {
                ProviderError::transient(
                    "storage_failed",
                    format!("could not record the prediction: {e}"),
                )
            })?;
            // PUT with our id is idempotent: a resubmission while it runs returns the same prediction.
            let started: Prediction = remote::read(
                self.http
                    .put(format!("{base}/predictions/{id}"))
                    .header("Prefer", "respond-async")
                    .json(&json!({
                        "id": id,
                        "input": remote::input(job, remote::ImageAs::DataUri),
                        "webhook": format!("{}/webhooks/cog/{token}", self.public_url),
                        "webhook_events_filter": ["start", "output", "logs", "completed"],
                    }))
                    .send()
                    .await,
            )
            .await?;
            let done = remote::follow(job, tracker, started, self.poll_interval, None).await;
            self.fetcher.outcome(&done).await
        })
    }

    fn cancel<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let response = self
                .http
                .post(format!(
                    "{}/predictions/{}/cancel",
                    self.base(job),
                    prediction_id(job)
                ))
                .send()
                .await
                .map_err(|e| remote::send_error(&e))?;
            // 404: it already ended (or never started); nothing to stop.
            if response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND
            {
                return Ok(());
            }
            let status = response.status();
            Err(remote::http_error(
                status,
                &response.text().await.unwrap_or_default(),
            ))
        })
    }
}
