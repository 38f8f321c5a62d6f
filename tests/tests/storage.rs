//! Image storage in an S3-compatible bucket: the same generation flow, with the files in the bucket
//! rather than on local disk.

use easel_tests::s3::S3Server;
use easel_tests::{TestApp, json};
use reqwest::Method;
use std::time::{Duration, Instant};

#[tokio::test]
async fn images_are_kept_in_an_s3_compatible_bucket() {
    let s3 = S3Server::start("easel-images").await;
    let app = TestApp::spawn_with(&[
        ("EASEL_STORAGE_BACKEND", "s3"),
        ("EASEL_S3_BUCKET", "easel-images"),
        ("EASEL_S3_ENDPOINT", s3.endpoint.as_str()),
        ("EASEL_S3_ALLOW_HTTP", "true"),
        ("EASEL_S3_ACCESS_KEY_ID", "easel-test-key"),
        ("EASEL_S3_SECRET_ACCESS_KEY", "easel-test-secret"),
    ])
    .await;
    let token = app.signup("bucketeer").await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let accepted = app
        .call(
            Method::POST,
            "/v1/generations",
            Some(&token),
            Some(json!({"prompt": "a lighthouse in a bucket", "model": "easel-sketch", "seed": 5})),
        )
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.json["id"].as_str().unwrap_or_default().to_owned();
    let until = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let g = app
            .call(
                Method::GET,
                &format!("/v1/generations/{id}"),
                Some(&token),
                None,
            )
            .await;
        if g.json["status"] == "succeeded" {
            break g.json;
        }
        assert!(Instant::now() < until, "{}", g.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let keys = s3.keys("easel-images").await;
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("originals/")).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("thumbs/")).count(),
        1,
        "{keys:?}"
    );
    assert!(
        !app.data_dir.join("images/originals").exists(),
        "nothing went to the local folder"
    );

    let url = done["images"][0]["url"].as_str().unwrap_or_default();
    let file = app
        .client
        .get(app.url(url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("file");
    assert_eq!(file.status(), 200);
    let bytes = file.bytes().await.expect("bytes");
    let image = image::load_from_memory(&bytes).expect("the stored PNG");
    assert_eq!((image.width(), image.height()), (512, 512));
    // A range is read from the bucket as it is from a folder: the last 12 bytes (PNG's IEND).
    let tail = app
        .client
        .get(app.url(url))
        .bearer_auth(&token)
        .header("range", "bytes=-12")
        .send()
        .await
        .expect("range");
    assert_eq!(tail.status(), 206);
    let len = bytes.len();
    assert_eq!(
        tail.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some(format!("bytes {}-{}/{len}", len - 12, len - 1).as_str())
    );
    assert_eq!(tail.bytes().await.expect("tail"), bytes.slice(len - 12..));
    let thumb_url = done["images"][0]["thumb_url"].as_str().unwrap_or_default();
    let thumb = app
        .client
        .get(app.url(thumb_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("thumb");
    assert_eq!(
        thumb
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/webp")
    );
}

#[tokio::test]
async fn an_s3_backend_without_a_bucket_is_a_clear_start_up_error() {
    let error =
        easel::Config::from_lookup(|k| (k == "EASEL_STORAGE_BACKEND").then(|| "s3".to_owned()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
    assert!(error.contains("EASEL_S3_BUCKET"), "{error}");
}

/// Where the local store keeps a file.
fn stored(app: &TestApp, kind: &str, hash: &str) -> std::path::PathBuf {
    app.data_dir.join(format!(
        "images/{kind}/{}/{}/{hash}",
        &hash[..2],
        &hash[2..4]
    ))
}

#[tokio::test]
async fn verify_files_finds_lost_files_and_makes_a_lost_thumbnail_again() {
    let app = TestApp::spawn().await;
    let token = app.signup("keeper").await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut images = Vec::new();
    for prompt in ["a kept lake", "a kept hill"] {
        let done = app
            .send(
                app.request(Method::POST, "/v1/generations")
                    .bearer_auth(&token)
                    .header("prefer", "wait=20")
                    .json(&json!({"prompt": prompt, "model": "easel-sketch"})),
            )
            .await;
        assert_eq!(done.json["status"], "succeeded", "{}", done.text);
        let id = done.json["images"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let hash = |column: &str| format!("SELECT {column} FROM images WHERE id = '{id}'");
        let original = app.text(&hash("content_hash")).await.unwrap_or_default();
        let thumb = app.text(&hash("thumb_hash")).await.unwrap_or_default();
        images.push((id, original, thumb));
    }
    let state = &app.shared.state;
    let verify = async |repair| {
        easel::gallery::verify::verify_files(state, repair)
            .await
            .expect("verify")
    };
    let clean = verify(false).await;
    assert_eq!(clean.images, 2);
    assert!(clean.missing.is_empty(), "{:?}", clean.missing);

    let (lake, hill) = (&images[0], &images[1]);
    let thumb_file = stored(&app, "thumbs", &lake.2);
    let thumb_bytes = std::fs::read(&thumb_file).expect("thumb");
    std::fs::remove_file(&thumb_file).expect("lose the lake's thumbnail");
    std::fs::remove_file(stored(&app, "originals", &hill.1)).expect("lose the hill's original");
    // Fetching a lost file is our failure, and says nothing more.
    app.call(
        Method::GET,
        &format!("/v1/images/{}/file", hill.0),
        Some(&token),
        None,
    )
    .await
    .assert_problem(500, "file_missing");

    let found = verify(false).await;
    let mut missing: Vec<(String, &str, bool)> = found
        .missing
        .iter()
        .map(|f| (f.image_id.0.to_string(), f.variant, f.repaired))
        .collect();
    missing.sort();
    let mut expected = vec![
        (lake.0.clone(), "thumb", false),
        (hill.0.clone(), "original", false),
    ];
    expected.sort();
    assert_eq!(missing, expected);
    assert!(!thumb_file.exists(), "nothing changes without --repair");

    let repaired = verify(true).await;
    assert_eq!(repaired.missing.len(), 2);
    assert!(
        repaired
            .missing
            .iter()
            .all(|f| f.repaired == (f.variant == "thumb")),
        "{:?}",
        repaired.missing
    );
    // The same thumbnail as before, under the same name: the image row did not change.
    assert_eq!(std::fs::read(&thumb_file).expect("made again"), thumb_bytes);
    let thumb = app
        .client
        .get(app.url(&format!("/v1/images/{}/file?variant=thumb", lake.0)))
        .bearer_auth(&token)
        .send()
        .await
        .expect("thumb");
    assert_eq!(thumb.status(), 200);
    let left = verify(false).await;
    assert_eq!(left.missing.len(), 1, "an original cannot be made again");
    assert_eq!(left.missing[0].variant, "original");
}

/// A new account's token, and the images of one finished generation of `outputs` it made.
async fn generated(app: &TestApp, name: &str, prompt: &str, outputs: u32) -> (String, Vec<String>) {
    let token = app.signup(name).await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let done = app
        .send(
            app.request(Method::POST, "/v1/generations")
                .bearer_auth(&token)
                .header("prefer", "wait=20")
                .json(&json!({"prompt": prompt, "model": "easel-sketch", "num_outputs": outputs})),
        )
        .await;
    assert_eq!(done.json["status"], "succeeded", "{}", done.text);
    let ids = done.json["images"]
        .as_array()
        .map(|images| {
            images
                .iter()
                .map(|image| image["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (token, ids)
}

#[tokio::test]
async fn remake_thumbnails_replaces_an_older_encoders_thumbnails_once() {
    let app = TestApp::spawn().await;
    let (token, ids) = generated(&app, "upgrader", "an old thumbnail", 2).await;
    let thumb_of = async |id: &str| {
        app.text(&format!("SELECT thumb_hash FROM images WHERE id = '{id}'"))
            .await
            .unwrap_or_default()
    };
    let current = [thumb_of(&ids[0]).await, thumb_of(&ids[1]).await];
    let state = &app.shared.state;
    let remake = async || {
        easel::gallery::verify::remake_thumbnails(state)
            .await
            .expect("remake")
    };
    let untouched = remake().await;
    assert_eq!(
        (untouched.images, untouched.remade),
        (2, 0),
        "current thumbnails stay"
    );

    // As an older version stored them: lossless WebP, under other names.
    let mut old = Vec::new();
    for (id, hash) in ids.iter().zip(&current) {
        let original = app
            .text(&format!(
                "SELECT content_hash FROM images WHERE id = '{id}'"
            ))
            .await
            .unwrap_or_default();
        let image = image::load_from_memory(
            &std::fs::read(stored(&app, "originals", &original)).expect("original"),
        )
        .expect("a PNG");
        let scaled = image.thumbnail(384, 384).to_rgba8();
        let mut lossless = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut lossless)
            .encode(
                scaled.as_raw(),
                scaled.width(),
                scaled.height(),
                image::ExtendedColorType::Rgba8,
            )
            .expect("lossless");
        let old_hash = state
            .storage
            .put("thumbs", lossless.clone())
            .await
            .expect("stored");
        app.execute(&format!(
            "UPDATE images SET thumb_hash = '{old_hash}' WHERE id = '{id}'"
        ))
        .await;
        std::fs::remove_file(stored(&app, "thumbs", hash)).expect("the new one not there yet");
        old.push((old_hash, lossless.len() as u64));
    }

    let remade = remake().await;
    assert_eq!(remade.remade, 2);
    assert_eq!(remade.bytes_before, old.iter().map(|(_, n)| n).sum::<u64>());
    assert!(
        remade.bytes_after * 4 < remade.bytes_before,
        "{} bytes against {}",
        remade.bytes_after,
        remade.bytes_before
    );
    for ((id, hash), (old_hash, _)) in ids.iter().zip(&current).zip(&old) {
        assert_eq!(&thumb_of(id).await, hash, "the thumbnail a job makes now");
        assert!(stored(&app, "thumbs", hash).exists());
        assert!(
            !stored(&app, "thumbs", old_hash).exists(),
            "the old file is removed"
        );
        let served = app
            .send(
                app.request(Method::GET, &format!("/v1/images/{id}/file?variant=thumb"))
                    .bearer_auth(&token),
            )
            .await;
        assert_eq!(served.status, 200);
    }
    let again = remake().await;
    assert_eq!(again.remade, 0, "a second run changes nothing");
    let verified = easel::gallery::verify::verify_files(state, false)
        .await
        .expect("verify");
    assert!(verified.missing.is_empty(), "{:?}", verified.missing);

    // An image whose original is gone keeps its thumbnail, row and file alike.
    let original = app
        .text(&format!(
            "SELECT content_hash FROM images WHERE id = '{}'",
            ids[0]
        ))
        .await
        .unwrap_or_default();
    std::fs::remove_file(stored(&app, "originals", &original)).expect("lose an original");
    let without = remake().await;
    assert_eq!((without.remade, without.without_original), (0, 1));
    assert_eq!(thumb_of(&ids[0]).await, current[0]);
    assert!(stored(&app, "thumbs", &current[0]).exists());
}

/// A thumbnail lost from storage is made again from its original when it is fetched, the same
/// file as before; one whose original is gone too answers 500 and changes nothing.
#[tokio::test]
async fn a_lost_thumbnail_is_made_again_when_fetched() {
    let app = TestApp::spawn().await;
    let (token, ids) = generated(&app, "mender", "a mended fence", 2).await;
    let column = async |column: &str, id: &str| {
        app.text(&format!("SELECT {column} FROM images WHERE id = '{id}'"))
            .await
            .unwrap_or_default()
    };
    let fetch_thumb = async |id: &str| {
        app.client
            .get(app.url(&format!("/v1/images/{id}/file?variant=thumb")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("thumb")
    };

    // Lost: made again, the same bytes under the same name.
    let hash = column("thumb_hash", &ids[0]).await;
    let file = stored(&app, "thumbs", &hash);
    let bytes = std::fs::read(&file).expect("thumb");
    std::fs::remove_file(&file).expect("lose it");
    let served = fetch_thumb(&ids[0]).await;
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(format!("\"{hash}\"").as_str())
    );
    assert_eq!(served.bytes().await.expect("bytes").to_vec(), bytes);
    assert_eq!(std::fs::read(&file).expect("stored again"), bytes);

    // Lost, and made by an older encoder: the image moves to this version's thumbnail.
    let older = "0".repeat(64);
    app.execute(&format!(
        "UPDATE images SET thumb_hash = '{older}' WHERE id = '{}'",
        ids[0]
    ))
    .await;
    let served = fetch_thumb(&ids[0]).await;
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(format!("\"{hash}\"").as_str())
    );
    assert_eq!(column("thumb_hash", &ids[0]).await, hash);

    // Its original gone too: nothing to make it from.
    let lost_thumb = column("thumb_hash", &ids[1]).await;
    std::fs::remove_file(stored(&app, "thumbs", &lost_thumb)).expect("lose the thumbnail");
    std::fs::remove_file(stored(
        &app,
        "originals",
        &column("content_hash", &ids[1]).await,
    ))
    .expect("lose the original");
    app.call(
        Method::GET,
        &format!("/v1/images/{}/file?variant=thumb", ids[1]),
        Some(&token),
        None,
    )
    .await
    .assert_problem(500, "file_missing");
    assert_eq!(column("thumb_hash", &ids[1]).await, lost_thumb);
    assert!(!stored(&app, "thumbs", &lost_thumb).exists());
}
