//! An account's data as one zip archive: the account, its generations, its images with their
//! files, its collections, its credit ledger and its purchases. A signed-in person asks for a link
//! ([`link`]); the link works for [`LINK_TTL_SECS`], and only while the session that made it lasts
//! and the account is open, so a browser can save the archive as a plain download. The archive is
//! written as it is sent, a page of rows and one file at a time, so its size costs no memory and no
//! storage.

pub mod routes;

use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::ApiError;
use crate::identity::activity;
use crate::identity::principal::Via;
use crate::identity::{Principal, SessionId, UserId};
use bytes::Bytes;
use chrono::{DateTime, Datelike, Timelike, Utc};
use futures_util::Stream;
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// How long a download link works.
pub const LINK_TTL_SECS: i64 = 15 * 60;

/// Downloads an account may start per hour: each reads every file it has.
const DOWNLOADS_PER_HOUR: u32 = 10;

/// Rows read per query while the archive is written.
const PAGE: i64 = 100;

/// Bytes gathered before they are handed to the response.
const CHUNK: usize = 64 * 1024;

/// What the archive's `README.txt` says.
const README: &str = "\
Your data from Easel.

account.json        your account as GET /v1/me shows it, and when this archive was made
generations.jsonl   every generation, newest first, one JSON object per line (as the API shows them)
images.jsonl        every image you have, newest first, with `file`: where its file is in here
images/             the image files themselves, as they were made (PNG, WebP, or glTF for 3D)
uploads/            the photos you uploaded to generate from (a generation's `image_input` names one)
collections.jsonl   your collections, each with `image_ids` in the collection's order
credits.jsonl       your credit ledger, newest first: grants, spending, refunds and purchases
purchases.jsonl     your purchases of credits
security-events.jsonl  sign-ins and changes to how your account signs in, newest first

Images you deleted are not here. Other people's images in your collections are listed by id in
collections.jsonl; their files are not here.
";

/// A download link for `principal`'s archive: the path, and when it stops working.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportLink {
    /// Download it with a plain GET, no credentials needed; it works once or many times until
    /// `expires_at`, while the session that asked stays signed in.
    #[schema(
        example = "/v1/exports/0192b7a0-0000-7000-8000-000000000001?session=0192b7a0-0000-7000-8000-000000000002&expires=1790000000&sig=…"
    )]
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// The session a link is tied to, as its message and query write it.
fn session_of(principal: &Principal) -> Option<SessionId> {
    match principal.via {
        Via::Session(id) => Some(id),
        _ => None,
    }
}

fn message(user: UserId, session: Option<SessionId>, expires: i64) -> String {
    let session = session.map_or_else(|| "none".to_owned(), |s| s.0.to_string());
    format!("export:{}:{session}:{expires}", user.0)
}

/// A link to `principal`'s archive, good until `expires` (unix seconds).
pub fn link(state: &AppState, principal: &Principal, expires: i64) -> ExportLink {
    let session = session_of(principal);
    let sig = state
        .signer
        .sign(&message(principal.user_id, session, expires));
    let session = session
        .map(|s| format!("session={}&", s.0))
        .unwrap_or_default();
    ExportLink {
        url: format!(
            "/v1/exports/{}?{session}expires={expires}&sig={sig}",
            principal.user_id.0
        ),
        expires_at: DateTime::from_timestamp(expires, 0).unwrap_or_default(),
    }
}

/// Who the link acts for, if it is one [`link`] made, has not expired, and its session and
/// account are still good. Every refusal is the same 404.
pub async fn open(
    state: &AppState,
    user: UserId,
    session: Option<SessionId>,
    expires: i64,
    sig: &str,
    now: i64,
) -> Result<Principal, ApiError> {
    let signed = state.signer.verifies(&message(user, session, expires), sig);
    if !signed || now > expires || expires - now > LINK_TTL_SECS {
        return Err(ApiError::not_found("link"));
    }
    let principal = crate::identity::service::principal_of_link(state, user, session).await?;
    crate::http::rate_limit::enforce(
        state.rate_limits.as_ref(),
        &format!("export:{user}"),
        DOWNLOADS_PER_HOUR,
        crate::http::rate_limit::HOUR,
        "downloads of this account's data",
    )?;
    let mut conn = state.pool.get().await?;
    activity::record(
        &mut conn,
        user,
        activity::Activity::DataDownloaded,
        activity::Source::Principal(&principal),
    )
    .await;
    Ok(principal)
}

/// `principal`'s archive as a stream of bytes. It is written on a blocking thread (the zip writer
/// is synchronous) that reads rows and files as it goes; a reader that goes away stops it. A
/// failure part-way ends the stream with an error, so the download fails rather than look whole.
pub fn stream(
    state: Arc<AppState>,
    principal: Principal,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel(4);
    let runtime = Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = Channel {
            tx: tx.clone(),
            buffer: Vec::with_capacity(CHUNK),
        };
        let written = write_archive(&runtime, &state, &principal, &mut out);
        match written {
            Ok(()) => {}
            Err(_) if tx.is_closed() => {
                tracing::info!(user.id = %principal.user_id.0, "export download closed early");
            }
            Err(e) => {
                tracing::error!(user.id = %principal.user_id.0, error = %e, "export failed");
                let _ = tx.blocking_send(Err(std::io::Error::other("the archive was cut short")));
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
}

/// Hands what the zip writer writes to the response in [`CHUNK`]s, waiting while the reader is
/// behind.
struct Channel {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl Channel {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the download was closed")
        })
    }
}

impl Write for Channel {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

type Zip<'a> = ZipWriter<zip::write::StreamWriter<&'a mut Channel>>;

fn api(error: ApiError) -> anyhow::Error {
    anyhow::anyhow!("{error:?}")
}

/// A zip entry's time (zip keeps local time without a zone; ours is UTC). Times zip cannot hold
/// (before 1980) are left at its default.
fn options(compression: CompressionMethod, at: DateTime<Utc>) -> SimpleFileOptions {
    let options = SimpleFileOptions::default().compression_method(compression);
    let time = zip::DateTime::from_date_and_time(
        u16::try_from(at.year()).unwrap_or(1980),
        at.month() as u8,
        at.day() as u8,
        at.hour() as u8,
        at.minute() as u8,
        at.second() as u8,
    );
    match time {
        Ok(time) => options.last_modified_time(time),
        Err(_) => options,
    }
}

/// Calls `each` with every page `fetch` gives, following the cursors to the end.
fn each_page<T, F, Fut>(
    runtime: &Handle,
    mut fetch: F,
    mut each: impl FnMut(Vec<T>) -> anyhow::Result<()>,
) -> anyhow::Result<()>
where
    F: FnMut(PageParams) -> Fut,
    Fut: Future<Output = Result<Page<T>, ApiError>>,
{
    let mut cursor = None;
    loop {
        let params = PageParams {
            limit: Some(PAGE),
            cursor: cursor.take(),
        };
        let page = runtime.block_on(fetch(params)).map_err(api)?;
        each(page.data)?;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// One JSON object and a line break.
fn line(zip: &mut Zip<'_>, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *zip, value)?;
    zip.write_all(b"\n")?;
    Ok(())
}

/// Where a stored file goes in the archive: `folder/<id>.<extension of its type>`.
fn entry_name(folder: &str, id: uuid::Uuid, content_type: &str) -> String {
    format!(
        "{folder}/{id}.{}",
        crate::storage::extension_of(content_type)
    )
}

/// A file in storage (an image's original, an upload) to put in the archive.
struct Stored<'a> {
    kind: &'static str,
    hash: &'a str,
    name: String,
    made: DateTime<Utc>,
    /// Its image's or upload's id, for `MISSING.txt`.
    id: uuid::Uuid,
}

/// Adds a stored file as it is (images are compressed already). One storage has lost is noted in
/// `missing` instead; any other failure to read it ends the archive.
fn add_stored(
    zip: &mut Zip<'_>,
    runtime: &Handle,
    state: &AppState,
    file: Stored<'_>,
    missing: &mut Vec<uuid::Uuid>,
) -> anyhow::Result<()> {
    let bytes = match runtime.block_on(state.storage.get(file.kind, file.hash)) {
        Ok(bytes) => bytes,
        Err(e) => {
            if runtime.block_on(state.storage.exists(file.kind, file.hash))? {
                return Err(e);
            }
            tracing::error!(id = %file.id, kind = file.kind, hash = file.hash,
                "an exported file is missing from storage");
            missing.push(file.id);
            return Ok(());
        }
    };
    zip.start_file(file.name, options(CompressionMethod::Stored, file.made))?;
    zip.write_all(&bytes)?;
    Ok(())
}

fn write_archive(
    runtime: &Handle,
    state: &AppState,
    principal: &Principal,
    out: &mut Channel,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let text = options(CompressionMethod::Deflated, now);
    let mut zip = ZipWriter::new_stream(&mut *out);

    zip.start_file("README.txt", text)?;
    zip.write_all(README.as_bytes())?;

    let account = runtime
        .block_on(crate::identity::service::get_me(state, principal))
        .map_err(api)?;
    zip.start_file("account.json", text)?;
    serde_json::to_writer_pretty(
        &mut zip,
        &serde_json::json!({"exported_at": now, "account": account}),
    )?;

    zip.start_file("generations.jsonl", text)?;
    each_page(
        runtime,
        |page| async move { crate::generation::service::list(state, principal, &page, None).await },
        |generations| {
            generations
                .iter()
                .try_for_each(|generation| line(&mut zip, generation))
        },
    )?;

    let my_images = |page: PageParams| async move {
        crate::gallery::service::my_images(state, principal, &page, Default::default()).await
    };
    zip.start_file("images.jsonl", text)?;
    each_page(runtime, my_images, |images| {
        images.into_iter().try_for_each(|image| {
            let file = entry_name("images", image.id.0, &image.content_type);
            let mut value = serde_json::to_value(image)?;
            value["file"] = file.into();
            line(&mut zip, &value)
        })
    })?;
    // Files storage has lost are listed at the end rather than end the whole archive.
    let mut missing: Vec<uuid::Uuid> = Vec::new();
    // A second pass over the same pages: the archive is written one entry at a time, and
    // images.jsonl had to be whole before the first file.
    each_page(runtime, my_images, |images| {
        let ids: Vec<_> = images.iter().map(|image| image.id).collect();
        let files = runtime.block_on(async {
            let mut conn = state.pool.get().await?;
            anyhow::Ok(
                crate::generation::store::files_of(&mut conn, principal.user_id, &ids).await?,
            )
        })?;
        for image in images {
            let Some(file) = files.iter().find(|f| f.id == image.id) else {
                continue; // deleted since the page was read
            };
            let stored = Stored {
                kind: "originals",
                hash: &file.content_hash,
                name: entry_name("images", image.id.0, &image.content_type),
                made: image.created_at,
                id: image.id.0,
            };
            add_stored(&mut zip, runtime, state, stored, &mut missing)?;
        }
        Ok(())
    })?;

    // The photos uploaded as inputs, each under its id: a generation's `image_input` names it.
    let uploads = runtime.block_on(async {
        let mut conn = state.pool.get().await?;
        anyhow::Ok(crate::inputs::store::uploads_in_full(&mut conn, principal.user_id).await?)
    })?;
    for upload in uploads {
        let stored = Stored {
            kind: "uploads",
            hash: &upload.content_hash,
            name: entry_name("uploads", upload.id.0, &upload.content_type),
            made: upload.created_at,
            id: upload.id.0,
        };
        add_stored(&mut zip, runtime, state, stored, &mut missing)?;
    }

    zip.start_file("collections.jsonl", text)?;
    each_page(
        runtime,
        |page| async move { crate::gallery::service::my_collections(state, principal, &page).await },
        |collections| {
            collections.into_iter().try_for_each(|collection| {
                let id = collection.id;
                let mut image_ids = Vec::new();
                each_page(
                    runtime,
                    |page| async move {
                        crate::gallery::service::collection_images(
                            state,
                            Some(principal.user_id),
                            id,
                            &page,
                        )
                        .await
                    },
                    |images| {
                        image_ids.extend(images.into_iter().map(|image| image.id));
                        Ok(())
                    },
                )?;
                let mut value = serde_json::to_value(&collection)?;
                value["image_ids"] = serde_json::to_value(image_ids)?;
                line(&mut zip, &value)
            })
        },
    )?;

    zip.start_file("credits.jsonl", text)?;
    each_page(
        runtime,
        |page| async move {
            crate::credits::service::transactions(state, principal.user_id, &page, None).await
        },
        |entries| entries.iter().try_for_each(|entry| line(&mut zip, entry)),
    )?;

    zip.start_file("purchases.jsonl", text)?;
    each_page(
        runtime,
        |page| async move { crate::billing::service::purchases(state, principal, &page).await },
        |purchases| {
            purchases
                .iter()
                .try_for_each(|purchase| line(&mut zip, purchase))
        },
    )?;

    zip.start_file("security-events.jsonl", text)?;
    each_page(
        runtime,
        |page| async move { activity::list(state, principal, &page).await },
        |events| events.iter().try_for_each(|event| line(&mut zip, event)),
    )?;

    if !missing.is_empty() {
        zip.start_file("MISSING.txt", text)?;
        writeln!(
            zip,
            "The files of these images and uploads (by id) are missing from storage, so they are \
             not here. The operator can look for them with `easel admin verify-files`:"
        )?;
        for id in missing {
            writeln!(zip, "{id}")?;
        }
    }

    zip.finish()?;
    out.flush()?;
    Ok(())
}
