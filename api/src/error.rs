//! `ApiError` → RFC 9457 problem+json. The only place where an error's HTTP status is chosen.
//!
//! Handlers return `Result<_, ApiError>`; everything else that can fail on the way to a response
//! (extractors, unknown routes, panics, oversized bodies) is turned into the same shape by the
//! configs and middleware in `http/`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Stable machine codes. Clients match on these, so a variant's string never changes once shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    MalformedJson,
    ValidationFailed,
    InvalidCursor,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    DatabaseUnavailable,
    NotReady,
    Internal,
    InvalidCredentials,
    InvalidToken,
    TokenExpired,
    TokenNotYetValid,
    UnknownSigningKey,
    AccountDisabled,
    ApiKeyRevoked,
    RefreshTokenReused,
    InsufficientScope,
    InvalidSignature,
    WebhookNotConfigured,
    InsufficientCredits,
    CreditsOwed,
    IdempotencyConflict,
    IdempotencyInProgress,
    ProModelRequiresPurchase,
    TooManyInFlight,
    PromptRejected,
    PaymentsNotConfigured,
    /// Something needs to send email and no mail server is configured.
    EmailNotConfigured,
    PaymentProviderFailed,
    InvalidStripeSignature,
    /// A stored file the database points to is gone from storage: asking again will not help.
    FileMissing,
}

impl ErrorCode {
    /// Every code, for the spec's enum of `Problem.code`.
    pub const ALL: &'static [ErrorCode] = &[
        Self::BadRequest,
        Self::MalformedJson,
        Self::ValidationFailed,
        Self::InvalidCursor,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::DatabaseUnavailable,
        Self::NotReady,
        Self::Internal,
        Self::InvalidCredentials,
        Self::InvalidToken,
        Self::TokenExpired,
        Self::TokenNotYetValid,
        Self::UnknownSigningKey,
        Self::AccountDisabled,
        Self::ApiKeyRevoked,
        Self::RefreshTokenReused,
        Self::InsufficientScope,
        Self::InvalidSignature,
        Self::WebhookNotConfigured,
        Self::InsufficientCredits,
        Self::CreditsOwed,
        Self::IdempotencyConflict,
        Self::IdempotencyInProgress,
        Self::ProModelRequiresPurchase,
        Self::TooManyInFlight,
        Self::PromptRejected,
        Self::PaymentsNotConfigured,
        Self::EmailNotConfigured,
        Self::PaymentProviderFailed,
        Self::InvalidStripeSignature,
        Self::FileMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::MalformedJson => "malformed_json",
            Self::ValidationFailed => "validation_failed",
            Self::InvalidCursor => "invalid_cursor",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::NotReady => "not_ready",
            Self::Internal => "internal_error",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::UnknownSigningKey => "unknown_signing_key",
            Self::AccountDisabled => "account_disabled",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidSignature => "invalid_signature",
            Self::WebhookNotConfigured => "webhook_not_configured",
            Self::InsufficientCredits => "insufficient_credits",
            Self::CreditsOwed => "credits_owed",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::IdempotencyInProgress => "idempotency_in_progress",
            Self::ProModelRequiresPurchase => "pro_model_requires_purchase",
            Self::TooManyInFlight => "too_many_in_flight",
            Self::PromptRejected => "prompt_rejected",
            Self::PaymentsNotConfigured => "payments_not_configured",
            Self::EmailNotConfigured => "email_not_configured",
            Self::PaymentProviderFailed => "payment_provider_failed",
            Self::InvalidStripeSignature => "invalid_stripe_signature",
            Self::FileMissing => "file_missing",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::MalformedJson | Self::InvalidCursor => StatusCode::BAD_REQUEST,
            Self::ValidationFailed | Self::PromptRejected => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized
            | Self::InvalidCredentials
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::TokenNotYetValid
            | Self::UnknownSigningKey
            | Self::AccountDisabled
            | Self::ApiKeyRevoked
            | Self::RefreshTokenReused => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::InsufficientScope => StatusCode::FORBIDDEN,
            // 401: the delivery did not prove who sent it. Senders retry on any non-2xx.
            Self::InvalidSignature => StatusCode::UNAUTHORIZED,
            Self::WebhookNotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientCredits | Self::CreditsOwed => StatusCode::PAYMENT_REQUIRED,
            Self::IdempotencyConflict => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyInProgress => StatusCode::CONFLICT,
            Self::ProModelRequiresPurchase => StatusCode::FORBIDDEN,
            Self::TooManyInFlight => StatusCode::TOO_MANY_REQUESTS,
            Self::PaymentsNotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            Self::EmailNotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            Self::PaymentProviderFailed => StatusCode::BAD_GATEWAY,
            // Stripe's own guidance: a delivery that fails verification gets a 400.
            Self::InvalidStripeSignature => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::DatabaseUnavailable | Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal | Self::FileMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code used for a response whose status was chosen outside our handlers (actix defaults).
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::ValidationFailed,
            429 => Self::RateLimited,
            503 => Self::DatabaseUnavailable,
            400..=499 => Self::BadRequest,
            _ => Self::Internal,
        }
    }
}

/// One invalid input: which field (dotted path, or a query parameter's name) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// RFC 9457 problem details, the body of every 4xx and 5xx response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "https://easel.dev/problems/not_found",
    "title": "Not Found",
    "status": 404,
    "detail": "no route matches GET /v1/nothing",
    "code": "not_found",
    "request_id": "0193a6f4-7d7e-7c3a-9f0e-5b1e2c3d4e5f"
}))]
pub struct Problem {
    /// A URI naming the kind of problem; ends with the `code`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the kind of problem (the HTTP reason phrase).
    pub title: String,
    /// The HTTP status code, repeated for convenience.
    pub status: u16,
    /// What went wrong with this request, for a person to read.
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`.
    pub code: String,
    /// Field-level problems when `code` is `validation_failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id also sent as the `X-Request-Id` header; quote it when reporting a problem.
    pub request_id: String,
    /// With `insufficient_credits`: the credits the request needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed: Option<i64>,
    /// With `insufficient_credits`: the credits the account can spend now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
}

impl Problem {
    /// `request_id` defaults to the id of the request being handled on this task.
    pub fn new(
        code: ErrorCode,
        detail: impl Into<String>,
        errors: Vec<FieldError>,
        request_id: Option<String>,
    ) -> Self {
        let status = code.status();
        Self {
            problem_type: format!("https://easel.dev/problems/{}", code.as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.as_str().to_owned(),
            errors,
            request_id: request_id
                .or_else(crate::http::request_id::current)
                .unwrap_or_default(),
            needed: None,
            available: None,
        }
    }

    pub fn into_response(self, status: StatusCode) -> HttpResponse {
        HttpResponse::build(status)
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
            ))
            .json(self)
    }
}

/// The error every handler returns.
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Extra headers, such as `Retry-After` on 429 or `Allow` on 405.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// What really happened, for the log only; never sent to the client.
    pub source: Option<anyhow::Error>,
    /// Set only where the response is built outside the request's task (see `http::edge`).
    pub request_id: Option<String>,
    /// `needed` and `available` of an `insufficient_credits` problem.
    pub credits: Option<Box<(i64, i64)>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            source: None,
            request_id: None,
            credits: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        Self {
            errors,
            ..Self::new(ErrorCode::ValidationFailed, detail)
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// An unexpected failure: logged in full with the request id, answered as a bare 500.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(
                ErrorCode::Internal,
                "an unexpected error occurred; quote the request_id when reporting it",
            )
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code.as_str())
            .field("detail", &self.detail)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(
                code = self.code.as_str(),
                error = ?self.source,
                "request failed"
            );
        }
        let mut problem = Problem::new(
            self.code,
            self.detail.clone(),
            self.errors.clone(),
            self.request_id.clone(),
        );
        if let Some((needed, available)) = self.credits.as_deref().copied() {
            problem.needed = Some(needed);
            problem.available = Some(available);
        }
        let mut response = problem.into_response(status);
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    }
}

/// Human messages for unique constraints, by constraint name: a violation of one of these is the
/// client's conflict (409), not our failure. Features add their constraints here as they land.
const UNIQUE_CONSTRAINTS: &[(&str, &str, &str)] = &[
    (
        "users_email_key",
        "email",
        "an account with this email already exists",
    ),
    ("users_username_key", "username", "this username is taken"),
];

impl ApiError {
    /// Maps a unique-constraint violation to 409 by constraint name; anything else is internal.
    pub fn from_db(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &error {
            Error::NotFound => Self::new(ErrorCode::NotFound, "not found"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                let constraint = info.constraint_name().unwrap_or_default();
                match UNIQUE_CONSTRAINTS
                    .iter()
                    .find(|(name, _, _)| *name == constraint)
                {
                    Some((_, field, message)) => Self {
                        errors: vec![FieldError {
                            field: (*field).to_owned(),
                            message: (*message).to_owned(),
                        }],
                        ..Self::new(ErrorCode::Conflict, *message)
                    },
                    None => Self {
                        source: Some(error.into()),
                        ..Self::new(
                            ErrorCode::Conflict,
                            "this conflicts with an existing record",
                        )
                    },
                }
            }
            _ => Self::internal(error),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        Self::from_db(error)
    }
}

impl From<crate::db::PoolError> for ApiError {
    fn from(error: crate::db::PoolError) -> Self {
        Self::from_pool(error)
    }
}

impl ApiError {
    /// No connection could be had: 503, to be tried again shortly.
    pub fn from_pool(error: impl fmt::Display) -> Self {
        Self {
            source: Some(anyhow::anyhow!("{error}")),
            ..Self::new(
                ErrorCode::DatabaseUnavailable,
                "the database is unavailable; try again shortly",
            )
        }
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_json(response: HttpResponse) -> serde_json::Value {
        let bytes = response.into_body().try_into_bytes().unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let error = ApiError::internal(anyhow::anyhow!(
            "password authentication failed for user easel"
        ));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(response);
        assert_eq!(body["code"], "internal_error");
        assert!(!body.to_string().contains("password"), "{body}");
    }

    #[test]
    fn validation_errors_list_fields() {
        let response = ApiError::field("limit", "must be between 1 and 100").error_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(PROBLEM_CONTENT_TYPE.as_bytes())
        );
        let body = body_json(response);
        assert_eq!(body["errors"][0]["field"], "limit");
        assert_eq!(body["status"], 422);
        assert_eq!(body["type"], "https://easel.dev/problems/validation_failed");
    }

    #[test]
    fn unknown_unique_violation_is_a_conflict() {
        struct Info;
        impl diesel::result::DatabaseErrorInformation for Info {
            fn message(&self) -> &str {
                "duplicate key value violates unique constraint"
            }
            fn details(&self) -> Option<&str> {
                None
            }
            fn hint(&self) -> Option<&str> {
                None
            }
            fn table_name(&self) -> Option<&str> {
                None
            }
            fn column_name(&self) -> Option<&str> {
                None
            }
            fn constraint_name(&self) -> Option<&str> {
                Some("things_name_key")
            }
            fn statement_position(&self) -> Option<i32> {
                None
            }
        }
        let error = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            Box::new(Info),
        );
        let api = ApiError::from(error);
        assert_eq!(api.code, ErrorCode::Conflict);
        assert_eq!(api.status_code(), StatusCode::CONFLICT);
        let api = ApiError::from(diesel::result::Error::RollbackTransaction);
        assert_eq!(api.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
