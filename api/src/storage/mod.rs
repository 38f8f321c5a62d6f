//! Object storage for images: content-addressed keys (the SHA-256 of the bytes) through
//! `object_store`, in a local folder (`EASEL_DATA_DIR/images` by default) or an S3-compatible bucket.

pub mod download;
mod read;

pub use read::{ByteRange, Reading};

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The folder of a local store: writes and checks there are a few system calls, done on the
    /// caller's thread (see [`Storage::put_blocking`]) rather than each in a thread hop of its own.
    local: Option<Arc<LocalDir>>,
}

/// A local store's folder, and whether its writes reach the disk before they count as done.
struct LocalDir {
    root: std::path::PathBuf,
    /// Each new file's data and its directory entry are synced before the write returns, so that
    /// a row committed after it never outlives its file in a power loss (`EASEL_STORAGE_SYNC`).
    sync: bool,
    /// `fsync`/`fdatasync` calls made, for tests and to see what durability costs.
    syncs: AtomicU64,
}

impl LocalDir {
    fn sync_file(&self, file: &std::fs::File) -> std::io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        file.sync_data()
    }

    /// Makes the entries of `dir` (a file renamed or a folder made in it) durable.
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.sync_file(&std::fs::File::open(dir)?)
    }

    /// Everything written to the store's file system so far, data and names, in one call.
    fn sync_all(&self) -> std::io::Result<()> {
        let root = std::fs::File::open(&self.root)?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        nix::unistd::syncfs(&root).map_err(std::io::Error::from)
    }
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
            None => Self::local(&config.storage_dir, config.storage_sync),
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
            local: None,
        })
    }

    /// A store in the folder `dir`, made if missing; `sync` as `EASEL_STORAGE_SYNC`.
    pub fn local(dir: &std::path::Path, sync: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let root = std::fs::canonicalize(dir)?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        let local = LocalDir {
            root,
            sync,
            syncs: AtomicU64::new(0),
        };
        if sync && let Some(parent) = local.root.parent() {
            local.sync_dir(parent)?;
        }
        Ok(Self {
            store: Arc::new(store),
            local: Some(Arc::new(local)),
        })
    }

    /// How many `fsync`s a local store has made (0 for any other store).
    pub fn syncs(&self) -> u64 {
        self.local
            .as_ref()
            .map_or(0, |local| local.syncs.load(Ordering::Relaxed))
    }

    /// Where a local store keeps `kind/hash`: the file `object_store` reads it from.
    fn local_path(&self, kind: &str, hash: &str) -> Option<std::path::PathBuf> {
        self.local
            .as_ref()
            .map(|local| local.root.join(key(kind, hash).as_ref()))
    }

    /// [`Storage::put`] for a local store, on the calling thread (so call it where blocking is
    /// allowed); `None` for any other store. Bytes already there are not written again: the name
    /// is their hash. A new file is written under a temporary name and renamed into place, so a
    /// reader never sees part of one.
    pub fn put_blocking(&self, kind: &str, bytes: &[u8]) -> Option<anyhow::Result<String>> {
        self.write_local(kind, bytes, true)
    }

    /// [`Storage::put_blocking`] without the syncs: the caller makes the files durable, many at a
    /// time, with [`Storage::flush`] before anything that points to them commits.
    pub fn stage_blocking(&self, kind: &str, bytes: &[u8]) -> Option<anyhow::Result<String>> {
        self.write_local(kind, bytes, false)
    }

    fn write_local(&self, kind: &str, bytes: &[u8], sync: bool) -> Option<anyhow::Result<String>> {
        let hash = content_hash(bytes);
        let local = self.local.as_ref()?;
        let path = local.root.join(key(kind, &hash).as_ref());
        Some(write_once(local, &path, bytes, sync && local.sync).map(|()| hash))
    }

    /// Makes every file staged so far durable: one `syncfs` of a local store (when it syncs at
    /// all), in place of four syncs per output. Other stores are durable once a put returns.
    pub async fn flush(&self) -> anyhow::Result<()> {
        match &self.local {
            Some(local) if local.sync => {
                let local = Arc::clone(local);
                Ok(tokio::task::spawn_blocking(move || local.sync_all()).await??)
            }
            _ => Ok(()),
        }
    }

    /// Stores `bytes` under their hash (a no-op in effect when they are already there) and returns it.
    pub async fn put(&self, kind: &str, bytes: Vec<u8>) -> anyhow::Result<String> {
        if self.local.is_some() {
            // Our own write rather than `object_store`'s, which never syncs.
            let storage = self.clone();
            let kind = kind.to_owned();
            return tokio::task::spawn_blocking(move || storage.put_blocking(&kind, &bytes))
                .await?
                .ok_or_else(|| anyhow::anyhow!("a local store writes in place"))?;
        }
        let hash = content_hash(&bytes);
        self.store
            .put(&key(kind, &hash), PutPayload::from(bytes))
            .await?;
        Ok(hash)
    }

    pub async fn get(&self, kind: &str, hash: &str) -> anyhow::Result<Bytes> {
        Ok(self.store.get(&key(kind, hash)).await?.bytes().await?)
    }

    /// Opens `kind/hash` to be sent (`None` when it is not there): all of it, or the range asked
    /// for when the file has it. Its bytes are read as the body is sent.
    pub async fn open(
        &self,
        kind: &str,
        hash: &str,
        range: Option<ByteRange>,
    ) -> anyhow::Result<Option<Reading>> {
        if let Some(path) = self.local_path(kind, hash) {
            return Ok(tokio::task::spawn_blocking(move || read::open_local(&path, range)).await??);
        }
        read::open_remote(self.store.as_ref(), &key(kind, hash), range).await
    }

    pub async fn exists(&self, kind: &str, hash: &str) -> anyhow::Result<bool> {
        // A local check is one stat of a cached directory entry: cheaper than a thread hop.
        if let Some(path) = self.local_path(kind, hash) {
            return match std::fs::metadata(&path) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e.into()),
            };
        }
        match self.store.head(&key(kind, hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the file if it is there: a removal cut short by a crash is simply done again.
    pub async fn delete(&self, kind: &str, hash: &str) -> anyhow::Result<()> {
        match self.store.delete(&key(kind, hash)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Writes `bytes` to `path` unless a file is there already: under a temporary name (`object_store`'s
/// `#` suffix, which its listings skip) and renamed into place. With `sync`, the data is on disk
/// before the rename and the name is on disk before this returns.
fn write_once(
    local: &LocalDir,
    path: &std::path::Path,
    bytes: &[u8],
    sync: bool,
) -> anyhow::Result<()> {
    use std::io::Write;
    let parent = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("a stored file has a folder"))?;
    if !sync {
        if path.exists() {
            return Ok(());
        }
    } else {
        match std::fs::File::open(path) {
            Ok(existing) => {
                // Another writer may have renamed it into place a moment ago and not synced it
                // yet; syncing what is already on disk costs next to nothing.
                local.sync_file(&existing)?;
                local.sync_dir(parent)?;
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut staged = path.as_os_str().to_owned();
    staged.push(format!("#{}", uuid::Uuid::now_v7().simple()));
    let staged = std::path::PathBuf::from(staged);
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staged)
    };
    let mut file = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(parent)?;
            if sync {
                // The folders just made (`kind/ab/cd`) are entries in the ones above them.
                for dir in parent.ancestors().skip(1) {
                    local.sync_dir(dir)?;
                    if dir == local.root {
                        break;
                    }
                }
            }
            open()?
        }
        other => other?,
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| {
            if sync {
                local.sync_file(&file)?;
            }
            std::fs::rename(&staged, path)
        })
        .and_then(|()| {
            if sync {
                local.sync_dir(parent)?;
            }
            Ok(())
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staged);
        return Err(e.into());
    }
    Ok(())
}

/// The longer side of the thumbnail stored beside every image: the job that stores an output and
/// `verify-files --repair` must make the same one.
pub const THUMB_MAX: u32 = 384;

/// How lossy a thumbnail is (libwebp's quality, 0 to 100). 80 keeps it hard to tell from the
/// original at its size, at a fifth to a thirtieth of a lossless file's bytes (README, "Generating
/// images"), which is what a gallery page of thumbnails costs to load.
const THUMB_QUALITY: f32 = 80.0;

/// libwebp's effort (0 to 6; its default is 4). At 2 a 384 px thumbnail encodes in half the time
/// of 4 (2 ms against 7 for the `local` renderer's output), for files at most 4% larger.
const THUMB_METHOD: i32 = 2;

/// A lossy WebP thumbnail at most `max` pixels on its longer side, with an alpha channel only when
/// the image has transparent pixels. An image already that small keeps its size: `thumbnail` would
/// scale it up, making a larger file than the original at many times the cost. The same image
/// always gives the same bytes (libwebp is deterministic for the same settings).
pub fn thumbnail(png: &[u8], max: u32) -> anyhow::Result<Vec<u8>> {
    thumbnail_of(&image::load_from_memory(png)?, max)
}

/// [`thumbnail`] of an image already decoded.
pub fn thumbnail_of(image: &image::DynamicImage, max: u32) -> anyhow::Result<Vec<u8>> {
    let scaled;
    let image = if image.width() <= max && image.height() <= max {
        image
    } else {
        scaled = image.thumbnail(max, max);
        &scaled
    };
    let mut config = webp::WebPConfig::new()
        .map_err(|()| anyhow::anyhow!("libwebp refused its own default settings"))?;
    config.quality = THUMB_QUALITY;
    config.method = THUMB_METHOD;
    let transparent = image
        .color()
        .has_alpha()
        .then(|| image.to_rgba8())
        .filter(|rgba| rgba.pixels().any(|pixel| pixel.0[3] < u8::MAX));
    let encoded = match transparent {
        Some(rgba) => webp::Encoder::from_rgba(rgba.as_raw(), rgba.width(), rgba.height())
            .encode_advanced(&config),
        None => {
            let rgb = image.to_rgb8();
            webp::Encoder::from_rgb(rgb.as_raw(), rgb.width(), rgb.height())
                .encode_advanced(&config)
        }
    };
    encoded
        .map(|webp| webp.to_vec())
        .map_err(|e| anyhow::anyhow!("encoding the WebP thumbnail failed: {e:?}"))
}

/// The file-name extension for a type [`sniff`] names, for the name a download is saved under.
pub fn extension_of(content_type: &str) -> &'static str {
    match content_type {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        crate::model3d::CONTENT_TYPE => "glb",
        _ => "bin",
    }
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

    #[tokio::test]
    async fn local_writes_are_read_back_whole_and_made_once() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("easel-storage-{}", uuid::Uuid::now_v7()));
        let storage = Storage::local(&dir, false)?;
        let bytes = png(9, 5)?;
        let hash = storage
            .put_blocking("originals", &bytes)
            .ok_or_else(|| anyhow::anyhow!("a local store writes on the caller's thread"))??;
        assert_eq!(hash, content_hash(&bytes));
        // Read back through object_store, as the file route reads it.
        assert_eq!(storage.get("originals", &hash).await?.as_ref(), &bytes[..]);
        assert!(storage.exists("originals", &hash).await?);
        assert!(!storage.exists("thumbs", &hash).await?);
        // The same bytes again: the file is left as it was (same inode), nothing staged is left.
        let path = storage
            .local_path("originals", &hash)
            .ok_or_else(|| anyhow::anyhow!("local"))?;
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path)?);
        storage
            .put_blocking("originals", &bytes)
            .ok_or_else(|| anyhow::anyhow!("local"))??;
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path)?),
            inode
        );
        let parent = path.parent().ok_or_else(|| anyhow::anyhow!("parent"))?;
        assert_eq!(std::fs::read_dir(parent)?.count(), 1);
        storage.flush().await?;
        assert_eq!(storage.syncs(), 0, "EASEL_STORAGE_SYNC=false syncs nothing");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn synced_writes_reach_the_disk_before_they_return() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("easel-storage-{}", uuid::Uuid::now_v7()));
        let storage = Storage::local(&dir, true)?;
        let after_open = storage.syncs();
        assert_eq!(after_open, 1, "the store's own folder entry");
        let first = png(3, 3)?;
        storage
            .put_blocking("originals", &first)
            .ok_or_else(|| anyhow::anyhow!("local"))??;
        // The three folders made (originals/ab/cd) in their parents, the data, then the name.
        assert_eq!(storage.syncs() - after_open, 3 + 2);
        // Through the async put (uploads, and the commit's repair of a swept file) as well.
        let before = storage.syncs();
        let thumb_hash = storage.put("thumbs", first.clone()).await?;
        assert_eq!(thumb_hash, content_hash(&first));
        assert_eq!(
            storage.get("thumbs", &thumb_hash).await?.as_ref(),
            &first[..]
        );
        assert_eq!(storage.syncs() - before, 3 + 2);
        // A file already there is synced again, which costs little when it is clean: the writer
        // that renamed it into place may not have synced it yet.
        let before = storage.syncs();
        storage.put("thumbs", first).await?;
        assert_eq!(storage.syncs() - before, 2);
        // A job's outputs are staged unsynced and flushed with their batch in one syncfs.
        let before = storage.syncs();
        let staged = png(5, 5)?;
        let staged_hash = storage
            .stage_blocking("originals", &staged)
            .ok_or_else(|| anyhow::anyhow!("local"))??;
        assert_eq!(storage.syncs(), before, "staging syncs nothing");
        storage.flush().await?;
        assert_eq!(storage.syncs() - before, 1, "one flush for the lot");
        assert_eq!(
            storage.get("originals", &staged_hash).await?.as_ref(),
            &staged[..]
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn files_are_read_in_pieces_whole_or_in_part() -> anyhow::Result<()> {
        use futures_util::TryStreamExt;
        let dir = std::env::temp_dir().join(format!("easel-storage-{}", uuid::Uuid::now_v7()));
        let storage = Storage::local(&dir, false)?;
        let bytes = (0..600_000_u32)
            .map(|i| u8::try_from(i % 251))
            .collect::<Result<Vec<u8>, _>>()?;
        let hash = storage.put("originals", bytes.clone()).await?;
        type Read = (u64, Option<(u64, u64)>, Vec<Bytes>);
        let read = async |range| -> anyhow::Result<Read> {
            let reading = storage
                .open("originals", &hash, range)
                .await?
                .ok_or_else(|| anyhow::anyhow!("stored"))?;
            let (size, range, len) = (reading.size, reading.range, reading.len());
            let pieces: Vec<Bytes> = reading.body.try_collect().await?;
            assert_eq!(pieces.iter().map(Bytes::len).sum::<usize>() as u64, len);
            Ok((size, range, pieces))
        };
        let (size, range, pieces) = read(None).await?;
        assert_eq!((size, range), (600_000, None));
        assert_eq!(pieces.len(), 3, "three reads of at most 256 KiB");
        assert_eq!(pieces.concat(), bytes);
        // Longer than a piece: pieces count from the range's start.
        let (_, range, pieces) = read(Some(ByteRange::Span(100_000, 400_000))).await?;
        assert_eq!(range, Some((100_000, 400_000)));
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces.concat(), bytes[100_000..=400_000]);
        let (_, range, pieces) = read(Some(ByteRange::Last(10))).await?;
        assert_eq!(range, Some((599_990, 599_999)));
        assert_eq!(pieces.concat(), bytes[599_990..]);
        // A range the file does not have: the whole file.
        let (_, range, pieces) = read(Some(ByteRange::From(600_000))).await?;
        assert_eq!(range, None);
        assert_eq!(pieces.concat(), bytes);
        assert!(storage.open("thumbs", &hash, None).await?.is_none());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
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

    /// The chunk after a WebP file's header: `VP8 ` is lossy, `VP8L` lossless, `VP8X` extended
    /// (here: lossy with an alpha chunk).
    fn webp_kind(webp: &[u8]) -> &[u8] {
        &webp[12..16]
    }

    #[test]
    fn thumbnails_are_lossy_deterministic_and_close_to_the_image() -> anyhow::Result<()> {
        // Grain over a gradient, as in a photograph: what lossless compression does worst.
        let mut grain = 0x2545_f491_u32;
        let photo = image::RgbImage::from_fn(768, 512, |x, y| {
            grain ^= grain << 13;
            grain ^= grain >> 17;
            grain ^= grain << 5;
            let noise = (grain % 24) as u8;
            image::Rgb([(x / 4) as u8 + noise, (y / 3) as u8 + noise, 90 + noise])
        });
        let photo = image::DynamicImage::ImageRgb8(photo);
        let thumb = thumbnail_of(&photo, 384)?;
        assert_eq!(
            webp_kind(&thumb),
            b"VP8 ",
            "lossy, without an alpha channel"
        );
        assert_eq!(
            thumbnail_of(&photo, 384)?,
            thumb,
            "the same bytes every time"
        );

        let scaled = photo.thumbnail(384, 384).to_rgb8();
        let mut lossless = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut lossless).encode(
            scaled.as_raw(),
            scaled.width(),
            scaled.height(),
            image::ExtendedColorType::Rgb8,
        )?;
        assert!(
            thumb.len() * 4 < lossless.len(),
            "{} bytes against {} lossless",
            thumb.len(),
            lossless.len()
        );
        // Close to the scaled image: a few levels off on average, of 255.
        let decoded = image::load_from_memory(&thumb)?.to_rgb8();
        assert_eq!(decoded.dimensions(), scaled.dimensions());
        let error: u64 = decoded
            .as_raw()
            .iter()
            .zip(scaled.as_raw())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean = error as f64 / scaled.as_raw().len() as f64;
        assert!(mean < 8.0, "mean error {mean}");

        // Transparency is kept; an alpha channel that is all opaque is dropped.
        let clear =
            image::RgbaImage::from_fn(40, 30, |x, _| image::Rgba([200, 10, 10, (x * 6) as u8]));
        let clear = thumbnail_of(&image::DynamicImage::ImageRgba8(clear), 384)?;
        assert_eq!(webp_kind(&clear), b"VP8X");
        let alpha = image::load_from_memory(&clear)?.to_rgba8();
        assert!(alpha.get_pixel(0, 0).0[3] < 16 && alpha.get_pixel(39, 0).0[3] > 200);
        let opaque = image::RgbaImage::from_pixel(40, 30, image::Rgba([1, 2, 3, 255]));
        let opaque = thumbnail_of(&image::DynamicImage::ImageRgba8(opaque), 384)?;
        assert_eq!(webp_kind(&opaque), b"VP8 ");
        Ok(())
    }
}
