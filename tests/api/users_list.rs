//! `GET /api/v1/users`: admin only; filters, sort, sparse fieldsets, cursor pagination.

use std::collections::HashSet;

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{problem, TestApp};

async fn list(app: &TestApp, token: &str, query: &str) -> Response {
    app.authed(Method::GET, &format!("/api/v1/users{query}"), token)
        .send()
        .await
        .unwrap()
}

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let res = list(app, token, query).await;
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.unwrap()
}

fn names(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect()
}

/// Register users named `names` (unique emails); returns their ids.
async fn register_named(app: &TestApp, names: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for name in names {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let res = app.register(&email, name, "password-123").await;
        assert_eq!(res.status(), 201);
        ids.push(
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids
}

async fn filters_sorts_and_fields(app: &TestApp) {
    let admin = app.admin().await;
    let ids = register_named(app, &["carol", "alice", "bob"]).await;
    let res = app
        .authed(
            Method::POST,
            &format!("/api/v1/users/{}/status", ids[2]),
            &admin.token,
        )
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Default: newest first, every member, no next page.
    let all = page(app, &admin.token, "").await;
    assert_eq!(names(&all), ["bob", "alice", "carol", "Administrator"]);
    assert!(all["next_cursor"].is_null());
    assert!(all["data"][0].get("password_hash").is_none());
    let asc = page(app, &admin.token, "?sort=created_at").await;
    assert_eq!(names(&asc), ["Administrator", "carol", "alice", "bob"]);
    let by_name = page(app, &admin.token, "?sort=name").await;
    assert_eq!(names(&by_name), ["Administrator", "alice", "bob", "carol"]);
    let by_name_desc = page(app, &admin.token, "?sort=-name").await;
    assert_eq!(
        names(&by_name_desc),
        ["carol", "bob", "alice", "Administrator"]
    );

    let admins = page(app, &admin.token, "?role=admin").await;
    assert_eq!(names(&admins), ["Administrator"]);
    let suspended = page(app, &admin.token, "?status=suspended").await;
    assert_eq!(names(&suspended), ["bob"]);
    let active_users = page(app, &admin.token, "?status=active&role=user&sort=name").await;
    assert_eq!(names(&active_users), ["alice", "carol"]);

    // Sparse fieldsets: the named members plus id, nothing else.
    let sparse = page(app, &admin.token, "?fields=email,name&limit=2").await;
    for user in sparse["data"].as_array().unwrap() {
        let mut keys: Vec<&str> = user
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["email", "id", "name"]);
    }
    let only_id = page(app, &admin.token, "?fields=id").await;
    assert_eq!(only_id["data"][0].as_object().unwrap().len(), 1);
}
both_stores!(list_filters, filters_sorts_and_fields);

async fn bad_queries_and_callers_are_refused(app: &TestApp) {
    let admin = app.admin().await;
    let u = app.new_user().await;
    problem(list(app, &u.token, "").await, 403, "forbidden").await;
    let res = app.get("/api/v1/users").await;
    problem(res, 401, "unauthenticated").await;
    for query in [
        "?status=banned",
        "?role=root",
        "?sort=email",
        "?sort=created",
        "?fields=password_hash",
        "?fields=email,bogus",
        "?limit=0",
        "?limit=101",
        "?limit=ten",
        "?cursor=garbage",
        "?stauts=active",
    ] {
        let res = list(app, &admin.token, query).await;
        problem(res, 400, "invalid_parameter").await;
    }
    // A cursor belongs to its sort.
    register_named(app, &["a", "b"]).await;
    let first = page(app, &admin.token, "?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let res = list(app, &admin.token, &format!("?sort=name&cursor={cursor}")).await;
    problem(res, 400, "invalid_parameter").await;
    let res = list(app, &admin.token, &format!("?cursor={cursor}")).await;
    assert_eq!(res.status(), 200);
}
both_stores!(list_errors, bad_queries_and_callers_are_refused);

/// Walk every page of `query` with a small limit; returns the ids in order.
async fn walk(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=3&{query}&cursor={c}"),
            None => format!("?limit=3&{query}"),
        };
        let p = page(app, token, &q).await;
        let data = p["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        ids.extend(data.iter().map(|u| u["id"].as_str().unwrap().to_string()));
        match p["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

async fn pages_neither_skip_nor_repeat_under_concurrent_inserts(app: &TestApp) {
    let admin = app.admin().await;
    let names: Vec<String> = (0..14).map(|i| format!("pre-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut existing: HashSet<String> = register_named(app, &refs).await.into_iter().collect();
    existing.insert(admin.id.to_string());

    for sort in [
        "sort=-created_at",
        "sort=created_at",
        "sort=name",
        "sort=-name",
    ] {
        let inserting = async {
            let names: Vec<String> = (0..8).map(|i| format!("new-{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            register_named(app, &refs).await
        };
        let (ids, _) = futures_util::future::join(walk(app, &admin.token, sort), inserting).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{sort}: a row was repeated");
        let missing: Vec<&String> = existing.iter().filter(|id| !unique.contains(id)).collect();
        assert!(missing.is_empty(), "{sort}: skipped {missing:?}");
    }
}
both_stores!(
    list_pagination,
    pages_neither_skip_nor_repeat_under_concurrent_inserts
);
