//! Health, readiness, metrics, the OpenAPI document and the docs UI.

use easel_tests::{TestApp, Value};
use reqwest::Method;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::spawn().await;
    let reply = app.send(app.request(Method::GET, "/healthz")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_the_applied_migration() {
    let app = TestApp::spawn().await;
    let reply = app.send(app.request(Method::GET, "/readyz")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "ready");
    assert_eq!(
        reply.json["migration"].as_str(),
        easel::db::migrate::latest_version().as_deref()
    );
}

#[tokio::test]
async fn readyz_is_503_while_migrations_are_pending() {
    let app = TestApp::spawn().await;
    easel::db::migrate::revert_all(&app.database_url)
        .await
        .expect("revert");
    let reply = app.send(app.request(Method::GET, "/readyz")).await;
    reply.assert_problem(503, "not_ready");
    assert!(
        reply.json["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("migrations")
    );
    // and ready again once migrated
    easel::db::migrate::run_pending(&app.database_url)
        .await
        .expect("migrate");
    let reply = app.send(app.request(Method::GET, "/readyz")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_show_the_pool() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.get("/v1/missing/thing").await;
    let reply = app.send(app.request(Method::GET, "/metrics")).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    let text = reply.text;
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"} 3"#),
        "{text}"
    );
    // unknown paths share one label, so scanners cannot blow up the series count
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    // The test app has one HTTP worker with a pool of 4, and the process's pool of 4 for jobs.
    assert!(
        text.contains(r#"db_pool_connections{pool="http",state="max"} 4"#),
        "{text}"
    );
    assert!(
        text.contains(r#"db_pool_connections{pool="jobs",state="max"} 4"#),
        "{text}"
    );
    assert!(text.contains("generation_changes_watched 0"), "{text}");
    // The listening connection comes up beside the server.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = app.send(app.request(Method::GET, "/metrics")).await.text;
        if text.contains("generation_changes_heard 1") {
            break;
        }
        assert!(std::time::Instant::now() < until, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pool_metrics_add_up_every_http_workers_pool() {
    // Three HTTP workers share EASEL_DB_POOL_SIZE (12): a pool of 4 each. The process keeps 12.
    let app = TestApp::spawn_with(&[("EASEL_WORKERS", "3"), ("EASEL_DB_POOL_SIZE", "12")]).await;
    let wanted = [
        r#"db_pool_connections{pool="http",state="max"} 12"#,
        r#"db_pool_connections{pool="jobs",state="max"} 12"#,
    ];
    // Workers build their apps as they start, which may be just after the first answer.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = app.send(app.request(Method::GET, "/metrics")).await.text;
        if wanted.iter().all(|line| text.lines().any(|l| l == *line)) {
            break;
        }
        assert!(std::time::Instant::now() < until, "{wanted:?} in\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn served_spec_is_the_generated_one_and_the_committed_file_is_current() {
    let app = TestApp::spawn().await;
    let reply = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(reply.status, 200);
    let generated = easel::openapi::to_json(&easel::openapi::document()).expect("spec");
    assert_eq!(reply.text, generated);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/openapi.json"
    ))
    .unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `make openapi` and commit it"
    );
}

#[tokio::test]
async fn spec_describes_the_api_conventions() {
    let spec: Value =
        serde_json::from_str(&easel::openapi::to_json(&easel::openapi::document()).expect("spec"))
            .expect("json");
    assert_eq!(spec["info"]["title"], "Easel API");
    assert_eq!(spec["info"]["license"]["name"], "Apache-2.0");
    assert!(spec["servers"].as_array().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        spec["components"]["securitySchemes"]["session"]["scheme"],
        "bearer"
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["api_key"]["bearerFormat"],
        "esl_…"
    );
    let codes = spec["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    assert_eq!(
        codes,
        easel::ErrorCode::ALL.len(),
        "every error code is in the spec"
    );
    for code in [
        "invalid_token",
        "token_expired",
        "insufficient_scope",
        "refresh_token_reused",
        "rate_limited",
    ] {
        assert!(spec.to_string().contains(code), "{code}");
    }
    assert!(spec["components"]["schemas"]["Problem"].is_object());
    let paths = spec["paths"].as_object().expect("paths");
    assert!(
        paths.contains_key("/healthz")
            && paths.contains_key("/readyz")
            && paths.contains_key("/metrics")
    );
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let default = &op["responses"]["default"]["$ref"];
            assert_eq!(
                default, "#/components/responses/Problem",
                "{method} {path} lacks the problem response"
            );
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                id.starts_with("get_")
                    || id.starts_with("list_")
                    || id.starts_with("create_")
                    || id.starts_with("update_")
                    || id.starts_with("delete_"),
                "{method} {path}: operationId {id} should be <verb>_<resource>"
            );
        }
    }
}

#[tokio::test]
async fn docs_ui_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let reply = app.send(app.request(Method::GET, "/docs/")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.text.contains("swagger-ui"), "{}", reply.text);
    let script = app
        .send(app.request(Method::GET, "/docs/swagger-ui-bundle.js"))
        .await;
    assert_eq!(script.status, 200);
    assert!(
        script.text.len() > 100_000,
        "the bundle is vendored, not fetched from a CDN"
    );
    let init = app
        .send(app.request(Method::GET, "/docs/swagger-initializer.js"))
        .await;
    assert!(init.text.contains("/openapi.json"), "{}", init.text);
}
