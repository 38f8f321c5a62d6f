//! Real model providers: Replicate (a fake at the HTTP boundary speaking its real shapes and
//! signatures) and Cog (the real runtime serving a Pillow predictor). The same guarantees hold for
//! every provider: images or a refund, cancel stops the remote work, and nothing is charged twice.

use easel_tests::cog::{CogServer, free_port};
use easel_tests::replicate::{FakeReplicate, webhook_headers};
use easel_tests::{Reply, TestApp, json};
use reqwest::Method;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A catalog with one model, `painter`, on the given provider.
fn catalog(provider: &str, provider_model: &str) -> PathBuf {
    catalog_with(provider, provider_model, "")
}

/// The same, with more keys for the model (`extra` is TOML).
fn catalog_with(provider: &str, provider_model: &str, extra: &str) -> PathBuf {
    catalog_taking(
        provider,
        provider_model,
        r#"["seed", "negative_prompt"]"#,
        extra,
    )
}

/// The same, with the model's optional `inputs` (a TOML list).
fn catalog_taking(provider: &str, provider_model: &str, inputs: &str, extra: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("easel-catalog-{}.toml", uuid::Uuid::now_v7()));
    let text = format!(
        r#"
[[models]]
id = "painter"
name = "Painter"
description = "A test model"
provider = "{provider}"
provider_model = "{provider_model}"
cost_per_image = 2
min_outputs = 1
max_outputs = 2
inputs = {inputs}
aspect_ratios = {{ "1:1" = [128, 128], "4:3" = [160, 120] }}
{extra}
"#
    );
    std::fs::write(&path, text).expect("write catalog");
    path
}

async fn spawn(catalog: &Path, extra: Vec<(&'static str, String)>) -> TestApp {
    let mut settings = vec![
        ("EASEL_MODELS_PATH", catalog.display().to_string()),
        ("EASEL_JOB_WORKERS", "2".to_owned()),
    ];
    settings.extend(extra);
    let app = TestApp::spawn_with(&settings).await;
    // Read once at start-up.
    let _ = std::fs::remove_file(catalog);
    app
}

async fn token(app: &TestApp, name: &str) -> String {
    app.signup(name).await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn generate(app: &TestApp, token: &str, prompt: &str, outputs: u32) -> String {
    let reply = app
        .call(
            Method::POST,
            "/v1/generations",
            Some(token),
            Some(json!({"prompt": prompt, "model": "painter", "num_outputs": outputs, "seed": 11})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    reply.json["id"].as_str().unwrap_or_default().to_owned()
}

async fn get(app: &TestApp, token: &str, id: &str) -> serde_json::Value {
    crate::generations::read(app, token, id).await.json
}

async fn wait_for(
    app: &TestApp,
    token: &str,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let generation = get(app, token, id).await;
        if done(&generation) {
            return generation;
        }
        assert!(Instant::now() < until, "gave up waiting: {generation}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ended(g: &serde_json::Value) -> bool {
    matches!(
        g["status"].as_str(),
        Some("succeeded" | "failed" | "canceled")
    )
}

async fn balance(app: &TestApp, token: &str) -> i64 {
    let reply = app
        .call(Method::GET, "/v1/credits", Some(token), None)
        .await;
    reply.json["total"].as_i64().unwrap_or(-1)
}

/// What every provider must do: two images for a request of two, a model failure refunded with its
/// reason, and a cancel that refunds. Returns the canceled generation's id.
async fn same_guarantees(app: &TestApp) -> String {
    let token = token(app, "painter").await;
    let start = balance(app, &token).await;

    let id = generate(app, &token, "a harbor at dawn", 2).await;
    let done = wait_for(app, &token, &id, ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["credits_charged"], 4);
    assert_eq!(done["progress"], 100);
    let images = done["images"].as_array().cloned().unwrap_or_default();
    assert_eq!(images.len(), 2, "{done}");
    for image in &images {
        let url = image["url"].as_str().unwrap_or_default();
        let file = app
            .client
            .get(app.url(url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("file");
        assert_eq!(file.status(), 200);
        let bytes = file.bytes().await.expect("bytes");
        let decoded = image::load_from_memory(&bytes).expect("a real image");
        assert_eq!(
            (i64::from(decoded.width()), i64::from(decoded.height())),
            (
                image["width"].as_i64().unwrap_or(0),
                image["height"].as_i64().unwrap_or(0)
            )
        );
    }
    assert_eq!(balance(app, &token).await, start - 4);

    let failed_id = generate(app, &token, "a storm [[fail]]", 1).await;
    let failed = wait_for(app, &token, &failed_id, ended).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "model_failed");
    assert_eq!(failed["error"]["retryable"], false);
    assert_eq!(failed["credits_refunded"], 2);
    assert!(failed["images"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(balance(app, &token).await, start - 4);

    let slow_id = generate(app, &token, "a long exposure [[slow]]", 1).await;
    wait_for(app, &token, &slow_id, |g| g["status"] == "processing").await;
    let canceled = app
        .call(
            Method::POST,
            &format!("/v1/generations/{slow_id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(canceled.json["status"], "canceled");
    assert_eq!(canceled.json["credits_refunded"], 2);
    assert_eq!(balance(app, &token).await, start - 4);
    // One reservation per generation, one refund per failure: nothing twice.
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        3
    );
    assert_eq!(app.count("credit_entries WHERE kind = 'refund'").await, 2);
    assert_eq!(app.count("images").await, 2);
    slow_id
}

/// Waits (up to 10 s) for `check` to hold.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < until, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn local_provider_gives_the_same_guarantees() {
    let catalog = catalog("local", "sketch");
    let app = spawn(&catalog, vec![]).await;
    same_guarantees(&app).await;
}

/// A model may name its own deadline: shown in the catalog, and kept, here shorter than the
/// server's, so a job that takes longer fails with a refund.
#[tokio::test]
async fn a_model_keeps_its_own_deadline() {
    let catalog = catalog_with("local", "sketch", "deadline_secs = 5");
    let app = spawn(&catalog, vec![]).await;
    let model = app
        .call(Method::GET, "/v1/models/painter", None, None)
        .await;
    assert_eq!(model.json["deadline_secs"], 5, "{}", model.text);
    let token = token(&app, "impatient").await;
    let before = balance(&app, &token).await;
    // `[[slow]]` takes 10 s.
    let id = generate(&app, &token, "a long wait [[slow]]", 1).await;
    let deadline = app
        .text(&format!(
            "SELECT round(extract(epoch FROM deadline_at - created_at)) FROM generations WHERE id = '{id}'"
        ))
        .await;
    assert_eq!(deadline.as_deref(), Some("5"));
    let done = wait_for(&app, &token, &id, ended).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "deadline_exceeded");
    assert_eq!(done["credits_refunded"], 2);
    assert_eq!(balance(&app, &token).await, before);
}

#[tokio::test]
async fn replicate_works_through_signed_webhooks() {
    let fake = FakeReplicate::start().await;
    let catalog = catalog("replicate", "acme/painter");
    let mut settings = fake.settings();
    // Polling only after a long silence: everything here must arrive by webhook.
    settings.push(("EASEL_PROVIDER_POLL_SECS", "60".to_owned()));
    let app = spawn(&catalog, settings).await;
    let slow_id = same_guarantees(&app).await;

    let slow_ref = app
        .text(&format!(
            "SELECT provider_ref FROM generations WHERE id = '{slow_id}'"
        ))
        .await
        .unwrap_or_default();
    eventually("the remote cancel", || {
        fake.ledger().cancels.contains(&slow_ref)
    })
    .await;
    let ledger = fake.ledger();
    assert_eq!(ledger.creates, 3, "one prediction per generation");
    assert_eq!(ledger.polls, 0, "webhooks carried every state");
    let body = &ledger.create_bodies[0];
    assert_eq!(body["input"]["prompt"], "a harbor at dawn");
    assert_eq!(body["input"]["num_outputs"], 2);
    assert_eq!(body["input"]["width"], 128);
    assert_eq!(
        body["webhook_events_filter"],
        json!(["start", "output", "logs", "completed"])
    );
    let webhook = body["webhook"].as_str().unwrap_or_default();
    assert!(
        webhook.starts_with(&app.url("/webhooks/replicate?generation=")),
        "{webhook}"
    );
    assert!(
        body["version"].is_null(),
        "an official model is called by name"
    );
}

#[tokio::test]
async fn replicate_is_polled_when_webhooks_are_lost() {
    let fake = FakeReplicate::start().await;
    fake.ledger().send_webhooks = false;
    let version = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";
    let catalog = catalog_with(
        "replicate",
        &format!("acme/painter:{version}"),
        "prefer_wait = 5\nsize_input = \"aspect_ratio\"\nextra_input = { output_format = \"png\" }",
    );
    let app = spawn(&catalog, fake.settings()).await;
    let token = token(&app, "poller").await;
    let id = generate(&app, &token, "a lighthouse", 1).await;
    let done = wait_for(&app, &token, &id, ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["images"].as_array().map(Vec::len), Some(1));
    let ledger = fake.ledger();
    assert!(ledger.polls >= 1, "the state came by polling");
    let body = &ledger.create_bodies[0];
    assert_eq!(
        body["version"], version,
        "a version goes through /v1/predictions"
    );
    assert_eq!(body["input"]["aspect_ratio"], "1:1");
    assert!(body["input"]["width"].is_null());
    assert_eq!(body["input"]["output_format"], "png");
    assert_eq!(ledger.prefer_headers[0].as_deref(), Some("wait=5"));
}

#[tokio::test]
async fn steps_and_guidance_go_in_the_inputs_the_catalog_names() {
    let fake = FakeReplicate::start().await;
    let catalog = catalog_taking(
        "replicate",
        "acme/painter",
        r#"["seed", "steps", "guidance"]"#,
        r#"guidance_input_name = "guidance""#,
    );
    let app = spawn(&catalog, fake.settings()).await;
    let token = token(&app, "tuner").await;
    let tuned = app
        .call(
            Method::POST,
            "/v1/generations",
            Some(&token),
            Some(json!({"prompt": "a tuned harbor", "model": "painter", "steps": 28, "guidance": 3.5})),
        )
        .await;
    assert_eq!(tuned.status, 202, "{}", tuned.text);
    assert_eq!(
        (&tuned.json["steps"], &tuned.json["guidance"]),
        (&json!(28), &json!(3.5))
    );
    let done = wait_for(&app, &token, &id_of_reply(&tuned), ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        (&done["steps"], &done["guidance"]),
        (&json!(28), &json!(3.5))
    );
    let plain = generate(&app, &token, "a plain harbor", 1).await;
    let done = wait_for(&app, &token, &plain, ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        done["steps"].is_null() && done["guidance"].is_null(),
        "{done}"
    );
    let ledger = fake.ledger();
    let input = |i: usize| ledger.create_bodies[i]["input"].clone();
    assert_eq!(input(0)["num_inference_steps"], 28);
    assert_eq!(input(0)["guidance"], 3.5);
    assert!(input(0)["guidance_scale"].is_null());
    assert!(
        input(1)["num_inference_steps"].is_null(),
        "the model's own default"
    );
    assert!(input(1)["guidance"].is_null(), "the model's own default");
}

fn id_of_reply(reply: &Reply) -> String {
    reply.json["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn replicate_deliveries_apply_once_in_order_and_only_when_signed() {
    let fake = FakeReplicate::start().await;
    fake.ledger().send_webhooks = false;
    let catalog = catalog("replicate", "acme/painter");
    let mut settings = fake.settings();
    settings.push(("EASEL_PROVIDER_POLL_SECS", "600".to_owned()));
    let app = spawn(&catalog, settings).await;
    let token = token(&app, "deliveries").await;
    let id = generate(&app, &token, "a quiet street", 1).await;

    let until = Instant::now() + Duration::from_secs(10);
    let prediction = loop {
        if let Some(p) = app
            .text(&format!(
                "SELECT provider_ref FROM generations WHERE id = '{id}'"
            ))
            .await
        {
            break p;
        }
        assert!(Instant::now() < until, "no prediction recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let succeeded = fake.prediction(&prediction).expect("prediction");
    assert_eq!(succeeded["status"], "succeeded");
    let mut processing = succeeded.clone();
    processing["status"] = json!("processing");
    processing["output"] = json!(null);
    let url = format!("/webhooks/replicate?generation={id}");
    let send = async |body: &serde_json::Value, secret: &str, timestamp: i64| -> Reply {
        let bytes = serde_json::to_vec(body).expect("json");
        let mut request = app
            .request(Method::POST, &url)
            .header("content-type", "application/json")
            .body(bytes.clone());
        for (name, value) in webhook_headers(
            secret,
            &format!("msg_{}", uuid::Uuid::now_v7().simple()),
            timestamp,
            &bytes,
        ) {
            request = request.header(name, value);
        }
        app.send(request).await
    };
    let now = chrono::Utc::now().timestamp();

    let forged = send(&succeeded, "whsec_Zm9yZ2VkLXNlY3JldC1mb3ItdGVzdHM=", now).await;
    forged.assert_problem(401, "invalid_signature");
    let stale = send(&succeeded, &fake.secret, now - 600).await;
    stale.assert_problem(401, "invalid_signature");
    let malformed = send(&json!({"not": "a prediction"}), &fake.secret, now).await;
    malformed.assert_problem(400, "bad_request");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        get(&app, &token, &id).await["status"],
        "processing",
        "nothing changed"
    );
    assert_eq!(
        app.count(&format!(
            "generations WHERE id = '{id}' AND provider_state IS NULL"
        ))
        .await,
        1
    );

    let applied = send(&succeeded, &fake.secret, now).await;
    assert_eq!(applied.status, 200, "{}", applied.text);
    assert_eq!(applied.json["applied"], true);
    let done = wait_for(&app, &token, &id, ended).await;
    assert_eq!(done["status"], "succeeded");
    for late in [&succeeded, &processing, &succeeded] {
        let reply = send(late, &fake.secret, now).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            reply.json["applied"], false,
            "a repeat or late delivery changes nothing"
        );
    }
    assert_eq!(get(&app, &token, &id).await["status"], "succeeded");
    assert_eq!(app.count("images").await, 1);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        1
    );
    assert_eq!(app.count("credit_entries WHERE kind = 'refund'").await, 0);
}

/// A model that makes fewer images than asked (its safety checker dropped some) succeeds with
/// those it made, and the images not made are refunded with it, from purchased credits first. One
/// that makes more keeps only those asked for.
#[tokio::test]
async fn images_a_model_did_not_make_are_refunded_and_extra_ones_dropped() {
    let fake = FakeReplicate::start().await;
    let catalog = catalog("replicate", "acme/painter");
    // One free credit a day: the reservation takes it and three purchased ones (the signup bonus).
    let mut settings = fake.settings();
    settings.push(("EASEL_DAILY_FREE_CREDITS", "1".to_owned()));
    let app = spawn(&catalog, settings).await;
    let token = token(&app, "shortchanged").await;
    let start = balance(&app, &token).await;
    let id = generate(&app, &token, "two asked, one made [[one-output]]", 2).await;
    let done = wait_for(&app, &token, &id, ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["images"].as_array().map(Vec::len), Some(1));
    assert_eq!(done["credits_charged"], 4);
    assert_eq!(done["credits_refunded"], 2);
    assert_eq!(balance(&app, &token).await, start - 2);
    let entries = app
        .call(Method::GET, "/v1/credits/transactions", Some(&token), None)
        .await;
    let newest: Vec<(String, i64, i64)> = entries.json["data"]
        .as_array()
        .map(|page| {
            page.iter()
                .take(2)
                .map(|e| {
                    (
                        e["kind"].as_str().unwrap_or_default().to_owned(),
                        e["free_delta"].as_i64().unwrap_or(0),
                        e["purchased_delta"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        newest,
        [
            ("refund".to_owned(), 0, 2),
            ("reservation".to_owned(), -1, -3)
        ],
        "non-expiring credits come back first: {}",
        entries.text
    );
    let mismatches = easel::credits::store::mismatches(&mut app.db().await)
        .await
        .expect("verify");
    assert!(mismatches.is_empty(), "{mismatches:?}");

    // All of them made: nothing refunded.
    let whole = generate(&app, &token, "two asked, two made", 2).await;
    let whole = wait_for(&app, &token, &whole, ended).await;
    assert_eq!(whole["images"].as_array().map(Vec::len), Some(2));
    assert_eq!(whole["credits_refunded"], 0);
    assert_eq!(app.count("credit_entries WHERE kind = 'refund'").await, 1);

    // More than asked: only those asked for are kept, as they alone were paid for.
    let extra = generate(&app, &token, "two asked, three made [[extra-output]]", 2).await;
    let extra = wait_for(&app, &token, &extra, ended).await;
    assert_eq!(extra["status"], "succeeded", "{extra}");
    assert_eq!(extra["images"].as_array().map(Vec::len), Some(2), "{extra}");
    assert_eq!(extra["credits_charged"], 4);
    assert_eq!(extra["credits_refunded"], 0);
    assert_eq!(
        app.count(&format!(
            "images WHERE generation_id = '{}' AND output_index < 2",
            extra["id"].as_str().unwrap_or_default()
        ))
        .await,
        2,
        "the first two are kept"
    );
    assert_eq!(app.count("images").await, 5);
}

#[tokio::test]
async fn replicate_outages_are_retried_and_refusals_are_final() {
    let fake = FakeReplicate::start().await;
    fake.ledger().failing_creates = 1;
    let catalog = catalog("replicate", "acme/painter");
    let app = spawn(&catalog, fake.settings()).await;
    let token = token(&app, "retrier").await;

    let id = generate(&app, &token, "a bridge in fog", 1).await;
    let done = wait_for(&app, &token, &id, ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(fake.ledger().creates, 2, "a 500, then a retry that worked");
    assert_eq!(
        app.text(&format!(
            "SELECT attempts FROM generations WHERE id = '{id}'"
        ))
        .await
        .as_deref(),
        Some("2")
    );

    // An output URL that redirects to the cloud metadata address is never fetched.
    let refused_id = generate(&app, &token, "steal credentials [[private-output]]", 1).await;
    let refused = wait_for(&app, &token, &refused_id, ended).await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(refused["error"]["code"], "output_refused");
    assert_eq!(refused["credits_refunded"], 2);
    assert_eq!(
        app.count(&format!("images WHERE generation_id = '{refused_id}'"))
            .await,
        0
    );
}

#[tokio::test]
async fn cog_runs_for_real_with_uploads_and_cancel() {
    let port = free_port();
    let catalog = catalog("cog", &format!("http://127.0.0.1:{port}"));
    let secret = "cog-upload-secret-for-tests";
    let app = spawn(
        &catalog,
        vec![("EASEL_COG_UPLOAD_SECRET", secret.to_owned())],
    )
    .await;
    let _cog = CogServer::start(port, Some(&app.url(&format!("/uploads/cog/{secret}/")))).await;
    same_guarantees(&app).await;
    assert!(
        std::fs::read_dir(app.data_dir.join("images/uploads")).is_ok(),
        "outputs came through the upload endpoint"
    );
    // The upload endpoint takes nothing without the secret, or for a prediction not running.
    let png = easel::providers::local::sample_png("x", 64, 64, 1).expect("png");
    let wrong = app
        .send(
            app.request(Method::PUT, "/uploads/cog/not-the-secret-at-all/x.png")
                .header("x-prediction-id", "abc")
                .body(png.clone()),
        )
        .await;
    wrong.assert_problem(404, "not_found");
    let idle = app
        .send(
            app.request(Method::PUT, &format!("/uploads/cog/{secret}/x.png"))
                .header("x-prediction-id", "abc")
                .body(png),
        )
        .await;
    idle.assert_problem(404, "not_found");
    let unknown = app
        .call(
            Method::POST,
            "/webhooks/cog/not-a-token",
            None,
            Some(json!({"id": "x", "status": "succeeded"})),
        )
        .await;
    unknown.assert_problem(404, "not_found");
}

/// A Cog server runs one prediction at a time. A job that meets it busy waits in the queue without
/// spending an attempt (here it has only one), asking again until the server has room.
#[tokio::test]
async fn cog_at_capacity_is_waited_for_and_data_uris_work() {
    let port = free_port();
    let catalog = catalog("cog", &format!("http://127.0.0.1:{port}"));
    let app = spawn(&catalog, vec![("EASEL_JOB_MAX_ATTEMPTS", "1".to_owned())]).await;
    let _cog = CogServer::start(port, None).await;
    let token = token(&app, "capacity").await;

    let busy = generate(&app, &token, "a slow sunset [[slow]]", 1).await;
    wait_for(&app, &token, &busy, |g| g["status"] == "processing").await;
    let waiting = generate(&app, &token, "a quick sketch", 1).await;
    // It hears 409 twice, and is still waiting, its one attempt unspent.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = app.send(app.request(Method::GET, "/metrics")).await.text;
        let busy_requeues = metrics
            .lines()
            .find(|line| line.starts_with(r#"generation_requeues_total{reason="busy"}"#))
            .and_then(|line| line.rsplit_once(' '))
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .unwrap_or(0);
        if busy_requeues >= 2 {
            break;
        }
        assert!(
            Instant::now() < until,
            "the second job never met a full server: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = get(&app, &token, &waiting).await;
    assert!(
        matches!(now["status"].as_str(), Some("queued" | "starting")),
        "{now}"
    );
    let canceled = app
        .call(
            Method::POST,
            &format!("/v1/generations/{busy}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(canceled.json["status"], "canceled", "{}", canceled.text);
    let done = wait_for(&app, &token, &waiting, ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["images"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.text(&format!(
            "SELECT attempts FROM generations WHERE id = '{waiting}'"
        ))
        .await
        .as_deref(),
        Some("1"),
        "only the attempt that ran counted"
    );
    // Each job's wait for a worker is observed once, however often the waiting one was handed back.
    let metrics = app.send(app.request(Method::GET, "/metrics")).await.text;
    assert!(
        metrics
            .lines()
            .any(|line| line == r#"generation_queue_wait_seconds_count{model="painter"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn cog_takes_an_input_image_inline() {
    let port = free_port();
    let catalog = catalog_with(
        "cog",
        &format!("http://127.0.0.1:{port}"),
        "image_input = \"optional\"",
    );
    let app = spawn(&catalog, vec![]).await;
    let _cog = CogServer::start(port, None).await;
    let token = token(&app, "inliner").await;
    // Already at the requested size, the predictor returns it pixel for pixel.
    let png = easel::providers::local::sample_png("an input to keep", 128, 128, 4).expect("png");
    let upload = app.upload(&token, "input.png", &png).await;
    assert_eq!(upload.status, 201, "{}", upload.text);
    let reply = app
        .call(
            Method::POST,
            "/v1/generations",
            Some(&token),
            Some(
                json!({"prompt": "keep it", "model": "painter", "image_input": upload.json["id"]}),
            ),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id = reply.json["id"].as_str().unwrap_or_default().to_owned();
    let done = wait_for(&app, &token, &id, ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let file = app
        .request(
            Method::GET,
            done["images"][0]["url"].as_str().unwrap_or_default(),
        )
        .bearer_auth(&token)
        .send()
        .await
        .expect("file")
        .bytes()
        .await
        .expect("bytes");
    let got = image::load_from_memory(&file).expect("decode").to_rgb8();
    let sent = image::load_from_memory(&png).expect("decode").to_rgb8();
    assert_eq!(got.dimensions(), (128, 128));
    assert!(
        got == sent,
        "Cog received the input as a data URI and used it"
    );
}
