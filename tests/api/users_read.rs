//! Reading users: `/users/me`, `/users/{id}`, ETags, visibility, 401s and 405s.

use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::{problem, TestApp};

async fn me_is_the_caller_with_an_etag(app: &TestApp) {
    let u = app.new_user().await;
    let res = app
        .authed(Method::GET, "/api/v1/users/me", &u.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with("\"v") && etag.ends_with('"'), "{etag}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], u.id.to_string());
    assert_eq!(body["email"], u.email.as_str());
    assert_eq!(body["role"], "user");
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "email",
            "id",
            "name",
            "role",
            "status",
            "updated_at"
        ]
    );

    let res = app
        .authed(Method::GET, "/api/v1/users/me", &u.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"], etag.as_str());
    let res = app
        .authed(Method::GET, "/api/v1/users/me", &u.token)
        .header("if-none-match", "\"v999\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The same resource by id, for its owner.
    let res = app
        .authed(Method::GET, &format!("/api/v1/users/{}", u.id), &u.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], etag.as_str());
    let res = app
        .authed(Method::GET, &format!("/api/v1/users/{}", u.id), &u.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
}
both_stores!(me, me_is_the_caller_with_an_etag);

async fn others_get_the_404_of_a_missing_id(app: &TestApp) {
    let u = app.new_user().await;
    let other = app.new_user().await;
    let res = app
        .authed(
            Method::GET,
            &format!("/api/v1/users/{}", u.id),
            &other.token,
        )
        .send()
        .await
        .unwrap();
    let hidden = problem(res, 404, "not_found").await;
    let res = app
        .authed(
            Method::GET,
            &format!("/api/v1/users/{}", Uuid::new_v4()),
            &other.token,
        )
        .send()
        .await
        .unwrap();
    let missing = problem(res, 404, "not_found").await;
    assert_eq!(hidden["detail"], missing["detail"]);
    assert_eq!(hidden["title"], missing["title"]);
    let res = app
        .authed(Method::GET, "/api/v1/users/not-a-uuid", &other.token)
        .send()
        .await
        .unwrap();
    problem(res, 404, "not_found").await;

    // An admin sees anyone, with ETag and 304.
    let admin = app.admin().await;
    assert!(!admin.id.is_nil(), "GET /users/me names the admin");
    let res = app
        .authed(
            Method::GET,
            &format!("/api/v1/users/{}", u.id),
            &admin.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], u.id.to_string());
    let res = app
        .authed(
            Method::GET,
            &format!("/api/v1/users/{}", u.id),
            &admin.token,
        )
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    let res = app
        .authed(
            Method::GET,
            &format!("/api/v1/users/{}", Uuid::new_v4()),
            &admin.token,
        )
        .send()
        .await
        .unwrap();
    problem(res, 404, "not_found").await;
}
both_stores!(visibility, others_get_the_404_of_a_missing_id);

async fn anonymous_callers_get_401_with_a_challenge(app: &TestApp) {
    let u = app.new_user().await;
    for (method, path) in [
        (Method::GET, "/api/v1/users/me".to_string()),
        (Method::GET, format!("/api/v1/users/{}", u.id)),
        (Method::GET, "/api/v1/users".to_string()),
        (Method::DELETE, format!("/api/v1/users/{}", u.id)),
    ] {
        let res = app.request(method.clone(), &path).send().await.unwrap();
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{method} {path}"
        );
        problem(res, 401, "unauthenticated").await;
    }
    let res = app
        .request(Method::PATCH, &format!("/api/v1/users/{}", u.id))
        .json(&serde_json::json!({"name": "X"}))
        .send()
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await;
}
both_stores!(anonymous, anonymous_callers_get_401_with_a_challenge);

async fn unrouted_methods_are_405_with_allow(app: &TestApp) {
    let u = app.new_user().await;
    let id = u.id;
    for (method, path, allow) in [
        (
            Method::PUT,
            format!("/api/v1/users/{id}"),
            "GET, HEAD, PATCH, DELETE",
        ),
        (
            Method::POST,
            format!("/api/v1/users/{id}"),
            "GET, HEAD, PATCH, DELETE",
        ),
        (Method::DELETE, "/api/v1/users/me".into(), "GET, HEAD"),
        (Method::PATCH, "/api/v1/users".into(), "GET, POST"),
        (Method::GET, format!("/api/v1/users/{id}/status"), "POST"),
        (Method::GET, "/api/v1/auth/refresh".into(), "POST"),
        (Method::DELETE, "/api/v1/auth/logout".into(), "POST"),
    ] {
        let res = app
            .authed(method.clone(), &path, &u.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        problem(res, 405, "method_not_allowed").await;
    }
}
both_stores!(method_not_allowed, unrouted_methods_are_405_with_allow);
