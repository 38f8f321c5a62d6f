//! The SSRF guard on provider downloads, against a real local HTTP server.

use actix_web::{App, HttpResponse, HttpServer, web};
use easel::storage::download::{DownloadError, Policy, fetch};
use std::time::Duration;

async fn serve() -> (String, actix_web::dev::ServerHandle) {
    let png = easel::providers::local::sample_png("download me", 64, 64, 1).expect("render");
    let server = HttpServer::new(move || {
        let png = png.clone();
        App::new()
            .route(
                "/ok.png",
                web::get().to(move || {
                    let png = png.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/octet-stream")
                            .body(png)
                    }
                }),
            )
            .route(
                "/big",
                web::get().to(|| async {
                    let mut body = b"\x89PNG".to_vec();
                    body.resize(3 * 1024 * 1024, 0);
                    HttpResponse::Ok().content_type("image/png").body(body)
                }),
            )
            .route(
                "/text",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("image/png")
                        .body("not an image at all")
                }),
            )
            .route(
                "/metadata",
                web::get().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "http://169.254.169.254/latest/meta-data/"))
                        .finish()
                }),
            )
            .route(
                "/elsewhere",
                web::get().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "http://evil.test/steal"))
                        .finish()
                }),
            )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://{addr}"), handle)
}

fn strict() -> Policy {
    Policy {
        max_bytes: 1024 * 1024,
        timeout: Duration::from_secs(5),
        allowed_hosts: Vec::new(),
        allow_loopback: false,
    }
}

#[tokio::test]
async fn private_loopback_and_metadata_addresses_are_refused() {
    for url in [
        "https://127.0.0.1/x.png",
        "https://localhost/x.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/x.png",
        "https://10.0.0.5/x.png",
        "http://example.com/x.png",
        "file:///etc/passwd",
    ] {
        let result = fetch(&strict(), url).await;
        assert!(
            matches!(result, Err(DownloadError::Refused(_))),
            "{url}: {result:?}"
        );
    }
    let only_replicate = Policy {
        allowed_hosts: vec!["replicate.delivery".to_owned()],
        ..strict()
    };
    let result = fetch(&only_replicate, "https://example.com/x.png").await;
    assert!(matches!(result, Err(DownloadError::Refused(m)) if m.contains("not allowed")));
}

#[tokio::test]
async fn downloads_are_bounded_sniffed_and_redirects_checked() {
    let (base, handle) = serve().await;
    // The fake lives on loopback, so these runs permit it; the host list still applies.
    let local = Policy {
        allow_loopback: true,
        allowed_hosts: vec!["127.0.0.1".to_owned()],
        ..strict()
    };
    let (bytes, content_type) = fetch(&local, &format!("{base}/ok.png")).await.expect("png");
    assert_eq!(
        content_type, "image/png",
        "typed by its bytes, not its header"
    );
    assert!(image::load_from_memory(&bytes).is_ok());
    assert_eq!(
        fetch(&local, &format!("{base}/big")).await.err(),
        Some(DownloadError::TooLarge(1024 * 1024))
    );
    assert_eq!(
        fetch(&local, &format!("{base}/text")).await.err(),
        Some(DownloadError::NotAnImage)
    );
    let redirected = fetch(&local, &format!("{base}/elsewhere")).await;
    assert!(
        matches!(redirected, Err(DownloadError::Refused(ref m)) if m.contains("evil.test")),
        "{redirected:?}"
    );
    // Loopback being allowed for the fake opens no other private range, on a redirect or otherwise.
    let anywhere_local = Policy {
        allowed_hosts: Vec::new(),
        ..local.clone()
    };
    let metadata = fetch(&anywhere_local, &format!("{base}/metadata")).await;
    assert!(
        matches!(metadata, Err(DownloadError::Refused(ref m)) if m.contains("169.254.169.254")),
        "{metadata:?}"
    );
    for url in ["http://10.0.0.5/x.png", "http://169.254.169.254/"] {
        let refused = fetch(&anywhere_local, url).await;
        assert!(
            matches!(refused, Err(DownloadError::Refused(_))),
            "{url}: {refused:?}"
        );
    }
    drop(handle.stop(false));
}
