//! The OpenAPI document, generated from the router (`app::routes`) and committed as
//! `openapi/openapi.json`; `easel openapi --check` fails when the two differ.

use crate::error::{FieldError, Problem};
use crate::gallery::types::{Period, Sort};
use crate::generation::types::Variant;
use actix_web::App;
use utoipa::OpenApi;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa_actix_web::AppExt;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Easel API",
        description = "Backend for text-to-image products: accounts, credits, generations, gallery and billing. \
Errors are RFC 9457 problem+json with a stable `code`; lists use opaque keyset cursors.",
    ),
    servers((url = "/", description = "This server")),
    tags(
        (name = "auth", description = "Sign up, sign in, refresh and sign out (built-in accounts)"),
        (name = "account", description = "The signed-in account and its API keys"),
        (name = "credits", description = "Balances, the ledger and usage"),
        (name = "models", description = "The model catalog"),
        (name = "generations", description = "Generations: jobs that become images"),
        (name = "images", description = "My images, their files, visibility, titles and likes"),
        (name = "gallery", description = "The public feed, search and artists' pages"),
        (name = "collections", description = "Collections of images"),
        (name = "billing", description = "Credit packages, Stripe Checkout and purchases"),
        (name = "uploads", description = "Input images for models that take one"),
        (name = "admin", description = "Operator actions (admin role)"),
        (name = "webhooks", description = "Deliveries from the identity provider, Stripe and model providers"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
    ),
    // Enums used only as query parameters are referenced but not collected by the route macros.
    components(schemas(Problem, FieldError, Sort, Period, Variant)),
)]
struct ApiDoc;

/// The name of the shared error response every operation references.
pub const PROBLEM_RESPONSE: &str = "Problem";

pub fn document() -> utoipa::openapi::OpenApi {
    let (_app, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::app::routes)
        .split_for_parts();
    add_shared_parts(&mut api);
    api
}

/// Adds the bearer scheme and the shared problem response, and lets every operation answer it as
/// its `default`: any 4xx/5xx the edge can produce (404, 405, 413, 429, 500 …) is that shape.
fn add_shared_parts(api: &mut utoipa::openapi::OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "session",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An access token from /v1/auth/login, /signup or /refresh, or a JWT from the \
                     configured identity provider",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "api_key",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("esl_…")
                .description(Some(
                    "An API key from POST /v1/me/api-keys, sent as a bearer token; it may do what its \
                     scopes (generate, read, billing) allow",
                ))
                .build(),
        ),
    );
    forbid_nul_in_request_strings(components);
    // The stable error codes, so clients can switch on them exhaustively.
    if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(problem))) =
        components.schemas.get_mut("Problem")
        && let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(code))) =
            problem.properties.get_mut("code")
    {
        code.enum_values = Some(
            crate::error::ErrorCode::ALL
                .iter()
                .map(|c| c.as_str().into())
                .collect(),
        );
    }
    let problem = ResponseBuilder::new()
        .description("Error, as RFC 9457 problem details")
        .content(
            crate::error::PROBLEM_CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    components
        .responses
        .insert(PROBLEM_RESPONSE.to_owned(), RefOr::T(problem));
    for item in api.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation
                .responses
                .responses
                .entry("default".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(PROBLEM_RESPONSE)));
        }
    }
}

/// Request strings may not hold NUL (PostgreSQL text cannot; the JSON extractor refuses it): say so
/// in every `*Request` schema's string fields that carry no pattern of their own.
fn forbid_nul_in_request_strings(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    for (name, schema) in components.schemas.iter_mut() {
        let RefOr::T(Schema::Object(object)) = schema else {
            continue;
        };
        if !name.ends_with("Request") {
            continue;
        }
        for property in object.properties.values_mut() {
            let RefOr::T(Schema::Object(field)) = property else {
                continue;
            };
            let is_string = match &field.schema_type {
                SchemaType::Type(Type::String) => true,
                SchemaType::Array(types) => types.contains(&Type::String),
                _ => false,
            };
            if is_string && field.pattern.is_none() && field.format.is_none() {
                field.pattern = Some("^[^\\u0000]*$".to_owned());
            }
        }
    }
}

/// Pretty JSON with a trailing newline: the exact bytes committed to the repository.
pub fn to_json(api: &utoipa::openapi::OpenApi) -> anyhow::Result<String> {
    let mut json = serde_json::to_string_pretty(api)?;
    json.push('\n');
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` names a component that exists: generated clients refuse a dangling one.
    #[test]
    fn every_reference_resolves() -> anyhow::Result<()> {
        let json: serde_json::Value = serde_json::from_str(&to_json(&document())?)?;
        let mut refs = Vec::new();
        collect_strings(&json, "$ref", &mut refs);
        assert!(refs.len() > 50, "the document references its components");
        for reference in refs {
            let pointer = reference.trim_start_matches('#');
            assert!(
                json.pointer(pointer).is_some(),
                "{reference} does not resolve"
            );
        }
        Ok(())
    }

    /// No pattern in the document admits a NUL, which PostgreSQL text cannot hold: a client (or
    /// schemathesis) that trusts the spec must never build a "valid" string the server refuses.
    /// A `\S` for "not blank" once let NUL through, since NUL is not whitespace.
    #[test]
    fn no_pattern_admits_nul() -> anyhow::Result<()> {
        let json: serde_json::Value = serde_json::from_str(&to_json(&document())?)?;
        let mut patterns = Vec::new();
        collect_strings(&json, "pattern", &mut patterns);
        assert!(patterns.len() > 10, "string fields carry patterns");
        for pattern in patterns {
            let regex = regex::Regex::new(&pattern)?;
            for sample in ["\0", "a\0", "\0a", " \0 ", "abc\0def"] {
                assert!(!regex.is_match(sample), "{pattern} admits {sample:?}");
            }
        }
        Ok(())
    }

    /// Every string value held under `wanted`, anywhere in the document.
    fn collect_strings(value: &serde_json::Value, wanted: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    match inner {
                        serde_json::Value::String(text) if key == wanted => out.push(text.clone()),
                        _ => collect_strings(inner, wanted, out),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|v| collect_strings(v, wanted, out))
            }
            _ => {}
        }
    }
}
