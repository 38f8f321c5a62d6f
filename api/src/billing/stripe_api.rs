//! The Stripe calls we make, through async-stripe: create a Checkout Session, and list sessions for
//! reconciliation. `EASEL_STRIPE_API_BASE` points it elsewhere (tests use a fake Stripe).

use super::PurchaseId;
use super::packages::Package;
use super::store::PurchaseRow;
use crate::config::BillingConfig;
use crate::error::{ApiError, ErrorCode};
use std::collections::HashMap;
use std::str::FromStr;
use stripe::StripeRequest;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ListCheckoutSession, ProductData,
};
use stripe_shared::{CheckoutSession, CheckoutSessionMode};

pub struct StripeApi {
    client: stripe::Client,
}

fn failed(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::PaymentProviderFailed,
        format!("Stripe could not be reached or refused the request: {error}"),
    )
}

impl StripeApi {
    /// The client, when a secret key is configured.
    pub fn new(config: &BillingConfig) -> anyhow::Result<Option<Self>> {
        let Some(key) = &config.stripe_secret_key else {
            return Ok(None);
        };
        let client = stripe::ClientBuilder::new(key.expose())
            .url(&config.stripe_api_base)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| anyhow::anyhow!("Stripe client (EASEL_STRIPE_*): {e}"))?;
        Ok(Some(Self { client }))
    }

    /// A Checkout Session for one package, tied to the purchase by `client_reference_id` and
    /// metadata, with an idempotency key derived from the purchase: a retried call creates nothing new.
    pub async fn create_checkout(
        &self,
        config: &BillingConfig,
        purchase: &PurchaseRow,
        package: &Package,
    ) -> Result<CheckoutSession, ApiError> {
        let mut item = CreateCheckoutSessionLineItems::new();
        item.quantity = Some(1);
        match &package.stripe_price_id {
            Some(price) => item.price = Some(price.clone()),
            None => {
                let currency =
                    stripe_types::Currency::from_str(&package.currency).map_err(|_| {
                        ApiError::internal(anyhow::anyhow!("unknown currency {}", package.currency))
                    })?;
                let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
                price.unit_amount = Some(package.price_cents);
                let mut product = ProductData::new(format!("{} credits", package.label));
                product.description =
                    Some(format!("{} credits for Easel", package.total_credits()));
                price.product_data = Some(product);
                item.price_data = Some(price);
            }
        }
        let metadata = HashMap::from([
            ("purchase_id".to_owned(), purchase.id.to_string()),
            ("user_id".to_owned(), purchase.user_id.to_string()),
            ("package_id".to_owned(), package.id.clone()),
        ]);
        let mut payment_intent = CreateCheckoutSessionPaymentIntentData::new();
        payment_intent.metadata = Some(metadata.clone());
        let key = stripe::IdempotencyKey::new(format!("easel-checkout-{}", purchase.id))
            .map_err(failed)?;
        CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .line_items(vec![item])
            .client_reference_id(purchase.id.to_string())
            .metadata(metadata)
            .payment_intent_data(payment_intent)
            .success_url(
                config
                    .success_url
                    .replace("{PURCHASE_ID}", &purchase.id.to_string()),
            )
            .cancel_url(config.cancel_url.clone())
            .customize()
            .request_strategy(stripe::RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
            .map_err(failed)
    }

    /// Refunds a purchase's payment in full; the refund's id. The idempotency key is the
    /// purchase's, so a repeated call returns the first refund.
    pub async fn refund(
        &self,
        purchase: PurchaseId,
        payment_intent: &str,
    ) -> anyhow::Result<String> {
        let key = stripe::IdempotencyKey::new(format!("easel-refund-{purchase}"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let form = HashMap::from([
            ("payment_intent", payment_intent.to_owned()),
            ("reason", "requested_by_customer".to_owned()),
            ("metadata[purchase_id]", purchase.to_string()),
        ]);
        let refund: stripe_shared::Refund = stripe_client_core::RequestBuilder::new(
            stripe_client_core::StripeMethod::Post,
            "/refunds",
        )
        .form(&form)
        .customize()
        .request_strategy(stripe::RequestStrategy::Idempotent(key))
        .send(&self.client)
        .await?;
        Ok(refund.id.to_string())
    }

    /// Every Checkout Session created since `since` (Unix seconds), following Stripe's pages.
    pub async fn sessions_since(&self, since: i64) -> anyhow::Result<Vec<CheckoutSession>> {
        let mut sessions = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = ListCheckoutSession::new()
                .created(stripe_types::RangeQueryTs::gte(since))
                .limit(100);
            if let Some(after) = &after {
                request = request.starting_after(after.clone());
            }
            let page = request.send(&self.client).await?;
            after = page.data.last().map(|s| s.id.to_string());
            let more = page.has_more && after.is_some();
            sessions.extend(page.data);
            if !more {
                return Ok(sessions);
            }
        }
    }
}
