//! The single-page app served by `easel serve`: files with their caching, history-API fallback to
//! index.html, and the API's own paths left to the API.

use easel_tests::TestApp;
use reqwest::Method;

const INDEX: &str = "<!doctype html><title>Easel test app</title><div id=root></div>";
const SCRIPT: &str = "console.log('easel');";

/// A directory removed when the test ends.
struct WebDir(std::path::PathBuf);

impl WebDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("easel-web-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&path).expect("web dir");
        Self(path)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for WebDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A built app in a temporary directory, like `frontend/dist`.
fn built_app() -> WebDir {
    let dir = WebDir::new();
    std::fs::create_dir_all(dir.path().join("assets")).expect("assets dir");
    std::fs::write(dir.path().join("index.html"), INDEX).expect("index");
    std::fs::write(dir.path().join("assets/index-Ab12Cd34.js"), SCRIPT).expect("script");
    std::fs::write(dir.path().join("robots.txt"), "User-agent: *\n").expect("robots");
    dir
}

#[tokio::test]
async fn app_paths_get_index_html_and_hashed_assets_are_cached_for_good() {
    let web = built_app();
    let app = TestApp::spawn_with(&[("EASEL_WEB_DIR", web.path().display().to_string())]).await;

    for path in [
        "/",
        "/images/0193e1c2-0000-7000-8000-000000000000",
        "/u/ada",
        "/pricing?checkout=success",
    ] {
        let reply = app.send(app.request(Method::GET, path)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.text, INDEX, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-cache"), "{path}");
        assert!(
            reply
                .header("content-security-policy")
                .unwrap_or_default()
                .contains("default-src 'self'"),
            "{path}"
        );
    }

    let script = app
        .send(app.request(Method::GET, "/assets/index-Ab12Cd34.js"))
        .await;
    assert_eq!(script.status, 200);
    assert_eq!(script.text, SCRIPT);
    assert!(
        script
            .header("content-type")
            .unwrap_or_default()
            .contains("javascript")
    );
    assert_eq!(
        script.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let etag = script.header("etag").expect("etag").to_owned();
    let again = app
        .send(
            app.request(Method::GET, "/assets/index-Ab12Cd34.js")
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(again.status, 304);

    let robots = app.send(app.request(Method::GET, "/robots.txt")).await;
    assert_eq!(robots.status, 200);
    assert_eq!(robots.header("cache-control"), Some("no-cache"));
}

#[tokio::test]
async fn the_api_keeps_its_paths_and_missing_files_are_not_html() {
    let web = built_app();
    let app = TestApp::spawn_with(&[("EASEL_WEB_DIR", web.path().display().to_string())]).await;

    // A missing asset is a 404, never index.html (a browser would try to run it).
    app.send(app.request(Method::GET, "/assets/index-gone.js"))
        .await
        .assert_problem(404, "not_found");
    // The API's unknown paths stay the API's JSON 404s and 405s.
    app.send(app.request(Method::GET, "/v1/no-such-thing"))
        .await
        .assert_problem(404, "not_found");
    app.send(app.request(Method::GET, "/webhooks/nothing"))
        .await
        .assert_problem(404, "not_found");
    app.send(app.request(Method::PUT, "/v1/models"))
        .await
        .assert_problem(405, "method_not_allowed");
    // Writes to an app path are not pages.
    app.send(app.request(Method::POST, "/images"))
        .await
        .assert_problem(404, "not_found");
    // Nothing outside the web directory, however the path is spelled.
    for hostile in [
        "/%2e%2e/%2e%2e/Cargo.toml",
        "/assets/%2e%2e%2f%2e%2e%2fCargo.toml",
        "/.env",
    ] {
        let reply = app.send(app.request(Method::GET, hostile)).await;
        assert!(
            !reply.text.contains("[package]"),
            "{hostile}: {}",
            reply.text
        );
        assert!(
            reply.status == 404 || reply.text == INDEX,
            "{hostile}: {}",
            reply.status
        );
    }
    // The docs UI and the spec are still the API's.
    let spec = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(spec.status, 200);
    assert!(spec.json["paths"].is_object());
}

#[tokio::test]
async fn an_unbuilt_app_says_how_to_build_it() {
    let empty = WebDir::new();
    let app = TestApp::spawn_with(&[("EASEL_WEB_DIR", empty.path().display().to_string())]).await;
    let reply = app.send(app.request(Method::GET, "/gallery")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.text.contains("make run"), "{}", reply.text);
    assert!(reply.text.contains("/docs/"));
}
