//! Built-in accounts, sessions, API keys and rate limits, through real HTTP.

use easel_tests::idp::{hs256, tamper, unsigned_token};
use easel_tests::{TestApp, json};
use reqwest::Method;

const SECRET: &str = "test-signing-secret-that-is-long-enough-0123456789";

fn token(v: &serde_json::Value) -> String {
    v["access_token"].as_str().unwrap_or_default().to_owned()
}

fn refresh(v: &serde_json::Value) -> String {
    v["refresh_token"].as_str().unwrap_or_default().to_owned()
}

/// `POST /v1/auth/refresh` with the refresh token of `tokens` (a sign-in's answer).
async fn refresh_with(app: &TestApp, tokens: &serde_json::Value) -> easel_tests::Reply {
    app.call(
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh(tokens)})),
    )
    .await
}

#[tokio::test]
async fn a_person_signs_up_uses_an_api_key_and_revokes_it() {
    let app = TestApp::spawn().await;
    let reply = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": "Ada@Example.com", "username": "ada", "password": "analytical engine"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json["token_type"], "bearer");
    assert_eq!(reply.json["expires_in"], 900);
    assert_eq!(reply.json["user"]["email"], "ada@example.com");
    assert_eq!(reply.json["user"]["role"], "user");
    let cookie = reply.header("set-cookie").unwrap_or_default().to_owned();
    for part in [
        "easel_refresh=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/v1/auth",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    // the password is stored as an argon2id hash, never as given
    assert_eq!(
        app.count("users WHERE password_hash LIKE '$argon2id$%'")
            .await,
        1
    );
    assert_eq!(
        app.count("users WHERE password_hash LIKE '%analytical%'")
            .await,
        0
    );

    let login = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "ADA@example.com", "password": "analytical engine"})),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let session = token(&login.json);

    let me = app.call(Method::GET, "/v1/me", Some(&session), None).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["username"], "ada");

    let created = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&session),
            Some(json!({"name": "script", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let key = created.json["key"].as_str().unwrap_or_default().to_owned();
    assert!(key.starts_with("esl_") && key.len() >= 36, "{key}");
    assert_eq!(created.json["scopes"], json!(["read"]));
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/me/api-keys/{id}").as_str())
    );
    // only a hash is stored
    assert_eq!(
        app.count(&format!("api_keys WHERE key_hash = sha256('{key}'::bytea)"))
            .await,
        1
    );
    assert_eq!(
        app.count(&format!("api_keys WHERE prefix || last_four = '{key}'"))
            .await,
        0
    );

    let with_key = app.call(Method::GET, "/v1/me", Some(&key), None).await;
    assert_eq!(with_key.status, 200, "{}", with_key.text);
    assert_eq!(with_key.json["username"], "ada");

    let listed = app
        .call(Method::GET, "/v1/me/api-keys", Some(&session), None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["data"][0]["prefix"], &key[..8]);
    assert_eq!(listed.json["data"][0]["last_four"], &key[key.len() - 4..]);
    assert!(
        listed.json["data"][0]["key"].is_null(),
        "the secret is never listed"
    );
    assert!(
        listed.json["data"][0]["last_used_at"].is_string(),
        "use was recorded"
    );

    // a key cannot manage keys
    let by_key = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&key),
            Some(json!({"name": "x", "scopes": ["read"]})),
        )
        .await;
    by_key.assert_problem(403, "insufficient_scope");

    let revoked = app
        .call(
            Method::DELETE,
            &format!("/v1/me/api-keys/{id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    let after = app.call(Method::GET, "/v1/me", Some(&key), None).await;
    after.assert_problem(401, "api_key_revoked");
    assert_eq!(
        after.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    let listed = app
        .call(Method::GET, "/v1/me/api-keys", Some(&session), None)
        .await;
    assert_eq!(listed.json["data"], json!([]));
}

#[tokio::test]
async fn api_keys_act_only_within_their_scopes() {
    let app = TestApp::spawn().await;
    let session = token(&app.signup("grace").await);
    let created = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&session),
            Some(json!({"name": "billing only", "scopes": ["billing"]})),
        )
        .await;
    let key = created.json["key"].as_str().unwrap_or_default().to_owned();
    app.call(Method::GET, "/v1/me", Some(&key), None)
        .await
        .assert_problem(403, "insufficient_scope");

    let expired = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&session),
            Some(json!({"name": "old", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    expired.assert_problem(422, "validation_failed");
    assert_eq!(expired.json["errors"][0]["field"], "expires_at");
    let bad = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&session),
            Some(json!({"name": "", "scopes": [], "user_id": "x"})),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    let bad = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&session),
            Some(json!({"name": "", "scopes": []})),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(bad.json["errors"].as_array().map(Vec::len), Some(2));
    let bad_scope = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&session),
            Some(json!({"name": "x", "scopes": ["admin"]})),
        )
        .await;
    bad_scope.assert_problem(422, "validation_failed");
    assert_eq!(app.count("api_keys").await, 1, "only the first key exists");
}

#[tokio::test]
async fn nobody_can_revoke_someone_elses_key() {
    let app = TestApp::spawn().await;
    let alice = token(&app.signup("alice").await);
    let mallory = token(&app.signup("mallory").await);
    let created = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&alice),
            Some(json!({"name": "a", "scopes": ["read"]})),
        )
        .await;
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();
    let key = created.json["key"].as_str().unwrap_or_default().to_owned();
    app.call(
        Method::DELETE,
        &format!("/v1/me/api-keys/{id}"),
        Some(&mallory),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    app.call(
        Method::DELETE,
        "/v1/me/api-keys/not-a-uuid",
        Some(&mallory),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    let listed = app
        .call(Method::GET, "/v1/me/api-keys", Some(&mallory), None)
        .await;
    assert_eq!(listed.json["data"], json!([]));
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&key), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn signup_with_bad_input_is_refused_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"email": "x@example.com", "password": "long enough"}),
            "username",
        ),
        (
            json!({"email": "not-an-email", "username": "xavier", "password": "long enough"}),
            "email",
        ),
        (
            json!({"email": "x@example.com", "username": "xavier", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "x@example.com", "username": "x!", "password": "long enough"}),
            "username",
        ),
        (
            json!({"email": "x@example.com", "username": "xavier", "password": "long enough", "role": "admin"}),
            "role",
        ),
    ];
    for (body, field) in cases {
        let reply = app
            .call(Method::POST, "/v1/auth/signup", None, Some(body.clone()))
            .await;
        reply.assert_problem(422, "validation_failed");
        let fields: Vec<&str> = reply.json["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(fields.contains(&field), "{body} → {}", reply.text);
    }
    let all_bad = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(json!({"email": "nope", "username": "a", "password": "b"})),
        )
        .await;
    assert_eq!(
        all_bad.json["errors"].as_array().map(Vec::len),
        Some(3),
        "every field reported at once"
    );
    let malformed = app
        .send(
            app.request(Method::POST, "/v1/auth/signup")
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    malformed.assert_problem(400, "malformed_json");
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn duplicate_email_or_username_in_any_case_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.signup("linus").await;
    let email = app
        .call(Method::POST, "/v1/auth/signup", None, Some(json!({"email": "LINUS@Example.COM", "username": "other", "password": "long enough"})))
        .await;
    email.assert_problem(409, "conflict");
    assert_eq!(email.json["errors"][0]["field"], "email");
    let username = app
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(
                json!({"email": "new@example.com", "username": "LINUS", "password": "long enough"}),
            ),
        )
        .await;
    username.assert_problem(409, "conflict");
    assert_eq!(username.json["errors"][0]["field"], "username");
    assert_eq!(app.count("users").await, 1);
    assert_eq!(app.count("sessions").await, 1);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    app.signup("ken").await;
    for body in [
        json!({"email": "ken@example.com", "password": "wrong password"}),
        json!({"email": "nobody@example.com", "password": "password-ken"}),
    ] {
        let reply = app
            .call(Method::POST, "/v1/auth/login", None, Some(body))
            .await;
        reply.assert_problem(401, "invalid_credentials");
        assert_eq!(reply.json["detail"], "the email or password is wrong");
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let first = app.signup("rosa").await;
    let access = token(&first);
    let a = refresh(&first);

    let second = app
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a})),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    let b = refresh(&second.json);
    assert_ne!(a, b);

    // A is replayed: the whole family ends, including B and the access tokens issued from it
    let replay = app
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a})),
        )
        .await;
    replay.assert_problem(401, "refresh_token_reused");
    app.call(
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": b})),
    )
    .await
    .assert_problem(401, "invalid_token");
    app.call(Method::GET, "/v1/me", Some(&access), None)
        .await
        .assert_problem(401, "invalid_token");
    app.call(Method::GET, "/v1/me", Some(&token(&second.json)), None)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(
        app.count("sessions WHERE revoked_reason = 'refresh_token_reused'")
            .await,
        1
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_succeed_once() {
    let app = TestApp::spawn().await;
    let a = refresh(&app.signup("tess").await);
    let body = json!({"refresh_token": a});
    let (one, two) = tokio::join!(
        app.call(Method::POST, "/v1/auth/refresh", None, Some(body.clone())),
        app.call(Method::POST, "/v1/auth/refresh", None, Some(body.clone())),
    );
    let mut statuses = [one.status, two.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{} / {}", one.text, two.text);
}

#[tokio::test]
async fn the_spa_refreshes_and_logs_out_with_the_cookie() {
    let app = TestApp::spawn().await;
    let first = app.signup("cookie").await;
    let cookie = format!("easel_refresh={}", refresh(&first));
    let refreshed = app
        .send(
            app.request(Method::POST, "/v1/auth/refresh")
                .header("cookie", &cookie)
                .json(&json!({})),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let next_cookie = format!("easel_refresh={}", refresh(&refreshed.json));
    let access = token(&refreshed.json);

    let out = app
        .send(
            app.request(Method::POST, "/v1/auth/logout")
                .header("cookie", &next_cookie)
                .json(&json!({})),
        )
        .await;
    assert_eq!(out.status, 204);
    assert!(
        out.header("set-cookie")
            .unwrap_or_default()
            .contains("easel_refresh=;"),
        "{:?}",
        out.header("set-cookie")
    );
    app.send(
        app.request(Method::POST, "/v1/auth/refresh")
            .header("cookie", &next_cookie)
            .json(&json!({})),
    )
    .await
    .assert_problem(401, "invalid_token");
    app.call(Method::GET, "/v1/me", Some(&access), None)
        .await
        .assert_problem(401, "invalid_token");
    app.call(Method::POST, "/v1/auth/refresh", None, Some(json!({})))
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn bad_session_tokens_are_refused_with_their_reason() {
    let app = TestApp::spawn_with(&[("EASEL_JWT_SECRET", SECRET)]).await;
    let signed = app.signup("eve").await;
    let good = token(&signed);
    let user_id = signed["user"]["id"].as_str().unwrap_or_default().to_owned();
    let session: (String,) = {
        let parts: Vec<&str> = good.split('.').collect();
        let payload = base64_decode(parts[1]);
        (payload["sid"].as_str().unwrap_or_default().to_owned(),)
    };
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64, nbf: i64, iss: &str, aud: &str| json!({"sub": user_id, "sid": session.0, "iss": iss, "aud": aud, "iat": now, "nbf": nbf, "exp": exp});
    let ok = hs256(
        SECRET.as_bytes(),
        None,
        &claims(now + 60, now, "easel", "easel"),
    );
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&ok), None)
            .await
            .status,
        200,
        "a well-made token passes"
    );

    let cases = [
        (
            hs256(
                SECRET.as_bytes(),
                None,
                &claims(now - 120, now - 300, "easel", "easel"),
            ),
            "token_expired",
        ),
        (
            hs256(
                SECRET.as_bytes(),
                None,
                &claims(now + 600, now + 300, "easel", "easel"),
            ),
            "token_not_yet_valid",
        ),
        (
            hs256(
                SECRET.as_bytes(),
                None,
                &claims(now + 60, now, "someone-else", "easel"),
            ),
            "invalid_token",
        ),
        (
            hs256(
                SECRET.as_bytes(),
                None,
                &claims(now + 60, now, "easel", "another-app"),
            ),
            "invalid_token",
        ),
        (
            hs256(
                b"a-different-secret-of-enough-length-000000",
                None,
                &claims(now + 60, now, "easel", "easel"),
            ),
            "invalid_token",
        ),
        (
            unsigned_token(&claims(now + 60, now, "easel", "easel")),
            "invalid_token",
        ),
        (
            tamper(&good, &claims(now + 9999, now, "easel", "easel")),
            "invalid_token",
        ),
        (
            hs256(
                SECRET.as_bytes(),
                None,
                &json!({"sub": user_id, "sid": session.0, "exp": now + 60}),
            ),
            "invalid_token",
        ),
        ("not.a.jwt".to_owned(), "invalid_token"),
    ];
    for (bad, code) in cases {
        let reply = app.call(Method::GET, "/v1/me", Some(&bad), None).await;
        reply.assert_problem(401, code);
    }
    let none = app.call(Method::GET, "/v1/me", None, None).await;
    none.assert_problem(401, "unauthorized");
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));

    // a disabled account's tokens stop working at once
    app.execute("UPDATE users SET disabled_at = now()").await;
    app.call(Method::GET, "/v1/me", Some(&good), None)
        .await
        .assert_problem(401, "account_disabled");
    let login = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "eve@example.com", "password": "password-eve"})),
        )
        .await;
    login.assert_problem(401, "account_disabled");
}

fn base64_decode(part: &str) -> serde_json::Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

#[tokio::test]
async fn profile_updates_and_username_conflicts() {
    let app = TestApp::spawn().await;
    let ada = token(&app.signup("ada").await);
    app.signup("bob").await;
    let updated = app
        .call(
            Method::PATCH,
            "/v1/me",
            Some(&ada),
            Some(json!({"display_name": "Ada L.", "bio": "counts", "username": "Countess"})),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json["display_name"], "Ada L.");
    assert_eq!(updated.json["username"], "countess");
    let cleared = app
        .call(
            Method::PATCH,
            "/v1/me",
            Some(&ada),
            Some(json!({"bio": null})),
        )
        .await;
    assert!(cleared.json["bio"].is_null());
    assert_eq!(cleared.json["display_name"], "Ada L.", "absent fields stay");
    app.call(
        Method::PATCH,
        "/v1/me",
        Some(&ada),
        Some(json!({"username": "bob"})),
    )
    .await
    .assert_problem(409, "conflict");
    app.call(
        Method::PATCH,
        "/v1/me",
        Some(&ada),
        Some(json!({"role": "admin"})),
    )
    .await
    .assert_problem(422, "validation_failed");
    assert_eq!(app.count("users WHERE role = 'admin'").await, 0);
}

#[tokio::test]
async fn auth_endpoints_are_rate_limited_per_address_with_headers() {
    let app = TestApp::spawn_with(&[("EASEL_RATE_LIMIT_AUTH_PER_MINUTE", "3")]).await;
    let body = json!({"email": "x@example.com", "password": "whatever123"});
    for _ in 0..3 {
        let reply = app
            .call(Method::POST, "/v1/auth/login", None, Some(body.clone()))
            .await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.header("ratelimit-limit"), Some("3"));
    }
    let limited = app
        .call(Method::POST, "/v1/auth/login", None, Some(body))
        .await;
    limited.assert_problem(429, "rate_limited");
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=60).contains(&retry), "{:?}", limited.headers);
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    assert!(limited.header("ratelimit-reset").is_some());
}

#[tokio::test]
async fn login_attempts_are_limited_per_account_across_addresses() {
    let app = TestApp::spawn_with(&[("EASEL_RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE", "2")]).await;
    app.signup("target").await;
    let wrong = json!({"email": "target@example.com", "password": "guess-guess"});
    for _ in 0..2 {
        app.call(Method::POST, "/v1/auth/login", None, Some(wrong.clone()))
            .await
            .assert_problem(401, "invalid_credentials");
    }
    app.call(Method::POST, "/v1/auth/login", None, Some(wrong))
        .await
        .assert_problem(429, "rate_limited");
    // even the right password waits: the budget is per account
    app.call(
        Method::POST,
        "/v1/auth/login",
        None,
        Some(json!({"email": "target@example.com", "password": "password-target"})),
    )
    .await
    .assert_problem(429, "rate_limited");
    // another account is unaffected
    app.signup("other").await;
    let other = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "other@example.com", "password": "password-other"})),
        )
        .await;
    assert_eq!(other.status, 200, "{}", other.text);
}

#[tokio::test]
async fn api_calls_are_rate_limited_per_principal() {
    let app = TestApp::spawn_with(&[("EASEL_RATE_LIMIT_API_PER_MINUTE", "2")]).await;
    let one = token(&app.signup("one").await);
    let two = token(&app.signup("two").await);
    for _ in 0..2 {
        assert_eq!(
            app.call(Method::GET, "/v1/me", Some(&one), None)
                .await
                .status,
            200
        );
    }
    app.call(Method::GET, "/v1/me", Some(&one), None)
        .await
        .assert_problem(429, "rate_limited");
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&two), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn operators_create_admins_and_change_roles() {
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    let account = easel::identity::service::parse_new_user(
        "op@example.com",
        "operator",
        "long enough pw",
        easel::identity::Role::Admin,
    )
    .expect("valid account");
    let user = easel::identity::service::create_account(&mut conn, account)
        .await
        .expect("create");
    assert_eq!(user.role, "admin");
    let login = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "op@example.com", "password": "long enough pw"})),
        )
        .await;
    assert_eq!(login.json["user"]["role"], "admin");
    let user =
        easel::identity::service::set_role(&mut conn, "operator", easel::identity::Role::User)
            .await
            .expect("set role");
    assert_eq!(user.role, "user");
    let missing =
        easel::identity::service::set_role(&mut conn, "nobody", easel::identity::Role::Admin).await;
    assert!(missing.is_err());
}

#[tokio::test]
async fn creating_a_key_with_an_idempotency_key_happens_once() {
    let app = TestApp::spawn().await;
    let session = token(&app.signup("retrier").await);
    // retried with the same Idempotency-Key, the key is created once and its response replayed
    let retry = |k: &'static str| {
        app.send(
            app.request(Method::POST, "/v1/me/api-keys")
                .bearer_auth(&session)
                .header("idempotency-key", k)
                .json(&json!({"name": "retried", "scopes": ["generate"]})),
        )
    };
    let first = retry("create-key-1").await;
    let second = retry("create-key-1").await;
    assert_eq!(first.status, 201);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.json["id"], second.json["id"]);
    assert_eq!(app.count("api_keys WHERE name = 'retried'").await, 1);
}

/// Signs in as `name` (`name@example.com`) with `password`.
pub(crate) async fn login(app: &TestApp, name: &str, password: &str) -> easel_tests::Reply {
    app.call(
        Method::POST,
        "/v1/auth/login",
        None,
        Some(json!({"email": format!("{name}@example.com"), "password": password})),
    )
    .await
}

async fn change_password(
    app: &TestApp,
    token: &str,
    body: serde_json::Value,
) -> easel_tests::Reply {
    app.call(Method::PUT, "/v1/me/password", Some(token), Some(body))
        .await
}

/// A password changed because it leaked must shut out whoever holds it: every other session ends,
/// the one that changed it stays, and API keys (credentials of their own) keep working.
#[tokio::test]
async fn changing_the_password_signs_out_every_other_session() {
    let app = TestApp::spawn().await;
    let here = app.signup("pia").await;
    let elsewhere = login(&app, "pia", "password-pia").await;
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.text);
    let key = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&token(&here)),
            Some(json!({"name": "script", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let key = key.json["key"].as_str().unwrap_or_default().to_owned();
    let hash_before = app.text("SELECT password_hash FROM users").await;

    // Refusals change nothing.
    let wrong = change_password(
        &app,
        &token(&here),
        json!({"current_password": "not it at all", "new_password": "a brand new one"}),
    )
    .await;
    wrong.assert_problem(422, "validation_failed");
    assert_eq!(wrong.json["errors"][0]["field"], "current_password");
    let short = change_password(
        &app,
        &token(&here),
        json!({"current_password": "password-pia", "new_password": "short"}),
    )
    .await;
    short.assert_problem(422, "validation_failed");
    assert_eq!(short.json["errors"][0]["field"], "new_password");
    change_password(
        &app,
        &key,
        json!({"current_password": "password-pia", "new_password": "a brand new one"}),
    )
    .await
    .assert_problem(403, "insufficient_scope");
    change_password(
        &app,
        &token(&here),
        json!({"current_password": "password-pia", "password": "a brand new one"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.call(Method::PUT, "/v1/me/password", None, Some(json!({})))
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(
        app.text("SELECT password_hash FROM users").await,
        hash_before
    );
    assert_eq!(app.count("sessions WHERE revoked_at IS NOT NULL").await, 0);

    let changed = change_password(
        &app,
        &token(&here),
        json!({"current_password": "password-pia", "new_password": "a brand new one"}),
    )
    .await;
    assert_eq!(changed.status, 204, "{}", changed.text);

    // This session goes on, access and refresh.
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&token(&here)), None)
            .await
            .status,
        200
    );
    let refreshed = refresh_with(&app, &here).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    // The other one is over, access and refresh.
    app.call(Method::GET, "/v1/me", Some(&token(&elsewhere.json)), None)
        .await
        .assert_problem(401, "invalid_token");
    refresh_with(&app, &elsewhere.json)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(
        app.count("sessions WHERE revoked_reason = 'password_changed'")
            .await,
        1
    );
    // The key still works; the old password does not, the new one does.
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&key), None)
            .await
            .status,
        200
    );
    login(&app, "pia", "password-pia")
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(login(&app, "pia", "a brand new one").await.status, 200);
}

#[tokio::test]
async fn guessing_the_current_password_is_limited_per_account() {
    let app = TestApp::spawn_with(&[("EASEL_RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE", "2")]).await;
    let session = token(&app.signup("quin").await);
    let guess = json!({"current_password": "guess-guess", "new_password": "a brand new one"});
    for _ in 0..2 {
        change_password(&app, &session, guess.clone())
            .await
            .assert_problem(422, "validation_failed");
    }
    let limited = change_password(
        &app,
        &session,
        json!({"current_password": "password-quin", "new_password": "a brand new one"}),
    )
    .await;
    limited.assert_problem(429, "rate_limited");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(login(&app, "quin", "password-quin").await.status, 200);
}

#[tokio::test]
async fn operators_reset_a_lost_password_and_sign_out_its_sessions() {
    let app = TestApp::spawn().await;
    let session = token(&app.signup("ros").await);
    let mut conn = app.db().await;
    let refused = easel::identity::service::reset_password(&mut conn, "ros", "short").await;
    assert!(refused.is_err());
    assert_eq!(login(&app, "ros", "password-ros").await.status, 200);
    let missing =
        easel::identity::service::reset_password(&mut conn, "nobody", "long enough pw").await;
    assert!(missing.is_err());

    let (user, ended) =
        easel::identity::service::reset_password(&mut conn, "ros", "given by support")
            .await
            .expect("reset");
    assert_eq!(user.username, "ros");
    assert_eq!(ended, 2, "the signup's session and the login's");
    app.call(Method::GET, "/v1/me", Some(&session), None)
        .await
        .assert_problem(401, "invalid_token");
    login(&app, "ros", "password-ros")
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(login(&app, "ros", "given by support").await.status, 200);
}

/// The link in a reset mail.
fn reset_link(mail: &easel_tests::smtp::Mail) -> String {
    let text = mail.text();
    let start = text
        .find("https://easel.test/reset-password?token=")
        .unwrap_or_else(|| panic!("no link in {text}"));
    text[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn token_of(link: &str) -> String {
    link.rsplit_once("token=")
        .map(|(_, token)| token.to_owned())
        .unwrap_or_default()
}

async fn ask_reset(app: &TestApp, email: &str) -> easel_tests::Reply {
    app.call(
        Method::POST,
        "/v1/auth/password-reset",
        None,
        Some(json!({"email": email})),
    )
    .await
}

async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> easel_tests::Reply {
    app.call(
        Method::POST,
        "/v1/auth/password-reset/confirm",
        None,
        Some(json!({"token": token, "new_password": password})),
    )
    .await
}

async fn spawn_with_mail(smtp: &easel_tests::smtp::SmtpServer) -> TestApp {
    TestApp::spawn_with(&[
        ("EASEL_SMTP_URL", smtp.url().as_str()),
        ("EASEL_MAIL_FROM", "Easel <no-reply@easel.test>"),
        ("EASEL_PUBLIC_URL", "https://easel.test"),
    ])
    .await
}

/// "Forgot your password?": a link by email, over real SMTP, that works once and signs the account
/// out everywhere.
#[tokio::test]
async fn a_forgotten_password_is_reset_by_a_link_sent_by_email() {
    let smtp = easel_tests::smtp::SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    let here = app.signup("lou").await;
    let elsewhere = login(&app, "lou", "password-lou").await;

    let asked = ask_reset(&app, "  LOU@Example.com ").await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let mail = &smtp
        .wait_for_mail("<lou@example.com>", "Reset your Easel password", 0)
        .await;
    assert_eq!(mail.to, ["<lou@example.com>"]);
    assert_eq!(mail.from, "<no-reply@easel.test>");
    assert_eq!(
        mail.header("subject").as_deref(),
        Some("Reset your Easel password")
    );
    assert!(mail.text().contains("account lou."), "{}", mail.text());
    let sent = token_of(&reset_link(mail));
    assert_eq!(sent.len(), 43, "256 random bits, base64url");
    // Only the token's hash is kept.
    assert_eq!(
        app.count(&format!(
            "password_resets WHERE token_hash = sha256(convert_to('{sent}', 'UTF8'))"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "password_resets WHERE encode(token_hash, 'escape') LIKE '%{sent}%'"
        ))
        .await,
        0
    );

    // Nobody with that email: the same answer, and no mail.
    assert_eq!(ask_reset(&app, "nobody@example.com").await.status, 202);
    ask_reset(&app, "not an email")
        .await
        .assert_problem(422, "validation_failed");

    // A made-up token, or a short password, changes nothing; the link still works after.
    let made_up = confirm_reset(&app, "made-up-token", "a brand new one").await;
    made_up.assert_problem(422, "validation_failed");
    assert_eq!(made_up.json["errors"][0]["field"], "token");
    let short = confirm_reset(&app, &sent, "short").await;
    assert_eq!(
        short.json["errors"][0]["field"], "new_password",
        "{}",
        short.text
    );
    assert_eq!(login(&app, "lou", "password-lou").await.status, 200);

    let reset = confirm_reset(&app, &sent, "a brand new one").await;
    assert_eq!(reset.status, 204, "{}", reset.text);
    for session in [&here, &elsewhere.json] {
        app.call(Method::GET, "/v1/me", Some(&token(session)), None)
            .await
            .assert_problem(401, "invalid_token");
    }
    login(&app, "lou", "password-lou")
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(login(&app, "lou", "a brand new one").await.status, 200);
    // Once only.
    let again = confirm_reset(&app, &sent, "yet another one").await;
    assert_eq!(again.json["errors"][0]["field"], "token", "{}", again.text);
    assert!(
        smtp.mails().iter().all(|m| m.to == ["<lou@example.com>"]),
        "no mail for the unknown email"
    );

    // Using one link uses up the others; an expired one does not work.
    ask_reset(&app, "lou@example.com").await;
    ask_reset(&app, "lou@example.com").await;
    let (second, third) = (
        token_of(&reset_link(
            &smtp
                .wait_for_mail("<lou@example.com>", "Reset your Easel password", 1)
                .await,
        )),
        token_of(&reset_link(
            &smtp
                .wait_for_mail("<lou@example.com>", "Reset your Easel password", 2)
                .await,
        )),
    );
    assert_eq!(
        confirm_reset(&app, &third, "the third one").await.status,
        204
    );
    let used_up = confirm_reset(&app, &second, "the second one").await;
    assert_eq!(used_up.json["errors"][0]["field"], "token");
    ask_reset(&app, "lou@example.com").await;
    let fourth = token_of(&reset_link(
        &smtp
            .wait_for_mail("<lou@example.com>", "Reset your Easel password", 3)
            .await,
    ));
    app.execute("UPDATE password_resets SET expires_at = now() - interval '1 second'")
        .await;
    let expired = confirm_reset(&app, &fourth, "too late now").await;
    assert_eq!(expired.json["errors"][0]["field"], "token");
    assert_eq!(login(&app, "lou", "the third one").await.status, 200);
}

/// A deleted account's link stops working, and a closed account gets none.
#[tokio::test]
async fn reset_links_do_nothing_for_closed_accounts() {
    let smtp = easel_tests::smtp::SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    let session = token(&app.signup("max").await);
    ask_reset(&app, "max@example.com").await;
    let link = token_of(&reset_link(
        &smtp
            .wait_for_mail("<max@example.com>", "Reset your Easel password", 0)
            .await,
    ));
    let deleted = app
        .call(
            Method::POST,
            "/v1/me/deletion",
            Some(&session),
            Some(json!({"password": "password-max"})),
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let refused = confirm_reset(&app, &link, "taking it back").await;
    assert_eq!(
        refused.json["errors"][0]["field"], "token",
        "{}",
        refused.text
    );
    assert_eq!(app.count("users WHERE password_hash IS NOT NULL").await, 0);
    assert_eq!(ask_reset(&app, "max@example.com").await.status, 202);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let resets = smtp
        .mails()
        .iter()
        .filter(|m| m.header("subject").as_deref() == Some("Reset your Easel password"))
        .count();
    assert_eq!(resets, 1);
}

/// Without a mail server, a development or test server writes each message to a file to open by
/// hand; a production server sends nothing and says so.
#[tokio::test]
async fn without_smtp_mail_goes_to_files_or_nowhere() {
    let app = TestApp::spawn().await;
    app.signup("nia").await;
    assert_eq!(ask_reset(&app, "nia@example.com").await.status, 202);
    let folder = app
        .shared
        .state
        .config
        .mail
        .folder
        .clone()
        .expect("a mail folder outside production");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let written = loop {
        let files: Vec<_> = std::fs::read_dir(&folder)
            .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        // The sign-up's confirmation link comes too: look for the reset.
        let reset = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .find(|mail| mail.contains("reset-password?token="));
        if let Some(mail) = reset {
            break mail;
        }
        assert!(
            std::time::Instant::now() < until,
            "no mail written in {folder:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(written.contains("To: nia@example.com"), "{written}");
    assert!(written.contains("reset-password?token="), "{written}");

    let production = easel::Config::from_lookup(|k| match k {
        "EASEL_ENV" => Some("production".to_owned()),
        "EASEL_JWT_SECRET" => Some("x".repeat(40)),
        _ => None,
    })
    .expect("a production config");
    assert!(production.mail.folder.is_none());
    let mailer = easel::mail::Mailer::new(&production.mail).expect("mailer");
    assert!(!mailer.configured());
    let refused = easel::Config::from_lookup(|k| match k {
        "EASEL_ENV" => Some("production".to_owned()),
        "EASEL_JWT_SECRET" => Some("x".repeat(40)),
        "EASEL_SMTP_URL" => Some("smtp://mailer:hunter2@mail.example.com:587".to_owned()),
        _ => None,
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        refused.contains("EASEL_SMTP_URL") && refused.contains("unencrypted"),
        "{refused}"
    );
    assert!(
        !refused.contains("hunter2"),
        "the password is never echoed: {refused}"
    );
}

/// Signs in (or up, with `signup`) as `name` from a device calling itself `agent`.
async fn sign_in_from(app: &TestApp, name: &str, agent: &str, signup: bool) -> serde_json::Value {
    let (path, body) = if signup {
        (
            "/v1/auth/signup",
            json!({"email": format!("{name}@example.com"), "username": name, "password": format!("password-{name}")}),
        )
    } else {
        (
            "/v1/auth/login",
            json!({"email": format!("{name}@example.com"), "password": format!("password-{name}")}),
        )
    };
    let reply = app
        .send(
            app.request(Method::POST, path)
                .header("user-agent", agent)
                .json(&body),
        )
        .await;
    assert!(reply.status < 300, "{}", reply.text);
    reply.json
}

/// A person sees the devices signed in to their account and signs one out.
#[tokio::test]
async fn signed_in_devices_are_listed_and_signed_out_one_by_one() {
    let app = TestApp::spawn().await;
    let laptop = sign_in_from(&app, "uma", "Laptop\tbrowser", true).await;
    let phone = sign_in_from(&app, "uma", &"p".repeat(300), false).await;
    let stranger = token(&app.signup("vic").await);

    let listed = app
        .call(Method::GET, "/v1/me/sessions", Some(&token(&laptop)), None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let devices = listed.json["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(devices.len(), 2, "{}", listed.text);
    // Newest first; control characters made spaces and long agents cut.
    assert_eq!(devices[0]["user_agent"], "p".repeat(256));
    assert_eq!(devices[0]["current"], false);
    assert_eq!(devices[1]["user_agent"], "Laptop browser");
    assert_eq!(devices[1]["current"], true);
    assert_eq!(devices[1]["ip"], "127.0.0.1");
    let phone_session = devices[0]["id"].as_str().unwrap_or_default().to_owned();

    // Refreshing marks the session active.
    let before = devices[1]["last_active_at"].clone();
    app.execute("UPDATE sessions SET last_active_at = now() - interval '1 hour'")
        .await;
    let refreshed = refresh_with(&app, &laptop).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(
        app.count("sessions WHERE last_active_at > now() - interval '1 minute'")
            .await,
        1
    );
    assert_ne!(before, json!(null));

    // Nobody else's session, and no API key.
    app.call(
        Method::DELETE,
        &format!("/v1/me/sessions/{phone_session}"),
        Some(&stranger),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    let key = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&token(&laptop)),
            Some(json!({"name": "script", "scopes": ["read"]})),
        )
        .await;
    let key = key.json["key"].as_str().unwrap_or_default().to_owned();
    app.call(Method::GET, "/v1/me/sessions", Some(&key), None)
        .await
        .assert_problem(403, "insufficient_scope");
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&token(&phone)), None)
            .await
            .status,
        200
    );

    // The phone is signed out at once, access and refresh; the laptop goes on.
    let out = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{phone_session}"),
            Some(&token(&refreshed.json)),
            None,
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    app.call(Method::GET, "/v1/me", Some(&token(&phone)), None)
        .await
        .assert_problem(401, "invalid_token");
    refresh_with(&app, &phone)
        .await
        .assert_problem(401, "invalid_token");
    app.call(
        Method::DELETE,
        &format!("/v1/me/sessions/{phone_session}"),
        Some(&token(&refreshed.json)),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    let left = app
        .call(
            Method::GET,
            "/v1/me/sessions",
            Some(&token(&refreshed.json)),
            None,
        )
        .await;
    assert_eq!(left.json["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(left.json["data"][0]["current"], true);
    // This device signs out with logout, not from the list.
    let own = left.json["data"][0]["id"].as_str().unwrap_or_default();
    app.call(
        Method::DELETE,
        &format!("/v1/me/sessions/{own}"),
        Some(&token(&refreshed.json)),
        None,
    )
    .await
    .assert_problem(409, "conflict");
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&token(&refreshed.json)), None)
            .await
            .status,
        200
    );
}

/// The link in a mail to a new address.
fn confirm_token(mail: &easel_tests::smtp::Mail) -> String {
    let text = mail.text();
    let start = text
        .find("https://easel.test/confirm-email?token=")
        .unwrap_or_else(|| panic!("no link in {text}"));
    token_of(text[start..].split_whitespace().next().unwrap_or_default())
}

async fn ask_email_change(
    app: &TestApp,
    token: &str,
    email: &str,
    password: &str,
) -> easel_tests::Reply {
    app.call(
        Method::POST,
        "/v1/me/email",
        Some(token),
        Some(json!({"email": email, "password": password})),
    )
    .await
}

async fn confirm_email(app: &TestApp, token: &str) -> easel_tests::Reply {
    app.call(
        Method::POST,
        "/v1/auth/email-change/confirm",
        None,
        Some(json!({"token": token})),
    )
    .await
}

/// A new email is confirmed by a link mailed to it, and the old address is told.
#[tokio::test]
async fn an_email_changes_once_the_new_address_confirms_it() {
    let smtp = easel_tests::smtp::SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    let session = token(&app.signup("ola").await);
    app.signup("taken").await;

    // Refusals change nothing and send nothing.
    let wrong = ask_email_change(&app, &session, "ola@new.example", "not my password").await;
    wrong.assert_problem(422, "validation_failed");
    assert_eq!(wrong.json["errors"][0]["field"], "password");
    ask_email_change(&app, &session, "Taken@Example.com", "password-ola")
        .await
        .assert_problem(409, "conflict");
    let same = ask_email_change(&app, &session, "ola@example.com", "password-ola").await;
    assert_eq!(same.json["errors"][0]["field"], "email", "{}", same.text);
    ask_email_change(&app, &session, "not an email", "password-ola")
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(
        app.count("email_changes c JOIN users u ON u.id = c.user_id WHERE u.username = 'ola' AND c.new_email <> u.email")
            .await,
        0,
        "only the sign-up's confirmation link"
    );

    let asked = ask_email_change(&app, &session, "Ola@New.Example", "password-ola").await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let to_new = &smtp
        .wait_for_mail("<ola@new.example>", "Confirm your new Easel email", 0)
        .await;
    let to_old = &smtp
        .wait_for_mail("<ola@example.com>", "Your Easel email is being changed", 0)
        .await;
    assert!(
        to_old.text().contains("ola@new.example"),
        "{}",
        to_old.text()
    );
    assert!(
        !to_old.text().contains("token="),
        "the old address gets no link"
    );
    let link = confirm_token(to_new);
    // Not yet: the account keeps its email until the new address confirms.
    let me = app.call(Method::GET, "/v1/me", Some(&session), None).await;
    assert_eq!(me.json["email"], "ola@example.com");

    confirm_email(&app, "made-up")
        .await
        .assert_problem(422, "validation_failed");
    let confirmed = confirm_email(&app, &link).await;
    assert_eq!(confirmed.status, 204, "{}", confirmed.text);
    let me = app.call(Method::GET, "/v1/me", Some(&session), None).await;
    assert_eq!(me.json["email"], "ola@new.example", "the session goes on");
    assert_eq!(me.json["email_verified"], true, "the link proved it");
    let login = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "ola@new.example", "password": "password-ola"})),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let again = confirm_email(&app, &link).await;
    assert_eq!(again.json["errors"][0]["field"], "token", "once only");

    // An address another account takes before the link is used: 409, and nothing changes.
    ask_email_change(&app, &session, "race@example.com", "password-ola").await;
    let raced = confirm_token(
        &smtp
            .wait_for_mail("<race@example.com>", "Confirm your new Easel email", 0)
            .await,
    );
    app.signup("race").await;
    confirm_email(&app, &raced)
        .await
        .assert_problem(409, "conflict");
    let me = app.call(Method::GET, "/v1/me", Some(&session), None).await;
    assert_eq!(me.json["email"], "ola@new.example");
    // An expired link does nothing.
    app.execute("UPDATE users SET email = 'race2@example.com' WHERE username = 'race'")
        .await;
    app.execute("UPDATE email_changes SET expires_at = now() - interval '1 second'")
        .await;
    let expired = confirm_email(&app, &raced).await;
    assert_eq!(
        expired.json["errors"][0]["field"], "token",
        "{}",
        expired.text
    );
}

/// A new account's email is confirmed by the link mailed at sign-up, or by a new one asked for.
#[tokio::test]
async fn a_new_accounts_email_is_confirmed_by_a_mailed_link() {
    let smtp = easel_tests::smtp::SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    let session = token(&app.signup("pat").await);
    let verified = async |session: &str| {
        app.call(Method::GET, "/v1/me", Some(session), None)
            .await
            .json["email_verified"]
            .clone()
    };
    assert_eq!(verified(&session).await, false);
    let first = confirm_token(
        &smtp
            .wait_for_mail("<pat@example.com>", "Confirm your Easel email", 0)
            .await,
    );
    // The first mail was lost: another link, which works; the first is used up with it.
    let again = app
        .call(
            Method::POST,
            "/v1/me/email/verification",
            Some(&session),
            None,
        )
        .await;
    assert_eq!(again.status, 202, "{}", again.text);
    let second = confirm_token(
        &smtp
            .wait_for_mail("<pat@example.com>", "Confirm your Easel email", 1)
            .await,
    );
    assert_eq!(confirm_email(&app, &second).await.status, 204);
    assert_eq!(verified(&session).await, true);
    let used = confirm_email(&app, &first).await;
    assert_eq!(used.json["errors"][0]["field"], "token", "{}", used.text);
    app.call(
        Method::POST,
        "/v1/me/email/verification",
        Some(&session),
        None,
    )
    .await
    .assert_problem(409, "conflict");
}

/// The account's security events: sign-ins (and a wrong password) with the browser and address
/// they came from, and the changes made by a session, newest first; nobody else's; erased with the
/// account.
#[tokio::test]
async fn my_security_events_show_sign_ins_and_changes_newest_first() {
    let app = TestApp::spawn_with(&[
        ("EASEL_RATE_LIMIT_AUTH_PER_MINUTE", "1000"),
        ("EASEL_RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE", "1000"),
    ])
    .await;
    app.signup("watchful").await;
    let sign_in = async |password: &str| {
        app.send(
            app.request(Method::POST, "/v1/auth/login")
                .header("user-agent", "Firefox/140.0")
                .json(&json!({"email": "watchful@example.com", "password": password})),
        )
        .await
    };
    assert_eq!(sign_in("not the password").await.status, 401);
    let signed_in = sign_in("password-watchful").await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    let session = token(&signed_in.json);
    let changed = app
        .call(
            Method::PUT,
            "/v1/me/password",
            Some(&session),
            Some(json!({"current_password": "password-watchful", "new_password": "password-watchful-2"})),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    let key = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&session),
            Some(json!({"name": "script", "scopes": ["read"]})),
        )
        .await;
    let key_id = key.json["id"].as_str().unwrap_or_default().to_owned();
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/v1/me/api-keys/{key_id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);

    let events = app
        .call(Method::GET, "/v1/me/security-events", Some(&session), None)
        .await;
    assert_eq!(events.status, 200, "{}", events.text);
    let list = events.json["data"].as_array().cloned().unwrap_or_default();
    let activities: Vec<&str> = list.iter().filter_map(|e| e["activity"].as_str()).collect();
    assert_eq!(
        activities,
        [
            "api_key_revoked",
            "api_key_created",
            "password_changed",
            "signed_in",
            "wrong_password"
        ]
    );
    let wrong = &list[4];
    assert_eq!(wrong["user_agent"], "Firefox/140.0");
    assert_eq!(wrong["ip"], "127.0.0.1");
    assert_eq!(wrong["current"], false);
    // A change made by this session shows where the session signed in from.
    assert_eq!(list[2]["current"], true);
    assert_eq!(list[2]["user_agent"], "Firefox/140.0");

    // Pages follow the cursor.
    let first = app
        .call(
            Method::GET,
            "/v1/me/security-events?limit=3",
            Some(&session),
            None,
        )
        .await;
    assert_eq!(first.json["has_more"], true);
    let cursor = first.json["next_cursor"].as_str().unwrap_or_default();
    let rest = app
        .call(
            Method::GET,
            &format!("/v1/me/security-events?limit=3&cursor={cursor}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(rest.json["data"].as_array().map(Vec::len), Some(2));

    // Nobody else's, and not to a program.
    let stranger = app.signup("stranger").await;
    let theirs = app
        .call(
            Method::GET,
            "/v1/me/security-events",
            Some(&token(&stranger)),
            None,
        )
        .await;
    assert_eq!(theirs.json["data"], json!([]));
    let key = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&session),
            Some(json!({"name": "reader", "scopes": ["read"]})),
        )
        .await;
    let key = key.json["key"].as_str().unwrap_or_default().to_owned();
    app.call(Method::GET, "/v1/me/security-events", Some(&key), None)
        .await
        .assert_problem(403, "insufficient_scope");

    // Erased with the account.
    let deleted = app
        .call(
            Method::POST,
            "/v1/me/deletion",
            Some(&session),
            Some(json!({"password": "password-watchful-2"})),
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(
        app.count(
            "security_events e JOIN users u ON u.id = e.user_id WHERE u.deleted_at IS NOT NULL"
        )
        .await,
        0
    );
}
