//! Rate limits: per caller (user or API key) for authenticated calls, per IP for anonymous ones,
//! and a strict per-IP budget for the auth endpoints. The store is a trait so a shared one (Redis,
//! PostgreSQL) can replace the in-process default when several instances run.

use crate::config::RateLimits;
use crate::error::{ApiError, ErrorCode};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{Error, ResponseError};
use futures_util::future::{LocalBoxFuture, Ready, ready};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The outcome of counting one request against a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the budget is full again (or, when refused, until one request is allowed).
    pub reset_secs: u64,
}

pub trait RateLimitStore: Send + Sync {
    /// Counts one request for `key` against `limit` per `period`.
    fn hit(&self, key: &str, limit: u32, period: Duration) -> Decision;
}

/// A token bucket per key, in this process's memory.
#[derive(Default)]
pub struct InMemoryStore {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimitStore for InMemoryStore {
    fn hit(&self, key: &str, limit: u32, period: Duration) -> Decision {
        let now = Instant::now();
        let capacity = f64::from(limit.max(1));
        let per_sec = capacity / period.as_secs_f64().max(0.001);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() > 100_000 {
            // Forget buckets that have refilled: they carry no state worth keeping.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_sec < capacity
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let refilled = (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_sec)
            .min(capacity);
        let allowed = refilled >= 1.0;
        let tokens = if allowed { refilled - 1.0 } else { refilled };
        *bucket = Bucket {
            tokens,
            updated: now,
        };
        let reset_secs = if allowed {
            ((capacity - tokens) / per_sec).ceil() as u64
        } else {
            ((1.0 - tokens) / per_sec).ceil().max(1.0) as u64
        };
        Decision {
            allowed,
            limit,
            remaining: tokens.floor().max(0.0) as u32,
            reset_secs,
        }
    }
}

pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);

/// Counts one `what` for `key` against `limit` per `period`: the 429 when it is spent.
pub fn enforce(
    store: &dyn RateLimitStore,
    key: &str,
    limit: u32,
    period: Duration,
    what: &str,
) -> Result<(), ApiError> {
    let decision = store.hit(key, limit, period);
    if decision.allowed {
        Ok(())
    } else {
        Err(too_many(&decision, what))
    }
}

/// Adds the `RateLimit-*` headers (and `Retry-After` when refused) to a response's headers.
pub fn apply_headers(headers: &mut actix_web::http::header::HeaderMap, decision: &Decision) {
    let mut set = |name: &'static str, value: u64| {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("ratelimit-limit", u64::from(decision.limit));
    set("ratelimit-remaining", u64::from(decision.remaining));
    set("ratelimit-reset", decision.reset_secs);
    if !decision.allowed {
        set("retry-after", decision.reset_secs);
    }
}

/// The 429 for a refused decision.
pub fn too_many(decision: &Decision, what: &str) -> ApiError {
    let mut error = ApiError::new(
        ErrorCode::RateLimited,
        format!("too many {what}; retry in {} s", decision.reset_secs),
    );
    let mut headers = actix_web::http::header::HeaderMap::new();
    apply_headers(&mut headers, decision);
    error.headers.extend(headers);
    error
}

/// The middleware: picks the budget by route class and caller, answers 429 when it is spent.
#[derive(Clone)]
pub struct RateLimit {
    store: Arc<dyn RateLimitStore>,
    limits: RateLimits,
}

impl RateLimit {
    pub fn new(store: Arc<dyn RateLimitStore>, limits: RateLimits) -> Self {
        Self { store, limits }
    }

    /// The key and per-minute limit for a request, or None for routes outside rate limiting
    /// (operations endpoints and webhooks, whose senders retry and are authenticated by signature).
    fn budget(&self, req: &ServiceRequest) -> Option<(String, u32)> {
        let path = req.path();
        if !path.starts_with("/v1/") {
            return None;
        }
        let ip = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        if path.starts_with("/v1/auth/") {
            return Some((format!("auth:{ip}"), self.limits.auth_per_ip));
        }
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match bearer {
            // Keyed by a digest of the credential: valid or not, each credential has its own
            // budget, and the credential itself is never kept in memory.
            Some(token) => {
                let digest = Sha256::digest(token.trim().as_bytes());
                Some((
                    format!("principal:{}", hex::encode(&digest[..12])),
                    self.limits.api_per_principal,
                ))
            }
            None => Some((format!("anonymous:{ip}"), self.limits.anonymous_per_ip)),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RateLimit
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = RateLimitService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitService {
            service: Rc::new(service),
            limiter: self.clone(),
        }))
    }
}

pub struct RateLimitService<S> {
    service: Rc<S>,
    limiter: RateLimit,
}

impl<S, B> Service<ServiceRequest> for RateLimitService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let Some((key, limit)) = self.limiter.budget(&req) else {
            let fut = self.service.call(req);
            return Box::pin(async move { fut.await.map(ServiceResponse::map_into_boxed_body) });
        };
        let decision = self.limiter.store.hit(&key, limit, MINUTE);
        if !decision.allowed {
            let response = too_many(&decision, "requests").error_response();
            return Box::pin(async move { Ok(req.into_response(response)) });
        }
        let fut = self.service.call(req);
        Box::pin(async move {
            let mut res = fut.await?.map_into_boxed_body();
            apply_headers(res.headers_mut(), &decision);
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_limit_then_refuses_with_a_retry_time() {
        let store = InMemoryStore::default();
        for expected_remaining in (0..3).rev() {
            let d = store.hit("k", 3, MINUTE);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
        }
        let refused = store.hit("k", 3, MINUTE);
        assert!(!refused.allowed);
        assert!(
            refused.reset_secs >= 1 && refused.reset_secs <= 20,
            "{refused:?}"
        );
        // other keys are unaffected
        assert!(store.hit("other", 3, MINUTE).allowed);
    }

    #[test]
    fn refused_errors_carry_retry_after() {
        let d = Decision {
            allowed: false,
            limit: 5,
            remaining: 0,
            reset_secs: 12,
        };
        let error = too_many(&d, "login attempts");
        assert_eq!(error.code, ErrorCode::RateLimited);
        let retry = error.headers.iter().find(|(n, _)| n == header::RETRY_AFTER);
        assert_eq!(retry.map(|(_, v)| v.as_bytes()), Some(&b"12"[..]));
    }
}
