//! The OpenAPI document, generated from the router (`app::routes`) and committed as
//! `openapi/openapi.json`; `easel openapi --check` fails when the two differ.

use crate::error::{FieldError, Problem};
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
        (name = "ops", description = "Health, readiness, metrics and this document"),
    ),
    components(schemas(Problem, FieldError)),
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
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("session JWT, or an API key starting with esl_")
                .build(),
        ),
    );
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

/// Pretty JSON with a trailing newline: the exact bytes committed to the repository.
pub fn to_json(api: &utoipa::openapi::OpenApi) -> anyhow::Result<String> {
    let mut json = serde_json::to_string_pretty(api)?;
    json.push('\n');
    Ok(json)
}
