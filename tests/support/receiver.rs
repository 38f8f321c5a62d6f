//! A webhook receiver at the HTTP boundary, as an API client would run one: it records every
//! delivery (headers and raw body) and answers with the statuses it is given, in turn, then 204.

use actix_web::http::header::HeaderMap;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inbox {
    deliveries: Vec<Delivery>,
    answers: VecDeque<u16>,
}

pub struct Receiver {
    /// Where to point `webhook_url`.
    pub url: String,
    inbox: Arc<Mutex<Inbox>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    /// Starts a receiver that answers the first requests with `answers`, then 204.
    pub async fn start(answers: &[u16]) -> Self {
        Self::start_slow(answers, Duration::ZERO).await
    }

    /// [`Receiver::start`], taking `delay` to answer each request (recorded on arrival).
    pub async fn start_slow(answers: &[u16], delay: Duration) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox {
            deliveries: Vec::new(),
            answers: answers.iter().copied().collect(),
        }));
        let shared = Arc::clone(&inbox);
        let server = HttpServer::new(move || {
            let inbox = Arc::clone(&shared);
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let inbox = Arc::clone(&inbox);
                async move {
                    let status = {
                        let mut inbox = inbox.lock().expect("inbox");
                        inbox.deliveries.push(Delivery {
                            headers: req.headers().clone(),
                            body: body.to_vec(),
                        });
                        inbox.answers.pop_front().unwrap_or(204)
                    };
                    tokio::time::sleep(delay).await;
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(status).expect("a status"),
                    )
                    .finish()
                }
            }))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .expect("bind the receiver");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://{addr}/hooks/easel"),
            inbox,
            handle,
        }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inbox.lock().expect("inbox").deliveries.clone()
    }

    /// Waits (at most 20 s) until `count` deliveries have come, and returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Delivery> {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let deliveries = self.deliveries();
            if deliveries.len() >= count {
                return deliveries;
            }
            assert!(
                Instant::now() < until,
                "{} of {count} deliveries came",
                deliveries.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
