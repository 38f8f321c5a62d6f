//! Billing rules. A purchase's credits follow what Stripe says about its payment: granted once when
//! paid, and clawed back as far as it is refunded (all of it when disputed). `settle` brings the
//! ledger to that state under the purchase's row lock; every path ends there.

use super::PurchaseId;
use super::packages::Package;
use super::store::{self, PurchaseChangeset, PurchaseRow};
use super::types::{Checkout, PackageList, Purchase, PurchaseStatus};
use crate::app::AppState;
use crate::credits::{self, Cause, EntryKind};
use crate::db::cursor::{Page, PageParams};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::identity::Principal;
use diesel_async::{AsyncConnection, AsyncPgConnection};

pub fn packages(state: &AppState) -> PackageList {
    PackageList {
        data: state.packages.all().to_vec(),
        payments_configured: state.stripe.is_some() || state.config.billing.dev_payments,
        dev_payments: state.config.billing.dev_payments,
    }
}

fn view(row: PurchaseRow) -> Purchase {
    Purchase {
        id: row.id,
        package_id: row.package_id,
        status: match row.status.as_str() {
            "paid" => PurchaseStatus::Paid,
            "expired" => PurchaseStatus::Expired,
            "failed" => PurchaseStatus::Failed,
            _ => PurchaseStatus::Pending,
        },
        amount_cents: row.amount_cents,
        currency: row.currency,
        credits: row.credits,
        credits_granted: row.credits_granted,
        credits_clawed_back: row.credits_clawed_back,
        refunded_cents: row.refunded_cents,
        disputed: row.disputed,
        created_at: row.created_at,
        paid_at: row.paid_at,
    }
}

fn package<'a>(state: &'a AppState, id: &str) -> Result<&'a Package, ApiError> {
    state.packages.get(id).ok_or_else(|| {
        let ids: Vec<&str> = state.packages.all().iter().map(|p| p.id.as_str()).collect();
        ApiError::validation(vec![FieldError {
            field: "package_id".to_owned(),
            message: format!("unknown package; one of: {}", ids.join(", ")),
        }])
    })
}

/// Starts buying a package: a pending purchase and a Stripe Checkout Session for it (or, with
/// development payments, a local checkout).
pub async fn checkout(
    state: &AppState,
    principal: &Principal,
    package_id: &str,
) -> Result<Checkout, ApiError> {
    let package = package(state, package_id)?;
    if state.stripe.is_none() && !state.config.billing.dev_payments {
        return Err(ApiError::new(
            ErrorCode::PaymentsNotConfigured,
            "payments are not configured on this server (EASEL_STRIPE_SECRET_KEY)",
        ));
    }
    let mut conn = state.pool.get().await?;
    let purchase = store::insert(
        &mut conn,
        &store::NewPurchase {
            id: PurchaseId::new(),
            user_id: principal.user_id,
            package_id: &package.id,
            credits: package.total_credits(),
            amount_cents: package.price_cents,
            currency: &package.currency,
        },
    )
    .await?;
    let Some(stripe) = &state.stripe else {
        // Development payments: the buyer completes it with POST …/dev-complete.
        store::set_session(
            &mut conn,
            purchase.id,
            &format!("dev_{}", purchase.id.0.simple()),
        )
        .await?;
        return Ok(Checkout {
            checkout_url: format!(
                "{}/v1/billing/purchases/{}/dev-complete",
                state.config.public_url, purchase.id
            ),
            purchase_id: purchase.id,
        });
    };
    drop(conn);
    let session = match stripe
        .create_checkout(&state.config.billing, &purchase, package)
        .await
    {
        Ok(session) => session,
        Err(e) => {
            let mut conn = state.pool.get().await?;
            store::update(
                &mut conn,
                purchase.id,
                &PurchaseChangeset {
                    status: Some("failed".to_owned()),
                    ..PurchaseChangeset::default()
                },
            )
            .await?;
            return Err(e);
        }
    };
    let mut conn = state.pool.get().await?;
    store::set_session(&mut conn, purchase.id, session.id.as_str()).await?;
    let checkout_url = session.url.ok_or_else(|| {
        ApiError::new(
            ErrorCode::PaymentProviderFailed,
            "Stripe returned a session without a URL",
        )
    })?;
    Ok(Checkout {
        checkout_url,
        purchase_id: purchase.id,
    })
}

pub async fn purchases(
    state: &AppState,
    principal: &Principal,
    page: &PageParams,
) -> Result<Page<Purchase>, ApiError> {
    let page = page.parse::<PurchaseId>("purchases")?;
    let mut conn = state.pool.get().await?;
    let rows = store::list(&mut conn, principal.user_id, page.after, page.limit).await?;
    let items = rows.into_iter().map(view).collect();
    Ok(Page::from_rows(
        "purchases",
        items,
        page.limit,
        |p: &Purchase| p.id,
    ))
}

/// Development payments: completes my pending checkout through the same code a paid Stripe
/// checkout takes.
pub async fn dev_complete(
    state: &AppState,
    principal: &Principal,
    id: PurchaseId,
) -> Result<Purchase, ApiError> {
    if !state.config.billing.dev_payments {
        return Err(ApiError::not_found("purchase"));
    }
    let mut conn = state.pool.get().await?;
    let session = store::find(&mut conn, id)
        .await?
        .filter(|p| p.user_id == principal.user_id)
        .and_then(|p| p.stripe_session_id)
        // Only a checkout made by development payments: a real Stripe checkout is paid at Stripe.
        .filter(|session| session.starts_with("dev_"))
        .ok_or_else(|| ApiError::not_found("purchase"))?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        apply_session(
            conn,
            &SessionFacts {
                session_id: session,
                purchase_id: Some(id),
                outcome: SessionOutcome::Paid,
                payment_intent: None,
            },
        )
        .await
    })
    .await?;
    let row = store::find(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("purchase"))?;
    Ok(view(row))
}

/// What a Checkout Session says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOutcome {
    Paid,
    /// Completed, but a delayed payment method has not paid yet.
    AwaitingPayment,
    PaymentFailed,
    Expired,
}

#[derive(Debug, Clone)]
pub struct SessionFacts {
    pub session_id: String,
    /// From `client_reference_id` (or metadata): which of our purchases it is.
    pub purchase_id: Option<PurchaseId>,
    pub outcome: SessionOutcome,
    pub payment_intent: Option<String>,
}

/// Applies a session's outcome to its purchase (in the caller's transaction). Returns the credits
/// granted by this call (0 when there was nothing to do).
pub async fn apply_session(
    conn: &mut AsyncPgConnection,
    facts: &SessionFacts,
) -> Result<i64, ApiError> {
    let id = match facts.purchase_id {
        Some(id) => Some(id),
        None => store::id_by_session(conn, &facts.session_id).await?,
    };
    let Some(purchase) = (match id {
        Some(id) => store::lock(conn, id).await?,
        None => None,
    }) else {
        tracing::warn!(session = %facts.session_id, "a checkout session for no purchase of ours; ignored");
        return Ok(0);
    };
    if purchase
        .stripe_session_id
        .as_deref()
        .is_some_and(|s| s != facts.session_id)
    {
        tracing::warn!(purchase.id = %purchase.id, session = %facts.session_id, "session does not match its purchase; ignored");
        return Ok(0);
    }
    let mut changes = PurchaseChangeset::default();
    if purchase.stripe_session_id.is_none() {
        changes.stripe_session_id = Some(facts.session_id.clone());
    }
    if purchase.stripe_payment_intent.is_none() {
        changes
            .stripe_payment_intent
            .clone_from(&facts.payment_intent);
    }
    let pending = purchase.status == "pending";
    match facts.outcome {
        SessionOutcome::Paid if purchase.status != "paid" => {
            changes.status = Some("paid".to_owned());
            changes.paid_at = Some(chrono::Utc::now());
        }
        SessionOutcome::PaymentFailed if pending => changes.status = Some("failed".to_owned()),
        SessionOutcome::Expired if pending => changes.status = Some("expired".to_owned()),
        _ => {}
    }
    let purchase = store::update(conn, purchase.id, &changes).await?;
    settle(conn, purchase).await
}

/// Records what Stripe reported about a payment's refunds or dispute, and settles its purchase. A
/// payment no purchase knows yet (the refund came before the checkout's completion) is noted and
/// settled when the purchase learns its payment.
pub async fn apply_adjustment(
    conn: &mut AsyncPgConnection,
    payment_intent: &str,
    refunded_cents: i64,
    disputed: bool,
) -> Result<(), ApiError> {
    let Some(id) = store::id_by_payment_intent(conn, payment_intent).await? else {
        store::note_adjustment(conn, payment_intent, refunded_cents, disputed).await?;
        return Ok(());
    };
    let Some(purchase) = store::lock(conn, id).await? else {
        return Ok(());
    };
    let purchase = store::update(
        conn,
        purchase.id,
        &PurchaseChangeset {
            refunded_cents: Some(purchase.refunded_cents.max(refunded_cents)),
            disputed: Some(purchase.disputed || disputed),
            ..PurchaseChangeset::default()
        },
    )
    .await?;
    settle(conn, purchase).await?;
    Ok(())
}

/// The credits a purchase should have taken back: all when disputed, else the refunded share
/// (rounded up, so a refund never leaves credits that were paid back).
pub fn owed_back(credits: i64, amount_cents: i64, refunded_cents: i64, disputed: bool) -> i64 {
    if disputed || amount_cents == 0 {
        return if disputed { credits } else { 0 };
    }
    let refunded = i128::from(refunded_cents.min(amount_cents));
    let owed =
        (i128::from(credits) * refunded + i128::from(amount_cents) - 1) / i128::from(amount_cents);
    i64::try_from(owed).unwrap_or(credits).min(credits)
}

/// Brings the ledger to what the (locked) purchase says: granted once when paid, clawed back as far
/// as refunded or disputed. Returns the credits granted by this call.
async fn settle(conn: &mut AsyncPgConnection, mut purchase: PurchaseRow) -> Result<i64, ApiError> {
    if purchase.status != "paid" {
        return Ok(0);
    }
    let mut changes = PurchaseChangeset::default();
    if let Some(payment_intent) = &purchase.stripe_payment_intent
        && let Some((refunded, disputed)) = store::adjustment(conn, payment_intent).await?
        && (refunded > purchase.refunded_cents || (disputed && !purchase.disputed))
    {
        purchase.refunded_cents = purchase.refunded_cents.max(refunded);
        purchase.disputed |= disputed;
        changes.refunded_cents = Some(purchase.refunded_cents);
        changes.disputed = Some(purchase.disputed);
    }
    let cause = Cause {
        purchase_id: Some(purchase.id.0),
        ..Cause::default()
    };
    let mut granted = 0;
    if purchase.credits_granted == 0 {
        // Granted all the same, so that the refund's own event takes them back as for any refund.
        let closed = crate::identity::store::find_user(conn, purchase.user_id)
            .await?
            .is_none_or(|user| user.deleted_at.is_some());
        if closed {
            changes.refund_due = Some(true);
            tracing::warn!(purchase.id = %purchase.id, "paid after its buyer deleted the account; it will be refunded");
        }
        credits::grant(
            conn,
            purchase.user_id,
            purchase.credits,
            EntryKind::Purchase,
            &cause,
        )
        .await?;
        granted = purchase.credits;
        changes.credits_granted = Some(purchase.credits);
        tracing::info!(purchase.id = %purchase.id, credits = purchase.credits, "purchase paid; credits granted");
    }
    let owed = owed_back(
        purchase.credits,
        purchase.amount_cents,
        purchase.refunded_cents,
        purchase.disputed,
    );
    if owed > purchase.credits_clawed_back {
        credits::claw_back(
            conn,
            purchase.user_id,
            owed - purchase.credits_clawed_back,
            &cause,
        )
        .await?;
        changes.credits_clawed_back = Some(owed);
        tracing::info!(purchase.id = %purchase.id, credits = owed - purchase.credits_clawed_back, "credits clawed back after a refund or dispute");
    }
    if changes.refund_due.is_some()
        || changes.credits_granted.is_some()
        || changes.credits_clawed_back.is_some()
        || changes.refunded_cents.is_some()
    {
        store::update(conn, purchase.id, &changes).await?;
    }
    Ok(granted)
}

/// Asks Stripe to refund every payment that completed after its buyer deleted the account. Each
/// refund carries an idempotency key of its purchase, so asking again (a crash before it was
/// recorded) refunds nothing twice. Returns how many were asked for.
pub async fn refund_closed_accounts(state: &AppState) -> anyhow::Result<usize> {
    let Some(stripe) = &state.stripe else {
        return Ok(0);
    };
    let mut conn = state.pool.get().await?;
    let due = store::refunds_due(&mut conn, 20).await?;
    let mut asked = 0;
    for (purchase, payment_intent) in due {
        let refund = stripe.refund(purchase, &payment_intent).await?;
        store::refund_requested(&mut conn, purchase).await?;
        tracing::info!(purchase.id = %purchase, refund = %refund, "refund asked of Stripe for a deleted account's payment");
        asked += 1;
    }
    Ok(asked)
}

/// `easel admin reconcile-payments`: compares Stripe's Checkout Sessions since `since` with our
/// purchases and repairs any paid session whose credits are missing. Prints what it did.
pub async fn reconcile(
    state: &AppState,
    since: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let stripe = state
        .stripe
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("Stripe is not configured (EASEL_STRIPE_SECRET_KEY)"))?;
    let sessions = stripe.sessions_since(since.timestamp()).await?;
    let (mut repaired, mut fine, mut foreign) = (0, 0, 0);
    for session in sessions {
        let facts = super::webhook::session_facts(&session, None);
        let mut conn = state.pool.get().await?;
        let known = match facts.purchase_id {
            Some(id) => store::find(&mut conn, id).await?.is_some(),
            None => store::id_by_session(&mut conn, &facts.session_id)
                .await?
                .is_some(),
        };
        if !known {
            foreign += 1;
            println!("{}: no purchase of ours; skipped", facts.session_id);
            continue;
        }
        let granted = conn
            .transaction::<_, ApiError, _>(async |conn| apply_session(conn, &facts).await)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {} ({:?})", facts.session_id, e.detail, e.source))?;
        if granted > 0 {
            repaired += 1;
            println!(
                "{}: paid but its credits were missing; granted {granted} credits to purchase {}",
                facts.session_id,
                facts.purchase_id.map(|p| p.to_string()).unwrap_or_default()
            );
        } else {
            fine += 1;
        }
    }
    println!("reconciled: {repaired} repaired, {fine} already right, {foreign} not ours");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::owed_back;

    #[test]
    fn refunds_take_back_their_share_rounded_up() {
        assert_eq!(owed_back(100, 500, 0, false), 0);
        assert_eq!(owed_back(100, 500, 500, false), 100);
        assert_eq!(owed_back(100, 500, 250, false), 50);
        assert_eq!(owed_back(105, 500, 250, false), 53);
        assert_eq!(owed_back(100, 500, 1, false), 1);
        assert_eq!(owed_back(100, 500, 900, false), 100);
        assert_eq!(owed_back(100, 500, 0, true), 100);
    }
}
