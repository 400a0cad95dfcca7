//! Cursor pagination: `?limit=` (1..=100, default 20) and `?cursor=` (opaque).
//!
//! A cursor is keyset position: the sort key value and id of the last row served, plus
//! the sort it belongs to, base64url-encoded JSON. The next page is the rows strictly
//! after `(value, id)` in the sort order, so concurrent inserts never make a page skip or
//! repeat a row. A cursor made for another sort is 400 `invalid_parameter`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// Parse `?limit=`.
pub fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_parameter(
                "limit",
                format!("must be an integer from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// Keyset position after the last row of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort this cursor belongs to (`-created_at`, `name`, ...).
    #[serde(rename = "s")]
    pub sort: String,
    /// The sort key value of the last row (a string, number or RFC 3339 time).
    #[serde(rename = "v")]
    pub value: serde_json::Value,
    /// The id of the last row (tie-breaker).
    #[serde(rename = "i")]
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decode `?cursor=` for `sort`; anything else is 400 `invalid_parameter`.
    pub fn decode(raw: &str, sort: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::invalid_parameter("cursor", "not a cursor of this listing");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.sort != sort {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// The list envelope: `{"data": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T: Serialize> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The response to a list request: `limit + 1` rows were asked for, so an extra row
/// means there is a next page, whose cursor is the last row served.
pub fn page<T: Serialize, C>(
    mut rows: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> C,
    encode: impl Fn(C) -> String,
) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode(cursor_of(r)))
    } else {
        None
    };
    Page {
        data: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None).unwrap(), 20);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "x", ""] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_belong_to_their_sort() {
        let c = Cursor {
            sort: "-created_at".into(),
            value: serde_json::json!("2026-01-01T00:00:00Z"),
            id: Uuid::new_v4(),
        };
        let s = c.encode();
        assert_eq!(Cursor::decode(&s, "-created_at").unwrap(), c);
        assert!(Cursor::decode(&s, "name").is_err());
        assert!(Cursor::decode("garbage!", "name").is_err());
    }
}
