//! Gallery rules: who may see, change and list what. Anything a caller may not see answers exactly
//! like something that does not exist (404), so private ids cannot be probed.

use super::CollectionId;
use super::store::{self, CollectionChangeset, CollectionRow, Feed, FeedKey, ImageRow, Mine};
use super::types::{
    Collection, CreateCollectionRequest, GalleryQuery, Image, Like, MyImagesFilter, Owner, Profile,
    Sort, UpdateCollectionRequest, UpdateImageRequest,
};
use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::{ApiError, FieldError};
use crate::generation::{ImageId, Visibility};
use crate::identity::store::{UserKey, find_user_by};
use crate::identity::{Principal, UserId};
use diesel_async::{AsyncConnection, AsyncPgConnection};

/// PostgreSQL text cannot hold NUL: a filter carrying one is refused before it reaches SQL.
fn text_param(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.contains('\0') => {
            Err(ApiError::field(field, "must not contain NUL characters"))
        }
        other => Ok(other),
    }
}

/// The path an image's file is served at (`original` or `thumb`), relative to the server.
pub fn file_url(id: ImageId, variant: &str) -> String {
    format!("/v1/images/{id}/file?variant={variant}")
}

pub fn view(row: ImageRow, viewer: Option<UserId>, negative_prompt: Option<String>) -> Image {
    let mine = viewer == Some(row.user_id);
    Image {
        id: row.id,
        generation_id: row.generation_id,
        kind: if row.kind == "model3d" {
            crate::catalog::OutputKind::Model3d
        } else {
            crate::catalog::OutputKind::Image
        },
        content_type: row.content_type,
        byte_size: row.byte_size,
        vertex_count: row.vertex_count,
        url: file_url(row.id, "original"),
        thumb_url: file_url(row.id, "thumb"),
        width: row.width,
        height: row.height,
        title: row.title,
        prompt: row.prompt,
        negative_prompt: negative_prompt.filter(|_| mine),
        model: row.model,
        seed: row.seed,
        visibility: Visibility::from_db(&row.visibility),
        flagged: row.nsfw,
        like_count: row.like_count,
        liked_by_me: row.liked,
        owner: Owner {
            username: row.username,
            display_name: row.display_name,
        },
        created_at: row.created_at,
    }
}

/// The owner sees their live images; anyone else public or unlisted ones that are not flagged.
fn may_see(row: &ImageRow, viewer: Option<UserId>) -> bool {
    viewer == Some(row.user_id) || (row.visibility != "private" && !row.nsfw)
}

pub(super) async fn visible_image(
    conn: &mut AsyncPgConnection,
    viewer: Option<UserId>,
    id: ImageId,
) -> Result<ImageRow, ApiError> {
    store::image(conn, viewer, id)
        .await?
        .filter(|row| may_see(row, viewer))
        .ok_or_else(|| ApiError::not_found("image"))
}

pub async fn get_image(
    state: &AppState,
    viewer: Option<UserId>,
    id: ImageId,
) -> Result<Image, ApiError> {
    let mut conn = state.pool.get().await?;
    let row = visible_image(&mut conn, viewer, id).await?;
    let negative = if viewer == Some(row.user_id) {
        store::negative_prompt(&mut conn, row.generation_id).await?
    } else {
        None
    };
    Ok(view(row, viewer, negative))
}

pub async fn my_images(
    state: &AppState,
    principal: &Principal,
    page: &PageParams,
    filter: MyImagesFilter,
) -> Result<Page<Image>, ApiError> {
    let visibility = filter.visibility.map(Visibility::as_str);
    let filter = MyImagesFilter {
        model: text_param("model", filter.model)?,
        ..filter
    };
    let kind = filter.kind.map(crate::catalog::OutputKind::as_str);
    let list = format!(
        "images:{}:{}:{}:{}",
        filter.model.as_deref().unwrap_or(""),
        visibility.unwrap_or(""),
        filter.collection.map(|c| c.to_string()).unwrap_or_default(),
        kind.unwrap_or("")
    );
    let page = page.parse::<ImageId>(&list)?;
    let mut conn = state.pool.get().await?;
    if let Some(collection) = filter.collection {
        owned_collection(&mut conn, principal.user_id, collection).await?;
    }
    let rows = store::mine(
        &mut conn,
        Mine {
            owner: principal.user_id,
            model: filter.model,
            kind,
            visibility,
            collection: filter.collection,
            after: page.after,
            limit: page.limit,
        },
    )
    .await?;
    let me = Some(principal.user_id);
    let items = rows.into_iter().map(|r| view(r, me, None)).collect();
    Ok(Page::from_rows(&list, items, page.limit, |i: &Image| i.id))
}

/// The public feed, or one artist's public images (`owner`).
pub async fn feed(
    state: &AppState,
    viewer: Option<UserId>,
    owner: Option<UserId>,
    page: &PageParams,
    query: GalleryQuery,
) -> Result<Page<Image>, ApiError> {
    let q = text_param("q", query.q)?
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    let query = GalleryQuery {
        q: None,
        model: text_param("model", query.model)?,
        ..query
    };
    if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::field("q", "must be at most 200 characters"));
    }
    let sort = query.sort.unwrap_or(if q.is_some() {
        Sort::Relevance
    } else {
        Sort::New
    });
    if sort == Sort::Relevance && q.is_none() {
        return Err(ApiError::field("sort", "relevance needs a search (q)"));
    }
    let period = query.period.unwrap_or_default();
    if sort != Sort::Top && query.period.is_some() {
        return Err(ApiError::field("period", "only applies to sort=top"));
    }
    // The cursor is bound to everything that shapes the list, so it cannot be replayed on another.
    let kind = query.kind.map(crate::catalog::OutputKind::as_str);
    let list = format!(
        "gallery:{}:{:?}:{:?}:{}:{}:{}",
        owner.map(|o| o.0.to_string()).unwrap_or_default(),
        sort,
        period,
        query.model.as_deref().unwrap_or(""),
        q.as_deref().unwrap_or(""),
        kind.unwrap_or("")
    );
    let page = page.parse::<FeedKey>(&list)?;
    let since = period
        .days()
        .map(|days| chrono::Utc::now() - chrono::Duration::days(i64::from(days)));
    let mut conn = state.pool.get().await?;
    let rows = store::feed(
        &mut conn,
        Feed {
            viewer,
            owner,
            model: query.model,
            kind,
            q,
            sort,
            since,
            after: page.after,
            limit: page.limit,
        },
    )
    .await?;
    let keys: Vec<FeedKey> = rows.iter().map(|r| store::feed_key(sort, r)).collect();
    let items: Vec<(FeedKey, Image)> = keys
        .into_iter()
        .zip(rows.into_iter().map(|r| view(r, viewer, None)))
        .collect();
    Ok(Page::from_keyed_rows(&list, items, page.limit))
}

pub async fn update_image(
    state: &AppState,
    principal: &Principal,
    id: ImageId,
    body: UpdateImageRequest,
) -> Result<Image, ApiError> {
    let title = body
        .title
        .map(|t| t.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
    if title
        .as_ref()
        .is_some_and(|t| t.as_ref().is_some_and(|s| s.chars().count() > 200))
    {
        return Err(ApiError::field("title", "must be at most 200 characters"));
    }
    let mut conn = state.pool.get().await?;
    let changed = store::update_image(
        &mut conn,
        principal.user_id,
        id,
        body.visibility.map(Visibility::as_str),
        title.as_ref().map(|t| t.as_deref()),
    )
    .await?;
    if changed == 0 {
        return Err(ApiError::not_found("image"));
    }
    drop(conn);
    get_image(state, Some(principal.user_id), id).await
}

pub async fn delete_image(
    state: &AppState,
    principal: &Principal,
    id: ImageId,
) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    let deleted = conn
        .transaction::<_, ApiError, _>(async |conn| {
            Ok(store::delete_image(conn, principal.user_id, id).await?)
        })
        .await?;
    if !deleted {
        return Err(ApiError::not_found("image"));
    }
    Ok(())
}

pub async fn like(
    state: &AppState,
    principal: &Principal,
    id: ImageId,
    liked: bool,
) -> Result<Like, ApiError> {
    let mut conn = state.pool.get().await?;
    visible_image(&mut conn, Some(principal.user_id), id).await?;
    let like_count = store::set_like(&mut conn, principal.user_id, id, liked).await?;
    Ok(Like { liked, like_count })
}

async fn user_by_name(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> Result<crate::identity::store::User, ApiError> {
    if username.contains('\0') {
        return Err(ApiError::not_found("user"));
    }
    find_user_by(conn, UserKey::Username(&username.to_ascii_lowercase()))
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(|| ApiError::not_found("user"))
}

pub async fn profile(state: &AppState, username: &str) -> Result<Profile, ApiError> {
    let mut conn = state.pool.get().await?;
    let user = user_by_name(&mut conn, username).await?;
    let stats = store::profile_stats(&mut conn, user.id).await?;
    let avatar_url = match user.avatar_image_id {
        Some(image) => store::image(&mut conn, None, image)
            .await?
            .filter(|row| row.visibility == "public" && !row.nsfw)
            .map(|row| file_url(row.id, "thumb")),
        None => None,
    };
    Ok(Profile {
        username: user.username,
        display_name: user.display_name,
        bio: user.bio,
        avatar_url,
        public_images: stats.public_images,
        likes_received: stats.likes_received,
        joined_at: user.created_at,
    })
}

pub async fn artist_images(
    state: &AppState,
    viewer: Option<UserId>,
    username: &str,
    page: &PageParams,
) -> Result<Page<Image>, ApiError> {
    let owner = {
        let mut conn = state.pool.get().await?;
        user_by_name(&mut conn, username).await?.id
    };
    feed(state, viewer, Some(owner), page, GalleryQuery::default()).await
}

// ---- collections ----

/// A URL-safe slug from a name: lower-case ASCII letters and digits joined by single dashes.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 60 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        "collection".to_owned()
    } else {
        slug
    }
}

/// `base`, or `base-2`, `base-3` … whichever the owner does not use yet.
async fn free_slug(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    base: &str,
) -> Result<String, ApiError> {
    let taken = store::slugs_like(conn, owner, base).await?;
    if !taken.iter().any(|s| s == base) {
        return Ok(base.to_owned());
    }
    let next = (2..)
        .find(|n| !taken.iter().any(|s| *s == format!("{base}-{n}")))
        .unwrap_or(2);
    Ok(format!("{base}-{next}"))
}

fn check_text(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&str>,
    max: usize,
    required: bool,
) {
    match value {
        Some(v) if v.trim().is_empty() && required => errors.push(FieldError {
            field: field.to_owned(),
            message: "must not be blank".to_owned(),
        }),
        Some(v) if v.chars().count() > max => errors.push(FieldError {
            field: field.to_owned(),
            message: format!("must be at most {max} characters"),
        }),
        _ => {}
    }
}

async fn present_collections(
    conn: &mut AsyncPgConnection,
    viewer: Option<UserId>,
    rows: Vec<CollectionRow>,
    owner: &Owner,
) -> Result<Vec<Collection>, ApiError> {
    let ids: Vec<CollectionId> = rows.iter().map(|r| r.id).collect();
    let stats = store::collection_stats(conn, viewer, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (image_count, cover) = stats
                .iter()
                .find(|s| s.collection_id == row.id)
                .map_or((0, None), |s| (s.image_count, s.cover_image_id));
            Collection {
                image_count,
                id: row.id,
                name: row.name,
                slug: row.slug,
                description: row.description,
                visibility: Visibility::from_db(&row.visibility),
                cover_thumb_url: cover.map(|id| file_url(id, "thumb")),
                cover_image_id: cover,
                cover_chosen: cover.is_some() && cover == row.cover_image_id,
                owner: owner.clone(),
                created_at: row.created_at,
                updated_at: row.updated_at,
            }
        })
        .collect())
}

async fn owner_of(conn: &mut AsyncPgConnection, user: UserId) -> Result<Owner, ApiError> {
    let user = find_user_by(conn, UserKey::Id(user))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Owner {
        username: user.username,
        display_name: user.display_name,
    })
}

async fn one_collection(
    conn: &mut AsyncPgConnection,
    viewer: Option<UserId>,
    row: CollectionRow,
) -> Result<Collection, ApiError> {
    let owner = owner_of(conn, row.user_id).await?;
    present_collections(conn, viewer, vec![row], &owner)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("collection"))
}

/// A collection of `owner`'s; anyone else's is a 404.
async fn owned_collection(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    id: CollectionId,
) -> Result<CollectionRow, ApiError> {
    store::find_collection(conn, id)
        .await?
        .filter(|c| c.user_id == owner)
        .ok_or_else(|| ApiError::not_found("collection"))
}

/// A collection the viewer may see: theirs, or a public or unlisted one.
async fn visible_collection(
    conn: &mut AsyncPgConnection,
    viewer: Option<UserId>,
    id: CollectionId,
) -> Result<CollectionRow, ApiError> {
    store::find_collection(conn, id)
        .await?
        .filter(|c| viewer == Some(c.user_id) || c.visibility != "private")
        .ok_or_else(|| ApiError::not_found("collection"))
}

pub async fn create_collection(
    state: &AppState,
    principal: &Principal,
    body: CreateCollectionRequest,
) -> Result<Collection, ApiError> {
    let mut errors = Vec::new();
    check_text(&mut errors, "name", Some(&body.name), 100, true);
    check_text(
        &mut errors,
        "description",
        body.description.as_deref(),
        1000,
        false,
    );
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let name = body.name.trim().to_owned();
    let description = body
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    let mut conn = state.pool.get().await?;
    let base = slugify(&name);
    let mut attempt = 0;
    let row = loop {
        let slug = free_slug(&mut conn, principal.user_id, &base).await?;
        let inserted = store::insert_collection(
            &mut conn,
            &store::NewCollection {
                id: CollectionId::new(),
                user_id: principal.user_id,
                name: &name,
                slug: &slug,
                description: description.as_deref(),
                visibility: body.visibility.unwrap_or_default().as_str(),
            },
        )
        .await;
        match inserted {
            // Another request took the same slug a moment ago: pick again.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) if attempt < 3 => {
                attempt += 1;
            }
            other => break other?,
        }
    };
    one_collection(&mut conn, Some(principal.user_id), row).await
}

pub async fn my_collections(
    state: &AppState,
    principal: &Principal,
    page: &PageParams,
) -> Result<Page<Collection>, ApiError> {
    list_collections(
        state,
        Some(principal.user_id),
        principal.user_id,
        false,
        page,
        "collections:mine",
    )
    .await
}

pub async fn artist_collections(
    state: &AppState,
    viewer: Option<UserId>,
    username: &str,
    page: &PageParams,
) -> Result<Page<Collection>, ApiError> {
    let owner = {
        let mut conn = state.pool.get().await?;
        user_by_name(&mut conn, username).await?.id
    };
    list_collections(
        state,
        viewer,
        owner,
        true,
        page,
        &format!("collections:{owner}"),
    )
    .await
}

async fn list_collections(
    state: &AppState,
    viewer: Option<UserId>,
    owner: UserId,
    public_only: bool,
    page: &PageParams,
    list: &str,
) -> Result<Page<Collection>, ApiError> {
    let page = page.parse::<CollectionId>(list)?;
    let mut conn = state.pool.get().await?;
    let rows =
        store::list_collections(&mut conn, owner, public_only, page.after, page.limit).await?;
    let owner = owner_of(&mut conn, owner).await?;
    let items = present_collections(&mut conn, viewer, rows, &owner).await?;
    Ok(Page::from_rows(
        list,
        items,
        page.limit,
        |c: &Collection| c.id,
    ))
}

pub async fn get_collection(
    state: &AppState,
    viewer: Option<UserId>,
    id: CollectionId,
) -> Result<Collection, ApiError> {
    let mut conn = state.pool.get().await?;
    let row = visible_collection(&mut conn, viewer, id).await?;
    one_collection(&mut conn, viewer, row).await
}

pub async fn collection_images(
    state: &AppState,
    viewer: Option<UserId>,
    id: CollectionId,
    page: &PageParams,
) -> Result<Page<Image>, ApiError> {
    let list = format!("collection:{id}");
    let page = page.parse::<(chrono::DateTime<chrono::Utc>, ImageId)>(&list)?;
    let mut conn = state.pool.get().await?;
    visible_collection(&mut conn, viewer, id).await?;
    let rows = store::collection_images(&mut conn, viewer, id, page.after, page.limit).await?;
    let items: Vec<((chrono::DateTime<chrono::Utc>, ImageId), Image)> = rows
        .into_iter()
        .map(|r| {
            (
                (r.added_at.unwrap_or_default(), r.id),
                view(r, viewer, None),
            )
        })
        .collect();
    Ok(Page::from_keyed_rows(&list, items, page.limit))
}

pub async fn update_collection(
    state: &AppState,
    principal: &Principal,
    id: CollectionId,
    body: UpdateCollectionRequest,
) -> Result<Collection, ApiError> {
    let mut errors = Vec::new();
    check_text(&mut errors, "name", body.name.as_deref(), 100, true);
    check_text(
        &mut errors,
        "description",
        body.description.as_ref().and_then(|d| d.as_deref()),
        1000,
        false,
    );
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut conn = state.pool.get().await?;
    let current = owned_collection(&mut conn, principal.user_id, id).await?;
    if let Some(Some(cover)) = body.cover_image_id
        && !store::in_collection(&mut conn, id, cover).await?
    {
        return Err(ApiError::field(
            "cover_image_id",
            "must be an image in this collection",
        ));
    }
    let name = body.name.map(|n| n.trim().to_owned());
    let slug = match &name {
        Some(name) if *name != current.name => {
            let base = slugify(name);
            if base == current.slug {
                None
            } else {
                Some(free_slug(&mut conn, principal.user_id, &base).await?)
            }
        }
        _ => None,
    };
    let changes = CollectionChangeset {
        name,
        slug,
        description: body
            .description
            .map(|d| d.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())),
        visibility: body.visibility.map(|v| v.as_str().to_owned()),
        cover_image_id: body.cover_image_id,
    };
    let row = if changes.name.is_none()
        && changes.description.is_none()
        && changes.visibility.is_none()
        && changes.cover_image_id.is_none()
    {
        current
    } else {
        store::update_collection(&mut conn, id, &changes).await?
    };
    one_collection(&mut conn, Some(principal.user_id), row).await
}

pub async fn delete_collection(
    state: &AppState,
    principal: &Principal,
    id: CollectionId,
) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    owned_collection(&mut conn, principal.user_id, id).await?;
    store::delete_collection(&mut conn, id).await?;
    Ok(())
}

/// Adds an image to a collection of mine: only an image I may see (mine, or public or unlisted).
pub async fn add_image(
    state: &AppState,
    principal: &Principal,
    id: CollectionId,
    image: ImageId,
) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    owned_collection(&mut conn, principal.user_id, id).await?;
    visible_image(&mut conn, Some(principal.user_id), image).await?;
    store::add_to_collection(&mut conn, id, image).await?;
    Ok(())
}

pub async fn remove_image(
    state: &AppState,
    principal: &Principal,
    id: CollectionId,
    image: ImageId,
) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    owned_collection(&mut conn, principal.user_id, id).await?;
    store::remove_from_collection(&mut conn, id, image).await?;
    Ok(())
}

/// Removes the files of deleted images that no live image shares (storage is content-addressed,
/// so identical bytes are one file). The check and the removal hold the file's lock, which a job
/// storing the same file also takes: a file is never removed under an image being stored.
pub async fn sweep_files(state: &AppState) -> anyhow::Result<usize> {
    let mut conn = state.pool.get().await?;
    let pending = store::deleted_with_files(&mut conn, 100).await?;
    let mut removed = 0;
    for image in pending {
        conn.transaction::<_, anyhow::Error, _>(async |conn| {
            store::lock_files(conn, &[&image.content_hash, &image.thumb_hash]).await?;
            for (hash, thumb) in [(&image.content_hash, false), (&image.thumb_hash, true)] {
                if !store::file_in_use(conn, hash, thumb).await? {
                    let kind = if thumb { "thumbs" } else { "originals" };
                    state.storage.delete(kind, hash).await?;
                }
            }
            store::mark_files_removed(conn, image.id).await?;
            Ok(())
        })
        .await?;
        removed += 1;
    }
    Ok(removed)
}
