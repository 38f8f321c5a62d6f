//! `Principal`: the caller of a protected endpoint, from `Authorization: Bearer <token>` where the
//! token is a session JWT, an API key (`esl_…`) or a JWT from the external identity provider.

use super::{ApiKeyId, Role, Scope, SessionId, UserId};
use crate::app::AppState;
use crate::config::AuthConfig;
use crate::error::{ApiError, ErrorCode};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
    pub via: Via,
    /// Signed in with a code after the password (or through the identity provider, whose own
    /// steps apply).
    pub second_factor: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Session(SessionId),
    ApiKey { id: ApiKeyId, scopes: Vec<Scope> },
    ExternalProvider,
}

impl Principal {
    /// Sessions may do all their user may; an API key only what its scopes allow.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.via {
            Via::ApiKey { scopes, .. } if !scopes.contains(&scope) => Err(ApiError::new(
                ErrorCode::InsufficientScope,
                format!("this API key lacks the {} scope", scope.as_str()),
            )),
            _ => Ok(()),
        }
    }

    /// Managing credentials takes a person signed in, not a program holding a key.
    pub fn require_person(&self) -> Result<(), ApiError> {
        match self.via {
            Via::ApiKey { .. } => Err(ApiError::new(
                ErrorCode::InsufficientScope,
                "API keys cannot manage credentials; sign in to do this",
            )),
            _ => Ok(()),
        }
    }

    /// Support tools: an admin, signed in as a person (never an API key, whatever its owner), and
    /// with two steps when the server asks it (`EASEL_SUPPORT_TWO_FACTOR`).
    pub fn require_support(&self, config: &AuthConfig) -> Result<(), ApiError> {
        self.require_person()?;
        self.require_admin()?;
        if config.support_two_factor && !self.second_factor {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "support tools need a session signed in with two steps: turn on two-step sign-in \
                 on your Account page, then sign in again",
            ));
        }
        Ok(())
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                "this needs the admin role",
            ))
        }
    }
}

/// Adds the `WWW-Authenticate` challenge RFC 6750 asks of a 401.
pub fn challenge(error: ApiError) -> ApiError {
    if error.code.status() != actix_web::http::StatusCode::UNAUTHORIZED {
        return error;
    }
    let value = if error.code == ErrorCode::Unauthorized {
        HeaderValue::from_static("Bearer")
    } else {
        HeaderValue::from_static("Bearer error=\"invalid_token\"")
    };
    error.with_header(header::WWW_AUTHENTICATE, value)
}

pub fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "sign in: send Authorization: Bearer <token>",
        )
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidToken,
            "the Authorization header is not readable",
        )
    })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidToken,
                "expected Authorization: Bearer <token>",
            )
        })?;
    Ok(token.to_owned())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState missing")))?;
            let token = token.map_err(challenge)?;
            super::service::authenticate(&state, &token)
                .await
                .map_err(challenge)
        })
    }
}

/// The caller of an endpoint anyone may call: signed in (and then checked like any `Principal`)
/// or anonymous. A credential that is sent but invalid is a 401, never silently anonymous. An API
/// key counts as signed in only with the `read` scope.
#[derive(Debug, Clone)]
pub struct Viewer(pub Option<Principal>);

impl Viewer {
    pub fn user_id(&self) -> Option<UserId> {
        self.0.as_ref().map(|p| p.user_id)
    }
}

impl FromRequest for Viewer {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !req.headers().contains_key(header::AUTHORIZATION) {
            return Box::pin(async { Ok(Self(None)) });
        }
        let principal = Principal::from_request(req, payload);
        Box::pin(async move {
            let principal = principal.await?;
            principal.require(Scope::Read)?;
            Ok(Self(Some(principal)))
        })
    }
}
