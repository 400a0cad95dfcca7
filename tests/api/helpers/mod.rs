//! The one helpers module every test file imports from (test files never import each
//! other).
//!
//! Here: `spawn_app()`, a running Bulkhead on a free port, on Postgres (a fresh database
//! per test, dropped afterwards) or on the in-memory store, with typed request helpers.
//! Beside it: `shop.rs` (products and orders through the API), `users.rs` (users through
//! the API), `store.rs` (a migrated Postgres store below HTTP), `nats.rs` (a
//! `nats-server -js` of the test's own, a reader of the events stream, metric values),
//! `tools.rs` (external tools: promtool, schemathesis, Prometheus), `proxy.rs` (a TCP
//! proxy that can cut a dependency off).

// Shared fixtures: each test module uses its own subset.
#![allow(dead_code)]

pub mod nats;
pub mod proxy;
pub mod shop;
pub mod store;
pub mod tools;
pub mod users;

use std::sync::OnceLock;

use bulkhead::config::{Config, DatabaseUrl};
use bulkhead::startup::{Application, ShutdownHandle};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Postgres,
    Memory,
}

#[path = "../../common/db.rs"]
mod db;
#[allow(unused_imports)] // admin_url: the attack tests only
pub use db::{admin_url, TestDatabase};

/// The bootstrap admin every test app has.
pub const ADMIN_EMAIL: &str = "admin@bulkhead.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: String,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub kind: StoreKind,
    _db: Option<TestDatabase>,
    shutdown: ShutdownHandle,
}

/// The configuration tests start from: cheap password hashing, quiet logs, a fixed secret.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.server.bind = "127.0.0.1:0".parse().unwrap();
    c.server.workers = 2;
    c.server.shutdown_timeout_secs = 5;
    c.log.level = std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into());
    c.auth.jwt_secret = Some(bulkhead::config::Secret::new(
        "test-secret-test-secret-test-secret-0123",
    ));
    c.auth.argon2_memory_kib = 256;
    c.auth.argon2_iterations = 1;
    c.auth.bootstrap_admin_email = Some(ADMIN_EMAIL.into());
    c.auth.bootstrap_admin_password = Some(bulkhead::config::Secret::new(ADMIN_PASSWORD));
    // Tests check behaviour, not overload: a loaded CI machine must not turn a slow
    // request into a 503 (the overload tests set their own bulkheads).
    c.bulkheads.db_read.queue_timeout_ms = 10_000;
    c.bulkheads.db_write.queue_timeout_ms = 10_000;
    c.database.read_pool_size = 4;
    c.database.write_pool_size = 4;
    c
}

pub async fn spawn_app(kind: StoreKind) -> TestApp {
    spawn_app_with(kind, |_| {}).await
}

pub async fn spawn_app_with(kind: StoreKind, tweak: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let mut config = test_config();
    let db = match kind {
        StoreKind::Postgres => {
            let db = TestDatabase::create().await;
            config.database.url = Some(DatabaseUrl::new(db.url.clone()));
            Some(db)
        }
        StoreKind::Memory => None,
    };
    tweak(&mut config);
    let app = Application::build(config)
        .await
        .expect("application builds");
    let port = app.port();
    let shutdown = app.shutdown_handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        kind,
        _db: db,
        shutdown,
    }
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let level = std::env::var("TEST_LOG").ok();
        let guard = bulkhead::telemetry::init(&bulkhead::config::LogConfig {
            access_log: level.is_some(),
            level: level.unwrap_or_else(|| "error".into()),
            ..Default::default()
        });
        // The writer thread lives as long as the test process.
        std::mem::forget(guard);
    });
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A request with `Authorization: Bearer <token>`.
    pub fn authed(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(token)
    }

    pub async fn register(&self, email: &str, name: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/users",
            &serde_json::json!({"email": email, "name": name, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/token",
            &serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// Log in and return `(access_token, refresh_token)`, asserting success.
    pub async fn tokens(&self, email: &str, password: &str) -> (String, String) {
        let res = self.login(email, password).await;
        assert_eq!(res.status(), 200, "login of {email}");
        let body: Value = res.json().await.unwrap();
        (
            body["access_token"].as_str().unwrap().to_string(),
            body["refresh_token"].as_str().unwrap().to_string(),
        )
    }

    /// Register a fresh user (unique email) and log in.
    pub async fn new_user(&self) -> TestUser {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let password = "password-123".to_string();
        let res = self.register(&email, "Test User", &password).await;
        assert_eq!(res.status(), 201, "registering {email}");
        let body: Value = res.json().await.unwrap();
        let id = body["id"].as_str().unwrap().parse().unwrap();
        let (token, refresh_token) = self.tokens(&email, &password).await;
        TestUser {
            id,
            email,
            password,
            token,
            refresh_token,
        }
    }

    /// The bootstrap admin, logged in.
    pub async fn admin(&self) -> TestUser {
        let (token, refresh_token) = self.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let me: Value = self
            .authed(Method::GET, "/api/v1/users/me", &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        TestUser {
            id: me["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default(),
            email: ADMIN_EMAIL.into(),
            password: ADMIN_PASSWORD.into(),
            token,
            refresh_token,
        }
    }

    /// The URL of this app's own database (Postgres apps only), e.g. to start a second
    /// app on the same data.
    pub fn database_url(&self) -> Option<String> {
        self._db.as_ref().map(|db| db.url.clone())
    }

    /// A client of this app's own database (Postgres apps only), its connection driven
    /// on the test's runtime.
    pub async fn db(&self) -> tokio_postgres::Client {
        let url = self.database_url().expect("a Postgres app");
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    /// Stop the server the way a signal does (drain, then stop).
    pub async fn stop(&self) {
        self.shutdown.stop().await;
    }
}

/// Decode a problem+json answer and check the members every problem carries.
pub async fn problem(res: Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status of {code}");
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "content type of {code}");
    let rid = res
        .headers()
        .get("x-request-id")
        .expect("x-request-id on every response")
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = res.json().await.expect("problem body is JSON");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["request_id"], rid.as_str(), "{body}");
    for key in ["type", "title", "detail", "instance"] {
        assert!(
            body[key].is_string(),
            "problem member {key} missing: {body}"
        );
    }
    body
}

/// Run one async test case against both stores: `both_stores!(name, case_fn);` makes
/// `name::postgres` and `name::memory`.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $case:path) => {
        mod $name {
            use super::*;

            #[actix_web::test]
            async fn postgres() {
                let app = $crate::helpers::spawn_app($crate::helpers::StoreKind::Postgres).await;
                $case(&app).await;
            }

            #[actix_web::test]
            async fn memory() {
                let app = $crate::helpers::spawn_app($crate::helpers::StoreKind::Memory).await;
                $case(&app).await;
            }
        }
    };
}
