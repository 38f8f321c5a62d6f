//! Identity queries. Every function takes a connection, so callers choose the transaction.

use super::{ApiKeyId, SessionId, UserId};
use crate::db::schema::{api_keys, identity_events, refresh_tokens, sessions, users};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::on_constraint;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: UserId,
    pub email: Option<String>,
    pub username: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub password_hash: Option<String>,
    pub role: String,
    pub external_subject: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub avatar_image_id: Option<crate::generation::ImageId>,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Two-step sign-in is on (since then).
    pub two_factor_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: UserId,
    pub email: Option<&'a str>,
    pub username: &'a str,
    pub display_name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub role: &'a str,
    pub external_subject: Option<&'a str>,
}

/// `None` leaves a column as it is; `Some(None)` clears a nullable one.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChangeset {
    pub email: Option<Option<String>>,
    pub username: Option<String>,
    pub display_name: Option<Option<String>>,
    pub bio: Option<Option<String>>,
    pub role: Option<String>,
    pub disabled_at: Option<Option<DateTime<Utc>>>,
    pub avatar_image_id: Option<Option<crate::generation::ImageId>>,
}

pub async fn insert_user(conn: &mut AsyncPgConnection, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// Inserts unless an account with this external subject exists; either way returns that account.
pub async fn upsert_external_user(
    conn: &mut AsyncPgConnection,
    new: &NewUser<'_>,
) -> QueryResult<User> {
    let inserted = diesel::insert_into(users::table)
        .values(new)
        .on_conflict(users::external_subject)
        .do_nothing()
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match inserted {
        Some(user) => Ok(user),
        None => find_user_by(
            conn,
            UserKey::Subject(new.external_subject.unwrap_or_default()),
        )
        .await?
        .ok_or(diesel::result::Error::NotFound),
    }
}

pub async fn find_user(conn: &mut AsyncPgConnection, id: UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// A unique way to name an account.
#[derive(Debug, Clone, Copy)]
pub enum UserKey<'a> {
    Id(UserId),
    Email(&'a str),
    Username(&'a str),
    /// `sub` at the external identity provider.
    Subject(&'a str),
}

impl<'a> UserKey<'a> {
    /// What support types to name an account: its id, its email (it has an `@`), or its username.
    pub fn named(name: &'a str) -> Self {
        match uuid::Uuid::parse_str(name) {
            Ok(id) => Self::Id(UserId(id)),
            Err(_) if name.contains('@') => Self::Email(name),
            Err(_) => Self::Username(name),
        }
    }
}

pub async fn find_user_by(
    conn: &mut AsyncPgConnection,
    key: UserKey<'_>,
) -> QueryResult<Option<User>> {
    // PostgreSQL text cannot hold NUL, so no account has it, and sending it is an error.
    if let UserKey::Email(text) | UserKey::Username(text) | UserKey::Subject(text) = key
        && text.contains('\0')
    {
        return Ok(None);
    }
    let query = users::table.select(User::as_select()).into_boxed();
    let query = match key {
        UserKey::Id(id) => query.filter(users::id.eq(id)),
        UserKey::Email(email) => query.filter(users::email.eq(email)),
        UserKey::Username(username) => query.filter(users::username.eq(username)),
        UserKey::Subject(subject) => query.filter(users::external_subject.eq(subject)),
    };
    query.first(conn).await.optional()
}

/// The usernames of `ids`.
pub async fn usernames_of(
    conn: &mut AsyncPgConnection,
    ids: &[UserId],
) -> QueryResult<Vec<(UserId, String)>> {
    users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::username))
        .load(conn)
        .await
}

pub async fn update_user(
    conn: &mut AsyncPgConnection,
    id: UserId,
    changes: &UserChangeset,
) -> QueryResult<User> {
    diesel::update(users::table.find(id))
        .set(changes)
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// Replaces `user`'s password hash.
pub async fn set_password_hash(
    conn: &mut AsyncPgConnection,
    user: UserId,
    hash: &str,
) -> QueryResult<usize> {
    diesel::update(users::table.find(user))
        .set(users::password_hash.eq(hash))
        .execute(conn)
        .await
}

/// Marks an account deleted and takes off it all that names the person: it is disabled, its email
/// and external subject freed (the same person may sign up again), its username replaced by
/// `placeholder` (freeing theirs), its profile and password cleared. False if it already was.
pub async fn mark_deleted(
    conn: &mut AsyncPgConnection,
    user: UserId,
    placeholder: &str,
) -> QueryResult<bool> {
    let marked = diesel::update(users::table.find(user).filter(users::deleted_at.is_null()))
        .set((
            users::deleted_at.eq(diesel::dsl::now),
            users::disabled_at.eq(diesel::dsl::now),
            users::email.eq(None::<String>),
            // The provider's id for the person stays (an opaque id, never shown): a token it issued
            // before the deletion then finds this closed account, rather than make a new one.
            users::username.eq(placeholder),
            users::display_name.eq(None::<String>),
            users::bio.eq(None::<String>),
            users::avatar_image_id.eq(None::<crate::generation::ImageId>),
            users::password_hash.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
    Ok(marked > 0)
}

/// Accounts marked deleted and not yet erased, oldest first.
pub async fn awaiting_erasure(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<Vec<UserId>> {
    users::table
        .filter(users::deleted_at.is_not_null())
        .filter(users::erased_at.is_null())
        .order(users::deleted_at)
        .limit(limit)
        .select(users::id)
        .load(conn)
        .await
}

pub async fn mark_erased(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<usize> {
    diesel::update(users::table.find(user))
        .set(users::erased_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}

/// Records a password-reset link's token (its hash) for `user`, good until `expires_at`.
pub async fn insert_password_reset(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    user: UserId,
    expires_at: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO password_resets (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind::<diesel::sql_types::Bytea, _>(token_hash)
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::Timestamptz, _>(expires_at)
    .execute(conn)
    .await
}

#[derive(QueryableByName)]
struct ResetOwner {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    user_id: UserId,
}

/// Whether a password-reset token would work now ([`use_password_reset`] decides, in its
/// transaction): asked first so that a made-up token costs no password hashing.
pub async fn password_reset_open(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        open: bool,
    }
    let open: Open = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM password_resets \
                        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()) AS open",
    )
    .bind::<diesel::sql_types::Bytea, _>(token_hash)
    .get_result(conn)
    .await?;
    Ok(open.open)
}

/// Uses up a password-reset token: the account it resets, if the token is unused, unexpired, and
/// its account is still open (not disabled, not deleted). Every other open link of that account
/// is used up with it.
pub async fn use_password_reset(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<UserId>> {
    let owner: Option<ResetOwner> = diesel::sql_query(
        "UPDATE password_resets r SET used_at = now() FROM users u \
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now() \
           AND u.id = r.user_id AND u.disabled_at IS NULL AND u.deleted_at IS NULL \
           AND u.password_hash IS NOT NULL \
         RETURNING r.user_id",
    )
    .bind::<diesel::sql_types::Bytea, _>(token_hash)
    .get_result(conn)
    .await
    .optional()?;
    let Some(owner) = owner else {
        return Ok(None);
    };
    diesel::sql_query(
        "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(owner.user_id)
    .execute(conn)
    .await?;
    Ok(Some(owner.user_id))
}

/// Records a pending change of `user`'s email to `new_email`, confirmed by the token with this hash.
pub async fn insert_email_change(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    user: UserId,
    new_email: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO email_changes (token_hash, user_id, new_email, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind::<diesel::sql_types::Bytea, _>(token_hash)
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::Text, _>(new_email)
    .bind::<diesel::sql_types::Timestamptz, _>(expires_at)
    .execute(conn)
    .await
}

#[derive(QueryableByName)]
struct EmailChange {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    user_id: UserId,
    #[diesel(sql_type = diesel::sql_types::Text)]
    new_email: String,
}

/// Uses up an email-change token: the account and its new email, if the token is unused,
/// unexpired, and its account still open. The account's other pending changes are used up too.
pub async fn use_email_change(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<(UserId, String)>> {
    let change: Option<EmailChange> = diesel::sql_query(
        "UPDATE email_changes c SET used_at = now() FROM users u \
         WHERE c.token_hash = $1 AND c.used_at IS NULL AND c.expires_at > now() \
           AND u.id = c.user_id AND u.disabled_at IS NULL AND u.deleted_at IS NULL \
         RETURNING c.user_id, c.new_email",
    )
    .bind::<diesel::sql_types::Bytea, _>(token_hash)
    .get_result(conn)
    .await
    .optional()?;
    let Some(change) = change else {
        return Ok(None);
    };
    diesel::sql_query(
        "UPDATE email_changes SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(change.user_id)
    .execute(conn)
    .await?;
    Ok(Some((change.user_id, change.new_email)))
}

/// Sets `user`'s email, confirmed just now by a link mailed to it (its unique index refuses one
/// another account has).
pub async fn set_verified_email(
    conn: &mut AsyncPgConnection,
    user: UserId,
    email: &str,
) -> QueryResult<usize> {
    diesel::update(users::table.find(user))
        .set((
            users::email.eq(email),
            users::email_verified_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
}

/// Whether another account than `user` has this email.
pub async fn email_taken(
    conn: &mut AsyncPgConnection,
    email: &str,
    user: UserId,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table
            .filter(users::email.eq(email))
            .filter(users::id.ne(user)),
    ))
    .get_result(conn)
    .await
}

pub async fn username_taken(conn: &mut AsyncPgConnection, username: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table.filter(users::username.eq(username)),
    ))
    .get_result(conn)
    .await
}

// ---- sessions and refresh tokens ----

/// Where a session signed in from, as the person will see it among their devices.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// How a new session proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// A password (or a new account's, or a reset link's).
    Password,
    /// A password and then an authenticator or recovery code.
    TwoSteps,
}

pub async fn insert_session(
    conn: &mut AsyncPgConnection,
    id: SessionId,
    user: UserId,
    expires_at: DateTime<Utc>,
    device: &Device,
    sign_in: SignIn,
) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(id),
            sessions::user_id.eq(user),
            sessions::expires_at.eq(expires_at),
            sessions::user_agent.eq(device.user_agent.as_deref()),
            sessions::ip.eq(device.ip.as_deref()),
            sessions::second_factor.eq(sign_in == SignIn::TwoSteps),
        ))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
    session: SessionId,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(hash),
            refresh_tokens::session_id.eq(session),
        ))
        .execute(conn)
        .await
        .map(drop)
}

pub enum Consumed {
    /// First use: the token is now spent.
    Fresh(SessionId),
    /// Already spent once: someone replayed it.
    Reused(SessionId),
    Unknown,
}

/// Marks a refresh token used, atomically: of two concurrent exchanges exactly one is `Fresh`.
pub async fn consume_refresh_token(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
) -> QueryResult<Consumed> {
    let fresh: Option<SessionId> = diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(hash))
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(diesel::dsl::now))
    .returning(refresh_tokens::session_id)
    .get_result(conn)
    .await
    .optional()?;
    if let Some(session) = fresh {
        return Ok(Consumed::Fresh(session));
    }
    let spent: Option<SessionId> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash))
        .select(refresh_tokens::session_id)
        .first(conn)
        .await
        .optional()?;
    Ok(spent.map_or(Consumed::Unknown, Consumed::Reused))
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Signed in with a code after the password.
    pub second_factor: bool,
}

/// A session as its owner sees it among their devices.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct DeviceRow {
    pub id: SessionId,
    pub created_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub second_factor: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// `user`'s sessions still signed in (not revoked, not expired), newest first.
pub async fn list_sessions(
    conn: &mut AsyncPgConnection,
    user: UserId,
    after: Option<SessionId>,
    limit: i64,
) -> QueryResult<Vec<DeviceRow>> {
    let mut query = sessions::table
        .filter(sessions::user_id.eq(user))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(diesel::dsl::now))
        .select(DeviceRow::as_select())
        .order(sessions::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(sessions::id.lt(after));
    }
    query.load(conn).await
}

/// How many of `user`'s sessions are signed in now.
pub async fn count_signed_in(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::user_id.eq(user))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(diesel::dsl::now))
        .count()
        .get_result(conn)
        .await
}

/// Ends one of `user`'s sessions still signed in; false if there is no such session.
pub async fn revoke_own_session(
    conn: &mut AsyncPgConnection,
    user: UserId,
    id: SessionId,
    reason: &str,
) -> QueryResult<bool> {
    let ended = diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::user_id.eq(user))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(diesel::dsl::now)),
    )
    .set((
        sessions::revoked_at.eq(diesel::dsl::now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .await?;
    Ok(ended > 0)
}

/// Notes that a session was just used to refresh its tokens.
pub async fn touch_session(conn: &mut AsyncPgConnection, id: SessionId) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id))
        .set(sessions::last_active_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}

/// The session and its user, in one query.
pub async fn find_session_with_user(
    conn: &mut AsyncPgConnection,
    id: SessionId,
) -> QueryResult<Option<(Session, User)>> {
    Ok(find_sessions_with_users(conn, &[id]).await?.pop())
}

/// The sessions among `ids` that exist, with their users, in one query: what every
/// session-authenticated request checks, for many requests at once (see `service::SessionLookups`).
pub async fn find_sessions_with_users(
    conn: &mut AsyncPgConnection,
    ids: &[SessionId],
) -> QueryResult<Vec<(Session, User)>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq_any(ids))
        .select((Session::as_select(), User::as_select()))
        .load(conn)
        .await
}

pub async fn revoke_session(
    conn: &mut AsyncPgConnection,
    id: SessionId,
    reason: &str,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(diesel::dsl::now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .await
}

pub async fn revoke_user_sessions(
    conn: &mut AsyncPgConnection,
    user: UserId,
    reason: &str,
) -> QueryResult<usize> {
    revoke_sessions_but(conn, user, None, reason).await
}

/// Forgets where `user`'s sessions came from (address and browser), keeping the rows that tell a
/// reused refresh token from an unknown one.
pub async fn forget_devices(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<usize> {
    diesel::update(sessions::table.filter(sessions::user_id.eq(user)))
        .set((
            sessions::ip.eq(None::<String>),
            sessions::user_agent.eq(None::<String>),
        ))
        .execute(conn)
        .await
}

/// Ends every session of `user` except `kept` (the one asking, when it is a session).
pub async fn revoke_sessions_but(
    conn: &mut AsyncPgConnection,
    user: UserId,
    kept: Option<SessionId>,
    reason: &str,
) -> QueryResult<usize> {
    let kept: Vec<SessionId> = kept.into_iter().collect();
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::id.ne_all(kept)),
    )
    .set((
        sessions::revoked_at.eq(diesel::dsl::now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .await
}

// ---- API keys ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: String,
    pub prefix: String,
    pub last_four: String,
    pub scopes: Vec<Option<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub last_four: &'a str,
    pub key_hash: &'a [u8],
    pub scopes: Vec<Option<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert_api_key(
    conn: &mut AsyncPgConnection,
    new: &NewApiKey<'_>,
) -> QueryResult<ApiKeyRow> {
    diesel::insert_into(api_keys::table)
        .values(new)
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
        .await
}

/// A user's live keys, newest first, after the keyset position `after` (ids are time-ordered).
pub async fn list_api_keys(
    conn: &mut AsyncPgConnection,
    user: UserId,
    after: Option<ApiKeyId>,
    limit: i64,
) -> QueryResult<Vec<ApiKeyRow>> {
    let mut query = api_keys::table
        .filter(api_keys::user_id.eq(user))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .order(api_keys::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(api_keys::id.lt(after));
    }
    query.load(conn).await
}

pub async fn revoke_api_key(
    conn: &mut AsyncPgConnection,
    user: UserId,
    id: ApiKeyId,
) -> QueryResult<usize> {
    diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::user_id.eq(user))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// Revokes every API key of `user`.
pub async fn revoke_user_api_keys(
    conn: &mut AsyncPgConnection,
    user: UserId,
) -> QueryResult<usize> {
    diesel::update(
        api_keys::table
            .filter(api_keys::user_id.eq(user))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

pub async fn find_api_key_by_hash(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
) -> QueryResult<Option<(ApiKeyRow, User)>> {
    api_keys::table
        .inner_join(users::table)
        .filter(api_keys::key_hash.eq(hash))
        .select((ApiKeyRow::as_select(), User::as_select()))
        .first(conn)
        .await
        .optional()
}

/// Records use at most once a minute per key, so a busy key does not write on every request.
pub async fn touch_api_key(conn: &mut AsyncPgConnection, id: ApiKeyId) -> QueryResult<usize> {
    let a_minute_ago = Utc::now() - chrono::Duration::minutes(1);
    diesel::update(
        api_keys::table.filter(api_keys::id.eq(id)).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(a_minute_ago)),
        ),
    )
    .set(api_keys::last_used_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

// ---- identity provider events ----

/// Records a webhook delivery id; false when it was already recorded (a retry).
pub async fn record_identity_event(
    conn: &mut AsyncPgConnection,
    id: &str,
    event_type: &str,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(identity_events::table)
        .values((
            identity_events::id.eq(id),
            identity_events::event_type.eq(event_type),
        ))
        .on_conflict(on_constraint("identity_events_pkey"))
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

pub async fn session_of_refresh_token(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
) -> QueryResult<Option<SessionId>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash))
        .select(refresh_tokens::session_id)
        .first(conn)
        .await
        .optional()
}

// ---- two-step sign-in ----

/// A new authenticator secret for `user`, in place of any set-up not finished.
pub async fn set_two_factor_secret(
    conn: &mut AsyncPgConnection,
    user: UserId,
    secret: &[u8],
) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO two_factor_secrets (user_id, secret) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, last_step = 0, \
                                             created_at = now()",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::Bytea, _>(secret)
    .execute(conn)
    .await
}

#[derive(QueryableByName)]
struct TwoFactorSecret {
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    secret: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    last_step: i64,
}

/// `user`'s authenticator secret and the last step used, locked until the transaction ends (so
/// one code cannot be used twice at once).
pub async fn lock_two_factor_secret(
    conn: &mut AsyncPgConnection,
    user: UserId,
) -> QueryResult<Option<(Vec<u8>, i64)>> {
    let row: Option<TwoFactorSecret> = diesel::sql_query(
        "SELECT secret, last_step FROM two_factor_secrets WHERE user_id = $1 FOR UPDATE",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| (r.secret, r.last_step)))
}

pub async fn two_factor_on(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<bool> {
    users::table
        .find(user)
        .select(users::two_factor_at.is_not_null())
        .first(conn)
        .await
}

/// Uses up time step `step` of `user`'s codes; false when it or a later one was used already
/// (a compare-and-set, so a code cannot be used twice however the calls interleave).
pub async fn use_two_factor_step(
    conn: &mut AsyncPgConnection,
    user: UserId,
    step: i64,
) -> QueryResult<bool> {
    let used = diesel::sql_query(
        "UPDATE two_factor_secrets SET last_step = $2 WHERE user_id = $1 AND last_step < $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::BigInt, _>(step)
    .execute(conn)
    .await?;
    Ok(used == 1)
}

/// Two-step sign-in on (from now) or off.
pub async fn turn_two_factor(
    conn: &mut AsyncPgConnection,
    user: UserId,
    on: bool,
) -> QueryResult<usize> {
    let at = if on { Some(Utc::now()) } else { None };
    diesel::update(users::table.find(user))
        .set(users::two_factor_at.eq(at))
        .execute(conn)
        .await
}

/// Two-step sign-in off: the secret and recovery codes go. Run it in a transaction.
pub async fn forget_two_factor(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<()> {
    turn_two_factor(conn, user, false).await?;
    diesel::sql_query("DELETE FROM two_factor_secrets WHERE user_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(user)
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(user)
        .execute(conn)
        .await?;
    Ok(())
}

/// `user`'s recovery codes become these (by hash); the old ones stop working.
pub async fn replace_recovery_codes(
    conn: &mut AsyncPgConnection,
    user: UserId,
    hashes: &[Vec<u8>],
) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(user)
        .execute(conn)
        .await?;
    diesel::sql_query(
        "INSERT INTO recovery_codes (code_hash, user_id) SELECT unnest($2::bytea[]), $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Bytea>, _>(hashes)
    .execute(conn)
    .await
}

/// How many of `user`'s recovery codes are unused.
pub async fn recovery_codes_left(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Left {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        left: i64,
    }
    let row: Left = diesel::sql_query(
        "SELECT count(*) AS left FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .get_result(conn)
    .await?;
    Ok(row.left)
}

/// Uses up one of `user`'s recovery codes; false when it is not theirs or was used.
pub async fn use_recovery_code(
    conn: &mut AsyncPgConnection,
    user: UserId,
    hash: &[u8],
) -> QueryResult<bool> {
    let used = diesel::sql_query(
        "UPDATE recovery_codes SET used_at = now() \
         WHERE code_hash = $1 AND user_id = $2 AND used_at IS NULL",
    )
    .bind::<diesel::sql_types::Bytea, _>(hash)
    .bind::<diesel::sql_types::Uuid, _>(user)
    .execute(conn)
    .await?;
    Ok(used == 1)
}
