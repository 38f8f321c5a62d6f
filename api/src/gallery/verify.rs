//! `easel admin verify-files`: every live image's original and thumbnail are in storage. A row
//! whose original is gone answers 500 when fetched; this finds them all at once, and can make a
//! lost thumbnail again from its original (as the file route does when it finds one gone).
//! `easel admin remake-thumbnails`: every live image's thumbnail made again with this version's
//! encoder.

use super::store::{self, ImageFiles};
use crate::app::AppState;
use crate::generation::ImageId;
use diesel_async::AsyncConnection;
use futures_util::StreamExt;
use std::collections::HashSet;

/// Images read per page.
const PAGE: i64 = 500;
/// Files looked up at once (a local stat is quick; an S3 `HEAD` is a round trip).
const AT_ONCE: usize = 16;

/// Live images' files a page at a time, in id order.
#[derive(Default)]
struct Pages {
    after: Option<ImageId>,
}

impl Pages {
    async fn next(&mut self, state: &AppState) -> anyhow::Result<Option<Vec<ImageFiles>>> {
        let mut conn = state.pool.get().await?;
        let page = store::live_image_files(&mut conn, self.after, PAGE).await?;
        self.after = page.last().map(|image| image.id);
        Ok(Some(page).filter(|page| !page.is_empty()))
    }
}

/// A live image's file that storage does not have.
#[derive(Debug, Clone)]
pub struct MissingFile {
    pub image_id: ImageId,
    /// `original` or `thumb`.
    pub variant: &'static str,
    pub hash: String,
    /// The thumbnail was made again from the original (`--repair`).
    pub repaired: bool,
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    pub images: u64,
    pub missing: Vec<MissingFile>,
}

/// Checks every live image's files, a page at a time. A file found missing is looked up again
/// under its lock (the one jobs and the sweep take), so an image deleted meanwhile is not
/// reported. With `repair`, a missing thumbnail of an image (not a 3D model) whose original is
/// there is made again.
pub async fn verify_files(state: &AppState, repair: bool) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut pages = Pages::default();
    while let Some(page) = pages.next(state).await? {
        report.images += page.len() as u64;
        // A file shared by images of one page is looked up once (a store-wide set would grow with
        // the store).
        let mut seen = HashSet::new();
        let wanted: Vec<(&ImageFiles, &'static str, &str)> = page
            .iter()
            .flat_map(|image| {
                [
                    (image, "originals", image.content_hash.as_str()),
                    (image, "thumbs", image.thumb_hash.as_str()),
                ]
            })
            .filter(|(_, kind, hash)| seen.insert((*kind, *hash)))
            .collect();
        let found: Vec<anyhow::Result<bool>> = futures_util::stream::iter(&wanted)
            .map(|(_, kind, hash)| state.storage.exists(kind, hash))
            .buffered(AT_ONCE)
            .collect()
            .await;
        for ((image, kind, hash), found) in wanted.iter().zip(found) {
            if found? {
                continue;
            }
            if let Some(missing) = confirm(state, image, kind, hash, repair).await? {
                report.missing.push(missing);
            }
        }
    }
    Ok(report)
}

/// Makes a live image's lost thumbnail again from its original, as `verify-files --repair` does,
/// for the file route that found it gone: true when it was made (or another request made it
/// meanwhile), false when it cannot be (a 3D model's preview, or the original is gone too).
pub async fn heal_thumb(state: &AppState, image: ImageFiles) -> anyhow::Result<bool> {
    if image.kind != "image" {
        return Ok(false);
    }
    let thumb = image.thumb_hash.clone();
    Ok(
        match confirm(state, &image, "thumbs", &thumb, true).await? {
            Some(missing) => missing.repaired,
            None => true,
        },
    )
}

/// The file of `image` still missing under its lock while a live image uses it; repaired when it
/// is a thumbnail that can be made again and `repair` is asked.
async fn confirm(
    state: &AppState,
    image: &ImageFiles,
    kind: &'static str,
    hash: &str,
    repair: bool,
) -> anyhow::Result<Option<MissingFile>> {
    let thumb = kind == "thumbs";
    // Made before the transaction, so that its file's lock is taken with the lost one's, in order.
    let remade = if thumb && repair && image.kind == "image" {
        remake_thumb(state, image).await?
    } else {
        None
    };
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        let mut locks = vec![hash];
        locks.extend(remade.as_ref().map(|(new, _)| new.as_str()));
        store::lock_files(conn, &locks).await?;
        if !store::file_in_use(conn, hash, thumb).await? || state.storage.exists(kind, hash).await?
        {
            return Ok(None);
        }
        let repaired = match remade {
            Some((new, bytes)) => {
                state.storage.put("thumbs", bytes).await?;
                if new != hash {
                    store::replace_thumb(conn, hash, &new).await?;
                }
                true
            }
            None => false,
        };
        Ok(Some(MissingFile {
            image_id: image.id,
            variant: if thumb { "thumb" } else { "original" },
            hash: hash.to_owned(),
            repaired,
        }))
    })
    .await
}

/// `image`'s thumbnail made again from its original (its hash and bytes), when the original is
/// there.
async fn remake_thumb(
    state: &AppState,
    image: &ImageFiles,
) -> anyhow::Result<Option<(String, Vec<u8>)>> {
    if !state
        .storage
        .exists("originals", &image.content_hash)
        .await?
    {
        return Ok(None);
    }
    let original = state.storage.get("originals", &image.content_hash).await?;
    let thumb = tokio::task::spawn_blocking(move || {
        crate::storage::thumbnail_of(
            &image::load_from_memory(&original)?,
            crate::storage::THUMB_MAX,
        )
    })
    .await??;
    Ok(Some((crate::storage::content_hash(&thumb), thumb)))
}

/// What `remake-thumbnails` did.
#[derive(Debug, Default)]
pub struct Remade {
    /// Live images looked at (3D models included).
    pub images: u64,
    /// Thumbnail files replaced by a new one.
    pub remade: u64,
    /// Images whose original is missing (see `verify-files`), left as they are.
    pub without_original: u64,
    /// The replaced thumbnails' bytes, and their replacements'.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Makes every live image's thumbnail again from its original with this version's encoder, for
/// thumbnails an older version stored (lossless WebP before lossy): the images are pointed at the
/// new file, and the old one is removed once no live image uses it. A thumbnail that comes out the
/// same is left alone, so a second run changes nothing. A 3D model's thumbnail is its preview image,
/// not made from its original: those are left too.
pub async fn remake_thumbnails(state: &AppState) -> anyhow::Result<Remade> {
    let mut report = Remade::default();
    let mut pages = Pages::default();
    while let Some(page) = pages.next(state).await? {
        report.images += page.len() as u64;
        // Images of one page that shared a thumbnail were all moved by the first of them.
        let mut replaced = HashSet::new();
        for image in page.iter().filter(|i| i.kind == "image") {
            if replaced.contains(&image.thumb_hash) {
                continue;
            }
            let Some((new, bytes)) = remake_thumb(state, image).await? else {
                report.without_original += 1;
                continue;
            };
            if new == image.thumb_hash {
                continue;
            }
            let before = match state
                .storage
                .open("thumbs", &image.thumb_hash, None)
                .await?
            {
                Some(reading) => reading.size,
                None => 0,
            };
            let after_len = bytes.len() as u64;
            if replace(state, &image.thumb_hash, &new, bytes).await? {
                report.remade += 1;
                report.bytes_before += before;
                report.bytes_after += after_len;
            }
            replaced.insert(image.thumb_hash.clone());
        }
    }
    Ok(report)
}

/// Stores thumbnail `new` and points the live images using `old` at it; then removes `old` if no
/// live image uses it. The file is removed only after the rows have moved (committed), so a failure
/// in between leaves an unused file, never an image without one. Returns whether any image moved.
async fn replace(state: &AppState, old: &str, new: &str, bytes: Vec<u8>) -> anyhow::Result<bool> {
    let mut conn = state.pool.get().await?;
    let moved = conn
        .transaction::<_, anyhow::Error, _>(async |conn| {
            store::lock_files(conn, &[old, new]).await?;
            state.storage.put("thumbs", bytes).await?;
            Ok(store::replace_thumb(conn, old, new).await?)
        })
        .await?;
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        store::lock_files(conn, &[old]).await?;
        if !store::file_in_use(conn, old, true).await? {
            state.storage.delete("thumbs", old).await?;
        }
        Ok(())
    })
    .await?;
    Ok(moved > 0)
}
