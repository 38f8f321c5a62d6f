//! Input images: uploads (private to the uploader, purged a day after upload unless a generation used
//! them), the rule for which images a person may use as an input, and the short-lived signed URLs
//! through which remote providers fetch a job's input.

pub mod routes;
pub mod service;
pub mod store;

use crate::error::{ApiError, ErrorCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a provider's input URL works.
pub const INPUT_URL_TTL_SECS: i64 = 15 * 60;
/// Unused uploads older than this are purged.
pub const UPLOAD_TTL_HOURS: i64 = 24;
/// Decoding a larger image could take the server's memory: refuse it by its header.
pub const MAX_INPUT_PIXELS: u64 = 40_000_000;

crate::uuid_id!(
    /// A file uploaded to use as an input image.
    UploadId
);

/// Signs and checks short-lived links: the ones that let a provider fetch one job's input, and
/// account exports' download links. The key is derived from the token-signing secret, so there is
/// no extra setting to manage; each kind of link signs a message with its own prefix.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(secret: &str) -> Self {
        let mut mac = hmac(secret.as_bytes());
        mac.update(b"easel input urls v1");
        Self {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    /// The signature of `message`, hex.
    pub fn sign(&self, message: &str) -> String {
        let mut mac = hmac(&self.key);
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `sig` is [`Signer::sign`]'s for `message`, compared in constant time.
    pub fn verifies(&self, message: &str, sig: &str) -> bool {
        let Ok(given) = hex::decode(sig) else {
            return false;
        };
        let mut mac = hmac(&self.key);
        mac.update(message.as_bytes());
        mac.verify_slice(&given).is_ok()
    }

    /// The path (with query) of the generation's input, valid until `expires` (unix seconds).
    pub fn input_path(&self, generation: uuid::Uuid, expires: i64) -> String {
        format!(
            "/v1/generations/{generation}/input?expires={expires}&sig={}",
            self.sign(&format!("input:{generation}:{expires}"))
        )
    }

    /// Accepts a signature made by [`Signer::input_path`] that has not expired.
    pub fn check(
        &self,
        generation: uuid::Uuid,
        expires: i64,
        sig: &str,
        now: i64,
    ) -> Result<(), ApiError> {
        let refused = || ApiError::new(ErrorCode::NotFound, "no such input, or its link expired");
        if !self.verifies(&format!("input:{generation}:{expires}"), sig) {
            return Err(refused());
        }
        if now > expires || expires - now > INPUT_URL_TTL_SECS {
            return Err(refused());
        }
        Ok(())
    }
}

/// HMAC-SHA256 keyed with `key`. HMAC takes keys of any length, so this never falls back.
fn hmac(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_urls_expire_and_cannot_be_moved_to_another_job() {
        let signer = Signer::new("a-secret-of-enough-length-for-tests-0123");
        let job = uuid::Uuid::now_v7();
        let path = signer.input_path(job, 1_000);
        let sig = path.rsplit("sig=").next().unwrap_or_default();
        assert!(signer.check(job, 1_000, sig, 900).is_ok());
        assert!(signer.check(job, 1_000, sig, 1_001).is_err(), "expired");
        assert!(signer.check(job, 1_001, sig, 900).is_err(), "expiry edited");
        assert!(
            signer.check(uuid::Uuid::now_v7(), 1_000, sig, 900).is_err(),
            "another job"
        );
        assert!(signer.check(job, 1_000, "zz", 900).is_err());
        let far = signer.input_path(job, 1_000_000);
        let far_sig = far.rsplit("sig=").next().unwrap_or_default();
        assert!(
            signer.check(job, 1_000_000, far_sig, 0).is_err(),
            "too long-lived"
        );
        let other = Signer::new("another-secret-of-enough-length-for-tests");
        assert!(
            other.check(job, 1_000, sig, 900).is_err(),
            "another server's key"
        );
    }
}
