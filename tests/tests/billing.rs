//! Billing against a fake Stripe that speaks Stripe's wire format and signs its events as Stripe
//! does: every way of delivering or losing a webhook ends with credits equal to paid minus refunded.

use easel_tests::stripe::FakeStripe;
use easel_tests::{Reply, TestApp, Value, json};
use reqwest::Method;

struct Buyer {
    token: String,
    id: String,
}

async fn buyer(app: &TestApp, name: &str) -> Buyer {
    let signed_up = app.signup(name).await;
    Buyer {
        token: signed_up["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        id: signed_up["user"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

async fn balance(app: &TestApp, who: &Buyer) -> Value {
    app.call(Method::GET, "/v1/credits", Some(&who.token), None)
        .await
        .json
}

async fn purchased(app: &TestApp, who: &Buyer) -> i64 {
    balance(app, who).await["purchased"]
        .as_i64()
        .unwrap_or(i64::MIN)
}

/// Starts a checkout; returns the purchase id and the Stripe session id.
async fn checkout(
    app: &TestApp,
    stripe: &FakeStripe,
    who: &Buyer,
    package: &str,
) -> (String, String) {
    let reply = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&who.token),
            Some(json!({"package_id": package})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let purchase = reply.json["purchase_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let session = stripe
        .ledger()
        .sessions
        .iter()
        .find(|s| s["client_reference_id"] == json!(purchase))
        .and_then(|s| s["id"].as_str().map(str::to_owned))
        .expect("a session for the purchase");
    assert_eq!(
        reply.json["checkout_url"],
        format!("https://checkout.stripe.com/c/pay/{session}")
    );
    (purchase, session)
}

async fn deliver(app: &TestApp, stripe: &FakeStripe, payload: &str) -> Reply {
    let signature = FakeStripe::signature(
        &stripe.webhook_secret,
        chrono::Utc::now().timestamp(),
        payload,
    );
    deliver_signed(app, payload, &signature).await
}

async fn deliver_signed(app: &TestApp, payload: &str, signature: &str) -> Reply {
    app.send(
        app.request(Method::POST, "/webhooks/stripe")
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(payload.to_owned()),
    )
    .await
}

async fn spawn(stripe: &FakeStripe) -> TestApp {
    TestApp::spawn_with(&stripe.settings()).await
}

async fn purchase(app: &TestApp, who: &Buyer, id: &str) -> Value {
    let list = app
        .call(Method::GET, "/v1/billing/purchases", Some(&who.token), None)
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    list.json["data"]
        .as_array()
        .and_then(|d| d.iter().find(|p| p["id"] == json!(id)).cloned())
        .expect("purchase listed")
}

#[tokio::test]
async fn without_stripe_the_packages_say_so_and_checkout_refuses() {
    let app = TestApp::spawn().await;
    let packages = app
        .call(Method::GET, "/v1/billing/packages", None, None)
        .await;
    assert_eq!(packages.status, 200);
    assert_eq!(packages.json["payments_configured"], false);
    assert_eq!(packages.json["data"][0]["id"], "starter");
    assert!(
        packages.json["data"][0]["stripe_price_id"].is_null(),
        "internal"
    );
    let who = buyer(&app, "nostripe").await;
    let refused = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&who.token),
            Some(json!({"package_id": "starter"})),
        )
        .await;
    refused.assert_problem(503, "payments_not_configured");
    assert_eq!(app.count("purchases").await, 0);
    let bad = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&who.token),
            Some(json!({"package_id": "starter", "credits": 100000})),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    // Development payments exist only on development servers.
    let error = easel::Config::from_lookup(|k| match k {
        "EASEL_ENV" => Some("production".to_owned()),
        "EASEL_DEV_PAYMENTS" => Some("true".to_owned()),
        "EASEL_JWT_SECRET" => Some("x".repeat(40)),
        _ => None,
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(error.contains("EASEL_DEV_PAYMENTS"), "{error}");
}

#[tokio::test]
async fn a_paid_checkout_grants_once_however_often_its_event_arrives() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let who = buyer(&app, "payer").await;
    let before = purchased(&app, &who).await;
    let unknown = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&who.token),
            Some(json!({"package_id": "gold"})),
        )
        .await;
    unknown.assert_problem(422, "validation_failed");
    assert!(
        unknown.text.contains("starter"),
        "names the packages: {}",
        unknown.text
    );

    let (purchase_id, session) = checkout(&app, &stripe, &who, "creator").await;
    {
        let ledger = stripe.ledger();
        let (form, key) = ledger.creates.last().cloned().expect("a create");
        let get = |k: &str| {
            form.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("mode").as_deref(), Some("payment"));
        assert_eq!(
            get("client_reference_id").as_deref(),
            Some(purchase_id.as_str())
        );
        assert_eq!(
            get("metadata[purchase_id]").as_deref(),
            Some(purchase_id.as_str())
        );
        assert_eq!(
            get("line_items[0][price_data][unit_amount]").as_deref(),
            Some("2000")
        );
        assert!(get("success_url").is_some_and(|u| u.contains(&purchase_id)));
        assert_eq!(
            key,
            Some(format!("easel-checkout-{purchase_id}")),
            "an idempotency key derived from the purchase"
        );
    }
    assert_eq!(
        purchased(&app, &who).await,
        before,
        "nothing before Stripe says paid"
    );
    assert_eq!(
        purchase(&app, &who, &purchase_id).await["status"],
        "pending"
    );

    let completed = stripe.event(
        "checkout.session.completed",
        stripe.complete(&session, true),
    );
    let first = deliver(&app, &stripe, &completed).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["applied"], true);
    assert_eq!(purchased(&app, &who).await, before + 550);

    // Twenty more deliveries of the same event, ten at once.
    for _ in 0..10 {
        assert_eq!(
            deliver(&app, &stripe, &completed).await.json["applied"],
            false
        );
    }
    let at_once = (0..10).map(|_| deliver(&app, &stripe, &completed));
    for reply in futures_util::future::join_all(at_once).await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // Other events about the same paid session change nothing either.
    let late = stripe.event(
        "checkout.session.async_payment_succeeded",
        stripe.session(&session),
    );
    assert_eq!(deliver(&app, &stripe, &late).await.json["applied"], true);
    assert_eq!(purchased(&app, &who).await, before + 550);
    assert_eq!(app.count("credit_entries WHERE kind = 'purchase'").await, 1);
    let shown = purchase(&app, &who, &purchase_id).await;
    assert_eq!(
        (shown["status"].as_str(), shown["credits_granted"].as_i64()),
        (Some("paid"), Some(550))
    );
    let unknown_type = stripe.event(
        "customer.created",
        json!({"id": "cus_123", "object": "customer"}),
    );
    let ignored = deliver(&app, &stripe, &unknown_type).await;
    assert_eq!(
        ignored.status, 200,
        "unknown events are acknowledged: {}",
        ignored.text
    );
    assert!(app.execute("SELECT 1").await <= 1);
    let verified = easel::credits::store::mismatches(&mut app.db().await)
        .await
        .expect("verify");
    assert!(verified.is_empty(), "the ledger verifies");
    let _ = who.id;
}

#[tokio::test]
async fn delayed_payments_wait_and_expired_checkouts_grant_nothing() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let who = buyer(&app, "waiter").await;
    let before = purchased(&app, &who).await;
    let (purchase_id, session) = checkout(&app, &stripe, &who, "starter").await;
    let unpaid = stripe.event(
        "checkout.session.completed",
        stripe.complete(&session, false),
    );
    assert_eq!(deliver(&app, &stripe, &unpaid).await.status, 200);
    assert_eq!(purchased(&app, &who).await, before);
    assert_eq!(
        purchase(&app, &who, &purchase_id).await["status"],
        "pending"
    );
    let mut paid = stripe.session(&session);
    paid["payment_status"] = json!("paid");
    let succeeded = stripe.event("checkout.session.async_payment_succeeded", paid);
    assert_eq!(deliver(&app, &stripe, &succeeded).await.status, 200);
    assert_eq!(purchased(&app, &who).await, before + 100);

    let (other, other_session) = checkout(&app, &stripe, &who, "starter").await;
    let mut expired = stripe.session(&other_session);
    expired["status"] = json!("expired");
    assert_eq!(
        deliver(
            &app,
            &stripe,
            &stripe.event("checkout.session.expired", expired)
        )
        .await
        .status,
        200
    );
    assert_eq!(purchase(&app, &who, &other).await["status"], "expired");

    let (failed, failed_session) = checkout(&app, &stripe, &who, "starter").await;
    let failure = stripe.event(
        "checkout.session.async_payment_failed",
        stripe.complete(&failed_session, false),
    );
    assert_eq!(deliver(&app, &stripe, &failure).await.status, 200);
    assert_eq!(purchase(&app, &who, &failed).await["status"], "failed");
    assert_eq!(purchased(&app, &who).await, before + 100);
}

#[tokio::test]
async fn forged_stale_and_malformed_deliveries_are_refused_and_change_nothing() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let who = buyer(&app, "target").await;
    let before = purchased(&app, &who).await;
    let (_, session) = checkout(&app, &stripe, &who, "studio").await;
    let completed = stripe.event(
        "checkout.session.completed",
        stripe.complete(&session, true),
    );
    let now = chrono::Utc::now().timestamp();
    let forged = FakeStripe::signature("whsec_not_the_real_secret", now, &completed);
    deliver_signed(&app, &completed, &forged)
        .await
        .assert_problem(400, "invalid_stripe_signature");
    let stale = FakeStripe::signature(&stripe.webhook_secret, now - 600, &completed);
    deliver_signed(&app, &completed, &stale)
        .await
        .assert_problem(400, "invalid_stripe_signature");
    let tampered = completed.replace("\"paid\"", "\"paid\" ");
    let signed_original = FakeStripe::signature(&stripe.webhook_secret, now, &completed);
    deliver_signed(&app, &tampered, &signed_original)
        .await
        .assert_problem(400, "invalid_stripe_signature");
    let no_header = app
        .send(
            app.request(Method::POST, "/webhooks/stripe")
                .header("content-type", "application/json")
                .body(completed.clone()),
        )
        .await;
    no_header.assert_problem(400, "invalid_stripe_signature");
    let malformed = "{\"id\": \"evt_1\", \"type\": ";
    deliver(&app, &stripe, malformed)
        .await
        .assert_problem(400, "bad_request");
    assert_eq!(app.count("stripe_events").await, 0);
    assert_eq!(purchased(&app, &who).await, before);
}

#[tokio::test]
async fn a_failed_apply_answers_5xx_and_stripes_retry_applies_it() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let who = buyer(&app, "crashy").await;
    let before = purchased(&app, &who).await;
    let (_, session) = checkout(&app, &stripe, &who, "starter").await;
    let completed = stripe.event(
        "checkout.session.completed",
        stripe.complete(&session, true),
    );
    // The database refuses the grant mid-transaction, as a crash between receiving and applying would.
    app.execute("CREATE FUNCTION fail_purchases() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'simulated crash'; END $$").await;
    app.execute("CREATE TRIGGER fail_purchases BEFORE INSERT ON credit_entries FOR EACH ROW WHEN (NEW.kind = 'purchase') EXECUTE FUNCTION fail_purchases()").await;
    let failed = deliver(&app, &stripe, &completed).await;
    assert_eq!(failed.status, 500, "{}", failed.text);
    assert_eq!(
        app.count("stripe_events").await,
        0,
        "the event id rolled back with its effect"
    );
    assert_eq!(purchased(&app, &who).await, before);
    app.execute("DROP TRIGGER fail_purchases ON credit_entries")
        .await;
    let retried = deliver(&app, &stripe, &completed).await;
    assert_eq!(
        (retried.status, retried.json["applied"].as_bool()),
        (200, Some(true))
    );
    assert_eq!(purchased(&app, &who).await, before + 100);
}

#[tokio::test]
async fn refunds_and_disputes_take_credits_back_in_any_order() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let who = buyer(&app, "refunded").await;
    let before = purchased(&app, &who).await;

    // The refund's event arrives before the checkout's completion.
    let (first, session) = checkout(&app, &stripe, &who, "starter").await;
    let paid = stripe.complete(&session, true);
    let refund = stripe.event("charge.refunded", stripe.charge(&paid, 500));
    assert_eq!(deliver(&app, &stripe, &refund).await.status, 200);
    assert_eq!(
        deliver(
            &app,
            &stripe,
            &stripe.event("checkout.session.completed", paid)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        purchased(&app, &who).await,
        before,
        "paid minus refunded: nothing"
    );
    let shown = purchase(&app, &who, &first).await;
    assert_eq!(
        (
            shown["credits_granted"].as_i64(),
            shown["credits_clawed_back"].as_i64()
        ),
        (Some(100), Some(100))
    );

    // Half refunded, then the rest, each event more than once: the share follows the total.
    let (_, session) = checkout(&app, &stripe, &who, "creator").await;
    let paid = stripe.complete(&session, true);
    deliver(
        &app,
        &stripe,
        &stripe.event("checkout.session.completed", paid.clone()),
    )
    .await;
    assert_eq!(purchased(&app, &who).await, before + 550);
    let half = stripe.event("charge.refunded", stripe.charge(&paid, 1000));
    for _ in 0..3 {
        deliver(&app, &stripe, &half).await;
    }
    assert_eq!(purchased(&app, &who).await, before + 275);
    // An older partial-refund event delivered late changes nothing.
    deliver(
        &app,
        &stripe,
        &stripe.event("charge.refunded", stripe.charge(&paid, 400)),
    )
    .await;
    assert_eq!(purchased(&app, &who).await, before + 275);

    // A dispute takes back everything that is left.
    deliver(
        &app,
        &stripe,
        &stripe.event("charge.dispute.created", stripe.dispute(&paid)),
    )
    .await;
    assert_eq!(purchased(&app, &who).await, before);
    let verified = easel::credits::store::mismatches(&mut app.db().await)
        .await
        .expect("verify");
    assert!(verified.is_empty());
}

#[tokio::test]
async fn a_refund_after_spending_leaves_the_account_owing_and_unable_to_spend() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let who = buyer(&app, "spender").await;
    let (_, session) = checkout(&app, &stripe, &who, "starter").await;
    let paid = stripe.complete(&session, true);
    deliver(
        &app,
        &stripe,
        &stripe.event("checkout.session.completed", paid.clone()),
    )
    .await;
    let total = balance(&app, &who).await["total"].as_i64().unwrap_or(0);
    // Spend all but 5 through an admin deduction (the same spend path as a generation).
    app.execute(&format!(
        "UPDATE users SET role = 'admin' WHERE id = '{}'",
        who.id
    ))
    .await;
    let spent = app
        .call(
            Method::POST,
            &format!("/v1/admin/users/{}/credits", who.id),
            Some(&who.token),
            Some(json!({"amount": -(total - 5), "reason": "spent on images"})),
        )
        .await;
    assert_eq!(spent.status, 201, "{}", spent.text);
    deliver(
        &app,
        &stripe,
        &stripe.event("charge.refunded", stripe.charge(&paid, 500)),
    )
    .await;
    let after = balance(&app, &who).await;
    assert_eq!(after["owing"], true, "{after}");
    assert_eq!(after["purchased"], -95);
    let refused = app
        .call(
            Method::POST,
            "/v1/generations",
            Some(&who.token),
            Some(json!({"prompt": "one more", "model": "easel-sketch"})),
        )
        .await;
    refused.assert_problem(402, "credits_owed");
    assert_eq!(app.count("generations").await, 0);
}

#[tokio::test]
async fn reconcile_repairs_a_paid_session_whose_webhook_never_came() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let who = buyer(&app, "lostwebhook").await;
    let before = purchased(&app, &who).await;
    let (lost, session) = checkout(&app, &stripe, &who, "creator").await;
    let (_, unpaid) = checkout(&app, &stripe, &who, "starter").await;
    stripe.complete(&session, true);
    stripe.complete(&unpaid, false);
    let since = chrono::Utc::now() - chrono::Duration::days(1);
    easel::billing::service::reconcile(&app.shared.state, since)
        .await
        .expect("reconcile");
    assert_eq!(purchased(&app, &who).await, before + 550);
    assert_eq!(purchase(&app, &who, &lost).await["status"], "paid");
    // Running it again, or the webhook arriving after all, changes nothing.
    easel::billing::service::reconcile(&app.shared.state, since)
        .await
        .expect("reconcile again");
    deliver(
        &app,
        &stripe,
        &stripe.event("checkout.session.completed", stripe.session(&session)),
    )
    .await;
    assert_eq!(purchased(&app, &who).await, before + 550);
    assert_eq!(app.count("credit_entries WHERE kind = 'purchase'").await, 1);
}

#[tokio::test]
async fn development_payments_complete_through_the_same_grant() {
    let app = TestApp::spawn_with(&[
        ("EASEL_ENV", "development"),
        ("EASEL_DEV_PAYMENTS", "true"),
        (
            "EASEL_JWT_SECRET",
            "development-secret-for-tests-0123456789",
        ),
    ])
    .await;
    let packages = app
        .call(Method::GET, "/v1/billing/packages", None, None)
        .await;
    assert_eq!(
        (
            packages.json["payments_configured"].as_bool(),
            packages.json["dev_payments"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let who = buyer(&app, "developer").await;
    let before = purchased(&app, &who).await;
    let started = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&who.token),
            Some(json!({"package_id": "starter"})),
        )
        .await;
    assert_eq!(started.status, 201, "{}", started.text);
    let id = started.json["purchase_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let path = format!("/v1/billing/purchases/{id}/dev-complete");
    assert!(
        started.json["checkout_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&path))
    );
    let other = buyer(&app, "someoneelse").await;
    app.call(Method::POST, &path, Some(&other.token), None)
        .await
        .assert_problem(404, "not_found");
    for _ in 0..2 {
        let done = app.call(Method::POST, &path, Some(&who.token), None).await;
        assert_eq!(done.status, 200, "{}", done.text);
        assert_eq!(done.json["status"], "paid");
    }
    assert_eq!(purchased(&app, &who).await, before + 100);
}

#[tokio::test]
async fn a_purchase_before_any_other_credit_call_keeps_the_signup_bonus() {
    let app = TestApp::spawn_with(&[
        ("EASEL_ENV", "development"),
        ("EASEL_DEV_PAYMENTS", "true"),
        (
            "EASEL_JWT_SECRET",
            "development-secret-for-tests-0123456789",
        ),
        ("EASEL_SIGNUP_BONUS_CREDITS", "20"),
    ])
    .await;
    let who = buyer(&app, "firstbuy").await;
    // The very first thing this account does with credits is buy some.
    let started = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&who.token),
            Some(json!({"package_id": "starter"})),
        )
        .await;
    let id = started.json["purchase_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let done = app
        .call(
            Method::POST,
            &format!("/v1/billing/purchases/{id}/dev-complete"),
            Some(&who.token),
            None,
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(
        purchased(&app, &who).await,
        120,
        "the purchase and the signup bonus"
    );
    assert_eq!(
        app.count("credit_entries WHERE kind = 'signup_bonus'")
            .await,
        1
    );
    assert_eq!(purchased(&app, &who).await, 120, "and the bonus only once");
}

#[tokio::test]
async fn development_payments_never_complete_a_real_stripe_checkout() {
    let stripe = FakeStripe::start().await;
    let mut settings = stripe.settings();
    settings.extend([
        ("EASEL_ENV", "development".to_owned()),
        ("EASEL_DEV_PAYMENTS", "true".to_owned()),
        (
            "EASEL_JWT_SECRET",
            "development-secret-for-tests-0123456789".to_owned(),
        ),
    ]);
    let app = TestApp::spawn_with(&settings).await;
    let who = buyer(&app, "sneaky").await;
    let before = purchased(&app, &who).await;
    let (purchase_id, _) = checkout(&app, &stripe, &who, "studio").await;
    app.call(
        Method::POST,
        &format!("/v1/billing/purchases/{purchase_id}/dev-complete"),
        Some(&who.token),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    assert_eq!(purchased(&app, &who).await, before);
    assert_eq!(
        purchase(&app, &who, &purchase_id).await["status"],
        "pending"
    );
}

/// A payment that completes after its buyer deleted the account (a delayed payment method, or a
/// checkout left open) is refunded through Stripe, once; the refund's event takes the credits back
/// as for any refund. One paid before the deletion is not: the person was told its credits go.
#[tokio::test]
async fn a_payment_completed_after_the_account_was_deleted_is_refunded() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let delete = async |who: &Buyer, name: &str| {
        let deleted = app
            .call(
                Method::POST,
                "/v1/me/deletion",
                Some(&who.token),
                Some(json!({"password": format!("password-{name}")})),
            )
            .await;
        assert_eq!(deleted.status, 204, "{}", deleted.text);
    };

    // Paid, then deleted: kept as the person was warned.
    let earlier = buyer(&app, "earlier").await;
    let (_, session) = checkout(&app, &stripe, &earlier, "starter").await;
    let paid_first = stripe.complete(&session, true);
    let completed = stripe.event("checkout.session.completed", paid_first);
    assert_eq!(deliver(&app, &stripe, &completed).await.status, 200);
    delete(&earlier, "earlier").await;

    // Deleted, then paid: refunded.
    let gone = buyer(&app, "gone").await;
    let (purchase, session) = checkout(&app, &stripe, &gone, "starter").await;
    delete(&gone, "gone").await;
    let paid = stripe.complete(&session, true);
    let completed = stripe.event("checkout.session.completed", paid.clone());
    assert_eq!(deliver(&app, &stripe, &completed).await.status, 200);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while app
        .count("purchases WHERE refund_requested_at IS NOT NULL")
        .await
        == 0
    {
        assert!(std::time::Instant::now() < until, "no refund was asked for");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A few more watchdog rounds: asked once, and only for that payment.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    {
        let ledger = stripe.ledger();
        assert_eq!(ledger.refund_calls.len(), 1, "asked once");
        assert_eq!(
            ledger.refund_calls[0].1.as_deref(),
            Some(format!("easel-refund-{purchase}").as_str())
        );
        let refund = &ledger.refunds[0];
        assert_eq!(refund["payment_intent"], paid["payment_intent"]);
        assert_eq!(refund["amount"], paid["amount_total"]);
        assert_eq!(refund["reason"], "requested_by_customer");
        assert_eq!(refund["metadata"]["purchase_id"], purchase.as_str());
    }

    // Stripe's word of the refund takes the credits back from the closed account.
    let refunded = stripe.event(
        "charge.refunded",
        stripe.charge(&paid, paid["amount_total"].as_i64().unwrap_or_default()),
    );
    assert_eq!(deliver(&app, &stripe, &refunded).await.status, 200);
    assert_eq!(
        app.count(&format!(
            "purchases WHERE id = '{purchase}' AND credits_granted = credits \
             AND credits_clawed_back = credits AND refunded_cents = amount_cents"
        ))
        .await,
        1
    );
    let verified = easel::credits::store::mismatches(&mut app.db().await)
        .await
        .expect("verify");
    assert!(verified.is_empty(), "{verified:?}");
}

/// While Stripe fails to refund, nothing is recorded as asked, the purchase stays due, and Stripe
/// is not asked again at every watchdog round (the next try waits a minute).
#[tokio::test]
async fn a_refund_stripe_refuses_stays_due_and_is_not_hammered() {
    let stripe = FakeStripe::start().await;
    stripe.ledger().refunds_fail = true;
    let app = spawn(&stripe).await;
    let gone = buyer(&app, "unrefunded").await;
    let (purchase, session) = checkout(&app, &stripe, &gone, "starter").await;
    let deleted = app
        .call(
            Method::POST,
            "/v1/me/deletion",
            Some(&gone.token),
            Some(json!({"password": "password-unrefunded"})),
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let paid = stripe.complete(&session, true);
    let completed = stripe.event("checkout.session.completed", paid);
    assert_eq!(deliver(&app, &stripe, &completed).await.status, 200);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while stripe.ledger().refund_calls.is_empty() {
        assert!(std::time::Instant::now() < until, "no refund was tried");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Several watchdog rounds (one a second here).
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    assert_eq!(
        stripe.ledger().refund_calls.len(),
        1,
        "tried once, then waits"
    );
    assert!(stripe.ledger().refunds.is_empty());
    assert_eq!(
        app.count(&format!(
            "purchases WHERE id = '{purchase}' AND refund_due AND refund_requested_at IS NULL"
        ))
        .await,
        1,
        "still due, not recorded as asked"
    );
}
