//! Billing endpoints: thin handlers over `service`.

use super::PurchaseId;
use super::service;
use super::types::{Checkout, CheckoutRequest, PackageList, Purchase, PurchasePage};
use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::http::idempotency::{self, IdempotencyKey};
use crate::identity::types::WebhookAck;
use crate::identity::{Principal, Scope};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_packages)
        .service(create_checkout)
        .service(list_purchases)
        .service(create_dev_completion)
        .service(create_stripe_event);
}

/// The credit packages on sale, and whether this server can take payments.
#[utoipa::path(
    tag = "billing",
    responses((status = 200, description = "The packages", body = PackageList))
)]
#[get("/v1/billing/packages")]
pub async fn list_packages(state: web::Data<AppState>) -> web::Json<PackageList> {
    web::Json(service::packages(&state))
}

/// Start buying a package: answers the Stripe Checkout page to send the buyer to. Credits are
/// granted when Stripe reports the payment (never from the success page).
#[utoipa::path(
    tag = "billing",
    security(("session" = []), ("api_key" = ["billing"])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same key and body for 24 h")),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "The checkout to send the buyer to", body = Checkout,
         headers(("Location" = String, description = "The purchase in my history"))),
        (status = 422, description = "Unknown package", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "`payment_provider_failed`: Stripe failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`payments_not_configured`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/billing/checkout")]
pub async fn create_checkout(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    body: Json<CheckoutRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Billing)?;
    let digest = body.digest().to_vec();
    idempotency::run(&state, principal.user_id, &key, &req, &digest, || async {
        let checkout = service::checkout(&state, &principal, &body.package_id).await?;
        Ok(HttpResponse::Created()
            .insert_header(("Location", "/v1/billing/purchases"))
            .json(checkout))
    })
    .await
}

/// My purchases, newest first: status, amount, credits granted and taken back.
#[utoipa::path(
    tag = "billing",
    security(("session" = []), ("api_key" = ["billing"])),
    params(PageParams),
    responses((status = 200, description = "A page of purchases", body = PurchasePage))
)]
#[get("/v1/billing/purchases")]
pub async fn list_purchases(
    state: web::Data<AppState>,
    principal: Principal,
    page: crate::http::extract::Query<PageParams>,
) -> Result<web::Json<Page<Purchase>>, ApiError> {
    principal.require(Scope::Billing)?;
    Ok(web::Json(
        service::purchases(&state, &principal, &page).await?,
    ))
}

/// Development payments only (`EASEL_DEV_PAYMENTS=true`, development servers): completes my pending
/// checkout as if Stripe reported it paid, through the same purchase and grant code. 404 elsewhere.
#[utoipa::path(
    tag = "billing",
    security(("session" = [])),
    params(("id" = PurchaseId, Path, description = "The purchase")),
    responses(
        (status = 200, description = "The purchase, paid", body = Purchase),
        (status = 404, description = "No such pending purchase of mine, or development payments are off", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/billing/purchases/{id}/dev-complete")]
pub async fn create_dev_completion(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<PurchaseId>,
) -> Result<web::Json<Purchase>, ApiError> {
    principal.require_person()?;
    Ok(web::Json(
        service::dev_complete(&state, &principal, id.into_inner()).await?,
    ))
}

/// Stripe's events (`checkout.session.*`, `charge.refunded`, `charge.dispute.created`), each applied
/// once. Others are acknowledged and ignored.
#[utoipa::path(
    tag = "webhooks",
    params(("Stripe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256>`")),
    request_body(content = Object, description = "A Stripe event", content_type = "application/json"),
    responses(
        (status = 200, description = "Applied, or applied before", body = WebhookAck),
        (status = 400, description = "`invalid_stripe_signature`, or not an event", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`webhook_not_configured`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/stripe")]
pub async fn create_stripe_event(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<web::Json<WebhookAck>, ApiError> {
    let applied = super::webhook::receive(&state, req.headers(), &body).await?;
    Ok(web::Json(WebhookAck { applied }))
}
