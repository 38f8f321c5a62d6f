//! The public face of the images: my images, the public feed (new, top, trending, search), likes,
//! artist pages and collections. Every read goes through one visibility rule (`visible`): the owner
//! sees their live images; anyone else only public or unlisted ones that are not flagged, and lists
//! (feeds, artist pages) only public ones.

pub mod reports;
pub mod routes;
pub mod service;
pub mod store;
pub mod types;
pub mod verify;

crate::uuid_id!(
    /// A collection of images.
    CollectionId
);
crate::uuid_id!(
    /// A person's report of an image.
    ReportId
);
