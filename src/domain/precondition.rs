//! Strong ETags from record versions, and the conditional headers that use them.
//!
//! `If-None-Match` on GET answers 304 when it names the current ETag (weak comparison, as
//! RFC 9110 says for that header). `If-Match` on PUT/PATCH/DELETE is checked by the store
//! inside the write (`WHERE version = ...`), so a concurrent writer cannot slip between
//! the check and the write: see [`IfMatch`].

use actix_web::http::header;
use actix_web::HttpRequest;

/// The strong ETag of version `v` of a resource.
pub fn for_version(v: i64) -> String {
    format!("\"v{v}\"")
}

/// The version an ETag names, if it is one of ours.
fn version_of(tag: &str) -> Option<i64> {
    tag.strip_prefix("\"v")?.strip_suffix('"')?.parse().ok()
}

fn tags(req: &HttpRequest, name: header::HeaderName) -> Option<Vec<String>> {
    let values: Vec<String> = req
        .headers()
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    (!values.is_empty()).then_some(values)
}

/// Whether `If-None-Match` names `etag` (or `*`): answer 304 Not Modified.
pub fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    let Some(tags) = tags(req, header::IF_NONE_MATCH) else {
        return false;
    };
    tags.iter()
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// What `If-Match` asks of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No `If-Match`: write unconditionally.
    Absent,
    /// `If-Match: *`: the resource must exist.
    Any,
    /// The current version must be one of these (empty: nothing can match -> 412).
    Versions(Vec<i64>),
}

impl IfMatch {
    pub fn from_request(req: &HttpRequest) -> Self {
        let Some(tags) = tags(req, header::IF_MATCH) else {
            return IfMatch::Absent;
        };
        if tags.iter().any(|t| t == "*") {
            return IfMatch::Any;
        }
        // Weak tags never match under If-Match's strong comparison.
        IfMatch::Versions(tags.iter().filter_map(|t| version_of(t)).collect())
    }

    /// Whether a record at `version` satisfies the condition.
    pub fn admits(&self, version: i64) -> bool {
        match self {
            IfMatch::Absent | IfMatch::Any => true,
            IfMatch::Versions(v) => v.contains(&version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn etags_round_trip() {
        assert_eq!(for_version(7), "\"v7\"");
        assert_eq!(version_of(&for_version(7)), Some(7));
        assert_eq!(version_of("W/\"v7\""), None);
    }

    #[test]
    fn if_none_match() {
        let req = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "\"v1\", W/\"v3\""))
            .to_http_request();
        assert!(not_modified(&req, "\"v1\""));
        assert!(not_modified(&req, "\"v3\""));
        assert!(!not_modified(&req, "\"v2\""));
        let any = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "*"))
            .to_http_request();
        assert!(not_modified(&any, "\"v9\""));
    }

    #[test]
    fn if_match() {
        let req = TestRequest::default().to_http_request();
        assert_eq!(IfMatch::from_request(&req), IfMatch::Absent);
        let req = TestRequest::default()
            .insert_header((header::IF_MATCH, "\"v2\""))
            .to_http_request();
        let m = IfMatch::from_request(&req);
        assert!(m.admits(2) && !m.admits(3));
        let req = TestRequest::default()
            .insert_header((header::IF_MATCH, "W/\"v2\""))
            .to_http_request();
        assert!(!IfMatch::from_request(&req).admits(2));
        let req = TestRequest::default()
            .insert_header((header::IF_MATCH, "*"))
            .to_http_request();
        assert_eq!(IfMatch::from_request(&req), IfMatch::Any);
    }
}
