//! External identity provider mode: a fake JWKS server at the HTTP boundary with real keys, and
//! Svix-signed user webhooks.

use easel_tests::idp::{self, FakeIdp, hs256, svix_headers, tamper, unsigned_token};
use easel_tests::{TestApp, json};
use jsonwebtoken::Algorithm;
use reqwest::Method;
use std::sync::atomic::Ordering;

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn app_with(idp: &FakeIdp) -> TestApp {
    app_with_settings(idp, &[]).await
}

async fn app_with_settings(idp: &FakeIdp, extra: &[(&'static str, &str)]) -> TestApp {
    let mut settings = idp.settings();
    settings.push(("EASEL_IDENTITY_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()));
    settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    TestApp::spawn_with(&settings).await
}

#[tokio::test]
async fn provider_tokens_are_accepted_and_create_the_user_on_first_sight() {
    let idp = FakeIdp::start().await;
    let app = app_with(&idp).await;
    let rs = idp.rs256(&idp.claims("user_rs"));
    let me = app.call(Method::GET, "/v1/me", Some(&rs), None).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["username"], "idp_user_rs");
    assert_eq!(me.json["email"], "user_rs@idp.test");
    assert_eq!(me.json["display_name"], "Idp Person");
    // the second call finds the same account
    let again = app.call(Method::GET, "/v1/me", Some(&rs), None).await;
    assert_eq!(again.json["id"], me.json["id"]);
    assert_eq!(
        app.count("users WHERE external_subject = 'user_rs'").await,
        1
    );

    let es = idp.es256(&idp.claims("user_es"));
    let me = app.call(Method::GET, "/v1/me", Some(&es), None).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["username"], "idp_user_es");
    // keys were fetched once and cached
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_provider_tokens_are_refused_with_their_reason() {
    let idp = FakeIdp::start().await;
    let app = app_with(&idp).await;
    let now = chrono::Utc::now().timestamp();
    let with = |patch: serde_json::Value| {
        let mut claims = idp.claims("someone");
        if let (Some(base), Some(extra)) = (claims.as_object_mut(), patch.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        claims
    };
    let valid = idp.rs256(&idp.claims("someone"));
    let cases = [
        (
            "expired",
            idp.rs256(&with(json!({"exp": now - 120}))),
            "token_expired",
        ),
        (
            "not yet valid",
            idp.es256(&with(json!({"nbf": now + 600, "exp": now + 900}))),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            idp.rs256(&with(json!({"iss": "https://evil.test"}))),
            "invalid_token",
        ),
        (
            "wrong audience",
            idp.rs256(&with(json!({"aud": "another-app"}))),
            "invalid_token",
        ),
        (
            "no audience",
            idp.rs256(&json!({"sub": "someone", "iss": idp::ISSUER, "exp": now + 60})),
            "invalid_token",
        ),
        (
            "alg none",
            unsigned_token(&idp.claims("someone")),
            "invalid_token",
        ),
        (
            "HS256 signed with the RSA public key",
            hs256(
                idp.rsa_public_pem.as_bytes(),
                Some(idp::RSA_KID),
                &idp.claims("someone"),
            ),
            "invalid_token",
        ),
        (
            "unknown kid",
            idp.sign(Algorithm::RS256, "rotated-away", &idp.claims("someone")),
            "unknown_signing_key",
        ),
        (
            "RS256 under the EC key's kid",
            idp.sign(Algorithm::RS256, idp::EC_KID, &idp.claims("someone")),
            "invalid_token",
        ),
        (
            "tampered payload",
            tamper(&valid, &with(json!({"sub": "admin"}))),
            "invalid_token",
        ),
    ];
    for (name, token, code) in cases {
        let reply = app.call(Method::GET, "/v1/me", Some(&token), None).await;
        assert_eq!(reply.status, 401, "{name}: {}", reply.text);
        assert_eq!(reply.json["code"], code, "{name}: {}", reply.text);
    }
    assert_eq!(
        app.count("users").await,
        0,
        "no refused token created an account"
    );
    // unknown kids refetch the key set at most once a minute
    assert!(
        idp.fetches.load(Ordering::SeqCst) <= 2,
        "fetched {} times",
        idp.fetches.load(Ordering::SeqCst)
    );
    for _ in 0..5 {
        let token = idp.sign(Algorithm::RS256, "another-unknown", &idp.claims("x"));
        app.call(Method::GET, "/v1/me", Some(&token), None)
            .await
            .assert_problem(401, "unknown_signing_key");
    }
    assert!(idp.fetches.load(Ordering::SeqCst) <= 2);
}

fn user_event(kind: &str, id: &str) -> serde_json::Value {
    json!({
        "type": kind,
        "object": "event",
        "data": {
            "id": id,
            "object": "user",
            "username": "hopper",
            "first_name": "Grace",
            "last_name": "Hopper",
            "primary_email_address_id": "idn_1",
            "email_addresses": [{"id": "idn_1", "email_address": "grace@navy.test"}],
        }
    })
}

async fn deliver(
    app: &TestApp,
    msg_id: &str,
    timestamp: i64,
    body: &serde_json::Value,
) -> easel_tests::Reply {
    let raw = body.to_string();
    let mut request = app
        .request(Method::POST, "/webhooks/identity")
        .header("content-type", "application/json")
        .body(raw.clone());
    for (name, value) in svix_headers(WEBHOOK_SECRET, msg_id, timestamp, raw.as_bytes()) {
        request = request.header(name, value);
    }
    app.send(request).await
}

#[tokio::test]
async fn identity_webhooks_apply_each_event_once_and_deletion_disables_when_asked() {
    let idp = FakeIdp::start().await;
    let app = app_with_settings(&idp, &[("EASEL_IDENTITY_DELETED_USERS", "disable")]).await;
    let now = chrono::Utc::now().timestamp();

    let created = deliver(
        &app,
        "msg_1",
        now,
        &user_event("user.created", "user_grace"),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.json["applied"], true);
    let replay = deliver(
        &app,
        "msg_1",
        now,
        &user_event("user.created", "user_grace"),
    )
    .await;
    assert_eq!(replay.json["applied"], false);
    assert_eq!(
        app.count("users WHERE external_subject = 'user_grace' AND username = 'hopper'")
            .await,
        1
    );
    assert_eq!(
        app.count("users WHERE display_name = 'Grace Hopper' AND email = 'grace@navy.test'")
            .await,
        1
    );

    let token = idp.rs256(&idp.claims("user_grace"));
    let me = app.call(Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(me.json["username"], "hopper");

    let deleted = deliver(
        &app,
        "msg_2",
        now,
        &json!({"type": "user.deleted", "data": {"id": "user_grace", "deleted": true}}),
    )
    .await;
    assert_eq!(deleted.json["applied"], true, "{}", deleted.text);
    app.call(Method::GET, "/v1/me", Some(&token), None)
        .await
        .assert_problem(401, "account_disabled");
    assert_eq!(
        app.count("users WHERE external_subject = 'user_grace' AND disabled_at IS NOT NULL")
            .await,
        1,
        "kept, disabled"
    );
}

/// By default the provider's deletion erases the account as a deletion here would: its public
/// image leaves the gallery, and a token issued before finds the account closed.
#[tokio::test]
async fn a_user_the_provider_deleted_is_erased() {
    let idp = FakeIdp::start().await;
    let app = app_with(&idp).await;
    let now = chrono::Utc::now().timestamp();
    let token = idp.rs256(&idp.claims("user_ada"));
    let generated = app
        .send(
            app.request(Method::POST, "/v1/generations")
                .bearer_auth(&token)
                .header("prefer", "wait=30")
                .json(&json!({"prompt": "a farewell", "model": "easel-sketch", "visibility": "public"})),
        )
        .await;
    assert_eq!(generated.status, 200, "{}", generated.text);
    let image = generated.json["images"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        app.call(Method::GET, &format!("/v1/images/{image}"), None, None)
            .await
            .status,
        200
    );

    let deleted = deliver(
        &app,
        "msg_del",
        now,
        &json!({"type": "user.deleted", "data": {"id": "user_ada", "deleted": true}}),
    )
    .await;
    assert_eq!(deleted.json["applied"], true, "{}", deleted.text);
    app.call(Method::GET, &format!("/v1/images/{image}"), None, None)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        app.count(
            "users WHERE external_subject = 'user_ada' AND deleted_at IS NOT NULL \
             AND erased_at IS NOT NULL AND email IS NULL AND username LIKE 'deleted-%'"
        )
        .await,
        1,
        "closed, erased, and nothing that names the person left"
    );
    app.call(Method::GET, "/v1/me", Some(&token), None)
        .await
        .assert_problem(401, "account_disabled");
    assert_eq!(
        app.count("users").await,
        1,
        "no new account from the old token"
    );
    // A late update from the provider does not put a name back on it.
    let late = deliver(
        &app,
        "msg_late",
        now,
        &user_event("user.updated", "user_ada"),
    )
    .await;
    assert_eq!(late.json["applied"], true, "{}", late.text);
    assert_eq!(
        app.count("users WHERE display_name IS NOT NULL OR email IS NOT NULL")
            .await,
        0,
        "still nameless"
    );
    // The ledger still verifies: the generation's charge stays as the record of the money.
    let mut conn = app.db().await;
    assert!(
        easel::credits::store::mismatches(&mut conn)
            .await
            .expect("verify")
            .is_empty()
    );
}

#[tokio::test]
async fn unsigned_tampered_or_stale_webhooks_change_nothing() {
    let idp = FakeIdp::start().await;
    let app = app_with(&idp).await;
    let now = chrono::Utc::now().timestamp();
    let body = user_event("user.created", "user_x");

    let unsigned = app
        .send(
            app.request(Method::POST, "/webhooks/identity")
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await;
    unsigned.assert_problem(401, "invalid_signature");

    let raw = body.to_string();
    let mut request = app
        .request(Method::POST, "/webhooks/identity")
        .body(raw.replace("hopper", "h4cker"));
    for (name, value) in svix_headers(WEBHOOK_SECRET, "msg_t", now, raw.as_bytes()) {
        request = request.header(name, value);
    }
    app.send(request)
        .await
        .assert_problem(401, "invalid_signature");

    deliver(&app, "msg_old", now - 600, &body)
        .await
        .assert_problem(401, "invalid_signature");
    deliver(&app, "msg_future", now + 600, &body)
        .await
        .assert_problem(401, "invalid_signature");
    assert_eq!(app.count("users").await, 0);
    assert_eq!(app.count("identity_events").await, 0);
}

#[tokio::test]
async fn webhooks_without_a_configured_secret_are_refused() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(
            app.request(Method::POST, "/webhooks/identity")
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
    reply.assert_problem(503, "webhook_not_configured");
}

/// An account the provider signs in has no password here to change.
#[tokio::test]
async fn a_provider_account_has_no_password_to_change() {
    let idp = FakeIdp::start().await;
    let app = app_with(&idp).await;
    let token = idp.rs256(&idp.claims("someone"));
    let reply = app
        .call(
            Method::PUT,
            "/v1/me/password",
            Some(&token),
            Some(json!({"current_password": "anything at all", "new_password": "a brand new one"})),
        )
        .await;
    reply.assert_problem(409, "conflict");
    assert_eq!(app.count("users WHERE password_hash IS NOT NULL").await, 0);
}

/// Nor one to delete here: the provider's own deletion (its `user.deleted` event) closes it.
#[tokio::test]
async fn a_provider_account_is_deleted_with_the_provider() {
    let idp = FakeIdp::start().await;
    let app = app_with(&idp).await;
    let token = idp.rs256(&idp.claims("someone"));
    let reply = app
        .call(
            Method::POST,
            "/v1/me/deletion",
            Some(&token),
            Some(json!({"password": "anything at all"})),
        )
        .await;
    reply.assert_problem(409, "conflict");
    assert_eq!(app.count("users WHERE deleted_at IS NULL").await, 1);
}
