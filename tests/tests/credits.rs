//! The credit ledger: exactly-once under concurrency, buckets and the daily grant, admin
//! adjustments with idempotency, and the ledger always equal to the balances.

use chrono::NaiveDate;
use easel::config::CreditsConfig;
use easel::credits::{self, Cause, EntryKind, store};
use easel::identity::UserId;
use easel_tests::{TestApp, json};
use reqwest::Method;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

async fn user_id(app: &TestApp, name: &str) -> (UserId, String) {
    let signed = app.signup(name).await;
    let id = signed["user"]["id"]
        .as_str()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .expect("user id");
    (
        UserId(id),
        signed["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn assert_ledger_matches(app: &TestApp) {
    let mut conn = app.db().await;
    let mismatches = store::mismatches(&mut conn).await.expect("verify");
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

#[tokio::test]
async fn sixty_four_concurrent_reservations_against_forty_credits() {
    let app = TestApp::spawn().await;
    let (user, _) = user_id(&app, "hot").await;
    let config = CreditsConfig {
        daily_free: 15,
        signup_bonus: 25,
    };
    let pool = easel::db::pool(&app.database_url, 32).expect("pool");
    {
        let mut conn = pool.get().await.expect("conn");
        credits::touch(&mut conn, user, &config, day("2026-11-24"))
            .await
            .expect("touch");
    }
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.expect("conn");
                credits::reserve(&mut conn, user, 1, &Cause::generation(uuid::Uuid::now_v7()))
                    .await
                    .map_err(|e| (i, e.code))
            })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => succeeded += 1,
            Err((_, code)) => assert_eq!(code, easel::ErrorCode::InsufficientCredits),
        }
    }
    assert_eq!(succeeded, 40);
    let mut conn = app.db().await;
    let balance = store::balance(&mut conn, user)
        .await
        .expect("balance")
        .expect("row");
    assert_eq!((balance.free, balance.purchased), (0, 0));
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        40
    );
    // free credits went first: 15 reservations took free, 25 took purchased
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation' AND free_delta = -1")
            .await,
        15
    );
    assert_ledger_matches(&app).await;
}

#[tokio::test]
async fn a_refund_called_twice_at_once_is_made_once() {
    let app = TestApp::spawn().await;
    let (user, _) = user_id(&app, "refundee").await;
    let config = CreditsConfig {
        daily_free: 3,
        signup_bonus: 10,
    };
    let pool = easel::db::pool(&app.database_url, 4).expect("pool");
    let mut conn = pool.get().await.expect("conn");
    credits::touch(&mut conn, user, &config, day("2026-11-24"))
        .await
        .expect("touch");
    let reservation =
        credits::reserve(&mut conn, user, 5, &Cause::generation(uuid::Uuid::now_v7()))
            .await
            .expect("reserve");
    assert_eq!(
        (reservation.free_delta, reservation.purchased_delta),
        (-3, -2)
    );
    drop(conn);
    let refund = |pool: easel::db::Pool| async move {
        let mut conn = pool.get().await.expect("conn");
        credits::refund(&mut conn, reservation.id)
            .await
            .expect("refund")
    };
    let (a, b) = tokio::join!(
        tokio::spawn(refund(pool.clone())),
        tokio::spawn(refund(pool.clone()))
    );
    let made = [a.expect("task"), b.expect("task")]
        .into_iter()
        .flatten()
        .count();
    assert_eq!(made, 1);
    assert_eq!(app.count("credit_entries WHERE kind = 'refund'").await, 1);
    let mut conn = pool.get().await.expect("conn");
    assert!(
        credits::refund(&mut conn, reservation.id)
            .await
            .expect("third")
            .is_none()
    );
    let balance = store::balance(&mut conn, user)
        .await
        .expect("balance")
        .expect("row");
    assert_eq!(
        (balance.free, balance.purchased),
        (3, 10),
        "back to the buckets they came from"
    );
    // the refund names its reservation and generation
    assert_eq!(
        app.count(&format!("credit_entries WHERE kind = 'refund' AND refund_of = '{}' AND generation_id IS NOT NULL", reservation.id))
            .await,
        1
    );
    assert_ledger_matches(&app).await;
}

#[tokio::test]
async fn the_daily_grant_is_made_once_and_does_not_accumulate() {
    let app = TestApp::spawn().await;
    let (user, _) = user_id(&app, "daily").await;
    let config = CreditsConfig {
        daily_free: 10,
        signup_bonus: 0,
    };
    let pool = easel::db::pool(&app.database_url, 16).expect("pool");
    let first_calls: Vec<_> = (0..16)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.expect("conn");
                credits::touch(&mut conn, user, &config, day("2026-11-24"))
                    .await
                    .expect("touch");
            })
        })
        .collect();
    for call in first_calls {
        call.await.expect("task");
    }
    assert_eq!(
        app.count("credit_entries WHERE kind = 'daily_grant'").await,
        1
    );
    let mut conn = pool.get().await.expect("conn");
    credits::reserve(&mut conn, user, 4, &Cause::default())
        .await
        .expect("spend 4");

    // the next UTC day: the 6 left over expire, 10 new arrive
    credits::touch(&mut conn, user, &config, day("2026-11-25"))
        .await
        .expect("next day");
    credits::touch(&mut conn, user, &config, day("2026-11-25"))
        .await
        .expect("again");
    let balance = store::balance(&mut conn, user)
        .await
        .expect("balance")
        .expect("row");
    assert_eq!(balance.free, 10);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'daily_grant'").await,
        2
    );
    assert_eq!(
        app.count("credit_entries WHERE kind = 'daily_expiry' AND free_delta = -6 AND grant_day = '2026-11-25'").await,
        1
    );
    // a clock that goes back grants nothing
    credits::touch(&mut conn, user, &config, day("2026-11-24"))
        .await
        .expect("back");
    assert_eq!(
        app.count("credit_entries WHERE kind = 'daily_grant'").await,
        2
    );
    assert_ledger_matches(&app).await;
}

#[tokio::test]
async fn a_claw_back_can_leave_an_account_owing_and_unable_to_spend() {
    let app = TestApp::spawn().await;
    let (user, token) = user_id(&app, "owing").await;
    let config = CreditsConfig {
        daily_free: 0,
        signup_bonus: 0,
    };
    let mut conn = app.db().await;
    credits::touch(&mut conn, user, &config, day("2026-11-24"))
        .await
        .expect("touch");
    let purchase = uuid::Uuid::now_v7();
    // Purchased credits belong to a purchase (billing makes these; here it is made by hand).
    app.execute(&format!(
        "INSERT INTO purchases (id, user_id, package_id, credits, amount_cents, currency, status) \
         VALUES ('{purchase}', '{user}', 'starter', 10, 500, 'usd', 'paid')"
    ))
    .await;
    credits::grant(
        &mut conn,
        user,
        10,
        EntryKind::Purchase,
        &Cause::purchase(purchase),
    )
    .await
    .expect("grant");
    credits::reserve(&mut conn, user, 8, &Cause::default())
        .await
        .expect("spend");
    credits::claw_back(&mut conn, user, 10, &Cause::purchase(purchase))
        .await
        .expect("claw back");
    let balance = store::balance(&mut conn, user)
        .await
        .expect("balance")
        .expect("row");
    assert_eq!(balance.purchased, -8);
    let refused = credits::reserve(&mut conn, user, 1, &Cause::default()).await;
    assert_eq!(
        refused.err().map(|e| e.code),
        Some(easel::ErrorCode::CreditsOwed)
    );

    let shown = app
        .call(Method::GET, "/v1/credits", Some(&token), None)
        .await;
    assert_eq!(shown.json["owing"], true, "{}", shown.text);
    assert_eq!(shown.json["total"], 0);
    assert_eq!(shown.json["purchased"], -8);

    for bad in [0, -5] {
        let err =
            credits::grant(&mut conn, user, bad, EntryKind::Purchase, &Cause::default()).await;
        assert!(err.is_err(), "grant {bad}");
        assert!(
            credits::claw_back(&mut conn, user, bad, &Cause::default())
                .await
                .is_err()
        );
    }
    assert_ledger_matches(&app).await;
}

#[tokio::test]
async fn a_new_account_sees_its_buckets_and_history() {
    let app = TestApp::spawn().await;
    let (_, token) = user_id(&app, "newbie").await;
    let credits = app
        .call(Method::GET, "/v1/credits", Some(&token), None)
        .await;
    assert_eq!(credits.status, 200, "{}", credits.text);
    assert_eq!(credits.json["free"], 10);
    assert_eq!(credits.json["purchased"], 20);
    assert_eq!(credits.json["total"], 30);
    assert_eq!(credits.json["daily_grant"], 10);
    let next = credits.json["next_daily_grant_at"]
        .as_str()
        .unwrap_or_default();
    assert!(next.ends_with("T00:00:00Z"), "{next}");

    let page = app
        .call(
            Method::GET,
            "/v1/credits/transactions?limit=1",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.json["data"][0]["kind"], "daily_grant");
    assert_eq!(page.json["has_more"], true);
    let cursor = page.json["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let next = app
        .call(
            Method::GET,
            &format!("/v1/credits/transactions?limit=1&cursor={cursor}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(next.json["data"][0]["kind"], "signup_bonus");
    assert_eq!(next.json["data"][0]["purchased_after"], 20);
    assert_eq!(next.json["has_more"], false);
    assert!(next.json["next_cursor"].is_null());

    let filtered = app
        .call(
            Method::GET,
            "/v1/credits/transactions?kind=signup_bonus",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(filtered.json["data"].as_array().map(Vec::len), Some(1));
    // a cursor of the unfiltered list does not work on the filtered one
    app.call(
        Method::GET,
        &format!("/v1/credits/transactions?kind=refund&cursor={cursor}"),
        Some(&token),
        None,
    )
    .await
    .assert_problem(400, "invalid_cursor");
    app.call(
        Method::GET,
        "/v1/credits/transactions?kind=bogus",
        Some(&token),
        None,
    )
    .await
    .assert_problem(422, "validation_failed");
    app.call(
        Method::GET,
        "/v1/credits/transactions?cursor=AAAAAAAA",
        Some(&token),
        None,
    )
    .await
    .assert_problem(400, "invalid_cursor");
    app.call(Method::GET, "/v1/credits", None, None)
        .await
        .assert_problem(401, "unauthorized");
}

async fn admin(app: &TestApp) -> String {
    let (_, token) = user_id(app, "boss").await;
    app.execute("UPDATE users SET role = 'admin' WHERE username = 'boss'")
        .await;
    token
}

#[tokio::test]
async fn admins_grant_and_deduct_with_a_reason_on_record() {
    let app = TestApp::spawn().await;
    let boss = admin(&app).await;
    let (user, token) = user_id(&app, "worker").await;
    let path = format!("/v1/admin/users/{user}/credits");
    let granted = app
        .call(
            Method::POST,
            &path,
            Some(&boss),
            Some(json!({"amount": 50, "reason": "outage"})),
        )
        .await;
    assert_eq!(granted.status, 201, "{}", granted.text);
    assert_eq!(granted.json["kind"], "admin_grant");
    assert_eq!(granted.json["reason"], "outage");
    assert_eq!(granted.json["purchased_after"], 70);
    let deducted = app
        .call(
            Method::POST,
            &path,
            Some(&boss),
            Some(json!({"amount": -15, "reason": "abuse"})),
        )
        .await;
    assert_eq!(deducted.status, 201, "{}", deducted.text);
    assert_eq!(deducted.json["kind"], "admin_deduct");
    assert_eq!(deducted.json["free_delta"], -10, "free first");
    assert_eq!(deducted.json["purchased_delta"], -5);
    assert_eq!(
        app.count("credit_entries WHERE admin_id IS NOT NULL AND reason IS NOT NULL")
            .await,
        2
    );
    let credits = app
        .call(Method::GET, "/v1/credits", Some(&token), None)
        .await;
    assert_eq!(credits.json["total"], 65);
    assert_ledger_matches(&app).await;
}

#[tokio::test]
async fn bad_admin_adjustments_change_nothing() {
    let app = TestApp::spawn().await;
    let boss = admin(&app).await;
    let (user, token) = user_id(&app, "target").await;
    app.call(Method::GET, "/v1/credits", Some(&token), None)
        .await;
    let before = app.count("credit_entries").await;
    let path = format!("/v1/admin/users/{user}/credits");
    let cases = [
        (
            json!({"amount": 0, "reason": "zero"}),
            422,
            "validation_failed",
        ),
        (json!({"amount": 10}), 422, "validation_failed"),
        (
            json!({"amount": 10, "reason": "   "}),
            422,
            "validation_failed",
        ),
        (
            json!({"amount": 10, "reason": "x", "admin_id": "me"}),
            422,
            "validation_failed",
        ),
        (
            json!({"amount": "ten", "reason": "x"}),
            422,
            "validation_failed",
        ),
        (
            json!({"amount": -1000, "reason": "more than they have"}),
            402,
            "insufficient_credits",
        ),
    ];
    for (body, status, code) in cases {
        let reply = app
            .call(Method::POST, &path, Some(&boss), Some(body.clone()))
            .await;
        reply.assert_problem(status, code);
        if code == "insufficient_credits" {
            assert_eq!(reply.json["needed"], 1000);
            assert_eq!(reply.json["available"], 30);
        }
    }
    let nobody = format!("/v1/admin/users/{}/credits", uuid::Uuid::now_v7());
    app.call(
        Method::POST,
        &nobody,
        Some(&boss),
        Some(json!({"amount": 5, "reason": "x"})),
    )
    .await
    .assert_problem(404, "not_found");
    app.call(
        Method::POST,
        &path,
        Some(&token),
        Some(json!({"amount": 5, "reason": "self-service"})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.call(
        Method::POST,
        &path,
        None,
        Some(json!({"amount": 5, "reason": "anon"})),
    )
    .await
    .assert_problem(401, "unauthorized");
    assert_eq!(app.count("credit_entries").await, before);
    assert_eq!(app.count("users WHERE username = 'target'").await, 1);
    assert_ledger_matches(&app).await;
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_changed_bodies_and_run_once_under_concurrency() {
    let app = TestApp::spawn().await;
    let boss = admin(&app).await;
    let (user, _) = user_id(&app, "payee").await;
    let path = format!("/v1/admin/users/{user}/credits");
    let body = json!({"amount": 7, "reason": "goodwill"});
    let post = |key: &'static str, body: serde_json::Value| {
        app.send(
            app.request(Method::POST, &path)
                .bearer_auth(&boss)
                .header("idempotency-key", key)
                .json(&body),
        )
    };
    let first = post("key-1", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert!(first.header("idempotent-replayed").is_none());
    let again = post("key-1", body.clone()).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json, first.json, "the stored response, byte for byte");
    let changed = post("key-1", json!({"amount": 700, "reason": "goodwill"})).await;
    changed.assert_problem(422, "idempotency_conflict");
    assert_eq!(
        app.count("credit_entries WHERE kind = 'admin_grant'").await,
        1
    );

    let (a, b, c) = tokio::join!(
        post("key-2", body.clone()),
        post("key-2", body.clone()),
        post("key-2", body.clone())
    );
    for reply in [&a, &b, &c] {
        assert!(
            reply.status == 201
                || (reply.status == 409 && reply.json["code"] == "idempotency_in_progress"),
            "{}",
            reply.text
        );
    }
    assert_eq!(
        app.count("credit_entries WHERE kind = 'admin_grant'").await,
        2,
        "key-2 ran once"
    );

    let bad_key = app
        .send(
            app.request(Method::POST, &path)
                .bearer_auth(&boss)
                .header("idempotency-key", "")
                .json(&body),
        )
        .await;
    bad_key.assert_problem(422, "validation_failed");
    // keys are kept 24 hours, then purged
    app.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'key-1'",
    )
    .await;
    let mut conn = app.db().await;
    assert_eq!(
        easel::http::idempotency::purge_expired(&mut conn)
            .await
            .expect("purge"),
        1
    );
    assert_ledger_matches(&app).await;
}

#[tokio::test]
async fn the_ledger_is_append_only_and_verification_names_a_drifted_account() {
    let app = TestApp::spawn().await;
    let (user, token) = user_id(&app, "drift").await;
    app.call(Method::GET, "/v1/credits", Some(&token), None)
        .await;
    let mut conn = app.db().await;
    for statement in [
        "UPDATE credit_entries SET free_delta = 1000",
        "DELETE FROM credit_entries",
    ] {
        let refused =
            diesel_async::RunQueryDsl::execute(diesel::sql_query(statement), &mut conn).await;
        assert!(refused.is_err(), "{statement} must be refused");
    }
    assert_ledger_matches(&app).await;
    app.execute("UPDATE credit_balances SET purchased = purchased + 5")
        .await;
    let mismatches = store::mismatches(&mut conn).await.expect("verify");
    assert_eq!(mismatches.len(), 1);
    assert_eq!(mismatches[0].user_id, user.0);
    assert_eq!(mismatches[0].purchased - mismatches[0].ledger_purchased, 5);
}
