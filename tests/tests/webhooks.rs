//! `generation.completed` webhooks to API clients: delivered signed to a real receiver over HTTP,
//! retried until it answers 2xx or the attempts run out, and refused for URLs that are not public.

use crate::generations::{generate, signup};
use easel_tests::receiver::Receiver;
use easel_tests::{Reply, TestApp, json};
use reqwest::Method;
use std::time::Duration;

async fn webhook_of(app: &TestApp, token: &str, id: &str) -> Reply {
    app.call(
        Method::GET,
        &format!("/v1/generations/{id}/webhook"),
        Some(token),
        None,
    )
    .await
}

async fn secret_of(app: &TestApp, token: &str) -> String {
    let reply = app
        .call(Method::GET, "/v1/me/webhook-secret", Some(token), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["secret"].as_str().unwrap_or_default().to_owned()
}

/// Polls the webhook's state until `done` holds (at most 20 s).
async fn wait_for_state(
    app: &TestApp,
    token: &str,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = webhook_of(app, token, id).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if done(&reply.json) {
            return reply.json;
        }
        assert!(
            std::time::Instant::now() < until,
            "gave up waiting: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn local_hooks(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut vars = vec![("EASEL_WEBHOOK_ALLOW_LOOPBACK", "true")];
    vars.extend_from_slice(extra);
    vars
}

/// Where the server says it is reached: a receiver has only this to go on.
const PUBLIC_URL: &str = "https://easel.example";

#[tokio::test]
async fn a_finished_generation_is_posted_to_its_webhook_signed() {
    let app = TestApp::spawn_with(&local_hooks(&[("EASEL_PUBLIC_URL", PUBLIC_URL)])).await;
    let receiver = Receiver::start(&[]).await;
    let token = signup(&app, "hooked").await;
    let created = generate(
        &app,
        &token,
        // Kept as the URL parser writes it out: escaped.
        json!({"prompt": "a lighthouse at dusk", "model": "easel-sketch", "webhook_url": format!("{}?tag=a b", receiver.url)}),
    )
    .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();

    let delivery = receiver.wait_for(1).await.remove(0);
    let secret = secret_of(&app, &token).await;
    let verified = easel::http::signature::verify(
        &secret,
        &delivery.headers,
        &delivery.body,
        chrono::Utc::now().timestamp(),
    )
    .expect("signed with the account's secret");
    assert_eq!(verified.id, id, "webhook-id is the generation's id");
    assert_eq!(delivery.header("content-type"), Some("application/json"));
    let event = delivery.json();
    assert_eq!(event["type"], "generation.completed");
    assert_eq!(event["data"]["id"], id.as_str());
    assert_eq!(event["data"]["status"], "succeeded");
    assert_eq!(event["data"]["credits_charged"], 1);
    let images = event["data"]["images"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(images.len(), 1, "{event}");
    // The image it names is there to fetch, at the server's public address.
    for (field, variant) in [("url", "original"), ("thumb_url", "thumb")] {
        let link = images[0][field].as_str().unwrap_or_default();
        let path = format!(
            "/v1/images/{}/file?variant={variant}",
            images[0]["id"].as_str().unwrap_or_default()
        );
        assert_eq!(link, format!("{PUBLIC_URL}{path}"), "{event}");
        let file = app
            .send(app.request(Method::GET, &path).bearer_auth(&token))
            .await;
        assert_eq!(file.status, 200, "{}", file.text);
    }

    let state = wait_for_state(&app, &token, &id, |w| !w["delivered_at"].is_null()).await;
    assert_eq!(state["url"], format!("{}?tag=a%20b", receiver.url));
    assert_eq!(state["attempts"], 1);
    assert_eq!(state["last_status"], 204);
    assert!(state["next_attempt_at"].is_null() && state["last_error"].is_null());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.deliveries().len(), 1, "delivered once");

    // Nobody else sees it; a generation without a webhook has none.
    let other = signup(&app, "other").await;
    webhook_of(&app, &other, &id)
        .await
        .assert_problem(404, "not_found");
    let plain = generate(
        &app,
        &token,
        json!({"prompt": "no hook", "model": "easel-sketch"}),
    )
    .await;
    let plain_id = plain.json["id"].as_str().unwrap_or_default();
    webhook_of(&app, &token, plain_id)
        .await
        .assert_problem(404, "not_found");

    // The secret stays until it is rotated, and each account has its own.
    assert_eq!(secret_of(&app, &token).await, secret);
    assert_ne!(secret_of(&app, &other).await, secret);
    let rotated = app
        .call(
            Method::POST,
            "/v1/me/webhook-secret/rotate",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new_secret = rotated.json["secret"].as_str().unwrap_or_default();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert_eq!(secret_of(&app, &token).await, new_secret);
}

#[tokio::test]
async fn a_refused_delivery_is_tried_again_and_reports_the_refund() {
    let app = TestApp::spawn_with(&local_hooks(&[("EASEL_WEBHOOK_RETRY_SECS", "1")])).await;
    let receiver = Receiver::start(&[500]).await;
    let token = signup(&app, "retried").await;
    let created = generate(
        &app,
        &token,
        json!({"prompt": "this one breaks [[fail]]", "model": "easel-sketch", "webhook_url": receiver.url}),
    )
    .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();

    let deliveries = receiver.wait_for(2).await;
    assert_eq!(
        deliveries[0].header("webhook-id"),
        deliveries[1].header("webhook-id"),
        "a retry carries the same id, so the receiver applies it once"
    );
    let event = deliveries[1].json();
    assert_eq!(event["data"]["status"], "failed");
    assert_eq!(event["data"]["error"]["code"], "model_failed");
    assert_eq!(event["data"]["credits_refunded"], 1);
    let state = wait_for_state(&app, &token, &id, |w| !w["delivered_at"].is_null()).await;
    assert_eq!(state["attempts"], 2);
    assert_eq!(state["last_status"], 204);
}

#[tokio::test]
async fn a_delivery_is_given_up_after_its_attempts_and_a_cancel_is_delivered_too() {
    let app = TestApp::spawn_with(&local_hooks(&[
        ("EASEL_WEBHOOK_RETRY_SECS", "1"),
        ("EASEL_WEBHOOK_MAX_ATTEMPTS", "2"),
    ]))
    .await;
    let receiver = Receiver::start(&[503, 503, 503]).await;
    let token = signup(&app, "unlucky").await;
    let created = generate(
        &app,
        &token,
        json!({"prompt": "take your time [[slow]]", "model": "easel-sketch", "webhook_url": receiver.url}),
    )
    .await;
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();
    // Nothing is sent while it runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.deliveries().is_empty(), "sent before the end");
    let canceled = app
        .call(
            Method::POST,
            &format!("/v1/generations/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);

    let deliveries = receiver.wait_for(2).await;
    assert_eq!(deliveries[0].json()["data"]["status"], "canceled");
    let state = wait_for_state(&app, &token, &id, |w| w["next_attempt_at"].is_null()).await;
    assert_eq!(state["attempts"], 2);
    assert!(state["delivered_at"].is_null(), "{state}");
    assert_eq!(state["last_status"], 503);
    assert!(
        state["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{state}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.deliveries().len(), 2, "no third attempt");
    let metrics = app.send(app.request(Method::GET, "/metrics")).await.text;
    for line in [
        "webhook_deliveries_total{outcome=\"retrying\"} 1",
        "webhook_deliveries_total{outcome=\"given_up\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn webhook_urls_that_are_not_public_https_are_refused_and_nothing_is_created() {
    // The default: no loopback.
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(&[]).await;
    let token = signup(&app, "careful").await;
    let before = app
        .call(Method::GET, "/v1/credits", Some(&token), None)
        .await
        .json["total"]
        .clone();
    for url in [
        receiver.url.as_str(),
        "http://hooks.example.com/easel",
        "https://10.1.2.3/easel",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/easel",
        "not a url",
    ] {
        let reply = generate(
            &app,
            &token,
            json!({"prompt": "a hook", "model": "easel-sketch", "webhook_url": url}),
        )
        .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json["errors"][0]["field"], "webhook_url", "{url}");
    }
    assert_eq!(app.count("generations").await, 0);
    assert_eq!(app.count("generation_webhooks").await, 0);
    let after = app
        .call(Method::GET, "/v1/credits", Some(&token), None)
        .await
        .json["total"]
        .clone();
    assert_eq!(after, before, "no credit moved");
    // A public https URL is taken.
    let taken = generate(
        &app,
        &token,
        json!({"prompt": "a hook", "model": "easel-sketch", "webhook_url": "https://hooks.example.com/easel", "dry_run": true}),
    )
    .await;
    assert_eq!(taken.status, 200, "{}", taken.text);
}

#[tokio::test]
async fn a_slow_receiver_holds_up_only_its_own_delivery() {
    let app = TestApp::spawn_with(&local_hooks(&[("EASEL_WEBHOOK_TIMEOUT_SECS", "2")])).await;
    let slow = Receiver::start_slow(&[], Duration::from_secs(30)).await;
    let quick = Receiver::start(&[]).await;
    let token = signup(&app, "patient").await;
    let mut ids = Vec::new();
    for url in [&slow.url, &quick.url] {
        let created = generate(
            &app,
            &token,
            json!({"prompt": "two hooks", "model": "easel-sketch", "webhook_url": url}),
        )
        .await;
        assert_eq!(created.status, 202, "{}", created.text);
        ids.push(created.json["id"].as_str().unwrap_or_default().to_owned());
    }
    slow.wait_for(1).await;
    quick.wait_for(1).await;
    let quick_state = wait_for_state(&app, &token, &ids[1], |w| !w["delivered_at"].is_null()).await;
    assert_eq!(quick_state["attempts"], 1);
    let meanwhile = webhook_of(&app, &token, &ids[0]).await.json;
    assert!(
        meanwhile["last_error"].is_null() && meanwhile["delivered_at"].is_null(),
        "the slow delivery is still under way: {meanwhile}"
    );
    // The slow one is cut off at twice the timeout, and tried again later.
    let slow_state = wait_for_state(&app, &token, &ids[0], |w| !w["last_error"].is_null()).await;
    assert!(slow_state["delivered_at"].is_null(), "{slow_state}");
    assert!(
        slow_state["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out") || e.contains("no answer")),
        "{slow_state}"
    );
    assert!(!slow_state["next_attempt_at"].is_null(), "{slow_state}");
}

#[tokio::test]
async fn secrets_are_read_for_many_accounts_at_once_and_made_once() {
    let app = TestApp::spawn().await;
    let user_of = |signed_up: serde_json::Value| {
        easel::identity::UserId(
            signed_up["user"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("a user id"),
        )
    };
    let ada = app.signup("ada").await;
    let ada_token = ada["access_token"].as_str().unwrap_or_default().to_owned();
    let (ada, bob) = (user_of(ada), user_of(app.signup("bob").await));
    let kept = secret_of(&app, &ada_token).await;
    let mut conn = app.db().await;
    // Ada twice (two deliveries of one batch), Bob for the first time.
    let mut secrets = easel::generation::webhooks::secrets_of(&mut conn, &[ada, bob, ada])
        .await
        .expect("secrets");
    secrets.sort_by_key(|(user, _)| *user == bob);
    assert_eq!(secrets.len(), 2, "{secrets:?}");
    assert_eq!(secrets[0], (ada, kept), "an existing secret is kept");
    assert!(secrets[1].1.starts_with("whsec_"));
    let again = easel::generation::webhooks::secret_of(&mut conn, bob)
        .await
        .expect("secret");
    assert_eq!(again, secrets[1].1, "made once");
    assert_eq!(app.count("webhook_secrets").await, 2);
}
