//! `POST /webhooks/stripe`: verified on the raw body (`Stripe-Signature`, 5-minute tolerance), then
//! applied in one transaction with its event id, so each event applies once. A failure to apply
//! answers 5xx and Stripe's retry applies it.

use super::PurchaseId;
use super::service::{self, SessionFacts, SessionOutcome};
use super::store;
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use actix_web::http::header::HeaderMap;
use diesel_async::AsyncConnection;
use stripe_shared::{CheckoutSession, CheckoutSessionPaymentStatus};
use stripe_webhook::{EventObject, Webhook, WebhookError};

fn purchase_of(session: &CheckoutSession) -> Option<PurchaseId> {
    session
        .client_reference_id
        .as_deref()
        .or_else(|| {
            session
                .metadata
                .as_ref()
                .and_then(|m| m.get("purchase_id"))
                .map(String::as_str)
        })
        .and_then(|id| id.parse::<uuid::Uuid>().ok())
        .map(PurchaseId)
}

/// What a session says, for `service::apply_session`. `event` narrows it: a completed session may
/// still await a delayed payment; the async events say how that ended.
pub fn session_facts(session: &CheckoutSession, outcome: Option<SessionOutcome>) -> SessionFacts {
    let paid = matches!(
        session.payment_status,
        CheckoutSessionPaymentStatus::Paid | CheckoutSessionPaymentStatus::NoPaymentRequired
    );
    let outcome = outcome.unwrap_or(if paid {
        SessionOutcome::Paid
    } else if session
        .status
        .as_ref()
        .is_some_and(|s| s.as_str() == "expired")
    {
        SessionOutcome::Expired
    } else {
        SessionOutcome::AwaitingPayment
    });
    SessionFacts {
        session_id: session.id.to_string(),
        purchase_id: purchase_of(session),
        outcome,
        payment_intent: session.payment_intent.as_ref().map(|p| p.id().to_string()),
    }
}

/// The events this endpoint acts on (enable these at Stripe).
pub const HANDLED: [&str; 6] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
];

fn rejected(detail: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidStripeSignature,
        format!("Stripe event rejected: {detail}"),
    )
}

/// Verifies and applies one delivery. Returns false when the event had been applied before.
pub async fn receive(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<bool, ApiError> {
    let secret = state
        .config
        .billing
        .stripe_webhook_secret
        .as_ref()
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::WebhookNotConfigured,
                "Stripe webhooks are not configured (EASEL_STRIPE_WEBHOOK_SECRET)",
            )
        })?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| rejected("no Stripe-Signature header"))?;
    let payload =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let event = match Webhook::construct_event(payload, signature, secret.expose()) {
        Ok(event) => event,
        // Signed correctly, but its object is not one this version of the crate reads: an event we
        // do not handle is acknowledged (Stripe would retry it for days); one we do is an error.
        Err(WebhookError::BadParse(m)) => {
            let raw: serde_json::Value = serde_json::from_str(payload)
                .map_err(|e| ApiError::bad_request(format!("not a Stripe event: {e}")))?;
            let event_type = raw["type"].as_str().unwrap_or_default();
            if raw["id"].is_string() && !event_type.is_empty() && !HANDLED.contains(&event_type) {
                tracing::debug!(r#type = event_type, "unhandled Stripe event acknowledged");
                return Ok(false);
            }
            return Err(ApiError::bad_request(format!("not a Stripe event: {m}")));
        }
        Err(WebhookError::BadTimestamp(_)) => {
            return Err(rejected("the timestamp is outside the 5-minute tolerance"));
        }
        Err(_) => return Err(rejected("the signature does not match")),
    };
    let event_id = event.id.to_string();
    let event_type = event.type_.to_string();
    let mut conn = state.pool.get().await?;
    let applied = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if !store::record_event(conn, &event_id, &event_type).await? {
                return Ok(false);
            }
            match &event.data.object {
                EventObject::CheckoutSessionCompleted(session) => {
                    service::apply_session(conn, &session_facts(session, None)).await?;
                }
                EventObject::CheckoutSessionAsyncPaymentSucceeded(session) => {
                    service::apply_session(conn, &session_facts(session, Some(SessionOutcome::Paid))).await?;
                }
                EventObject::CheckoutSessionAsyncPaymentFailed(session) => {
                    service::apply_session(conn, &session_facts(session, Some(SessionOutcome::PaymentFailed)))
                        .await?;
                }
                EventObject::CheckoutSessionExpired(session) => {
                    service::apply_session(conn, &session_facts(session, Some(SessionOutcome::Expired))).await?;
                }
                EventObject::ChargeRefunded(charge) => {
                    match charge.payment_intent.as_ref().map(|p| p.id().to_string()) {
                        Some(pi) => service::apply_adjustment(conn, &pi, charge.amount_refunded, false).await?,
                        None => tracing::warn!(event = %event_id, "a refund of a charge without a payment intent; ignored"),
                    }
                }
                EventObject::ChargeDisputeCreated(dispute) => {
                    match dispute.payment_intent.as_ref().map(|p| p.id().to_string()) {
                        Some(pi) => service::apply_adjustment(conn, &pi, 0, true).await?,
                        None => tracing::warn!(event = %event_id, "a dispute without a payment intent; ignored"),
                    }
                }
                // Acknowledged and ignored: Stripe may send more than we subscribe to.
                _ => tracing::debug!(event = %event_id, r#type = %event_type, "Stripe event ignored"),
            }
            Ok(true)
        })
        .await?;
    tracing::info!(event = %event_id, r#type = %event_type, applied, "Stripe event");
    Ok(applied)
}
