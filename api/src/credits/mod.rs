//! The credit ledger: append-only entries, per-user balances in two buckets (today's free credits
//! and purchased credits), the lazy daily grant, and the operations other features call —
//! `reserve`, `refund`, `grant`, `claw_back` — each taking a connection so the caller chooses the
//! transaction.

pub mod routes;
pub mod service;
pub mod store;
pub mod types;

pub use service::{Cause, claw_back, grant, refund, reserve, touch};

crate::uuid_id!(
    /// One ledger entry.
    EntryId
);

/// Why an entry exists. Stored as text; the strings are part of the API (`kind` filter).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    SignupBonus,
    DailyGrant,
    DailyExpiry,
    Reservation,
    Refund,
    Purchase,
    ClawBack,
    AdminGrant,
    AdminDeduct,
}

impl EntryKind {
    pub const ALL: [EntryKind; 9] = [
        Self::SignupBonus,
        Self::DailyGrant,
        Self::DailyExpiry,
        Self::Reservation,
        Self::Refund,
        Self::Purchase,
        Self::ClawBack,
        Self::AdminGrant,
        Self::AdminDeduct,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignupBonus => "signup_bonus",
            Self::DailyGrant => "daily_grant",
            Self::DailyExpiry => "daily_expiry",
            Self::Reservation => "reservation",
            Self::Refund => "refund",
            Self::Purchase => "purchase",
            Self::ClawBack => "claw_back",
            Self::AdminGrant => "admin_grant",
            Self::AdminDeduct => "admin_deduct",
        }
    }

    pub fn from_db(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }
}
