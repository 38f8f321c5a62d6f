//! Request and response bodies of the generation endpoints.

use super::{GenerationId, ImageId, Status, Visibility};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGenerationRequest {
    /// What to make, 1–2000 characters.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$",
        example = "a lighthouse at dusk, oil painting"
    )]
    pub prompt: String,
    /// A model id from `GET /v1/models`.
    #[schema(example = "easel-sketch")]
    pub model: String,
    /// One of the model's aspect ratios; defaults to its `default_aspect_ratio`.
    pub aspect_ratio: Option<String>,
    /// Images to make, within the model's bounds; defaults to its minimum.
    #[schema(minimum = 1, maximum = 16)]
    pub num_outputs: Option<u32>,
    /// What to avoid, up to 2000 characters (only for models that accept it).
    #[schema(max_length = 2000)]
    pub negative_prompt: Option<String>,
    /// For reproducible results (only for models that accept it); random when omitted.
    #[schema(minimum = 0, maximum = 4294967295_i64)]
    pub seed: Option<i64>,
    /// One of the model's styles (only for models that accept it).
    pub style: Option<String>,
    /// Denoising steps, 1–200 (only for models whose `inputs` include `steps`); the model's own
    /// default when omitted.
    #[schema(minimum = 1, maximum = 200)]
    pub steps: Option<u32>,
    /// How closely to follow the prompt (classifier-free guidance), 0–30 (only for models whose
    /// `inputs` include `guidance`); the model's own default when omitted.
    #[schema(minimum = 0, maximum = 30)]
    pub guidance: Option<f64>,
    /// Who may see the images; private by default.
    pub visibility: Option<Visibility>,
    /// For models that take an input image: the id of an upload of mine (`POST /v1/uploads`) or of
    /// an image I may see (mine, or public or unlisted).
    pub image_input: Option<uuid::Uuid>,
    /// Where to POST the generation once it ends (`generation.completed`): a public https URL of
    /// at most 2000 characters. Signed with my webhook secret (`GET /v1/me/webhook-secret`), the
    /// Standard Webhooks way; retried with backoff until the receiver answers 2xx.
    #[schema(max_length = 2000, example = "https://example.com/hooks/easel")]
    pub webhook_url: Option<String>,
    /// Quote the cost and check the balance without creating anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to a dry run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    pub dry_run: bool,
    pub model: String,
    pub num_outputs: u32,
    pub credits_needed: i64,
    pub credits_available: i64,
    /// Whether the balance covers it now.
    pub sufficient: bool,
}

/// The 200 answer of `POST /v1/generations`: a dry run's quote, or the finished generation after
/// `Prefer: wait`. (Only for the spec; handlers send one or the other.)
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CreateGenerationOk {
    Quote(Quote),
    Generation(Box<Generation>),
}

/// Raw file bytes, for the spec.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBytes(pub Vec<u8>);

/// Why a generation failed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GenerationError {
    /// e.g. `model_failed`, `deadline_exceeded`, `provider_unavailable`.
    pub code: String,
    pub message: String,
    /// Whether trying again may work.
    pub retryable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GeneratedImage {
    pub id: ImageId,
    /// `image`, or `model3d` for a glTF binary model (then width and height are its preview's).
    pub kind: crate::catalog::OutputKind,
    pub width: i32,
    pub height: i32,
    /// The original: an image, or the `.glb` of a 3D model.
    pub url: String,
    /// A WebP thumbnail at most 384 px on its longer side (a 3D model's preview).
    pub thumb_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Generation {
    pub id: GenerationId,
    pub status: Status,
    pub model: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub aspect_ratio: String,
    pub width: i32,
    pub height: i32,
    pub num_outputs: i32,
    pub seed: i64,
    pub style: Option<String>,
    /// As asked; null when the model's default was used.
    pub steps: Option<i32>,
    /// As asked; null when the model's default was used.
    pub guidance: Option<f64>,
    /// The upload or image given as `image_input`; null when none was.
    pub image_input: Option<uuid::Uuid>,
    /// Where its owner sees that input: the upload's file, or the image's.
    pub image_input_url: Option<String>,
    pub visibility: Visibility,
    pub credits_charged: i64,
    pub credits_refunded: i64,
    pub error: Option<GenerationError>,
    pub images: Vec<GeneratedImage>,
    /// 0–100.
    pub progress: i16,
    /// While it is queued: how many queued generations (anyone's) the workers will take up before
    /// it, counted up to 1000 (1000 means at least that many); 0 means it is next. Null when it is
    /// not queued, and on the answer to its submission, which does not count: read the generation
    /// or follow its events for the number.
    #[schema(minimum = 0, maximum = 1000)]
    pub queued_ahead: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Generation {
    /// The same generation with its links made absolute on `base` (the server's public URL), for
    /// readers that do not know which server it came from.
    pub fn linked_from(mut self, base: &str) -> Self {
        for image in &mut self.images {
            image.url.insert_str(0, base);
            image.thumb_url.insert_str(0, base);
        }
        if let Some(url) = &mut self.image_input_url {
            url.insert_str(0, base);
        }
        self
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GenerationPage {
    pub data: Vec<Generation>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GenerationFilter {
    /// Only generations in this state.
    pub status: Option<Status>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// `original` (default) or `thumb`.
    pub variant: Option<Variant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    Original,
    Thumb,
}

/// The secret my generations' webhooks are signed with.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecret {
    /// `whsec_` and the base64 key.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

#[cfg(test)]
mod tests {
    use super::Generation;

    #[test]
    fn links_are_made_absolute_on_the_public_url() {
        let generation: Generation = serde_json::from_value(serde_json::json!({
            "id": "0192b7a0-0000-7000-8000-000000000001", "status": "succeeded",
            "model": "m", "prompt": "p", "negative_prompt": null, "aspect_ratio": "1:1",
            "width": 64, "height": 64, "num_outputs": 1, "seed": 1, "style": null,
            "steps": null, "guidance": null,
            "image_input": "0192b7a0-0000-7000-8000-000000000003",
            "image_input_url": "/v1/uploads/0192b7a0-0000-7000-8000-000000000003/file",
            "visibility": "private", "credits_charged": 1, "credits_refunded": 0, "error": null,
            "images": [{"id": "0192b7a0-0000-7000-8000-000000000002", "kind": "image",
                        "width": 64, "height": 64, "url": "/a", "thumb_url": "/b"}],
            "progress": 100, "queued_ahead": null, "created_at": "2026-12-02T00:00:00Z",
            "started_at": null, "completed_at": null
        }))
        .expect("a generation");
        let linked = generation.linked_from("https://easel.example");
        assert_eq!(linked.images[0].url, "https://easel.example/a");
        assert_eq!(linked.images[0].thumb_url, "https://easel.example/b");
        assert_eq!(
            linked.image_input_url.as_deref(),
            Some("https://easel.example/v1/uploads/0192b7a0-0000-7000-8000-000000000003/file")
        );
    }
}
