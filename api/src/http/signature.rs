//! Standard Webhooks / Svix signatures: HMAC-SHA256 over `{id}.{timestamp}.{raw body}` with the
//! base64 secret after `whsec_`. Used by the identity provider (svix-* headers) and Replicate
//! (webhook-* headers). Verified on the raw bytes, before any parsing.

use crate::error::{ApiError, ErrorCode};
use actix_web::http::header::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a delivery's timestamp may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// A verified delivery's id (use it to apply each delivery once) and timestamp.
#[derive(Debug, Clone)]
pub struct Verified {
    pub id: String,
    pub timestamp: i64,
}

pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Verified, ApiError> {
    let header = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
            .map(str::to_owned)
    };
    let id = header(["svix-id", "webhook-id"]).ok_or_else(|| invalid("missing svix-id header"))?;
    let timestamp: i64 = header(["svix-timestamp", "webhook-timestamp"])
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| invalid("missing or malformed svix-timestamp header"))?;
    let signatures = header(["svix-signature", "webhook-signature"])
        .ok_or_else(|| invalid("missing svix-signature header"))?;
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(invalid("timestamp outside the allowed tolerance"));
    }
    let expected = sign(secret, &id, timestamp, body)?;
    // Several signatures may be present while a secret is being rotated: any match will do.
    let matched = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|candidate| {
            subtle::ConstantTimeEq::ct_eq(candidate.as_slice(), expected.as_slice()).into()
        });
    if !matched {
        return Err(invalid("no signature matches"));
    }
    Ok(Verified { id, timestamp })
}

/// The raw HMAC of a delivery; also what test senders use to sign.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| {
            ApiError::internal(anyhow::anyhow!("webhook secret is not base64 after whsec_"))
        })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(ApiError::internal)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac.finalize().into_bytes().to_vec())
}

fn invalid(detail: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidSignature,
        format!("webhook signature rejected: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in [
            ("svix-id", id.to_owned()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", sig.to_owned()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&v) {
                map.insert(HeaderName::from_static(k), value);
            }
        }
        map
    }

    fn signature(id: &str, ts: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(sign(SECRET, id, ts, body).unwrap_or_default())
        )
    }

    #[test]
    fn accepts_a_valid_signature_among_several() {
        let body = br#"{"type":"user.created"}"#;
        let sig = format!("v1,bm90IGl0 {}", signature("msg_1", 1000, body));
        let ok = verify(SECRET, &headers("msg_1", 1000, &sig), body, 1010);
        assert!(ok.is_ok_and(|v| v.id == "msg_1"));
    }

    #[test]
    fn rejects_tampering_and_stale_or_future_timestamps() {
        let body = br#"{"type":"user.created"}"#;
        let sig = signature("msg_1", 1000, body);
        let code = |r: Result<Verified, ApiError>| r.err().map(|e| e.code);
        assert_eq!(
            code(verify(SECRET, &headers("msg_1", 1000, &sig), b"{}", 1000)),
            Some(ErrorCode::InvalidSignature)
        );
        assert_eq!(
            code(verify(SECRET, &headers("msg_2", 1000, &sig), body, 1000)),
            Some(ErrorCode::InvalidSignature)
        );
        assert_eq!(
            code(verify(
                SECRET,
                &headers("msg_1", 1000, &sig),
                body,
                1000 + 301
            )),
            Some(ErrorCode::InvalidSignature)
        );
        assert_eq!(
            code(verify(
                SECRET,
                &headers("msg_1", 1000, &sig),
                body,
                1000 - 301
            )),
            Some(ErrorCode::InvalidSignature)
        );
        assert_eq!(
            code(verify(SECRET, &HeaderMap::new(), body, 1000)),
            Some(ErrorCode::InvalidSignature)
        );
    }
}
