//! The model catalog from `config/models.toml`: ids, costs, inputs, sizes, provider mapping.
//! Validated once at start-up; a mistake stops the server with a message naming the model and field.

pub mod routes;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use utoipa::ToSchema;

/// An optional input a model may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    NegativePrompt,
    Seed,
    Steps,
    Guidance,
    Style,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    id: String,
    name: String,
    description: String,
    provider: String,
    provider_model: String,
    cost_per_image: i64,
    #[serde(default)]
    is_pro: bool,
    min_outputs: u32,
    max_outputs: u32,
    #[serde(default)]
    inputs: Vec<Input>,
    #[serde(default)]
    styles: Vec<String>,
    #[serde(default)]
    strengths: Vec<String>,
    #[serde(default)]
    weaknesses: Vec<String>,
    aspect_ratios: BTreeMap<String, [u32; 2]>,
    default_aspect_ratio: Option<String>,
    /// Remote providers: how the size is passed (`width_height` or `aspect_ratio`).
    #[serde(default)]
    size_input: SizeInput,
    /// Remote providers: fixed inputs sent with every prediction (`output_format = "png"` …).
    #[serde(default)]
    extra_input: toml::Table,
    /// Replicate: hold the create request open up to this many seconds (`Prefer: wait`).
    prefer_wait: Option<u32>,
    /// Whether the model takes an input image: `none` (default), `optional` or `required`.
    #[serde(default)]
    image_input: ImageInput,
    /// Accepted input image types (default PNG, JPEG and WebP).
    image_formats: Option<Vec<String>>,
    /// Largest accepted input image in bytes (default 10 MB).
    image_max_bytes: Option<u64>,
    /// Remote providers: the input field the image is passed in (default `image`).
    image_input_name: Option<String>,
    /// Remote providers: the input field steps go in (default `num_inference_steps`).
    steps_input_name: Option<String>,
    /// Remote providers: the input field guidance goes in (default `guidance_scale`; FLUX models
    /// call it `guidance`).
    guidance_input_name: Option<String>,
    /// What the model makes: `image` (default) or `model3d` (a glTF binary, `.glb`).
    #[serde(default)]
    output_kind: OutputKind,
    /// How long one of its generations may take, submission to end, in seconds (default
    /// `EASEL_GENERATION_DEADLINE_SECS`): a slow model (video, 3D) may need more than most.
    deadline_secs: Option<u64>,
}

/// Whether a model takes an input image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageInput {
    #[default]
    None,
    Optional,
    Required,
}

/// What a model's outputs are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A PNG, JPEG or WebP image.
    #[default]
    Image,
    /// A 3D model as glTF binary (`model/gltf-binary`), with a preview image as its thumbnail.
    Model3d,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Model3d => "model3d",
        }
    }
}

/// Input image types a model may accept: what the upload sniffer recognises.
pub const IMAGE_FORMATS: [&str; 3] = ["image/png", "image/jpeg", "image/webp"];
const DEFAULT_IMAGE_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// What the `local` provider can run, by `provider_model`.
const LOCAL_MODELS: [&str; 4] = ["sketch", "canvas", "restyle", "relief3d"];

/// How a remote model takes the image size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeInput {
    #[default]
    WidthHeight,
    AspectRatio,
}

/// What a remote provider needs beyond the shared fields; not shown in the API.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    pub size_input: SizeInput,
    pub extra_input: serde_json::Map<String, serde_json::Value>,
    pub prefer_wait: Option<u32>,
    /// The input field an input image is passed in.
    pub image_input_name: String,
    /// The input fields steps and guidance are passed in.
    pub steps_input_name: String,
    pub guidance_input_name: String,
}

/// A model as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Model {
    #[schema(example = "easel-sketch")]
    pub id: String,
    pub name: String,
    pub description: String,
    /// Which provider runs it: `local`, `replicate` or `cog`.
    pub provider: String,
    #[serde(skip)]
    pub provider_model: String,
    /// Credits per output image.
    pub cost_per_image: i64,
    /// Pro models need purchased credits (a purchased balance above zero) or the admin role.
    pub is_pro: bool,
    pub min_outputs: u32,
    pub max_outputs: u32,
    /// Optional inputs this model accepts; others are refused.
    pub inputs: Vec<Input>,
    /// Allowed values of `style`, when `style` is an input.
    pub styles: Vec<String>,
    /// Aspect ratio → [width, height] in pixels.
    pub aspect_ratios: BTreeMap<String, [u32; 2]>,
    /// Used when a request names none.
    pub default_aspect_ratio: String,
    pub strengths: Vec<String>,
    pub weaknesses: Vec<String>,
    /// Whether `image_input` may be given (`optional` or `required`).
    pub supports_image_input: bool,
    /// `none`, `optional` or `required`.
    pub image_input: ImageInput,
    /// Accepted input image types, when the model takes one.
    pub image_formats: Vec<String>,
    /// Largest accepted input image, in bytes.
    pub image_max_bytes: u64,
    /// `image` or `model3d`.
    pub output_kind: OutputKind,
    /// Seconds one of its generations may take from submission to end; past it, it fails with a
    /// refund (`deadline_exceeded`).
    pub deadline_secs: u64,
    #[serde(skip)]
    pub remote: RemoteOptions,
}

impl Model {
    pub fn accepts(&self, input: Input) -> bool {
        self.inputs.contains(&input)
    }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<Model>,
}

const PROVIDERS: [&str; 3] = ["local", "replicate", "cog"];

impl Catalog {
    /// The catalog at `path`; a model that names no deadline gets `default_deadline`.
    pub fn load(path: &Path, default_deadline: std::time::Duration) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the model catalog {} (EASEL_MODELS_PATH): {e}",
                path.display()
            )
        })?;
        Self::parse(&text, default_deadline.as_secs())
            .map_err(|e| anyhow::anyhow!("model catalog {}: {e}", path.display()))
    }

    pub fn parse(text: &str, default_deadline_secs: u64) -> anyhow::Result<Self> {
        let file: CatalogFile = toml::from_str(text)?;
        let mut models: Vec<Model> = Vec::new();
        for entry in file.models {
            let at = format!("model {:?}", entry.id);
            let id_ok = !entry.id.is_empty()
                && entry.id.len() <= 64
                && entry.id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            anyhow::ensure!(
                id_ok,
                "{at}: id must be 1–64 characters of a-z, 0-9, '-' and '.'"
            );
            anyhow::ensure!(
                !models.iter().any(|m| m.id == entry.id),
                "{at}: id appears twice"
            );
            anyhow::ensure!(
                PROVIDERS.contains(&entry.provider.as_str()),
                "{at}: provider must be one of {PROVIDERS:?}"
            );
            anyhow::ensure!(
                entry.cost_per_image > 0,
                "{at}: cost_per_image must be at least 1"
            );
            anyhow::ensure!(
                1 <= entry.min_outputs
                    && entry.min_outputs <= entry.max_outputs
                    && entry.max_outputs <= 16,
                "{at}: need 1 <= min_outputs <= max_outputs <= 16"
            );
            anyhow::ensure!(
                !entry.aspect_ratios.is_empty(),
                "{at}: aspect_ratios is empty"
            );
            for (ratio, [w, h]) in &entry.aspect_ratios {
                anyhow::ensure!(
                    (64..=2048).contains(w) && (64..=2048).contains(h),
                    "{at}: aspect ratio {ratio} maps to {w}x{h}; sides must be 64–2048 px"
                );
            }
            anyhow::ensure!(
                entry.inputs.contains(&Input::Style) != entry.styles.is_empty(),
                "{at}: list styles exactly when style is an input"
            );
            match entry.provider.as_str() {
                "cog" => anyhow::ensure!(
                    entry.provider_model.starts_with("http://")
                        || entry.provider_model.starts_with("https://"),
                    "{at}: a cog model's provider_model is its server's base URL (http:// or https://)"
                ),
                "replicate" => anyhow::ensure!(
                    replicate_ref_ok(&entry.provider_model),
                    "{at}: a replicate model's provider_model is owner/name, owner/name:version or a version id"
                ),
                _ => {}
            }
            anyhow::ensure!(
                entry.prefer_wait.is_none_or(|s| (1..=60).contains(&s)),
                "{at}: prefer_wait must be 1–60 seconds"
            );
            if entry.provider == "local" {
                anyhow::ensure!(
                    LOCAL_MODELS.contains(&entry.provider_model.as_str()),
                    "{at}: a local model's provider_model is one of {LOCAL_MODELS:?}"
                );
                let needs_input = matches!(entry.provider_model.as_str(), "restyle" | "relief3d");
                anyhow::ensure!(
                    needs_input == (entry.image_input == ImageInput::Required),
                    "{at}: local restyle and relief3d need image_input = \"required\"; the others take none"
                );
                anyhow::ensure!(
                    (entry.provider_model == "relief3d")
                        == (entry.output_kind == OutputKind::Model3d),
                    "{at}: of the local models only relief3d makes output_kind = \"model3d\""
                );
            }
            let image_formats = entry
                .image_formats
                .unwrap_or_else(|| IMAGE_FORMATS.iter().map(|f| (*f).to_owned()).collect());
            anyhow::ensure!(
                !image_formats.is_empty()
                    && image_formats
                        .iter()
                        .all(|f| IMAGE_FORMATS.contains(&f.as_str())),
                "{at}: image_formats must be some of {IMAGE_FORMATS:?}"
            );
            let deadline_secs = entry.deadline_secs.unwrap_or(default_deadline_secs);
            anyhow::ensure!(
                (5..=86_400).contains(&deadline_secs),
                "{at}: deadline_secs must be 5 to 86400 seconds"
            );
            let image_max_bytes = entry.image_max_bytes.unwrap_or(DEFAULT_IMAGE_MAX_BYTES);
            anyhow::ensure!(image_max_bytes > 0, "{at}: image_max_bytes must be above 0");
            let extra_input = match serde_json::to_value(&entry.extra_input)? {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            // Unless the file says otherwise: square if offered, else the first listed.
            let default_aspect_ratio = match entry.default_aspect_ratio {
                Some(ratio) => {
                    anyhow::ensure!(
                        entry.aspect_ratios.contains_key(&ratio),
                        "{at}: default_aspect_ratio {ratio} is not among aspect_ratios"
                    );
                    ratio
                }
                None if entry.aspect_ratios.contains_key("1:1") => "1:1".to_owned(),
                None => entry
                    .aspect_ratios
                    .keys()
                    .next()
                    .cloned()
                    .unwrap_or_default(),
            };
            models.push(Model {
                default_aspect_ratio,
                id: entry.id,
                name: entry.name,
                description: entry.description,
                provider: entry.provider,
                provider_model: entry.provider_model,
                cost_per_image: entry.cost_per_image,
                is_pro: entry.is_pro,
                min_outputs: entry.min_outputs,
                max_outputs: entry.max_outputs,
                inputs: entry.inputs,
                styles: entry.styles,
                aspect_ratios: entry.aspect_ratios,
                strengths: entry.strengths,
                weaknesses: entry.weaknesses,
                supports_image_input: entry.image_input != ImageInput::None,
                image_input: entry.image_input,
                image_formats,
                image_max_bytes,
                output_kind: entry.output_kind,
                deadline_secs,
                remote: RemoteOptions {
                    size_input: entry.size_input,
                    extra_input,
                    prefer_wait: entry.prefer_wait,
                    image_input_name: entry.image_input_name.unwrap_or_else(|| "image".to_owned()),
                    steps_input_name: entry
                        .steps_input_name
                        .unwrap_or_else(|| "num_inference_steps".to_owned()),
                    guidance_input_name: entry
                        .guidance_input_name
                        .unwrap_or_else(|| "guidance_scale".to_owned()),
                },
            });
        }
        anyhow::ensure!(!models.is_empty(), "no models defined");
        Ok(Self { models })
    }

    pub fn all(&self) -> &[Model] {
        &self.models
    }

    pub fn get(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }
}

/// `owner/name`, `owner/name:version`, or a bare 64-hex version id.
fn replicate_ref_ok(reference: &str) -> bool {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let (model, version) = match reference.split_once(':') {
        Some((model, version)) => (model, Some(version)),
        None => (reference, None),
    };
    if version.is_none() && model.len() == 64 && model.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    let model_ok = model
        .split_once('/')
        .is_some_and(|(owner, name)| name_ok(owner) && name_ok(name));
    model_ok && version.is_none_or(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_valid() -> anyhow::Result<()> {
        let catalog = Catalog::load(
            Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../config/models.toml"
            )),
            std::time::Duration::from_secs(600),
        )?;
        assert!(catalog.all().iter().all(|m| m.provider == "local"));
        assert!(catalog.get("easel-sketch").is_some());
        let relief = catalog
            .get("easel-relief-3d")
            .ok_or_else(|| anyhow::anyhow!("relief"))?;
        assert!(relief.supports_image_input);
        assert_eq!(relief.output_kind, OutputKind::Model3d);
        Ok(())
    }

    /// The commented Replicate and Cog examples in the shipped catalog stay valid entries.
    #[test]
    fn the_commented_examples_are_valid() -> anyhow::Result<()> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/models.toml"
        ))?;
        let uncommented: String = text
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.starts_with("[[models]]")
                    || line.split_once(" = ").is_some_and(|(key, _)| {
                        key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    })
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let catalog = Catalog::parse(&uncommented, 600)?;
        let providers: Vec<&str> = catalog.all().iter().map(|m| m.provider.as_str()).collect();
        assert_eq!(providers, ["replicate", "cog", "replicate", "replicate"]);
        let trellis = catalog
            .get("trellis")
            .ok_or_else(|| anyhow::anyhow!("trellis"))?;
        assert_eq!(trellis.output_kind, OutputKind::Model3d);
        assert_eq!(trellis.image_input, ImageInput::Required);
        assert_eq!(trellis.remote.image_input_name, "images[]");
        assert_eq!(trellis.deadline_secs, 1800);
        let kontext = catalog
            .get("flux-kontext")
            .ok_or_else(|| anyhow::anyhow!("kontext"))?;
        assert_eq!(kontext.remote.image_input_name, "input_image");
        let flux = catalog
            .get("flux-schnell")
            .ok_or_else(|| anyhow::anyhow!("flux"))?;
        assert_eq!(flux.remote.size_input, SizeInput::AspectRatio);
        assert_eq!(flux.remote.prefer_wait, Some(10));
        assert_eq!(flux.remote.extra_input["output_format"], "png");
        Ok(())
    }

    #[test]
    fn replicate_references_are_checked() {
        let version = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";
        for ok in [
            "black-forest-labs/flux-schnell",
            &format!("stability-ai/sdxl:{version}"),
            version,
        ] {
            assert!(replicate_ref_ok(ok), "{ok}");
        }
        for bad in ["flux", "a/b:", "a/b:xyz", "/b", "a/", "a/b c"] {
            assert!(!replicate_ref_ok(bad), "{bad}");
        }
    }

    #[test]
    fn mistakes_name_the_model_and_field() {
        let bad = r#"
            [[models]]
            id = "x"
            name = "X"
            description = "d"
            provider = "local"
            provider_model = "sketch"
            cost_per_image = 0
            min_outputs = 1
            max_outputs = 1
            aspect_ratios = { "1:1" = [512, 512] }
        "#;
        let err = Catalog::parse(bad, 600)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("\"x\"") && err.contains("cost_per_image"),
            "{err}"
        );
        let slow = bad.replace(
            "cost_per_image = 0",
            "cost_per_image = 1\ndeadline_secs = 3",
        );
        let err = Catalog::parse(&slow, 600)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("deadline_secs must be 5 to 86400"), "{err}");
        let timed = bad.replace(
            "cost_per_image = 0",
            "cost_per_image = 1\ndeadline_secs = 90",
        );
        let untimed = bad.replace("cost_per_image = 0", "cost_per_image = 1");
        let deadline = |text: &str| {
            Catalog::parse(text, 600)
                .ok()
                .and_then(|c| c.all().first().map(|m| m.deadline_secs))
        };
        assert_eq!(
            (deadline(&timed), deadline(&untimed)),
            (Some(90), Some(600))
        );
        let unknown = bad.replace("cost_per_image = 0", "cost_per_image = 1\ncolour = \"red\"");
        assert!(Catalog::parse(&unknown, 600).is_err());
        let provider = bad
            .replace("cost_per_image = 0", "cost_per_image = 1")
            .replace("\"local\"", "\"dalle\"");
        assert!(
            Catalog::parse(&provider, 600)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("provider")
        );
    }
}
