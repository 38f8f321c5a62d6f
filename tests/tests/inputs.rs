//! Image inputs and 3D outputs: uploads (private, sniffed, limited, purged when unused), which images
//! may be an input, image-to-image and image-to-3D on the `local` provider, and a provider fetching
//! the input through its signed link and returning a GLB.

use easel_tests::replicate::FakeReplicate;
use easel_tests::{Reply, TestApp, json};
use reqwest::Method;
use std::time::{Duration, Instant};

struct Person {
    id: String,
    token: String,
}

async fn person(app: &TestApp, name: &str) -> Person {
    let signed_up = app.signup(name).await;
    Person {
        id: signed_up["user"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        token: signed_up["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

async fn upload(app: &TestApp, who: &Person, filename: &str, bytes: &[u8]) -> Reply {
    app.upload(&who.token, filename, bytes).await
}

/// Where a local store keeps an uploaded file with these bytes.
fn upload_file(app: &TestApp, bytes: &[u8]) -> std::path::PathBuf {
    let hash = easel::storage::content_hash(bytes);
    app.data_dir
        .join("images/uploads")
        .join(&hash[..2])
        .join(&hash[2..4])
        .join(&hash)
}

fn photo() -> Vec<u8> {
    easel::providers::local::sample_png("a photo of a teapot", 96, 72, 5).expect("png")
}

async fn generate(app: &TestApp, who: &Person, body: serde_json::Value) -> Reply {
    app.send(
        app.request(Method::POST, "/v1/generations")
            .bearer_auth(&who.token)
            .header("prefer", "wait=20")
            .json(&body),
    )
    .await
}

async fn balance(app: &TestApp, who: &Person) -> i64 {
    let reply = app
        .call(Method::GET, "/v1/credits", Some(&who.token), None)
        .await;
    reply.json["total"].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn uploads_are_private_judged_by_their_bytes_and_limited() {
    let app = TestApp::spawn_with(&[("EASEL_UPLOAD_MAX_BYTES", "20000")]).await;
    let ada = person(&app, "ada").await;
    let bob = person(&app, "bob").await;

    let png = photo();
    let made = upload(&app, &ada, "teapot.png", &png).await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.json["content_type"], "image/png");
    assert_eq!(made.json["width"], 96);
    assert_eq!(made.json["height"], 72);
    assert_eq!(made.json["byte_size"], png.len());
    let file = made.json["url"].as_str().unwrap_or_default().to_owned();
    assert_eq!(made.header("location"), Some(file.as_str()));

    let mine = app
        .send(app.request(Method::GET, &file).bearer_auth(&ada.token))
        .await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.header("content-type"), Some("image/png"));
    app.send(app.request(Method::GET, &file).bearer_auth(&bob.token))
        .await
        .assert_problem(404, "not_found");
    app.send(app.request(Method::GET, &file))
        .await
        .assert_problem(401, "unauthorized");

    // A name and a declared type prove nothing: the bytes decide.
    upload(&app, &ada, "script.png", b"#!/bin/sh\necho not an image\n")
        .await
        .assert_problem(415, "unsupported_media_type");
    let mut fake_png = b"\x89PNG\r\n\x1a\n".to_vec();
    fake_png.extend_from_slice(&[0; 64]);
    upload(&app, &ada, "broken.png", &fake_png)
        .await
        .assert_problem(415, "unsupported_media_type");
    upload(&app, &ada, "big.png", &vec![0x89; 30_000])
        .await
        .assert_problem(413, "payload_too_large");
    // A form without the field, or with two, names the field, as a JSON body's missing field does.
    let missing = app
        .upload_form(&ada.token, &[("other", "teapot.png", "image/png", &png)])
        .await;
    missing.assert_problem(422, "validation_failed");
    assert_eq!(missing.json["errors"][0]["field"], "file");
    let twice = app
        .upload_form(
            &ada.token,
            &[
                ("file", "one.png", "image/png", &png),
                ("file", "two.png", "image/png", &png),
            ],
        )
        .await;
    twice.assert_problem(422, "validation_failed");
    assert_eq!(twice.json["errors"][0]["field"], "file");
    // A form cut short is broken, not a validation matter.
    app.send(
        app.request(Method::POST, "/v1/uploads")
            .bearer_auth(&ada.token)
            .header("content-type", "multipart/form-data; boundary=cut")
            .body("--cut\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc"),
    )
    .await
    .assert_problem(400, "bad_request");
    // Not a form at all.
    app.send(
        app.request(Method::POST, "/v1/uploads")
            .bearer_auth(&ada.token)
            .json(&json!({"file": "x"})),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    assert_eq!(app.count("uploads").await, 1, "refusals store nothing");
}

#[tokio::test]
async fn image_to_image_and_image_to_3d_work_on_the_built_in_provider() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let made = upload(&app, &ada, "teapot.png", &photo()).await;
    let upload_id = made.json["id"].as_str().unwrap_or_default().to_owned();

    let restyled = generate(
        &app,
        &ada,
        json!({"prompt": "in autumn colours", "model": "easel-restyle", "image_input": upload_id, "seed": 3, "aspect_ratio": "4:3"}),
    )
    .await;
    assert_eq!(restyled.status, 200, "{}", restyled.text);
    assert_eq!(restyled.json["status"], "succeeded", "{}", restyled.text);
    let image = &restyled.json["images"][0];
    assert_eq!(image["kind"], "image");
    assert_eq!(
        (image["width"].as_i64(), image["height"].as_i64()),
        (Some(640), Some(480))
    );
    let original = app
        .send(
            app.request(Method::GET, image["url"].as_str().unwrap_or_default())
                .bearer_auth(&ada.token),
        )
        .await;
    assert_eq!(original.header("content-type"), Some("image/png"));

    let lifted = generate(
        &app,
        &ada,
        json!({"prompt": "a teapot to hold", "model": "easel-relief-3d", "image_input": upload_id}),
    )
    .await;
    assert_eq!(lifted.json["status"], "succeeded", "{}", lifted.text);
    let model = &lifted.json["images"][0];
    assert_eq!(model["kind"], "model3d");
    let id = model["id"].as_str().unwrap_or_default().to_owned();
    let glb = app
        .request(Method::GET, &format!("/v1/images/{id}/file"))
        .bearer_auth(&ada.token)
        .send()
        .await
        .expect("glb");
    assert_eq!(
        glb.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("model/gltf-binary")
    );
    let bytes = glb.bytes().await.expect("bytes");
    // A real glTF parser loads it: the document validates, the buffers and the texture decode.
    let (document, buffers, images) = gltf::import_slice(&bytes).expect("a valid GLB");
    let primitive = document
        .meshes()
        .next()
        .and_then(|m| m.primitives().next())
        .expect("a mesh");
    let positions = primitive
        .reader(|b| buffers.get(b.index()).map(|d| &d.0[..]))
        .read_positions()
        .map(Iterator::count);
    assert_eq!(positions, Some(96 * 96));
    assert_eq!(images.len(), 1, "the texture is embedded");
    let thumb = app
        .send(
            app.request(Method::GET, &format!("/v1/images/{id}/file?variant=thumb"))
                .bearer_auth(&ada.token),
        )
        .await;
    assert_eq!(thumb.header("content-type"), Some("image/webp"));

    // Listed with its kind and size; filterable by kind, in my images and in the gallery.
    let detail = app
        .call(
            Method::GET,
            &format!("/v1/images/{id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(detail.json["kind"], "model3d");
    assert_eq!(detail.json["content_type"], "model/gltf-binary");
    assert_eq!(detail.json["vertex_count"], 96 * 96);
    assert_eq!(detail.json["byte_size"], bytes.len());
    let models = app
        .call(
            Method::GET,
            "/v1/images?kind=model3d",
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(models.json["data"].as_array().map(Vec::len), Some(1));
    let pictures = app
        .call(Method::GET, "/v1/images?kind=image", Some(&ada.token), None)
        .await;
    assert_eq!(pictures.json["data"][0]["kind"], "image");
    assert_eq!(pictures.json["data"].as_array().map(Vec::len), Some(1));
    app.call(
        Method::PATCH,
        &format!("/v1/images/{id}"),
        Some(&ada.token),
        Some(json!({"visibility": "public"})),
    )
    .await;
    let gallery = app
        .call(Method::GET, "/v1/gallery?kind=model3d", None, None)
        .await;
    assert_eq!(gallery.json["data"][0]["id"], id.as_str());
    let no_models = app
        .call(Method::GET, "/v1/gallery?kind=image", None, None)
        .await;
    assert_eq!(no_models.json["data"].as_array().map(Vec::len), Some(0));

    // A 3D model is not an image input.
    generate(
        &app,
        &ada,
        json!({"prompt": "again", "model": "easel-restyle", "image_input": id}),
    )
    .await
    .assert_problem(404, "not_found");
}

/// A generation names the input it was given, so it can be made again with the same one: an upload
/// a generation used stays an input for later ones after an unused upload would have expired.
#[tokio::test]
async fn a_generation_names_its_input_and_the_input_serves_again() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let made = upload(&app, &ada, "teapot.png", &photo()).await;
    let upload_id = made.json["id"].as_str().unwrap_or_default().to_owned();
    let first = generate(
        &app,
        &ada,
        json!({"prompt": "in autumn colours", "model": "easel-restyle", "image_input": upload_id}),
    )
    .await;
    assert_eq!(first.json["status"], "succeeded", "{}", first.text);
    assert_eq!(first.json["image_input"], upload_id.as_str());
    // Its owner sees the input where the generation says.
    let input_url = first.json["image_input_url"].as_str().unwrap_or_default();
    assert_eq!(input_url, format!("/v1/uploads/{upload_id}/file"));
    let input = app
        .request(Method::GET, input_url)
        .bearer_auth(&ada.token)
        .send()
        .await
        .expect("input");
    assert_eq!(input.bytes().await.expect("bytes").to_vec(), photo());
    let first_id = first.json["id"].as_str().unwrap_or_default().to_owned();
    let image_id = first.json["images"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // An image of mine as the input; and a model that takes none.
    let from_image = generate(
        &app,
        &ada,
        json!({"prompt": "in winter", "model": "easel-restyle", "image_input": image_id}),
    )
    .await;
    assert_eq!(
        from_image.json["status"], "succeeded",
        "{}",
        from_image.text
    );
    assert_eq!(from_image.json["image_input"], image_id.as_str());
    assert_eq!(
        from_image.json["image_input_url"],
        format!("/v1/images/{image_id}/file")
    );
    let plain = generate(
        &app,
        &ada,
        json!({"prompt": "no input", "model": "easel-sketch"}),
    )
    .await;
    assert!(plain.json["image_input"].is_null(), "{}", plain.text);
    assert!(plain.json["image_input_url"].is_null(), "{}", plain.text);

    // Read back, one by one and listed.
    let read = app
        .call(
            Method::GET,
            &format!("/v1/generations/{first_id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(read.json["image_input"], upload_id.as_str());
    assert_eq!(read.json["image_input_url"], input_url);
    let listed = app
        .call(Method::GET, "/v1/generations", Some(&ada.token), None)
        .await;
    let inputs: Vec<serde_json::Value> = listed.json["data"]
        .as_array()
        .map(|page| page.iter().map(|g| g["image_input"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        inputs,
        [json!(null), json!(image_id), json!(upload_id)],
        "{}",
        listed.text
    );

    // Two days on, long past an unused upload's expiry, the same input makes the same image again.
    app.execute("UPDATE uploads SET created_at = now() - interval '2 days'")
        .await;
    let again = generate(
        &app,
        &ada,
        json!({"prompt": "in autumn colours", "model": "easel-restyle", "image_input": upload_id, "seed": first.json["seed"]}),
    )
    .await;
    assert_eq!(again.json["status"], "succeeded", "{}", again.text);
    assert_eq!(again.json["image_input"], upload_id.as_str());
    let bytes = |reply: &Reply| {
        let url = reply.json["images"][0]["url"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let app = &app;
        let token = ada.token.clone();
        async move {
            app.request(Method::GET, &url)
                .bearer_auth(token)
                .send()
                .await
                .expect("file")
                .bytes()
                .await
                .expect("bytes")
        }
    };
    assert_eq!(
        bytes(&again).await,
        bytes(&first).await,
        "the same image again"
    );
}

#[tokio::test]
async fn nobody_uses_another_persons_private_image_or_upload() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let bob = person(&app, "bob").await;
    let upload_id = upload(&app, &ada, "teapot.png", &photo()).await.json["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let private = generate(
        &app,
        &ada,
        json!({"prompt": "private one", "model": "easel-restyle", "image_input": upload_id}),
    )
    .await;
    let private_image = private.json["images"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!private_image.is_empty(), "{}", private.text);

    let before = balance(&app, &bob).await;
    let generations = app.count("generations").await;
    for (what, input) in [
        ("ada's upload", &upload_id),
        ("ada's private image", &private_image),
    ] {
        for dry_run in [false, true] {
            generate(
                &app,
                &bob,
                json!({"prompt": "mine now", "model": "easel-restyle", "image_input": input, "dry_run": dry_run}),
            )
            .await
            .assert_problem(404, "not_found");
            assert_eq!(
                balance(&app, &bob).await,
                before,
                "{what}: nothing reserved"
            );
        }
    }
    assert_eq!(app.count("generations").await, generations);

    // Published, anyone may build on it.
    app.call(
        Method::PATCH,
        &format!("/v1/images/{private_image}"),
        Some(&ada.token),
        Some(json!({"visibility": "public"})),
    )
    .await;
    let remix = generate(
        &app,
        &bob,
        json!({"prompt": "remix", "model": "easel-restyle", "image_input": private_image}),
    )
    .await;
    assert_eq!(remix.json["status"], "succeeded", "{}", remix.text);

    // The model decides whether an input is wanted.
    let missing = generate(
        &app,
        &bob,
        json!({"prompt": "x", "model": "easel-relief-3d"}),
    )
    .await;
    missing.assert_problem(422, "validation_failed");
    assert_eq!(missing.json["errors"][0]["field"], "image_input");
    let unwanted = generate(
        &app,
        &bob,
        json!({"prompt": "x", "model": "easel-sketch", "image_input": private_image}),
    )
    .await;
    unwanted.assert_problem(422, "validation_failed");
    assert_eq!(unwanted.json["errors"][0]["field"], "image_input");
    let _ = ada.id;
}

#[tokio::test]
async fn unused_uploads_are_purged_after_a_day_and_used_ones_kept() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada").await;
    let kept = upload(&app, &ada, "kept.png", &photo()).await.json["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let other = easel::providers::local::sample_png("an unused photo", 64, 64, 9).expect("png");
    let unused = upload(&app, &ada, "unused.png", &other).await;
    let unused_id = unused.json["id"].as_str().unwrap_or_default().to_owned();
    let generated = generate(
        &app,
        &ada,
        json!({"prompt": "keep it", "model": "easel-restyle", "image_input": kept}),
    )
    .await;
    assert_eq!(generated.json["status"], "succeeded", "{}", generated.text);
    let file = upload_file(&app, &other);
    assert!(file.exists(), "{}", file.display());

    app.execute("UPDATE uploads SET created_at = now() - interval '25 hours'")
        .await;
    // The purge removes the file before the row's deletion commits, so once the row is gone the
    // file is too: no file is left behind that no row points to.
    let until = Instant::now() + Duration::from_secs(15);
    while app
        .count(&format!("uploads WHERE id = '{unused_id}'"))
        .await
        > 0
    {
        assert!(Instant::now() < until, "the unused upload was not purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!file.exists(), "its file went before its row");
    let before = balance(&app, &ada).await;
    generate(
        &app,
        &ada,
        json!({"prompt": "too late", "model": "easel-restyle", "image_input": unused_id}),
    )
    .await
    .assert_problem(404, "not_found");
    assert_eq!(
        balance(&app, &ada).await,
        before,
        "nothing reserved for a purged upload"
    );
    assert_eq!(app.count(&format!("uploads WHERE id = '{kept}'")).await, 1);
    let again = app
        .send(
            app.request(Method::GET, &format!("/v1/uploads/{kept}/file"))
                .bearer_auth(&ada.token),
        )
        .await;
    assert_eq!(again.status, 200, "a used upload stays");
}

#[tokio::test]
async fn a_purge_cut_short_after_removing_the_file_is_finished_by_the_next() {
    // No background purge: the test makes the state a crash leaves and runs the purge itself.
    let app = TestApp::spawn_with(&[("EASEL_WATCHDOG_INTERVAL_SECS", "3600")]).await;
    let ada = person(&app, "ada").await;
    let bytes = easel::providers::local::sample_png("cut short", 64, 64, 3).expect("png");
    let id = upload(&app, &ada, "short.png", &bytes).await.json["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let file = upload_file(&app, &bytes);
    // The purge removed the file; the crash came before the row's deletion committed.
    app.execute(&format!(
        "UPDATE uploads SET created_at = now() - interval '25 hours' WHERE id = '{id}'"
    ))
    .await;
    std::fs::remove_file(&file).expect("remove the file");

    // The upload has expired: it is not taken as an input, though its row is still there.
    let before = balance(&app, &ada).await;
    let generations = app.count("generations").await;
    generate(
        &app,
        &ada,
        json!({"prompt": "too late", "model": "easel-restyle", "image_input": id}),
    )
    .await
    .assert_problem(404, "not_found");
    assert_eq!(balance(&app, &ada).await, before, "nothing reserved");
    assert_eq!(
        app.count("generations").await,
        generations,
        "nothing queued"
    );
    assert_eq!(app.count(&format!("uploads WHERE id = '{id}'")).await, 1);

    // The next purge finishes it: the file already gone is no error.
    let purged = easel::inputs::service::purge(&app.shared.state)
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    assert_eq!(app.count(&format!("uploads WHERE id = '{id}'")).await, 0);
}

#[tokio::test]
async fn a_provider_fetches_the_input_through_its_signed_link_and_returns_a_glb() {
    let fake = FakeReplicate::start().await;
    let catalog = std::env::temp_dir().join(format!("easel-catalog-{}.toml", uuid::Uuid::now_v7()));
    std::fs::write(
        &catalog,
        r#"
[[models]]
id = "lifter"
name = "Lifter"
description = "Image to 3D on the fake Replicate"
provider = "replicate"
provider_model = "acme/lifter-3d"
cost_per_image = 3
min_outputs = 1
max_outputs = 1
image_input = "required"
output_kind = "model3d"
aspect_ratios = { "1:1" = [512, 512] }
"#,
    )
    .expect("catalog");
    let mut settings = fake.settings();
    settings.push(("EASEL_MODELS_PATH", catalog.display().to_string()));
    let app = TestApp::spawn_with(&settings).await;
    let ada = person(&app, "ada").await;
    app.execute("UPDATE credit_balances SET purchased = 100")
        .await;
    let png = photo();
    let upload_id = upload(&app, &ada, "teapot.png", &png).await.json["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let lifted = generate(
        &app,
        &ada,
        json!({"prompt": "lift it", "model": "lifter", "image_input": upload_id}),
    )
    .await;
    assert_eq!(lifted.json["status"], "succeeded", "{}", lifted.text);
    assert_eq!(lifted.json["images"][0]["kind"], "model3d");

    let (url, status, fetched) = fake
        .ledger()
        .inputs_fetched
        .first()
        .cloned()
        .expect("fetched");
    assert_eq!(status, 200);
    assert_eq!(fetched, png, "the provider got the uploaded bytes");
    assert!(url.contains("/input?expires="), "{url}");
    // The link is for that job only: edited, it opens nothing.
    let tampered = url.replace("sig=", "sig=0");
    let reply = reqwest::get(&tampered).await.expect("get");
    assert_eq!(reply.status().as_u16(), 404);
    let edited = url.replacen("expires=", "expires=9", 1);
    assert_eq!(
        reqwest::get(&edited).await.expect("get").status().as_u16(),
        404
    );

    let id = lifted.json["images"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let detail = app
        .call(
            Method::GET,
            &format!("/v1/images/{id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(detail.json["vertex_count"], 144, "the fake's 12x12 relief");
    let glb = app
        .request(Method::GET, &format!("/v1/images/{id}/file"))
        .bearer_auth(&ada.token)
        .send()
        .await
        .expect("glb")
        .bytes()
        .await
        .expect("bytes");
    gltf::Gltf::from_slice(&glb).expect("valid glTF");
    let _ = ada.id;
}
