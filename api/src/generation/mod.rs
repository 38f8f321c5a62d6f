//! Generations: a request becomes a job (the `generations` row), the job becomes images, and
//! whatever happens in between the user ends with either images or their credits back.

pub mod admin;
pub mod changes;
pub mod events;
pub mod moderation;
pub mod routes;
pub mod runner;
pub mod service;
pub mod store;
pub mod types;
pub mod webhooks;

crate::uuid_id!(
    /// A generation (and its job).
    GenerationId
);
crate::uuid_id!(
    /// A stored image.
    ImageId
);

/// `queued → starting → processing → succeeded | failed | canceled`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Starting,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Self::Queued,
        Self::Starting,
        Self::Processing,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Starting => "starting",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn from_db(value: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .unwrap_or(Self::Failed)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

/// Who may see an image.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Private,
    Unlisted,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Unlisted => "unlisted",
            Self::Public => "public",
        }
    }

    pub fn from_db(value: &str) -> Self {
        match value {
            "public" => Self::Public,
            "unlisted" => Self::Unlisted,
            _ => Self::Private,
        }
    }
}
