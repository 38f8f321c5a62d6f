//! Support's tools: every account's generations (find them by owner, state, model or error, see
//! how the job went, cancel one with a refund), and accounts (look one up, shut it, open it, change
//! its role). Admins only, signed in.

use crate::gallery::ids;
use crate::generations::{generate, signup, terminal, wait_until};
use crate::identity::login;
use easel_tests::{TestApp, json};
use reqwest::Method;

async fn admin_token(app: &TestApp) -> String {
    let token = signup(app, "boss").await;
    app.execute("UPDATE users SET role = 'admin' WHERE username = 'boss'")
        .await;
    token
}

async fn user_id(app: &TestApp, token: &str) -> String {
    let me = app.call(Method::GET, "/v1/me", Some(token), None).await;
    me.json["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn support_finds_any_generation_sees_its_job_and_cancels_it() {
    let app = TestApp::spawn().await;
    let boss = admin_token(&app).await;
    let ada = signup(&app, "ada").await;
    let bob = signup(&app, "bob").await;
    let mut made = Vec::new();
    for (token, prompt) in [(&ada, "fine"), (&ada, "broken [[fail]]")] {
        let reply = generate(
            &app,
            token,
            json!({"prompt": prompt, "model": "easel-sketch"}),
        )
        .await;
        let id = reply.json["id"].as_str().unwrap_or_default().to_owned();
        wait_until(&app, token, &id, terminal).await;
        made.push(id);
    }
    let bob_before = app
        .call(Method::GET, "/v1/credits", Some(&bob), None)
        .await
        .json["total"]
        .clone();
    let slow = generate(
        &app,
        &bob,
        json!({"prompt": "a long one [[slow]]", "model": "easel-sketch"}),
    )
    .await;
    let slow = slow.json["id"].as_str().unwrap_or_default().to_owned();
    wait_until(&app, &bob, &slow, |g| g["status"] == "processing").await;
    made.push(slow.clone());
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();

    let list = async |query: &str| {
        let reply = app
            .call(
                Method::GET,
                &format!("/v1/admin/generations{query}"),
                Some(&boss),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text);
        reply.json
    };
    let all = list("").await;
    assert_eq!(ids(&all), newest_first);
    // How each job went: the running one names its worker; the failed one its error.
    let running = &all["data"][0];
    assert_eq!(running["user_id"], user_id(&app, &bob).await.as_str());
    assert_eq!(running["attempts"], 1);
    assert!(
        running["worker"].as_str().is_some_and(|w| !w.is_empty()),
        "{running}"
    );
    assert!(running["deadline_at"].is_string());
    let failed = &all["data"][1];
    assert!(failed["worker"].is_null(), "{failed}");
    assert_eq!(failed["error"]["code"], "model_failed");

    // An account by its id, email or username; nobody's has none.
    let ada_id = user_id(&app, &ada).await;
    let adas = [made[1].clone(), made[0].clone()];
    for user in [ada_id.as_str(), "ada@example.com", "ada"] {
        assert_eq!(ids(&list(&format!("?user={user}")).await), adas, "{user}");
    }
    assert!(ids(&list("?user=nobody").await).is_empty());
    assert_eq!(all["data"][1]["username"], "ada");
    assert_eq!(ids(&list("?status=failed").await), [made[1].clone()]);
    assert_eq!(
        ids(&list("?error_code=model_failed").await),
        [made[1].clone()]
    );
    assert_eq!(
        ids(&list("?model=easel-sketch&status=succeeded").await),
        [made[0].clone()]
    );
    assert!(ids(&list("?model=easel-canvas-pro").await).is_empty());

    // Pages, and a cursor that belongs to its filter.
    let first = list("?limit=2").await;
    assert_eq!(ids(&first), newest_first[..2]);
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        ids(&list(&format!("?limit=2&cursor={cursor}")).await),
        newest_first[2..]
    );
    app.call(
        Method::GET,
        &format!("/v1/admin/generations?status=failed&cursor={cursor}"),
        Some(&boss),
        None,
    )
    .await
    .assert_problem(400, "invalid_cursor");
    app.call(
        Method::GET,
        "/v1/admin/generations?owner=x",
        Some(&boss),
        None,
    )
    .await
    .assert_problem(422, "validation_failed");

    // One, then canceled by support: refunded once, however often it is asked.
    let one = app
        .call(
            Method::GET,
            &format!("/v1/admin/generations/{slow}"),
            Some(&boss),
            None,
        )
        .await;
    assert_eq!(one.json["status"], "processing", "{}", one.text);
    for _ in 0..2 {
        let canceled = app
            .call(
                Method::POST,
                &format!("/v1/admin/generations/{slow}/cancel"),
                Some(&boss),
                None,
            )
            .await;
        assert_eq!(canceled.status, 200, "{}", canceled.text);
        assert_eq!(canceled.json["status"], "canceled");
        assert_eq!(canceled.json["error"]["message"], "canceled by support");
        assert_eq!(canceled.json["credits_refunded"], 1);
        assert!(canceled.json["worker"].is_null());
    }
    let bob_after = app
        .call(Method::GET, "/v1/credits", Some(&bob), None)
        .await
        .json["total"]
        .clone();
    assert_eq!(bob_after, bob_before);
    assert_eq!(
        app.count(&format!(
            "credit_entries e JOIN generations g ON g.reservation_id = e.refund_of WHERE g.id = '{slow}'"
        ))
        .await,
        1,
        "one refund"
    );
    let missing = uuid::Uuid::now_v7();
    app.call(
        Method::GET,
        &format!("/v1/admin/generations/{missing}"),
        Some(&boss),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    app.call(
        Method::POST,
        &format!("/v1/admin/generations/{missing}/cancel"),
        Some(&boss),
        None,
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test]
async fn only_a_signed_in_admin_uses_support_tools() {
    let app = TestApp::spawn().await;
    let boss = admin_token(&app).await;
    let ada = signup(&app, "ada").await;
    let reply = generate(
        &app,
        &ada,
        json!({"prompt": "mine", "model": "easel-sketch"}),
    )
    .await;
    let id = reply.json["id"].as_str().unwrap_or_default().to_owned();
    let key = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&boss),
            Some(json!({"name": "script", "scopes": ["read", "generate"]})),
        )
        .await;
    let key = key.json["key"].as_str().unwrap_or_default().to_owned();
    let paths = [
        (Method::GET, "/v1/admin/generations".to_owned()),
        (Method::GET, format!("/v1/admin/generations/{id}")),
        (Method::POST, format!("/v1/admin/generations/{id}/cancel")),
    ];
    for (method, path) in paths {
        app.call(method.clone(), &path, Some(&ada), None)
            .await
            .assert_problem(403, "forbidden");
        app.call(method.clone(), &path, Some(&key), None)
            .await
            .assert_problem(403, "insufficient_scope");
        app.call(method, &path, None, None)
            .await
            .assert_problem(401, "unauthorized");
    }
    // Nothing was canceled.
    assert_eq!(app.count("generations WHERE status = 'canceled'").await, 0);
}

/// Support looks an account up by id, email or username, shuts it (its sessions end and its API
/// keys stop working) and opens it again.
#[tokio::test]
async fn support_looks_up_an_account_shuts_it_and_opens_it_again() {
    let app = TestApp::spawn().await;
    let boss = admin_token(&app).await;
    let eve = signup(&app, "eve").await;
    let eve_id = user_id(&app, &eve).await;
    let key = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&eve),
            Some(json!({"name": "bot", "scopes": ["read"]})),
        )
        .await;
    let key = key.json["key"].as_str().unwrap_or_default().to_owned();
    // Credits are granted on first use: her balance shows the sign-up bonus from then on.
    app.call(Method::GET, "/v1/credits", Some(&eve), None).await;

    for by in [eve_id.as_str(), "eve@example.com", "eve"] {
        let found = app
            .call(
                Method::GET,
                &format!("/v1/admin/users/{by}"),
                Some(&boss),
                None,
            )
            .await;
        assert_eq!(found.status, 200, "{by}: {}", found.text);
        assert_eq!(found.json["id"], eve_id.as_str());
        assert_eq!(found.json["username"], "eve");
        assert_eq!(found.json["purchased_credits"], 20, "the sign-up bonus");
        assert_eq!(found.json["sessions"], 1);
        assert_eq!(found.json["external"], false);
        assert!(found.json["disabled_at"].is_null());
    }
    app.call(Method::GET, "/v1/admin/users/nobody", Some(&boss), None)
        .await
        .assert_problem(404, "not_found");
    // A name no account can have (PostgreSQL text holds no NUL) is nobody's, not a server error.
    app.call(Method::GET, "/v1/admin/users/%00eve", Some(&boss), None)
        .await
        .assert_problem(404, "not_found");
    let none = app
        .call(
            Method::GET,
            "/v1/admin/generations?user=%00S",
            Some(&boss),
            None,
        )
        .await;
    assert_eq!(none.status, 200, "{}", none.text);
    assert_eq!(none.json["data"], json!([]));
    // Not for users, nor API keys, nor anyone anonymous.
    app.call(Method::GET, "/v1/admin/users/eve", Some(&eve), None)
        .await
        .assert_problem(403, "forbidden");
    let path = format!("/v1/admin/users/{eve_id}");
    app.call(
        Method::PATCH,
        &path,
        Some(&eve),
        Some(json!({"disabled": true})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.call(Method::PATCH, &path, None, Some(json!({"disabled": true})))
        .await
        .assert_problem(401, "unauthorized");
    // Nor on one's own account.
    let boss_id = user_id(&app, &boss).await;
    app.call(
        Method::PATCH,
        &format!("/v1/admin/users/{boss_id}"),
        Some(&boss),
        Some(json!({"role": "user"})),
    )
    .await
    .assert_problem(409, "conflict");
    assert_eq!(app.count("users WHERE disabled_at IS NOT NULL").await, 0);

    let shut = app
        .call(
            Method::PATCH,
            &path,
            Some(&boss),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(shut.status, 200, "{}", shut.text);
    assert!(shut.json["disabled_at"].is_string(), "{}", shut.text);
    assert_eq!(shut.json["sessions"], 0);
    app.call(Method::GET, "/v1/me", Some(&eve), None)
        .await
        .assert_problem(401, "invalid_token");
    app.call(Method::GET, "/v1/me", Some(&key), None)
        .await
        .assert_problem(401, "account_disabled");
    login(&app, "eve", "password-eve")
        .await
        .assert_problem(401, "account_disabled");

    let opened = app
        .call(
            Method::PATCH,
            &path,
            Some(&boss),
            Some(json!({"disabled": false, "role": "admin"})),
        )
        .await;
    assert_eq!(opened.status, 200, "{}", opened.text);
    assert!(opened.json["disabled_at"].is_null());
    assert_eq!(opened.json["role"], "admin");
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&key), None)
            .await
            .status,
        200,
        "the key works again"
    );
    let signed_in = login(&app, "eve", "password-eve").await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    app.call(
        Method::PATCH,
        &path,
        Some(&boss),
        Some(json!({"banned": true})),
    )
    .await
    .assert_problem(422, "validation_failed");
}
