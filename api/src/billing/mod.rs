//! Billing: credit packages, Stripe Checkout, Stripe's webhooks applied exactly once, refunds and
//! disputes clawed back, purchase history and reconciliation.
//!
//! Every path that learns of a payment (a webhook, reconciliation, development payments) ends in
//! `service::settle`, which moves a purchase's credits to what Stripe says is paid and not refunded,
//! under the purchase's row lock, so deliveries in any order, any number of times, end the same.

pub mod packages;
pub mod routes;
pub mod service;
pub mod store;
pub mod stripe_api;
pub mod types;
pub mod webhook;

crate::uuid_id!(
    /// A purchase of a credit package.
    PurchaseId
);
