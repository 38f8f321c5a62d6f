//! Request ids: accepted from `X-Request-Id` when well-formed, else generated (UUIDv7), echoed back,
//! attached to every log line of the request and to every problem body.

use actix_web::http::header::HeaderMap;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: String;
}

/// The request id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

/// A caller-supplied id is kept only if it is short and plain, so it cannot inject into logs.
pub fn from_headers(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(HEADER)?.to_str().ok()?;
    let well_formed = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    well_formed.then(|| value.to_owned())
}

pub fn generate() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            map.insert(HeaderName::from_static(HEADER), v);
        }
        map
    }

    #[test]
    fn keeps_well_formed_ids() {
        assert_eq!(
            from_headers(&headers("abc-123_x.y:z")).as_deref(),
            Some("abc-123_x.y:z")
        );
    }

    #[test]
    fn drops_ids_that_could_inject() {
        assert_eq!(from_headers(&headers("a b")), None);
        assert_eq!(from_headers(&headers("x\"}")), None);
        assert_eq!(from_headers(&headers(&"a".repeat(129))), None);
        assert_eq!(from_headers(&HeaderMap::new()), None);
    }
}
