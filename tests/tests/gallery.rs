//! The gallery: my images, the public feed, likes, artist pages and collections, with every access
//! rule tried as an attack by another user and by an anonymous caller.

use easel_tests::{Reply, TestApp, Value, json};
use reqwest::Method;
use std::time::{Duration, Instant};

struct Person {
    token: String,
    id: String,
}

async fn person(app: &TestApp, name: &str) -> Person {
    let signed_up = app.signup(name).await;
    Person {
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

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    who: Option<&Person>,
    body: Option<Value>,
) -> Reply {
    app.call(method, path, who.map(|p| p.token.as_str()), body)
        .await
}

/// A finished image made through the API (the local provider), private as generations start.
async fn generated_image(app: &TestApp, who: &Person, prompt: &str) -> String {
    let accepted = call(app, Method::POST, "/v1/generations", Some(who), Some(json!({"prompt": prompt, "model": "easel-sketch", "negative_prompt": "blur", "seed": 3}))).await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.json["id"].as_str().unwrap_or_default().to_owned();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let g = call(
            app,
            Method::GET,
            &format!("/v1/generations/{id}"),
            Some(who),
            None,
        )
        .await;
        if g.json["status"] == "succeeded" {
            return g.json["images"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        assert!(Instant::now() < until, "{}", g.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inserts a finished image straight into the database (for lists that need many).
async fn seeded_image(
    app: &TestApp,
    owner: &Person,
    prompt: &str,
    visibility: &str,
    title: Option<&str>,
    likes: i32,
    nsfw: bool,
) -> String {
    let generation = uuid::Uuid::now_v7();
    let image = uuid::Uuid::now_v7();
    let prompt = prompt.replace('\'', "''");
    let title = title.map_or("NULL".to_owned(), |t| {
        format!("'{}'", t.replace('\'', "''"))
    });
    app.execute(&format!(
        "INSERT INTO generations (id, user_id, model, prompt, aspect_ratio, width, height, num_outputs, seed, visibility, status, progress, credits_charged, deadline_at, completed_at) \
         VALUES ('{generation}', '{}', 'easel-sketch', '{prompt}', '1:1', 64, 64, 1, 1, '{visibility}', 'succeeded', 100, 1, now(), now())",
        owner.id
    ))
    .await;
    app.execute(&format!(
        "INSERT INTO images (id, user_id, generation_id, output_index, model, prompt, width, height, seed, visibility, content_hash, thumb_hash, content_type, byte_size, nsfw, title, like_count) \
         VALUES ('{image}', '{}', '{generation}', 0, 'easel-sketch', '{prompt}', 64, 64, 1, '{visibility}', '{}', '{}', 'image/png', 10, {nsfw}, {title}, {likes})",
        owner.id,
        "a".repeat(64),
        "b".repeat(64)
    ))
    .await;
    image.to_string()
}

/// The ids of a page's items, in order.
pub(crate) fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every item of a list, page by page; `between` runs before each next page.
async fn all_pages(
    app: &TestApp,
    path: &str,
    who: Option<&Person>,
    mut between: impl AsyncFnMut(),
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{separator}limit=7&cursor={c}"),
            None => format!("{path}{separator}limit=7"),
        };
        let page = call(app, Method::GET, &url, who, None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(ids(&page.json));
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
        between().await;
    }
}

#[tokio::test]
async fn a_published_image_reaches_the_gallery_and_is_liked_once_per_person() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let bob = person(&app, "bob").await;
    let image = generated_image(&app, &ada, "a lighthouse at dusk").await;

    // Private: only Ada.
    let mine = call(
        &app,
        Method::GET,
        &format!("/v1/images/{image}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(mine.json["negative_prompt"], "blur");
    assert_eq!(mine.json["visibility"], "private");
    call(
        &app,
        Method::GET,
        &format!("/v1/images/{image}"),
        Some(&bob),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    call(
        &app,
        Method::GET,
        &format!("/v1/images/{image}"),
        None,
        None,
    )
    .await
    .assert_problem(404, "not_found");
    assert!(
        ids(&call(&app, Method::GET, "/v1/gallery", None, None)
            .await
            .json)
        .is_empty()
    );
    assert_eq!(
        ids(&call(&app, Method::GET, "/v1/images", Some(&ada), None)
            .await
            .json),
        vec![image.clone()]
    );

    let published = call(
        &app,
        Method::PATCH,
        &format!("/v1/images/{image}"),
        Some(&ada),
        Some(json!({"visibility": "public", "title": "Dusk"})),
    )
    .await;
    assert_eq!(published.status, 200, "{}", published.text);
    assert_eq!(published.json["title"], "Dusk");
    let feed = call(&app, Method::GET, "/v1/gallery", None, None).await;
    assert_eq!(ids(&feed.json), vec![image.clone()]);
    assert_eq!(feed.json["data"][0]["owner"]["username"], "ada");
    assert!(
        feed.json["data"][0]["negative_prompt"].is_null(),
        "only the owner sees it"
    );
    let seen_by_bob = call(
        &app,
        Method::GET,
        &format!("/v1/images/{image}"),
        Some(&bob),
        None,
    )
    .await;
    assert!(seen_by_bob.json["negative_prompt"].is_null());
    let file = app
        .client
        .get(app.url(&format!("/v1/images/{image}/file")))
        .send()
        .await
        .expect("file");
    assert_eq!(file.status(), 200, "a public file needs no credential");

    for _ in 0..2 {
        let liked = call(
            &app,
            Method::PUT,
            &format!("/v1/images/{image}/like"),
            Some(&bob),
            None,
        )
        .await;
        assert_eq!(
            liked.json,
            json!({"liked": true, "like_count": 1}),
            "{}",
            liked.text
        );
    }
    let as_bob = call(
        &app,
        Method::GET,
        &format!("/v1/images/{image}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(as_bob.json["liked_by_me"], true);
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("/v1/images/{image}"),
            Some(&ada),
            None
        )
        .await
        .json["liked_by_me"],
        false
    );
    call(
        &app,
        Method::PUT,
        &format!("/v1/images/{image}/like"),
        None,
        None,
    )
    .await
    .assert_problem(401, "unauthorized");
    for _ in 0..2 {
        let unliked = call(
            &app,
            Method::DELETE,
            &format!("/v1/images/{image}/like"),
            Some(&bob),
            None,
        )
        .await;
        assert_eq!(unliked.json, json!({"liked": false, "like_count": 0}));
    }

    let avatar = call(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&ada),
        Some(json!({"avatar_image_id": image})),
    )
    .await;
    assert_eq!(avatar.status, 200, "{}", avatar.text);
    call(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&bob),
        Some(json!({"avatar_image_id": image})),
    )
    .await
    .assert_problem(422, "validation_failed");
    let profile = call(&app, Method::GET, "/v1/users/ada", None, None).await;
    assert_eq!(
        profile.json["avatar_url"],
        format!("/v1/images/{image}/file?variant=thumb")
    );
    assert_eq!(profile.status, 200, "{}", profile.text);
    assert_eq!(profile.json["public_images"], 1);
    assert_eq!(
        ids(&call(&app, Method::GET, "/v1/users/ada/images", None, None)
            .await
            .json),
        vec![image.clone()]
    );

    // Unlisted: readable by id, listed nowhere.
    call(
        &app,
        Method::PATCH,
        &format!("/v1/images/{image}"),
        Some(&ada),
        Some(json!({"visibility": "unlisted"})),
    )
    .await;
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("/v1/images/{image}"),
            None,
            None
        )
        .await
        .status,
        200
    );
    assert!(
        ids(&call(&app, Method::GET, "/v1/gallery", None, None)
            .await
            .json)
        .is_empty()
    );
    assert!(
        ids(&call(&app, Method::GET, "/v1/users/ada/images", None, None)
            .await
            .json)
        .is_empty()
    );
    assert_eq!(
        call(&app, Method::GET, "/v1/users/ada", None, None)
            .await
            .json["public_images"],
        0
    );
    call(&app, Method::GET, "/v1/users/nobody-here", None, None)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn likes_count_right_under_concurrency() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let image = seeded_image(&app, &ada, "a crowd", "public", None, 0, false).await;
    let mut people = Vec::new();
    for n in 0..12 {
        people.push(person(&app, &format!("fan{n}")).await);
    }
    let like_path = format!("/v1/images/{image}/like");
    let likes = people
        .iter()
        .flat_map(|p| [p, p])
        .map(|p| call(&app, Method::PUT, &like_path, Some(p), None));
    for reply in futures_util::future::join_all(likes).await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let unlikes = people[..5]
        .iter()
        .map(|p| call(&app, Method::DELETE, &like_path, Some(p), None));
    futures_util::future::join_all(unlikes).await;
    let shown = call(
        &app,
        Method::GET,
        &format!("/v1/images/{image}"),
        None,
        None,
    )
    .await;
    assert_eq!(shown.json["like_count"], 7);
    assert_eq!(
        app.count(&format!("image_likes WHERE image_id = '{image}'"))
            .await,
        7
    );
}

#[tokio::test]
async fn others_cannot_see_change_or_use_private_images_and_collections() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let eve = person(&app, "eve").await;
    let secret = seeded_image(
        &app,
        &ada,
        "a secret garden",
        "private",
        Some("mine"),
        0,
        false,
    )
    .await;
    let flagged = seeded_image(&app, &ada, "a flagged picture", "public", None, 0, true).await;
    let collection = call(
        &app,
        Method::POST,
        "/v1/collections",
        Some(&ada),
        Some(json!({"name": "Private things"})),
    )
    .await;
    assert_eq!(collection.status, 201, "{}", collection.text);
    let collection = collection.json["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    call(
        &app,
        Method::PUT,
        &format!("/v1/collections/{collection}/images/{secret}"),
        Some(&ada),
        None,
    )
    .await;
    let eves = call(
        &app,
        Method::POST,
        "/v1/collections",
        Some(&eve),
        Some(json!({"name": "Loot", "visibility": "public"})),
    )
    .await;
    let eves = eves.json["id"].as_str().unwrap_or_default().to_owned();

    for who in [Some(&eve), None] {
        for image in [&secret, &flagged] {
            call(&app, Method::GET, &format!("/v1/images/{image}"), who, None)
                .await
                .assert_problem(404, "not_found");
            let file = app
                .client
                .get(app.url(&format!("/v1/images/{image}/file")))
                .send()
                .await
                .expect("file");
            assert_eq!(file.status(), 404);
        }
        call(
            &app,
            Method::GET,
            &format!("/v1/collections/{collection}"),
            who,
            None,
        )
        .await
        .assert_problem(404, "not_found");
        call(
            &app,
            Method::GET,
            &format!("/v1/collections/{collection}/images"),
            who,
            None,
        )
        .await
        .assert_problem(404, "not_found");
    }
    // Changes by Eve: each a 404, and nothing moves.
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/v1/images/{secret}"),
            Some(json!({"visibility": "public", "title": "stolen"})),
        ),
        (Method::DELETE, format!("/v1/images/{secret}"), None),
        (Method::PUT, format!("/v1/images/{secret}/like"), None),
        (Method::PUT, format!("/v1/images/{flagged}/like"), None),
        (
            Method::PATCH,
            format!("/v1/collections/{collection}"),
            Some(json!({"name": "pwned", "visibility": "public"})),
        ),
        (
            Method::DELETE,
            format!("/v1/collections/{collection}"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/collections/{collection}/images/{flagged}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/collections/{collection}/images/{secret}"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/collections/{eves}/images/{secret}"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/collections/{eves}/images/{flagged}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/images?collection={collection}"),
            None,
        ),
    ] {
        let reply = call(&app, method.clone(), &path, Some(&eve), body).await;
        reply.assert_problem(404, "not_found");
        let anonymous = call(&app, method.clone(), &path, None, None).await;
        assert_eq!(
            anonymous.status, 401,
            "{method} {path} anonymously: {}",
            anonymous.text
        );
    }
    let kept = call(
        &app,
        Method::GET,
        &format!("/v1/images/{secret}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(
        (
            kept.json["visibility"].as_str(),
            kept.json["title"].as_str(),
            kept.json["like_count"].as_i64()
        ),
        (Some("private"), Some("mine"), Some(0))
    );
    let ada_collection = call(
        &app,
        Method::GET,
        &format!("/v1/collections/{collection}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(
        (
            ada_collection.json["name"].as_str(),
            ada_collection.json["visibility"].as_str(),
            ada_collection.json["image_count"].as_i64()
        ),
        (Some("Private things"), Some("private"), Some(1))
    );
    assert_eq!(
        app.count(&format!("collection_images WHERE collection_id = '{eves}'"))
            .await,
        0
    );
    assert_eq!(app.count("image_likes").await, 0);
    // Lists show nothing of it either.
    assert!(
        ids(&call(&app, Method::GET, "/v1/gallery", Some(&eve), None)
            .await
            .json)
        .is_empty()
    );
    assert!(
        ids(&call(&app, Method::GET, "/v1/users/ada/images", None, None)
            .await
            .json)
        .is_empty()
    );
    assert!(
        call(&app, Method::GET, "/v1/users/ada/collections", None, None)
            .await
            .json["data"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    assert!(
        ids(&call(&app, Method::GET, "/v1/images", Some(&eve), None)
            .await
            .json)
        .is_empty()
    );
}

/// The cover a caller sees, and whether it is the chosen one.
async fn cover_as(app: &TestApp, viewer: Option<&Person>, collection: &str) -> (Value, Value) {
    let shown = call(
        app,
        Method::GET,
        &format!("/v1/collections/{collection}"),
        viewer,
        None,
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    let cover = shown.json["cover_image_id"].clone();
    let url = match cover.as_str() {
        Some(id) => json!(format!("/v1/images/{id}/file?variant=thumb")),
        None => Value::Null,
    };
    assert_eq!(shown.json["cover_thumb_url"], url, "{}", shown.text);
    (cover, shown.json["cover_chosen"].clone())
}

#[tokio::test]
async fn a_collection_shows_the_chosen_cover_or_its_newest_image_the_caller_may_see() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let created = call(
        &app,
        Method::POST,
        "/v1/collections",
        Some(&ada),
        Some(json!({"name": "Coast", "visibility": "public"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        (
            &created.json["cover_image_id"],
            &created.json["cover_chosen"]
        ),
        (&Value::Null, &json!(false)),
        "an empty collection has no cover"
    );
    let coast = created.json["id"].as_str().unwrap_or_default().to_owned();
    let private = seeded_image(&app, &ada, "a private cove", "private", None, 0, false).await;
    let public = seeded_image(&app, &ada, "a public cliff", "public", None, 0, false).await;
    for image in [&private, &public] {
        let added = call(
            &app,
            Method::PUT,
            &format!("/v1/collections/{coast}/images/{image}"),
            Some(&ada),
            None,
        )
        .await;
        assert_eq!(added.status, 204, "{}", added.text);
    }
    let (no, yes) = (json!(false), json!(true));
    assert_eq!(
        cover_as(&app, None, &coast).await,
        (json!(public), no.clone())
    );

    let chosen = call(
        &app,
        Method::PATCH,
        &format!("/v1/collections/{coast}"),
        Some(&ada),
        Some(json!({"cover_image_id": private})),
    )
    .await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    assert_eq!(
        (&chosen.json["cover_image_id"], &chosen.json["cover_chosen"]),
        (&json!(private), &yes)
    );
    assert_eq!(
        cover_as(&app, None, &coast).await,
        (json!(public), no.clone()),
        "others never see a private cover, nor its id"
    );
    let listed = call(&app, Method::GET, "/v1/users/ada/collections", None, None).await;
    assert_eq!(
        listed.json["data"][0]["cover_image_id"],
        json!(public),
        "{}",
        listed.text
    );

    let cleared = call(
        &app,
        Method::PATCH,
        &format!("/v1/collections/{coast}"),
        Some(&ada),
        Some(json!({"cover_image_id": null})),
    )
    .await;
    assert_eq!(
        (
            &cleared.json["cover_image_id"],
            &cleared.json["cover_chosen"]
        ),
        (&json!(public), &no),
        "{}",
        cleared.text
    );

    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/v1/images/{public}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(
        cover_as(&app, Some(&ada), &coast).await,
        (json!(private), no)
    );
    assert_eq!(
        cover_as(&app, None, &coast).await,
        (Value::Null, json!(false)),
        "nothing left that others may see"
    );
}

#[tokio::test]
async fn collections_have_unique_slugs_keep_order_and_show_only_what_a_viewer_may_see() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let bob = person(&app, "bob").await;
    let first = call(
        &app,
        Method::POST,
        "/v1/collections",
        Some(&ada),
        Some(json!({"name": "Summer Trip!", "visibility": "public"})),
    )
    .await;
    let second = call(
        &app,
        Method::POST,
        "/v1/collections",
        Some(&ada),
        Some(json!({"name": "summer   trip"})),
    )
    .await;
    assert_eq!(first.json["slug"], "summer-trip");
    assert_eq!(second.json["slug"], "summer-trip-2");
    assert_eq!(
        first.header("location"),
        Some(
            format!(
                "/v1/collections/{}",
                first.json["id"].as_str().unwrap_or_default()
            )
            .as_str()
        )
    );
    call(
        &app,
        Method::POST,
        "/v1/collections",
        Some(&ada),
        Some(json!({"name": "  "})),
    )
    .await
    .assert_problem(422, "validation_failed");
    call(
        &app,
        Method::POST,
        "/v1/collections",
        Some(&ada),
        Some(json!({"name": "x", "user_id": bob.id})),
    )
    .await
    .assert_problem(422, "validation_failed");
    let trip = first.json["id"].as_str().unwrap_or_default().to_owned();

    let own_private = seeded_image(&app, &ada, "my private beach", "private", None, 0, false).await;
    let own_public = seeded_image(&app, &ada, "my public beach", "public", None, 0, false).await;
    let bobs_public = seeded_image(&app, &bob, "bob's harbour", "public", None, 0, false).await;
    for image in [&own_private, &own_public, &bobs_public] {
        let added = call(
            &app,
            Method::PUT,
            &format!("/v1/collections/{trip}/images/{image}"),
            Some(&ada),
            None,
        )
        .await;
        assert_eq!(added.status, 204, "{}", added.text);
    }
    // Adding again keeps its place.
    call(
        &app,
        Method::PUT,
        &format!("/v1/collections/{trip}/images/{own_private}"),
        Some(&ada),
        None,
    )
    .await;
    let as_ada = call(
        &app,
        Method::GET,
        &format!("/v1/collections/{trip}/images"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(
        ids(&as_ada.json),
        [bobs_public.clone(), own_public.clone(), own_private.clone()],
        "most recently added first"
    );
    let as_bob = call(
        &app,
        Method::GET,
        &format!("/v1/collections/{trip}/images"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(
        ids(&as_bob.json),
        [bobs_public.clone(), own_public.clone()],
        "a private image stays private inside a public collection"
    );
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("/v1/collections/{trip}"),
            None,
            None
        )
        .await
        .json["image_count"],
        2
    );
    assert_eq!(
        ids(&call(
            &app,
            Method::GET,
            &format!("/v1/images?collection={trip}"),
            Some(&ada),
            None
        )
        .await
        .json),
        [own_public.clone(), own_private.clone()]
    );

    call(&app, Method::PATCH, &format!("/v1/collections/{trip}"), Some(&ada), Some(json!({"cover_image_id": seeded_image(&app, &ada, "elsewhere", "public", None, 0, false).await}))).await.assert_problem(422, "validation_failed");
    let covered = call(
        &app,
        Method::PATCH,
        &format!("/v1/collections/{trip}"),
        Some(&ada),
        Some(json!({"cover_image_id": own_public, "name": "Autumn trip", "description": "leaves"})),
    )
    .await;
    assert_eq!(covered.status, 200, "{}", covered.text);
    assert_eq!(covered.json["slug"], "autumn-trip");
    assert_eq!(
        covered.json["cover_thumb_url"],
        format!("/v1/images/{own_public}/file?variant=thumb")
    );

    let listed = call(&app, Method::GET, "/v1/users/ada/collections", None, None).await;
    assert_eq!(
        listed.json["data"].as_array().map(Vec::len),
        Some(1),
        "only the public one: {}",
        listed.text
    );
    assert_eq!(
        call(&app, Method::GET, "/v1/collections", Some(&ada), None)
            .await
            .json["data"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let removed = call(
        &app,
        Method::DELETE,
        &format!("/v1/collections/{trip}/images/{own_public}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(removed.status, 204);
    let after = call(
        &app,
        Method::GET,
        &format!("/v1/collections/{trip}"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(
        (&after.json["cover_image_id"], &after.json["cover_chosen"]),
        (&json!(bobs_public), &json!(false)),
        "a removed image stops being the cover; the one added last stands in"
    );
    assert_eq!(after.json["image_count"], 2);
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("/v1/collections/{trip}"),
            Some(&ada),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        app.count("images").await,
        4,
        "deleting a collection keeps its images"
    );
}

#[tokio::test]
async fn feed_pages_never_repeat_or_skip_while_new_images_arrive() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let mut expected = Vec::new();
    for n in 0..30 {
        expected.push(
            seeded_image(
                &app,
                &ada,
                &format!("picture {n}"),
                "public",
                None,
                n % 5,
                false,
            )
            .await,
        );
    }
    expected.reverse();
    let mut arrivals = 0;
    let new = all_pages(&app, "/v1/gallery?sort=new", None, async || {
        arrivals += 1;
        seeded_image(
            &app,
            &ada,
            &format!("late arrival {arrivals}"),
            "public",
            None,
            9,
            false,
        )
        .await;
    })
    .await;
    assert_eq!(
        new, expected,
        "exactly the images there when the first page was read, newest first"
    );

    for sort in ["top", "top&period=week", "trending"] {
        let seen = all_pages(
            &app,
            &format!("/v1/gallery?sort={sort}"),
            None,
            async || {
                seeded_image(&app, &ada, "another late one", "public", None, 0, false).await;
            },
        )
        .await;
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{sort}: no image twice");
        for image in &expected {
            assert!(seen.contains(image), "{sort}: {image} skipped");
        }
    }
    let top = call(
        &app,
        Method::GET,
        "/v1/gallery?sort=top&limit=3",
        None,
        None,
    )
    .await;
    let counts: Vec<i64> = top.json["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|i| i["like_count"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(counts, [9, 9, 9]);

    // A cursor belongs to its list.
    let page = call(
        &app,
        Method::GET,
        "/v1/gallery?sort=new&limit=2",
        None,
        None,
    )
    .await;
    let cursor = page.json["next_cursor"].as_str().unwrap_or_default();
    call(
        &app,
        Method::GET,
        &format!("/v1/gallery?sort=top&cursor={cursor}"),
        None,
        None,
    )
    .await
    .assert_problem(400, "invalid_cursor");
    call(&app, Method::GET, "/v1/gallery?sort=relevance", None, None)
        .await
        .assert_problem(422, "validation_failed");
    call(
        &app,
        Method::GET,
        "/v1/gallery?sort=new&period=week",
        None,
        None,
    )
    .await
    .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn search_matches_prompts_and_titles_best_first() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let in_prompt = seeded_image(
        &app,
        &ada,
        "a red lighthouse on a cliff",
        "public",
        None,
        0,
        false,
    )
    .await;
    let in_title = seeded_image(
        &app,
        &ada,
        "waves at night",
        "public",
        Some("Lighthouse keeper"),
        0,
        false,
    )
    .await;
    seeded_image(&app, &ada, "a forest in fog", "public", None, 0, false).await;
    seeded_image(
        &app,
        &ada,
        "a private lighthouse",
        "private",
        None,
        0,
        false,
    )
    .await;
    seeded_image(&app, &ada, "a flagged lighthouse", "public", None, 0, true).await;
    let found = call(&app, Method::GET, "/v1/gallery?q=lighthouses", None, None).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(
        ids(&found.json),
        [in_title.clone(), in_prompt.clone()],
        "stemmed, titles weigh more, only public unflagged"
    );
    let phrase = call(
        &app,
        Method::GET,
        "/v1/gallery?q=%22red%20lighthouse%22%20-forest&sort=new",
        None,
        None,
    )
    .await;
    assert_eq!(ids(&phrase.json), [in_prompt]);
    // Text PostgreSQL cannot hold is refused up front, never a 500.
    for path in ["/v1/gallery?q=a%00b", "/v1/gallery?model=x%00"] {
        call(&app, Method::GET, path, None, None)
            .await
            .assert_problem(422, "validation_failed");
    }
    call(&app, Method::GET, "/v1/images?model=x%00", Some(&ada), None)
        .await
        .assert_problem(422, "validation_failed");
    call(&app, Method::GET, "/v1/users/ad%00a", None, None)
        .await
        .assert_problem(404, "not_found");
    let by_model = call(
        &app,
        Method::GET,
        "/v1/gallery?model=no-such-model",
        None,
        None,
    )
    .await;
    assert!(ids(&by_model.json).is_empty());
}

/// A one-word ranked search is served from `image_search_terms`, and gives exactly the order (and
/// paging) the full-text search over every match gives, before and after images change: published,
/// made private, retitled, flagged, deleted.
#[tokio::test]
async fn one_word_searches_page_exactly_as_full_text_ranking_does() {
    use diesel::sql_types::{BigInt, Text};
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let words = ["lighthouse", "fog", "storm", "harbour", "the", "gull"];
    let mut images = Vec::new();
    for n in 0..36_usize {
        // Prompts with a word repeated or not, of several lengths, so ranks differ and also tie.
        let prompt: Vec<&str> = (0..1 + n % 5)
            .map(|k| words[(n * 7 + k * 3) % words.len()])
            .collect();
        let title = (n % 4 == 0).then(|| words[n % words.len()]);
        let visibility = if n % 9 == 4 { "private" } else { "public" };
        let nsfw = n % 11 == 5;
        let id = seeded_image(&app, &ada, &prompt.join(" "), visibility, title, 0, nsfw).await;
        images.push(id);
    }
    let expected = async |word: &str| -> Vec<String> {
        let mut conn = app.db().await;
        diesel::sql_query(
            "SELECT i.id::text AS id FROM images i \
             WHERE i.visibility = 'public' AND NOT i.nsfw AND i.deleted_at IS NULL \
               AND i.search @@ websearch_to_tsquery('english', $1) \
             ORDER BY ts_rank(i.search, websearch_to_tsquery('english', $1)) DESC, i.id DESC",
        )
        .bind::<Text, _>(word)
        .load::<Id>(&mut conn)
        .await
        .expect("full-text ranking")
        .into_iter()
        .map(|row| row.id)
        .collect()
    };
    let check = async |when: &str| {
        for word in [
            "lighthouse",
            "Lighthouses",
            "fog",
            "storm",
            "gull",
            "the",
            "absent",
        ] {
            let want = expected(word).await;
            let got = all_pages(&app, &format!("/v1/gallery?q={word}"), None, async || {}).await;
            assert_eq!(got, want, "{when}: {word}");
        }
        // Served from the terms table: it holds exactly the public matches.
        let mut conn = app.db().await;
        let kept: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM image_search_terms WHERE lexeme = 'lighthous'",
        )
        .get_result(&mut conn)
        .await
        .expect("count terms");
        assert_eq!(
            kept.n as usize,
            expected("lighthouse").await.len(),
            "{when}"
        );
    };
    check("seeded").await;
    let lighthouses = expected("lighthouse").await;
    assert!(lighthouses.len() > 8, "the seed has matches");

    let changes = [
        (
            Method::PATCH,
            &lighthouses[0],
            Some(json!({"visibility": "private"})),
        ),
        (
            Method::PATCH,
            &lighthouses[1],
            Some(json!({"title": "gull gull"})),
        ),
        (
            Method::PATCH,
            &images[4],
            Some(json!({"visibility": "public"})),
        ),
        (Method::DELETE, &lighthouses[2], None),
    ];
    for (method, id, body) in changes {
        let changed = call(&app, method, &format!("/v1/images/{id}"), Some(&ada), body).await;
        assert!(changed.status < 300, "{}", changed.text);
    }
    TestApp::execute(
        &app,
        &format!(
            "UPDATE images SET nsfw = true WHERE id = '{}'",
            lighthouses[3]
        ),
    )
    .await;
    check("changed").await;
    let now = expected("lighthouse").await;
    for (n, id) in [0, 2, 3].map(|n| (n, &lighthouses[n])) {
        assert!(!now.contains(id), "change {n} left the search");
    }
}

#[tokio::test]
async fn a_deleted_image_leaves_every_list_and_its_unshared_files_go() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    // The same prompt and seed twice: the same bytes, so one shared file.
    let first = generated_image(&app, &ada, "twin towers of sand").await;
    let twin = generated_image(&app, &ada, "twin towers of sand").await;
    let other = generated_image(&app, &ada, "a single tower").await;
    for image in [&first, &twin, &other] {
        call(
            &app,
            Method::PATCH,
            &format!("/v1/images/{image}"),
            Some(&ada),
            Some(json!({"visibility": "public"})),
        )
        .await;
    }
    let collection = call(
        &app,
        Method::POST,
        "/v1/collections",
        Some(&ada),
        Some(json!({"name": "Towers", "visibility": "public"})),
    )
    .await;
    let collection = collection.json["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    call(
        &app,
        Method::PUT,
        &format!("/v1/collections/{collection}/images/{first}"),
        Some(&ada),
        None,
    )
    .await;
    let hash = |id: &str| format!("SELECT content_hash FROM images WHERE id = '{id}'");
    let shared_hash = app.text(&hash(&first)).await.unwrap_or_default();
    assert_eq!(
        app.text(&hash(&twin)).await.as_deref(),
        Some(shared_hash.as_str())
    );
    let other_hash = app.text(&hash(&other)).await.unwrap_or_default();
    let file = |hash: &str| {
        app.data_dir.join(format!(
            "images/originals/{}/{}/{hash}",
            &hash[..2],
            &hash[2..4]
        ))
    };
    let balance_before = call(&app, Method::GET, "/v1/credits", Some(&ada), None)
        .await
        .json["total"]
        .clone();

    for image in [&first, &other] {
        assert_eq!(
            call(
                &app,
                Method::DELETE,
                &format!("/v1/images/{image}"),
                Some(&ada),
                None
            )
            .await
            .status,
            204
        );
        call(
            &app,
            Method::DELETE,
            &format!("/v1/images/{image}"),
            Some(&ada),
            None,
        )
        .await
        .assert_problem(404, "not_found");
        call(
            &app,
            Method::GET,
            &format!("/v1/images/{image}"),
            Some(&ada),
            None,
        )
        .await
        .assert_problem(404, "not_found");
    }
    assert_eq!(
        ids(&call(&app, Method::GET, "/v1/gallery", None, None)
            .await
            .json),
        vec![twin.clone()]
    );
    assert_eq!(
        ids(&call(&app, Method::GET, "/v1/images", Some(&ada), None)
            .await
            .json),
        vec![twin.clone()]
    );
    assert!(
        ids(&call(
            &app,
            Method::GET,
            &format!("/v1/collections/{collection}/images"),
            None,
            None
        )
        .await
        .json)
        .is_empty()
    );

    // The watchdog sweeps too, so it may have removed some of these files already: what counts is
    // that after a sweep no deleted image still holds its files.
    let removed = easel::gallery::service::sweep_files(&app.shared.state)
        .await
        .expect("sweep");
    assert!(removed <= 2, "{removed} images swept, of 2 deleted");
    assert_eq!(
        app.count("images WHERE deleted_at IS NOT NULL AND files_removed_at IS NULL")
            .await,
        0,
        "a deleted image still holds its files"
    );
    assert_eq!(
        app.count("images WHERE deleted_at IS NOT NULL AND files_removed_at IS NOT NULL")
            .await,
        2
    );
    assert!(!file(&other_hash).exists(), "an unshared file is removed");
    assert!(
        file(&shared_hash).exists(),
        "a file another image uses stays"
    );
    let twin_file = app
        .client
        .get(app.url(&format!("/v1/images/{twin}/file")))
        .send()
        .await
        .expect("file");
    assert_eq!(twin_file.status(), 200);
    assert_eq!(
        easel::gallery::service::sweep_files(&app.shared.state)
            .await
            .expect("sweep"),
        0,
        "each image is swept once"
    );
    // The history stays: generations and the ledger are untouched.
    assert_eq!(app.count("generations WHERE status = 'succeeded'").await, 3);
    assert_eq!(
        call(&app, Method::GET, "/v1/credits", Some(&ada), None)
            .await
            .json["total"],
        balance_before
    );
}

/// The feed and the job runner's statements stay prepared on their connection: run again (with
/// other values, and another page size), each is the same one statement, not a fresh prepare.
/// Diesel would otherwise prepare raw SQL anew on every call, a round trip and a parse each time.
/// And each is planned once: after PostgreSQL's five trial runs it keeps a generic plan. A LIMIT
/// bound as a parameter, or a cursor or `top`'s period start the planner could see, would have it
/// plan every run afresh. Searches through the GIN index are the exception: each is planned for its
/// words, so none is kept.
#[tokio::test]
async fn hot_statements_stay_prepared_and_planned_once() {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    use easel::gallery::{store, types::Sort};

    #[derive(diesel::QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Double)]
        value: f64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = BigInt)]
        by_word: i64,
        /// The statements planned afresh on every run.
        #[diesel(sql_type = diesel::sql_types::Text)]
        replanned: String,
    }
    let app = TestApp::spawn().await;
    // Enough public images that a plan's row estimates matter (on empty tables every plan costs
    // the same), with fresh statistics.
    let owner = person(&app, "planner").await;
    let first = seeded_image(&app, &owner, "seed", "public", None, 0, false).await;
    TestApp::execute(
        &app,
        &format!(
        "INSERT INTO images (id, user_id, generation_id, output_index, model, prompt, width, height, seed, visibility, content_hash, thumb_hash, content_type, byte_size, nsfw, like_count) \
         SELECT gen_random_uuid(), i.user_id, i.generation_id, n, i.model, 'lighthouse at dusk ' || n, 64, 64, n, 'public', i.content_hash, i.thumb_hash, i.content_type, 10, false, n % 7 \
         FROM images i, generate_series(1, 5000) n WHERE i.id = '{first}'"
    ))
    .await;
    TestApp::execute(&app, "ANALYZE images").await;
    let viewer = easel::identity::UserId(uuid::Uuid::parse_str(&owner.id).expect("user id"));
    let mut conn = app.db().await;
    let feed = |sort, limit, q: Option<&str>| store::Feed {
        viewer: None,
        owner: None,
        model: None,
        kind: None,
        q: q.map(str::to_owned),
        sort,
        since: None,
        after: None,
        limit,
    };
    for run in 0..8 {
        let limit = if run % 2 == 0 { 20 } else { 5 };
        // A first page, and a page deep in the list (its cursor differs every run).
        for (sort, q, keys) in [
            (
                Sort::New,
                None,
                "SELECT 0::float8 AS value, id::text AS id FROM images ORDER BY id DESC",
            ),
            (
                Sort::Top,
                None,
                "SELECT like_count::float8 AS value, id::text AS id FROM images \
                 ORDER BY like_count DESC, id DESC",
            ),
            (
                Sort::Relevance,
                Some("lighthouse"),
                "SELECT rank::float8 AS value, image_id::text AS id FROM image_search_terms \
                 WHERE lexeme = 'lighthous' ORDER BY rank DESC, image_id DESC",
            ),
        ] {
            store::feed(&mut conn, feed(sort, limit, q))
                .await
                .expect("feed");
            let key: Key = diesel::sql_query(format!("{keys} OFFSET {} LIMIT 1", 4000 + run * 50))
                .get_result(&mut conn)
                .await
                .expect("a deep key");
            let id = uuid::Uuid::parse_str(&key.id).expect("image id");
            let deep = store::Feed {
                after: Some(store::FeedKey(key.value, easel::generation::ImageId(id))),
                since: (sort == Sort::Top).then(|| chrono::Utc::now() - chrono::Duration::days(7)),
                ..feed(sort, limit, q)
            };
            store::feed(&mut conn, deep).await.expect("deep page");
        }
        let signed_in = store::Feed {
            viewer: Some(viewer),
            ..feed(Sort::New, limit, None)
        };
        store::feed(&mut conn, signed_in).await.expect("feed");
        let words = format!("lighthouse{run}");
        store::feed(&mut conn, feed(Sort::Relevance, limit, Some(&words)))
            .await
            .expect("search");
        easel::generation::store::claim(&mut conn, &format!("test-worker-{run}"), 1)
            .await
            .expect("claim");
    }
    let prepared: Count = diesel::sql_query(
        "SELECT count(*) AS n, count(*) FILTER (WHERE statement LIKE '%image_search_terms%') AS by_word, \
                coalesce(string_agg(statement, ' | ') FILTER (WHERE generic_plans = 0), '') AS replanned \
         FROM pg_prepared_statements \
         WHERE statement LIKE 'SELECT p.*%' OR statement LIKE 'UPDATE generations%'",
    )
    .get_result(&mut conn)
    .await
    .expect("count prepared statements");
    // First and deep pages of `new`, `top` and the one-word search, `new` signed in, the claim;
    // none for the search of other words.
    assert_eq!(prepared.n, 8);
    assert_eq!(
        prepared.by_word, 2,
        "a one-word search reads the terms table"
    );
    assert_eq!(
        prepared.replanned, "",
        "kept statements planned on every run"
    );
}

/// A prepared statement names its columns: a column a newer server's migration adds must not break
/// this server's claim or credit spend ("cached plan must not change result type" with `RETURNING *`).
#[tokio::test]
async fn prepared_statements_survive_an_added_column() {
    use diesel_async::RunQueryDsl;
    let app = TestApp::spawn().await;
    let person = person(&app, "columns").await;
    let user = easel::identity::UserId(uuid::Uuid::parse_str(&person.id).expect("user id"));
    TestApp::execute(
        &app,
        &format!(
            "INSERT INTO credit_balances (user_id, purchased) VALUES ('{}', 10) \
             ON CONFLICT (user_id) DO UPDATE SET purchased = 10",
            person.id
        ),
    )
    .await;
    let mut conn = app.db().await;
    let spend = async |conn: &mut diesel_async::AsyncPgConnection| {
        let links = easel::credits::store::Links {
            id: easel::credits::EntryId::new(),
            kind: "admin_deduct",
            generation_id: None,
            purchase_id: None,
            admin_id: Some(user),
            reason: Some("test"),
            idempotency_key: None,
        };
        easel::credits::store::spend(conn, user, 1, &links)
            .await
            .expect("spend")
            .expect("the balance covers one credit")
    };
    spend(&mut conn).await;
    easel::generation::store::claim(&mut conn, "worker", 1)
        .await
        .expect("claim");
    for table in ["generations", "credit_entries"] {
        diesel::sql_query(format!(
            "ALTER TABLE {table} ADD COLUMN added_later integer"
        ))
        .execute(&mut conn)
        .await
        .expect("add a column");
    }
    spend(&mut conn).await;
    easel::generation::store::claim(&mut conn, "worker", 1)
        .await
        .expect("claim after a column was added");
}

async fn report(app: &TestApp, who: Option<&Person>, image: &str, body: Value) -> Reply {
    call(
        app,
        Method::POST,
        &format!("/v1/images/{image}/reports"),
        who,
        Some(body),
    )
    .await
}

async fn moderate(app: &TestApp, admin: &Person, image: &str, action: &str) -> Reply {
    call(
        app,
        Method::POST,
        &format!("/v1/admin/images/{image}/moderation"),
        Some(admin),
        Some(json!({"action": action})),
    )
    .await
}

fn image_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["image_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// People report public images; support hides one (its owner alone sees it after) and dismisses
/// the other (it stays), each decision closing every open report of the image.
#[tokio::test]
async fn reported_images_are_hidden_or_kept_by_support() {
    let app = TestApp::spawn().await;
    let (ann, bob, cat) = (
        person(&app, "ann").await,
        person(&app, "bob").await,
        person(&app, "cat").await,
    );
    let boss = person(&app, "boss").await;
    app.execute("UPDATE users SET role = 'admin' WHERE username = 'boss'")
        .await;
    let offending = seeded_image(&app, &bob, "something awful", "public", None, 0, false).await;
    let fine = seeded_image(&app, &bob, "a quiet pond", "unlisted", None, 0, false).await;
    let private = seeded_image(&app, &bob, "a secret", "private", None, 0, false).await;

    // Refusals record nothing.
    report(&app, None, &offending, json!({"reason": "spam"}))
        .await
        .assert_problem(401, "unauthorized");
    report(&app, Some(&ann), &private, json!({"reason": "spam"}))
        .await
        .assert_problem(404, "not_found");
    let own = report(&app, Some(&bob), &offending, json!({"reason": "spam"})).await;
    own.assert_problem(422, "validation_failed");
    report(&app, Some(&ann), &offending, json!({"reason": "boring"}))
        .await
        .assert_problem(422, "validation_failed");
    report(
        &app,
        Some(&ann),
        &offending,
        json!({"reason": "other", "details": "x".repeat(1001)}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let nul = report(
        &app,
        Some(&ann),
        &offending,
        json!({"reason": "other", "details": "a\u{0}b"}),
    )
    .await;
    assert_eq!(nul.json["errors"][0]["field"], "details", "{}", nul.text);
    assert_eq!(app.count("image_reports").await, 0);

    let first = report(
        &app,
        Some(&ann),
        &offending,
        json!({"reason": "hateful", "details": "  slurs in the title  "}),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json["status"], "open");
    assert_eq!(first.json["details"], "slurs in the title");
    // Once per person: the same report again.
    let again = report(&app, Some(&ann), &offending, json!({"reason": "spam"})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["id"], first.json["id"]);
    assert_eq!(again.json["reason"], "hateful");
    report(&app, Some(&cat), &offending, json!({"reason": "violent"})).await;
    report(&app, Some(&cat), &fine, json!({"reason": "spam"})).await;

    // Support's queue: oldest first report first, one row an image; others may not read it.
    call(&app, Method::GET, "/v1/admin/reports", Some(&ann), None)
        .await
        .assert_problem(403, "forbidden");
    moderate(&app, &ann, &offending, "hide")
        .await
        .assert_problem(403, "forbidden");
    let queue = call(&app, Method::GET, "/v1/admin/reports", Some(&boss), None).await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    assert_eq!(image_ids(&queue.json), [offending.as_str(), fine.as_str()]);
    let top = &queue.json["data"][0];
    assert_eq!(top["reports"], 2);
    assert_eq!(top["reasons"], json!(["hateful", "violent"]));
    assert_eq!(top["details"], json!(["slurs in the title"]));
    assert_eq!(top["owner_username"], "bob");
    let paged = call(
        &app,
        Method::GET,
        "/v1/admin/reports?limit=1",
        Some(&boss),
        None,
    )
    .await;
    assert_eq!(image_ids(&paged.json), [offending.as_str()]);
    let cursor = paged.json["next_cursor"].as_str().unwrap_or_default();
    let next = call(
        &app,
        Method::GET,
        &format!("/v1/admin/reports?limit=1&cursor={cursor}"),
        Some(&boss),
        None,
    )
    .await;
    assert_eq!(image_ids(&next.json), [fine.as_str()]);

    let hidden = moderate(&app, &boss, &offending, "hide").await;
    assert_eq!(hidden.status, 200, "{}", hidden.text);
    assert_eq!(hidden.json["reports_closed"], 2);
    let kept = moderate(&app, &boss, &fine, "dismiss").await;
    assert_eq!(kept.json["reports_closed"], 1);
    moderate(&app, &boss, &uuid::Uuid::now_v7().to_string(), "hide")
        .await
        .assert_problem(404, "not_found");

    // Hidden: out of the gallery and gone for others; its owner sees it flagged.
    let gallery = call(&app, Method::GET, "/v1/gallery", None, None).await;
    assert!(!ids(&gallery.json).contains(&offending), "{}", gallery.text);
    call(
        &app,
        Method::GET,
        &format!("/v1/images/{offending}"),
        Some(&ann),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    let owners = call(
        &app,
        Method::GET,
        &format!("/v1/images/{offending}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(owners.json["flagged"], true, "{}", owners.text);
    // Dismissed: it stays; the queue is empty until someone reports it again.
    let still = call(
        &app,
        Method::GET,
        &format!("/v1/images/{fine}"),
        Some(&ann),
        None,
    )
    .await;
    assert_eq!(still.status, 200);
    let queue = call(&app, Method::GET, "/v1/admin/reports", Some(&boss), None).await;
    assert_eq!(image_ids(&queue.json), Vec::<String>::new());
    report(&app, Some(&ann), &fine, json!({"reason": "copyright"})).await;
    let queue = call(&app, Method::GET, "/v1/admin/reports", Some(&boss), None).await;
    assert_eq!(image_ids(&queue.json), [fine.as_str()]);
    assert_eq!(
        queue.json["data"][0]["reports"], 1,
        "only the new one is open"
    );
    assert_eq!(
        app.count("image_reports WHERE resolution = 'hidden' AND resolved_by IS NOT NULL")
            .await,
        2
    );

    // A hide taken back: shown as before. Only support's own hide can be.
    let restored = moderate(&app, &boss, &offending, "restore").await;
    assert_eq!(restored.status, 200, "{}", restored.text);
    let gallery = call(&app, Method::GET, "/v1/gallery", None, None).await;
    assert!(ids(&gallery.json).contains(&offending), "{}", gallery.text);
    assert_eq!(
        app.count("image_reports WHERE resolution = 'restored'")
            .await,
        2
    );
    moderate(&app, &boss, &offending, "restore")
        .await
        .assert_problem(409, "conflict");
    moderate(&app, &boss, &fine, "restore")
        .await
        .assert_problem(409, "conflict");
    let flagged = seeded_image(&app, &bob, "flagged by a checker", "public", None, 0, true).await;
    moderate(&app, &boss, &flagged, "restore")
        .await
        .assert_problem(409, "conflict");
    assert_eq!(
        app.count("images WHERE nsfw").await,
        1,
        "the checker's flag stays"
    );
}
