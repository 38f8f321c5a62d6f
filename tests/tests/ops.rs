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

/// The value of the series of `name` carrying every one of `labels` (`key="value"`), if present.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            let (series, _) = line.rsplit_once(' ').unwrap_or_default();
            let base = series.split('{').next().unwrap_or_default();
            base == name && labels.iter().all(|label| series.contains(label))
        })
        .and_then(|line| line.rsplit_once(' '))
        .and_then(|(_, value)| value.parse().ok())
}

/// The queue an operator alerts on (what waits, and for how long) and how generations end, through
/// every path: success, a model failure, a cancel, and a job whose worker died.
#[tokio::test]
async fn metrics_show_the_job_queue_and_how_generations_end() {
    use crate::generations::{generate, signup, terminal, wait_until};
    let app = TestApp::spawn_with(&[
        ("EASEL_JOB_WORKERS", "0"),
        ("EASEL_JOB_HEARTBEAT_TIMEOUT_SECS", "2"),
        ("EASEL_MAX_IN_FLIGHT", "8"),
    ])
    .await;
    let token = signup(&app, "watched").await;
    let mut ids = Vec::new();
    for prompt in [
        "an old one",
        "a failure [[fail]]",
        "canceled",
        "orphaned",
        "not due",
    ] {
        let reply = generate(
            &app,
            &token,
            serde_json::json!({"prompt": prompt, "model": "easel-sketch"}),
        )
        .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        ids.push(reply.json["id"].as_str().unwrap_or_default().to_owned());
    }
    // The first has waited an hour; the last is a retry not yet due, so it waits for no worker.
    app.execute(&format!(
        "UPDATE generations SET created_at = now() - interval '1 hour', \
         run_after = now() - interval '1 hour' WHERE id = '{}'",
        ids[0]
    ))
    .await;
    app.execute(&format!(
        "UPDATE generations SET run_after = now() + interval '1 hour' WHERE id = '{}'",
        ids[4]
    ))
    .await;
    let cancel = app
        .call(
            Method::POST,
            &format!("/v1/generations/{}/cancel", ids[2]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);

    let text = app.send(app.request(Method::GET, "/metrics")).await.text;
    assert_eq!(
        sample(&text, "generation_jobs", &[r#"status="queued""#]),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "generation_jobs", &[r#"status="processing""#]),
        Some(0.0),
        "{text}"
    );
    let oldest = sample(&text, "generation_oldest_due_seconds", &[]).unwrap_or_default();
    assert!((3600.0..3700.0).contains(&oldest), "{oldest} in {text}");
    let canceled = [
        r#"model="easel-sketch""#,
        r#"status="canceled""#,
        r#"error="canceled""#,
    ];
    assert_eq!(
        sample(&text, "generations_finished_total", &canceled),
        Some(1.0),
        "{text}"
    );

    // A worker claims the orphan and dies; the watchdog puts it back.
    app.execute(&format!(
        "UPDATE generations SET run_after = now() + interval '1 hour' WHERE id <> '{}' AND status = 'queued'",
        ids[3]
    ))
    .await;
    let claimed = easel::generation::store::claim(&mut app.db().await, "dead-worker", 8)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    app.execute(
        "UPDATE generations SET heartbeat_at = now() - interval '1 hour' WHERE status = 'starting'",
    )
    .await;
    let text = app.send(app.request(Method::GET, "/metrics")).await.text;
    assert_eq!(
        sample(&text, "generation_jobs", &[r#"status="starting""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "generation_oldest_due_seconds", &[]),
        Some(0.0),
        "{text}"
    );
    let state = app.shared.state.clone().into_inner();
    easel::generation::runner::sweep(&state)
        .await
        .expect("sweep");

    // Everything comes due, and a worker runs it all.
    app.execute(
        "UPDATE generations SET run_after = now() - interval '1 hour' WHERE status = 'queued'",
    )
    .await;
    easel::generation::runner::spawn(state, 2);
    for id in &ids {
        wait_until(&app, &token, id, terminal).await;
    }
    let text = app.send(app.request(Method::GET, "/metrics")).await.text;
    assert_eq!(
        sample(
            &text,
            "generation_requeues_total",
            &[r#"reason="worker_lost""#]
        ),
        Some(1.0),
        "{text}"
    );
    let succeeded = [
        r#"model="easel-sketch""#,
        r#"status="succeeded""#,
        r#"error="none""#,
    ];
    assert_eq!(
        sample(&text, "generations_finished_total", &succeeded),
        Some(3.0),
        "{text}"
    );
    let failed = [r#"status="failed""#, r#"error="model_failed""#];
    assert_eq!(
        sample(&text, "generations_finished_total", &failed),
        Some(1.0),
        "{text}"
    );
    let model = r#"model="easel-sketch""#;
    assert_eq!(
        sample(
            &text,
            "generation_duration_seconds_count",
            &[model, r#"status="succeeded""#]
        ),
        Some(3.0),
        "{text}"
    );
    // Three first attempts were taken up by this process (the orphan's first was the dead
    // worker's), one of them after an hour in the queue.
    assert_eq!(
        sample(&text, "generation_queue_wait_seconds_count", &[model]),
        Some(3.0),
        "{text}"
    );
    let waited = sample(&text, "generation_queue_wait_seconds_sum", &[model]).unwrap_or_default();
    assert!(waited >= 3600.0, "{waited} in {text}");
    assert_eq!(
        sample(&text, "generation_jobs", &[r#"status="queued""#]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "generation_oldest_due_seconds", &[]),
        Some(0.0),
        "{text}"
    );
}

/// `easel worker` runs the jobs an `easel serve` without workers queues, and answers its health and
/// its jobs' metrics on `EASEL_WORKER_BIND`, nothing else; SIGTERM stops it cleanly.
#[tokio::test]
async fn a_worker_process_runs_jobs_and_serves_its_metrics() {
    use crate::generations::{
        easel_process, free_port, generate, signup, terminal, terminate, wait_until,
    };
    let app = TestApp::spawn_with(&[("EASEL_JOB_WORKERS", "0")]).await;
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut worker = easel_process(
        "worker",
        &app.database_url,
        &app.data_dir,
        &[
            ("EASEL_WORKER_BIND", bind.as_str()),
            ("EASEL_LOCAL_RENDER_MS", "50"),
        ],
    );
    let token = signup(&app, "offloaded").await;
    let created = generate(
        &app,
        &token,
        serde_json::json!({"prompt": "made elsewhere", "model": "easel-sketch"}),
    )
    .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();
    let done = wait_until(&app, &token, &id, terminal).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let client = reqwest::Client::new();
    let base = format!("http://{bind}");
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let succeeded = [r#"model="easel-sketch""#, r#"status="succeeded""#];
    assert_eq!(
        sample(&text, "generations_finished_total", &succeeded),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "generation_jobs", &[r#"status="queued""#]),
        Some(0.0),
        "{text}"
    );
    // The API is not there.
    let other = client
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .expect("other");
    assert_eq!(other.status(), 404);
    assert_eq!(
        other
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    // The server's own metrics did not count the worker's job.
    let own = app.send(app.request(Method::GET, "/metrics")).await.text;
    assert_eq!(
        sample(&own, "generations_finished_total", &succeeded),
        None,
        "{own}"
    );

    let status = terminate(&mut worker, std::time::Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}

/// With `EASEL_METRICS_TOKEN` set, `/metrics` answers only a request that carries it.
#[tokio::test]
async fn metrics_can_require_a_bearer_token() {
    let token = "metrics-token-for-the-test";
    let app = TestApp::spawn_with(&[("EASEL_METRICS_TOKEN", token)]).await;
    app.send(app.request(Method::GET, "/metrics"))
        .await
        .assert_problem(401, "unauthorized");
    app.send(
        app.request(Method::GET, "/metrics")
            .bearer_auth("metrics-token-for-the-tesT"),
    )
    .await
    .assert_problem(401, "unauthorized");
    let reply = app
        .send(app.request(Method::GET, "/metrics").bearer_auth(token))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.text.contains("generation_jobs"), "{}", reply.text);
}

/// Ctrl-C (SIGINT) stops `easel serve` the way SIGTERM does: a request under way gets its answer
/// before the process exits 0.
#[tokio::test]
async fn ctrl_c_lets_a_request_under_way_finish() {
    use crate::generations::{easel_process, free_port, ready, signup_at, stop};
    let app = TestApp::spawn_with(&[("EASEL_JOB_WORKERS", "0")]).await;
    let bind = format!("127.0.0.1:{}", free_port());
    let mut server = easel_process(
        "serve",
        &app.database_url,
        &app.data_dir,
        &[
            ("EASEL_BIND", bind.as_str()),
            ("EASEL_JOB_WORKERS", "0"),
            ("EASEL_SHUTDOWN_TIMEOUT_SECS", "10"),
        ],
    );
    let base = format!("http://{bind}");
    let client = reqwest::Client::new();
    ready(&client, &base).await;
    let token = signup_at(&client, &base, "calm").await;
    // No worker runs it, so the request holds for the three seconds it asked for.
    let waiting = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/v1/generations");
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("prefer", "wait=3")
                .json(&serde_json::json!({"prompt": "held", "model": "easel-sketch"}))
                .send()
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let status = stop(&mut server, "INT", std::time::Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
    let answer = waiting.await.expect("task").expect("answered, not cut off");
    assert_eq!(answer.status(), 202);
    assert_eq!(app.count("generations").await, 1);
}
