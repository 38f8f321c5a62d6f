//! Gallery endpoints: thin handlers over `service`. Reads take the `read` scope, changes the
//! `generate` scope (an API key that makes images may also curate them).

use super::CollectionId;
use super::service;
use super::types::{
    Collection, CollectionPage, CreateCollectionRequest, GalleryQuery, Image, ImagePage, Like,
    MyImagesFilter, Profile, UpdateCollectionRequest, UpdateImageRequest,
};
use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::ApiError;
use crate::generation::ImageId;
use crate::http::extract::Json;
use crate::identity::principal::Viewer;
use crate::identity::{Principal, Scope};
use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_images)
        .service(get_image)
        .service(update_image)
        .service(delete_image)
        .service(update_image_like)
        .service(delete_image_like)
        .service(list_gallery)
        .service(get_user)
        .service(list_user_images)
        .service(list_user_collections)
        .service(create_collection)
        .service(list_collections)
        .service(get_collection)
        .service(update_collection)
        .service(delete_collection)
        .service(list_collection_images)
        .service(update_collection_image)
        .service(delete_collection_image);
}

const NOT_FOUND: &str = "No such image, or not one the caller may see";

/// My images, newest first; filter by model, visibility or one of my collections.
#[utoipa::path(
    tag = "images",
    security(("session" = []), ("api_key" = ["read"])),
    params(PageParams, MyImagesFilter),
    responses((status = 200, description = "A page of my images", body = ImagePage))
)]
#[get("/v1/images")]
pub async fn list_images(
    state: web::Data<AppState>,
    principal: Principal,
    page: crate::http::extract::Query<PageParams>,
    filter: crate::http::extract::Query<MyImagesFilter>,
) -> Result<web::Json<Page<Image>>, ApiError> {
    principal.require(Scope::Read)?;
    Ok(web::Json(
        service::my_images(&state, &principal, &page, filter.into_inner()).await?,
    ))
}

/// One image: mine, or a public or unlisted one. The negative prompt is shown to the owner only.
#[utoipa::path(
    tag = "images",
    security((), ("session" = []), ("api_key" = ["read"])),
    params(("id" = ImageId, Path, description = "The image")),
    responses(
        (status = 200, description = "The image", body = Image),
        (status = 404, description = NOT_FOUND, body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/images/{id}")]
pub async fn get_image(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<ImageId>,
) -> Result<web::Json<Image>, ApiError> {
    Ok(web::Json(
        service::get_image(&state, viewer.user_id(), id.into_inner()).await?,
    ))
}

/// Change an image of mine: who may see it (`private`, `unlisted`, `public`) and its title.
#[utoipa::path(
    tag = "images",
    security(("session" = []), ("api_key" = ["generate"])),
    params(("id" = ImageId, Path, description = "The image")),
    request_body = UpdateImageRequest,
    responses(
        (status = 200, description = "The image after the change", body = Image),
        (status = 404, description = "No such image of mine", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/v1/images/{id}")]
pub async fn update_image(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<ImageId>,
    body: Json<UpdateImageRequest>,
) -> Result<web::Json<Image>, ApiError> {
    principal.require(Scope::Generate)?;
    Ok(web::Json(
        service::update_image(&state, &principal, id.into_inner(), body.into_inner()).await?,
    ))
}

/// Delete an image of mine: it leaves every list and collection at once; its files are removed
/// shortly after. Its generation and the credits it cost stay in the history.
#[utoipa::path(
    tag = "images",
    security(("session" = []), ("api_key" = ["generate"])),
    params(("id" = ImageId, Path, description = "The image")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such image of mine", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/images/{id}")]
pub async fn delete_image(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<ImageId>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Generate)?;
    service::delete_image(&state, &principal, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Like an image I may see (idempotent).
#[utoipa::path(
    tag = "images",
    security(("session" = []), ("api_key" = ["generate"])),
    params(("id" = ImageId, Path, description = "The image")),
    responses(
        (status = 200, description = "Liked; the count after it", body = Like),
        (status = 404, description = NOT_FOUND, body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[put("/v1/images/{id}/like")]
pub async fn update_image_like(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<ImageId>,
) -> Result<web::Json<Like>, ApiError> {
    principal.require(Scope::Generate)?;
    Ok(web::Json(
        service::like(&state, &principal, id.into_inner(), true).await?,
    ))
}

/// Take back my like (idempotent).
#[utoipa::path(
    tag = "images",
    security(("session" = []), ("api_key" = ["generate"])),
    params(("id" = ImageId, Path, description = "The image")),
    responses(
        (status = 200, description = "Not liked; the count after it", body = Like),
        (status = 404, description = NOT_FOUND, body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/images/{id}/like")]
pub async fn delete_image_like(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<ImageId>,
) -> Result<web::Json<Like>, ApiError> {
    principal.require(Scope::Generate)?;
    Ok(web::Json(
        service::like(&state, &principal, id.into_inner(), false).await?,
    ))
}

/// The public feed: public images that are not flagged, newest, top (by period), trending or best
/// match for a search. Pages continue by cursor and never repeat or skip an item as new ones arrive.
#[utoipa::path(
    tag = "gallery",
    security((), ("session" = []), ("api_key" = ["read"])),
    params(PageParams, GalleryQuery),
    responses((status = 200, description = "A page of public images", body = ImagePage))
)]
#[get("/v1/gallery")]
pub async fn list_gallery(
    state: web::Data<AppState>,
    viewer: Viewer,
    page: crate::http::extract::Query<PageParams>,
    query: crate::http::extract::Query<GalleryQuery>,
) -> Result<web::Json<Page<Image>>, ApiError> {
    Ok(web::Json(
        service::feed(&state, viewer.user_id(), None, &page, query.into_inner()).await?,
    ))
}

/// An artist's public page.
#[utoipa::path(
    tag = "gallery",
    params(("username" = String, Path, description = "The artist's username")),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 404, description = "No such user", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/users/{username}")]
pub async fn get_user(
    state: web::Data<AppState>,
    username: web::Path<String>,
) -> Result<web::Json<Profile>, ApiError> {
    Ok(web::Json(service::profile(&state, &username).await?))
}

/// An artist's public images, newest first.
#[utoipa::path(
    tag = "gallery",
    security((), ("session" = []), ("api_key" = ["read"])),
    params(("username" = String, Path, description = "The artist's username"), PageParams),
    responses(
        (status = 200, description = "A page of public images", body = ImagePage),
        (status = 404, description = "No such user", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/users/{username}/images")]
pub async fn list_user_images(
    state: web::Data<AppState>,
    viewer: Viewer,
    username: web::Path<String>,
    page: crate::http::extract::Query<PageParams>,
) -> Result<web::Json<Page<Image>>, ApiError> {
    Ok(web::Json(
        service::artist_images(&state, viewer.user_id(), &username, &page).await?,
    ))
}

/// An artist's public collections, newest first.
#[utoipa::path(
    tag = "gallery",
    security((), ("session" = []), ("api_key" = ["read"])),
    params(("username" = String, Path, description = "The artist's username"), PageParams),
    responses(
        (status = 200, description = "A page of public collections", body = CollectionPage),
        (status = 404, description = "No such user", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/users/{username}/collections")]
pub async fn list_user_collections(
    state: web::Data<AppState>,
    viewer: Viewer,
    username: web::Path<String>,
    page: crate::http::extract::Query<PageParams>,
) -> Result<web::Json<Page<Collection>>, ApiError> {
    Ok(web::Json(
        service::artist_collections(&state, viewer.user_id(), &username, &page).await?,
    ))
}

/// Create a collection; its slug comes from the name and is unique among mine.
#[utoipa::path(
    tag = "collections",
    security(("session" = []), ("api_key" = ["generate"])),
    request_body = CreateCollectionRequest,
    responses(
        (status = 201, description = "Created", body = Collection,
         headers(("Location" = String, description = "The new collection"))),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/collections")]
pub async fn create_collection(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<CreateCollectionRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Generate)?;
    let created = service::create_collection(&state, &principal, body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/collections/{}", created.id)))
        .json(created))
}

/// My collections, newest first.
#[utoipa::path(
    tag = "collections",
    security(("session" = []), ("api_key" = ["read"])),
    params(PageParams),
    responses((status = 200, description = "A page of my collections", body = CollectionPage))
)]
#[get("/v1/collections")]
pub async fn list_collections(
    state: web::Data<AppState>,
    principal: Principal,
    page: crate::http::extract::Query<PageParams>,
) -> Result<web::Json<Page<Collection>>, ApiError> {
    principal.require(Scope::Read)?;
    Ok(web::Json(
        service::my_collections(&state, &principal, &page).await?,
    ))
}

/// A collection: mine, or a public or unlisted one.
#[utoipa::path(
    tag = "collections",
    security((), ("session" = []), ("api_key" = ["read"])),
    params(("id" = CollectionId, Path, description = "The collection")),
    responses(
        (status = 200, description = "The collection", body = Collection),
        (status = 404, description = "No such collection, or not one the caller may see", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/collections/{id}")]
pub async fn get_collection(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<CollectionId>,
) -> Result<web::Json<Collection>, ApiError> {
    Ok(web::Json(
        service::get_collection(&state, viewer.user_id(), id.into_inner()).await?,
    ))
}

/// Change a collection of mine (name, description, visibility, cover).
#[utoipa::path(
    tag = "collections",
    security(("session" = []), ("api_key" = ["generate"])),
    params(("id" = CollectionId, Path, description = "The collection")),
    request_body = UpdateCollectionRequest,
    responses(
        (status = 200, description = "The collection after the change", body = Collection),
        (status = 404, description = "No such collection of mine", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/v1/collections/{id}")]
pub async fn update_collection(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<CollectionId>,
    body: Json<UpdateCollectionRequest>,
) -> Result<web::Json<Collection>, ApiError> {
    principal.require(Scope::Generate)?;
    Ok(web::Json(
        service::update_collection(&state, &principal, id.into_inner(), body.into_inner()).await?,
    ))
}

/// Delete a collection of mine (its images stay).
#[utoipa::path(
    tag = "collections",
    security(("session" = []), ("api_key" = ["generate"])),
    params(("id" = CollectionId, Path, description = "The collection")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such collection of mine", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/collections/{id}")]
pub async fn delete_collection(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<CollectionId>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Generate)?;
    service::delete_collection(&state, &principal, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The images of a collection that the caller may see, most recently added first.
#[utoipa::path(
    tag = "collections",
    security((), ("session" = []), ("api_key" = ["read"])),
    params(("id" = CollectionId, Path, description = "The collection"), PageParams),
    responses(
        (status = 200, description = "A page of images", body = ImagePage),
        (status = 404, description = "No such collection, or not one the caller may see", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/collections/{id}/images")]
pub async fn list_collection_images(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<CollectionId>,
    page: crate::http::extract::Query<PageParams>,
) -> Result<web::Json<Page<Image>>, ApiError> {
    Ok(web::Json(
        service::collection_images(&state, viewer.user_id(), id.into_inner(), &page).await?,
    ))
}

/// Add an image I may see to a collection of mine (idempotent).
#[utoipa::path(
    tag = "collections",
    security(("session" = []), ("api_key" = ["generate"])),
    params(
        ("id" = CollectionId, Path, description = "The collection"),
        ("image_id" = ImageId, Path, description = "The image"),
    ),
    responses(
        (status = 204, description = "In the collection"),
        (status = 404, description = "No such collection of mine, or no such image I may see", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[put("/v1/collections/{id}/images/{image_id}")]
pub async fn update_collection_image(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(CollectionId, ImageId)>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Generate)?;
    let (id, image) = path.into_inner();
    service::add_image(&state, &principal, id, image).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Remove an image from a collection of mine (idempotent).
#[utoipa::path(
    tag = "collections",
    security(("session" = []), ("api_key" = ["generate"])),
    params(
        ("id" = CollectionId, Path, description = "The collection"),
        ("image_id" = ImageId, Path, description = "The image"),
    ),
    responses(
        (status = 204, description = "Not in the collection"),
        (status = 404, description = "No such collection of mine", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/collections/{id}/images/{image_id}")]
pub async fn delete_collection_image(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(CollectionId, ImageId)>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Generate)?;
    let (id, image) = path.into_inner();
    service::remove_image(&state, &principal, id, image).await?;
    Ok(HttpResponse::NoContent().finish())
}
