//! API key secrets: `esl_` + 40 random base62 characters. Only a SHA-256 of the key is stored; the
//! key's entropy makes a slow hash unnecessary, and a fast one keeps every request cheap.

use rand::Rng;
use rand::distr::Alphanumeric;

pub const PREFIX: &str = "esl_";
const RANDOM_CHARS: usize = 40;

pub struct NewSecret {
    pub key: String,
    /// `esl_` and the first four random characters, shown in lists.
    pub prefix: String,
    pub last_four: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> NewSecret {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from)
        .collect();
    let key = format!("{PREFIX}{random}");
    NewSecret {
        prefix: key.chars().take(PREFIX.len() + 4).collect(),
        last_four: random.chars().skip(RANDOM_CHARS - 4).collect(),
        hash: super::tokens::sha256(&key),
        key,
    }
}

pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_base62_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with("esl_"));
        assert_eq!(a.key.len(), 44);
        assert!(a.key[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(a.key.starts_with(&a.prefix) && a.key.ends_with(&a.last_four));
        assert_eq!(a.hash, super::super::tokens::sha256(&a.key));
    }
}
