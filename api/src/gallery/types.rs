//! Request and response bodies of the gallery endpoints.

use super::CollectionId;
use crate::generation::{GenerationId, ImageId, Visibility};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Who made an image or owns a collection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Owner {
    pub username: String,
    pub display_name: Option<String>,
}

/// An image as the gallery shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub id: ImageId,
    pub generation_id: GenerationId,
    /// `image`, or `model3d` (a glTF binary model; width and height are its preview's).
    pub kind: crate::catalog::OutputKind,
    /// The original file's type: `image/png` …, or `model/gltf-binary` for a 3D model.
    pub content_type: String,
    /// The original file's size in bytes.
    pub byte_size: i64,
    /// For a 3D model: how many vertices it has, when known.
    pub vertex_count: Option<i32>,
    /// The original (the image, or the `.glb`).
    pub url: String,
    /// A WebP thumbnail, at most 384 px on its longer side (a 3D model's preview).
    pub thumb_url: String,
    pub width: i32,
    pub height: i32,
    pub title: Option<String>,
    pub prompt: String,
    /// Only its owner sees it; null for everyone else.
    pub negative_prompt: Option<String>,
    pub model: String,
    pub seed: i64,
    pub visibility: Visibility,
    /// Flagged by the provider's safety checker, or hidden by support after a report: shown to its
    /// owner only.
    pub flagged: bool,
    pub like_count: i32,
    /// Whether the caller likes it (false when anonymous).
    pub liked_by_me: bool,
    pub owner: Owner,
    pub created_at: DateTime<Utc>,
}

/// A page of images (the shape of `Page<Image>`, named for the spec).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImagePage {
    pub data: Vec<Image>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MyImagesFilter {
    /// Only images of this model.
    #[param(pattern = "^[^\\u0000]*$")]
    pub model: Option<String>,
    pub visibility: Option<Visibility>,
    /// Only images in this collection of mine.
    pub collection: Option<CollectionId>,
    /// Only `image` or only `model3d` outputs.
    pub kind: Option<crate::catalog::OutputKind>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Newest first.
    #[default]
    New,
    /// Most liked first, within `period`.
    Top,
    /// Likes decayed by age: ten times the likes are worth 12.5 hours of freshness.
    Trending,
    /// Best match for `q` first (needs `q`).
    Relevance,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
    Month,
    #[default]
    All,
}

impl Period {
    pub fn days(self) -> Option<i32> {
        match self {
            Self::Day => Some(1),
            Self::Week => Some(7),
            Self::Month => Some(30),
            Self::All => None,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GalleryQuery {
    /// `new` (default), `top`, `trending`, or `relevance` (the default when `q` is given).
    pub sort: Option<Sort>,
    /// For `top`: `day`, `week`, `month` or `all` (default).
    pub period: Option<Period>,
    /// Full-text search over prompts and titles (web search syntax: `"exact phrase"`, `-not`, `or`).
    #[param(max_length = 200, pattern = "^[^\\u0000]*$")]
    pub q: Option<String>,
    /// Only images of this model.
    #[param(pattern = "^[^\\u0000]*$")]
    pub model: Option<String>,
    /// Only `image` or only `model3d` outputs.
    pub kind: Option<crate::catalog::OutputKind>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateImageRequest {
    pub visibility: Option<Visibility>,
    /// Up to 200 characters; null clears it.
    #[schema(max_length = 200, pattern = "^[^\\u0000]*$")]
    #[serde(default, with = "crate::http::extract::double_option")]
    pub title: Option<Option<String>>,
}

/// The caller's like of an image, and the count after it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Like {
    pub liked: bool,
    pub like_count: i32,
}

/// An artist's public page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    pub username: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    /// Thumbnail of the image chosen as avatar, while it is public.
    pub avatar_url: Option<String>,
    pub public_images: i64,
    pub likes_received: i64,
    pub joined_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Collection {
    pub id: CollectionId,
    pub name: String,
    /// URL-safe, unique among the owner's collections.
    pub slug: String,
    pub description: Option<String>,
    pub visibility: Visibility,
    /// The image shown as its cover: the one the owner chose, or, when none is chosen or the caller
    /// may not see it, the image added last that the caller may see. Null when they may see none.
    pub cover_image_id: Option<ImageId>,
    pub cover_thumb_url: Option<String>,
    /// Whether the cover is the one the owner chose (false: the newest image stands in).
    pub cover_chosen: bool,
    /// Images in it that the caller may see.
    pub image_count: i64,
    pub owner: Owner,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of collections (the shape of `Page<Collection>`, named for the spec).
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionPage {
    pub data: Vec<Collection>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollectionRequest {
    /// 1–100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$"
    )]
    pub name: String,
    /// Up to 1000 characters.
    #[schema(max_length = 1000, pattern = "^[^\\u0000]*$")]
    pub description: Option<String>,
    /// Private by default.
    pub visibility: Option<Visibility>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCollectionRequest {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$"
    )]
    pub name: Option<String>,
    /// Null clears it.
    #[schema(max_length = 1000, pattern = "^[^\\u0000]*$")]
    #[serde(default, with = "crate::http::extract::double_option")]
    pub description: Option<Option<String>>,
    pub visibility: Option<Visibility>,
    /// An image in the collection; null clears it.
    #[serde(default, with = "crate::http::extract::double_option")]
    pub cover_image_id: Option<Option<ImageId>>,
}
