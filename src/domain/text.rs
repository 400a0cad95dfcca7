//! What every text and time the store keeps or compares must be, on both stores alike.
//!
//! Postgres refuses a NUL byte in `text` and a `timestamptz` outside 4713 BC..294276 AD;
//! the memory store takes both. So these are refused here, in the parsers, before any
//! store sees them: the request's fault (400/422), never the database's (500), and the
//! same answer on both stores. Times are held to the years RFC 3339 can write (1..=9999),
//! well inside Postgres's range; every time the service writes is of this era.

use chrono::{DateTime, Datelike, Utc};

use super::rule::Violation;

/// Whether `s` can be stored and compared as text: no NUL byte.
pub fn storable(s: &str) -> bool {
    !s.contains('\0')
}

/// `s` unchanged if storable, else the rule it breaks.
pub fn check_storable(s: &str) -> Result<&str, Violation> {
    if storable(s) {
        Ok(s)
    } else {
        Err(Violation::new("format", "must not contain NUL characters"))
    }
}

/// Whether `t` lies in the years 1..=9999.
pub fn storable_time(t: &DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// An RFC 3339 time of the years 1..=9999, in UTC.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(storable_time)
}

/// A keyset position's time, as a cursor carries it (a JSON string in RFC 3339).
pub fn keyset_time(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(parse_time)
}

/// A keyset position's text, as a cursor carries it (a storable JSON string).
pub fn keyset_text(v: &serde_json::Value) -> Option<String> {
    v.as_str().filter(|s| storable(s)).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_not_storable() {
        assert!(storable("plain é \n\t"));
        assert!(!storable("a\0b"));
        assert!(check_storable("\0").is_err());
    }

    #[test]
    fn times_outside_the_era_are_refused() {
        assert!(parse_time("2026-01-01T00:00:00Z").is_some());
        assert!(parse_time("0001-01-01T00:00:00Z").is_some());
        assert!(parse_time("9999-12-31T23:59:59.999999Z").is_some());
        assert!(parse_time("9999-12-31T23:59:59-01:00").is_none());
        assert!(parse_time("0000-01-01T00:00:00Z").is_none());
        assert!(parse_time("0001-01-01T00:00:00+01:00").is_none());
        assert!(parse_time("-10000-01-01T00:00:00Z").is_none());
        assert!(parse_time("+10000-01-01T00:00:00Z").is_none());
        assert!(keyset_time(&serde_json::json!("-10000-01-01T00:00:00Z")).is_none());
        assert!(keyset_time(&serde_json::json!(12)).is_none());
        assert_eq!(keyset_text(&serde_json::json!("a\u{0}")), None);
        assert_eq!(keyset_text(&serde_json::json!("ab")), Some("ab".into()));
    }
}
