//! Ledger operations. Each takes a connection and runs in a transaction of its own (a savepoint when
//! the caller already opened one), so a balance never changes without its entry.

use super::store::{self, Applied, Entry, NewEntry};
use super::types::CreditTransaction;
use super::{EntryId, EntryKind};
use crate::config::CreditsConfig;
use crate::db::cursor::{Page, PageParams};
use crate::error::{ApiError, ErrorCode};
use crate::identity::UserId;
use chrono::{DateTime, NaiveDate, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};

/// A page of an account's ledger, newest first, all or of one kind. Today's free credits are
/// granted first, so the page shows them.
pub async fn transactions(
    state: &crate::app::AppState,
    user: UserId,
    page: &PageParams,
    kind: Option<EntryKind>,
) -> Result<Page<CreditTransaction>, ApiError> {
    let list = format!(
        "credit_transactions:{}",
        kind.map_or("all", EntryKind::as_str)
    );
    let page = page.parse::<i64>(&list)?;
    let mut conn = state.pool.get().await?;
    touch(&mut conn, user, &state.config.credits, today(Utc::now())).await?;
    let rows = store::list_entries(&mut conn, user, kind, page.after, page.limit).await?;
    let items = rows
        .into_iter()
        .map(|(seq, entry)| (seq, transaction(entry)))
        .collect();
    Ok(Page::from_keyed_rows(&list, items, page.limit))
}

/// A ledger entry as the API shows it.
pub fn transaction(entry: Entry) -> CreditTransaction {
    CreditTransaction {
        id: entry.id,
        kind: EntryKind::from_db(&entry.kind).unwrap_or(EntryKind::AdminGrant),
        delta: entry.free_delta + entry.purchased_delta,
        free_delta: entry.free_delta,
        purchased_delta: entry.purchased_delta,
        free_after: entry.free_after,
        purchased_after: entry.purchased_after,
        generation_id: entry.generation_id,
        purchase_id: entry.purchase_id,
        refund_of: entry.refund_of,
        admin_id: entry.admin_id,
        reason: entry.reason,
        created_at: entry.created_at,
    }
}

/// What an entry is for and what it links to.
#[derive(Debug, Clone, Default)]
pub struct Cause {
    pub generation_id: Option<uuid::Uuid>,
    pub purchase_id: Option<uuid::Uuid>,
    pub admin_id: Option<UserId>,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
}

impl Cause {
    pub fn generation(id: uuid::Uuid) -> Self {
        Self {
            generation_id: Some(id),
            ..Self::default()
        }
    }

    pub fn purchase(id: uuid::Uuid) -> Self {
        Self {
            purchase_id: Some(id),
            ..Self::default()
        }
    }

    pub fn admin(admin: UserId, reason: impl Into<String>) -> Self {
        Self {
            admin_id: Some(admin),
            reason: Some(reason.into()),
            ..Self::default()
        }
    }
}

async fn record(
    conn: &mut AsyncPgConnection,
    user: UserId,
    kind: EntryKind,
    applied: Applied,
    cause: &Cause,
    refund_of: Option<EntryId>,
    grant_day: Option<NaiveDate>,
) -> Result<Entry, ApiError> {
    let new = NewEntry {
        id: EntryId::new(),
        user_id: user,
        kind: kind.as_str(),
        free_delta: applied.free_delta,
        purchased_delta: applied.purchased_delta,
        free_after: applied.free_after,
        purchased_after: applied.purchased_after,
        generation_id: cause.generation_id,
        purchase_id: cause.purchase_id,
        refund_of,
        admin_id: cause.admin_id,
        reason: cause.reason.as_deref(),
        grant_day,
        idempotency_key: cause.idempotency_key.as_deref(),
    };
    Ok(store::insert_entry(conn, &new).await?)
}

/// Opens the account's balance on first use (with the signup bonus) and makes today's free grant if
/// it is due, expiring yesterday's leftovers. Every credit-touching call starts here.
pub async fn touch(
    conn: &mut AsyncPgConnection,
    user: UserId,
    config: &CreditsConfig,
    today: NaiveDate,
) -> Result<(), ApiError> {
    // The common case, every call after the first of the day: one read, no lock, no transaction.
    if store::granted_on(conn, user).await? == Some(Some(today)) {
        return Ok(());
    }
    conn.transaction::<_, ApiError, _>(async |conn| {
        store::open(conn, user).await?;
        // Once per account, even when a purchase or an admin grant opened the balance first.
        if store::claim_signup_bonus(conn, user).await? && config.signup_bonus > 0 {
            let applied = store::add(conn, user, 0, config.signup_bonus).await?;
            record(
                conn,
                user,
                EntryKind::SignupBonus,
                applied,
                &Cause::default(),
                None,
                None,
            )
            .await?;
        }
        if let Some(reset) = store::reset_free(conn, user, config.daily_free, today).await? {
            if reset.expired > 0 {
                let expiry = Applied {
                    free_after: 0,
                    purchased_after: reset.purchased_after,
                    free_delta: -reset.expired,
                    purchased_delta: 0,
                };
                record(
                    conn,
                    user,
                    EntryKind::DailyExpiry,
                    expiry,
                    &Cause::default(),
                    None,
                    Some(today),
                )
                .await?;
            }
            if config.daily_free > 0 {
                let grant = Applied {
                    free_after: reset.free_after,
                    purchased_after: reset.purchased_after,
                    free_delta: config.daily_free,
                    purchased_delta: 0,
                };
                record(
                    conn,
                    user,
                    EntryKind::DailyGrant,
                    grant,
                    &Cause::default(),
                    None,
                    Some(today),
                )
                .await?;
            }
        }
        Ok(())
    })
    .await
}

fn positive(amount: i64) -> Result<(), ApiError> {
    if amount <= 0 {
        return Err(ApiError::field(
            "amount",
            "must be a positive number of credits",
        ));
    }
    Ok(())
}

/// Why a spend was refused: owing after a claw-back, or not enough credits.
pub async fn refusal(
    conn: &mut AsyncPgConnection,
    user: UserId,
    amount: i64,
) -> Result<ApiError, ApiError> {
    let balance = store::balance(conn, user)
        .await?
        .map_or((0, 0), |b| (b.free, b.purchased));
    if balance.1 < 0 {
        return Ok(ApiError::new(
            ErrorCode::CreditsOwed,
            format!(
                "this account owes {} credits after a refund or dispute and cannot spend until it is settled",
                -balance.1
            ),
        ));
    }
    let available = balance.0 + balance.1;
    let mut error = ApiError::new(
        ErrorCode::InsufficientCredits,
        format!("this needs {amount} credits and {available} are available"),
    );
    error.credits = Some(Box::new((amount, available)));
    Ok(error)
}

/// Takes `amount` credits (free first) for `kind`, or fails with `insufficient_credits` (carrying
/// needed and available) or `credits_owed`, changing nothing.
async fn spend(
    conn: &mut AsyncPgConnection,
    user: UserId,
    amount: i64,
    kind: EntryKind,
    cause: &Cause,
) -> Result<Entry, ApiError> {
    positive(amount)?;
    let links = store::Links {
        id: EntryId::new(),
        kind: kind.as_str(),
        generation_id: cause.generation_id,
        purchase_id: cause.purchase_id,
        admin_id: cause.admin_id,
        reason: cause.reason.as_deref(),
        idempotency_key: cause.idempotency_key.as_deref(),
    };
    match store::spend(conn, user, amount, &links).await? {
        Some(entry) => Ok(entry),
        None => Err(refusal(conn, user, amount).await?),
    }
}

/// Reserves a generation's full quoted cost. The entry's id is what `refund` takes.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    user: UserId,
    amount: i64,
    cause: &Cause,
) -> Result<Entry, ApiError> {
    spend(conn, user, amount, EntryKind::Reservation, cause).await
}

/// Returns a reservation's credits to the buckets they came from, exactly once: the reservation row
/// is locked while checking for an earlier refund, and a unique index backs that up. `None` when it
/// had already been refunded.
pub async fn refund(
    conn: &mut AsyncPgConnection,
    reservation: EntryId,
) -> Result<Option<Entry>, ApiError> {
    refund_up_to(conn, reservation, None).await
}

/// Returns `amount` of a reservation's credits (a generation that made fewer images than it was
/// charged for), once, as [`refund`] does: non-expiring purchased credits first, then free ones.
/// `None` when it had already been refunded, or `amount` is not above 0.
pub async fn refund_part(
    conn: &mut AsyncPgConnection,
    reservation: EntryId,
    amount: i64,
) -> Result<Option<Entry>, ApiError> {
    refund_up_to(conn, reservation, Some(amount)).await
}

async fn refund_up_to(
    conn: &mut AsyncPgConnection,
    reservation: EntryId,
    amount: Option<i64>,
) -> Result<Option<Entry>, ApiError> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        let held = store::lock_reservation(conn, reservation)
            .await?
            .ok_or_else(|| ApiError::not_found("reservation"))?;
        if store::refund_of(conn, reservation).await?.is_some() {
            return Ok(None);
        }
        // What the reservation took from each bucket, as amounts to give back.
        let (free, purchased) = (-held.free_delta, -held.purchased_delta);
        let (free, purchased) = match amount {
            None => (free, purchased),
            Some(amount) => {
                let purchased_back = amount.clamp(0, purchased);
                (
                    amount.saturating_sub(purchased_back).clamp(0, free),
                    purchased_back,
                )
            }
        };
        if free == 0 && purchased == 0 && amount.is_some() {
            return Ok(None);
        }
        let applied = store::add(conn, held.user_id, free, purchased).await?;
        let cause = Cause {
            generation_id: held.generation_id,
            ..Cause::default()
        };
        Ok(Some(
            record(
                conn,
                held.user_id,
                EntryKind::Refund,
                applied,
                &cause,
                Some(reservation),
                None,
            )
            .await?,
        ))
    })
    .await
}

/// Adds purchased (non-expiring) credits: a purchase or an admin grant.
pub async fn grant(
    conn: &mut AsyncPgConnection,
    user: UserId,
    amount: i64,
    kind: EntryKind,
    cause: &Cause,
) -> Result<Entry, ApiError> {
    positive(amount)?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        store::open(conn, user).await?;
        let applied = store::add(conn, user, 0, amount).await?;
        record(conn, user, kind, applied, cause, None, None).await
    })
    .await
}

/// Takes back purchased credits after a refund or dispute. It may leave the account owing; the
/// account then cannot spend until it is back at zero.
pub async fn claw_back(
    conn: &mut AsyncPgConnection,
    user: UserId,
    amount: i64,
    cause: &Cause,
) -> Result<Entry, ApiError> {
    positive(amount)?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        store::open(conn, user).await?;
        let applied = store::add(conn, user, 0, -amount).await?;
        record(conn, user, EntryKind::ClawBack, applied, cause, None, None).await
    })
    .await
}

/// An admin's correction: a positive amount grants purchased credits, a negative one deducts (free
/// first, never below zero).
pub async fn adjust(
    conn: &mut AsyncPgConnection,
    user: UserId,
    amount: i64,
    cause: &Cause,
) -> Result<Entry, ApiError> {
    if amount > 0 {
        grant(conn, user, amount, EntryKind::AdminGrant, cause).await
    } else {
        spend(conn, user, -amount, EntryKind::AdminDeduct, cause).await
    }
}

pub fn today(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive()
}

/// Midnight UTC after `now`: when the next daily grant becomes due.
pub fn next_grant_at(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = today(now).succ_opt().unwrap_or(today(now));
    tomorrow.and_hms_opt(0, 0, 0).map_or(now, |t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_grant_is_at_the_next_utc_midnight() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T23:59:59Z").map(|t| t.to_utc());
        let next = now.map(next_grant_at).map(|t| t.to_rfc3339());
        assert_eq!(next.ok().as_deref(), Some("2026-11-25T00:00:00+00:00"));
    }
}
