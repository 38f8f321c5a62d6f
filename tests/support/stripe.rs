//! A fake Stripe API at the HTTP boundary: the Checkout Session and Refund calls Easel makes, answered with
//! Stripe's own published object shapes (tests/support/fixtures/stripe), form-encoded requests as
//! Stripe takes them, and events signed exactly as Stripe signs them (`Stripe-Signature`).

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};

pub const SECRET_KEY: &str = "sk_test_easel_fake_key";

fn fixture(name: &str) -> Value {
    let text = match name {
        "checkout_session" => include_str!("fixtures/stripe/checkout_session.json"),
        "event" => include_str!("fixtures/stripe/event.json"),
        "charge" => include_str!("fixtures/stripe/charge.json"),
        "refund" => include_str!("fixtures/stripe/refund.json"),
        _ => include_str!("fixtures/stripe/dispute.json"),
    };
    serde_json::from_str(text).expect("fixture")
}

/// A create call: its form fields and its Idempotency-Key.
pub type CreateCall = (Vec<(String, String)>, Option<String>);

#[derive(Default)]
pub struct Ledger {
    /// Sessions in creation order.
    pub sessions: Vec<Value>,
    /// Every create call: its form fields and its Idempotency-Key.
    pub creates: Vec<CreateCall>,
    /// Refunds made, in order (one per idempotency key, as Stripe keeps them).
    pub refunds: Vec<Value>,
    /// Every refund call: its form fields and its Idempotency-Key.
    pub refund_calls: Vec<CreateCall>,
    /// Refund calls fail as Stripe does when it is down (500 `api_error`).
    pub refunds_fail: bool,
}

pub struct FakeStripe {
    pub base: String,
    pub webhook_secret: String,
    pub ledger: Arc<Mutex<Ledger>>,
    handle: actix_web::dev::ServerHandle,
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn authorized(req: &HttpRequest) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {SECRET_KEY}"))
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().json(
        json!({"error": {"message": "Invalid API Key provided", "type": "invalid_request_error"}}),
    )
}

fn idempotency_key(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The object an earlier call with this idempotency key made: Stripe answers a repeated key with
/// the first response.
fn answered<'a>(made: &'a [Value], key: Option<&str>) -> Option<&'a Value> {
    let key = key?;
    made.iter()
        .find(|o| o["metadata"]["_idempotency_key"] == json!(key))
}

async fn create_session(
    req: HttpRequest,
    ledger: web::Data<Arc<Mutex<Ledger>>>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    if !authorized(&req) {
        return unauthorized();
    }
    let form = form.into_inner();
    let key = idempotency_key(&req);
    let mut ledger = ledger.lock().expect("lock");
    ledger.creates.push((form.clone(), key.clone()));
    if let Some(previous) = answered(&ledger.sessions, key.as_deref()) {
        return HttpResponse::Ok().json(previous);
    }
    let n = ledger.sessions.len() + 1;
    let id = format!("cs_test_easel{n:04}{}", "a".repeat(40));
    let mut session = fixture("checkout_session");
    let amount = field(&form, "line_items[0][price_data][unit_amount]")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(2000);
    let mut metadata = serde_json::Map::new();
    for (k, v) in &form {
        if let Some(name) = k
            .strip_prefix("metadata[")
            .and_then(|k| k.strip_suffix(']'))
        {
            metadata.insert(name.to_owned(), json!(v));
        }
    }
    let now = chrono::Utc::now().timestamp();
    session["id"] = json!(id);
    session["url"] = json!(format!("https://checkout.stripe.com/c/pay/{id}"));
    session["mode"] = json!(field(&form, "mode").unwrap_or("payment"));
    session["client_reference_id"] = json!(field(&form, "client_reference_id"));
    session["success_url"] = json!(field(&form, "success_url"));
    session["cancel_url"] = json!(field(&form, "cancel_url"));
    session["amount_subtotal"] = json!(amount);
    session["amount_total"] = json!(amount);
    session["currency"] =
        json!(field(&form, "line_items[0][price_data][currency]").unwrap_or("usd"));
    session["payment_intent"] = json!(format!("pi_test_easel{n:04}"));
    session["payment_status"] = json!("unpaid");
    session["status"] = json!("open");
    session["created"] = json!(now);
    session["expires_at"] = json!(now + 86_400);
    let mut stored = session.clone();
    stored["metadata"] = Value::Object(metadata.clone());
    if let Some(key) = &key {
        stored["metadata"]["_idempotency_key"] = json!(key);
    }
    session["metadata"] = Value::Object(metadata);
    ledger.sessions.push(stored);
    HttpResponse::Ok().json(session)
}

fn public(session: &Value) -> Value {
    let mut session = session.clone();
    if let Some(m) = session["metadata"].as_object_mut() {
        m.remove("_idempotency_key");
    }
    session
}

async fn list_sessions(
    req: HttpRequest,
    ledger: web::Data<Arc<Mutex<Ledger>>>,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    if !authorized(&req) {
        return unauthorized();
    }
    let since = field(&query, "created[gte]")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let limit = field(&query, "limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(10);
    let after = field(&query, "starting_after");
    let ledger = ledger.lock().expect("lock");
    // Newest first, as Stripe lists.
    let mut all: Vec<Value> = ledger
        .sessions
        .iter()
        .rev()
        .filter(|s| s["created"].as_i64().unwrap_or(0) >= since)
        .map(public)
        .collect();
    if let Some(after) = after
        && let Some(at) = all.iter().position(|s| s["id"] == json!(after))
    {
        all.drain(..=at);
    }
    let has_more = all.len() > limit;
    all.truncate(limit);
    HttpResponse::Ok().json(json!({"object": "list", "data": all, "has_more": has_more, "url": "/v1/checkout/sessions"}))
}

/// `POST /v1/refunds` of a whole payment, as Stripe answers it: a repeated idempotency key gets the
/// first refund back, not a second one.
async fn create_refund(
    req: HttpRequest,
    ledger: web::Data<Arc<Mutex<Ledger>>>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    if !authorized(&req) {
        return unauthorized();
    }
    let form = form.into_inner();
    let key = idempotency_key(&req);
    let mut ledger = ledger.lock().expect("lock");
    ledger.refund_calls.push((form.clone(), key.clone()));
    if ledger.refunds_fail {
        return HttpResponse::InternalServerError()
            .json(json!({"error": {"message": "An unknown error occurred", "type": "api_error"}}));
    }
    if let Some(previous) = answered(&ledger.refunds, key.as_deref()) {
        return HttpResponse::Ok().json(previous);
    }
    let Some(payment_intent) = field(&form, "payment_intent").map(str::to_owned) else {
        return HttpResponse::BadRequest().json(
            json!({"error": {"message": "Missing required param: payment_intent.", "type": "invalid_request_error"}}),
        );
    };
    let Some(amount) = ledger
        .sessions
        .iter()
        .find(|s| s["payment_intent"] == json!(payment_intent))
        .map(|s| s["amount_total"].clone())
    else {
        return HttpResponse::NotFound().json(
            json!({"error": {"message": format!("No such payment_intent: '{payment_intent}'"), "type": "invalid_request_error"}}),
        );
    };
    let mut refund = fixture("refund");
    refund["id"] = json!(format!("re_easel{:04}", ledger.refunds.len() + 1));
    refund["amount"] = amount;
    refund["payment_intent"] = json!(payment_intent);
    refund["reason"] = json!(field(&form, "reason"));
    refund["metadata"] =
        json!({"purchase_id": field(&form, "metadata[purchase_id]"), "_idempotency_key": key});
    ledger.refunds.push(refund.clone());
    HttpResponse::Ok().json(refund)
}

impl FakeStripe {
    pub async fn start() -> Self {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let data = web::Data::new(Arc::clone(&ledger));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/checkout/sessions", web::post().to(create_session))
                .route("/v1/checkout/sessions", web::get().to(list_sessions))
                .route("/v1/refunds", web::post().to(create_refund))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base,
            webhook_secret: format!("whsec_{}", uuid::Uuid::now_v7().simple()),
            ledger,
            handle,
        }
    }

    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("EASEL_STRIPE_SECRET_KEY", SECRET_KEY.to_owned()),
            ("EASEL_STRIPE_API_BASE", self.base.clone()),
            ("EASEL_STRIPE_WEBHOOK_SECRET", self.webhook_secret.clone()),
        ]
    }

    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("lock")
    }

    /// The buyer finished the checkout: the session becomes complete, paid or (a delayed payment
    /// method) unpaid. Returns the session as Stripe would now show it.
    pub fn complete(&self, session_id: &str, paid: bool) -> Value {
        let mut ledger = self.ledger();
        let session = ledger
            .sessions
            .iter_mut()
            .find(|s| s["id"] == json!(session_id))
            .expect("session");
        session["status"] = json!("complete");
        session["payment_status"] = json!(if paid { "paid" } else { "unpaid" });
        public(session)
    }

    pub fn session(&self, session_id: &str) -> Value {
        self.ledger()
            .sessions
            .iter()
            .find(|s| s["id"] == json!(session_id))
            .map(public)
            .expect("session")
    }

    /// A charge of the session's payment with `refunded` cents refunded so far.
    pub fn charge(&self, session: &Value, refunded: i64) -> Value {
        let mut charge = fixture("charge");
        charge["id"] = json!(format!(
            "ch_{}",
            session["payment_intent"].as_str().unwrap_or_default()
        ));
        charge["amount"] = session["amount_total"].clone();
        charge["amount_captured"] = session["amount_total"].clone();
        charge["amount_refunded"] = json!(refunded);
        charge["refunded"] = json!(Some(refunded) == session["amount_total"].as_i64());
        charge["payment_intent"] = session["payment_intent"].clone();
        charge
    }

    pub fn dispute(&self, session: &Value) -> Value {
        let mut dispute = fixture("dispute");
        dispute["amount"] = session["amount_total"].clone();
        dispute["charge"] = json!(format!(
            "ch_{}",
            session["payment_intent"].as_str().unwrap_or_default()
        ));
        dispute["payment_intent"] = session["payment_intent"].clone();
        dispute
    }

    /// An event of `type` about `object`, as Stripe delivers it.
    pub fn event(&self, event_type: &str, object: Value) -> String {
        let mut event = fixture("event");
        event["id"] = json!(format!("evt_{}", uuid::Uuid::now_v7().simple()));
        event["type"] = json!(event_type);
        event["created"] = json!(chrono::Utc::now().timestamp());
        event["api_version"] = json!("2025-03-31.basil");
        event["data"] = json!({"object": object});
        event.to_string()
    }

    /// The `Stripe-Signature` header for a payload: `t=…,v1=<hex HMAC-SHA256 of "t.payload">`,
    /// keyed with the whole `whsec_…` secret as Stripe does.
    pub fn signature(secret: &str, timestamp: i64, payload: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac");
        mac.update(format!("{timestamp}.{payload}").as_bytes());
        format!(
            "t={timestamp},v1={}",
            hex_encode(&mac.finalize().into_bytes())
        )
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
