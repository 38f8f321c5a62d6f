//! What Replicate and Cog share: the prediction shape, how a prediction's state is ranked so no
//! delivery moves a job backwards, progress read from logs, outputs fetched into memory (data URIs,
//! files a Cog server uploaded to us, or URLs through the guarded downloader), and the wait loop.

use super::{Job, Output, ProviderError, Tracker};
use crate::catalog::SizeInput;
use crate::storage::{self, Storage, download};
use base64::Engine;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// A prediction as Replicate and Cog both describe it (fields we do not use are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub error: Value,
    #[serde(default)]
    pub logs: Option<String>,
}

pub const TERMINAL: i16 = 3;

/// Orders states so that a late or repeated delivery never undoes a newer one. Unknown statuses
/// (a provider may add some) count as just started: logged, waited on, bounded by the deadline.
pub fn rank(status: &str) -> i16 {
    match status {
        "starting" => 1,
        "processing" => 2,
        "succeeded" | "failed" | "canceled" | "aborted" => TERMINAL,
        other => {
            tracing::warn!(
                status = other,
                "unknown prediction status; treated as running"
            );
            1
        }
    }
}

static PERCENT: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"(\d{1,3})%\|").ok());
static STEPS: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"(?i)(?:step\s+)?(\d+)\s*/\s*(\d+)").ok());

/// The newest progress a model printed: a tqdm bar (`45%|`) or `step 3/20` (`3/20`). Capped below
/// 100: the job is done when its outputs are stored, not when the model says so.
pub fn progress_from_logs(logs: &str) -> Option<u8> {
    for line in logs.lines().rev() {
        // tqdm redraws with carriage returns: the last segment is the newest.
        let line = line.rsplit('\r').next().unwrap_or(line);
        if let Some(caps) = PERCENT.as_ref().and_then(|re| re.captures(line))
            && let Ok(percent) = caps[1].parse::<u32>()
            && percent <= 100
        {
            return Some(percent.min(95) as u8);
        }
        if let Some(caps) = STEPS.as_ref().and_then(|re| re.captures(line))
            && let (Ok(done), Ok(total)) = (caps[1].parse::<u32>(), caps[2].parse::<u32>())
            && total > 0
            && done <= total
        {
            return Some((done * 95 / total) as u8);
        }
    }
    None
}

/// How an input image travels to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageAs {
    /// A short-lived signed link to our endpoint (Replicate fetches it).
    Link,
    /// The bytes inline (a self-hosted Cog server may not reach us).
    DataUri,
}

/// The inputs a model gets: the catalog's fixed ones, then ours.
pub fn input(job: &Job, image_as: ImageAs) -> Value {
    let mut input = job.remote.extra_input.clone();
    input.insert("prompt".to_owned(), json!(job.prompt));
    if let Some(negative) = &job.negative_prompt {
        input.insert("negative_prompt".to_owned(), json!(negative));
    }
    if let Some(style) = &job.style {
        input.insert("style".to_owned(), json!(style));
    }
    if let Some(steps) = job.steps {
        input.insert(job.remote.steps_input_name.clone(), json!(steps));
    }
    if let Some(guidance) = job.guidance {
        input.insert(job.remote.guidance_input_name.clone(), json!(guidance));
    }
    input.insert("seed".to_owned(), json!(job.seed));
    input.insert("num_outputs".to_owned(), json!(job.num_outputs));
    match job.remote.size_input {
        SizeInput::WidthHeight => {
            input.insert("width".to_owned(), json!(job.width));
            input.insert("height".to_owned(), json!(job.height));
        }
        SizeInput::AspectRatio => {
            input.insert("aspect_ratio".to_owned(), json!(job.aspect_ratio));
        }
    }
    if let Some(image) = &job.input {
        let value = match image_as {
            ImageAs::Link => image.url.clone(),
            ImageAs::DataUri => image.data_uri(),
        };
        // A name ending in [] takes a list (TRELLIS's `images[]`).
        let name = &job.remote.image_input_name;
        match name.strip_suffix("[]") {
            Some(list) => input.insert(list.to_owned(), json!([value])),
            None => input.insert(name.clone(), json!(value)),
        };
    }
    Value::Object(input)
}

/// How a provider's HTTP failure counts: network trouble, 429 and 5xx are worth retrying; 409 is
/// Cog's "at capacity"; any other 4xx means it refused the input.
pub fn http_error(status: reqwest::StatusCode, body: &str) -> ProviderError {
    let detail: String = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            ["detail", "error", "title"]
                .iter()
                .find_map(|k| v[*k].as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    if status.is_server_error() {
        ProviderError::transient(
            "provider_unavailable",
            format!("the provider answered {status}: {detail}"),
        )
    } else if status == reqwest::StatusCode::CONFLICT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        ProviderError::Busy {
            message: format!("the provider is at capacity ({status}): {detail}"),
        }
    } else {
        ProviderError::permanent(
            "provider_rejected",
            format!("the provider refused the request ({status}): {detail}"),
        )
    }
}

pub fn send_error(error: &reqwest::Error) -> ProviderError {
    if error.is_timeout() {
        ProviderError::transient("timeout", "the provider did not answer in time")
    } else {
        ProviderError::transient(
            "provider_unavailable",
            format!("the provider could not be reached: {error}"),
        )
    }
}

/// Reads a JSON answer, mapping failures the way `http_error` says.
pub async fn read<T: serde::de::DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ProviderError> {
    let response = response.map_err(|e| send_error(&e))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| send_error(&e))?;
    if !status.is_success() {
        return Err(http_error(status, &body));
    }
    serde_json::from_str(&body).map_err(|e| {
        ProviderError::transient(
            "provider_unavailable",
            format!("the provider's answer could not be read: {e}"),
        )
    })
}

/// Fetches outputs into memory under the download policy.
#[derive(Clone)]
pub struct Fetcher {
    policy: download::Policy,
    storage: Storage,
    /// Outputs a Cog server uploaded to us come back as URLs under this prefix.
    upload_prefix: String,
}

impl Fetcher {
    pub fn new(config: &crate::config::Config, storage: Storage) -> Self {
        Self {
            policy: download::Policy::from_config(&config.providers),
            storage,
            upload_prefix: upload_prefix(&config.public_url),
        }
    }

    pub async fn fetch(&self, url: &str) -> Result<Output, ProviderError> {
        let bytes = if let Some(data) = url.strip_prefix("data:") {
            let (_, encoded) = data.split_once(";base64,").ok_or_else(|| {
                ProviderError::permanent("model_failed", "an output data URI is not base64")
            })?;
            if encoded.len() / 4 * 3 > self.policy.max_bytes {
                return Err(ProviderError::permanent(
                    "model_failed",
                    "an output is larger than allowed",
                ));
            }
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| {
                    ProviderError::permanent(
                        "model_failed",
                        "an output data URI is not valid base64",
                    )
                })?
        } else if let Some(hash) = url.strip_prefix(&self.upload_prefix) {
            let hash_ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            if !hash_ok {
                return Err(ProviderError::permanent(
                    "model_failed",
                    "an uploaded output's address is malformed",
                ));
            }
            self.storage
                .get("uploads", hash)
                .await
                .map_err(|e| {
                    ProviderError::transient(
                        "storage_failed",
                        format!("an uploaded output could not be read: {e}"),
                    )
                })?
                .to_vec()
        } else {
            let (bytes, _) = download::fetch(&self.policy, url)
                .await
                .map_err(|e| match e {
                    download::DownloadError::Failed(m) => ProviderError::transient(
                        "provider_unavailable",
                        format!("an output could not be downloaded: {m}"),
                    ),
                    refused => ProviderError::permanent(
                        "output_refused",
                        format!("an output was refused: {refused}"),
                    ),
                })?;
            bytes
        };
        let content_type = storage::sniff(&bytes).ok_or_else(|| {
            ProviderError::permanent("model_failed", "an output is not an image or a 3D model")
        })?;
        Ok(Output {
            bytes,
            content_type: content_type.to_owned(),
            nsfw: false,
            preview: None,
            decoded: None,
        })
    }

    /// A terminal prediction's outputs, or the error it ended with.
    pub async fn outcome(&self, prediction: &Prediction) -> Result<Vec<Output>, ProviderError> {
        match prediction.status.as_str() {
            "succeeded" => {
                let urls = output_urls(&prediction.output);
                if urls.is_empty() {
                    return Err(ProviderError::permanent(
                        "model_failed",
                        "the model returned no image",
                    ));
                }
                let mut outputs = Vec::with_capacity(urls.len());
                for url in urls {
                    outputs.push(self.fetch(&url).await?);
                }
                nsfw_flags(&prediction.output, &mut outputs);
                self.attach_preview(&prediction.output, &mut outputs)
                    .await?;
                Ok(outputs)
            }
            "failed" => Err(ProviderError::permanent(
                "model_failed",
                prediction.error.as_str().map_or_else(
                    || "the model failed".to_owned(),
                    |e| format!("the model failed: {e}"),
                ),
            )),
            _ => Err(ProviderError::permanent(
                "canceled",
                "the prediction was canceled at the provider",
            )),
        }
    }
}

pub fn upload_prefix(public_url: &str) -> String {
    format!("{public_url}/uploads/cog/files/")
}

/// Outputs are a URL, a list of URLs, or an object whose `images` (or `output`) holds them.
pub fn output_urls(output: &Value) -> Vec<String> {
    match output {
        Value::String(url) => vec![url.clone()],
        Value::Array(items) => items.iter().flat_map(output_urls).collect(),
        // Image-to-3D models name their mesh (TRELLIS: `model_file`) beside videos we skip.
        Value::Object(map) => ["images", "output", "image", "model_file", "glb", "mesh"]
            .iter()
            .find_map(|k| map.get(*k))
            .map(output_urls)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Where an image-to-3D model gives a rendered preview beside its mesh.
const PREVIEW_KEYS: [&str; 3] = ["preview", "preview_image", "render"];

impl Fetcher {
    /// Gives a 3D output the provider's preview image, when it sent one.
    async fn attach_preview(
        &self,
        output: &Value,
        outputs: &mut [Output],
    ) -> Result<(), ProviderError> {
        let Value::Object(map) = output else {
            return Ok(());
        };
        let Some(url) = PREVIEW_KEYS.iter().find_map(|k| map.get(*k)?.as_str()) else {
            return Ok(());
        };
        let Some(model) = outputs
            .iter_mut()
            .find(|o| o.content_type == crate::model3d::CONTENT_TYPE)
        else {
            return Ok(());
        };
        let preview = self.fetch(url).await?;
        if preview.content_type.starts_with("image/") {
            model.preview = Some(preview.bytes);
        }
        Ok(())
    }
}

/// Models with a safety checker report it as `nsfw` / `has_nsfw_concepts` / `nsfw_content_detected`
/// beside their images: one flag per image, or one for all.
fn nsfw_flags(output: &Value, outputs: &mut [Output]) {
    let Value::Object(map) = output else { return };
    let Some(flags) = ["nsfw", "has_nsfw_concepts", "nsfw_content_detected"]
        .iter()
        .find_map(|k| map.get(*k))
    else {
        return;
    };
    for (index, output) in outputs.iter_mut().enumerate() {
        output.nsfw = match flags {
            Value::Bool(all) => *all,
            Value::Array(each) => each.get(index).and_then(Value::as_bool).unwrap_or(false),
            _ => false,
        };
    }
}

/// Reads a prediction back from the provider.
pub type Poll<'a> =
    &'a (dyn Fn() -> BoxFuture<'a, Result<Prediction, ProviderError>> + Send + Sync);

/// Waits for `prediction` to end, taking newer states from webhooks as they land and, when `poll`
/// is given, asking the provider after `poll_interval` without news. Returns the terminal state.
pub async fn follow(
    job: &Job,
    tracker: &dyn Tracker,
    mut current: Prediction,
    poll_interval: Duration,
    poll: Option<Poll<'_>>,
) -> Prediction {
    let mut last_news = Instant::now();
    let mut current_rank = rank(&current.status);
    loop {
        if let Some(percent) = current.logs.as_deref().and_then(progress_from_logs) {
            tracker.progress(percent);
        }
        if current_rank >= TERMINAL {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        match tracker.delivered().await {
            Ok(Some((delivered_rank, state))) if delivered_rank >= current_rank => {
                if let Ok(newer) = serde_json::from_value::<Prediction>(state)
                    && (delivered_rank > current_rank
                        || newer.logs.as_ref().map(String::len)
                            > current.logs.as_ref().map(String::len))
                {
                    current = newer;
                    current_rank = delivered_rank;
                    last_news = Instant::now();
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(generation.id = %job.id, error = %e, "could not read delivered state")
            }
        }
        if let Some(poll) = poll
            && last_news.elapsed() >= poll_interval
        {
            last_news = Instant::now();
            match poll().await {
                Ok(polled) => {
                    let polled_rank = rank(&polled.status);
                    if polled_rank >= current_rank {
                        current = polled;
                        current_rank = polled_rank;
                    }
                }
                // The deadline bounds how long this can go on.
                Err(e) => {
                    tracing::warn!(generation.id = %job.id, error = %e, "polling the prediction failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_read_from_common_log_shapes() {
        assert_eq!(progress_from_logs("step 1/4\nstep 2/4\n"), Some(47));
        assert_eq!(
            progress_from_logs(
                "Using seed: 1\n 20%|██        | 10/50 [00:01<00:04]\r 60%|██████    | 30/50"
            ),
            Some(60)
        );
        assert_eq!(progress_from_logs("  4/20 [00:01<00:04]"), Some(19));
        assert_eq!(progress_from_logs("loading weights\n"), None);
        assert_eq!(progress_from_logs("100%|██████████| 50/50"), Some(95));
    }

    #[test]
    fn outputs_and_flags_are_found_in_every_shape() {
        assert_eq!(output_urls(&json!("https://a/1.png")), ["https://a/1.png"]);
        assert_eq!(
            output_urls(&json!(["https://a/1.png", "https://a/2.png"])),
            ["https://a/1.png", "https://a/2.png"]
        );
        assert_eq!(
            output_urls(&json!({"images": ["https://a/1.png"], "nsfw": [true]})),
            ["https://a/1.png"]
        );
        assert!(output_urls(&Value::Null).is_empty());
        assert_eq!(
            output_urls(
                &json!({"model_file": "https://a/m.glb", "color_video": "https://a/v.mp4"})
            ),
            ["https://a/m.glb"]
        );
        let mut outputs = vec![
            Output {
                bytes: vec![],
                content_type: String::new(),
                nsfw: false,
                preview: None,
                decoded: None,
            },
            Output {
                bytes: vec![],
                content_type: String::new(),
                nsfw: false,
                preview: None,
                decoded: None,
            },
        ];
        nsfw_flags(
            &json!({"images": [], "has_nsfw_concepts": [false, true]}),
            &mut outputs,
        );
        assert_eq!(
            outputs.iter().map(|o| o.nsfw).collect::<Vec<_>>(),
            [false, true]
        );
    }

    #[test]
    fn ranks_never_go_backwards() {
        assert!(rank("starting") < rank("processing"));
        assert!(rank("processing") < rank("succeeded"));
        assert_eq!(rank("failed"), TERMINAL);
        assert_eq!(rank("queued-in-a-future-api"), 1);
    }

    #[test]
    fn http_failures_are_classified() {
        assert!(
            matches!(http_error(reqwest::StatusCode::BAD_GATEWAY, ""), ProviderError::Transient { ref code, .. } if code == "provider_unavailable")
        );
        assert!(matches!(
            http_error(reqwest::StatusCode::CONFLICT, "{\"error\":\"At capacity\"}"),
            ProviderError::Busy { ref message } if message.contains("At capacity")
        ));
        assert!(matches!(
            http_error(reqwest::StatusCode::TOO_MANY_REQUESTS, ""),
            ProviderError::Busy { .. }
        ));
        assert!(
            matches!(http_error(reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{\"detail\":\"bad width\"}"), ProviderError::Permanent { ref code, ref message } if code == "provider_rejected" && message.contains("bad width"))
        );
    }
}
