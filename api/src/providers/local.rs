//! The built-in renderer: a real PNG made in-process from the prompt, seed and style, so the whole
//! product works with no keys and no network. Deterministic: the same prompt, seed, style and size
//! give the same bytes. Prompts may carry test switches only this provider reads: `[[fail]]` fails as
//! a model failure, `[[slow]]` takes 10 seconds. Two models take an input image: `restyle` repaints
//! it in a palette drawn from the prompt, and `relief3d` lifts it into a textured 3D relief (GLB).

use super::{Job, Output, Provider, ProviderError, Tracker};
use futures_util::future::BoxFuture;
use image::{ImageEncoder, Rgb, RgbImage};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub struct Local {
    /// Simulated render time per request, spread over five progress steps.
    pub render_time: Duration,
}

const STEPS: u32 = 5;

impl Provider for Local {
    fn run<'a>(
        &'a self,
        job: &'a Job,
        tracker: &'a dyn Tracker,
    ) -> BoxFuture<'a, Result<Vec<Output>, ProviderError>> {
        Box::pin(async move {
            let total = if job.prompt.contains("[[slow]]") {
                Duration::from_secs(10)
            } else {
                self.render_time
            };
            for step in 1..=STEPS {
                // An instant model (render time zero) does not wait for a timer tick at each step.
                if !total.is_zero() {
                    tokio::time::sleep(total / STEPS).await;
                }
                if step == 3 && job.prompt.contains("[[fail]]") {
                    return Err(ProviderError::Permanent {
                        code: "model_failed".to_owned(),
                        message: "the model failed on this prompt ([[fail]] was requested)"
                            .to_owned(),
                    });
                }
                // Rendering is the last step; report up to 80 % for the simulated work.
                tracker.progress((step * 80 / STEPS) as u8);
            }
            let outputs = if is_small(job) {
                render_all(job)?
            } else {
                let job = job.clone();
                tokio::task::spawn_blocking(move || render_all(&job))
                    .await
                    .map_err(|e| ProviderError::Transient {
                        code: "renderer_crashed".to_owned(),
                        message: e.to_string(),
                    })??
            };
            tracker.progress(100);
            Ok(outputs)
        })
    }
}

/// Whether a job's renders are small enough to make on the calling task: a few thousand pixels
/// take tens of microseconds, less than a trip to a blocking thread and back costs.
fn is_small(job: &Job) -> bool {
    const MOST_PIXELS: u64 = 128 * 128;
    job.input.is_none()
        && u64::from(job.width) * u64::from(job.height) * u64::from(job.num_outputs) <= MOST_PIXELS
}

fn render_all(job: &Job) -> Result<Vec<Output>, ProviderError> {
    (0..job.num_outputs)
        .map(|i| {
            let seed = job.seed.wrapping_add(u64::from(i));
            match job.provider_model.as_str() {
                "restyle" => restyle(job, seed),
                "relief3d" => relief3d(job),
                _ => render(job, seed),
            }
        })
        .collect()
}

fn failed(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::permanent("render_failed", e.to_string())
}

fn png(image: &RgbImage) -> Result<Vec<u8>, ProviderError> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(failed)?;
    Ok(bytes)
}

/// The job's input image, decoded.
fn input_image(job: &Job) -> Result<image::DynamicImage, ProviderError> {
    let input = job.input.as_ref().ok_or_else(|| {
        ProviderError::permanent("provider_rejected", "this model needs an input image")
    })?;
    image::load_from_memory(&input.bytes).map_err(|e| {
        ProviderError::permanent(
            "provider_rejected",
            format!("the input image cannot be read: {e}"),
        )
    })
}

/// Three colours from the prompt, seed and style: dark, middle and light of a gradient map.
fn palette(job: &Job, seed: u64) -> [[f32; 3]; 3] {
    let mut hasher = Sha256::new();
    hasher.update(job.prompt.as_bytes());
    hasher.update(seed.to_le_bytes());
    hasher.update(job.style.as_deref().unwrap_or("none").as_bytes());
    let digest = hasher.finalize();
    let byte = |i: usize| f32::from(digest[i]) / 255.0;
    let mut colours = [0, 1, 2].map(|k| [byte(3 * k), byte(3 * k + 1), byte(3 * k + 2)]);
    // Dark to light, whatever the hash gave.
    colours.sort_by(|a, b| (a[0] + a[1] + a[2]).total_cmp(&(b[0] + b[1] + b[2])));
    colours[0] = colours[0].map(|v| v * 0.35);
    colours[2] = colours[2].map(|v| 0.6 + v * 0.4);
    match job.style.as_deref() {
        Some("ink") => colours.map(|c| {
            let g = (c[0] + c[1] + c[2]) / 3.0;
            [g, g, g]
        }),
        Some("neon") => colours.map(|c| c.map(|v| if v > 0.5 { 1.0 } else { v * 0.3 })),
        Some("watercolor") => colours.map(|c| c.map(|v| 0.55 + v * 0.45)),
        _ => colours,
    }
}

/// Image to image: the input, fitted to the requested size, repainted through a gradient map of
/// the prompt's palette. The same input, prompt, seed and style give the same bytes.
pub fn restyle(job: &Job, seed: u64) -> Result<Output, ProviderError> {
    let fitted = input_image(job)?
        .resize_to_fill(job.width, job.height, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let [dark, middle, light] = palette(job, seed);
    let image = RgbImage::from_fn(fitted.width(), fitted.height(), |x, y| {
        let Rgb([r, g, b]) = *fitted.get_pixel(x, y);
        let l = (0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)) / 255.0;
        let (from, to, t) = if l < 0.5 {
            (dark, middle, l * 2.0)
        } else {
            (middle, light, l * 2.0 - 1.0)
        };
        Rgb([0, 1, 2].map(|k| ((from[k] * (1.0 - t) + to[k] * t).clamp(0.0, 1.0) * 255.0) as u8))
    });
    Ok(Output {
        bytes: png(&image)?,
        content_type: "image/png".to_owned(),
        nsfw: false,
        preview: None,
        decoded: Some(image::DynamicImage::ImageRgb8(image)),
    })
}

/// Image to 3D: a relief mesh lifted by the input's brightness and textured with it, as GLB, with
/// a shaded render of the relief as its preview.
pub fn relief3d(job: &Job) -> Result<Output, ProviderError> {
    let texture = input_image(job)?.thumbnail(512, 512).to_rgb8();
    let texture_png = png(&texture)?;
    let (glb, _) = crate::model3d::relief(&texture, 96, &texture_png);
    // Light from the upper left over the height field's slopes.
    let height = |x: u32, y: u32| {
        let Rgb([r, g, b]) =
            *texture.get_pixel(x.min(texture.width() - 1), y.min(texture.height() - 1));
        (0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)) / 255.0 * 24.0
    };
    let light = {
        let l = [-0.5_f32, 0.6, 0.62];
        let n = (l[0] * l[0] + l[1] * l[1] + l[2] * l[2]).sqrt();
        l.map(|v| v / n)
    };
    let preview = RgbImage::from_fn(texture.width(), texture.height(), |x, y| {
        let dx = height(x + 1, y) - height(x.saturating_sub(1), y);
        let dy = height(x, y.saturating_sub(1)) - height(x, y + 1);
        let len = (dx * dx + dy * dy + 4.0).sqrt();
        let normal = [-dx / len, -dy / len, 2.0 / len];
        let lambert = (normal[0] * light[0] + normal[1] * light[1] + normal[2] * light[2]).max(0.0);
        let shade = 0.35 + 0.65 * lambert;
        let Rgb(c) = *texture.get_pixel(x, y);
        Rgb(c.map(|v| (f32::from(v) * shade).min(255.0) as u8))
    });
    Ok(Output {
        bytes: glb,
        content_type: crate::model3d::CONTENT_TYPE.to_owned(),
        nsfw: false,
        preview: Some(png(&preview)?),
        decoded: None,
    })
}

/// Renders one image: a gradient sky and soft discs whose colours and places come from a hash of the
/// prompt, seed and style.
pub fn render(job: &Job, seed: u64) -> Result<Output, ProviderError> {
    let mut hasher = Sha256::new();
    hasher.update(job.prompt.as_bytes());
    hasher.update(seed.to_le_bytes());
    hasher.update(job.style.as_deref().unwrap_or("none").as_bytes());
    hasher.update(job.provider_model.as_bytes());
    let digest = hasher.finalize();
    let byte = |i: usize| f32::from(digest[i % digest.len()]) / 255.0;
    let style = job.style.as_deref().unwrap_or("none");
    let colour = |i: usize| -> [f32; 3] {
        let c = [byte(i), byte(i + 1), byte(i + 2)];
        match style {
            "ink" => {
                let g = (c[0] + c[1] + c[2]) / 3.0;
                [g, g, g]
            }
            "neon" => c.map(|v| if v > 0.5 { 1.0 } else { v * 0.3 }),
            "watercolor" => c.map(|v| 0.55 + v * 0.45),
            _ => c,
        }
    };
    let (w, h) = (job.width, job.height);
    let top = colour(0);
    let bottom = colour(3);
    // Steps add detail (a disc per four steps, 6 by default) and guidance weight (how strongly each
    // disc covers the sky), as they would in a diffusion model.
    let count = job.steps.map_or(6, |steps| (steps / 4).clamp(1, 24));
    let opacity = job
        .guidance
        .map_or(0.85, |g| (0.25 + g as f32 * 0.045).min(0.95));
    let discs: Vec<(f32, f32, f32, [f32; 3])> = (0..count as usize)
        .map(|i| {
            let at = 6 + i * 4;
            (
                byte(at) * w as f32,
                byte(at + 1) * h as f32,
                (0.08 + byte(at + 2) * 0.25) * w.min(h) as f32,
                colour(at + 3),
            )
        })
        .collect();
    // The gradient first, then each disc in turn over its bounding box only: every pixel blends
    // the same discs in the same order as a per-pixel pass over all of them would.
    let mut canvas: Vec<[f32; 3]> = Vec::with_capacity(w as usize * h as usize);
    for y in 0..h {
        let t = y as f32 / h.max(1) as f32;
        let row: [f32; 3] = std::array::from_fn(|k| top[k] * (1.0 - t) + bottom[k] * t);
        canvas.extend(std::iter::repeat_n(row, w as usize));
    }
    let span = |centre: f32, r: f32, size: u32| {
        let from = (centre - r).floor().max(0.0) as u32;
        let to = ((centre + r).ceil().max(0.0) as u32).min(size.saturating_sub(1));
        from..=to
    };
    for (cx, cy, r, c) in &discs {
        for y in span(*cy, *r, h) {
            for x in span(*cx, *r, w) {
                let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                if d2 < r * r {
                    let d = d2.sqrt();
                    let a = (1.0 - d / r).min(1.0) * opacity;
                    let px = &mut canvas[y as usize * w as usize + x as usize];
                    for k in 0..3 {
                        px[k] = px[k] * (1.0 - a) + c[k] * a;
                    }
                }
            }
        }
    }
    let raw: Vec<u8> = canvas
        .iter()
        .flat_map(|px| px.map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8))
        .collect();
    let image = RgbImage::from_raw(w, h, raw).ok_or_else(|| ProviderError::Permanent {
        code: "render_failed".to_owned(),
        message: format!("no {w}x{h} image"),
    })?;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(image.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| ProviderError::Permanent {
            code: "render_failed".to_owned(),
            message: e.to_string(),
        })?;
    Ok(Output {
        bytes,
        content_type: "image/png".to_owned(),
        nsfw: false,
        preview: None,
        decoded: Some(image::DynamicImage::ImageRgb8(image)),
    })
}

/// A PNG of `prompt` at a size, for anything that needs a real image (fakes, fixtures, benches).
pub fn sample_png(
    prompt: &str,
    width: u32,
    height: u32,
    seed: u64,
) -> Result<Vec<u8>, ProviderError> {
    let job = Job {
        id: uuid::Uuid::nil(),
        provider_model: "sketch".to_owned(),
        prompt: prompt.to_owned(),
        negative_prompt: None,
        aspect_ratio: "1:1".to_owned(),
        width,
        height,
        seed,
        style: None,
        steps: None,
        guidance: None,
        num_outputs: 1,
        remote: Default::default(),
        provider_ref: None,
        webhook_token: None,
        input: None,
    };
    Ok(render(&job, seed)?.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(prompt: &str) -> Job {
        Job {
            id: uuid::Uuid::nil(),
            aspect_ratio: "3:2".to_owned(),
            remote: Default::default(),
            provider_ref: None,
            webhook_token: None,
            provider_model: "sketch".to_owned(),
            prompt: prompt.to_owned(),
            negative_prompt: None,
            width: 96,
            height: 64,
            seed: 7,
            style: None,
            steps: None,
            guidance: None,
            num_outputs: 1,
            input: None,
        }
    }

    #[test]
    fn renders_real_deterministic_pngs_that_differ_by_prompt() -> Result<(), ProviderError> {
        let a = render(&job("a lighthouse at dusk"), 7)?;
        let again = render(&job("a lighthouse at dusk"), 7)?;
        let b = render(&job("a forest in fog"), 7)?;
        let other_seed = render(&job("a lighthouse at dusk"), 8)?;
        assert_eq!(a.bytes, again.bytes);
        assert_ne!(a.bytes, b.bytes);
        assert_ne!(a.bytes, other_seed.bytes);
        // Steps and guidance change the picture, deterministically.
        let with = |steps, guidance| Job {
            steps,
            guidance,
            ..job("a lighthouse at dusk")
        };
        let more_steps = render(&with(Some(60), None), 7)?;
        let strong = render(&with(None, Some(20.0)), 7)?;
        assert_ne!(a.bytes, more_steps.bytes);
        assert_ne!(a.bytes, strong.bytes);
        assert_ne!(more_steps.bytes, strong.bytes);
        assert_eq!(more_steps.bytes, render(&with(Some(60), None), 7)?.bytes);
        let decoded = image::load_from_memory(&a.bytes).map_err(|e| ProviderError::Permanent {
            code: "decode".to_owned(),
            message: e.to_string(),
        })?;
        assert_eq!((decoded.width(), decoded.height()), (96, 64));
        Ok(())
    }

    #[test]
    fn renders_the_same_bytes_as_ever() -> Result<(), ProviderError> {
        // Same prompt, seed and size: the same image, release after release (these are the hashes
        // of the renders before they skipped pixels outside each disc's bounding box).
        let hashes: Vec<String> = [("a lighthouse at dusk", 7), ("a forest in fog", 123456)]
            .iter()
            .map(|(prompt, seed)| {
                sample_png(prompt, 96, 64, *seed).map(|png| crate::storage::content_hash(&png))
            })
            .collect::<Result<_, _>>()?;
        assert_eq!(
            hashes,
            [
                "76641e8dbc54cc27a121236898cff9c5c55312728ba0f04d8414f02989fed1e4",
                "93e53e0d57fa5ba43aab59b1f790d20cd1153cd32ca23d30fbafd353d86d0578"
            ]
        );
        Ok(())
    }

    #[test]
    fn the_pixels_handed_on_are_what_the_png_decodes_to() -> anyhow::Result<()> {
        // The runner makes the thumbnail from `decoded` instead of decoding `bytes`: the two must be
        // the same image, or the thumbnail would show something other than the original.
        for style in [None, Some("ink"), Some("neon")] {
            let output = render(
                &Job {
                    style: style.map(str::to_owned),
                    ..job("a harbour at night")
                },
                11,
            )?;
            let handed_on = output.decoded.ok_or_else(|| anyhow::anyhow!("no pixels"))?;
            let decoded = image::load_from_memory(&output.bytes)?;
            assert_eq!(handed_on.to_rgba8(), decoded.to_rgba8());
            assert_eq!(
                crate::storage::thumbnail_of(&handed_on, crate::storage::THUMB_MAX)?,
                crate::storage::thumbnail(&output.bytes, crate::storage::THUMB_MAX)?
            );
        }
        Ok(())
    }

    /// Keeps the last progress; the local provider needs nothing else from a tracker.
    #[derive(Default)]
    struct Progress(std::sync::atomic::AtomicU8);

    impl Tracker for Progress {
        fn progress(&self, percent: u8) {
            self.0.store(percent, std::sync::atomic::Ordering::SeqCst);
        }

        fn remember<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async { Ok(()) })
        }

        fn delivered(&self) -> BoxFuture<'_, anyhow::Result<Option<(i16, serde_json::Value)>>> {
            Box::pin(async { Ok(None) })
        }
    }

    #[tokio::test]
    async fn fail_switch_fails_as_a_model_failure() {
        let local = Local {
            render_time: Duration::ZERO,
        };
        let tracker = Progress::default();
        let result = local.run(&job("please [[fail]]"), &tracker).await;
        assert!(
            matches!(result, Err(ProviderError::Permanent { code, .. }) if code == "model_failed")
        );
        let ok = local.run(&job("fine"), &tracker).await;
        assert_eq!(ok.map(|o| o.len()).ok(), Some(1));
        assert_eq!(tracker.0.load(std::sync::atomic::Ordering::SeqCst), 100);
    }
}
