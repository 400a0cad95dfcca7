//! Access-token checks over HTTP, refresh rotation with reuse detection, and logout.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{Method, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::{problem, TestApp};

/// The secret `helpers::test_config` sets.
const SECRET: &[u8] = b"test-secret-test-secret-test-secret-0123";

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A JWT with any header, signed HS256 with `secret` (or unsigned for `alg: none`).
fn forge(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let signing = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    if header["alg"] == "none" {
        return format!("{signing}.");
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing.as_bytes());
    format!(
        "{signing}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn claims(sub: Uuid, exp_in: i64) -> Value {
    let now = unix_now();
    json!({"sub": sub, "role": "user", "iss": "bulkhead", "aud": "bulkhead-api",
           "iat": now, "exp": now + exp_in, "jti": Uuid::new_v4()})
}

async fn me_with(app: &TestApp, authorization: &str) -> Response {
    app.request(Method::GET, "/api/v1/users/me")
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
}

async fn refused(res: Response) {
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    problem(res, 401, "unauthenticated").await;
}

async fn only_valid_hs256_tokens_are_accepted(app: &TestApp) {
    let u = app.new_user().await;
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    // Control: the forger makes tokens the service accepts, so the refusals below are
    // about the one thing each case changes.
    let good = forge(&hs256, &claims(u.id, 60), SECRET);
    assert_eq!(me_with(app, &format!("Bearer {good}")).await.status(), 200);

    let expired = forge(&hs256, &claims(u.id, -120), SECRET);
    let res = me_with(app, &format!("Bearer {expired}")).await;
    refused(res).await;
    let none = forge(&json!({"alg": "none"}), &claims(u.id, 60), SECRET);
    refused(me_with(app, &format!("Bearer {none}")).await).await;
    let hs512 = forge(&json!({"alg": "HS512"}), &claims(u.id, 60), SECRET);
    refused(me_with(app, &format!("Bearer {hs512}")).await).await;
    let wrong_secret = forge(
        &hs256,
        &claims(u.id, 60),
        b"some-other-secret-some-other-secret",
    );
    refused(me_with(app, &format!("Bearer {wrong_secret}")).await).await;
    let mut other_aud = claims(u.id, 60);
    other_aud["aud"] = json!("someone-else");
    refused(
        me_with(
            app,
            &format!("Bearer {}", forge(&hs256, &other_aud, SECRET)),
        )
        .await,
    )
    .await;
    let mut no_exp = claims(u.id, 60);
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(me_with(app, &format!("Bearer {}", forge(&hs256, &no_exp, SECRET))).await).await;
    refused(me_with(app, "Bearer garbage").await).await;
    refused(me_with(app, &format!("Basic {}", u.token)).await).await;
    refused(me_with(app, "Bearer").await).await;
    // A well-signed token for a user that does not exist.
    let ghost = forge(&hs256, &claims(Uuid::new_v4(), 60), SECRET);
    refused(me_with(app, &format!("Bearer {ghost}")).await).await;
}
both_stores!(access_tokens, only_valid_hs256_tokens_are_accepted);

async fn refresh(app: &TestApp, token: &str) -> Response {
    app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": token}))
        .await
}

async fn logout(app: &TestApp, token: &str) -> Response {
    app.post_json("/api/v1/auth/logout", &json!({"refresh_token": token}))
        .await
}

/// Refresh and return the new `(access, refresh)`, asserting success.
async fn rotate(app: &TestApp, token: &str) -> (String, String) {
    let res = refresh(app, token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}

async fn refresh_rotates_and_reuse_revokes_the_family(app: &TestApp) {
    let u = app.new_user().await;
    // A second login is another family: reuse in the first must not touch it.
    let (_, other_family) = app.tokens(&u.email, &u.password).await;

    let (access, r2) = rotate(app, &u.refresh_token).await;
    assert_ne!(r2, u.refresh_token);
    let res = app
        .authed(Method::GET, "/api/v1/users/me", &access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, r3) = rotate(app, &r2).await;

    // r2 was rotated: presenting it again is reuse, and the family (r3 too) dies.
    let res = refresh(app, &r2).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    problem(res, 401, "refresh_token_reused").await;
    let res = refresh(app, &r3).await;
    problem(res, 401, "unauthenticated").await;
    // The first token of the family is a rotated member too.
    problem(
        refresh(app, &u.refresh_token).await,
        401,
        "refresh_token_reused",
    )
    .await;

    rotate(app, &other_family).await;
}
both_stores!(
    refresh_rotation,
    refresh_rotates_and_reuse_revokes_the_family
);

async fn refresh_refuses_bad_requests(app: &TestApp) {
    let res = refresh(app, "no-such-token").await;
    refused(res).await;
    let res = app
        .post_json("/api/v1/auth/refresh", &json!({"refresh_token": 5}))
        .await;
    let body = problem(res, 400, "malformed_request").await;
    assert_eq!(body["errors"][0]["field"], "refresh_token");
    let res = app.post_json("/api/v1/auth/refresh", &json!({})).await;
    let body = problem(res, 400, "malformed_request").await;
    assert_eq!(body["errors"][0]["field"], "refresh_token");
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": "x", "scope": "admin"}),
        )
        .await;
    let body = problem(res, 400, "malformed_request").await;
    assert_eq!(body["errors"][0]["field"], "scope");
    for path in ["/api/v1/auth/refresh", "/api/v1/auth/logout"] {
        let res = app
            .request(Method::POST, path)
            .header("content-type", "text/plain")
            .body(r#"{"refresh_token": "x"}"#)
            .send()
            .await
            .unwrap();
        problem(res, 415, "unsupported_media_type").await;
        let res = app
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        problem(res, 400, "malformed_request").await;
    }
}
both_stores!(refresh_errors, refresh_refuses_bad_requests);

async fn concurrent_refreshes_admit_exactly_one(app: &TestApp) {
    let u = app.new_user().await;
    let attempts = (0..8).map(|_| refresh(app, &u.refresh_token));
    let results = futures_util::future::join_all(attempts).await;
    let mut ok = 0;
    for res in results {
        if res.status() == 200 {
            ok += 1;
        } else {
            // Every loser presented a token that had just been rotated.
            problem(res, 401, "refresh_token_reused").await;
        }
    }
    assert_eq!(ok, 1);
}
both_stores!(concurrent_refresh, concurrent_refreshes_admit_exactly_one);

async fn logout_revokes_the_family(app: &TestApp) {
    let u = app.new_user().await;
    let (_, r2) = rotate(app, &u.refresh_token).await;
    let res = logout(app, &r2).await;
    assert_eq!(res.status(), 204);
    problem(refresh(app, &r2).await, 401, "unauthenticated").await;
    // Logging out again, or with a token nobody issued, is the same 204.
    assert_eq!(logout(app, &r2).await.status(), 204);
    assert_eq!(logout(app, "never-issued").await.status(), 204);
    let res = app
        .post_json("/api/v1/auth/logout", &json!({"token": "x"}))
        .await;
    problem(res, 400, "malformed_request").await;

    // Logging out with an older (rotated) member revokes the current one too.
    let (_, first) = app.tokens(&u.email, &u.password).await;
    let (_, current) = rotate(app, &first).await;
    assert_eq!(logout(app, &first).await.status(), 204);
    problem(refresh(app, &current).await, 401, "unauthenticated").await;
}
both_stores!(logout, logout_revokes_the_family);
