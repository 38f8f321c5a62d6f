//! The generation pipeline end to end: real jobs on the built-in renderer, real PNG files, and the
//! ledger agreeing with what happened.

use easel_tests::{Reply, TestApp, json};
use reqwest::Method;
use std::time::{Duration, Instant};

pub(crate) async fn signup(app: &TestApp, name: &str) -> String {
    app.signup(name).await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub(crate) async fn generate(app: &TestApp, token: &str, body: serde_json::Value) -> Reply {
    app.call(Method::POST, "/v1/generations", Some(token), Some(body))
        .await
}

/// `GET /v1/generations/{id}`, which must answer 200.
pub(crate) async fn read(app: &TestApp, token: &str, id: &str) -> Reply {
    let reply = app
        .call(
            Method::GET,
            &format!("/v1/generations/{id}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
}

/// Polls a generation until `done` holds (at most 20 s).
pub(crate) async fn wait_until(
    app: &TestApp,
    token: &str,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = read(app, token, id).await;
        if done(&reply.json) {
            return reply.json;
        }
        assert!(Instant::now() < until, "gave up waiting: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn terminal(g: &serde_json::Value) -> bool {
    matches!(
        g["status"].as_str(),
        Some("succeeded" | "failed" | "canceled")
    )
}

fn id_of(reply: &Reply) -> String {
    reply.json["id"].as_str().unwrap_or_default().to_owned()
}

/// The cap's counters (submitted less ended) agree with a count of every account's generations in
/// flight: every path that queued or ended a job in the test kept them.
async fn assert_in_flight_counted(app: &TestApp) {
    let drift = easel::generation::store::in_flight_drift(&mut app.db().await)
        .await
        .expect("count in flight");
    assert!(drift.is_empty(), "in-flight counters drifted: {drift:?}");
}

#[tokio::test]
async fn a_person_generates_an_image_and_fetches_it() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "painter").await;
    let models = app.call(Method::GET, "/v1/models", None, None).await;
    assert_eq!(models.status, 200);
    assert!(models.json["data"].as_array().is_some_and(|m| m.len() >= 2));
    assert!(
        models.json["data"][0]["provider_model"].is_null(),
        "provider details stay internal"
    );

    let syncs_before = app.shared.state.storage.syncs();
    let accepted = generate(&app, &token, json!({"prompt": "a lighthouse at dusk", "model": "easel-sketch", "aspect_ratio": "4:3", "seed": 42})).await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert_eq!(accepted.json["status"], "queued");
    assert_eq!(accepted.json["credits_charged"], 1);
    assert_eq!(accepted.json["visibility"], "private");
    let id = id_of(&accepted);
    assert_eq!(
        accepted.header("location"),
        Some(format!("/v1/generations/{id}").as_str())
    );

    let done = wait_until(&app, &token, &id, terminal).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["credits_refunded"], 0);
    assert!(done["error"].is_null());
    assert!(
        app.shared.state.storage.syncs() > syncs_before,
        "the image's files were synced to disk before it was recorded"
    );
    let image = &done["images"][0];
    assert_eq!(
        (image["width"].as_i64(), image["height"].as_i64()),
        (Some(640), Some(480))
    );

    let url = image["url"].as_str().unwrap_or_default();
    let file = app
        .client
        .get(app.url(url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("file");
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(
        file.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    let image_id = image["id"].as_str().unwrap_or_default();
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header(&file, "content-disposition"),
        Some(format!("inline; filename=\"easel-{image_id}.png\""))
    );
    assert_eq!(
        header(&file, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let bytes = file.bytes().await.expect("bytes");
    assert_eq!(&bytes[..4], b"\x89PNG");
    let thumb = app
        .client
        .get(app.url(image["thumb_url"].as_str().unwrap_or_default()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("thumb");
    assert_eq!(
        header(&thumb, "content-type").as_deref(),
        Some("image/webp")
    );
    assert_eq!(
        header(&thumb, "content-disposition"),
        Some(format!("inline; filename=\"easel-{image_id}-thumb.webp\""))
    );
    let thumb = thumb.bytes().await.expect("thumb bytes");
    assert_eq!(&thumb[8..16], b"WEBPVP8 ", "a lossy WebP");

    let ledger = app
        .call(
            Method::GET,
            "/v1/credits/transactions?kind=reservation",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(ledger.json["data"][0]["generation_id"], id.as_str());
    assert_eq!(app.count("images").await, 1);
    assert_in_flight_counted(&app).await;
}

/// An app whose waiting requests read their generation again only on word of a change (the
/// safety-net poll is an hour away), once it is hearing changes.
async fn spawn_hearing_changes(overrides: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![("EASEL_CHANGE_POLL_SECS", "3600")];
    settings.extend_from_slice(overrides);
    let app = TestApp::spawn_with(&settings).await;
    let until = Instant::now() + Duration::from_secs(20);
    while !app.shared.state.changes.heard() {
        assert!(Instant::now() < until, "the app never listened for changes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app
}

#[tokio::test]
async fn a_change_to_a_generation_wakes_only_its_waiters() {
    // No job runner: the updates below are the only changes.
    let app = spawn_hearing_changes(&[("EASEL_JOB_WORKERS", "0")]).await;
    let token = signup(&app, "listener").await;
    let mut ids = Vec::new();
    for prompt in ["one", "two"] {
        let accepted = generate(
            &app,
            &token,
            json!({"prompt": prompt, "model": "easel-sketch"}),
        )
        .await;
        assert_eq!(accepted.status, 202, "{}", accepted.text);
        ids.push(id_of(&accepted));
    }
    let id = |i: usize| {
        easel::generation::GenerationId(uuid::Uuid::parse_str(&ids[i]).expect("generation id"))
    };
    let changes = &app.shared.state.changes;
    let (mut first, mut second) = (changes.watch(id(0)), changes.watch(id(1)));
    let update_first = async |set: &str| {
        let sql = format!("UPDATE generations SET {set} WHERE id = '{}'", ids[0]);
        app.execute(&sql).await
    };
    update_first("progress = 42").await;
    // The safety-net poll is an hour away: only the notice can wake it.
    let heard = tokio::time::timeout(Duration::from_secs(20), first.next()).await;
    assert!(heard.is_ok(), "the change was not heard");
    let woken = tokio::time::timeout(Duration::from_millis(300), second.next()).await;
    assert!(woken.is_err(), "another generation's waiter woke");
    // Neither status nor progress: nothing to tell.
    update_first("heartbeat_at = now()").await;
    let woken = tokio::time::timeout(Duration::from_millis(300), first.next()).await;
    assert!(woken.is_err(), "woken without a change");
}

/// `GET /v1/generations/{id}/events`, left open to be read as it comes.
async fn open_events(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/v1/generations/{id}/events")))
        .bearer_auth(token)
        .send()
        .await
        .expect("events")
}

/// A worker that meets a busy provider hands the job straight back to the queue. Its stream says
/// "starting" only once a job stays taken up, so it does not flicker between the two.
#[tokio::test]
async fn a_job_handed_straight_back_does_not_leave_the_queue_in_its_stream() {
    // No job runner: the claims below are the only ones.
    let app = spawn_hearing_changes(&[("EASEL_JOB_WORKERS", "0")]).await;
    let token = signup(&app, "patient").await;
    let accepted = generate(
        &app,
        &token,
        json!({"prompt": "a queue", "model": "easel-sketch"}),
    )
    .await;
    let id = id_of(&accepted);
    let mut stream = open_events(&app, &token, &id).await;
    let first = stream
        .chunk()
        .await
        .expect("first event")
        .unwrap_or_default();
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.contains("id: queued:0:0"), "{first}");

    let generation = easel::generation::GenerationId(uuid::Uuid::parse_str(&id).expect("id"));
    let mut conn = app.db().await;
    for _ in 0..3 {
        let claimed = easel::generation::store::claim(&mut conn, "busy-worker", 1)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        // The provider's "no room" takes a moment to come back.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let released = easel::generation::store::release(
            &mut conn,
            &[generation],
            "busy-worker",
            chrono::Utc::now(),
        )
        .await
        .expect("release");
        assert_eq!(released.len(), 1);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    // Taken up for good: now it is said, then the end.
    easel::generation::store::claim(&mut conn, "worker", 1)
        .await
        .expect("claim");
    let until = Instant::now() + Duration::from_secs(10);
    let mut body = first;
    while !body.contains("id: starting:0") {
        assert!(Instant::now() < until, "starting was never said: {body}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event in time")
            .expect("chunk")
            .unwrap_or_default();
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let canceled = app
        .call(
            Method::POST,
            &format!("/v1/generations/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    let rest = tokio::time::timeout(Duration::from_secs(20), stream.text())
        .await
        .expect("stream ends")
        .expect("body");
    body.push_str(&rest);
    let said: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .collect();
    assert_eq!(said, ["queued:0:0", "starting:0", "canceled:0"], "{body}");
}

#[tokio::test]
async fn prefer_wait_returns_the_finished_generation() {
    // Only word of the change can end the wait before its 10 s are up.
    let app = spawn_hearing_changes(&[]).await;
    let token = signup(&app, "waiter").await;
    let reply = app
        .send(
            app.request(Method::POST, "/v1/generations")
                .bearer_auth(&token)
                .header("prefer", "wait=10")
                .json(&json!({"prompt": "a red fox", "model": "easel-sketch", "num_outputs": 2})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "succeeded");
    assert_eq!(reply.json["images"].as_array().map(Vec::len), Some(2));
    assert_eq!(reply.json["credits_charged"], 2);
    assert_eq!(
        reply.json["aspect_ratio"], "1:1",
        "square unless asked otherwise"
    );
}

#[tokio::test]
async fn a_failed_generation_is_refunded_once_and_says_why() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "unlucky").await;
    let before = app
        .call(Method::GET, "/v1/credits", Some(&token), None)
        .await
        .json["total"]
        .as_i64();
    let accepted = generate(
        &app,
        &token,
        json!({"prompt": "please [[fail]]", "model": "easel-sketch", "num_outputs": 3}),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let done = wait_until(&app, &token, &id_of(&accepted), terminal).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "model_failed");
    assert_eq!(done["error"]["retryable"], false);
    assert_eq!(done["credits_refunded"], 3);
    assert_eq!(done["images"], json!([]));
    let refunds = app
        .call(
            Method::GET,
            "/v1/credits/transactions?kind=refund",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(refunds.json["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(refunds.json["data"][0]["delta"], 3);
    let after = app
        .call(Method::GET, "/v1/credits", Some(&token), None)
        .await
        .json["total"]
        .as_i64();
    assert_eq!(before, after);
    assert_in_flight_counted(&app).await;
}

/// The transactions list is in the order entries were applied: each entry's balances follow from
/// the one before it. A day's first generation makes the day's grant before it reserves, so its
/// reservation comes after the grant, though its id was minted before it.
#[tokio::test]
async fn the_transaction_list_follows_the_running_balance() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "chain").await;
    let first = generate(
        &app,
        &token,
        json!({"prompt": "first light", "model": "easel-sketch"}),
    )
    .await;
    assert_eq!(first.status, 202, "{}", first.text);
    let failed = generate(
        &app,
        &token,
        json!({"prompt": "a broken kiln [[fail]]", "model": "easel-sketch"}),
    )
    .await;
    assert_eq!(failed.status, 202, "{}", failed.text);
    // Two at once: whichever takes the balance lock first is applied, and listed, first.
    let pair = futures_util::future::join_all((0..2).map(|n| {
        generate(
            &app,
            &token,
            json!({"prompt": format!("a pair {n}"), "model": "easel-sketch"}),
        )
    }))
    .await;
    let mut ids = vec![id_of(&first), id_of(&failed)];
    for reply in &pair {
        assert_eq!(reply.status, 202, "{}", reply.text);
        ids.push(id_of(reply));
    }
    for id in &ids {
        wait_until(&app, &token, id, terminal).await;
    }

    // Read back two at a time, so the cursor is followed too.
    let mut entries: Vec<serde_json::Value> = Vec::new();
    let mut path = "/v1/credits/transactions?limit=2".to_owned();
    loop {
        let page = app.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        entries.extend(page.json["data"].as_array().cloned().unwrap_or_default());
        match page.json["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/credits/transactions?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    entries.reverse();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds[..3],
        ["signup_bonus", "daily_grant", "reservation"],
        "{entries:#?}"
    );
    // The refund lands whenever the failing job ends, among the later reservations.
    let mut rest = kinds[3..].to_vec();
    rest.sort_unstable();
    assert_eq!(
        rest,
        ["refund", "reservation", "reservation", "reservation"],
        "{entries:#?}"
    );
    let (mut free, mut bought) = (0, 0);
    for entry in &entries {
        free += entry["free_delta"].as_i64().unwrap_or_default();
        bought += entry["purchased_delta"].as_i64().unwrap_or_default();
        assert_eq!(
            (
                entry["free_after"].as_i64(),
                entry["purchased_after"].as_i64()
            ),
            (Some(free), Some(bought)),
            "the balances do not follow on at {entry}, in {entries:#?}"
        );
    }
    assert_eq!(entries[2]["generation_id"].as_str(), Some(ids[0].as_str()));
}

#[tokio::test]
async fn insufficient_credits_create_nothing() {
    let app = TestApp::spawn_with(&[
        ("EASEL_SIGNUP_BONUS_CREDITS", "0"),
        ("EASEL_DAILY_FREE_CREDITS", "2"),
    ])
    .await;
    let token = signup(&app, "broke").await;
    let reply = generate(
        &app,
        &token,
        json!({"prompt": "a castle", "model": "easel-sketch", "num_outputs": 4}),
    )
    .await;
    reply.assert_problem(402, "insufficient_credits");
    assert_eq!(reply.json["needed"], 4);
    assert_eq!(reply.json["available"], 2);
    assert_eq!(app.count("generations").await, 0);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        0
    );
}

#[tokio::test]
async fn a_dry_run_quotes_without_creating_anything() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "careful").await;
    let reply = generate(
        &app,
        &token,
        json!({"prompt": "a castle", "model": "easel-sketch", "num_outputs": 4, "dry_run": true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["credits_needed"], 4);
    assert_eq!(reply.json["credits_available"], 30);
    assert_eq!(reply.json["sufficient"], true);
    assert_eq!(app.count("generations").await, 0);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        0
    );
}

#[tokio::test]
async fn invalid_requests_name_the_allowed_values_and_create_nothing() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "sloppy").await;
    let cases = [
        (
            json!({"prompt": "x", "model": "dall-e"}),
            "model",
            "easel-sketch",
        ),
        (
            json!({"prompt": "x", "model": "easel-sketch", "aspect_ratio": "2:1"}),
            "aspect_ratio",
            "16:9",
        ),
        (
            json!({"prompt": "x", "model": "easel-sketch", "num_outputs": 9}),
            "num_outputs",
            "between 1 and 4",
        ),
        (
            json!({"prompt": "x", "model": "easel-sketch", "style": "cubist"}),
            "style",
            "watercolor",
        ),
        (
            json!({"prompt": "   ", "model": "easel-sketch"}),
            "prompt",
            "1 to 2000",
        ),
        (
            json!({"prompt": "x".repeat(2001), "model": "easel-sketch"}),
            "prompt",
            "1 to 2000",
        ),
        (
            json!({"prompt": "x", "model": "easel-sketch", "credits_charged": 0}),
            "credits_charged",
            "unknown field",
        ),
    ];
    for (body, field, hint) in cases {
        let reply = generate(&app, &token, body.clone()).await;
        reply.assert_problem(422, "validation_failed");
        let error = reply.json["errors"]
            .as_array()
            .and_then(|errors| errors.iter().find(|e| e["field"] == field).cloned())
            .unwrap_or_default();
        assert!(
            error["message"].as_str().unwrap_or_default().contains(hint),
            "{body} → {}",
            reply.text
        );
    }
    assert_eq!(app.count("generations").await, 0);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        0
    );
}

#[tokio::test]
async fn an_idempotent_retry_creates_one_generation() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "retry").await;
    let send = || {
        app.send(
            app.request(Method::POST, "/v1/generations")
                .bearer_auth(&token)
                .header("idempotency-key", "gen-1")
                .json(&json!({"prompt": "a boat", "model": "easel-sketch"})),
        )
    };
    let first = send().await;
    let second = send().await;
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(second.status, 202);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.json["id"], second.json["id"]);
    assert_eq!(app.count("generations").await, 1);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        1
    );
}

#[tokio::test]
async fn cancel_refunds_once_and_is_idempotent() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "canceler").await;
    let accepted = generate(
        &app,
        &token,
        json!({"prompt": "a long one [[slow]]", "model": "easel-sketch", "num_outputs": 2}),
    )
    .await;
    let id = id_of(&accepted);
    wait_until(&app, &token, &id, |g| g["status"] == "processing").await;
    let canceled = app
        .call(
            Method::POST,
            &format!("/v1/generations/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(canceled.json["status"], "canceled");
    assert_eq!(canceled.json["credits_refunded"], 2);
    let again = app
        .call(
            Method::POST,
            &format!("/v1/generations/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(again.json["status"], "canceled");
    assert_eq!(app.count("credit_entries WHERE kind = 'refund'").await, 1);
    // the worker notices and stops; no image appears later
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.count("images").await, 0);

    let done = generate(
        &app,
        &token,
        json!({"prompt": "quick", "model": "easel-sketch"}),
    )
    .await;
    let done_id = id_of(&done);
    wait_until(&app, &token, &done_id, terminal).await;
    let late = app
        .call(
            Method::POST,
            &format!("/v1/generations/{done_id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        late.json["status"], "succeeded",
        "a finished generation is not changed"
    );
    assert_eq!(late.json["credits_refunded"], 0);
    assert_in_flight_counted(&app).await;
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_and_is_refunded() {
    let app = TestApp::spawn_with(&[("EASEL_GENERATION_DEADLINE_SECS", "5")]).await;
    let token = signup(&app, "late").await;
    let accepted = generate(
        &app,
        &token,
        json!({"prompt": "too slow [[slow]]", "model": "easel-sketch"}),
    )
    .await;
    let done = wait_until(&app, &token, &id_of(&accepted), terminal).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "deadline_exceeded");
    assert_eq!(
        done["error"]["message"],
        "the generation did not finish in time"
    );
    assert_eq!(done["error"]["retryable"], true);
    assert_eq!(done["credits_refunded"], 1);
    assert_in_flight_counted(&app).await;
}

/// A job that misses its deadline in the queue says why: no worker ever took it up (the service is
/// short of workers), or it was waiting to run again.
#[tokio::test]
async fn a_job_late_in_the_queue_says_why() {
    let app = TestApp::spawn_with(&[("EASEL_JOB_WORKERS", "0")]).await;
    let token = signup(&app, "waiting").await;
    let mut ids = Vec::new();
    for prompt in ["never taken up", "handed back"] {
        let reply = generate(
            &app,
            &token,
            json!({"prompt": prompt, "model": "easel-sketch"}),
        )
        .await;
        ids.push(id_of(&reply));
    }
    app.execute("UPDATE generations SET deadline_at = now() - interval '1 second'")
        .await;
    app.execute(&format!(
        "UPDATE generations SET started_at = now() - interval '1 minute' WHERE id = '{}'",
        ids[1]
    ))
    .await;
    easel::generation::runner::sweep(&app.shared.state)
        .await
        .expect("sweep");
    let messages: Vec<String> = {
        let mut messages = Vec::new();
        for id in &ids {
            let done = wait_until(&app, &token, id, terminal).await;
            assert_eq!(done["error"]["code"], "deadline_exceeded", "{done}");
            assert_eq!(done["credits_refunded"], 1);
            messages.push(
                done["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        messages
    };
    assert!(
        messages[0].starts_with("no worker took the generation up in time"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("the generation was waiting to run again"),
        "{messages:?}"
    );
    assert_in_flight_counted(&app).await;
}

/// A queued generation says how many jobs are ahead of it, in the order workers take them: by due
/// time, then in submission order. A job due later (a retry backing off) waits behind.
#[tokio::test]
async fn a_queued_generation_says_how_many_are_ahead() {
    let app = TestApp::spawn_with(&[("EASEL_JOB_WORKERS", "0")]).await;
    let (ann, bob) = (signup(&app, "ann").await, signup(&app, "bob").await);
    let mut ids = Vec::new();
    for (token, prompt) in [(&ann, "first"), (&bob, "second"), (&ann, "third")] {
        let reply = generate(
            &app,
            token,
            json!({"prompt": prompt, "model": "easel-sketch"}),
        )
        .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        // The submission's answer does not count.
        assert!(reply.json["queued_ahead"].is_null(), "{}", reply.text);
        ids.push(id_of(&reply));
    }
    // Jobs due at the same moment (one batch's) go in submission order.
    app.execute("UPDATE generations SET run_after = now() - interval '1 minute'")
        .await;
    let ahead =
        async |token: &str, id: &str| read(&app, token, id).await.json["queued_ahead"].clone();
    assert_eq!(ahead(&ann, &ids[0]).await, 0);
    assert_eq!(ahead(&bob, &ids[1]).await, 1);
    assert_eq!(ahead(&ann, &ids[2]).await, 2);
    // Lists count too, in one query for the page.
    let mine = app
        .call(Method::GET, "/v1/generations", Some(&ann), None)
        .await;
    let counted: Vec<(String, serde_json::Value)> = mine.json["data"]
        .as_array()
        .map(|page| {
            page.iter()
                .map(|g| {
                    (
                        g["prompt"].as_str().unwrap_or_default().to_owned(),
                        g["queued_ahead"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        counted,
        vec![
            ("third".to_owned(), json!(2)),
            ("first".to_owned(), json!(0))
        ]
    );

    // A job due later waits behind the rest.
    app.execute(&format!(
        "UPDATE generations SET run_after = now() + interval '1 minute' WHERE id = '{}'",
        ids[0]
    ))
    .await;
    assert_eq!(ahead(&ann, &ids[0]).await, 2);
    assert_eq!(ahead(&bob, &ids[1]).await, 0);

    // The event stream counts again while the generation waits, though nothing of its own changed.
    let stream = app
        .client
        .get(app.url(&format!("/v1/generations/{}/events", ids[2])))
        .bearer_auth(&ann)
        .send()
        .await
        .expect("events");
    assert_eq!(stream.status().as_u16(), 200);
    let body = tokio::spawn(async move { stream.text().await.unwrap_or_default() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let canceled = app
        .call(
            Method::POST,
            &format!("/v1/generations/{}/cancel", ids[1]),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert!(canceled.json["queued_ahead"].is_null(), "{}", canceled.text);
    // The count falls within the stream's refresh, then the generation ends.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.call(
        Method::POST,
        &format!("/v1/generations/{}/cancel", ids[2]),
        Some(&ann),
        None,
    )
    .await;
    let body = tokio::time::timeout(Duration::from_secs(20), body)
        .await
        .expect("the stream ends")
        .expect("body");
    let event_ids: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .collect();
    assert_eq!(
        event_ids,
        ["queued:0:1", "queued:0:0", "canceled:0"],
        "{body}"
    );

    // Workers take them in the order counted.
    let fourth = generate(
        &app,
        &bob,
        json!({"prompt": "fourth", "model": "easel-sketch"}),
    )
    .await;
    app.execute(
        "UPDATE generations SET run_after = now() - interval '1 minute' WHERE status = 'queued'",
    )
    .await;
    assert_eq!(ahead(&ann, &ids[0]).await, 0);
    assert_eq!(ahead(&bob, &id_of(&fourth)).await, 1);
    let mut conn = app.db().await;
    for expected in [ids[0].clone(), id_of(&fourth)] {
        let claimed = easel::generation::store::claim(&mut conn, "test-worker", 1)
            .await
            .expect("claim");
        let claimed: Vec<String> = claimed.iter().map(|job| job.id.to_string()).collect();
        assert_eq!(claimed, [expected]);
    }
}

#[tokio::test]
async fn a_job_claimed_by_a_dead_worker_is_resumed() {
    let app = TestApp::spawn_with(&[
        ("EASEL_JOB_WORKERS", "0"),
        ("EASEL_JOB_HEARTBEAT_TIMEOUT_SECS", "2"),
    ])
    .await;
    let token = signup(&app, "survivor").await;
    let accepted = generate(
        &app,
        &token,
        json!({"prompt": "a phoenix", "model": "easel-sketch"}),
    )
    .await;
    let id = id_of(&accepted);
    // A worker claims it and dies (kill -9): it never heartbeats again.
    let mut conn = app.db().await;
    let claimed = easel::generation::store::claim(&mut conn, "dead-worker", 8)
        .await
        .expect("claim");
    let claimed: Vec<String> = claimed.iter().map(|g| g.id.to_string()).collect();
    assert_eq!(claimed, std::slice::from_ref(&id));
    app.execute("UPDATE generations SET heartbeat_at = now() - interval '1 hour'")
        .await;

    // A new process starts its workers and watchdog.
    easel::generation::runner::spawn(app.shared.state.clone().into_inner(), 1);
    let done = wait_until(&app, &token, &id, terminal).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["credits_refunded"], 0);
    assert_eq!(app.count("generations WHERE attempts = 2").await, 1);
    assert_eq!(app.count("images").await, 1);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        1
    );
    assert_in_flight_counted(&app).await;
}

/// A heartbeat never waits for a row another transaction holds (a commit or a cancel under way):
/// waiting held its other rows' locks, and a commit taking the same rows in another order
/// deadlocked with it. The held job still counts as the worker's; the others beat.
#[tokio::test]
async fn a_heartbeat_skips_a_job_whose_row_is_held() {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    use easel::generation::store;
    let app = TestApp::spawn_with(&[("EASEL_JOB_WORKERS", "0")]).await;
    let token = signup(&app, "beating").await;
    for n in 0..2 {
        let accepted = generate(
            &app,
            &token,
            json!({"prompt": format!("beat {n}"), "model": "easel-sketch"}),
        )
        .await;
        assert_eq!(accepted.status, 202, "{}", accepted.text);
    }
    let mut conn = app.db().await;
    let claimed = store::claim(&mut conn, "worker-a", 8).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let (held, free) = (claimed[0].id, claimed[1].id);

    let mut holder = app.db().await;
    holder
        .transaction::<_, diesel::result::Error, _>(async |holder| {
            diesel::sql_query("SELECT 1 FROM generations WHERE id = $1 FOR UPDATE")
                .bind::<diesel::sql_types::Uuid, _>(held)
                .execute(holder)
                .await?;
            let beat = tokio::time::timeout(
                Duration::from_secs(5),
                store::heartbeat(&mut conn, "worker-a", &[(held, 40), (free, 60)]),
            )
            .await
            .expect("the heartbeat waited for the held row")
            .expect("heartbeat");
            let mut beat: Vec<String> = beat.iter().map(ToString::to_string).collect();
            beat.sort();
            let mut both = vec![held.to_string(), free.to_string()];
            both.sort();
            assert_eq!(beat, both, "a held job is still the worker's");
            Ok(())
        })
        .await
        .expect("hold the row");
    assert_eq!(
        app.count(&format!(
            "generations WHERE id = '{free}' AND status = 'processing' AND progress = 60"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "generations WHERE id = '{held}' AND status = 'starting' AND progress = 0"
        ))
        .await,
        1,
        "the held row was skipped, not written"
    );
    // Another worker's beat claims nothing of worker-a's.
    let theirs = store::heartbeat(&mut conn, "worker-b", &[(free, 80)])
        .await
        .expect("heartbeat");
    assert!(theirs.is_empty());
}

/// A job whose files cannot be written (a full or broken disk) fails with a refund once its
/// attempts are spent, and records no image; once the disk is fixed, jobs succeed again.
#[tokio::test]
async fn a_job_whose_files_cannot_be_written_fails_with_a_refund() {
    let app = TestApp::spawn_with(&[("EASEL_JOB_MAX_ATTEMPTS", "1")]).await;
    // A file where the originals' folder goes: every write under it fails.
    let blocker = app.data_dir.join("images/originals");
    std::fs::write(&blocker, b"not a folder").expect("blocker");
    let token = signup(&app, "unlucky").await;
    let accepted = generate(
        &app,
        &token,
        json!({"prompt": "nowhere to go", "model": "easel-sketch"}),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let done = wait_until(&app, &token, &id_of(&accepted), terminal).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "storage_failed", "{done}");
    assert_eq!(done["error"]["retryable"], true);
    assert_eq!(done["credits_refunded"], 1);
    assert_eq!(app.count("images").await, 0);
    let id = id_of(&accepted);
    assert_eq!(
        app.text(&format!(
            "SELECT string_agg(kind || ' ' || (free_delta + purchased_delta), ', ' ORDER BY seq) \
             FROM credit_entries WHERE generation_id = '{id}'"
        ))
        .await
        .as_deref(),
        Some("reservation -1, refund 1"),
        "the credit came back, once"
    );

    std::fs::remove_file(&blocker).expect("fix the disk");
    let again = generate(
        &app,
        &token,
        json!({"prompt": "somewhere now", "model": "easel-sketch"}),
    )
    .await;
    let done = wait_until(&app, &token, &id_of(&again), terminal).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_in_flight_counted(&app).await;
}

/// Jobs that finish together are committed together; one whose images cannot be recorded must not
/// take the others down with it: they succeed, and it fails with a refund.
#[tokio::test]
async fn a_job_that_cannot_be_recorded_fails_alone() {
    let app = TestApp::spawn_with(&[
        ("EASEL_JOB_WORKERS", "0"),
        ("EASEL_JOB_MAX_ATTEMPTS", "1"),
        ("EASEL_MAX_IN_FLIGHT", "5"),
    ])
    .await;
    // The database refuses this one prompt's image, as a broken row would be refused.
    app.execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.prompt = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
    )
    .await;
    app.execute(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON images \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    )
    .await;
    let token = signup(&app, "batcher").await;
    let mut ids = Vec::new();
    for prompt in ["one", "two", "poison", "three", "four"] {
        let accepted = generate(
            &app,
            &token,
            json!({"prompt": prompt, "model": "easel-sketch"}),
        )
        .await;
        assert_eq!(accepted.status, 202, "{}", accepted.text);
        ids.push((prompt, id_of(&accepted)));
    }
    // One runner claims all five at once; their outputs reach the commit together.
    easel::generation::runner::spawn(app.shared.state.clone().into_inner(), 8);
    for (prompt, id) in &ids {
        let done = wait_until(&app, &token, id, terminal).await;
        if *prompt == "poison" {
            assert_eq!(done["status"], "failed", "{done}");
            assert_eq!(done["error"]["code"], "storage_failed");
            assert_eq!(done["credits_refunded"], 1);
        } else {
            assert_eq!(done["status"], "succeeded", "{done}");
            assert_eq!(done["images"].as_array().map(Vec::len), Some(1));
        }
    }
    assert_eq!(app.count("images").await, 4);
    assert_eq!(app.count("credit_entries WHERE kind = 'refund'").await, 1);
    assert_in_flight_counted(&app).await;
}

#[tokio::test]
async fn nobody_else_can_read_cancel_or_fetch_a_private_generation() {
    let app = TestApp::spawn().await;
    let alice = signup(&app, "alice").await;
    let bob = signup(&app, "bob").await;
    let accepted = generate(
        &app,
        &alice,
        json!({"prompt": "my secret garden", "model": "easel-sketch"}),
    )
    .await;
    let id = id_of(&accepted);
    let done = wait_until(&app, &alice, &id, terminal).await;
    let url = done["images"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    app.call(
        Method::GET,
        &format!("/v1/generations/{id}"),
        Some(&bob),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    app.call(
        Method::POST,
        &format!("/v1/generations/{id}/cancel"),
        Some(&bob),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    app.call(Method::GET, &url, Some(&bob), None)
        .await
        .assert_problem(404, "not_found");
    app.call(Method::GET, &url, None, None)
        .await
        .assert_problem(404, "not_found");
    let listed = app
        .call(Method::GET, "/v1/generations", Some(&bob), None)
        .await;
    assert_eq!(listed.json["data"], json!([]));
    assert_eq!(
        app.call(Method::GET, &url, Some(&alice), None).await.status,
        200
    );

    // public images are open to all, cacheable, with ETag and ranges
    let public = generate(
        &app,
        &alice,
        json!({"prompt": "for everyone", "model": "easel-sketch", "visibility": "public"}),
    )
    .await;
    let done = wait_until(&app, &alice, &id_of(&public), terminal).await;
    let url = done["images"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let open = app
        .client
        .get(app.url(&url))
        .send()
        .await
        .expect("anonymous get");
    assert_eq!(open.status().as_u16(), 200);
    assert_eq!(
        open.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=31536000, immutable")
    );
    let etag = open
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cached = app
        .client
        .get(app.url(&url))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(cached.status().as_u16(), 304);
    let ranged = async |range: String| {
        let request = app.client.get(app.url(&url)).header("range", range);
        request.send().await.expect("ranged get")
    };
    let part = ranged("bytes=0-3".to_owned()).await;
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(&part.bytes().await.expect("range bytes")[..], b"\x89PNG");
    let whole = open.bytes().await.expect("whole file");
    let len = whole.len();
    let last = ranged("bytes=-8".to_owned()).await;
    assert_eq!(last.status().as_u16(), 206);
    assert_eq!(
        last.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some(format!("bytes {}-{}/{len}", len - 8, len - 1).as_str())
    );
    assert_eq!(
        last.bytes().await.expect("suffix bytes"),
        whole.slice(len - 8..)
    );
    // HEAD: the file's headers and length, no bytes.
    let head = app.client.head(app.url(&url)).send().await.expect("head");
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(len.to_string().as_str())
    );
    assert_eq!(
        head.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    assert!(head.bytes().await.expect("no body").is_empty());
    // A range the file does not have: the whole file, as a server may answer any range.
    let beyond = ranged(format!("bytes={len}-")).await;
    assert_eq!(beyond.status().as_u16(), 200);
    assert_eq!(beyond.content_length(), Some(len as u64));
    assert_eq!(beyond.bytes().await.expect("whole again"), whole);
}

#[tokio::test]
async fn generations_in_flight_are_capped_per_user() {
    let app = TestApp::spawn_with(&[("EASEL_MAX_IN_FLIGHT", "1")]).await;
    let token = signup(&app, "eager").await;
    let first = generate(
        &app,
        &token,
        json!({"prompt": "slow one [[slow]]", "model": "easel-sketch"}),
    )
    .await;
    assert_eq!(first.status, 202);
    let second = generate(
        &app,
        &token,
        json!({"prompt": "another", "model": "easel-sketch"}),
    )
    .await;
    second.assert_problem(429, "too_many_in_flight");
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        1
    );
    let listed = app
        .call(
            Method::GET,
            "/v1/generations?status=queued",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);

    // Every way a generation ends frees its place: canceled, succeeded, failed.
    let canceled = app
        .call(
            Method::POST,
            &format!("/v1/generations/{}/cancel", id_of(&first)),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(canceled.json["status"], "canceled", "{}", canceled.text);
    for (prompt, ending) in [("quick", "succeeded"), ("doomed [[fail]]", "failed")] {
        let next = generate(
            &app,
            &token,
            json!({"prompt": prompt, "model": "easel-sketch"}),
        )
        .await;
        assert_eq!(next.status, 202, "{}", next.text);
        let done = wait_until(&app, &token, &id_of(&next), terminal).await;
        assert_eq!(done["status"], ending);
    }
    let last = generate(
        &app,
        &token,
        json!({"prompt": "and again", "model": "easel-sketch"}),
    )
    .await;
    assert_eq!(last.status, 202, "{}", last.text);
    assert_in_flight_counted(&app).await;
}

/// Submissions racing each other at the start of a new day: each must make the day's grant first,
/// the grant is made once, and the cap holds however they interleave.
#[tokio::test]
async fn racing_submissions_on_a_new_day_grant_once_and_keep_the_cap() {
    let app = TestApp::spawn_with(&[
        ("EASEL_MAX_IN_FLIGHT", "3"),
        ("EASEL_JOB_WORKERS", "0"),
        ("EASEL_DAILY_FREE_CREDITS", "10"),
    ])
    .await;
    let token = signup(&app, "racer").await;
    app.execute("UPDATE credit_balances SET free_granted_on = current_date - 1")
        .await;
    let submissions = (0..12).map(|n| {
        generate(
            &app,
            &token,
            json!({"prompt": format!("racer {n}"), "model": "easel-sketch"}),
        )
    });
    let replies = futures_util::future::join_all(submissions).await;
    let accepted = replies.iter().filter(|r| r.status == 202).count();
    for reply in replies.iter().filter(|r| r.status != 202) {
        reply.assert_problem(429, "too_many_in_flight");
    }
    assert_eq!(accepted, 3);
    assert_eq!(app.count("generations").await, 3);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        3
    );
    assert_eq!(
        app.count("credit_entries WHERE kind = 'daily_grant' AND grant_day = current_date")
            .await,
        1
    );
    assert_eq!(
        app.count("credit_balances WHERE free_granted_on = current_date AND free = 7")
            .await,
        1,
        "today's 10 free credits, less 3 reserved"
    );
    assert_in_flight_counted(&app).await;
}

#[tokio::test]
async fn steps_and_guidance_are_taken_by_the_models_that_accept_them() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "tuner").await;
    // easel-canvas-pro takes steps and guidance (and is a pro model: an admin may use it).
    app.execute("UPDATE users SET role = 'admin' WHERE username = 'tuner'")
        .await;
    let mut hashes = Vec::new();
    for (steps, guidance) in [(None, None), (Some(60), Some(20.0))] {
        let mut body = json!({"prompt": "a tuned lake", "model": "easel-canvas-pro", "seed": 3});
        if let Some(steps) = steps {
            body["steps"] = json!(steps);
            body["guidance"] = json!(guidance);
        }
        let done = app
            .send(
                app.request(Method::POST, "/v1/generations")
                    .bearer_auth(&token)
                    .header("prefer", "wait=30")
                    .json(&body),
            )
            .await;
        assert_eq!(done.json["status"], "succeeded", "{}", done.text);
        assert_eq!(done.json["steps"], json!(steps));
        assert_eq!(done.json["guidance"], json!(guidance));
        let id = id_of(&done);
        let listed = app
            .call(Method::GET, "/v1/generations", Some(&token), None)
            .await;
        let shown = listed.json["data"]
            .as_array()
            .and_then(|all| all.iter().find(|g| g["id"] == id.as_str()).cloned())
            .unwrap_or_default();
        assert_eq!(shown["steps"], json!(steps), "{}", listed.text);
        assert_eq!(shown["guidance"], json!(guidance));
        hashes.push(
            app.text(&format!(
                "SELECT content_hash FROM images WHERE generation_id = '{id}'"
            ))
            .await,
        );
    }
    assert_ne!(hashes[0], hashes[1], "the renderer used them");

    let before = app.count("generations").await;
    let refused = [
        (
            json!({"prompt": "x", "model": "easel-sketch", "steps": 30}),
            "steps",
            "does not accept",
        ),
        (
            json!({"prompt": "x", "model": "easel-canvas-pro", "steps": 0}),
            "steps",
            "between 1 and 200",
        ),
        (
            json!({"prompt": "x", "model": "easel-canvas-pro", "steps": 201}),
            "steps",
            "between 1 and 200",
        ),
        (
            json!({"prompt": "x", "model": "easel-canvas-pro", "guidance": 30.5}),
            "guidance",
            "between 0 and 30",
        ),
        (
            json!({"prompt": "x", "model": "easel-canvas-pro", "guidance": -1}),
            "guidance",
            "between 0 and 30",
        ),
    ];
    for (body, field, says) in refused {
        let reply = generate(&app, &token, body.clone()).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json["errors"][0]["field"], field, "{body}");
        assert!(
            reply.json["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{}",
            reply.text
        );
    }
    assert_eq!(
        app.count("generations").await,
        before,
        "nothing was created"
    );
}

#[tokio::test]
async fn pro_models_need_purchased_credits_or_the_admin_role() {
    // The signup bonus lands in the non-expiring bucket too, but it is not a purchase.
    let app = TestApp::spawn_with(&[
        ("EASEL_SIGNUP_BONUS_CREDITS", "20"),
        ("EASEL_DAILY_FREE_CREDITS", "20"),
    ])
    .await;
    let signed_up = app.signup("free-rider").await;
    let token = signed_up["access_token"].as_str().unwrap_or_default();
    let pro = json!({"prompt": "big", "model": "easel-canvas-pro"});
    generate(&app, token, pro.clone())
        .await
        .assert_problem(403, "pro_model_requires_purchase");
    let mut dry_run = pro.clone();
    dry_run["dry_run"] = json!(true);
    generate(&app, token, dry_run)
        .await
        .assert_problem(403, "pro_model_requires_purchase");
    assert_eq!(app.count("generations").await, 0);

    // Credits an operator grants count as bought.
    let operator = signup(&app, "operator").await;
    app.execute("UPDATE users SET role = 'admin' WHERE username = 'operator'")
        .await;
    let user = signed_up["user"]["id"].as_str().unwrap_or_default();
    let granted = app
        .call(
            Method::POST,
            &format!("/v1/admin/users/{user}/credits"),
            Some(&operator),
            Some(json!({"amount": 8, "reason": "pro trial"})),
        )
        .await;
    assert_eq!(granted.status, 201, "{}", granted.text);
    let allowed = generate(&app, token, pro.clone()).await;
    assert_eq!(allowed.status, 202, "{}", allowed.text);

    let token = signup(&app, "another-free-rider").await;
    generate(&app, &token, pro.clone())
        .await
        .assert_problem(403, "pro_model_requires_purchase");
    app.execute("UPDATE users SET role = 'admin' WHERE username = 'another-free-rider'")
        .await;
    let admin = generate(&app, &token, pro).await;
    assert_eq!(admin.status, 202, "{}", admin.text);
    assert_eq!(admin.json["credits_charged"], 4);
    app.call(Method::GET, "/v1/models/easel-canvas-pro", None, None)
        .await;
    app.call(Method::GET, "/v1/models/nope", None, None)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn events_stream_progress_to_the_end_and_resume_after_the_last_seen() {
    // Events come on word of each change: without it, the stream would only read the generation
    // again when a keep-alive falls due.
    let app = spawn_hearing_changes(&[("EASEL_LOCAL_RENDER_MS", "1500")]).await;
    let token = signup(&app, "watcher").await;
    let accepted = generate(
        &app,
        &token,
        json!({"prompt": "a comet", "model": "easel-sketch"}),
    )
    .await;
    let id = id_of(&accepted);
    let stream = open_events(&app, &token, &id).await;
    assert_eq!(stream.status().as_u16(), 200);
    assert_eq!(
        stream
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let body = tokio::time::timeout(Duration::from_secs(20), stream.text())
        .await
        .expect("stream ends")
        .expect("body");
    let events: Vec<serde_json::Value> = body
        .split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect();
    assert!(events.len() >= 2, "{body}");
    // Running is only ever said by a heartbeat mid-render: read on its word, not at the end.
    assert!(events.iter().any(|e| e["status"] == "processing"), "{body}");
    let progress: Vec<i64> = events
        .iter()
        .filter_map(|e| e["progress"].as_i64())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {progress:?}"
    );
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["progress"], 100);
    assert!(body.contains("id: succeeded:100"), "{body}");

    let resumed = app
        .client
        .get(app.url(&format!("/v1/generations/{id}/events")))
        .bearer_auth(&token)
        .header("last-event-id", "succeeded:100")
        .send()
        .await
        .expect("resume");
    assert_eq!(
        resumed.text().await.expect("body"),
        "",
        "nothing new after the terminal event"
    );

    let stranger = signup(&app, "stranger").await;
    app.call(
        Method::GET,
        &format!("/v1/generations/{id}/events"),
        Some(&stranger),
        None,
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_blocked_prompt_is_refused_before_any_credit_moves() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "edgy").await;
    let reply = generate(
        &app,
        &token,
        json!({"prompt": "a FORBIDDEN-EXAMPLE-TERM poster", "model": "easel-sketch"}),
    )
    .await;
    reply.assert_problem(422, "prompt_rejected");
    assert!(
        reply.json["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("example")
    );
    assert!(
        !reply.text.to_lowercase().contains("forbidden-example-term"),
        "the rule's terms stay secret"
    );
    let negative = generate(
        &app,
        &token,
        json!({"prompt": "fine", "model": "easel-sketch", "negative_prompt": "example-blocked-7"}),
    )
    .await;
    negative.assert_problem(422, "prompt_rejected");
    assert_eq!(app.count("generations").await, 0);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        0
    );
}

/// A real `easel serve` process on its own port against `database_url`.
fn start_server(
    database_url: &str,
    data_dir: &std::path::Path,
    port: u16,
    render_ms: &str,
) -> Process {
    let bind = format!("127.0.0.1:{port}");
    easel_process(
        "serve",
        database_url,
        data_dir,
        &[
            ("EASEL_BIND", bind.as_str()),
            ("EASEL_LOCAL_RENDER_MS", render_ms),
            ("EASEL_JOB_WORKERS", "1"),
        ],
    )
}

/// A child process killed when dropped, so a test that fails half-way leaves none running.
pub(crate) struct Process(std::process::Child);

impl std::ops::Deref for Process {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A real `easel <command>` process against `database_url`, with the test catalog, a quick
/// watchdog, and `vars` on top.
pub(crate) fn easel_process(
    command: &str,
    database_url: &str,
    data_dir: &std::path::Path,
    vars: &[(&str, &str)],
) -> Process {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/easel");
    assert!(
        std::path::Path::new(binary).exists(),
        "build the binary first: cargo build --bin easel (make test does)"
    );
    std::process::Command::new(binary)
        .arg(command)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EASEL_ENV", "test")
        .env("DATABASE_URL", database_url)
        .env("EASEL_DATA_DIR", data_dir)
        .env(
            "EASEL_JWT_SECRET",
            "crash-test-secret-long-enough-0123456789",
        )
        .env(
            "EASEL_MODELS_PATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config/models.toml"),
        )
        .env(
            "EASEL_MODERATION_PATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config/moderation.toml"),
        )
        .env(
            "EASEL_PACKAGES_PATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config/packages.toml"),
        )
        .env("EASEL_JOB_HEARTBEAT_TIMEOUT_SECS", "2")
        .env("EASEL_WATCHDOG_INTERVAL_SECS", "1")
        .env("EASEL_LOG", "warn")
        .envs(vars.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Process)
        .unwrap_or_else(|e| panic!("start easel {command}: {e}"))
}

/// Sends SIGTERM to `child` and waits for it to exit, at most `within`.
pub(crate) async fn terminate(child: &mut Process, within: Duration) -> std::process::ExitStatus {
    stop(child, "TERM", within).await
}

/// Sends `signal` (`TERM`, `INT` …) to `child` and waits for it to exit, at most `within`.
pub(crate) async fn stop(
    child: &mut Process,
    signal: &str,
    within: Duration,
) -> std::process::ExitStatus {
    let sent = std::process::Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let until = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            panic!("the process did not stop within {within:?} of SIG{signal}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs `name` up on the server at `base` (a process of its own); returns the access token.
pub(crate) async fn signup_at(client: &reqwest::Client, base: &str, name: &str) -> String {
    let signed: serde_json::Value = client
        .post(format!("{base}/v1/auth/signup"))
        .json(&json!({"email": format!("{name}@example.com"), "username": name, "password": "long enough"}))
        .send()
        .await
        .expect("signup")
        .json()
        .await
        .expect("json");
    signed["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls the database until generation `id` has `status` (at most 20 s).
async fn wait_for_status(app: &TestApp, id: &str, status: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let now = app
            .text(&format!("SELECT status FROM generations WHERE id = '{id}'"))
            .await
            .unwrap_or_default();
        if now == status {
            return;
        }
        assert!(Instant::now() < until, "{id} stayed {now}, never {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker stopped (a deploy) while its job runs lets it finish within the grace period; past it,
/// the job goes straight back to the queue, its attempt not counted, and the next worker runs it.
#[tokio::test]
async fn a_stopping_worker_finishes_its_jobs_or_hands_them_back() {
    let app = TestApp::spawn_with(&[("EASEL_JOB_WORKERS", "0")]).await;
    let token = signup(&app, "deployer").await;
    let worker = |render_ms: &'static str, grace: &'static str| {
        easel_process(
            "worker",
            &app.database_url,
            &app.data_dir,
            &[
                ("EASEL_LOCAL_RENDER_MS", render_ms),
                ("EASEL_SHUTDOWN_TIMEOUT_SECS", grace),
                // Without the drain, the job would wait out this before anyone took it up again.
                ("EASEL_JOB_HEARTBEAT_TIMEOUT_SECS", "600"),
            ],
        )
    };
    let submit = async |prompt: &str| {
        let reply = generate(
            &app,
            &token,
            json!({"prompt": prompt, "model": "easel-sketch"}),
        )
        .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        id_of(&reply)
    };

    // Within the grace: finished before the process exits.
    let quick = submit("finished before the exit").await;
    let mut first = worker("1500", "20");
    wait_for_status(&app, &quick, "processing").await;
    let exited = terminate(&mut first, Duration::from_secs(15)).await;
    assert!(exited.success(), "{exited}");
    wait_for_status(&app, &quick, "succeeded").await;
    assert_eq!(app.count("images").await, 1);

    // Past the grace: back in the queue at once, unclaimed, attempt not counted.
    let slow = submit("handed back").await;
    let mut second = worker("60000", "1");
    wait_for_status(&app, &slow, "processing").await;
    let exited = terminate(&mut second, Duration::from_secs(15)).await;
    assert!(exited.success(), "{exited}");
    let row = app
        .text(&format!(
            "SELECT status || ' ' || attempts || ' ' || (claimed_by IS NULL) || ' ' || (run_after <= now()) \
                    || ' ' || progress \
             FROM generations WHERE id = '{slow}'"
        ))
        .await;
    assert_eq!(row.as_deref(), Some("queued 0 true true 0"));

    let mut third = worker("50", "5");
    wait_for_status(&app, &slow, "succeeded").await;
    let _ = terminate(&mut third, Duration::from_secs(15)).await;
    assert_eq!(
        app.count(&format!("generations WHERE id = '{slow}' AND attempts = 1"))
            .await,
        1
    );
    assert_eq!(app.count("images").await, 2);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        2
    );
    assert_eq!(app.count("credit_entries WHERE kind = 'refund'").await, 0);
    assert_in_flight_counted(&app).await;
}

/// `easel serve` stopped while a job runs: requests end, then the job finishes before the exit.
#[tokio::test]
async fn a_stopping_server_finishes_its_running_job() {
    let app = TestApp::spawn_with(&[("EASEL_JOB_WORKERS", "0")]).await;
    let token = signup(&app, "restarter").await;
    let reply = generate(
        &app,
        &token,
        json!({"prompt": "one more", "model": "easel-sketch"}),
    )
    .await;
    let id = id_of(&reply);
    let bind = format!("127.0.0.1:{}", free_port());
    let mut server = easel_process(
        "serve",
        &app.database_url,
        &app.data_dir,
        &[
            ("EASEL_BIND", bind.as_str()),
            ("EASEL_LOCAL_RENDER_MS", "1500"),
            ("EASEL_JOB_WORKERS", "1"),
            ("EASEL_SHUTDOWN_TIMEOUT_SECS", "20"),
        ],
    );
    wait_for_status(&app, &id, "processing").await;
    let exited = terminate(&mut server, Duration::from_secs(15)).await;
    assert!(exited.success(), "{exited}");
    assert_eq!(
        app.text(&format!("SELECT status FROM generations WHERE id = '{id}'"))
            .await
            .as_deref(),
        Some("succeeded"),
        "finished before the exit"
    );
}

pub(crate) async fn ready(client: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server at {base} did not become ready");
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn kill_9_mid_job_then_restart_and_the_job_completes() {
    let (db_name, database_url) = easel_tests::create_database().await;
    let data_dir = std::env::temp_dir().join("easel-tests").join(&db_name);
    let client = reqwest::Client::new();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = start_server(&database_url, &data_dir, port, "4000");
    ready(&client, &base).await;
    let token = signup_at(&client, &base, "crash").await;
    let accepted: serde_json::Value = client
        .post(format!("{base}/v1/generations"))
        .bearer_auth(&token)
        .json(&json!({"prompt": "survive the crash", "model": "easel-sketch"}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let id = accepted["id"].as_str().unwrap_or_default().to_owned();
    let status = |client: reqwest::Client, base: String, token: String, id: String| async move {
        let g: serde_json::Value = client
            .get(format!("{base}/v1/generations/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        g
    };
    let until = Instant::now() + Duration::from_secs(10);
    while status(client.clone(), base.clone(), token.clone(), id.clone()).await["status"]
        != "processing"
    {
        assert!(Instant::now() < until, "never started processing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().expect("kill -9");
    first.wait().expect("reap");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut second = start_server(&database_url, &data_dir, port, "50");
    ready(&client, &base).await;
    let until = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let g = status(client.clone(), base.clone(), token.clone(), id.clone()).await;
        if terminal(&g) {
            break g;
        }
        assert!(
            Instant::now() < until,
            "the job stayed unfinished after the restart: {g}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    second.kill().expect("stop");
    second.wait().expect("reap");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["images"].as_array().map(Vec::len), Some(1));
    assert_eq!(done["credits_refunded"], 0);

    use diesel_async::{AsyncConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        reservations: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        images: i64,
    }
    let mut conn = diesel_async::AsyncPgConnection::establish(&database_url)
        .await
        .expect("connect");
    let counts: Counts = diesel::sql_query(
        "SELECT (SELECT count(*) FROM credit_entries WHERE kind = 'reservation') AS reservations, \
                (SELECT count(*) FROM images) AS images",
    )
    .get_result(&mut conn)
    .await
    .expect("counts");
    assert_eq!(
        (counts.reservations, counts.images),
        (1, 1),
        "charged once, one image"
    );
    drop(conn);
    easel_tests::drop_database_blocking(&db_name);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn usage_counts_generations_and_net_credits_by_model() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "counted").await;
    for body in [
        json!({"prompt": "one", "model": "easel-sketch", "num_outputs": 2}),
        json!({"prompt": "two [[fail]]", "model": "easel-sketch", "num_outputs": 3}),
    ] {
        let accepted = generate(&app, &token, body).await;
        wait_until(&app, &token, &id_of(&accepted), terminal).await;
    }
    let now = chrono::Utc::now();
    let start =
        (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let end = (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let usage = app
        .call(
            Method::GET,
            &format!("/v1/usage?start={start}&end={end}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    assert_eq!(
        usage.json["models"],
        json!([{"model": "easel-sketch", "generations": 2, "credits_spent": 2}])
    );
    assert_eq!(
        usage.json["credits_spent"], 2,
        "the failed one was refunded"
    );
    let before = app
        .call(
            Method::GET,
            "/v1/usage?start=2020-01-01T00:00:00Z&end=2020-02-01T00:00:00Z",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(before.json["models"], json!([]));
    app.call(
        Method::GET,
        &format!("/v1/usage?start={end}&end={start}"),
        Some(&token),
        None,
    )
    .await
    .assert_problem(422, "validation_failed");
    app.call(
        Method::GET,
        "/v1/usage?start=2000-01-01T00:00:00Z&end=2100-01-01T00:00:00Z",
        Some(&token),
        None,
    )
    .await
    .assert_problem(422, "validation_failed");
    app.call(Method::GET, "/v1/usage", Some(&token), None)
        .await
        .assert_problem(422, "validation_failed");
}

/// Signs `name` up and makes the day's grant (reading the balance does), returning their id.
async fn granted_user(app: &TestApp, name: &str) -> easel::identity::UserId {
    let signed_up = app.signup(name).await;
    let token = signed_up["access_token"].as_str().unwrap_or_default();
    let balance = app
        .call(Method::GET, "/v1/credits", Some(token), None)
        .await;
    assert_eq!(balance.status, 200, "{}", balance.text);
    easel::identity::UserId(
        signed_up["user"]["id"]
            .as_str()
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .unwrap_or_default(),
    )
}

/// How many of `user`'s balance rows meet `condition` (so 1 or 0).
async fn balance_where(app: &TestApp, user: easel::identity::UserId, condition: &str) -> i64 {
    app.count(&format!(
        "credit_balances WHERE user_id = '{}' AND {condition}",
        user.0
    ))
    .await
}

async fn set_balance(app: &TestApp, user: easel::identity::UserId, set: &str) {
    app.execute(&format!(
        "UPDATE credit_balances SET {set} WHERE user_id = '{}'",
        user.0
    ))
    .await;
}

/// A submission of one 64 px image of the sketch model, as `service::create` makes it.
fn submission(
    user_id: easel::identity::UserId,
    prompt: &str,
    cost: i64,
    max_in_flight: i64,
) -> easel::generation::store::Submission {
    let now = chrono::Utc::now();
    easel::generation::store::Submission {
        new: easel::generation::store::NewGeneration {
            id: easel::generation::GenerationId::new(),
            user_id,
            model: "easel-sketch".to_owned(),
            prompt: prompt.to_owned(),
            negative_prompt: None,
            aspect_ratio: "1:1".to_owned(),
            width: 64,
            height: 64,
            num_outputs: 1,
            seed: 1,
            style: None,
            visibility: "private",
            credits_charged: cost,
            reservation_id: easel::credits::EntryId::new(),
            deadline_at: now + chrono::Duration::minutes(10),
        },
        today: easel::credits::service::today(now),
        max_in_flight,
    }
}

/// One batch of submissions, as an HTTP worker sends them under load: each is judged on its own,
/// in order, and a refusal changes nothing of its own and nothing of the others'.
#[tokio::test]
async fn a_batch_of_submissions_refuses_only_the_ones_it_must() {
    use easel::generation::store::{SubmitError, submit_many};
    let app = TestApp::spawn_with(&[
        ("EASEL_JOB_WORKERS", "0"),
        ("EASEL_DAILY_FREE_CREDITS", "10"),
    ])
    .await;
    let able = granted_user(&app, "able").await;
    let broke = granted_user(&app, "broke").await;
    let sleepy = granted_user(&app, "sleepy").await;
    let split = granted_user(&app, "split").await;
    let owing = granted_user(&app, "owing").await;
    set_balance(&app, able, "free = 10, purchased = 0").await;
    set_balance(&app, broke, "free = 0, purchased = 0").await;
    set_balance(&app, sleepy, "free_granted_on = current_date - 1").await;
    // Free credits go first, then purchased ones; an account that owes credits spends nothing.
    set_balance(&app, split, "free = 2, purchased = 5").await;
    set_balance(&app, owing, "free = 10, purchased = -1").await;
    let batch = [
        submission(able, "first", 3, 2),
        submission(broke, "no credits", 3, 2),
        submission(able, "second", 3, 2),
        submission(sleepy, "grant first", 3, 2),
        submission(able, "third, over the cap", 3, 2),
        submission(split, "two free and one purchased", 3, 2),
        submission(owing, "owes credits", 3, 2),
    ];
    let mut conn = app.db().await;
    let results = submit_many(&mut conn, &batch)
        .await
        .expect("the batch runs");
    let outcomes: Vec<&str> = results
        .iter()
        .map(|r| match r {
            Ok(row) if row.status == "queued" => "queued",
            Ok(_) => "not queued",
            Err(SubmitError::NotCovered) => "not_covered",
            Err(SubmitError::GrantDue) => "grant_due",
            Err(SubmitError::TooManyInFlight) => "too_many_in_flight",
            Err(_) => "other",
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "queued",
            "not_covered",
            "queued",
            "grant_due",
            "too_many_in_flight",
            "queued",
            "not_covered"
        ]
    );
    // The rows it answered are the rows it stored.
    let queued = [&batch[0], &batch[2], &batch[5]];
    for (row, submission) in results.iter().flatten().zip(queued) {
        assert_eq!(row.id, submission.new.id);
        assert_eq!(row.prompt, submission.new.prompt);
        assert_eq!(row.reservation_id, Some(submission.new.reservation_id));
    }
    assert_eq!(app.count("generations WHERE status = 'queued'").await, 3);
    assert_eq!(app.count("generations").await, 3);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        3
    );
    assert_eq!(
        app.count(&format!(
            "credit_entries WHERE kind = 'reservation' AND user_id = '{}' \
             AND free_delta = -2 AND purchased_delta = -1 AND free_after = 0 AND purchased_after = 4",
            split.0
        ))
        .await,
        1
    );
    // 10 free credits less two reservations of 3; the refused accounts are as they were.
    for (user, condition) in [
        (able, "free = 4 AND purchased = 0"),
        (split, "free = 0 AND purchased = 4"),
        (broke, "free = 0 AND purchased = 0"),
        (owing, "free = 10 AND purchased = -1"),
        (sleepy, "free_granted_on = current_date - 1"),
    ] {
        assert_eq!(balance_where(&app, user, condition).await, 1, "{condition}");
    }
    assert_in_flight_counted(&app).await;
}

/// A batch the database refuses as a whole (here, one submission reuses a ledger entry's id) is
/// submitted again one at a time: only the faulty submission fails.
#[tokio::test]
async fn a_batch_that_fails_is_submitted_again_one_by_one() {
    use easel::generation::store::SubmitError;
    let app = TestApp::spawn_with(&[
        ("EASEL_JOB_WORKERS", "0"),
        ("EASEL_DAILY_FREE_CREDITS", "10"),
    ])
    .await;
    // The day's grant is a ledger entry whose id the faulty submission reuses.
    let user = granted_user(&app, "batcher").await;
    let taken = {
        #[derive(diesel::QueryableByName)]
        struct Entry {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: uuid::Uuid,
        }
        let mut conn = app.db().await;
        diesel_async::RunQueryDsl::get_result::<Entry>(
            diesel::sql_query("SELECT id FROM credit_entries ORDER BY created_at LIMIT 1"),
            &mut conn,
        )
        .await
        .expect("the grant's entry")
        .id
    };
    let pool = easel::db::pool(&app.database_url, 2).expect("pool");
    let batcher = easel::generation::service::submissions(pool);
    // All five are waiting before the batcher first runs (this test's runtime has one thread), so
    // they go in one batch.
    let results = futures_util::future::join_all((0..5).map(|n| {
        let mut s = submission(user, &format!("batched {n}"), 1, 100);
        if n == 2 {
            s.new.reservation_id = easel::credits::EntryId(taken);
        }
        batcher.call(s)
    }))
    .await;
    let outcomes: Vec<&str> = results
        .iter()
        .map(|r| match r {
            Some(Ok(_)) => "queued",
            Some(Err(SubmitError::Database(_))) => "database error",
            _ => "other",
        })
        .collect();
    assert_eq!(
        outcomes,
        ["queued", "queued", "database error", "queued", "queued"]
    );
    assert_eq!(app.count("generations").await, 4);
    assert_eq!(app.count("generations WHERE prompt = 'batched 2'").await, 0);
    assert_eq!(
        app.count("credit_entries WHERE kind = 'reservation'").await,
        4
    );
    assert_in_flight_counted(&app).await;
}
