//! Ledger queries. Balance changes are single conditional UPDATE statements: the database decides
//! whether a spend fits, so concurrent requests can never overdraw or lose an update.

use super::{EntryId, EntryKind};
use crate::db::schema::{credit_balances, credit_entries};
use crate::identity::UserId;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// A balance after a change, and the change actually made to each bucket.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Applied {
    #[diesel(sql_type = BigInt)]
    pub free_after: i64,
    #[diesel(sql_type = BigInt)]
    pub purchased_after: i64,
    #[diesel(sql_type = BigInt)]
    pub free_delta: i64,
    #[diesel(sql_type = BigInt)]
    pub purchased_delta: i64,
}

#[derive(Debug, Clone, Copy, Queryable, Selectable)]
#[diesel(table_name = credit_balances, check_for_backend(diesel::pg::Pg))]
pub struct Balance {
    pub free: i64,
    pub purchased: i64,
    pub free_granted_on: Option<NaiveDate>,
}

/// Creates the balance row if missing; true when this call created it (the account is new to credits).
pub async fn open(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<bool> {
    let inserted = diesel::insert_into(credit_balances::table)
        .values(credit_balances::user_id.eq(user))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Marks the signup bonus as given; true only for the one call that does so.
pub async fn claim_signup_bonus(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<bool> {
    let claimed = diesel::update(
        credit_balances::table
            .find(user)
            .filter(credit_balances::signup_bonus_at.is_null()),
    )
    .set(credit_balances::signup_bonus_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(claimed == 1)
}

pub async fn balance(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<Option<Balance>> {
    credit_balances::table
        .find(user)
        .select(Balance::as_select())
        .first(conn)
        .await
        .optional()
}

/// Whether the user has ever bought credits or been granted them by an operator. The signup bonus
/// also lands in the non-expiring bucket, so a positive balance there alone proves nothing.
pub async fn has_bought(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        credit_entries::table
            .filter(credit_entries::user_id.eq(user))
            .filter(
                credit_entries::kind
                    .eq_any([EntryKind::Purchase.as_str(), EntryKind::AdminGrant.as_str()]),
            ),
    ))
    .get_result(conn)
    .await
}

/// What an entry links to, besides its amounts.
#[derive(Debug, Clone)]
pub struct Links<'a> {
    pub id: EntryId,
    pub kind: &'a str,
    pub generation_id: Option<uuid::Uuid>,
    pub purchase_id: Option<uuid::Uuid>,
    pub admin_id: Option<UserId>,
    pub reason: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

/// Takes `amount` from free credits first, then purchased, if the two cover it and nothing is owed,
/// and records the entry: one statement, so it is atomic even outside a transaction and costs one
/// round trip. `None` when the credits do not cover it: nothing changed. It stays prepared, so it
/// names the columns it returns (see `generation::store::claim`).
pub async fn spend(
    conn: &mut AsyncPgConnection,
    user: UserId,
    amount: i64,
    links: &Links<'_>,
) -> QueryResult<Option<Entry>> {
    // The SQL lives in `easel_spend` (migration 2026-11-25-000100), which a generation's
    // submission calls too.
    let query = diesel::sql_query(
        "SELECT id, user_id, kind, free_delta, purchased_delta, free_after, purchased_after, \
                generation_id, purchase_id, refund_of, admin_id, reason, grant_day, idempotency_key, \
                created_at \
         FROM easel_spend($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<BigInt, _>(amount)
    .bind::<SqlUuid, _>(links.id)
    .bind::<diesel::sql_types::Text, _>(links.kind)
    .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(links.generation_id)
    .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(links.purchase_id)
    .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(links.admin_id)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(links.reason)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(links.idempotency_key);
    crate::db::Prepared(query).get_result(conn).await.optional()
}

/// The UTC day of the last daily grant, if the account has a balance row yet.
pub async fn granted_on(
    conn: &mut AsyncPgConnection,
    user: UserId,
) -> QueryResult<Option<Option<NaiveDate>>> {
    credit_balances::table
        .find(user)
        .select(credit_balances::free_granted_on)
        .first(conn)
        .await
        .optional()
}

/// Adds (or, with negative values, removes) credits unconditionally. Free credits cannot go below
/// zero (a CHECK); purchased may, which is how a claw-back leaves an account owing.
pub async fn add(
    conn: &mut AsyncPgConnection,
    user: UserId,
    free: i64,
    purchased: i64,
) -> QueryResult<Applied> {
    diesel::sql_query(
        "UPDATE credit_balances \
         SET free = free + $2, purchased = purchased + $3, updated_at = now() \
         WHERE user_id = $1 \
         RETURNING free AS free_after, purchased AS purchased_after, $2 AS free_delta, $3 AS purchased_delta",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<BigInt, _>(free)
    .bind::<BigInt, _>(purchased)
    .get_result(conn)
    .await
}

#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Reset {
    #[diesel(sql_type = BigInt)]
    pub expired: i64,
    #[diesel(sql_type = BigInt)]
    pub free_after: i64,
    #[diesel(sql_type = BigInt)]
    pub purchased_after: i64,
}

/// Replaces the free bucket with `grant` if today's grant has not been made yet. Of concurrent
/// first calls of the day exactly one gets `Some`; the others wait on the row lock, then match
/// nothing. Once the day's grant is made, the row is not even locked: this runs on every call.
pub async fn reset_free(
    conn: &mut AsyncPgConnection,
    user: UserId,
    grant: i64,
    today: NaiveDate,
) -> QueryResult<Option<Reset>> {
    diesel::sql_query(
        "UPDATE credit_balances AS b \
         SET free = $2, free_granted_on = $3, updated_at = now() \
         FROM (SELECT user_id, free FROM credit_balances \
               WHERE user_id = $1 AND (free_granted_on IS NULL OR free_granted_on < $3) FOR UPDATE) AS old \
         WHERE b.user_id = old.user_id AND (b.free_granted_on IS NULL OR b.free_granted_on < $3) \
         RETURNING old.free AS expired, b.free AS free_after, b.purchased AS purchased_after",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<BigInt, _>(grant)
    .bind::<Date, _>(today)
    .get_result(conn)
    .await
    .optional()
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = credit_entries, check_for_backend(diesel::pg::Pg))]
pub struct Entry {
    pub id: EntryId,
    pub user_id: UserId,
    pub kind: String,
    pub free_delta: i64,
    pub purchased_delta: i64,
    pub free_after: i64,
    pub purchased_after: i64,
    pub generation_id: Option<uuid::Uuid>,
    pub purchase_id: Option<uuid::Uuid>,
    pub refund_of: Option<EntryId>,
    pub admin_id: Option<UserId>,
    pub reason: Option<String>,
    pub grant_day: Option<NaiveDate>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = credit_entries)]
pub struct NewEntry<'a> {
    pub id: EntryId,
    pub user_id: UserId,
    pub kind: &'a str,
    pub free_delta: i64,
    pub purchased_delta: i64,
    pub free_after: i64,
    pub purchased_after: i64,
    pub generation_id: Option<uuid::Uuid>,
    pub purchase_id: Option<uuid::Uuid>,
    pub refund_of: Option<EntryId>,
    pub admin_id: Option<UserId>,
    pub reason: Option<&'a str>,
    pub grant_day: Option<NaiveDate>,
    pub idempotency_key: Option<&'a str>,
}

pub async fn insert_entry(conn: &mut AsyncPgConnection, new: &NewEntry<'_>) -> QueryResult<Entry> {
    diesel::insert_into(credit_entries::table)
        .values(new)
        .returning(Entry::as_returning())
        .get_result(conn)
        .await
}

/// The reservation `id`, locked: concurrent refunds of it queue here.
pub async fn lock_reservation(
    conn: &mut AsyncPgConnection,
    id: EntryId,
) -> QueryResult<Option<Entry>> {
    credit_entries::table
        .find(id)
        .filter(credit_entries::kind.eq(EntryKind::Reservation.as_str()))
        .select(Entry::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

pub async fn refund_of(
    conn: &mut AsyncPgConnection,
    reservation: EntryId,
) -> QueryResult<Option<Entry>> {
    credit_entries::table
        .filter(credit_entries::refund_of.eq(reservation))
        .select(Entry::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user's entries, newest first, each with its place in the ledger (`seq`, the order entries
/// were applied in, which is the keyset: `after` continues below it).
pub async fn list_entries(
    conn: &mut AsyncPgConnection,
    user: UserId,
    kind: Option<EntryKind>,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<(i64, Entry)>> {
    let mut query = credit_entries::table
        .filter(credit_entries::user_id.eq(user))
        .select((credit_entries::seq, Entry::as_select()))
        .order(credit_entries::seq.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(kind) = kind {
        query = query.filter(credit_entries::kind.eq(kind.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(credit_entries::seq.lt(after));
    }
    query.load(conn).await
}

/// An account whose balance differs from the sum of its entries.
#[derive(Debug, Clone, QueryableByName)]
pub struct Mismatch {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: uuid::Uuid,
    #[diesel(sql_type = BigInt)]
    pub free: i64,
    #[diesel(sql_type = BigInt)]
    pub purchased: i64,
    #[diesel(sql_type = BigInt)]
    pub ledger_free: i64,
    #[diesel(sql_type = BigInt)]
    pub ledger_purchased: i64,
}

pub async fn mismatches(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Mismatch>> {
    diesel::sql_query(
        "SELECT COALESCE(b.user_id, e.user_id) AS user_id, \
                COALESCE(b.free, 0) AS free, COALESCE(b.purchased, 0) AS purchased, \
                COALESCE(e.free, 0)::bigint AS ledger_free, COALESCE(e.purchased, 0)::bigint AS ledger_purchased \
         FROM credit_balances b \
         FULL JOIN (SELECT user_id, SUM(free_delta) AS free, SUM(purchased_delta) AS purchased \
                    FROM credit_entries GROUP BY user_id) e ON e.user_id = b.user_id \
         WHERE COALESCE(b.free, 0) <> COALESCE(e.free, 0) OR COALESCE(b.purchased, 0) <> COALESCE(e.purchased, 0) \
         ORDER BY 1",
    )
    .load(conn)
    .await
}
