//! N instances of the real `bulkhead` binary as child processes on one test database:
//! each on a free port, with extra environment or a config file of its own, ready when
//! `/ready` answers 200, killed when dropped. Typed request helpers talk HTTP to one.

// Shared fixtures: each test module uses its own subset.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};
use uuid::Uuid;

#[path = "../common/db.rs"]
mod db;
pub use db::TestDatabase;

/// The bootstrap admin every instance ensures.
pub const ADMIN_EMAIL: &str = "admin@bulkhead.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// One secret for the whole fleet: a token minted by one instance is valid on every other.
pub const JWT_SECRET: &str = "fleet-secret-fleet-secret-fleet-secret-01";

/// How long an instance may take to answer `/ready` after its process starts.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// What one instance gets on top of the fleet's common settings.
#[derive(Debug, Clone, Default)]
pub struct InstanceSpec {
    /// Extra environment, e.g. `("BULKHEAD__CACHE__USERS__TTL_SECS", "300")`; set after
    /// the common settings, so it overrides them.
    pub env: Vec<(String, String)>,
    /// A TOML config file (`--config`); environment variables still override it.
    pub config_toml: Option<String>,
}

impl InstanceSpec {
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn config(mut self, toml: &str) -> Self {
        self.config_toml = Some(toml.to_string());
        self
    }
}

/// Several instances on one database of their own.
pub struct Fleet {
    pub instances: Vec<Instance>,
    // Dropped after the instances (fields drop in order): no process outlives its data.
    pub db: TestDatabase,
}

impl Fleet {
    /// `n` instances with the common settings only.
    pub async fn start(n: usize) -> Fleet {
        Self::start_with(n, |_| InstanceSpec::default()).await
    }

    /// `n` instances; `spec(i)` gives instance `i` its own settings. The first starts
    /// alone (it applies the migrations and ensures the admin), the others together.
    pub async fn start_with(n: usize, spec: impl Fn(usize) -> InstanceSpec) -> Fleet {
        assert!(n > 0, "a fleet has at least one instance");
        let db = TestDatabase::create().await;
        let mut instances = vec![Instance::start(&db.url, 0, spec(0)).await];
        let rest = (1..n).map(|i| Instance::start(&db.url, i, spec(i)));
        instances.extend(futures_util::future::join_all(rest).await);
        Fleet { instances, db }
    }

    pub fn get(&self, i: usize) -> &Instance {
        &self.instances[i]
    }

    /// Start one more instance on the fleet's database.
    pub async fn add(&mut self, spec: InstanceSpec) -> &Instance {
        let i = self.instances.len();
        let instance = Instance::start(&self.db.url, i, spec).await;
        self.instances.push(instance);
        &self.instances[i]
    }

    /// A plain connection to the fleet's database (for checks behind the service's back,
    /// e.g. `pg_terminate_backend`).
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.db.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the fleet's database");
        tokio::spawn(conn);
        client
    }
}

/// One `bulkhead serve` child process.
pub struct Instance {
    pub index: usize,
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    child: Child,
    dir: PathBuf,
}

/// A port nobody listens on right now (the child binds it a moment later; a start that
/// loses the race is retried on another port).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Instance {
    async fn start(database_url: &str, index: usize, spec: InstanceSpec) -> Instance {
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!(
                "bulkhead-fleet-{}-{}",
                std::process::id(),
                Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&dir).expect("instance temp dir");
            let child = spawn_child(database_url, port, &spec, &dir);
            let mut instance = Instance {
                index,
                address: format!("http://127.0.0.1:{port}"),
                port,
                client: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("http client"),
                child,
                dir,
            };
            match instance.wait_ready().await {
                Ok(()) => return instance,
                Err(log) => last_log = log,
            }
        }
        panic!("instance {index} never became ready; its log:\n{last_log}");
    }

    /// Poll `/ready` until 200; `Err(log)` when the process exits first or the deadline
    /// passes (the process is then killed).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_status)) = self.child.try_wait() {
                return Err(self.log());
            }
            if let Ok(res) = self.client.get(self.url("/ready")).send().await {
                if res.status() == 200 {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        Err(format!(
            "(not ready within {READY_DEADLINE:?})\n{}",
            self.log()
        ))
    }

    /// What the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (drain, then exit) and wait for the exit status, within `deadline`.
    pub fn terminate(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: a plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with `Authorization: Bearer <token>`.
    pub fn authed(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(token)
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

    /// `GET /api/v1/users/me` with `token`: the status it answers.
    pub async fn me_status(&self, token: &str) -> u16 {
        self.authed(Method::GET, "/api/v1/users/me", token)
            .send()
            .await
            .expect("request sent")
            .status()
            .as_u16()
    }

    pub async fn register(&self, email: &str, name: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/users",
            &json!({"email": email, "name": name, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/token",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Log in and return `(access_token, refresh_token)`, asserting success.
    pub async fn tokens(&self, email: &str, password: &str) -> (String, String) {
        let res = self.login(email, password).await;
        assert_eq!(
            res.status(),
            200,
            "login of {email} on instance {}",
            self.index
        );
        let body: Value = res.json().await.expect("token body");
        (
            body["access_token"].as_str().unwrap().to_string(),
            body["refresh_token"].as_str().unwrap().to_string(),
        )
    }

    /// Register a fresh user (unique email) and log in.
    pub async fn new_user(&self) -> TestUser {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let password = "password-123".to_string();
        let res = self.register(&email, "Fleet User", &password).await;
        assert_eq!(res.status(), 201, "registering {email}");
        let body: Value = res.json().await.expect("user body");
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
            .expect("request sent")
            .json()
            .await
            .expect("user body");
        TestUser {
            id: me["id"].as_str().and_then(|s| s.parse().ok()).unwrap(),
            email: ADMIN_EMAIL.into(),
            password: ADMIN_PASSWORD.into(),
            token,
            refresh_token,
        }
    }

    /// The `/metrics` exposition.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .await
            .text()
            .await
            .expect("metrics body")
    }

    /// The value of one sample, named as it appears in the exposition (name and labels,
    /// e.g. `bulkhead_cache_invalidation_lag_seconds_count`).
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics().await;
        sample_value(&text, sample)
    }
}

/// The value of `sample` (name and labels exactly as exposed) in an exposition.
pub fn sample_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_child(database_url: &str, port: u16, spec: &InstanceSpec, dir: &std::path::Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    // The harness decides every variable the binary sees.
    for (k, _) in std::env::vars() {
        if k.starts_with("BULKHEAD") || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let log_level = std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into());
    let common: [(&str, String); 14] = [
        ("DATABASE_URL", database_url.to_string()),
        ("BULKHEAD__SERVER__BIND", format!("127.0.0.1:{port}")),
        ("BULKHEAD__SERVER__WORKERS", "1".into()),
        ("BULKHEAD__SERVER__SHUTDOWN_TIMEOUT_SECS", "5".into()),
        ("BULKHEAD__LOG__LEVEL", log_level),
        ("BULKHEAD__AUTH__JWT_SECRET", JWT_SECRET.into()),
        // Cheap hashing: the tests check behaviour, not password cost.
        ("BULKHEAD__AUTH__ARGON2_MEMORY_KIB", "256".into()),
        ("BULKHEAD__AUTH__ARGON2_ITERATIONS", "1".into()),
        ("BULKHEAD__AUTH__BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.into()),
        (
            "BULKHEAD__AUTH__BOOTSTRAP_ADMIN_PASSWORD",
            ADMIN_PASSWORD.into(),
        ),
        // A loaded CI machine must not turn a slow request into a 503.
        (
            "BULKHEAD__BULKHEADS__DB_READ__QUEUE_TIMEOUT_MS",
            "10000".into(),
        ),
        (
            "BULKHEAD__BULKHEADS__DB_WRITE__QUEUE_TIMEOUT_MS",
            "10000".into(),
        ),
        // Several instances share the test server's connections.
        ("BULKHEAD__DATABASE__READ_POOL_SIZE", "3".into()),
        ("BULKHEAD__DATABASE__WRITE_POOL_SIZE", "3".into()),
    ];
    for (k, v) in common {
        cmd.env(k, v);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(toml) = &spec.config_toml {
        let file = dir.join("bulkhead.toml");
        std::fs::write(&file, toml).expect("instance config file");
        cmd.arg("--config").arg(file);
    }
    let out = std::fs::File::create(dir.join("stdout.log")).expect("stdout log");
    let err = std::fs::File::create(dir.join("stderr.log")).expect("stderr log");
    cmd.arg("serve")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start the bulkhead binary")
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: String,
}

/// Poll `check` until it returns `Some`, or panic naming `what` once `deadline` has
/// passed. Returns the value and the time it took from the call.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return (v, start.elapsed());
        }
        if start.elapsed() > deadline {
            panic!("{what}: not within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (up to 15 s) until `instance`'s invalidation listener is connected.
pub async fn listening(instance: &Instance) {
    eventually("the listener connects", Duration::from_secs(15), || async {
        (instance
            .metric("bulkhead_invalidation_listener_connected")
            .await
            .unwrap_or(0.0)
            == 1.0)
            .then_some(())
    })
    .await;
}
