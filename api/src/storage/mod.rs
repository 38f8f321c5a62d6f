//! Object storage for images: content-addressed keys (the SHA-256 of the bytes) through
//! `object_store`, in a local folder (`EASEL_DATA_DIR/images` by default) or an S3-compatible bucket.

pub mod download;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
}

/// The stored key of some bytes: their SHA-256, hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn key(kind: &str, hash: &str) -> Path {
    Path::from(format!("{kind}/{}/{}/{hash}", &hash[..2], &hash[2..4]))
}

impl Storage {
    /// The store the configuration names: the S3 bucket when set, else the local folder.
    pub fn from_config(config: &crate::config::GenerationConfig) -> anyhow::Result<Self> {
        match &config.s3 {
            Some(s3) => Self::s3(s3),
            None => Self::local(&config.storage_dir),
        }
    }

    pub fn s3(config: &crate::config::S3Config) -> anyhow::Result<Self> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key.expose());
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        let store = builder
            .build()
            .map_err(|e| anyhow::anyhow!("S3 storage (EASEL_S3_*): {e}"))?;
        Ok(Self {
            store: Arc::new(store),
        })
    }

    pub fn local(dir: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            store: Arc::new(store),
        })
    }

    /// Stores `bytes` under their hash (a no-op in effect when they are already there) and returns it.
    pub async fn put(&self, kind: &str, bytes: Vec<u8>) -> anyhow::Result<String> {
        let hash = content_hash(&bytes);
        self.store
            .put(&key(kind, &hash), PutPayload::from(bytes))
            .await?;
        Ok(hash)
    }

    pub async fn get(&self, kind: &str, hash: &str) -> anyhow::Result<Bytes> {
        Ok(self.store.get(&key(kind, hash)).await?.bytes().await?)
    }

    pub async fn exists(&self, kind: &str, hash: &str) -> anyhow::Result<bool> {
        match self.store.head(&key(kind, hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, kind: &str, hash: &str) -> anyhow::Result<()> {
        self.store.delete(&key(kind, hash)).await?;
        Ok(())
    }
}

/// A WebP thumbnail at most `max` pixels on its longer side. An image already that small keeps its
/// size: `thumbnail` would scale it up, making a larger file than the original at many times the cost.
pub fn thumbnail(png: &[u8], max: u32) -> anyhow::Result<Vec<u8>> {
    let image = image::load_from_memory(png)?;
    let thumb = if image.width() <= max && image.height() <= max {
        image.to_rgba8()
    } else {
        image.thumbnail(max, max).to_rgba8()
    };
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out).encode(
        thumb.as_raw(),
        thumb.width(),
        thumb.height(),
        image::ExtendedColorType::Rgba8,
    )?;
    Ok(out)
}

/// The type of some bytes (an image, or a glTF binary model), by their signature, never by a name or a header someone sent.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => Some("image/png"),
        [0xFF, 0xD8, 0xFF, ..] => Some("image/jpeg"),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Some("image/webp"),
        [b'G', b'I', b'F', b'8', ..] => Some("image/gif"),
        [b'g', b'l', b'T', b'F', 2, 0, 0, 0, ..] => Some(crate::model3d::CONTENT_TYPE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]))
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )?;
        Ok(bytes)
    }

    fn size_of(webp: &[u8]) -> anyhow::Result<(u32, u32)> {
        assert_eq!(sniff(webp), Some("image/webp"));
        Ok(image::load_from_memory(webp)?.into_rgb8().dimensions())
    }

    #[test]
    fn thumbnails_shrink_large_images_and_never_enlarge_small_ones() -> anyhow::Result<()> {
        assert_eq!(size_of(&thumbnail(&png(1024, 512)?, 384)?)?, (384, 192));
        assert_eq!(size_of(&thumbnail(&png(300, 900)?, 384)?)?, (128, 384));
        assert_eq!(size_of(&thumbnail(&png(64, 64)?, 384)?)?, (64, 64));
        assert_eq!(size_of(&thumbnail(&png(384, 100)?, 384)?)?, (384, 100));
        Ok(())
    }
}
