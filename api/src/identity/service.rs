//! Identity logic: accounts, sessions, API keys, authentication, the provider's users.

use super::activity::{self, Activity, Source};
use super::domain::{Email, Password, Username};
use super::external::ExternalClaims;
use super::principal::{Principal, Via};
use super::store::{self, Consumed, NewApiKey, NewUser, User, UserChangeset};
use super::types::{
    ApiKey, ChangePasswordRequest, CreateApiKeyRequest, CreatedApiKey, Device, Me, SignupRequest,
    TokenResponse, UpdateMeRequest,
};
use super::{ApiKeyId, Role, Scope, SessionId, UserId, api_keys, password, tokens};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::http::rate_limit;
use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};

pub fn me(user: &User) -> Me {
    Me {
        id: user.id,
        email: user.email.clone(),
        email_verified: user.email.is_some() && user.email_verified_at.is_some(),
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        bio: user.bio.clone(),
        avatar_image_id: user.avatar_image_id,
        role: Role::from_db(&user.role),
        two_factor: user.two_factor_at.is_some(),
        created_at: user.created_at,
    }
}

/// Collects every field error at once, so a form shows them all.
fn collect<T>(results: &mut Vec<FieldError>, result: Result<T, FieldError>) -> Option<T> {
    result.map_err(|e| results.push(e)).ok()
}

pub struct NewAccount {
    pub email: Option<Email>,
    pub username: Username,
    pub password: Option<Password>,
    pub role: Role,
}

pub fn parse_signup(body: &SignupRequest) -> Result<NewAccount, ApiError> {
    let mut errors = Vec::new();
    let email = collect(&mut errors, Email::parse(&body.email));
    let username = collect(&mut errors, Username::parse(&body.username));
    let password = collect(&mut errors, Password::parse(&body.password));
    match (email, username, password) {
        (Some(email), Some(username), Some(password)) if errors.is_empty() => Ok(NewAccount {
            email: Some(email),
            username,
            password: Some(password),
            role: Role::User,
        }),
        _ => Err(ApiError::validation(errors)),
    }
}

/// Creates an account with a password (or none, for provider accounts). Duplicate email or username
/// answers 409 through the unique indexes, so concurrent signups cannot both win.
pub async fn create_account(
    conn: &mut AsyncPgConnection,
    account: NewAccount,
) -> Result<User, ApiError> {
    let hash = match account.password {
        Some(p) => Some(password::hash(p.expose().to_owned()).await?),
        None => None,
    };
    let new = NewUser {
        id: UserId::new(),
        email: account.email.as_ref().map(Email::as_str),
        username: account.username.as_str(),
        display_name: None,
        password_hash: hash.as_deref(),
        role: account.role.as_str(),
        external_subject: None,
    };
    Ok(store::insert_user(conn, &new).await?)
}

/// Starts a session (a new refresh-token family) and issues its first tokens.
pub async fn start_session(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user: &User,
    device: &store::Device,
    sign_in: store::SignIn,
) -> Result<TokenResponse, ApiError> {
    let tokens = &state.identity.tokens;
    let session = SessionId::new();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(tokens.refresh_ttl).unwrap_or(chrono::Duration::days(30));
    let (refresh, hash) = tokens::new_opaque_token();
    conn.transaction::<_, ApiError, _>(async |conn| {
        store::insert_session(conn, session, user.id, expires_at, device, sign_in).await?;
        store::insert_refresh_token(conn, &hash, session).await?;
        Ok(())
    })
    .await?;
    token_response(state, user, session, refresh)
}

fn token_response(
    state: &AppState,
    user: &User,
    session: SessionId,
    refresh: String,
) -> Result<TokenResponse, ApiError> {
    let (access_token, expires_in) = state.identity.tokens.issue(user.id, session)?;
    Ok(TokenResponse {
        access_token,
        token_type: "bearer".to_owned(),
        expires_in,
        refresh_token: refresh,
        user: me(user),
    })
}

pub async fn signup(
    state: &AppState,
    body: &SignupRequest,
    device: &store::Device,
) -> Result<TokenResponse, ApiError> {
    let account = parse_signup(body)?;
    let mut conn = state.pool.get().await?;
    let user = create_account(&mut conn, account).await?;
    tracing::info!(user.id = %user.id, "account created");
    super::email_change::verify_after_signup(state, &mut conn, &user).await;
    start_session(state, &mut conn, &user, device, store::SignIn::Password).await
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "the email or password is wrong",
    )
}

/// What a right password gets: a session, or for an account with two-step sign-in, a challenge
/// to answer with a code.
pub enum Login {
    Tokens(TokenResponse),
    Challenge(super::types::TwoFactorChallenge),
}

pub async fn login(
    state: &AppState,
    email: &str,
    password_input: &str,
    device: &store::Device,
) -> Result<Login, ApiError> {
    let email = Email::parse(email).map_err(|_| invalid_credentials())?;
    // Per account, whatever the IP: password guessing spread over many addresses still stops.
    limit_per_account(
        state,
        &format!("login:{}", email.as_str()),
        "login attempts for this account",
    )?;
    let mut conn = state.pool.get().await?;
    let user = store::find_user_by(&mut conn, store::UserKey::Email(email.as_str())).await?;
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    if !password::verify(password_input.to_owned(), stored).await? {
        if let Some(user) = user.as_ref().filter(|u| u.password_hash.is_some()) {
            activity::record(
                &mut conn,
                user.id,
                Activity::WrongPassword,
                Source::Device(device),
            )
            .await;
        }
        return Err(invalid_credentials());
    }
    let user = user.ok_or_else(invalid_credentials)?;
    if user.disabled_at.is_some() {
        return Err(disabled());
    }
    if user.two_factor_at.is_some() {
        let now = Utc::now().timestamp();
        return Ok(Login::Challenge(super::two_factor::challenge(
            state, user.id, now,
        )));
    }
    let tokens = start_session(state, &mut conn, &user, device, store::SignIn::Password).await?;
    activity::record(
        &mut conn,
        user.id,
        Activity::SignedIn,
        Source::Device(device),
    )
    .await;
    Ok(Login::Tokens(tokens))
}

/// Counts one try at something guessable or mailable for one account (logins, passwords given
/// again, reset links, confirmation links) against `EASEL_RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE`,
/// whatever address it comes from: guessing spread over many addresses still stops.
pub fn limit_per_account(state: &AppState, key: &str, what: &str) -> Result<(), ApiError> {
    rate_limit::enforce(
        state.rate_limits.as_ref(),
        key,
        state.config.rate_limits.login_per_account,
        rate_limit::MINUTE,
        what,
    )
}

fn disabled() -> ApiError {
    ApiError::new(ErrorCode::AccountDisabled, "this account is disabled")
}

fn session_ended() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidToken,
        "this session has ended; sign in again",
    )
}

/// Exchanges a refresh token for new tokens. A token presented twice means it leaked: the whole
/// family is revoked, so neither the thief nor the owner can continue without signing in.
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<TokenResponse, ApiError> {
    let hash = tokens::sha256(refresh_token);
    let mut conn = state.pool.get().await?;
    let (next, next_hash) = tokens::new_opaque_token();
    let outcome = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let session_id = match store::consume_refresh_token(conn, &hash).await? {
                Consumed::Fresh(id) => id,
                Consumed::Reused(id) => {
                    store::revoke_session(conn, id, "refresh_token_reused").await?;
                    return Ok(Err(ApiError::new(
                        ErrorCode::RefreshTokenReused,
                        "this refresh token was already used; the session is revoked, sign in again",
                    )));
                }
                Consumed::Unknown => return Ok(Err(session_ended())),
            };
            let Some((session, user)) = store::find_session_with_user(conn, session_id).await? else {
                return Ok(Err(session_ended()));
            };
            if session.revoked_at.is_some() || session.expires_at <= Utc::now() {
                return Ok(Err(session_ended()));
            }
            if user.disabled_at.is_some() {
                return Ok(Err(disabled()));
            }
            store::insert_refresh_token(conn, &next_hash, session_id).await?;
            store::touch_session(conn, session_id).await?;
            Ok(Ok((user, session_id)))
        })
        .await?;
    // The revocation above must commit even though the caller gets an error: hence Ok(Err(..)).
    let (user, session) = outcome?;
    token_response(state, &user, session, next)
}

/// Ends the session of a refresh token, if it names one. Idempotent.
pub async fn logout(state: &AppState, refresh_token: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = refresh_token else {
        return Ok(());
    };
    let mut conn = state.pool.get().await?;
    if let Some(session) =
        store::session_of_refresh_token(&mut conn, &tokens::sha256(token)).await?
    {
        store::revoke_session(&mut conn, session, "logout").await?;
    }
    Ok(())
}

pub async fn get_me(state: &AppState, principal: &Principal) -> Result<Me, ApiError> {
    let mut conn = state.pool.get().await?;
    let user = store::find_user(&mut conn, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(me(&user))
}

pub async fn update_me(
    state: &AppState,
    principal: &Principal,
    body: UpdateMeRequest,
) -> Result<Me, ApiError> {
    let mut errors = Vec::new();
    let username = match body.username.as_deref() {
        Some(raw) => collect(&mut errors, Username::parse(raw)).map(|u| u.as_str().to_owned()),
        None => None,
    };
    let display_name = body
        .display_name
        .map(|v| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
    if display_name
        .as_ref()
        .is_some_and(|v| v.as_ref().is_some_and(|s| s.chars().count() > 64))
    {
        errors.push(FieldError {
            field: "display_name".to_owned(),
            message: "must be at most 64 characters".to_owned(),
        });
    }
    let bio = body
        .bio
        .map(|v| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
    if bio
        .as_ref()
        .is_some_and(|v| v.as_ref().is_some_and(|s| s.chars().count() > 500))
    {
        errors.push(FieldError {
            field: "bio".to_owned(),
            message: "must be at most 500 characters".to_owned(),
        });
    }
    let mut conn = state.pool.get().await?;
    // The avatar is shown on the public profile: it must be a public image of mine.
    if let Some(Some(image)) = body.avatar_image_id {
        let usable = crate::gallery::store::image(&mut conn, None, image)
            .await?
            .is_some_and(|row| {
                row.user_id == principal.user_id && row.visibility == "public" && !row.nsfw
            });
        if !usable {
            errors.push(FieldError {
                field: "avatar_image_id".to_owned(),
                message: "must be a public image of yours".to_owned(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let changes = UserChangeset {
        username,
        display_name,
        bio,
        avatar_image_id: body.avatar_image_id,
        ..UserChangeset::default()
    };
    let user = if changes.username.is_none()
        && changes.display_name.is_none()
        && changes.bio.is_none()
        && changes.avatar_image_id.is_none()
    {
        store::find_user(&mut conn, principal.user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("account"))?
    } else {
        store::update_user(&mut conn, principal.user_id, &changes).await?
    };
    Ok(me(&user))
}

/// Replaces my password, given the current one, and signs out every other session (a password
/// changed because it leaked must shut out whoever holds it). The session asking stays signed in;
/// API keys are credentials of their own and stay.
pub async fn change_password(
    state: &AppState,
    principal: &Principal,
    body: &ChangePasswordRequest,
) -> Result<(), ApiError> {
    principal.require_person()?;
    let new = Password::parse(&body.new_password).map_err(|mut e| {
        e.field = "new_password".to_owned();
        ApiError::validation(vec![e])
    })?;
    let mut conn = state.pool.get().await?;
    let user = confirm_password(
        state,
        &mut conn,
        principal,
        &body.current_password,
        "current_password",
    )
    .await?;
    let hash = password::hash(new.expose().to_owned()).await?;
    let kept = match principal.via {
        Via::Session(session) => Some(session),
        _ => None,
    };
    let ended = conn
        .transaction::<_, ApiError, _>(async |conn| {
            store::set_password_hash(conn, user.id, &hash).await?;
            Ok(store::revoke_sessions_but(conn, user.id, kept, "password_changed").await?)
        })
        .await?;
    tracing::info!(user.id = %user.id, sessions_ended = ended, "password changed");
    activity::record(
        &mut conn,
        user.id,
        Activity::PasswordChanged,
        Source::Principal(principal),
    )
    .await;
    super::notices::security_notice(
        state,
        &user,
        "Your Easel password was changed",
        "The password of your Easel account was changed, and every other device was signed out.",
    );
    Ok(())
}

/// The caller's account, once `given` (sent as `field`) is shown to be its password: what a
/// person signed in must give again before changing it or deleting the account, so that a session
/// left open on someone else's screen cannot. Guesses count against the login limit.
pub async fn confirm_password(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    given: &str,
    field: &str,
) -> Result<User, ApiError> {
    limit_per_account(
        state,
        &format!("password:{}", principal.user_id),
        "password attempts for this account",
    )?;
    let user = store::find_user(conn, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    if user.password_hash.is_none() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this account signs in through its identity provider and has no password here; \
             manage it with the provider",
        ));
    }
    if !password::verify(given.to_owned(), user.password_hash.clone()).await? {
        return Err(ApiError::validation(vec![FieldError {
            field: field.to_owned(),
            message: "is not this account's password".to_owned(),
        }]));
    }
    Ok(user)
}

// ---- devices ----

/// My sessions still signed in, newest first, marking the one asking.
pub async fn list_devices(
    state: &AppState,
    principal: &Principal,
    page: crate::db::cursor::PageParams,
) -> Result<crate::db::cursor::Page<Device>, ApiError> {
    principal.require_person()?;
    let page = page.parse::<SessionId>("sessions")?;
    let current = match principal.via {
        Via::Session(session) => Some(session),
        _ => None,
    };
    let mut conn = state.pool.get().await?;
    let rows = store::list_sessions(&mut conn, principal.user_id, page.after, page.limit).await?;
    let devices = rows
        .into_iter()
        .map(|row| Device {
            current: Some(row.id) == current,
            id: row.id,
            created_at: row.created_at,
            last_active_at: row.last_active_at,
            expires_at: row.expires_at,
            user_agent: row.user_agent,
            ip: row.ip,
            second_factor: row.second_factor,
        })
        .collect();
    Ok(crate::db::cursor::Page::from_rows(
        "sessions",
        devices,
        page.limit,
        |d| d.id,
    ))
}

/// Signs another of my sessions out (a lost phone, a shared computer). The one asking signs out
/// with `POST /v1/auth/logout`, which also clears the browser's cookie.
pub async fn sign_out_device(
    state: &AppState,
    principal: &Principal,
    id: SessionId,
) -> Result<(), ApiError> {
    principal.require_person()?;
    if principal.via == Via::Session(id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this is the session you are using: sign out with POST /v1/auth/logout",
        ));
    }
    let mut conn = state.pool.get().await?;
    if !store::revoke_own_session(&mut conn, principal.user_id, id, "signed_out_by_owner").await? {
        return Err(ApiError::not_found("session"));
    }
    activity::record(
        &mut conn,
        principal.user_id,
        Activity::DeviceSignedOut,
        Source::Principal(principal),
    )
    .await;
    Ok(())
}

// ---- API keys ----

pub fn api_key(row: store::ApiKeyRow) -> ApiKey {
    ApiKey {
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        last_four: row.last_four,
        scopes: row
            .scopes
            .iter()
            .flatten()
            .filter_map(|s| Scope::from_db(s))
            .collect(),
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        created_at: row.created_at,
    }
}

pub async fn create_api_key(
    state: &AppState,
    principal: &Principal,
    body: CreateApiKeyRequest,
) -> Result<CreatedApiKey, ApiError> {
    let mut errors = Vec::new();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 {
        errors.push(FieldError {
            field: "name".to_owned(),
            message: "must be 1 to 64 characters".to_owned(),
        });
    }
    if body.scopes.is_empty() {
        errors.push(FieldError {
            field: "scopes".to_owned(),
            message: "must list at least one of generate, read, billing".to_owned(),
        });
    }
    if body.expires_at.is_some_and(|at| at <= Utc::now()) {
        errors.push(FieldError {
            field: "expires_at".to_owned(),
            message: "must be in the future".to_owned(),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut scopes: Vec<Scope> = Scope::ALL
        .into_iter()
        .filter(|s| body.scopes.contains(s))
        .collect();
    scopes.dedup();
    let secret = api_keys::generate();
    let new = NewApiKey {
        id: ApiKeyId::new(),
        user_id: principal.user_id,
        name: &name,
        prefix: &secret.prefix,
        last_four: &secret.last_four,
        key_hash: &secret.hash,
        scopes: scopes.iter().map(|s| Some(s.as_str().to_owned())).collect(),
        expires_at: body.expires_at,
    };
    let mut conn = state.pool.get().await?;
    let row = store::insert_api_key(&mut conn, &new).await?;
    tracing::info!(user.id = %principal.user_id, api_key.id = %row.id, "API key created");
    activity::record(
        &mut conn,
        principal.user_id,
        Activity::ApiKeyCreated,
        Source::Principal(principal),
    )
    .await;
    Ok(CreatedApiKey {
        api_key: api_key(row),
        key: secret.key,
    })
}

pub async fn revoke_api_key(
    state: &AppState,
    principal: &Principal,
    id: ApiKeyId,
) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    // Someone else's key and a missing key answer alike: 404, and nothing changes.
    match store::revoke_api_key(&mut conn, principal.user_id, id).await? {
        0 => Err(ApiError::not_found("API key")),
        _ => {
            tracing::info!(user.id = %principal.user_id, api_key.id = %id, "API key revoked");
            activity::record(
                &mut conn,
                principal.user_id,
                Activity::ApiKeyRevoked,
                Source::Principal(principal),
            )
            .await;
            Ok(())
        }
    }
}

// ---- authentication ----

/// Resolves a bearer token to the principal it stands for, or the 401 that explains why not.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if api_keys::looks_like_key(token) {
        return authenticate_api_key(state, token).await;
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| ApiError::new(ErrorCode::InvalidToken, "the token is malformed"))?;
    if header.alg == jsonwebtoken::Algorithm::HS256 {
        let claims = state.identity.tokens.verify(token)?;
        let (session, user) = state
            .sessions
            .call(claims.sid)
            .await
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("the session lookup's batch was lost"))
            })??
            .ok_or_else(session_ended)?;
        if user.id != claims.sub || session.revoked_at.is_some() {
            return Err(session_ended());
        }
        if user.disabled_at.is_some() {
            return Err(disabled());
        }
        return Ok(session_principal(&user, &session));
    }
    let Some(jwks) = &state.identity.external else {
        return Err(ApiError::new(
            ErrorCode::InvalidToken,
            "the token's signing algorithm is not accepted",
        ));
    };
    let claims = jwks.verify(token, &header).await?;
    let mut conn = state.pool.get().await?;
    let user = match store::find_user_by(&mut conn, store::UserKey::Subject(&claims.sub)).await? {
        Some(user) => user,
        None => {
            create_external_user(
                &mut conn,
                &claims.sub,
                &ProviderProfile::from_claims(&claims),
            )
            .await?
        }
    };
    if user.disabled_at.is_some() {
        return Err(disabled());
    }
    Ok(principal(&user, Via::ExternalProvider))
}

/// Who a link made by a signed-in person acts for, asked again when it is used: the account, while
/// the session that made it lasts (`None` for an identity provider's sign-in, which has no session
/// of ours) and the account is open. Anything else is "no such link", saying nothing of why.
pub async fn principal_of_link(
    state: &AppState,
    user: UserId,
    session: Option<SessionId>,
) -> Result<Principal, ApiError> {
    let gone = || ApiError::not_found("link");
    let found = match session {
        Some(session) => {
            let found = state.sessions.call(session).await.ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("the session lookup's batch was lost"))
            })??;
            match found {
                Some((row, owner))
                    if owner.id == user
                        && row.revoked_at.is_none()
                        && owner.disabled_at.is_none() =>
                {
                    session_principal(&owner, &row)
                }
                _ => return Err(gone()),
            }
        }
        None => {
            let mut conn = state.pool.get().await?;
            match store::find_user(&mut conn, user).await? {
                Some(owner) if owner.external_subject.is_some() && owner.disabled_at.is_none() => {
                    principal(&owner, Via::ExternalProvider)
                }
                _ => return Err(gone()),
            }
        }
    };
    Ok(found)
}

/// Looks sessions up in batches: every request signed in with a session checks its session, so
/// under load one query answers all the requests that arrived while the last one ran.
pub type SessionLookups = crate::db::batch::Batcher<SessionId, SessionLookup>;

/// A session with its user, or `None` when there is no such session.
pub type SessionLookup = Result<Option<(store::Session, User)>, ApiError>;

pub fn session_lookups(pool: crate::db::Pool) -> SessionLookups {
    crate::db::batch::Batcher::new(pool, 2, lookup_sessions)
}

fn lookup_sessions(
    pool: crate::db::Pool,
    ids: Vec<SessionId>,
) -> futures_util::future::BoxFuture<'static, Vec<SessionLookup>> {
    Box::pin(async move {
        let found = match pool.get().await {
            Ok(mut conn) => store::find_sessions_with_users(&mut conn, &ids)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match found {
            Ok(found) => {
                let found: std::collections::HashMap<_, _> =
                    found.into_iter().map(|(s, u)| (s.id, (s, u))).collect();
                ids.iter().map(|id| Ok(found.get(id).cloned())).collect()
            }
            Err(e) => {
                tracing::error!(error = %e, sessions = ids.len(), "session lookup failed");
                ids.iter().map(|_| Err(ApiError::from_pool(&e))).collect()
            }
        }
    })
}

fn principal(user: &User, via: Via) -> Principal {
    Principal {
        user_id: user.id,
        username: user.username.clone(),
        role: Role::from_db(&user.role),
        // An identity provider's sign-in has whatever steps the provider asks for.
        second_factor: via == Via::ExternalProvider,
        via,
    }
}

/// The principal of one of our sessions.
fn session_principal(user: &User, session: &store::Session) -> Principal {
    Principal {
        second_factor: session.second_factor,
        ..principal(user, Via::Session(session.id))
    }
}

async fn authenticate_api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let mut conn = state.pool.get().await?;
    let (row, user) = store::find_api_key_by_hash(&mut conn, &tokens::sha256(key))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "this API key does not exist"))?;
    if row.revoked_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::ApiKeyRevoked,
            "this API key has been revoked",
        ));
    }
    if row.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::new(
            ErrorCode::TokenExpired,
            "this API key has expired",
        ));
    }
    if user.disabled_at.is_some() {
        return Err(disabled());
    }
    store::touch_api_key(&mut conn, row.id).await?;
    let scopes = api_key(row.clone()).scopes;
    Ok(principal(&user, Via::ApiKey { id: row.id, scopes }))
}

// ---- the external provider's users ----

/// What the provider tells us about a person, from a token's claims or a webhook.
#[derive(Debug, Default)]
pub struct ProviderProfile {
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
}

impl ProviderProfile {
    pub fn from_claims(claims: &ExternalClaims) -> Self {
        Self {
            email: claims.email.clone(),
            username: claims
                .username
                .clone()
                .or_else(|| claims.preferred_username.clone()),
            display_name: claims.name.clone(),
        }
    }
}

/// Creates the account of a provider user seen for the first time. The email is kept only if no
/// other account has it: accounts are never merged on an email claim alone.
pub async fn create_external_user(
    conn: &mut AsyncPgConnection,
    subject: &str,
    profile: &ProviderProfile,
) -> Result<User, ApiError> {
    let email = match profile.email.as_deref().map(Email::parse) {
        Some(Ok(email))
            if store::find_user_by(conn, store::UserKey::Email(email.as_str()))
                .await?
                .is_none() =>
        {
            Some(email)
        }
        _ => None,
    };
    let username = free_username(conn, profile.username.as_deref(), subject).await?;
    let new = NewUser {
        id: UserId::new(),
        email: email.as_ref().map(Email::as_str),
        username: &username,
        display_name: profile.display_name.as_deref(),
        password_hash: None,
        role: Role::User.as_str(),
        external_subject: Some(subject),
    };
    let user = store::upsert_external_user(conn, &new).await?;
    tracing::info!(user.id = %user.id, "account created for an identity provider user");
    Ok(user)
}

/// A valid, unused username derived from what the provider suggests (or the subject).
async fn free_username(
    conn: &mut AsyncPgConnection,
    suggested: Option<&str>,
    subject: &str,
) -> Result<String, ApiError> {
    let cleaned: String = suggested
        .unwrap_or(subject)
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(24)
        .collect();
    let base = if cleaned.len() >= 3 {
        cleaned
    } else {
        format!("user{cleaned}")
    };
    if let Ok(name) = Username::parse(&base)
        && !store::username_taken(conn, name.as_str()).await?
    {
        return Ok(name.as_str().to_owned());
    }
    for _ in 0..5 {
        let candidate = format!(
            "{base}-{:06}",
            rand::Rng::random_range(&mut rand::rng(), 0..1_000_000)
        );
        if !store::username_taken(conn, &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(ApiError::internal(anyhow::anyhow!(
        "no free username found"
    )))
}

// ---- operators ----

pub async fn set_role(
    conn: &mut AsyncPgConnection,
    username: &str,
    role: Role,
) -> Result<User, ApiError> {
    let user = store::find_user_by(conn, store::UserKey::Username(username))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let changes = UserChangeset {
        role: Some(role.as_str().to_owned()),
        ..UserChangeset::default()
    };
    Ok(store::update_user(conn, user.id, &changes).await?)
}

/// Sets an account's password for an operator (a person who lost theirs) and signs out all its
/// sessions. Returns the account and how many sessions ended.
pub async fn reset_password(
    conn: &mut AsyncPgConnection,
    username: &str,
    new_password: &str,
) -> Result<(User, usize), ApiError> {
    let new = Password::parse(new_password).map_err(|e| ApiError::validation(vec![e]))?;
    let user = store::find_user_by(conn, store::UserKey::Username(username))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let hash = password::hash(new.expose().to_owned()).await?;
    let ended = conn
        .transaction::<_, ApiError, _>(async |conn| {
            store::set_password_hash(conn, user.id, &hash).await?;
            Ok(store::revoke_user_sessions(conn, user.id, "password_reset").await?)
        })
        .await?;
    Ok((user, ended))
}

/// Turns off `username`'s two-step sign-in, for an operator helping a person who lost their
/// authenticator and recovery codes.
pub async fn reset_two_factor(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> Result<User, ApiError> {
    let user = store::find_user_by(conn, store::UserKey::Username(username))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        store::forget_two_factor(conn, user.id).await?;
        Ok(())
    })
    .await?;
    Ok(user)
}

pub fn parse_new_user(
    email: &str,
    username: &str,
    password: &str,
    role: Role,
) -> Result<NewAccount, ApiError> {
    let mut account = parse_signup(&SignupRequest {
        email: email.to_owned(),
        password: password.to_owned(),
        username: username.to_owned(),
    })?;
    account.role = role;
    Ok(account)
}
