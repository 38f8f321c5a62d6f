//! Opaque keyset cursors and the `limit`/`cursor` query parameters every list takes.
//!
//! A cursor is base64url of `{"k": <list kind>, "v": <sort key>}` plus a checksum. The kind stops a
//! cursor from one list being replayed against another; the checksum turns an edited cursor into
//! 400 `invalid_cursor` instead of a silently different page. Cursors carry no secrets: the sort key
//! of the last item on a page is something the caller has already seen.

use crate::error::{ApiError, ErrorCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// `?limit=&cursor=` as sent by the client; turn into a [`PageRequest`] with [`PageParams::parse`].
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many items to return, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page; omit for the first page.
    pub cursor: Option<String>,
}

/// A validated page request: the limit, and the sort key to continue after (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest<K> {
    pub limit: i64,
    pub after: Option<K>,
}

impl PageParams {
    /// Checks the limit bounds and decodes the cursor for the list called `kind`.
    pub fn parse<K: DeserializeOwned>(&self, kind: &str) -> Result<PageRequest<K>, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(decode(kind, raw)?),
        };
        Ok(PageRequest { limit, after })
    }
}

/// One page of a list, the shape of every list response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with `LIMIT limit + 1`: the extra row only says whether more
    /// exist. `key` gives the sort key of an item, which becomes the cursor after the last one.
    pub fn from_rows<K: Serialize>(
        kind: &str,
        mut rows: Vec<T>,
        limit: i64,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().map(|last| encode(kind, &key(last)))
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
            has_more,
        }
    }
}

impl<T> Page<T> {
    /// Like [`Page::from_rows`], for rows whose sort key is not part of the item shown (a feed
    /// position, a relevance rank): each row comes paired with its key.
    pub fn from_keyed_rows<K: Serialize + Clone>(
        kind: &str,
        rows: Vec<(K, T)>,
        limit: i64,
    ) -> Self {
        let page = Page::from_rows(kind, rows, limit, |(key, _)| key.clone());
        Page {
            data: page.data.into_iter().map(|(_, item)| item).collect(),
            next_cursor: page.next_cursor,
            has_more: page.has_more,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<S, V> {
    k: S,
    v: V,
}

/// Encodes the sort key `key` for the list `kind`.
pub fn encode<K: Serialize>(kind: &str, key: &K) -> String {
    let envelope = Envelope { k: kind, v: key };
    // Serialising plain keys (numbers, strings, timestamps, uuids) cannot fail.
    let mut bytes = serde_json::to_vec(&envelope).unwrap_or_default();
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a cursor made by [`encode`] for the same `kind`; anything else is `invalid_cursor`.
pub fn decode<K: DeserializeOwned>(kind: &str, cursor: &str) -> Result<K, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidCursor,
            "cursor is not valid for this list; use next_cursor from a previous page exactly as returned",
        )
    };
    if cursor.len() > 1024 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let split = bytes.len().checked_sub(4).ok_or_else(invalid)?;
    let (payload, sum) = bytes.split_at(split);
    if sum != checksum(payload).to_be_bytes() {
        return Err(invalid());
    }
    let envelope: Envelope<String, K> = serde_json::from_slice(payload).map_err(|_| invalid())?;
    if envelope.k != kind {
        return Err(invalid());
    }
    Ok(envelope.v)
}

/// FNV-1a: catches edits and truncation. Not a signature; cursors guard no secrets.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Key = (String, i64);

    fn params(limit: Option<i64>, cursor: Option<&str>) -> PageParams {
        PageParams {
            limit,
            cursor: cursor.map(str::to_owned),
        }
    }

    #[test]
    fn round_trips_a_key() -> Result<(), ApiError> {
        let key: Key = ("2026-11-24T10:00:00Z".to_owned(), 42);
        let cursor = encode("images", &key);
        assert!(
            cursor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let page = params(Some(5), Some(&cursor)).parse::<Key>("images")?;
        assert_eq!(
            page,
            PageRequest {
                limit: 5,
                after: Some(key)
            }
        );
        Ok(())
    }

    #[test]
    fn float_keys_come_back_bit_for_bit() -> Result<(), ApiError> {
        // A feed continues after `(score, id) < (key, id)`: a key that comes back one ulp higher
        // shows the last item again. Trending scores are ~39,000 with a long fraction.
        let mut value = 39_333.123_456_789_f64;
        for step in 0..20_000 {
            value += 0.000_137 * f64::from(step % 97) + 1e-9;
            let cursor = encode("feed", &value);
            let back = params(None, Some(&cursor)).parse::<f64>("feed")?.after;
            assert_eq!(back.map(f64::to_bits), Some(value.to_bits()), "{value}");
        }
        Ok(())
    }

    #[test]
    fn limit_defaults_and_bounds() {
        let page = params(None, None).parse::<Key>("images").ok();
        assert_eq!(page.map(|p| p.limit), Some(DEFAULT_LIMIT));
        for bad in [0, -1, 101, i64::MAX] {
            let err = params(Some(bad), None)
                .parse::<Key>("images")
                .err()
                .map(|e| e.code);
            assert_eq!(err, Some(ErrorCode::ValidationFailed), "limit {bad}");
        }
        assert!(params(Some(100), None).parse::<Key>("images").is_ok());
        assert!(params(Some(1), None).parse::<Key>("images").is_ok());
    }

    fn rejects(kind: &str, cursor: &str) -> bool {
        matches!(decode::<Key>(kind, cursor), Err(e) if e.code == ErrorCode::InvalidCursor)
    }

    #[test]
    fn malformed_cursors_are_invalid() {
        assert!(rejects("images", "not base64!"));
        assert!(rejects("images", "AAAA"));
        assert!(rejects("images", "e30"));
        assert!(rejects("images", &"A".repeat(2000)));
        // well-formed and checksummed, but the key has the wrong shape
        assert!(rejects("images", &encode("images", &"just a string")));
    }

    #[test]
    fn tampered_cursors_are_invalid() {
        let cursor = encode("images", &("2026-11-24T10:00:00Z".to_owned(), 42_i64));
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap_or_default();
        // change the id 42 to 43 without fixing the checksum
        if let Some(pos) = bytes.windows(2).position(|w| w == b"42") {
            bytes[pos + 1] = b'3';
        }
        let edited = URL_SAFE_NO_PAD.encode(&bytes);
        assert_ne!(edited, cursor);
        assert!(rejects("images", &edited));
        assert!(rejects("images", &cursor[..cursor.len() - 2]));
    }

    #[test]
    fn cursor_of_another_list_is_invalid() {
        let cursor = encode("collections", &("x".to_owned(), 1_i64));
        assert!(rejects("images", &cursor));
    }

    #[test]
    fn page_from_rows_uses_the_extra_row_only_for_has_more() -> Result<(), ApiError> {
        let page = Page::from_rows("n", vec![1_i64, 2, 3], 2, |n| *n);
        assert_eq!(page.data, vec![1, 2]);
        assert!(page.has_more);
        let next = page.next_cursor.clone().unwrap_or_default();
        assert_eq!(decode::<i64>("n", &next)?, 2);
        let last = Page::from_rows("n", vec![1_i64, 2], 2, |n| *n);
        assert!(!last.has_more);
        assert_eq!(last.next_cursor, None);
        Ok(())
    }
}
