//! Purchase and Stripe event queries.

use super::PurchaseId;
use crate::db::schema::{purchases, stripe_events, stripe_payment_adjustments};
use crate::identity::UserId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = purchases, check_for_backend(diesel::pg::Pg))]
pub struct PurchaseRow {
    pub id: PurchaseId,
    pub user_id: UserId,
    pub package_id: String,
    pub credits: i64,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub stripe_session_id: Option<String>,
    pub stripe_payment_intent: Option<String>,
    pub refunded_cents: i64,
    pub disputed: bool,
    pub credits_granted: i64,
    pub credits_clawed_back: i64,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = purchases)]
pub struct NewPurchase<'a> {
    pub id: PurchaseId,
    pub user_id: UserId,
    pub package_id: &'a str,
    pub credits: i64,
    pub amount_cents: i64,
    pub currency: &'a str,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &NewPurchase<'_>,
) -> QueryResult<PurchaseRow> {
    diesel::insert_into(purchases::table)
        .values(new)
        .returning(PurchaseRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_session(
    conn: &mut AsyncPgConnection,
    id: PurchaseId,
    session: &str,
) -> QueryResult<usize> {
    diesel::update(purchases::table.find(id))
        .set(purchases::stripe_session_id.eq(session))
        .execute(conn)
        .await
}

/// The purchase, locked until the transaction ends: everything that changes a purchase's credits
/// goes through this lock.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    id: PurchaseId,
) -> QueryResult<Option<PurchaseRow>> {
    purchases::table
        .find(id)
        .select(PurchaseRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    id: PurchaseId,
) -> QueryResult<Option<PurchaseRow>> {
    purchases::table
        .find(id)
        .select(PurchaseRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn id_by_payment_intent(
    conn: &mut AsyncPgConnection,
    payment_intent: &str,
) -> QueryResult<Option<PurchaseId>> {
    purchases::table
        .filter(purchases::stripe_payment_intent.eq(payment_intent))
        .select(purchases::id)
        .first(conn)
        .await
        .optional()
}

pub async fn id_by_session(
    conn: &mut AsyncPgConnection,
    session: &str,
) -> QueryResult<Option<PurchaseId>> {
    purchases::table
        .filter(purchases::stripe_session_id.eq(session))
        .select(purchases::id)
        .first(conn)
        .await
        .optional()
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    owner: UserId,
    after: Option<PurchaseId>,
    limit: i64,
) -> QueryResult<Vec<PurchaseRow>> {
    let mut query = purchases::table
        .filter(purchases::user_id.eq(owner))
        .select(PurchaseRow::as_select())
        .order(purchases::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(purchases::id.lt(after));
    }
    query.load(conn).await
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = purchases)]
pub struct PurchaseChangeset {
    pub status: Option<String>,
    pub stripe_session_id: Option<String>,
    pub stripe_payment_intent: Option<String>,
    pub refunded_cents: Option<i64>,
    pub disputed: Option<bool>,
    pub credits_granted: Option<i64>,
    pub credits_clawed_back: Option<i64>,
    pub paid_at: Option<DateTime<Utc>>,
    pub refund_due: Option<bool>,
}

impl PurchaseChangeset {
    fn is_empty(&self) -> bool {
        self.refund_due.is_none()
            && self.status.is_none()
            && self.stripe_session_id.is_none()
            && self.stripe_payment_intent.is_none()
            && self.refunded_cents.is_none()
            && self.disputed.is_none()
            && self.credits_granted.is_none()
            && self.credits_clawed_back.is_none()
            && self.paid_at.is_none()
    }
}

/// Applies the changes (none: the row as it is) and returns the row.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: PurchaseId,
    changes: &PurchaseChangeset,
) -> QueryResult<PurchaseRow> {
    if changes.is_empty() {
        return purchases::table
            .find(id)
            .select(PurchaseRow::as_select())
            .first(conn)
            .await;
    }
    diesel::update(purchases::table.find(id))
        .set(changes)
        .returning(PurchaseRow::as_returning())
        .get_result(conn)
        .await
}

/// Records a refund or dispute for a payment no purchase knows yet; values only grow.
pub async fn note_adjustment(
    conn: &mut AsyncPgConnection,
    payment_intent: &str,
    refunded_cents: i64,
    disputed: bool,
) -> QueryResult<usize> {
    diesel::insert_into(stripe_payment_adjustments::table)
        .values((
            stripe_payment_adjustments::payment_intent.eq(payment_intent),
            stripe_payment_adjustments::refunded_cents.eq(refunded_cents),
            stripe_payment_adjustments::disputed.eq(disputed),
        ))
        .on_conflict(stripe_payment_adjustments::payment_intent)
        .do_update()
        .set((
            stripe_payment_adjustments::refunded_cents.eq(diesel::dsl::sql::<
                diesel::sql_types::BigInt,
            >(
                "greatest(stripe_payment_adjustments.refunded_cents, excluded.refunded_cents)",
            )),
            stripe_payment_adjustments::disputed.eq(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "stripe_payment_adjustments.disputed OR excluded.disputed",
            )),
            stripe_payment_adjustments::updated_at
                .eq(excluded(stripe_payment_adjustments::updated_at)),
        ))
        .execute(conn)
        .await
}

pub async fn adjustment(
    conn: &mut AsyncPgConnection,
    payment_intent: &str,
) -> QueryResult<Option<(i64, bool)>> {
    stripe_payment_adjustments::table
        .find(payment_intent)
        .select((
            stripe_payment_adjustments::refunded_cents,
            stripe_payment_adjustments::disputed,
        ))
        .first(conn)
        .await
        .optional()
}

/// Records an event id; false when it had been recorded before (the event was applied already).
pub async fn record_event(
    conn: &mut AsyncPgConnection,
    id: &str,
    event_type: &str,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(stripe_events::table)
        .values((
            stripe_events::id.eq(id),
            stripe_events::event_type.eq(event_type),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Paid purchases of deleted accounts whose refund Stripe has not been asked for yet, with their
/// payment.
pub async fn refunds_due(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<Vec<(PurchaseId, String)>> {
    purchases::table
        .filter(purchases::refund_due)
        .filter(purchases::refund_requested_at.is_null())
        .filter(purchases::stripe_payment_intent.is_not_null())
        .select((
            purchases::id,
            purchases::stripe_payment_intent.assume_not_null(),
        ))
        .order(purchases::id)
        .limit(limit)
        .load(conn)
        .await
}

pub async fn refund_requested(conn: &mut AsyncPgConnection, id: PurchaseId) -> QueryResult<usize> {
    diesel::update(purchases::table.find(id))
        .set(purchases::refund_requested_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}
