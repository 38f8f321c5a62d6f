//! Request and response bodies of the billing endpoints.

use super::PurchaseId;
use super::packages::Package;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackageList {
    pub data: Vec<Package>,
    /// False when this server cannot take payments (no Stripe key): checkout answers 503.
    pub payments_configured: bool,
    /// True on a development server whose checkouts complete locally, without a payment.
    pub dev_payments: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// A package id from `GET /v1/billing/packages`.
    #[schema(example = "starter")]
    pub package_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Checkout {
    /// Send the buyer here (Stripe's hosted checkout page).
    pub checkout_url: String,
    pub purchase_id: PurchaseId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseStatus {
    /// Checkout started; not paid (yet).
    Pending,
    /// Paid: the credits were granted.
    Paid,
    /// The checkout expired unpaid.
    Expired,
    /// The payment failed.
    Failed,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Purchase {
    pub id: PurchaseId,
    pub package_id: String,
    pub status: PurchaseStatus,
    pub amount_cents: i64,
    pub currency: String,
    /// Credits the package gives (credits + bonus).
    pub credits: i64,
    pub credits_granted: i64,
    /// Credits taken back after a refund or dispute.
    pub credits_clawed_back: i64,
    pub refunded_cents: i64,
    pub disputed: bool,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurchasePage {
    pub data: Vec<Purchase>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}
