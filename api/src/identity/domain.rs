//! Identity values parsed once at the edge: a value of these types is valid by construction.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::ValidateEmail;

/// An email address, lower-cased: addresses are unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim().to_lowercase();
        if value.len() > 254 || !value.validate_email() {
            return Err(field("email", "must be a valid email address"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 3–32 characters of `a-z`, `0-9`, `_` and `-`; upper case input is folded to lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const PATTERN: &'static str = "^[A-Za-z0-9_-]{3,32}$";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim().to_lowercase();
        let valid = (3..=32).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(field(
                "username",
                "must be 3 to 32 characters of a-z, 0-9, _ and -",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8 to 128 characters. Never logged, never serialised.
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let n = raw.chars().count();
        if n < Self::MIN {
            return Err(field("password", "must be at least 8 characters"));
        }
        if n > Self::MAX {
            return Err(field("password", "must be at most 128 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    pub fn from_db(value: &str) -> Self {
        if value == "admin" {
            Self::Admin
        } else {
            Self::User
        }
    }
}

/// What an API key may do. Sessions may do everything their user may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Create generations and spend credits.
    Generate,
    /// Read the account, its images, credits and history.
    Read,
    /// Start checkouts and read purchases.
    Billing,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Generate, Scope::Read, Scope::Billing];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "generate",
            Self::Read => "read",
            Self::Billing => "billing",
        }
    }

    pub fn from_db(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

fn field(name: &str, message: &str) -> FieldError {
    FieldError {
        field: name.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ")
                .map(|e| e.0)
                .ok()
                .as_deref(),
            Some("ada@example.com")
        );
        for bad in ["", "ada", "ada@", "@example.com", "a b@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames_fold_case_and_keep_to_the_alphabet() {
        assert_eq!(
            Username::parse("Ada_L-1").map(|u| u.0).ok().as_deref(),
            Some("ada_l-1")
        );
        for bad in ["ab", "a".repeat(33).as_str(), "ada lovelace", "ada!", "ädä"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("long enough").is_ok());
    }
}
