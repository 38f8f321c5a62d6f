//! Extractor configs whose errors are problem+json: actix's defaults answer in plain text.

use crate::error::{ApiError, ErrorCode, FieldError};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, web};

pub fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(|err, _req| json_error(err).into())
}

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
