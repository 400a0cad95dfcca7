//! Users through the API: the caller's own representation, a PATCH, and the fields a
//! problem names.

use reqwest::{Method, Response};
use serde_json::Value;
use uuid::Uuid;

use super::{TestApp, TestUser};

pub async fn me(app: &TestApp, u: &TestUser) -> Response {
    app.authed(Method::GET, "/api/v1/users/me", &u.token)
        .send()
        .await
        .unwrap()
}

/// `PATCH /api/v1/users/{id}` with a JSON body.
pub async fn patch(app: &TestApp, token: &str, id: Uuid, body: &Value) -> Response {
    app.authed(Method::PATCH, &format!("/api/v1/users/{id}"), token)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub fn fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}
