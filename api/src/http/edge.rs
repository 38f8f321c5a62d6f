//! The middleware every request passes first: request id, body-size precheck, panic capture,
//! problem+json for every error response, HEAD for every GET route, metrics and one log line per
//! request.

use crate::error::{ApiError, ErrorCode, PROBLEM_CONTENT_TYPE, Problem};
use crate::http::request_id;
use crate::ops::metrics::Metrics;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError};
use futures_util::FutureExt;
use futures_util::future::{LocalBoxFuture, Ready, ready};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The request id of a request, for handlers that want it (it is also in every problem body).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

#[derive(Clone)]
pub struct Edge {
    metrics: Arc<Metrics>,
    max_body_bytes: usize,
    /// File uploads (under `/uploads/`) carry images and have their own, larger limit.
    max_upload_bytes: usize,
}

impl Edge {
    pub fn new(metrics: Arc<Metrics>, max_body_bytes: usize, max_upload_bytes: usize) -> Self {
        Self {
            metrics,
            max_body_bytes,
            max_upload_bytes,
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Edge
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = EdgeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(EdgeService {
            service: Rc::new(service),
            edge: self.clone(),
        }))
    }
}

pub struct EdgeService<S> {
    service: Rc<S>,
    edge: Edge,
}

impl<S, B> Service<ServiceRequest> for EdgeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let method = req.method().clone();
        // HEAD is answered as GET is, without the body (RFC 9110 9.3.2): the route runs as a GET,
        // and its body is swapped for one that has its size but sends nothing, so that neither a
        // file is read nor an event stream followed for a client that wants the headers only.
        let head_only = method == Method::HEAD;
        if head_only {
            req.head_mut().method = Method::GET;
        }
        let edge = self.edge.clone();
        let id = request_id::from_headers(req.headers()).unwrap_or_else(request_id::generate);
        req.extensions_mut().insert(RequestId(id.clone()));
        let started = Instant::now();

        Box::pin(async move {
            let span = tracing::info_span!("request", request_id = %id);
            // Uploads have their own limits, checked by their handlers as the bytes arrive.
            let limit = if req.path().starts_with("/uploads/") || req.path() == "/v1/uploads" {
                edge.max_upload_bytes
            } else {
                edge.max_body_bytes
            };
            let too_large = content_length(&req).is_some_and(|n| n > limit);

            let outcome = request_id::scope(id.clone(), async move {
                if too_large {
                    let error = ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("the body is larger than the limit of {limit} bytes"),
                    );
                    return Ok(req.into_response(error.error_response()));
                }
                // The request must not be cloned while routing runs (actix needs it unshared), so
                // a panic leaves no request to answer with: it becomes an `Err` the server turns
                // into our problem response through `ApiError::error_response`.
                match AssertUnwindSafe(async { service.call(req).await })
                    .catch_unwind()
                    .await
                {
                    Ok(Ok(res)) if head_only => Ok(into_problem(res.map_into_boxed_body())
                        .map_body(|_, body| BoxBody::new(Unsent(body.size())))),
                    Ok(Ok(res)) => Ok(into_problem(res.map_into_boxed_body())),
                    Ok(Err(error)) => Err(error),
                    Err(_panic) => {
                        // The payload may hold user data: log that it happened, not what it said.
                        tracing::error!("handler panicked");
                        Err(ApiError::internal(anyhow::anyhow!("handler panicked")).into())
                    }
                }
            })
            .instrument(span.clone())
            .await;

            let elapsed = started.elapsed();
            let (route, status, result) = match outcome {
                Ok(mut res) => {
                    if let Ok(value) = HeaderValue::from_str(&id) {
                        res.headers_mut()
                            .insert(HeaderName::from_static(request_id::HEADER), value);
                    }
                    let route = res
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".to_owned());
                    (route, res.status().as_u16(), Ok(res))
                }
                Err(error) => {
                    let status = error.as_response_error().status_code().as_u16();
                    (
                        String::from("unknown"),
                        status,
                        Err(with_request_id(error, &id)),
                    )
                }
            };
            edge.metrics
                .observe_request(method.as_str(), &route, status, elapsed);
            span.in_scope(|| {
                tracing::info!(
                    method = %method,
                    route = %route,
                    status,
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                    "request"
                );
            });
            result
        })
    }
}

/// The body of a HEAD response: the size of the GET's body (for `Content-Length`), and nothing to
/// send. The server sends no body to a HEAD request in any case; this one also never reads one.
struct Unsent(BodySize);

impl MessageBody for Unsent {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        self.0
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<bytes::Bytes, Self::Error>>> {
        std::task::Poll::Ready(None)
    }
}

/// An error answered by the server outside this request's task: carry the id in the error itself.
fn with_request_id(error: Error, id: &str) -> Error {
    let header_value = HeaderValue::from_str(id).ok();
    let mut api = match error.as_error::<ApiError>() {
        Some(api) => ApiError {
            code: api.code,
            detail: api.detail.clone(),
            errors: api.errors.clone(),
            headers: api.headers.clone(),
            source: None,
            request_id: None,
            credits: api.credits.clone(),
        },
        None => {
            let status = error.as_response_error().status_code();
            ApiError::new(
                ErrorCode::for_status(status),
                status.canonical_reason().unwrap_or("error").to_owned(),
            )
        }
    };
    api.request_id = Some(id.to_owned());
    if let Some(value) = header_value {
        api.headers
            .push((HeaderName::from_static(request_id::HEADER), value));
    }
    api.into()
}

fn content_length(req: &ServiceRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Rewrites any error response that is not already problem+json (actix's own 404/405/413 and
/// friends) into one, keeping headers such as `Allow` and `Retry-After`.
fn into_problem(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return res;
    }
    let (req, old) = res.into_parts();
    let code = ErrorCode::for_status(status);
    let detail = if status.is_server_error() {
        "an unexpected error occurred; quote the request_id when reporting it".to_owned()
    } else {
        format!(
            "{} {}: {}",
            req.method(),
            req.path(),
            status.canonical_reason().unwrap_or("error")
        )
    };
    let mut response: HttpResponse =
        Problem::new(code, detail, Vec::new(), None).into_response(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(req, response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpResponse, test, web};

    async fn panics() -> HttpResponse {
        let values: Vec<u8> = Vec::new();
        // Index out of bounds on purpose: a handler bug must become a 500 problem, not a dropped connection.
        HttpResponse::Ok().body(values[3].to_string())
    }

    async fn plain_error() -> HttpResponse {
        HttpResponse::Forbidden().body("secret internal reason")
    }

    fn metrics() -> Arc<Metrics> {
        match Metrics::new() {
            Ok(m) => Arc::new(m),
            Err(e) => panic!("metrics: {e}"),
        }
    }

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_problem_without_internals() {
        let app = test::init_service(
            App::new()
                .wrap(Edge::new(metrics(), 1024, 1024))
                .route("/boom", web::get().to(panics)),
        )
        .await;
        for _ in 0..2 {
            // the server answers an Err with its `error_response`, as done here
            let req = test::TestRequest::get()
                .uri("/boom")
                .insert_header(("x-request-id", "boom-1"))
                .to_request();
            let res = match test::try_call_service(&app, req).await {
                Ok(res) => res.into_parts().1,
                Err(error) => error.error_response(),
            };
            assert_eq!(res.status().as_u16(), 500);
            assert_eq!(
                res.headers().get(request_id::HEADER).map(|v| v.as_bytes()),
                Some(&b"boom-1"[..])
            );
            let bytes = actix_web::body::to_bytes(res.into_body())
                .await
                .unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            assert_eq!(body["code"], "internal_error");
            assert_eq!(body["request_id"], "boom-1");
            assert!(!body.to_string().contains("index out of bounds"), "{body}");
        }
    }

    #[actix_web::test]
    async fn plain_error_responses_become_problems_with_the_request_id() {
        let app = test::init_service(
            App::new()
                .wrap(Edge::new(metrics(), 1024, 1024))
                .route("/plain", web::get().to(plain_error)),
        )
        .await;
        let req = test::TestRequest::get()
            .uri("/plain")
            .insert_header(("x-request-id", "req-123"))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), 403);
        assert_eq!(
            res.headers().get("x-request-id").map(|v| v.as_bytes()),
            Some(&b"req-123"[..])
        );
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["code"], "forbidden");
        assert_eq!(body["request_id"], "req-123");
        assert!(!body.to_string().contains("secret internal reason"));
    }

    #[actix_web::test]
    async fn declared_oversized_bodies_are_refused_before_routing() {
        let app = test::init_service(
            App::new()
                .wrap(Edge::new(metrics(), 16, 16))
                .route("/x", web::post().to(HttpResponse::Ok)),
        )
        .await;
        let req = test::TestRequest::post()
            .uri("/x")
            .set_payload(vec![b'a'; 17])
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), 413);
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["code"], "payload_too_large");
    }
}
