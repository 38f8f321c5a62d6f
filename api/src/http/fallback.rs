//! What answers when no route matched: the single-page app (see `spa`), else 405 with `Allow` when the path exists under other methods,
//! else 404. actix's route macros put the method in a guard, so a wrong method would otherwise fall
//! through to a 404; the table of paths and methods comes from the OpenAPI document, which lists
//! every route by construction.

use crate::error::{ApiError, ErrorCode};
use actix_web::dev::ResourceDef;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::OpenApi;

pub struct RouteTable {
    routes: Vec<(ResourceDef, Vec<&'static str>)>,
}

impl RouteTable {
    pub fn from_openapi(spec: &OpenApi) -> Self {
        let routes = spec
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                // HEAD goes wherever GET does (see `edge`).
                let methods = [
                    ("GET", item.get.is_some()),
                    ("HEAD", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self { routes }
    }

    /// The methods a path accepts, if any route has that path.
    pub fn allowed(&self, path: &str) -> Option<&[&'static str]> {
        self.routes
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, methods)| methods.as_slice())
    }
}

/// The app's default service: the single-page app for its paths, else the API's 405 or 404.
pub async fn no_route(
    req: HttpRequest,
    table: web::Data<RouteTable>,
    state: web::Data<crate::app::AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(response) = super::spa::serve(&req, &state.config.web_dir).await {
        return Ok(response);
    }
    Err(match table.allowed(req.path()) {
        Some(methods) if !methods.is_empty() => {
            let allow = methods.join(", ");
            let detail = format!("{} is not allowed here; use {allow}", req.method());
            let error = ApiError::new(ErrorCode::MethodNotAllowed, detail);
            match HeaderValue::from_str(&allow) {
                Ok(value) => error.with_header(header::ALLOW, value),
                Err(_) => error,
            }
        }
        _ => ApiError::new(
            ErrorCode::NotFound,
            format!("no route matches {} {}", req.method(), req.path()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::{InfoBuilder, OpenApiBuilder};

    #[test]
    fn finds_methods_by_path_template() {
        let paths = PathsBuilder::new()
            .path(
                "/v1/things/{id}",
                PathItem::new(HttpMethod::Get, OperationBuilder::new()),
            )
            .path(
                "/healthz",
                PathItem::new(HttpMethod::Get, OperationBuilder::new()),
            )
            .build();
        let spec = OpenApiBuilder::new()
            .info(InfoBuilder::new().title("t").version("1").build())
            .paths(paths)
            .build();
        let table = RouteTable::from_openapi(&spec);
        assert_eq!(table.allowed("/v1/things/abc"), Some(&["GET", "HEAD"][..]));
        assert_eq!(table.allowed("/healthz"), Some(&["GET", "HEAD"][..]));
        assert_eq!(table.allowed("/v1/things"), None);
        assert_eq!(table.allowed("/v1/nothing"), None);
    }
}
