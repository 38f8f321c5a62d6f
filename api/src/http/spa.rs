//! The single-page app, on the same origin as the API. Files come from `EASEL_WEB_DIR` (the Vite
//! build); every other GET of a path the API does not own gets `index.html`, so a reload or a shared
//! link of `/images/…` opens the app at that page (history-API routing).

use actix_files::NamedFile;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use std::path::{Path, PathBuf};

/// Paths the API answers itself: a miss under them is the API's 404, never the app.
const API_PREFIXES: &[&str] = &[
    "/v1/",
    "/webhooks/",
    "/uploads/",
    "/docs",
    "/openapi.json",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// Vite puts content-hashed files under `assets/`: their bytes never change under one name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// index.html and unhashed files: always revalidate (cheap with the ETag), so a deploy shows at once.
const REVALIDATE: &str = "no-cache";

/// The app's own origin only; `blob:` for private files fetched with the token (images, and the
/// 3D viewer loading a model from a blob). The viewer compiles WebAssembly: `'wasm-unsafe-eval'`
/// allows that and nothing else (no JavaScript `eval`). Its shadow DOM carries `<style>` elements,
/// hence inline styles (styles only; scripts stay same-origin).
const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; \
                   script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' blob: data:; object-src 'none'; \
                   base-uri 'self'; frame-ancestors 'none'; form-action 'self'";

/// Shown at `/` when the app has not been built (a bare `cargo run`).
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Easel</title></head>\
<body><main><h1>Easel</h1><p>The API is running; its reference is at <a href=\"/docs/\">/docs/</a>.</p>\
<p>The web app is not built. <code>make run</code> builds it, or run <code>npm ci &amp;&amp; npm run build</code> \
in <code>frontend/</code> and reload.</p></main></body></html>";

/// The app's answer to `req`, or `None` when the path is the API's (or not a GET/HEAD).
pub async fn serve(req: &HttpRequest, web_dir: &Path) -> Option<HttpResponse> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let path = req.path();
    if API_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix) || path == prefix.trim_end_matches('/'))
    {
        return None;
    }
    let relative = relative_path(path);
    if let Some(relative) = &relative
        && let Some(response) = file(req, &web_dir.join(relative)).await
    {
        let cache = if relative.starts_with("assets") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        return Some(with_cache(response, cache));
    }
    // A missing file must not be answered with HTML: a browser would run it as a script.
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return None;
    }
    let index = match file(req, &web_dir.join("index.html")).await {
        Some(response) => response,
        None => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(NOT_BUILT),
    };
    let mut response = with_cache(index, REVALIDATE);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    Some(response)
}

/// The URL path as a path under the web directory: plain segments only. Anything that could climb
/// out (`..`), reach a hidden file, or needs decoding is not a file of ours.
fn relative_path(path: &str) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let plain = segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !plain || segment.starts_with('.') {
            return None;
        }
        relative.push(segment);
    }
    (!relative.as_os_str().is_empty()).then_some(relative)
}

/// A regular file as a response with ETag, Last-Modified, ranges and 304s.
async fn file(req: &HttpRequest, path: &Path) -> Option<HttpResponse> {
    let metadata = tokio::fs::metadata(path).await.ok()?;
    if !metadata.is_file() {
        return None;
    }
    let file = NamedFile::open_async(path).await.ok()?;
    Some(file.prefer_utf8(true).into_response(req))
}

fn with_cache(mut response: HttpResponse, cache: &'static str) -> HttpResponse {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_segments_become_file_paths() {
        assert_eq!(
            relative_path("/assets/index-D8wlb4ip.js"),
            Some(PathBuf::from("assets/index-D8wlb4ip.js"))
        );
        assert_eq!(
            relative_path("/favicon.ico"),
            Some(PathBuf::from("favicon.ico"))
        );
        assert_eq!(relative_path("/"), None);
        for hostile in [
            "/../Cargo.toml",
            "/assets/../../etc/passwd",
            "/%2e%2e/secret",
            "/.env",
            "/assets/.hidden",
            "/a\\b",
        ] {
            assert_eq!(relative_path(hostile), None, "{hostile}");
        }
    }
}
