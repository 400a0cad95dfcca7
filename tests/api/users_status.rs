//! `POST /api/v1/users/{id}/status`: the transition table, immediate refusal of inactive
//! accounts, and the route's errors.

use reqwest::{Method, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::users::{fields, me};
use crate::helpers::{problem, TestApp};

async fn set_status(app: &TestApp, token: &str, id: Uuid, status: &str) -> Response {
    app.authed(Method::POST, &format!("/api/v1/users/{id}/status"), token)
        .json(&json!({"status": status}))
        .send()
        .await
        .unwrap()
}

async fn status_follows_the_transition_table(app: &TestApp) {
    let admin = app.admin().await;
    let u = app.new_user().await;
    // Every disallowed transition, from each state, is 409 and changes nothing.
    let disallowed_from = |from: &str| -> &[&str] {
        match from {
            "active" => &["active"],
            "suspended" => &["suspended", "active"],
            "deactivated" => &["deactivated", "suspended"],
            _ => unreachable!(),
        }
    };
    // active -> suspended -> deactivated -> active -> deactivated -> active
    let path = [
        "suspended",
        "deactivated",
        "active",
        "deactivated",
        "active",
    ];
    let mut from = "active";
    for to in path {
        for bad in disallowed_from(from) {
            let res = set_status(app, &admin.token, u.id, bad).await;
            let body = problem(res, 409, "invalid_transition").await;
            assert!(body["detail"].as_str().unwrap().contains(from), "{body}");
        }
        let res = set_status(app, &admin.token, u.id, to).await;
        assert_eq!(res.status(), 200, "{from} -> {to}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], to);
        from = to;
    }
}
both_stores!(status_transitions, status_follows_the_transition_table);

async fn inactive_accounts_are_refused_at_once(app: &TestApp) {
    let admin = app.admin().await;
    let u = app.new_user().await;
    assert_eq!(me(app, &u).await.status(), 200);
    let res = set_status(app, &admin.token, u.id, "suspended").await;
    assert_eq!(res.status(), 200);
    // The same token, the very next request.
    problem(me(app, &u).await, 403, "account_inactive").await;
    problem(
        app.login(&u.email, &u.password).await,
        403,
        "account_inactive",
    )
    .await;
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": u.refresh_token}),
        )
        .await;
    problem(res, 401, "unauthenticated").await;
    let res = app
        .authed(
            Method::GET,
            &format!("/api/v1/users/{}", u.id),
            &admin.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "suspended");

    // Back to active (via deactivated): the old access token works again; logging in too.
    assert_eq!(
        set_status(app, &admin.token, u.id, "deactivated")
            .await
            .status(),
        200
    );
    problem(me(app, &u).await, 403, "account_inactive").await;
    assert_eq!(
        set_status(app, &admin.token, u.id, "active").await.status(),
        200
    );
    assert_eq!(me(app, &u).await.status(), 200);
    assert_eq!(app.login(&u.email, &u.password).await.status(), 200);
}
both_stores!(account_inactive, inactive_accounts_are_refused_at_once);

async fn status_changes_are_for_admins_with_valid_bodies(app: &TestApp) {
    let admin = app.admin().await;
    let u = app.new_user().await;
    problem(
        set_status(app, &u.token, u.id, "suspended").await,
        403,
        "forbidden",
    )
    .await;
    let res = app
        .request(Method::POST, &format!("/api/v1/users/{}/status", u.id))
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    problem(res, 401, "unauthenticated").await;
    let res = set_status(app, &admin.token, u.id, "banned").await;
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(fields(&body), ["status"]);
    let res = app
        .authed(
            Method::POST,
            &format!("/api/v1/users/{}/status", u.id),
            &admin.token,
        )
        .json(&json!({"status": 1}))
        .send()
        .await
        .unwrap();
    problem(res, 400, "malformed_request").await;
    let res = app
        .authed(
            Method::POST,
            &format!("/api/v1/users/{}/status", u.id),
            &admin.token,
        )
        .json(&json!({"status": "suspended", "reason": "x"}))
        .send()
        .await
        .unwrap();
    problem(res, 400, "malformed_request").await;
    problem(
        set_status(app, &admin.token, Uuid::new_v4(), "suspended").await,
        404,
        "not_found",
    )
    .await;
    // Nothing above changed the user.
    assert_eq!(me(app, &u).await.status(), 200);
}
both_stores!(
    status_errors,
    status_changes_are_for_admins_with_valid_bodies
);
