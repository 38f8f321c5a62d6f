//! Credit endpoints: thin handlers over `service`.

use super::service;
use super::store;
use super::types::{
    AdjustCreditsRequest, CreditTransaction, CreditTransactionPage, Credits, ModelUsage,
    TransactionFilter, Usage, UsageQuery,
};
use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::{ApiError, FieldError};
use crate::http::extract::Json;
use crate::http::idempotency::{self, IdempotencyKey};
use crate::identity::{Principal, Scope, UserId};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::Utc;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_credits)
        .service(list_credit_transactions)
        .service(get_usage)
        .service(create_credit_adjustment);
}

/// My balance by bucket, and when the next daily grant arrives.
#[utoipa::path(
    tag = "credits",
    security(("session" = []), ("api_key" = ["read"])),
    responses((status = 200, description = "The balance", body = Credits))
)]
#[get("/v1/credits")]
pub async fn get_credits(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Credits>, ApiError> {
    principal.require(Scope::Read)?;
    let now = Utc::now();
    let mut conn = state.pool.get().await?;
    service::touch(
        &mut conn,
        principal.user_id,
        &state.config.credits,
        service::today(now),
    )
    .await?;
    let balance = store::balance(&mut conn, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("balance"))?;
    let owing = balance.purchased < 0;
    Ok(web::Json(Credits {
        total: if owing {
            0
        } else {
            balance.free + balance.purchased
        },
        free: balance.free,
        purchased: balance.purchased,
        owing,
        daily_grant: state.config.credits.daily_free,
        next_daily_grant_at: service::next_grant_at(now),
    }))
}

/// My ledger entries, newest first, optionally of one kind.
#[utoipa::path(
    tag = "credits",
    security(("session" = []), ("api_key" = ["read"])),
    params(PageParams, TransactionFilter),
    responses((status = 200, description = "A page of entries", body = CreditTransactionPage))
)]
#[get("/v1/credits/transactions")]
pub async fn list_credit_transactions(
    state: web::Data<AppState>,
    principal: Principal,
    page: crate::http::extract::Query<PageParams>,
    filter: crate::http::extract::Query<TransactionFilter>,
) -> Result<web::Json<Page<CreditTransaction>>, ApiError> {
    principal.require(Scope::Read)?;
    Ok(web::Json(
        service::transactions(&state, principal.user_id, &page, filter.kind).await?,
    ))
}

/// Generations and credits by model between `start` and `end`.
#[utoipa::path(
    tag = "credits",
    security(("session" = []), ("api_key" = ["read"])),
    params(UsageQuery),
    responses(
        (status = 200, description = "Usage over the period", body = Usage),
        (status = 422, description = "`end` not after `start`, or a period over 366 days", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/usage")]
pub async fn get_usage(
    state: web::Data<AppState>,
    principal: Principal,
    query: crate::http::extract::Query<UsageQuery>,
) -> Result<web::Json<Usage>, ApiError> {
    principal.require(Scope::Read)?;
    let UsageQuery { start, end } = query.into_inner();
    if end <= start {
        return Err(ApiError::field("end", "must be after start"));
    }
    if end - start > chrono::Duration::days(366) {
        return Err(ApiError::field(
            "end",
            "the period may span at most 366 days",
        ));
    }
    let mut conn = state.pool.get().await?;
    let rows =
        crate::generation::store::usage_by_model(&mut conn, principal.user_id, start, end).await?;
    let models: Vec<ModelUsage> = rows
        .into_iter()
        .map(|r| ModelUsage {
            model: r.model,
            generations: r.generations,
            credits_spent: r.credits_spent,
        })
        .collect();
    Ok(web::Json(Usage {
        start,
        end,
        credits_spent: models.iter().map(|m| m.credits_spent).sum(),
        models,
    }))
}

fn parse_adjustment(body: &AdjustCreditsRequest) -> Result<String, ApiError> {
    let mut errors = Vec::new();
    if body.amount == 0 || body.amount.abs() > 1_000_000 {
        errors.push(FieldError {
            field: "amount".to_owned(),
            message: "must be a non-zero number of credits between -1000000 and 1000000".to_owned(),
        });
    }
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        errors.push(FieldError {
            field: "reason".to_owned(),
            message: "must be 1 to 500 characters".to_owned(),
        });
    }
    if errors.is_empty() {
        Ok(reason.to_owned())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Grant (positive amount) or deduct (negative) a user's credits, with a reason. Admins only.
#[utoipa::path(
    tag = "admin",
    security(("session" = [])),
    params(
        ("id" = UserId, Path, description = "The user"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same key and body for 24 h"),
    ),
    request_body = AdjustCreditsRequest,
    responses(
        (status = 201, description = "The ledger entry", body = CreditTransaction),
        (status = 402, description = "`insufficient_credits`: a deduction larger than the balance", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid amount or reason, or `idempotency_conflict`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/users/{id}/credits")]
pub async fn create_credit_adjustment(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<UserId>,
    key: IdempotencyKey,
    body: Json<AdjustCreditsRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require_support(&state.config.auth)?;
    let user = id.into_inner();
    idempotency::run(&state, principal.user_id, &key, &req, body.digest(), || async {
        let reason = parse_adjustment(&body)?;
        let mut conn = state.pool.get().await?;
        crate::identity::store::find_user(&mut conn, user)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        service::touch(&mut conn, user, &state.config.credits, service::today(Utc::now())).await?;
        let cause = service::Cause {
            idempotency_key: key.0.clone(),
            ..service::Cause::admin(principal.user_id, reason)
        };
        let entry = service::adjust(&mut conn, user, body.amount, &cause).await?;
        tracing::info!(admin.id = %principal.user_id, user.id = %user, amount = body.amount, "credits adjusted by an admin");
        Ok(HttpResponse::Created().json(service::transaction(entry)))
    })
    .await
}
