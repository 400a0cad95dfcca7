//! `spawn_app()`: a running Bulkhead on a free port, on Postgres (a fresh database per
//! test, dropped afterwards) or on the in-memory store, with typed request helpers.

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

/// The server every test database is created on. `BULKHEAD_TEST_DATABASE_URL` overrides.
pub fn admin_url() -> String {
    std::env::var("BULKHEAD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
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
        bulkhead::telemetry::init(&bulkhead::config::LogConfig {
            level: std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()),
            ..Default::default()
        });
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

/// A database of its own for one test, dropped when the test ends.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("bulkhead_test_{}", Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("Postgres must be running for the tests ({admin}): {e}. Run .ci/run, which starts it.")
            });
        actix_web::rt::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = match admin.rfind('/') {
            Some(i) => format!("{}/{name}", &admin[..i]),
            None => panic!("admin url has no database part"),
        };
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = admin_url();
        // No async drop: a thread with its own runtime drops the database.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
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
