//! Extractor configs whose errors are problem+json: actix's defaults answer in plain text.

use crate::error::{ApiError, ErrorCode, FieldError};
use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

/// A JSON request body: an object (never an array serde would also map onto a struct), with no NUL
/// character in any string (PostgreSQL text cannot hold one). Anything else is a problem response.
#[derive(Debug)]
pub struct Json<T>(pub T, pub BodyDigest);

/// SHA-256 of the raw body: what `Idempotency-Key` compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDigest(pub Vec<u8>);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }

    pub fn digest(&self) -> &[u8] {
        &self.1.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(json_error(JsonPayloadError::ContentType));
            }
            let bytes = body.await.map_err(|e| {
                if e.as_response_error().status_code()
                    == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
                {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        "the body is larger than the limit",
                    )
                } else {
                    ApiError::bad_request("the body could not be read")
                }
            })?;
            let digest = BodyDigest(<sha2::Sha256 as sha2::Digest>::digest(&bytes).to_vec());
            parse_body(&bytes).map(|value| Json(value, digest))
        })
    }
}

/// Parses a request body as `T` after checking it is a JSON object free of NUL characters.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| json_error(JsonPayloadError::Deserialize(e)))?;
    if !value.is_object() {
        return Err(ApiError::field("body", "must be a JSON object"));
    }
    if let Some(path) = nul_path(&value, "") {
        return Err(ApiError::field(path, "must not contain the NUL character"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = strip_position(&e.into_inner().to_string());
        ApiError::validation(vec![located(&path, message, "body")])
    })
}

/// A query string (`?limit=10&status=failed`) as `T`. Unlike `web::Query`, a value that does not
/// fit names its parameter: serde_urlencoded's own errors say what was wrong but not where.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(Query))
    }
}

/// Parses a query string as `T`; a value that does not fit is a 422 naming its parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let parameters = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(parameters).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        ApiError::validation(vec![located(&path, message, "query")])
    })
}

/// The field an error is about: the path serde was at, or for a missing or unknown key (which
/// serde reports at the level holding it) that path and the key its message names.
fn located(path: &str, message: String, whole: &str) -> FieldError {
    // chrono's messages ("premature end of input") do not say what was expected. Every timestamp
    // the API takes is a `DateTime<Utc>`, so say so.
    const TIMESTAMP_ERRORS: [&str; 7] = [
        "input is out of range",
        "no possible date and time matching input",
        "input is not enough for unique date and time",
        "input contains invalid characters",
        "premature end of input",
        "trailing input",
        "bad or unsupported format string",
    ];
    let message = if TIMESTAMP_ERRORS.contains(&message.as_str()) {
        format!("{message}: expected an RFC 3339 date and time, such as 2026-01-31T00:00:00Z")
    } else {
        message
    };
    let key = if message.starts_with("missing field") || message.starts_with("unknown field") {
        field_from_serde(&message)
    } else {
        None
    };
    let field = match (path, key) {
        ("." | "", Some(key)) => key,
        ("." | "", None) => whole.to_owned(),
        (path, Some(key)) if !path.ends_with(&format!(".{key}")) && path != key => {
            format!("{path}.{key}")
        }
        (path, _) => path.to_owned(),
    };
    FieldError { field, message }
}

/// The dotted path of the first string holding a NUL, if any.
fn nul_path(value: &serde_json::Value, at: &str) -> Option<String> {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if at.is_empty() {
            "body".to_owned()
        } else {
            at.to_owned()
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, &join(&i.to_string()))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join("key"))
            } else {
                nul_path(v, &join(k))
            }
        }),
        _ => None,
    }
}

/// For a `web::Json` should one be used: routes take [`Json`], which also names the field.
pub fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(|err, _req| json_error(err).into())
}

/// For a `web::Query` should one be used: routes take [`Query`], which also names the parameter.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| query_error(err).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, req| path_error(err, req).into())
}

pub fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is {length} bytes; the limit is {limit}"),
        ),
        JsonPayloadError::Overflow { limit } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than the limit of {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            // A well-formed document of the wrong shape: name the field serde stopped at.
            ApiError::validation(vec![FieldError {
                field: field_from_serde(&e.to_string()).unwrap_or_else(|| "body".to_owned()),
                message: strip_position(&e.to_string()),
            }])
        }
        JsonPayloadError::Deserialize(e) => ApiError::new(
            ErrorCode::MalformedJson,
            format!("the body is not valid JSON: {}", e),
        ),
        other => ApiError::new(
            ErrorCode::BadRequest,
            format!("cannot read the body: {other}"),
        ),
    }
}

pub fn query_error(err: QueryPayloadError) -> ApiError {
    match err {
        QueryPayloadError::Deserialize(e) => {
            let message = e.to_string();
            ApiError::validation(vec![FieldError {
                field: field_from_serde(&message).unwrap_or_else(|| "query".to_owned()),
                message,
            }])
        }
        other => ApiError::new(
            ErrorCode::BadRequest,
            format!("invalid query string: {other}"),
        ),
    }
}

/// A path segment that does not parse (say, an id that is not a UUID) names nothing that exists.
pub fn path_error(err: PathError, req: &HttpRequest) -> ApiError {
    tracing::debug!(error = %err, "path did not parse");
    ApiError::new(ErrorCode::NotFound, format!("nothing at {}", req.path()))
}

/// serde's messages read "missing field `name`" or "unknown field `x`, expected …".
fn field_from_serde(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deserialize_error(body: &str) -> JsonPayloadError {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only the deserialisation error matters")]
        struct Body {
            name: String,
        }
        match serde_json::from_str::<Body>(body) {
            Err(e) => JsonPayloadError::Deserialize(e),
            Ok(_) => JsonPayloadError::ContentType,
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Named {
        name: String,
    }

    #[test]
    fn bodies_must_be_objects_without_nul() {
        let parsed: Result<Named, ApiError> = parse_body(br#"{"name": "ada"}"#);
        assert_eq!(parsed.map(|n| n.name).ok().as_deref(), Some("ada"));
        let array: Result<Named, ApiError> = parse_body(br#"["ada"]"#);
        assert_eq!(
            array.err().map(|e| e.errors[0].field.clone()).as_deref(),
            Some("body")
        );
        let nul: Result<Named, ApiError> = parse_body(br#"{"name": "a\u0000b"}"#);
        assert_eq!(
            nul.err().map(|e| e.errors[0].field.clone()).as_deref(),
            Some("name")
        );
        let malformed: Result<Named, ApiError> = parse_body(b"{");
        assert_eq!(
            malformed.err().map(|e| e.code),
            Some(ErrorCode::MalformedJson)
        );
        let extra: Result<Named, ApiError> = parse_body(br#"{"name": "a", "admin": true}"#);
        assert_eq!(
            extra.err().map(|e| e.errors[0].field.clone()).as_deref(),
            Some("admin")
        );
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        assert_eq!(
            json_error(deserialize_error("{")).code,
            ErrorCode::MalformedJson
        );
    }

    #[test]
    fn shape_errors_name_the_field() {
        let err = json_error(deserialize_error(r#"{"name": "a", "credits": 5}"#));
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        assert_eq!(err.errors[0].field, "credits");
        let err = json_error(deserialize_error("{}"));
        assert_eq!(err.errors[0].field, "name");
        assert!(!err.errors[0].message.contains("line"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "lowercase")]
    enum Colour {
        Red,
        Blue,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the deserialisation errors matter")]
    struct Order {
        colour: Option<Colour>,
        count: Option<u32>,
        size: Option<Size>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the deserialisation errors matter")]
    struct Size {
        width: u32,
        height: u32,
    }

    /// The field and message of a refusal, or ("accepted", "") when the input was taken.
    fn refusal(parsed: Result<Order, ApiError>) -> (String, String) {
        match parsed {
            Err(e) => {
                assert_eq!(e.code, ErrorCode::ValidationFailed);
                (e.errors[0].field.clone(), e.errors[0].message.clone())
            }
            Ok(_) => ("accepted".to_owned(), String::new()),
        }
    }

    fn body_error(body: &str) -> (String, String) {
        refusal(parse_body(body.as_bytes()))
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_field_not_itself() {
        let (field, message) = body_error(r#"{"colour": "green"}"#);
        assert_eq!(field, "colour");
        assert!(message.contains("`red` or `blue`"), "{message}");
        assert_eq!(body_error(r#"{"count": -1}"#).0, "count");
        assert_eq!(body_error(r#"{"count": "three"}"#).0, "count");
        assert_eq!(
            body_error(r#"{"size": {"width": "wide", "height": 2}}"#).0,
            "size.width"
        );
        assert_eq!(body_error(r#"{"size": {"width": 1}}"#).0, "size.height");
        assert_eq!(
            body_error(r#"{"size": {"width": 1, "height": 2, "depth": 3}}"#).0,
            "size.depth"
        );
        assert_eq!(body_error(r#"{"shape": 1}"#).0, "shape");
    }

    fn query_error_of(query: &str) -> (String, String) {
        refusal(parse_query(query))
    }

    #[test]
    fn a_query_parameter_that_does_not_fit_is_named() {
        assert_eq!(query_error_of("colour=red&count=2").0, "accepted");
        let (field, message) = query_error_of("count=2&colour=green");
        assert_eq!(field, "colour");
        assert!(message.contains("`red` or `blue`"), "{message}");
        assert_eq!(query_error_of("colour=red&count=abc").0, "count");
        assert_eq!(query_error_of("count=1&extra=1").0, "extra");
    }

    #[test]
    fn a_timestamp_that_does_not_parse_says_what_is_expected() {
        #[derive(Debug, serde::Deserialize)]
        #[expect(dead_code, reason = "only the deserialisation errors matter")]
        struct Period {
            start: chrono::DateTime<chrono::Utc>,
        }
        for query in [
            "start=2026-01-01",
            "start=yesterday",
            "start=2026-01-01T00:00:00Zjunk",
        ] {
            let err = parse_query::<Period>(query).err();
            let error = err.as_ref().map(|e| &e.errors[0]);
            assert_eq!(error.map(|e| e.field.as_str()), Some("start"), "{query}");
            assert!(
                error.is_some_and(|e| e.message.contains("expected an RFC 3339 date and time")),
                "{query}: {error:?}"
            );
        }
        assert!(parse_query::<Period>("start=2026-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn oversized_and_wrong_type_bodies() {
        let err = json_error(JsonPayloadError::OverflowKnownLength {
            length: 10,
            limit: 5,
        });
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
        assert_eq!(
            json_error(JsonPayloadError::ContentType).code,
            ErrorCode::UnsupportedMediaType
        );
    }
}

/// Distinguishes an absent field (leave as is) from `null` (clear it).
pub mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}
