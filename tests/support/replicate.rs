//! A fake Replicate API at the HTTP boundary, speaking its real request and response shapes:
//! predictions for official models and for versions, `GET` for polling, cancel, the default webhook
//! secret, and output files. It signs its webhooks the way Replicate does (Standard Webhooks).
//!
//! A prediction starts, is processing after 100 ms (printing `step 1/2`), and ends after 400 ms.
//! Prompts steer it: `[[fail]]` fails, `[[slow]]` never ends by itself, `[[private-output]]`
//! returns an output URL that redirects to the cloud metadata address, `[[one-output]]` returns
//! one image however many were asked for (as a model whose safety checker dropped the others), and
//! `[[extra-output]]` one more than asked (as a model that always makes a batch of its own size).
//! Like Replicate, it fetches an input image given as a URL (`image` or `images`) when the
//! prediction is created; a model whose name ends in `-3d` answers with
//! `{model_file: <.glb>, preview: <.png>}` as TRELLIS does.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "r8_fake_token_for_tests";

#[derive(Debug, Clone)]
struct Prediction {
    id: String,
    model: String,
    version: Option<String>,
    input: Value,
    webhook: Option<String>,
    created: Instant,
    created_at: String,
    canceled: bool,
}

#[derive(Default)]
pub struct Ledger {
    predictions: Vec<Prediction>,
    /// Creates to answer with a 500 before accepting one.
    pub failing_creates: usize,
    /// When false, no webhook is sent (a lost or unreachable webhook URL).
    pub send_webhooks: bool,
    pub creates: usize,
    pub polls: usize,
    pub cancels: Vec<String>,
    /// The raw create bodies, for checking what we sent.
    pub create_bodies: Vec<Value>,
    pub prefer_headers: Vec<Option<String>>,
    /// Each input image fetched at create: its URL, the HTTP status, and the bytes.
    pub inputs_fetched: Vec<(String, u16, Vec<u8>)>,
}

pub struct FakeReplicate {
    pub base: String,
    pub secret: String,
    pub ledger: Arc<Mutex<Ledger>>,
    handle: actix_web::dev::ServerHandle,
}

#[derive(Clone)]
struct Shared {
    base: String,
    secret: String,
    ledger: Arc<Mutex<Ledger>>,
    client: reqwest::Client,
}

impl Prediction {
    fn prompt(&self) -> &str {
        self.input["prompt"].as_str().unwrap_or_default()
    }

    /// The state as the timeline says it is now.
    fn view(&self, base: &str) -> Value {
        let elapsed = self.created.elapsed();
        let slow = self.prompt().contains("[[slow]]");
        let (status, logs) = if self.canceled {
            ("canceled", "step 1/2\n")
        } else if elapsed < Duration::from_millis(100) {
            ("starting", "")
        } else if elapsed < Duration::from_millis(400) || slow {
            ("processing", "step 1/2\n")
        } else if self.prompt().contains("[[fail]]") {
            ("failed", "step 1/2\nTraceback: out of memory\n")
        } else {
            ("succeeded", "step 1/2\nstep 2/2\n")
        };
        let asked = self.input["num_outputs"].as_u64().unwrap_or(1);
        let count = if self.prompt().contains("[[one-output]]") {
            1
        } else if self.prompt().contains("[[extra-output]]") {
            asked + 1
        } else {
            asked
        };
        let three_d = self.model.ends_with("-3d");
        let output = if three_d {
            (status == "succeeded").then(|| {
                json!({
                    "model_file": format!("{base}/files/{}.glb", self.id),
                    "preview": format!("{base}/files/{}-preview.png", self.id),
                    "color_video": format!("{base}/files/{}.mp4", self.id),
                })
            })
        } else {
            (status == "succeeded")
                .then(|| {
                    (0..count)
                        .map(|i| {
                            if self.prompt().contains("[[private-output]]") {
                                format!("{base}/files/redirect-private.png")
                            } else {
                                format!("{base}/files/{}-{i}.png", self.id)
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .map(|urls| json!(urls))
        };
        json!({
            "id": self.id,
            "model": self.model,
            "version": self.version.clone().unwrap_or_else(|| "dp-4d0b7ae3a8e4a5a6a84b9ef5e6b0c2e1".to_owned()),
            "input": self.input,
            "logs": logs,
            "output": output,
            "data_removed": false,
            "error": (status == "failed").then_some("CUDA out of memory"),
            "status": status,
            "source": "api",
            "created_at": self.created_at,
            "started_at": (status != "starting").then_some(&self.created_at),
            "completed_at": matches!(status, "succeeded" | "failed" | "canceled").then_some(&self.created_at),
            "urls": {
                "cancel": format!("{base}/v1/predictions/{}/cancel", self.id),
                "get": format!("{base}/v1/predictions/{}", self.id),
                "stream": format!("{base}/v1/streams/{}", self.id),
                "web": format!("https://replicate.com/p/{}", self.id),
            },
            "metrics": if status == "succeeded" { json!({"predict_time": 0.3, "total_time": 0.4}) } else { json!({}) },
        })
    }
}

/// The three Standard Webhooks headers for a body, signed with `secret` at `timestamp`.
pub fn webhook_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let signature = easel::http::signature::sign(secret, id, timestamp, body).expect("sign");
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            format!("v1,{}", STANDARD.encode(signature)),
        ),
    ]
}

fn authorized(req: &HttpRequest) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}") || v == format!("Token {TOKEN}"))
}

fn unauthenticated() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}))
}

async fn deliver(
    shared: &Shared,
    webhook: &str,
    events: &[String],
    prediction: &Prediction,
    event: &str,
) {
    if !events.iter().any(|e| e == event) {
        return;
    }
    let body = serde_json::to_vec(&prediction.view(&shared.base)).expect("json");
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let mut request = shared
        .client
        .post(webhook)
        .header("content-type", "application/json")
        .body(body.clone());
    for (name, value) in webhook_headers(&shared.secret, &id, chrono::Utc::now().timestamp(), &body)
    {
        request = request.header(name, value);
    }
    let _ = request.send().await;
}

/// Sends the prediction's webhooks as its timeline passes: start, logs, completed.
fn spawn_webhooks(shared: Shared, prediction: Prediction, events: Vec<String>) {
    let Some(webhook) = prediction.webhook.clone() else {
        return;
    };
    tokio::spawn(async move {
        let current = |shared: &Shared, id: &str| {
            shared
                .ledger
                .lock()
                .expect("lock")
                .predictions
                .iter()
                .find(|p| p.id == id)
                .cloned()
        };
        deliver(&shared, &webhook, &events, &prediction, "start").await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        if let Some(p) = current(&shared, &prediction.id) {
            deliver(&shared, &webhook, &events, &p, "logs").await;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Some(p) = current(&shared, &prediction.id) else {
                return;
            };
            let status = p.view(&shared.base)["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if matches!(status.as_str(), "succeeded" | "failed" | "canceled") {
                deliver(&shared, &webhook, &events, &p, "completed").await;
                return;
            }
            if p.created.elapsed() > Duration::from_secs(120) {
                return;
            }
        }
    });
}

async fn create(
    req: HttpRequest,
    shared: web::Data<Shared>,
    model: Option<String>,
    body: Value,
) -> HttpResponse {
    if !authorized(&req) {
        return unauthenticated();
    }
    // Replicate downloads URL inputs before the model runs.
    let input_url = body["input"]["image"]
        .as_str()
        .or_else(|| body["input"]["images"][0].as_str())
        .filter(|u| u.starts_with("http"))
        .map(str::to_owned);
    if let Some(url) = input_url {
        let (status, bytes) = match shared.client.get(&url).send().await {
            Ok(r) => (
                r.status().as_u16(),
                r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            ),
            Err(_) => (0, Vec::new()),
        };
        shared
            .ledger
            .lock()
            .expect("lock")
            .inputs_fetched
            .push((url, status, bytes));
        if status != 200 {
            return HttpResponse::UnprocessableEntity().json(json!({"title": "Input validation failed", "detail": "- input.image: could not download file", "status": 422}));
        }
    }
    let prediction = {
        let mut ledger = shared.ledger.lock().expect("lock");
        ledger.creates += 1;
        ledger.create_bodies.push(body.clone());
        ledger.prefer_headers.push(
            req.headers()
                .get("prefer")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        );
        if ledger.failing_creates > 0 {
            ledger.failing_creates -= 1;
            return HttpResponse::InternalServerError().json(json!({"title": "Internal Server Error", "detail": "Something went wrong", "status": 500}));
        }
        if !body["input"]["prompt"].is_string() {
            return HttpResponse::UnprocessableEntity().json(json!({"title": "Input validation failed", "detail": "- input: prompt is required", "status": 422}));
        }
        let prediction = Prediction {
            id: uuid::Uuid::now_v7().simple().to_string()[6..].to_owned(),
            model: model.unwrap_or_else(|| "acme/versioned".to_owned()),
            version: body["version"].as_str().map(str::to_owned),
            input: body["input"].clone(),
            webhook: body["webhook"].as_str().map(str::to_owned),
            created: Instant::now(),
            created_at: chrono::Utc::now().to_rfc3339(),
            canceled: false,
        };
        ledger.predictions.push(prediction.clone());
        if ledger.send_webhooks {
            let events = body["webhook_events_filter"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_else(|| {
                    vec![
                        "start".to_owned(),
                        "output".to_owned(),
                        "logs".to_owned(),
                        "completed".to_owned(),
                    ]
                });
            spawn_webhooks(Shared::clone(&shared), prediction.clone(), events);
        }
        prediction
    };
    HttpResponse::Created().json(prediction.view(&shared.base))
}

impl FakeReplicate {
    pub async fn start() -> Self {
        let secret = format!(
            "whsec_{}",
            STANDARD.encode(
                [
                    uuid::Uuid::now_v7().as_bytes().as_slice(),
                    uuid::Uuid::now_v7().as_bytes()
                ]
                .concat()
            )
        );
        let ledger = Arc::new(Mutex::new(Ledger {
            send_webhooks: true,
            ..Ledger::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Shared {
            base: base.clone(),
            secret: secret.clone(),
            ledger: Arc::clone(&ledger),
            client: reqwest::Client::new(),
        };
        let png = easel::providers::local::sample_png("replicate output", 128, 96, 3).expect("png");
        let glb = {
            let texture = image::load_from_memory(&png).expect("decode").to_rgb8();
            easel::model3d::relief(&texture, 12, &png).0
        };
        let server = HttpServer::new(move || {
            let png = png.clone();
            let glb = glb.clone();
            App::new()
                .app_data(web::Data::new(shared.clone()))
                .route("/v1/models/{owner}/{name}/predictions", web::post().to(
                    |req: HttpRequest, shared: web::Data<Shared>, path: web::Path<(String, String)>, body: web::Json<Value>| async move {
                        let (owner, name) = path.into_inner();
                        create(req, shared, Some(format!("{owner}/{name}")), body.into_inner()).await
                    }))
                .route("/v1/predictions", web::post().to(
                    |req: HttpRequest, shared: web::Data<Shared>, body: web::Json<Value>| async move {
                        create(req, shared, None, body.into_inner()).await
                    }))
                .route("/v1/predictions/{id}", web::get().to(
                    |req: HttpRequest, shared: web::Data<Shared>, id: web::Path<String>| async move {
                        if !authorized(&req) { return unauthenticated(); }
                        let mut ledger = shared.ledger.lock().expect("lock");
                        ledger.polls += 1;
                        match ledger.predictions.iter().find(|p| p.id == *id) {
                            Some(p) => HttpResponse::Ok().json(p.view(&shared.base)),
                            None => HttpResponse::NotFound().json(json!({"title": "Not found", "detail": "The requested resource could not be found.", "status": 404})),
                        }
                    }))
                .route("/v1/predictions/{id}/cancel", web::post().to(
                    |req: HttpRequest, shared: web::Data<Shared>, id: web::Path<String>| async move {
                        if !authorized(&req) { return unauthenticated(); }
                        let mut ledger = shared.ledger.lock().expect("lock");
                        ledger.cancels.push(id.to_string());
                        match ledger.predictions.iter_mut().find(|p| p.id == *id) {
                            Some(p) => {
                                let done = matches!(p.view(&shared.base)["status"].as_str(), Some("succeeded" | "failed"));
                                if !done { p.canceled = true; }
                                HttpResponse::Ok().json(p.view(&shared.base))
                            }
                            None => HttpResponse::NotFound().json(json!({"title": "Not found", "detail": "The requested resource could not be found.", "status": 404})),
                        }
                    }))
                .route("/v1/webhooks/default/secret", web::get().to(
                    |req: HttpRequest, shared: web::Data<Shared>| async move {
                        if !authorized(&req) { return unauthenticated(); }
                        HttpResponse::Ok().json(json!({"key": shared.secret}))
                    }))
                .route("/files/redirect-private.png", web::get().to(|| async {
                    HttpResponse::Found().insert_header(("location", "http://169.254.169.254/latest/meta-data/iam")).finish()
                }))
                .route("/files/{name}", web::get().to(move |name: web::Path<String>| {
                    let png = png.clone();
                    let glb = glb.clone();
                    async move {
                        if name.ends_with(".glb") {
                            HttpResponse::Ok().content_type("model/gltf-binary").body(glb)
                        } else {
                            HttpResponse::Ok().content_type("image/png").body(png)
                        }
                    }
                }))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base,
            secret,
            ledger,
            handle,
        }
    }

    /// Settings that point Easel at this fake.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("EASEL_REPLICATE_API_TOKEN", TOKEN.to_owned()),
            ("EASEL_REPLICATE_API_BASE", self.base.clone()),
            ("EASEL_DOWNLOAD_ALLOW_LOOPBACK", "true".to_owned()),
            ("EASEL_DOWNLOAD_ALLOWED_HOSTS", "127.0.0.1".to_owned()),
            ("EASEL_PROVIDER_POLL_SECS", "1".to_owned()),
        ]
    }

    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("lock")
    }

    /// The current state of a prediction, as a webhook would carry it.
    pub fn prediction(&self, id: &str) -> Option<Value> {
        let ledger = self.ledger();
        ledger
            .predictions
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.view(&self.base))
    }
}

impl Drop for FakeReplicate {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
