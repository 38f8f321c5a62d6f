//! Two-step sign-in, driven the way a person and their authenticator app would: the app's codes
//! are made here from the key the API hands out (RFC 6238, written apart from the server's).

use easel_tests::{Reply, TestApp, json};
use reqwest::Method;

/// RFC 4648 base32, as an authenticator app reads a typed key.
fn unbase32(key: &str) -> Vec<u8> {
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0_u64, 0);
    for c in key.chars() {
        let value = alphabet.find(c).expect("a base32 character") as u64;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// What the app shows `offset` steps from now.
fn app_code(key: &str, offset: i64) -> String {
    let step = chrono::Utc::now().timestamp() / 30 + offset;
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        &unbase32(key),
    );
    let mac = aws_lc_rs::hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let at = (mac[19] & 15) as usize;
    let number = (u32::from(mac[at] & 0x7f) << 24)
        | (u32::from(mac[at + 1]) << 16)
        | (u32::from(mac[at + 2]) << 8)
        | u32::from(mac[at + 3]);
    format!("{:06}", number % 1_000_000)
}

/// Room for the many sign-ins and passwords given again of one journey, from one address: the
/// limits under test here are the code limits.
async fn spawn() -> TestApp {
    TestApp::spawn_with(&[
        ("EASEL_RATE_LIMIT_AUTH_PER_MINUTE", "1000"),
        ("EASEL_RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE", "1000"),
    ])
    .await
}

async fn signup(app: &TestApp, name: &str) -> String {
    app.signup(name).await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn login(app: &TestApp, name: &str) -> Reply {
    app.call(
        Method::POST,
        "/v1/auth/login",
        None,
        Some(
            json!({"email": format!("{name}@example.com"), "password": format!("password-{name}")}),
        ),
    )
    .await
}

/// A POST that gives the account's password again.
async fn with_password(app: &TestApp, token: &str, path: &str, password: &str) -> Reply {
    app.call(
        Method::POST,
        path,
        Some(token),
        Some(json!({"password": password})),
    )
    .await
}

async fn second_step(app: &TestApp, challenge: &str, code: &str) -> Reply {
    app.call(
        Method::POST,
        "/v1/auth/login/two-factor",
        None,
        Some(json!({"challenge": challenge, "code": code})),
    )
    .await
}

/// `GET /v1/me/two-factor`: on or off, and the recovery codes left.
async fn status(app: &TestApp, token: &str) -> (bool, i64) {
    let reply = app
        .call(Method::GET, "/v1/me/two-factor", Some(token), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (
        reply.json["enabled"] == true,
        reply.json["recovery_codes_left"].as_i64().unwrap_or(-1),
    )
}

async fn two_factor_on(app: &TestApp, token: &str) -> bool {
    let me = app.call(Method::GET, "/v1/me", Some(token), None).await;
    assert_eq!(me.status, 200, "{}", me.text);
    me.json["two_factor"] == true
}

/// Turns it on for `name`; the key and the recovery codes.
async fn turn_on(app: &TestApp, token: &str, name: &str) -> (String, Vec<String>) {
    let setup = with_password(app, token, "/v1/me/two-factor", &format!("password-{name}")).await;
    assert_eq!(setup.status, 201, "{}", setup.text);
    let key = setup.json["secret"].as_str().unwrap_or_default().to_owned();
    let confirmed = app
        .call(
            Method::POST,
            "/v1/me/two-factor/confirmation",
            Some(token),
            Some(json!({"code": app_code(&key, 0)})),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let codes = confirmed.json["codes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    (key, codes)
}

#[tokio::test]
async fn a_password_alone_no_longer_signs_in_once_two_factor_is_on() {
    let app = spawn().await;
    let token = signup(&app, "guarded").await;

    // The password again, or nothing starts.
    with_password(&app, &token, "/v1/me/two-factor", "not it at all")
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(app.count("two_factor_secrets").await, 0);

    let setup = with_password(&app, &token, "/v1/me/two-factor", "password-guarded").await;
    assert_eq!(setup.status, 201, "{}", setup.text);
    let key = setup.json["secret"].as_str().unwrap_or_default().to_owned();
    assert_eq!(key.len(), 32, "160 bits: {key}");
    let url = setup.json["otpauth_url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with("otpauth://totp/Easel:guarded?") && url.contains(&format!("secret={key}")),
        "{url}"
    );
    // Not on until the app proves it has the key: the password still signs in alone.
    assert!(!two_factor_on(&app, &token).await);
    assert_eq!(login(&app, "guarded").await.status, 200);
    let wrong = app
        .call(
            Method::POST,
            "/v1/me/two-factor/confirmation",
            Some(&token),
            Some(json!({"code": "000000"})),
        )
        .await;
    wrong.assert_problem(422, "validation_failed");
    assert_eq!(wrong.json["errors"][0]["field"], "code");
    assert!(!two_factor_on(&app, &token).await);

    let first = app_code(&key, 0);
    let confirmed = app
        .call(
            Method::POST,
            "/v1/me/two-factor/confirmation",
            Some(&token),
            Some(json!({"code": first})),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let codes: Vec<String> = confirmed.json["codes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(two_factor_on(&app, &token).await);
    assert_eq!(
        app.count("recovery_codes WHERE used_at IS NULL").await,
        10,
        "only their hashes"
    );
    for code in &codes {
        let plain = code.replace('-', "");
        assert_eq!(
            app.count(&format!(
                "recovery_codes WHERE code_hash = sha256('{plain}'::bytea)"
            ))
            .await,
            1
        );
    }

    // The password now answers a challenge, and no session is made yet.
    let sessions = app.count("sessions").await;
    let step = login(&app, "guarded").await;
    assert_eq!(step.status, 202, "{}", step.text);
    assert!(step.json.get("access_token").is_none());
    assert_eq!(app.count("sessions").await, sessions);
    let challenge = step.json["challenge"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The code that turned it on was used: it does not sign in.
    second_step(&app, &challenge, &first)
        .await
        .assert_problem(422, "validation_failed");
    // A challenge altered, or another account's, is not ours.
    let forged = challenge.replacen(|c: char| c.is_ascii_digit(), "9", 1);
    if forged != challenge {
        second_step(&app, &forged, &app_code(&key, 1))
            .await
            .assert_problem(401, "invalid_token");
    }
    second_step(&app, "a.b.c", &app_code(&key, 1))
        .await
        .assert_problem(401, "invalid_token");
    // The app's next code signs in, once.
    let next = app_code(&key, 1);
    let signed_in = second_step(&app, &challenge, &next).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    assert!(signed_in.json["access_token"].as_str().is_some());
    assert_eq!(signed_in.json["user"]["two_factor"], true);
    assert!(
        signed_in
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("easel_refresh=")),
        "the web app's refresh cookie is set as at login"
    );
    assert_eq!(app.count("sessions").await, sessions + 1);
    // The devices list tells the sessions that signed in with two steps from the others.
    let devices = app
        .call(
            Method::GET,
            "/v1/me/sessions",
            signed_in.json["access_token"].as_str(),
            None,
        )
        .await;
    let steps: Vec<(bool, bool)> = devices.json["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|d| (d["current"] == true, d["second_factor"] == true))
        .collect();
    assert!(steps.contains(&(true, true)), "{}", devices.text);
    assert!(steps.contains(&(false, false)), "{}", devices.text);
    second_step(&app, &challenge, &next)
        .await
        .assert_problem(422, "validation_failed");

    // A recovery code, typed loosely, works once.
    let loose = format!("  {} ", codes[0].to_uppercase());
    let recovered = second_step(&app, &challenge, &loose).await;
    assert_eq!(recovered.status, 200, "{}", recovered.text);
    second_step(&app, &challenge, &codes[0])
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(status(&app, &token).await, (true, 9));

    // New codes replace the old: an unused old one stops working.
    let renewed = with_password(
        &app,
        &token,
        "/v1/me/two-factor/recovery-codes",
        "password-guarded",
    )
    .await;
    assert_eq!(renewed.status, 201, "{}", renewed.text);
    assert_eq!(status(&app, &token).await, (true, 10));
    second_step(&app, &challenge, &codes[1])
        .await
        .assert_problem(422, "validation_failed");
    let fresh = renewed.json["codes"][0].as_str().unwrap_or_default();
    assert_eq!(second_step(&app, &challenge, fresh).await.status, 200);

    // The account's security events tell the steps apart.
    let events = app
        .call(Method::GET, "/v1/me/security-events", Some(&token), None)
        .await;
    let activities: Vec<String> = events.json["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["activity"].as_str().map(str::to_owned))
        .collect();
    for expected in [
        "two_factor_on",
        "signed_in",
        "signed_in_with_recovery_code",
        "recovery_codes_renewed",
    ] {
        assert!(activities.iter().any(|a| a == expected), "{activities:?}");
    }

    // Starting again while on would swap the key behind the person's back.
    with_password(&app, &token, "/v1/me/two-factor", "password-guarded")
        .await
        .assert_problem(409, "conflict");

    // Off, with the password: the key and codes go, the password alone signs in again, and an
    // open challenge is void.
    with_password(&app, &token, "/v1/me/two-factor/removal", "wrong password")
        .await
        .assert_problem(422, "validation_failed");
    assert!(two_factor_on(&app, &token).await);
    let removed = with_password(
        &app,
        &token,
        "/v1/me/two-factor/removal",
        "password-guarded",
    )
    .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert!(!two_factor_on(&app, &token).await);
    assert_eq!(status(&app, &token).await, (false, 0));
    assert_eq!(app.count("two_factor_secrets").await, 0);
    assert_eq!(app.count("recovery_codes").await, 0);
    assert_eq!(login(&app, "guarded").await.status, 200);
    second_step(&app, &challenge, &app_code(&key, 0))
        .await
        .assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn guessing_codes_stops_at_the_hourly_limit_and_keys_cannot_change_it() {
    let app = spawn().await;
    let token = signup(&app, "targeted").await;
    let (key, _) = turn_on(&app, &token, "targeted").await;
    let challenge = login(&app, "targeted").await.json["challenge"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let right = app_code(&key, 1);
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    // The confirmation counted one.
    for _ in 0..19 {
        second_step(&app, &challenge, wrong)
            .await
            .assert_problem(422, "validation_failed");
    }
    let limited = second_step(&app, &challenge, &right).await;
    limited.assert_problem(429, "rate_limited");
    assert!(limited.header("retry-after").is_some());

    // A program with a key cannot turn it off, nor on for another account.
    let key_reply = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&token),
            Some(json!({"name": "script", "scopes": ["read", "generate", "billing"]})),
        )
        .await;
    let api_key = key_reply.json["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for path in ["/v1/me/two-factor/removal", "/v1/me/two-factor"] {
        with_password(&app, &api_key, path, "password-targeted")
            .await
            .assert_problem(403, "insufficient_scope");
    }
    assert!(two_factor_on(&app, &token).await);
}

#[tokio::test]
async fn deleting_the_account_or_the_operator_takes_the_key_away() {
    let app = spawn().await;
    let token = signup(&app, "leaving").await;
    turn_on(&app, &token, "leaving").await;
    let deleted = app
        .call(
            Method::POST,
            "/v1/me/deletion",
            Some(&token),
            Some(json!({"password": "password-leaving"})),
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(app.count("two_factor_secrets").await, 0);
    assert_eq!(app.count("recovery_codes").await, 0);

    let token = signup(&app, "forgetful").await;
    turn_on(&app, &token, "forgetful").await;
    assert_eq!(login(&app, "forgetful").await.status, 202);
    let mut conn = app.db().await;
    easel::identity::service::reset_two_factor(&mut conn, "forgetful")
        .await
        .expect("reset");
    assert_eq!(login(&app, "forgetful").await.status, 200);
    assert!(!two_factor_on(&app, &token).await);
}

/// Each change to how an account signs in is mailed to its owner, so one they did not make is
/// noticed: the password changed, two-step sign-in on, a recovery code used, new codes, and off.
#[tokio::test]
async fn every_change_to_signing_in_is_mailed_to_the_owner() {
    let smtp = easel_tests::smtp::SmtpServer::start().await;
    let app = TestApp::spawn_with(&[
        ("EASEL_SMTP_URL", smtp.url().as_str()),
        ("EASEL_MAIL_FROM", "Easel <no-reply@easel.test>"),
        ("EASEL_PUBLIC_URL", "https://easel.test"),
        ("EASEL_RATE_LIMIT_AUTH_PER_MINUTE", "1000"),
        ("EASEL_RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE", "1000"),
    ])
    .await;
    let token = signup(&app, "noticed").await;
    let to = "<noticed@example.com>";

    let changed = app
        .call(
            Method::PUT,
            "/v1/me/password",
            Some(&token),
            Some(
                json!({"current_password": "password-noticed", "new_password": "password-noticed"}),
            ),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    let mail = smtp
        .wait_for_mail(to, "Your Easel password was changed", 0)
        .await;
    let text = mail.text();
    assert!(
        text.contains("Account: noticed") && text.contains("https://easel.test/forgot-password"),
        "{text}"
    );

    let (_, codes) = turn_on(&app, &token, "noticed").await;
    smtp.wait_for_mail(to, "Two-step sign-in is on", 0).await;
    let challenge = login(&app, "noticed").await.json["challenge"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(second_step(&app, &challenge, &codes[0]).await.status, 200);
    smtp.wait_for_mail(to, "A recovery code was used to sign in", 0)
        .await;
    let renewed = with_password(
        &app,
        &token,
        "/v1/me/two-factor/recovery-codes",
        "password-noticed",
    )
    .await;
    assert_eq!(renewed.status, 201);
    smtp.wait_for_mail(to, "New Easel recovery codes", 0).await;
    let off = with_password(
        &app,
        &token,
        "/v1/me/two-factor/removal",
        "password-noticed",
    )
    .await;
    assert_eq!(off.status, 204);
    smtp.wait_for_mail(to, "Two-step sign-in was turned off", 0)
        .await;
    // Turning off what was off changes nothing and tells nobody.
    let again = with_password(
        &app,
        &token,
        "/v1/me/two-factor/removal",
        "password-noticed",
    )
    .await;
    assert_eq!(again.status, 204);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let offs = smtp
        .mails()
        .iter()
        .filter(|m| m.header("subject").as_deref() == Some("Two-step sign-in was turned off"))
        .count();
    assert_eq!(offs, 1);
}

/// With `EASEL_SUPPORT_TWO_FACTOR=required`, support tools take an admin session signed in with
/// two steps: turning it on in a password-only session is not enough.
#[tokio::test]
async fn support_tools_can_require_a_session_signed_in_with_two_steps() {
    let app = TestApp::spawn_with(&[
        ("EASEL_SUPPORT_TWO_FACTOR", "required"),
        ("EASEL_RATE_LIMIT_AUTH_PER_MINUTE", "1000"),
        ("EASEL_RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE", "1000"),
    ])
    .await;
    let token = signup(&app, "support").await;
    app.execute("UPDATE users SET role = 'admin' WHERE username = 'support'")
        .await;
    let tools = async |token: &str| {
        app.call(Method::GET, "/v1/admin/generations", Some(token), None)
            .await
    };
    let refused = tools(&token).await;
    refused.assert_problem(403, "forbidden");
    assert!(
        refused.json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("two steps")),
        "{}",
        refused.text
    );
    let (key, _) = turn_on(&app, &token, "support").await;
    tools(&token).await.assert_problem(403, "forbidden");
    let challenge = login(&app, "support").await.json["challenge"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let signed_in = second_step(&app, &challenge, &app_code(&key, 1)).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    let two_steps = signed_in.json["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let allowed = tools(&two_steps).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    // Its refreshed tokens keep what the session proved.
    let refresh = signed_in.json["refresh_token"].as_str().unwrap_or_default();
    let refreshed = app
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let again = refreshed.json["access_token"].as_str().unwrap_or_default();
    assert_eq!(tools(again).await.status, 200);
}

/// Two sign-ins racing with the same code, or the same recovery code: one gets in, the other is
/// refused, because the code is used up under a lock.
#[tokio::test]
async fn one_code_sent_twice_at_once_signs_in_once() {
    let app = spawn().await;
    let token = signup(&app, "racer").await;
    let (key, codes) = turn_on(&app, &token, "racer").await;
    let challenge = async || {
        login(&app, "racer").await.json["challenge"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (one, two) = (challenge().await, challenge().await);
    for code in [app_code(&key, 1), codes[0].clone()] {
        let (a, b) = tokio::join!(
            second_step(&app, &one, &code),
            second_step(&app, &two, &code)
        );
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 422], "{} / {}", a.text, b.text);
    }
    // However two uses of one step interleave, the second finds it used: a compare-and-set.
    let me = app.call(Method::GET, "/v1/me", Some(&token), None).await;
    let user = easel::identity::UserId(
        uuid::Uuid::parse_str(me.json["id"].as_str().unwrap_or_default()).expect("id"),
    );
    let mut conn = app.db().await;
    let step = i64::MAX / 2;
    let first = easel::identity::store::use_two_factor_step(&mut conn, user, step).await;
    let again = easel::identity::store::use_two_factor_step(&mut conn, user, step).await;
    assert_eq!((first.ok(), again.ok()), (Some(true), Some(false)));
}

/// The two-step refusals change nothing: a confirmation with nothing set up, new codes with a
/// wrong password or with it off, and second steps with wrong codes (no session is made).
#[tokio::test]
async fn refused_two_step_requests_change_nothing() {
    let app = spawn().await;
    let token = signup(&app, "careful").await;
    let confirmed = app
        .call(
            Method::POST,
            "/v1/me/two-factor/confirmation",
            Some(&token),
            Some(json!({"code": "123456"})),
        )
        .await;
    confirmed.assert_problem(409, "conflict");
    with_password(
        &app,
        &token,
        "/v1/me/two-factor/recovery-codes",
        "password-careful",
    )
    .await
    .assert_problem(409, "conflict");
    assert_eq!(status(&app, &token).await, (false, 0));
    assert_eq!(app.count("two_factor_secrets").await, 0);
    assert_eq!(app.count("recovery_codes").await, 0);

    let (key, codes) = turn_on(&app, &token, "careful").await;
    let hashes =
        "SELECT string_agg(encode(code_hash, 'hex'), ',' ORDER BY code_hash) FROM recovery_codes";
    let before = app.text(hashes).await;
    with_password(
        &app,
        &token,
        "/v1/me/two-factor/recovery-codes",
        "not the password",
    )
    .await
    .assert_problem(422, "validation_failed");
    assert_eq!(app.text(hashes).await, before, "the codes are the same");
    assert_eq!(status(&app, &token).await, (true, 10));

    let sessions = app.count("sessions").await;
    let challenge = login(&app, "careful").await.json["challenge"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let right = app_code(&key, 1);
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    for code in [wrong, "zzzzz-zzzzz", "", "1234567"] {
        second_step(&app, &challenge, code)
            .await
            .assert_problem(422, "validation_failed");
    }
    assert_eq!(app.count("sessions").await, sessions, "no session made");
    assert_eq!(status(&app, &token).await, (true, 10), "no code used");
    assert!(second_step(&app, &challenge, &codes[0]).await.status == 200);
}
