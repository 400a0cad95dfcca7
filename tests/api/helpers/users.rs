//! Users through the API: the caller's own representation, and the fields a problem
//! names.

use reqwest::{Method, Response};
use serde_json::Value;

use super::{TestApp, TestUser};

pub async fn me(app: &TestApp, u: &TestUser) -> Response {
    app.authed(Method::GET, "/api/v1/users/me", &u.token)
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
