//! Every error the edge can produce is problem+json with a request id.

use easel_tests::TestApp;
use reqwest::Method;

#[tokio::test]
async fn unknown_route_with_malformed_body_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(
            app.request(Method::POST, "/v1/nothing")
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    reply.assert_problem(404, "not_found");
    assert!(
        reply.json["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("/v1/nothing")
    );
}

#[tokio::test]
async fn wrong_method_is_a_405_problem_with_allow() {
    let app = TestApp::spawn().await;
    for method in [Method::POST, Method::DELETE, Method::PUT, Method::PATCH] {
        let reply = app.send(app.request(method.clone(), "/healthz")).await;
        reply.assert_problem(405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[tokio::test]
async fn head_answers_as_get_without_the_body() {
    let app = TestApp::spawn().await;
    let get = app
        .request(Method::GET, "/v1/models")
        .send()
        .await
        .expect("GET");
    let length = get.content_length();
    assert!(length.is_some_and(|n| n > 0));
    let head = app
        .request(Method::HEAD, "/v1/models")
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), 200);
    // reqwest's content_length() is the body's (none, for HEAD): read the header.
    assert_eq!(
        head.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
        length,
        "the GET's length"
    );
    assert_eq!(
        head.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert!(head.bytes().await.expect("no body").is_empty());
    // What GET would answer, errors included.
    let missing = app
        .request(Method::HEAD, "/v1/nothing")
        .send()
        .await
        .expect("HEAD");
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
    let post_only = app
        .request(Method::HEAD, "/v1/auth/login")
        .send()
        .await
        .expect("HEAD");
    assert_eq!(post_only.status(), 405);
    assert!(
        post_only.headers().get("x-request-id").is_some(),
        "a problem like any other"
    );
    assert_eq!(
        post_only
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("POST")
    );
}

#[tokio::test]
async fn oversized_body_is_a_413_problem() {
    let app = TestApp::spawn_with(&[("EASEL_MAX_BODY_BYTES", "2048")]).await;
    let reply = app
        .send(
            app.request(Method::POST, "/healthz")
                .header("content-type", "application/json")
                .body(vec![b' '; 4096]),
        )
        .await;
    reply.assert_problem(413, "payload_too_large");
}

#[tokio::test]
async fn request_ids_are_echoed_when_well_formed_and_generated_otherwise() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(
            app.request(Method::GET, "/healthz")
                .header("x-request-id", "trace-abc.123"),
        )
        .await;
    assert_eq!(reply.header("x-request-id"), Some("trace-abc.123"));

    let reply = app
        .send(
            app.request(Method::GET, "/v1/nope")
                .header("x-request-id", "bad id\twith spaces"),
        )
        .await;
    reply.assert_problem(404, "not_found");
    let generated = reply.header("x-request-id").unwrap_or_default().to_owned();
    assert_ne!(generated, "bad id\twith spaces");
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    let other = app.send(app.request(Method::GET, "/v1/nope")).await;
    assert_ne!(other.header("x-request-id"), Some(generated.as_str()));
}

#[tokio::test]
async fn unknown_route_get_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(app.request(Method::GET, "/v1/definitely/not/here"))
        .await;
    reply.assert_problem(404, "not_found");
    assert!(
        reply.json["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/not_found")
    );
}

/// A value that does not fit names its field, in a body or a query string, and changes nothing.
#[tokio::test]
async fn a_value_that_does_not_fit_names_its_field() {
    let app = TestApp::spawn().await;
    let signed_up = app.signup("fitter").await;
    let token = signed_up["access_token"].as_str().unwrap_or_default();
    let cases: [(Method, &str, Option<serde_json::Value>, &str, &str); 5] = [
        (
            Method::POST,
            "/v1/generations",
            Some(
                serde_json::json!({"prompt": "x", "model": "easel-sketch", "visibility": "secret"}),
            ),
            "visibility",
            "`private`",
        ),
        (
            Method::POST,
            "/v1/generations",
            Some(serde_json::json!({"prompt": "x", "model": "easel-sketch", "num_outputs": -1})),
            "num_outputs",
            "-1",
        ),
        (
            Method::GET,
            "/v1/generations?status=bogus",
            None,
            "status",
            "`queued`",
        ),
        (
            Method::GET,
            "/v1/generations?limit=abc",
            None,
            "limit",
            "invalid digit",
        ),
        (Method::GET, "/v1/gallery?sort=bogus", None, "sort", "`new`"),
    ];
    for (method, path, body, field, hint) in cases {
        let reply = app.call(method, path, Some(token), body).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(
            reply.json["errors"][0]["field"], field,
            "{path}: {}",
            reply.text
        );
        assert!(
            reply.json["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(hint)),
            "{path}: {}",
            reply.text
        );
    }
    assert_eq!(app.count("generations").await, 0);
}
