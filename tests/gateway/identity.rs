//! Identity forwarding: every client-supplied identity header is stripped, in any case,
//! with `_` for `-`, in duplicates; an authenticated caller's identity is added once,
//! with the signed `X-Bulkhead-Identity` the upstream can verify with the secret.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;

use crate::upstream::{echoed, Mode, Upstream};
use crate::{route, spawn_gateway, IDENTITY_SECRET};

fn spoofed() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("x-user-id", "00000000-0000-0000-0000-000000000001"),
        ("x-user-id", "00000000-0000-0000-0000-000000000002"),
        ("x_user_id", "spoof-underscore"),
        ("x-user_role", "admin"),
        ("x-user-role", "admin"),
        ("x-user-anything", "spoof"),
        ("x-bulkhead-identity", "forged.jwt.value"),
        ("x_bulkhead_identity", "forged.jwt.value"),
        ("x-bulkhead-whatever", "spoof"),
        ("forwarded", "for=6.6.6.6;proto=https"),
        ("x-request-deadline-ms", "999999"),
    ] {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static(value),
        );
    }
    h
}

/// Header names as the echo received them, `_` folded to `-`.
fn folded_names(doc: &Value) -> Vec<String> {
    doc["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            h[0].as_str()
                .unwrap()
                .to_ascii_lowercase()
                .replace('_', "-")
        })
        .collect()
}

fn assert_no_client_identity(doc: &Value) {
    for name in folded_names(doc) {
        assert!(
            !(name.starts_with("x-user-")
                || name.starts_with("x-bulkhead-")
                || name == "forwarded"),
            "spoofed {name} reached the upstream: {doc}"
        );
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    role: String,
    aud: String,
    jti: String,
    iat: u64,
    exp: u64,
}

#[actix_web::test]
async fn spoofed_identity_is_stripped_and_the_caller_is_signed() {
    let echo = Upstream::start(Mode::Echo).await;
    let app = spawn_gateway(vec![route("echo", "/api/v1/echo", &[&echo])], |_| {}).await;

    // Anonymous on an optional route: nothing of the client's identity headers, no
    // identity of the gateway's either.
    let res = app
        .request(Method::GET, "/api/v1/echo/x")
        .headers(spoofed())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_no_client_identity(&doc);
    assert!(echoed(&doc, "x-request-deadline-ms")[0] != "999999");

    // Authenticated: exactly the gateway's identity, once each.
    let user = app.new_user().await;
    let res = app
        .authed(Method::GET, "/api/v1/echo/x", &user.token)
        .headers(spoofed())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let doc: Value = res.json().await.unwrap();
    assert_eq!(echoed(&doc, "x-user-id"), [user.id.to_string()]);
    assert_eq!(echoed(&doc, "x-user-role"), ["user"]);
    let tokens = echoed(&doc, "x-bulkhead-identity");
    assert_eq!(tokens.len(), 1);
    let names = folded_names(&doc);
    for gateway_header in ["x-user-id", "x-user-role", "x-bulkhead-identity"] {
        assert_eq!(
            names.iter().filter(|n| *n == gateway_header).count(),
            1,
            "{gateway_header}"
        );
    }
    assert!(!names.contains(&"x-user-anything".to_string()));
    assert!(!names.contains(&"forwarded".to_string()));

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["echo"]);
    let claims = decode::<Claims>(
        &tokens[0],
        &DecodingKey::from_secret(IDENTITY_SECRET.as_bytes()),
        &validation,
    )
    .expect("the identity token verifies with gateway.identity_secret")
    .claims;
    assert_eq!(claims.sub, user.id.to_string());
    assert_eq!(claims.role, "user");
    assert_eq!(claims.aud, "echo");
    assert_eq!(claims.jti, request_id);
    assert_eq!(claims.exp - claims.iat, 60);
    // Another secret does not verify it.
    assert!(decode::<Claims>(
        &tokens[0],
        &DecodingKey::from_secret(b"some-other-secret-some-other-secret-0"),
        &validation,
    )
    .is_err());
}

#[actix_web::test]
async fn a_route_without_auth_forwards_no_identity() {
    let echo = Upstream::start(Mode::Echo).await;
    let mut open = route("open", "/api/v1/open", &[&echo]);
    open.auth = bulkhead::config::RouteAuth::None;
    let app = spawn_gateway(vec![open], |_| {}).await;
    let user = app.new_user().await;
    let res = app
        .authed(Method::GET, "/api/v1/open", &user.token)
        .headers(spoofed())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_no_client_identity(&doc);
}
