//! Changing users: PATCH (validation, If-Match, duplicate email, password change with the
//! current password; the credential rules themselves: `attacks::account_takeover`) and
//! DELETE (soft, tokens stop working, email free again). Status changes: `users_status`.

use reqwest::{Method, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::users::{fields, me, patch};
use crate::helpers::{problem, TestApp};

fn etag(res: &Response) -> String {
    res.headers()["etag"].to_str().unwrap().to_string()
}

async fn patch_changes_what_it_names(app: &TestApp) {
    let u = app.new_user().await;
    let before = etag(&me(app, &u).await);
    let res = patch(app, &u.token, u.id, &json!({"name": "  New Name "})).await;
    assert_eq!(res.status(), 200);
    let after = etag(&res);
    assert_ne!(after, before);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "New Name");
    assert_eq!(body["email"], u.email.as_str());
    assert_ne!(body["updated_at"], body["created_at"]);
    // The cache was invalidated: /me shows the change and the new ETag at once.
    let res = me(app, &u).await;
    assert_eq!(etag(&res), after);
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "New Name");

    // If-Match: stale is 412 and writes nothing; current passes.
    let res = app
        .authed(Method::PATCH, &format!("/api/v1/users/{}", u.id), &u.token)
        .header("if-match", &before)
        .json(&json!({"name": "Stale"}))
        .send()
        .await
        .unwrap();
    problem(res, 412, "precondition_failed").await;
    assert_eq!(
        me(app, &u).await.json::<Value>().await.unwrap()["name"],
        "New Name"
    );
    let res = app
        .authed(Method::PATCH, &format!("/api/v1/users/{}", u.id), &u.token)
        .header("if-match", &after)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"name": "Merged"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "Merged");

    // An empty patch changes nothing, not even the version.
    let current = etag(&me(app, &u).await);
    let res = patch(app, &u.token, u.id, &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(etag(&res), current);

    // Email change (with the current password): the new one logs in, the old one does
    // not.
    let new_email = format!("renamed-{}@example.com", Uuid::new_v4().simple());
    let res = patch(
        app,
        &u.token,
        u.id,
        &json!({"email": new_email.to_uppercase(), "current_password": u.password}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["email"],
        new_email.as_str()
    );
    assert_eq!(app.login(&new_email, &u.password).await.status(), 200);
    problem(
        app.login(&u.email, &u.password).await,
        401,
        "invalid_credentials",
    )
    .await;

    // An admin may patch anyone; another user gets the 404 of a missing id.
    let admin = app.admin().await;
    let res = patch(app, &admin.token, u.id, &json!({"name": "By Admin"})).await;
    assert_eq!(res.status(), 200);
    let other = app.new_user().await;
    let res = patch(app, &other.token, u.id, &json!({"name": "Nope"})).await;
    problem(res, 404, "not_found").await;
    let res = patch(app, &admin.token, Uuid::new_v4(), &json!({"name": "Nope"})).await;
    problem(res, 404, "not_found").await;
}
both_stores!(patch_user, patch_changes_what_it_names);

async fn patch_refuses_bad_input(app: &TestApp) {
    let u = app.new_user().await;
    let other = app.new_user().await;
    let res = patch(
        app,
        &u.token,
        u.id,
        &json!({"name": " ", "email": "nope", "password": "short"}),
    )
    .await;
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(
        fields(&body),
        ["name", "email", "password", "current_password"]
    );
    let res = patch(app, &u.token, u.id, &json!({"name": null})).await;
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(fields(&body), ["name"]);
    let res = patch(app, &u.token, u.id, &json!({"name": "x".repeat(101)})).await;
    problem(res, 422, "validation_failed").await;

    for (body, field) in [
        (json!({"role": "admin"}), "role"),
        (json!({"status": "active"}), "status"),
        (json!({"name": 5}), "name"),
    ] {
        let res = patch(app, &u.token, u.id, &body).await;
        let problem_body = problem(res, 400, "malformed_request").await;
        assert_eq!(problem_body["errors"][0]["field"], field);
    }
    let res = app
        .authed(Method::PATCH, &format!("/api/v1/users/{}", u.id), &u.token)
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    problem(res, 400, "malformed_request").await;
    let res = app
        .authed(Method::PATCH, &format!("/api/v1/users/{}", u.id), &u.token)
        .header("content-type", "text/plain")
        .body(r#"{"name": "X"}"#)
        .send()
        .await
        .unwrap();
    problem(res, 415, "unsupported_media_type").await;

    let res = patch(
        app,
        &u.token,
        u.id,
        &json!({"email": other.email.to_uppercase(), "current_password": u.password}),
    )
    .await;
    problem(res, 409, "duplicate_email").await;
    // Keeping one's own email is not a conflict, nor a change of credentials: the access
    // token still works.
    let res = patch(
        app,
        &u.token,
        u.id,
        &json!({"email": u.email, "current_password": u.password}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(me(app, &u).await.status(), 200);
}
both_stores!(patch_validation, patch_refuses_bad_input);

async fn password_change_revokes_refresh_tokens(app: &TestApp) {
    let u = app.new_user().await;
    let res = patch(
        app,
        &u.token,
        u.id,
        &json!({"password": "brand-new-password", "current_password": u.password}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    problem(
        app.login(&u.email, &u.password).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        app.login(&u.email, "brand-new-password").await.status(),
        200
    );
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": u.refresh_token}),
        )
        .await;
    problem(res, 401, "unauthenticated").await;
}
both_stores!(password_change, password_change_revokes_refresh_tokens);

async fn delete_is_soft_and_ends_the_session(app: &TestApp) {
    let u = app.new_user().await;
    let other = app.new_user().await;
    let path = format!("/api/v1/users/{}", u.id);
    let res = app
        .authed(Method::DELETE, &path, &other.token)
        .send()
        .await
        .unwrap();
    problem(res, 404, "not_found").await;
    let res = app
        .authed(Method::DELETE, &path, &u.token)
        .header("if-match", "\"v999\"")
        .send()
        .await
        .unwrap();
    problem(res, 412, "precondition_failed").await;

    let current = etag(&me(app, &u).await);
    let res = app
        .authed(Method::DELETE, &path, &u.token)
        .header("if-match", &current)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // The access token dies at once; the refresh token is revoked; login fails.
    let res = me(app, &u).await;
    assert!(res.headers().contains_key("www-authenticate"));
    problem(res, 401, "unauthenticated").await;
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": u.refresh_token}),
        )
        .await;
    problem(res, 401, "unauthenticated").await;
    problem(
        app.login(&u.email, &u.password).await,
        401,
        "invalid_credentials",
    )
    .await;

    let admin = app.admin().await;
    let res = app
        .authed(Method::GET, &path, &admin.token)
        .send()
        .await
        .unwrap();
    problem(res, 404, "not_found").await;
    let res = app
        .authed(Method::DELETE, &path, &admin.token)
        .send()
        .await
        .unwrap();
    problem(res, 404, "not_found").await;

    // The email is free again, for a new account with a new id.
    let res = app.register(&u.email, "Again", "another-password").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_ne!(body["id"], u.id.to_string());

    // An admin may delete anyone.
    let res = app
        .authed(
            Method::DELETE,
            &format!("/api/v1/users/{}", other.id),
            &admin.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    problem(me(app, &other).await, 401, "unauthenticated").await;
}
both_stores!(delete_user, delete_is_soft_and_ends_the_session);
