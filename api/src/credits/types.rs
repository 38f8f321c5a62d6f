//! Request and response bodies of the credit endpoints.

use super::{EntryId, EntryKind};
use crate::identity::UserId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The balance by bucket.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Credits {
    /// What can be spent now: free + purchased (0 while owing).
    pub total: i64,
    /// Today's free credits, spent first; they expire at the next daily grant.
    pub free: i64,
    /// Purchased and bonus credits, which never expire. Negative when a refund or dispute took back
    /// credits already spent; the account cannot spend until this is back at zero.
    pub purchased: i64,
    /// True while `purchased` is negative.
    pub owing: bool,
    /// Free credits granted each UTC day.
    pub daily_grant: i64,
    /// When the next daily grant becomes due (the next UTC midnight).
    pub next_daily_grant_at: DateTime<Utc>,
}

/// One ledger entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreditTransaction {
    pub id: EntryId,
    pub kind: EntryKind,
    /// Change to the total (free + purchased).
    pub delta: i64,
    pub free_delta: i64,
    pub purchased_delta: i64,
    /// Balances right after this entry.
    pub free_after: i64,
    pub purchased_after: i64,
    pub generation_id: Option<uuid::Uuid>,
    pub purchase_id: Option<uuid::Uuid>,
    /// For refunds: the reservation returned.
    pub refund_of: Option<EntryId>,
    /// For admin adjustments: who made it, and why.
    pub admin_id: Option<UserId>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreditTransactionPage {
    pub data: Vec<CreditTransaction>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionFilter {
    /// Only entries of this kind.
    pub kind: Option<EntryKind>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start of the period (inclusive), RFC 3339.
    pub start: DateTime<Utc>,
    /// End of the period (exclusive), RFC 3339; at most 366 days after `start`.
    pub end: DateTime<Utc>,
}

/// Generations and credits by model over a period.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub models: Vec<ModelUsage>,
    /// Credits charged less credits refunded, over all models.
    pub credits_spent: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelUsage {
    pub model: String,
    /// Generations created in the period, whatever became of them.
    pub generations: i64,
    /// Credits charged less credits refunded.
    pub credits_spent: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustCreditsRequest {
    /// Credits to grant (positive) or deduct (negative); never zero.
    #[schema(example = 50, minimum = -1_000_000, maximum = 1_000_000)]
    pub amount: i64,
    /// Why: recorded on the entry with the admin's id. 1–500 characters.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$",
        example = "compensation for an outage"
    )]
    pub reason: String,
}
