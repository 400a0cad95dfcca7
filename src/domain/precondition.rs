//! Preconditions of a write, and the entity tags they compare.
//!
//! Every versioned record (user, product, order) has a strong entity tag derived from its
//! version, `"v<version>"`. A write may be conditional on the record's current version
//! ([`IfMatch`], parsed from `If-Match` by the HTTP layer); the store checks the condition
//! inside the write (`WHERE version = ...` or under its mutex), so a concurrent writer
//! cannot slip between the check and the write.

use bytes::Bytes;

/// The strong entity tag of a version: `"v<version>"`, visible ASCII by construction,
/// held as shared bytes so a cached copy is served without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ETag(Bytes);

impl ETag {
    pub fn for_version(v: i64) -> Self {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(v).as_bytes();
        let mut tag = Vec::with_capacity(digits.len() + 3);
        tag.extend_from_slice(b"\"v");
        tag.extend_from_slice(digits);
        tag.push(b'"');
        Self(Bytes::from(tag))
    }

    /// The tag's bytes: a quote, `v`, an optional `-`, ASCII digits, a quote.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // ASCII by construction: never the empty fallback.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The version an entity tag names, if it is a strong tag of ours.
    pub fn version_of(tag: &str) -> Option<i64> {
        tag.strip_prefix("\"v")?.strip_suffix('"')?.parse().ok()
    }
}

/// What a write requires of the record's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No condition: write unconditionally.
    Absent,
    /// `*`: the record must exist.
    Any,
    /// The current version must be one of these (empty: nothing can match, the write is
    /// refused).
    Versions(Vec<i64>),
}

impl IfMatch {
    /// The condition the entity tags of an `If-Match` list state (`*` or tags). Weak tags
    /// and tags not of ours never match under If-Match's strong comparison.
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Self {
        let mut versions = Vec::new();
        for tag in tags {
            if tag == "*" {
                return IfMatch::Any;
            }
            versions.extend(ETag::version_of(tag));
        }
        IfMatch::Versions(versions)
    }

    /// Whether a record at `version` satisfies the condition.
    pub fn admits(&self, version: i64) -> bool {
        match self {
            IfMatch::Absent | IfMatch::Any => true,
            IfMatch::Versions(v) => v.contains(&version),
        }
    }

    /// The versions a record must be at, as a store query takes them (`None`: any).
    pub fn versions(&self) -> Option<&[i64]> {
        match self {
            IfMatch::Absent | IfMatch::Any => None,
            IfMatch::Versions(v) => Some(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_round_trip() {
        assert_eq!(ETag::for_version(7).as_str(), "\"v7\"");
        assert_eq!(ETag::version_of(ETag::for_version(7).as_str()), Some(7));
        assert_eq!(ETag::version_of(ETag::for_version(-3).as_str()), Some(-3));
        assert_eq!(ETag::version_of("W/\"v7\""), None);
    }

    #[test]
    fn if_match_conditions() {
        let m = IfMatch::from_tags(["\"v2\""]);
        assert!(m.admits(2) && !m.admits(3));
        assert_eq!(m.versions(), Some(&[2][..]));
        assert!(!IfMatch::from_tags(["W/\"v2\""]).admits(2));
        assert_eq!(IfMatch::from_tags(["\"v1\"", "*"]), IfMatch::Any);
        assert_eq!(IfMatch::Any.versions(), None);
        assert!(IfMatch::Absent.admits(9));
    }
}
