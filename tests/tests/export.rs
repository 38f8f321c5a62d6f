//! Downloading all of one's data: the link, its refusals, and the archive read back with a zip
//! reader, file for file against what the API serves.

use easel_tests::{TestApp, json};
use reqwest::Method;
use std::collections::HashMap;
use std::io::Read;

async fn signup(app: &TestApp, name: &str) -> String {
    app.signup(name).await["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A finished generation of `n` images, waited for.
async fn generated(app: &TestApp, token: &str, prompt: &str, n: i64) -> serde_json::Value {
    let reply = app
        .send(
            app.request(Method::POST, "/v1/generations")
                .bearer_auth(token)
                .header("prefer", "wait=30")
                .json(&json!({"prompt": prompt, "model": "easel-sketch", "num_outputs": n})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

async fn export_link(app: &TestApp, token: &str) -> String {
    let reply = app
        .call(Method::POST, "/v1/me/export", Some(token), None)
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json["url"].as_str().unwrap_or_default().to_owned()
}

/// The archive's entries by name.
fn entries(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a whole zip");
    let mut entries = HashMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).expect("an entry");
        let mut data = Vec::new();
        file.read_to_end(&mut data).expect("entry bytes");
        let name = file.name().expect("an entry name").to_string();
        entries.insert(name, data);
    }
    entries
}

fn lines(entry: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(entry)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn the_archive_holds_my_account_generations_images_collections_and_ledger() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "keeper").await;
    let kept = generated(&app, &token, "a harbour at dawn", 2).await;
    let failed = generated(&app, &token, "this one breaks [[fail]]", 1).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let image_ids: Vec<String> = kept["images"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|image| image["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(image_ids.len(), 2);
    // One image public, one deleted: the deleted one is not exported.
    let public = app
        .call(
            Method::PATCH,
            &format!("/v1/images/{}", image_ids[0]),
            Some(&token),
            Some(json!({"visibility": "public"})),
        )
        .await;
    assert_eq!(public.status, 200, "{}", public.text);
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/v1/images/{}", image_ids[1]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let collection = app
        .call(
            Method::POST,
            "/v1/collections",
            Some(&token),
            Some(json!({"name": "Harbours"})),
        )
        .await;
    assert_eq!(collection.status, 201, "{}", collection.text);
    let collection_id = collection.json["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let added = app
        .call(
            Method::PUT,
            &format!("/v1/collections/{collection_id}/images/{}", image_ids[0]),
            Some(&token),
            None,
        )
        .await;
    assert!(added.status < 300, "{}", added.text);
    // A photo uploaded to generate from goes too, as it was sent.
    let photo = easel::providers::local::sample_png("my own photo", 96, 64, 3).expect("png");
    let uploaded = app.upload(&token, "me.png", &photo).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let upload_id = uploaded.json["id"].as_str().unwrap_or_default().to_owned();
    // Someone else's work stays out of it.
    let stranger = signup(&app, "stranger").await;
    let theirs = generated(&app, &stranger, "not yours", 1).await;

    let url = export_link(&app, &token).await;
    // No credential: the link is the proof.
    let response = app.get(&url).await;
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "application/zip");
    assert!(
        header("content-disposition").starts_with("attachment; filename=\"easel-keeper-"),
        "{}",
        header("content-disposition")
    );
    assert_eq!(header("cache-control"), "no-store");
    let bytes = response.bytes().await.expect("the archive");
    let entries = entries(&bytes);

    let account: serde_json::Value =
        serde_json::from_slice(&entries["account.json"]).expect("account.json");
    assert_eq!(account["account"]["username"], "keeper");
    assert_eq!(account["account"]["email"], "keeper@example.com");
    assert!(entries.contains_key("README.txt"));

    let generations = lines(&entries["generations.jsonl"]);
    let ids: Vec<&str> = generations
        .iter()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            failed["id"].as_str().unwrap_or_default(),
            kept["id"].as_str().unwrap_or_default()
        ],
        "mine, newest first"
    );
    assert_eq!(generations[0]["error"]["code"], failed["error"]["code"]);

    let images = lines(&entries["images.jsonl"]);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["id"], image_ids[0].as_str());
    assert_eq!(images[0]["visibility"], "public");
    let file = format!("images/{}.png", image_ids[0]);
    assert_eq!(images[0]["file"], file.as_str());
    let served = app
        .request(Method::GET, &format!("/v1/images/{}/file", image_ids[0]))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the file");
    assert_eq!(served.status().as_u16(), 200);
    let served = served.bytes().await.expect("file bytes");
    assert_eq!(
        entries[&file],
        served.to_vec(),
        "the file as it was made, byte for byte"
    );
    assert_eq!(entries[&format!("uploads/{upload_id}.png")], photo);
    let files: Vec<&String> = entries
        .keys()
        .filter(|k| k.starts_with("images/"))
        .collect();
    assert_eq!(files, [&file], "no deleted image and nobody else's");
    let their_image = theirs["images"][0]["id"].as_str().unwrap_or_default();
    assert!(!String::from_utf8_lossy(&bytes).contains(their_image));

    let collections = lines(&entries["collections.jsonl"]);
    assert_eq!(collections.len(), 1);
    assert_eq!(collections[0]["name"], "Harbours");
    assert_eq!(collections[0]["image_ids"], json!([image_ids[0]]));

    // The ledger as the API shows it: the failed job's reservation and its refund among them.
    let ledger = lines(&entries["credits.jsonl"]);
    let shown = app
        .call(
            Method::GET,
            "/v1/credits/transactions?limit=100",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(json!(ledger), shown.json["data"]);
    assert!(
        ledger
            .iter()
            .any(|entry| entry["kind"] == "refund" && entry["generation_id"] == failed["id"]),
        "{ledger:?}"
    );
    assert_eq!(entries["purchases.jsonl"], b"");
    // The download itself is the newest security event.
    let events = lines(&entries["security-events.jsonl"]);
    assert_eq!(events[0]["activity"], "data_downloaded", "{events:?}");
}

/// A file storage has lost is named in MISSING.txt; the rest of the archive is whole.
#[tokio::test]
async fn a_lost_file_is_named_and_the_archive_is_still_whole() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "unlucky").await;
    let kept = generated(&app, &token, "two of a kind", 2).await;
    let lost = kept["images"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let whole = kept["images"][1]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let hash = app
        .text(&format!(
            "SELECT content_hash FROM images WHERE id = '{lost}'"
        ))
        .await
        .unwrap_or_default();
    let path = app
        .data_dir
        .join("images/originals")
        .join(&hash[..2])
        .join(&hash[2..4])
        .join(&hash);
    std::fs::remove_file(&path).expect("remove the file");

    let url = export_link(&app, &token).await;
    let response = app.get(&url).await;
    assert_eq!(response.status().as_u16(), 200);
    let entries = entries(&response.bytes().await.expect("the archive"));
    let missing = String::from_utf8_lossy(&entries["MISSING.txt"]).into_owned();
    assert!(
        missing.contains(&lost) && !missing.contains(&whole),
        "{missing}"
    );
    assert!(entries.contains_key(&format!("images/{whole}.png")));
    assert!(!entries.contains_key(&format!("images/{lost}.png")));
    assert_eq!(
        lines(&entries["images.jsonl"]).len(),
        2,
        "both images' details"
    );
}

#[tokio::test]
async fn a_link_works_only_as_made_while_its_session_lasts() {
    let app = TestApp::spawn().await;
    let token = signup(&app, "careful").await;
    let url = export_link(&app, &token).await;
    assert_eq!(app.get(&url).await.status().as_u16(), 200);

    let refused = |path: String| {
        let app = &app;
        async move {
            let reply = app.send(app.request(Method::GET, &path)).await;
            reply.assert_problem(404, "not_found");
        }
    };
    // Altered: another signature, another expiry, another account.
    let sig_at = url.find("sig=").map_or(0, |i| i + 4);
    let mut forged = url.clone();
    forged.replace_range(
        sig_at..sig_at + 1,
        if &url[sig_at..sig_at + 1] == "0" {
            "1"
        } else {
            "0"
        },
    );
    refused(forged).await;
    let expires: i64 = url
        .split("expires=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    refused(url.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 60),
    ))
    .await;
    let other = app.signup("other").await;
    let other_id = other["user"]["id"].as_str().unwrap_or_default();
    let me = app.call(Method::GET, "/v1/me", Some(&token), None).await;
    let my_id = me.json["id"].as_str().unwrap_or_default();
    refused(url.replace(my_id, other_id)).await;
    // Not tied to a session, as a provider's sign-in would be: a session's link cannot pass.
    let session = url
        .split("session=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap_or_default();
    assert!(!session.is_empty(), "{url}");
    refused(url.replace(&format!("session={session}&"), "")).await;

    // Ten downloads an hour: each reads every file of the account.
    for _ in 0..9 {
        assert_eq!(app.get(&url).await.status().as_u16(), 200);
    }
    let limited = app.send(app.request(Method::GET, &url)).await;
    limited.assert_problem(429, "rate_limited");

    // Signed out: the link ends with the session.
    app.execute("UPDATE sessions SET revoked_at = now()").await;
    refused(url).await;

    // Only a person asks: not an API key, not anyone anonymous.
    let token = signup(&app, "scripted").await;
    let key = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&token),
            Some(json!({"name": "script", "scopes": ["read", "generate"]})),
        )
        .await;
    let key = key.json["key"].as_str().unwrap_or_default().to_owned();
    app.call(Method::POST, "/v1/me/export", Some(&key), None)
        .await
        .assert_problem(403, "insufficient_scope");
    app.call(Method::POST, "/v1/me/export", None, None)
        .await
        .assert_problem(401, "unauthorized");
}
