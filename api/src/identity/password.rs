//! argon2id password hashes. Hashing is slow on purpose, so it runs on the blocking pool.

use crate::error::ApiError;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A PHC string (`$argon2id$v=19$…`) for a new password.
pub async fn hash(password: String) -> Result<String, ApiError> {
    actix_web::web::block(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// Checks a password against a stored hash. With no hash (unknown account) it still does the work
/// of one verification, so response times do not reveal which emails have accounts.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    actix_web::web::block(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && stored != DUMMY_HASH
    })
    .await
    .map_err(ApiError::internal)
}

/// The hash of a random password nobody knows, with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$yRvTfmUEM4NDoyXUdJ3GPTqZWAqPmqLnLxwPz/PsvlI";

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn hashes_verify_and_wrong_passwords_do_not() -> Result<(), ApiError> {
        let stored = hash("correct horse".to_owned()).await?;
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse".to_owned(), Some(stored.clone())).await?);
        assert!(!verify("wrong horse".to_owned(), Some(stored)).await?);
        assert!(!verify("anything".to_owned(), None).await?);
        Ok(())
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
