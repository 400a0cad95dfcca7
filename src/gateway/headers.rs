//! What crosses the gateway in headers, both ways.
//!
//! Upstream requests: the client's headers minus hop-by-hop ones, minus every
//! client-supplied identity header (`X-User-*`, `X-Bulkhead-*`, `Forwarded`, in any case,
//! with `_` for `-`, every copy), minus the headers the gateway sets itself; then the
//! gateway's own: `X-Request-Id`, `X-Forwarded-For` (the client IP appended),
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, and for an authenticated caller `X-User-Id`,
//! `X-User-Role` and the signed `X-Bulkhead-Identity`. `X-Request-Deadline-Ms` is set per
//! attempt (the time left then). `Host` is the upstream's.
//!
//! Responses: the upstream's headers minus hop-by-hop ones (and `Content-Length`, which
//! the body's declared size carries).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_DEADLINE_MS: HeaderName = HeaderName::from_static("x-request-deadline-ms");
pub const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
pub const X_USER_ROLE: HeaderName = HeaderName::from_static("x-user-role");
pub const X_BULKHEAD_IDENTITY: HeaderName = HeaderName::from_static("x-bulkhead-identity");

/// Hop-by-hop headers (RFC 9110 7.6.1, plus the `Proxy-*` family and the obsolete
/// `Keep-Alive` / `Proxy-Connection`).
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name.starts_with("proxy-")
}

/// Identity headers only the gateway may set, however the client spells them: header
/// names arrive lower-cased; `_` is read as `-` because some servers and frameworks
/// (CGI-style environments, WSGI, nginx with underscores_in_headers) fold the two.
fn is_identity(name: &str) -> bool {
    let folded = |prefix: &str| {
        name.len() >= prefix.len()
            && name
                .bytes()
                .zip(prefix.bytes())
                .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
    };
    folded("x-user-")
        || folded("x-bulkhead-")
        || (name.len() == "forwarded".len() && folded("forwarded"))
}

/// Headers the gateway sets itself (the client's copies are dropped), spelled either way.
fn is_gateway_set(name: &str) -> bool {
    let n = name.replace('_', "-");
    matches!(
        n.as_str(),
        "x-request-id"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "x-request-deadline-ms"
            | "host"
    )
}

/// The names the `Connection` headers list: hop-by-hop for this message too.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The caller as the upstream sees it.
pub struct Identity<'a> {
    pub user_id: &'a str,
    pub role: &'a str,
    /// The signed `X-Bulkhead-Identity` JWT.
    pub token: &'a str,
}

/// What the gateway knows about the request.
pub struct Context<'a> {
    pub request_id: &'a str,
    pub client_ip: Option<IpAddr>,
    /// `http`, or what a trusted proxy in front said.
    pub proto: &'a str,
    pub host: Option<&'a HeaderValue>,
    pub identity: Option<Identity<'a>>,
}

/// The headers of the upstream request, from the client's.
pub fn upstream_request(client: &HeaderMap, ctx: &Context<'_>) -> HeaderMap {
    let listed = connection_listed(client);
    let mut out = HeaderMap::with_capacity(client.len() + 8);
    let mut chain: Vec<&str> = Vec::new();
    for (name, value) in client {
        let n = name.as_str();
        if n == "x-forwarded-for" {
            // Several lines are read together, in order (API.md, Limits).
            if let Ok(v) = value.to_str() {
                chain.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()));
            }
            continue;
        }
        if is_hop_by_hop(n) || is_identity(n) || is_gateway_set(n) || listed.iter().any(|l| l == n)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    let ip = ctx.client_ip.map(|ip| ip.to_string());
    if let Some(ip) = ip.as_deref() {
        if chain.last() != Some(&ip) {
            chain.push(ip);
        }
    }
    if !chain.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&chain.join(", ")) {
            out.insert(X_FORWARDED_FOR, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(ctx.request_id) {
        out.insert(X_REQUEST_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(ctx.proto) {
        out.insert(X_FORWARDED_PROTO, v);
    }
    if let Some(host) = ctx.host {
        out.insert(X_FORWARDED_HOST, host.clone());
    }
    if let Some(id) = &ctx.identity {
        for (name, value) in [
            (X_USER_ID, id.user_id),
            (X_USER_ROLE, id.role),
            (X_BULKHEAD_IDENTITY, id.token),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.insert(name, v);
            }
        }
    }
    out
}

/// The upstream's response headers as the client gets them.
pub fn client_response(upstream: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let n = name.as_str();
        if is_hop_by_hop(n) || n == "content-length" || listed.iter().any(|l| l == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn ctx<'a>(identity: Option<Identity<'a>>) -> Context<'a> {
        Context {
            request_id: "rid-1",
            client_ip: Some("10.1.2.3".parse().unwrap()),
            proto: "http",
            host: None,
            identity,
        }
    }

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let client = map(&[
            ("X-User-Id", "evil"),
            ("x-user-id", "evil2"),
            ("X_User_Id", "evil3"),
            ("x_user-role", "admin"),
            ("X-USER-ANYTHING", "x"),
            ("x-bulkhead-identity", "forged"),
            ("X_BULKHEAD_IDENTITY", "forged"),
            ("Forwarded", "for=1.1.1.1"),
            ("FORWARDED", "for=2.2.2.2"),
            ("x-request-deadline-ms", "999999"),
            ("x_request_id", "spoof"),
            ("accept", "application/json"),
            ("x-forwarded-something", "kept"),
            ("forwarded-x", "kept"),
        ]);
        let out = upstream_request(&client, &ctx(None));
        for (name, _) in &out {
            let n = name.as_str().replace('_', "-");
            assert!(!n.starts_with("x-user-"), "{name}");
            assert!(!n.starts_with("x-bulkhead-"), "{name}");
            assert_ne!(n, "forwarded");
            assert_ne!(n, "x-request-deadline-ms");
        }
        assert_eq!(out.get_all("x-request-id").iter().count(), 1);
        assert_eq!(out["x-request-id"], "rid-1");
        assert_eq!(out["accept"], "application/json");
        assert_eq!(out["x-forwarded-something"], "kept");
        assert_eq!(out["forwarded-x"], "kept");
    }

    #[test]
    fn authenticated_identity_is_added_once() {
        let client = map(&[("x-user-id", "evil"), ("x-user-role", "admin")]);
        let id = Identity {
            user_id: "u-1",
            role: "user",
            token: "jwt",
        };
        let out = upstream_request(&client, &ctx(Some(id)));
        assert_eq!(out.get_all(X_USER_ID).iter().collect::<Vec<_>>(), ["u-1"]);
        assert_eq!(
            out.get_all(X_USER_ROLE).iter().collect::<Vec<_>>(),
            ["user"]
        );
        assert_eq!(out[X_BULKHEAD_IDENTITY], "jwt");
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let client = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-secret", "s"),
            ("host", "client.example"),
            ("content-type", "text/plain"),
        ]);
        let out = upstream_request(&client, &ctx(None));
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        for gone in [
            "connection",
            "keep-alive",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
            "x-secret",
            "host",
        ] {
            assert!(!names.contains(&gone), "{gone} forwarded");
        }
        assert_eq!(out["content-type"], "text/plain");
        let res = client_response(&map(&[
            ("connection", "close, x-internal"),
            ("x-internal", "1"),
            ("content-length", "5"),
            ("transfer-encoding", "chunked"),
            ("etag", "\"v1\""),
        ]));
        assert_eq!(res.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["etag"]);
    }

    #[test]
    fn forwarded_for_appends_the_client_ip_to_every_line() {
        let client = map(&[
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("X-Forwarded-For", "3.3.3.3"),
        ]);
        let out = upstream_request(&client, &ctx(None));
        assert_eq!(out[X_FORWARDED_FOR], "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3");
        // Behind a trusted proxy the client IP is already the chain's last entry.
        let client = map(&[("x-forwarded-for", "1.1.1.1, 10.1.2.3")]);
        let out = upstream_request(&client, &ctx(None));
        assert_eq!(out[X_FORWARDED_FOR], "1.1.1.1, 10.1.2.3");
    }
}
