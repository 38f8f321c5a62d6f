//! Identity endpoints: thin handlers over `service`.

use super::principal::Principal;
use super::types::{
    ApiKeyPage, ChangePasswordRequest, CreateApiKeyRequest, CreatedApiKey, DeleteAccountRequest,
    DevicePage, EmailChangeConfirmation, EmailChangeRequest, LoginRequest, Me, PasswordAgain,
    PasswordResetConfirmation, PasswordResetRequest, RecoveryCodes, RefreshRequest, SignupRequest,
    TokenResponse, TwoFactorChallenge, TwoFactorCode, TwoFactorLogin, TwoFactorSetup,
    TwoFactorStatus, UpdateMeRequest, WebhookAck,
};
use super::{ApiKeyId, Scope, SessionId, activity, service, store, two_factor};
use crate::app::AppState;
use crate::db::cursor::{Page, PageParams};
use crate::error::{ApiError, ErrorCode};
use crate::http::extract::Json;
use crate::http::idempotency::{self, IdempotencyKey};
use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use utoipa_actix_web::service_config::ServiceConfig;

pub const REFRESH_COOKIE: &str = "easel_refresh";

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_signup)
        .service(create_login)
        .service(create_two_factor_login)
        .service(create_refresh)
        .service(create_logout)
        .service(create_password_reset)
        .service(create_password_reset_confirmation)
        .service(create_email_change)
        .service(create_email_change_confirmation)
        .service(create_email_verification)
        .service(get_me)
        .service(update_me)
        .service(update_password)
        .service(create_account_deletion)
        .service(list_security_events)
        .service(get_two_factor)
        .service(create_two_factor)
        .service(create_two_factor_confirmation)
        .service(create_two_factor_removal)
        .service(create_recovery_codes)
        .service(list_sessions)
        .service(delete_session)
        .service(list_api_keys)
        .service(create_api_key)
        .service(delete_api_key)
        .service(create_identity_event);
}

/// The SPA keeps the refresh token in a cookie JavaScript cannot read, sent only to the auth routes.
fn refresh_cookie(token: &str, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(REFRESH_COOKIE, token.to_owned())
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/v1/auth")
        .max_age(time::Duration::seconds(max_age_secs))
        .finish()
}

/// The browser or program signing in, as its owner will see it among their devices. The address
/// is the peer's, as the rate limits see it.
fn device_of(req: &HttpRequest) -> store::Device {
    const MAX_AGENT: usize = 256;
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|agent| {
            agent
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(MAX_AGENT)
                .collect::<String>()
        })
        .filter(|agent| !agent.trim().is_empty());
    store::Device {
        user_agent,
        ip: req.peer_addr().map(|a| a.ip().to_string()),
    }
}

/// Tells the browser to drop its refresh cookie: its session has ended.
fn removed_cookie() -> Cookie<'static> {
    let mut gone = refresh_cookie("", 0);
    gone.make_removal();
    gone
}

fn with_tokens(
    mut builder: actix_web::HttpResponseBuilder,
    state: &AppState,
    tokens: TokenResponse,
) -> HttpResponse {
    let max_age = i64::try_from(state.identity.tokens.refresh_ttl.as_secs()).unwrap_or(0);
    builder
        .cookie(refresh_cookie(&tokens.refresh_token, max_age))
        .json(tokens)
}

/// Create an account with email, password and username, and sign in.
#[utoipa::path(
    tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created and signed in; the refresh token is also set as an HttpOnly cookie", body = TokenResponse),
        (status = 409, description = "Email or username already taken (`conflict`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/signup")]
pub async fn create_signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = service::signup(&state, &body, &device_of(&req)).await?;
    Ok(with_tokens(HttpResponse::Created(), &state, tokens))
}

/// Sign in with email and password.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 202, description = "The password is right and the account asks for a code from its authenticator app too: answer the challenge at `POST /v1/auth/login/two-factor`", body = TwoFactorChallenge),
        (status = 401, description = "`invalid_credentials` or `account_disabled`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many attempts for this account or from this address", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/login")]
pub async fn create_login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    match service::login(&state, &body.email, &body.password, &device_of(&req)).await? {
        service::Login::Tokens(tokens) => Ok(with_tokens(HttpResponse::Ok(), &state, tokens)),
        service::Login::Challenge(challenge) => Ok(HttpResponse::Accepted().json(challenge)),
    }
}

/// The second step of signing in to an account with two-step sign-in: the login's challenge and
/// the code its authenticator app shows now (each works once), or one of its recovery codes.
#[utoipa::path(
    tag = "auth",
    request_body = TwoFactorLogin,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "`invalid_token`: the challenge expired or was altered; sign in again. `account_disabled`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A wrong, used or old code (`validation_failed` on `code`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many codes for this account this hour", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/login/two-factor")]
pub async fn create_two_factor_login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<TwoFactorLogin>,
) -> Result<HttpResponse, ApiError> {
    let tokens = two_factor::finish(&state, &body.challenge, &body.code, &device_of(&req)).await?;
    Ok(with_tokens(HttpResponse::Ok(), &state, tokens))
}

/// What happened to how my account signs in, newest first: sign-ins, wrong passwords, password and
/// two-step changes, API keys, devices signed out and data downloads, each with the address and
/// browser it came from. Kept 180 days. People only: not API keys.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of events", body = activity::SecurityEventPage),
        (status = 403, description = "An API key", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/me/security-events")]
pub async fn list_security_events(
    state: web::Data<AppState>,
    principal: Principal,
    page: crate::http::extract::Query<PageParams>,
) -> Result<web::Json<Page<activity::SecurityEvent>>, ApiError> {
    Ok(web::Json(activity::list(&state, &principal, &page).await?))
}

/// Whether signing in to my account takes an authenticator code, and how many recovery codes are
/// left.
#[utoipa::path(
    tag = "account",
    security(("session" = []), ("api_key" = ["read"])),
    responses((status = 200, description = "Two-step sign-in", body = TwoFactorStatus))
)]
#[get("/v1/me/two-factor")]
pub async fn get_two_factor(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<TwoFactorStatus>, ApiError> {
    principal.require(Scope::Read)?;
    Ok(web::Json(two_factor::status(&state, &principal).await?))
}

/// Start turning on two-step sign-in (my password again): a new key for an authenticator app.
/// Nothing changes until `POST /v1/me/two-factor/confirmation` with its first code; asking again
/// replaces the key.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    request_body = PasswordAgain,
    responses(
        (status = 201, description = "The key to add to the app", body = TwoFactorSetup),
        (status = 403, description = "API keys cannot change how an account signs in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is on already, or the account signs in through its identity provider", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not this account's password", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/two-factor")]
pub async fn create_two_factor(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<PasswordAgain>,
) -> Result<HttpResponse, ApiError> {
    let setup = two_factor::begin(&state, &principal, &body.password).await?;
    Ok(HttpResponse::Created().json(setup))
}

/// Turn two-step sign-in on with the first code the app shows. Answers the recovery codes, once.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    request_body = TwoFactorCode,
    responses(
        (status = 200, description = "On; keep the recovery codes", body = RecoveryCodes),
        (status = 403, description = "An API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "No set-up started, or it is on already", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not the code the app shows now", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many codes for this account this hour", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/two-factor/confirmation")]
pub async fn create_two_factor_confirmation(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<TwoFactorCode>,
) -> Result<web::Json<RecoveryCodes>, ApiError> {
    Ok(web::Json(
        two_factor::confirm(&state, &principal, &body.code).await?,
    ))
}

/// Turn two-step sign-in off (my password again): its key and recovery codes stop working.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    request_body = PasswordAgain,
    responses(
        (status = 204, description = "Off"),
        (status = 403, description = "An API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account signs in through its identity provider", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not this account's password", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/two-factor/removal")]
pub async fn create_two_factor_removal(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<PasswordAgain>,
) -> Result<HttpResponse, ApiError> {
    two_factor::remove(&state, &principal, &body.password).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// New recovery codes in place of the old ones (my password again), shown once.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    request_body = PasswordAgain,
    responses(
        (status = 201, description = "The new codes; the old ones stopped working", body = RecoveryCodes),
        (status = 403, description = "An API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Two-step sign-in is off", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not this account's password", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/two-factor/recovery-codes")]
pub async fn create_recovery_codes(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<PasswordAgain>,
) -> Result<HttpResponse, ApiError> {
    let codes = two_factor::renew_recovery_codes(&state, &principal, &body.password).await?;
    Ok(HttpResponse::Created().json(codes))
}

fn refresh_token_from(req: &HttpRequest, body: &RefreshRequest) -> Option<String> {
    body.refresh_token
        .clone()
        .or_else(|| req.cookie(REFRESH_COOKIE).map(|c| c.value().to_owned()))
        .filter(|t| !t.is_empty())
}

/// Exchange a refresh token (body or cookie) for new tokens. Each refresh token works once; a
/// second use revokes the whole session.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "`invalid_token`, `refresh_token_reused` or `account_disabled`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/refresh")]
pub async fn create_refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = refresh_token_from(&req, &body).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "send refresh_token in the body or the easel_refresh cookie",
        )
    })?;
    let tokens = service::refresh(&state, &token).await?;
    Ok(with_tokens(HttpResponse::Ok(), &state, tokens))
}

/// End the session of the refresh token (body or cookie) and clear the cookie. Always 204.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Signed out"))
)]
#[post("/v1/auth/logout")]
pub async fn create_logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    service::logout(&state, refresh_token_from(&req, &body).as_deref()).await?;
    Ok(HttpResponse::NoContent().cookie(removed_cookie()).finish())
}

/// Forgot my password: email a link that sets a new one, to the account with this email if there
/// is one (it works once, within an hour). The answer is the same whether or not there is, so it
/// tells nobody which emails have accounts.
#[utoipa::path(
    tag = "auth",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "If an account signs in with this email and a password, a link is on its way"),
        (status = 422, description = "Not an email address (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this email or from this address (`rate_limited`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "This server sends no email (`email_not_configured`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/password-reset")]
pub async fn create_password_reset(
    state: web::Data<AppState>,
    body: Json<PasswordResetRequest>,
) -> Result<HttpResponse, ApiError> {
    super::reset::request(&state, &body.email).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Set a new password with the token from a reset link. Every session of the account is signed
/// out; sign in with the new password.
#[utoipa::path(
    tag = "auth",
    request_body = PasswordResetConfirmation,
    responses(
        (status = 204, description = "The password is set; every session signed out"),
        (status = 422, description = "The link was used, has expired or was never sent (`token`), or `new_password` is not 8–128 characters (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this address (`rate_limited`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/password-reset/confirm")]
pub async fn create_password_reset_confirmation(
    state: web::Data<AppState>,
    body: Json<PasswordResetConfirmation>,
) -> Result<HttpResponse, ApiError> {
    super::reset::confirm(&state, &body.token, &body.new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Change my email, given my password: a link mailed to the new address makes the change (within
/// a day), and the old address is told. Until then the account keeps its email.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    request_body = EmailChangeRequest,
    responses(
        (status = 202, description = "The link is on its way to the new address"),
        (status = 403, description = "An API key (`insufficient_scope`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another account has this email, or this account signs in through the identity provider (`conflict`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an email address, already this account's, or a wrong `password` (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many password attempts (`rate_limited`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "This server sends no email (`email_not_configured`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/email")]
pub async fn create_email_change(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<EmailChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    super::email_change::request(&state, &principal, &body.email, &body.password).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Mail my email a new link that confirms it (`email_verified` on `GET /v1/me`); one goes at
/// sign-up. The link opens the same page, and `POST /v1/auth/email-change/confirm` takes it.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    responses(
        (status = 202, description = "The link is on its way"),
        (status = 403, description = "An API key (`insufficient_scope`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is confirmed already, or the account has none (`conflict`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many links asked for (`rate_limited`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "This server sends no email (`email_not_configured`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/email/verification")]
pub async fn create_email_verification(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    super::email_change::request_verification(&state, &principal).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Confirm a new email with the token from the link mailed to it. Needs no sign-in: the link is
/// the proof.
#[utoipa::path(
    tag = "auth",
    request_body = EmailChangeConfirmation,
    responses(
        (status = 204, description = "The account's email is the new one"),
        (status = 409, description = "Another account took this email meanwhile (`conflict`); nothing changed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The link was used, has expired or was never sent (`token`, `validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this address (`rate_limited`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/email-change/confirm")]
pub async fn create_email_change_confirmation(
    state: web::Data<AppState>,
    body: Json<EmailChangeConfirmation>,
) -> Result<HttpResponse, ApiError> {
    super::email_change::confirm(&state, &body.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The signed-in account.
#[utoipa::path(
    tag = "account",
    security(("session" = []), ("api_key" = ["read"])),
    responses(
        (status = 200, description = "The account", body = Me),
        (status = 401, description = "Missing or invalid credentials", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/me")]
pub async fn get_me(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Me>, ApiError> {
    principal.require(Scope::Read)?;
    Ok(web::Json(service::get_me(&state, &principal).await?))
}

/// Change display name, username or bio.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated account", body = Me),
        (status = 409, description = "Username taken", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/v1/me")]
pub async fn update_me(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<UpdateMeRequest>,
) -> Result<web::Json<Me>, ApiError> {
    principal.require_person()?;
    Ok(web::Json(
        service::update_me(&state, &principal, body.into_inner()).await?,
    ))
}

/// Change my password, given the current one. Every other session of mine is signed out; this one
/// stays signed in, and API keys keep working.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; other sessions signed out"),
        (status = 403, description = "An API key (`insufficient_scope`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account signs in through the identity provider and has no password here (`conflict`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`current_password` is wrong, or `new_password` is not 8–128 characters (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this account (`rate_limited`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[put("/v1/me/password")]
pub async fn update_password(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    service::change_password(&state, &principal, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Delete my account, given its password. At once: every session and API key stops working, and
/// the email and username are free again. Then its running generations are canceled with refunds
/// and its images, collections and likes go (image files soon after). The ledger and purchases are
/// kept as the record of the money; credits left are forfeited.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Deleted; this session has ended too"),
        (status = 403, description = "An API key (`insufficient_scope`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account signs in through the identity provider: delete it there (`conflict`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`password` is wrong (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this account (`rate_limited`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/deletion")]
pub async fn create_account_deletion(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<DeleteAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    super::deletion::delete_account(&state, &principal, &body.password).await?;
    // The browser's refresh cookie names a session that has ended: clear it.
    Ok(HttpResponse::NoContent().cookie(removed_cookie()).finish())
}

/// The devices signed in to my account (its sessions), newest first; `current` marks this one.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of sessions", body = DevicePage),
        (status = 403, description = "An API key (`insufficient_scope`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/me/sessions")]
pub async fn list_sessions(
    state: web::Data<AppState>,
    principal: Principal,
    page: crate::http::extract::Query<PageParams>,
) -> Result<web::Json<Page<super::types::Device>>, ApiError> {
    Ok(web::Json(
        service::list_devices(&state, &principal, page.into_inner()).await?,
    ))
}

/// Sign another of my devices out: its access and refresh tokens stop working at once. (This one
/// signs out with `POST /v1/auth/logout`.)
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    params(("id" = SessionId, Path, description = "The session")),
    responses(
        (status = 204, description = "Signed out"),
        (status = 403, description = "An API key (`insufficient_scope`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session of mine still signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session asking (`conflict`): sign out with `POST /v1/auth/logout`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/me/sessions/{id}")]
pub async fn delete_session(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<SessionId>,
) -> Result<HttpResponse, ApiError> {
    service::sign_out_device(&state, &principal, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// My API keys, newest first (never their secrets).
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    params(PageParams),
    responses((status = 200, description = "A page of keys", body = ApiKeyPage))
)]
#[get("/v1/me/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    principal: Principal,
    page: crate::http::extract::Query<PageParams>,
) -> Result<web::Json<Page<super::types::ApiKey>>, ApiError> {
    principal.require_person()?;
    let page = page.parse::<ApiKeyId>("api_keys")?;
    let mut conn = state.pool.get().await?;
    let rows = store::list_api_keys(&mut conn, principal.user_id, page.after, page.limit).await?;
    let keys = rows.into_iter().map(service::api_key).collect();
    Ok(web::Json(Page::from_rows(
        "api_keys",
        keys,
        page.limit,
        |k| k.id,
    )))
}

/// Create an API key. The secret `key` is in this response only.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same key and body for 24 h")),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "The key, with its secret", body = CreatedApiKey,
         headers(("Location" = String, description = "Where the key is listed"))),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/api-keys")]
pub async fn create_api_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    body: Json<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require_person()?;
    let digest = body.digest().to_vec();
    idempotency::run(&state, principal.user_id, &key, &req, &digest, || async {
        let created = service::create_api_key(&state, &principal, body.into_inner()).await?;
        Ok(HttpResponse::Created()
            .insert_header((
                "Location",
                format!("/v1/me/api-keys/{}", created.api_key.id),
            ))
            .json(created))
    })
    .await
}

/// Revoke an API key at once.
#[utoipa::path(
    tag = "account",
    security(("session" = [])),
    params(("id" = ApiKeyId, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key of mine", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/me/api-keys/{id}")]
pub async fn delete_api_key(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<ApiKeyId>,
) -> Result<HttpResponse, ApiError> {
    principal.require_person()?;
    service::revoke_api_key(&state, &principal, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The identity provider's user events (Svix-signed `user.created`, `user.updated`, `user.deleted`).
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, description = "A Svix-signed event", content_type = "application/json"),
    params(
        ("svix-id" = String, Header, description = "Delivery id"),
        ("svix-timestamp" = String, Header, description = "Unix seconds"),
        ("svix-signature" = String, Header, description = "`v1,<base64 HMAC>` signatures, space separated"),
    ),
    responses(
        (status = 200, description = "Applied, or already applied before", body = WebhookAck),
        (status = 401, description = "`invalid_signature`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/identity")]
pub async fn create_identity_event(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<web::Json<WebhookAck>, ApiError> {
    let applied = super::webhook::receive(&state, req.headers(), &body).await?;
    Ok(web::Json(WebhookAck { applied }))
}
