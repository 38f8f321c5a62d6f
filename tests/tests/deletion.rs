//! Deleting an account: closed at once, then everything it made erased, with the ledger intact.

use crate::gallery::ids;
use crate::generations::{generate, signup, terminal, wait_until};
use easel_tests::{Reply, TestApp, json};
use reqwest::Method;

async fn succeeded_image(app: &TestApp, token: &str, prompt: &str) -> (String, String) {
    let accepted = generate(
        app,
        token,
        json!({"prompt": prompt, "model": "easel-sketch", "visibility": "public"}),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.json["id"].as_str().unwrap_or_default().to_owned();
    let done = wait_until(app, token, &id, terminal).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let image = done["images"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (id, image)
}

async fn delete_account(app: &TestApp, token: &str, password: &str) -> Reply {
    app.call(
        Method::POST,
        "/v1/me/deletion",
        Some(token),
        Some(json!({"password": password})),
    )
    .await
}

#[tokio::test]
async fn deleting_an_account_closes_it_at_once_and_erases_what_it_made() {
    let app = TestApp::spawn().await;
    let ann = signup(&app, "ann").await;
    let bob = signup(&app, "bob").await;
    let (_, anns_image) = succeeded_image(&app, &ann, "ann's lighthouse").await;
    let (_, bobs_image) = succeeded_image(&app, &bob, "bob's harbour").await;
    // Ann is drawing something slow, likes Bob's image and keeps her own in a collection; Bob likes
    // hers and keeps it as his collection's cover.
    let slow = generate(
        &app,
        &ann,
        json!({"prompt": "a long one [[slow]]", "model": "easel-sketch"}),
    )
    .await;
    let slow = slow.json["id"].as_str().unwrap_or_default().to_owned();
    wait_until(&app, &ann, &slow, |g| g["status"] == "processing").await;
    for (token, image) in [(&ann, &bobs_image), (&bob, &anns_image)] {
        let liked = app
            .call(
                Method::PUT,
                &format!("/v1/images/{image}/like"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(liked.status, 200, "{}", liked.text);
    }
    let mut collections = Vec::new();
    for token in [&ann, &bob] {
        let made = app
            .call(
                Method::POST,
                "/v1/collections",
                Some(token),
                Some(json!({"name": "keep", "visibility": "public"})),
            )
            .await;
        assert_eq!(made.status, 201, "{}", made.text);
        let id = made.json["id"].as_str().unwrap_or_default().to_owned();
        let added = app
            .call(
                Method::PUT,
                &format!("/v1/collections/{id}/images/{anns_image}"),
                Some(token),
                None,
            )
            .await;
        assert!(added.status < 300, "{}", added.text);
        collections.push(id);
    }
    let cover = app
        .call(
            Method::PATCH,
            &format!("/v1/collections/{}", collections[1]),
            Some(&bob),
            Some(json!({"cover_image_id": anns_image})),
        )
        .await;
    assert_eq!(cover.status, 200, "{}", cover.text);
    let key = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&ann),
            Some(json!({"name": "script", "scopes": ["read", "generate"]})),
        )
        .await;
    let key = key.json["key"].as_str().unwrap_or_default().to_owned();
    // Two photos uploaded: one restyled (the generation keeps it as its input), one not used yet.
    let photo =
        |seed| easel::providers::local::sample_png("ann's own photo", 96, 72, seed).expect("png");
    let mut upload_files = Vec::new();
    let mut uploads = Vec::new();
    for seed in [1, 2] {
        let bytes = photo(seed);
        let uploaded = app.upload(&ann, "me.png", &bytes).await;
        assert_eq!(uploaded.status, 201, "{}", uploaded.text);
        uploads.push(uploaded.json["id"].as_str().unwrap_or_default().to_owned());
        let hash = easel::storage::content_hash(&bytes);
        upload_files.push(
            app.data_dir
                .join("images/uploads")
                .join(&hash[..2])
                .join(&hash[2..4])
                .join(&hash),
        );
    }
    let restyled = app
        .send(
            app.request(Method::POST, "/v1/generations")
                .bearer_auth(&ann)
                .header("prefer", "wait=20")
                .json(&json!({"prompt": "in autumn colours", "model": "easel-restyle", "image_input": uploads[0]})),
        )
        .await;
    assert_eq!(restyled.json["status"], "succeeded", "{}", restyled.text);
    assert!(upload_files.iter().all(|f| f.exists()));
    let entries_before = app.count("credit_entries").await;

    // Refusals change nothing.
    let wrong = delete_account(&app, &ann, "not my password").await;
    wrong.assert_problem(422, "validation_failed");
    assert_eq!(wrong.json["errors"][0]["field"], "password");
    delete_account(&app, &key, "password-ann")
        .await
        .assert_problem(403, "insufficient_scope");
    app.call(
        Method::POST,
        "/v1/me/deletion",
        None,
        Some(json!({"password": "password-ann"})),
    )
    .await
    .assert_problem(401, "unauthorized");
    assert_eq!(app.count("users WHERE deleted_at IS NOT NULL").await, 0);
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&ann), None)
            .await
            .status,
        200
    );

    let deleted = delete_account(&app, &ann, "password-ann").await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let cookie = deleted.header("set-cookie").unwrap_or_default();
    assert!(cookie.starts_with("easel_refresh=;"), "{cookie}");

    // Closed: no session, no key, no login, no profile.
    for token in [&ann, &key] {
        assert_eq!(
            app.call(Method::GET, "/v1/me", Some(token), None)
                .await
                .status,
            401
        );
    }
    app.call(
        Method::POST,
        "/v1/auth/login",
        None,
        Some(json!({"email": "ann@example.com", "password": "password-ann"})),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    app.call(Method::GET, "/v1/users/ann", None, None)
        .await
        .assert_problem(404, "not_found");

    // Erased: the running job canceled with its refund, the images out of every list, the likes
    // taken back, the collections gone, the prompts blank.
    let job = app
        .text(&format!(
            "SELECT status || ' ' || credits_refunded || ' ' || error_message FROM generations WHERE id = '{slow}'"
        ))
        .await;
    assert_eq!(
        job.as_deref(),
        Some("canceled 1 canceled: the account was deleted")
    );
    let gallery = app.call(Method::GET, "/v1/gallery", None, None).await;
    assert_eq!(ids(&gallery.json), [bobs_image]);
    assert_eq!(gallery.json["data"][0]["like_count"], 0, "{}", gallery.text);
    let bobs = app
        .call(
            Method::GET,
            &format!("/v1/collections/{}/images", collections[1]),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(ids(&bobs.json), Vec::<String>::new());
    let bobs = app
        .call(
            Method::GET,
            &format!("/v1/collections/{}", collections[1]),
            Some(&bob),
            None,
        )
        .await;
    assert!(bobs.json["cover_image_id"].is_null(), "{}", bobs.text);
    assert_eq!(app.count("collections").await, 1);
    assert_eq!(
        app.count("image_likes").await,
        1,
        "Bob's like of a deleted image is left"
    );
    assert_eq!(
        app.count("generations g JOIN users u ON u.id = g.user_id WHERE u.deleted_at IS NOT NULL AND g.prompt <> ''")
            .await,
        0
    );
    assert_eq!(
        app.count("images WHERE prompt = '' AND deleted_at IS NOT NULL")
            .await,
        2,
        "the lighthouse and the restyled photo"
    );
    assert_eq!(
        app.count(
            "users WHERE erased_at IS NOT NULL AND email IS NULL AND username LIKE 'deleted-%'"
        )
        .await,
        1
    );

    // Where it signed in from is forgotten.
    let closed = "sessions s JOIN users u ON u.id = s.user_id WHERE u.deleted_at IS NOT NULL";
    assert_eq!(
        app.count(&format!(
            "{closed} AND (s.ip IS NOT NULL OR s.user_agent IS NOT NULL)"
        ))
        .await,
        0
    );
    assert!(app.count(closed).await > 0, "the rows stay, nameless");
    assert!(
        app.count("sessions WHERE ip IS NOT NULL").await > 0,
        "others' are kept"
    );

    // The photos are gone, files and all; the generation stays, without its input.
    assert_eq!(app.count("uploads").await, 0);
    assert_eq!(app.count("generation_inputs").await, 0);
    assert!(upload_files.iter().all(|f| !f.exists()), "{upload_files:?}");

    // The ledger keeps every entry (the refund added one) and still adds up.
    assert_eq!(app.count("credit_entries").await, entries_before + 1);
    let mismatches = easel::credits::store::mismatches(&mut app.db().await)
        .await
        .expect("verify");
    assert!(mismatches.is_empty(), "{mismatches:?}");

    // The image's files go with the next file sweep.
    easel::gallery::service::sweep_files(&app.shared.state)
        .await
        .expect("sweep files");
    assert_eq!(
        app.count("images WHERE files_removed_at IS NOT NULL").await,
        2
    );

    // The email and username are free again, for a new account.
    let again = app.signup("ann").await;
    assert_ne!(again["user"]["id"], json!(null));
    assert_eq!(app.count("users").await, 3);
}

/// Erasing cut short (the process died after closing the account) is finished by the watchdog,
/// and a generation still queued then is canceled with its refund.
#[tokio::test]
async fn an_erasure_cut_short_is_finished_by_the_watchdog() {
    let app = TestApp::spawn_with(&[("EASEL_JOB_WORKERS", "0")]).await;
    let ann = signup(&app, "ann").await;
    let queued = generate(
        &app,
        &ann,
        json!({"prompt": "never drawn", "model": "easel-sketch"}),
    )
    .await;
    assert_eq!(queued.status, 202, "{}", queued.text);
    // Closed, and nothing more: as if the process stopped there.
    let mut conn = app.db().await;
    let user = app
        .text("SELECT id::text FROM users")
        .await
        .unwrap_or_default();
    let user = easel::identity::UserId(user.parse().expect("uuid"));
    assert!(
        easel::identity::store::mark_deleted(&mut conn, user, "deleted-test")
            .await
            .expect("mark")
    );
    let state = &app.shared.state;
    assert_eq!(
        easel::identity::deletion::erase_pending(state)
            .await
            .expect("erase"),
        1
    );
    assert_eq!(
        app.count("generations WHERE status = 'canceled' AND credits_refunded = 1 AND prompt = ''")
            .await,
        1
    );
    assert_eq!(app.count("users WHERE erased_at IS NOT NULL").await, 1);
    // Done once: the next pass finds nothing.
    assert_eq!(
        easel::identity::deletion::erase_pending(state)
            .await
            .expect("erase"),
        0
    );
    let mismatches = easel::credits::store::mismatches(&mut conn)
        .await
        .expect("verify");
    assert!(mismatches.is_empty(), "{mismatches:?}");
}
