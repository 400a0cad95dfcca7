//! Live reconfiguration through the real binary: a child process serving from a config
//! file, the file rewritten, `kill -HUP`, and what clients and `/metrics` see. This file
//! holds the child (`Server`) and what the tests share; `limits.rs` (quotas, rejected
//! reloads, shadow limits), `gateway.rs` (gateway routes), `check_config.rs` (the
//! operator's `check-config --diff` against what the reload then does).

mod check_config;
mod gateway;
mod limits;
#[allow(dead_code)] // shared with tests/fleet
#[path = "../common/redis_server.rs"]
mod redis_server;
#[allow(dead_code)] // shared with tests/gateway
#[path = "../common/upstream.rs"]
mod upstream;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `bulkhead serve` child on the memory store, killed on drop.
struct Server {
    child: Child,
    port: u16,
    config: PathBuf,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(name: &str, config: &str) -> Server {
        let dir =
            std::env::temp_dir().join(format!("bulkhead-reload-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = dir.join("bulkhead.toml");
        let log = dir.join("stderr.log");
        let server = |config: &str| format!("[server]\nbind = \"127.0.0.1:{port}\"\n{config}");
        std::fs::write(&path, server(config)).unwrap();
        let child = bulkhead()
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Server {
            child,
            port,
            config: path,
            log,
        };
        s.wait_until_healthy();
        s
    }

    /// Rewrites the config file (the server section kept) and sends SIGHUP.
    fn reload(&self, config: &str) -> Instant {
        write_atomically(&self.config, &self.with_server_section(config));
        let at = Instant::now();
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
        at
    }

    /// `config` with the `[server]` section the child started with.
    fn with_server_section(&self, config: &str) -> String {
        format!("[server]\nbind = \"127.0.0.1:{}\"\n{config}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ =
                    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("bulkhead did not become healthy on port {}", self.port);
    }

    /// The value of one exact series in `/metrics` (0 when absent).
    fn metric(&self, series: &str) -> f64 {
        let text = get_text(&self.url("/metrics"));
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Polls `/metrics` until `series` reaches `value` (a reload is asynchronous).
    fn await_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.metric(series);
            if seen == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} is {seen}, expected {value}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `RateLimit-Policy` of an anonymous read (the `ip` policy in force).
    fn policy(&self) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let res = reqwest::get(self.url("/api/v1/products")).await.unwrap();
            res.headers()["ratelimit-policy"]
                .to_str()
                .unwrap()
                .to_string()
        })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The `bulkhead` binary, without the environment's `BULKHEAD*`, `DATABASE_URL` and
/// `RUST_LOG` (the files say everything).
fn bulkhead() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BULKHEAD") || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Writes through a temporary file and a rename, as an operator's tooling should: a
/// reload never reads a half-written file.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A blocking GET on a throwaway runtime: the status and the body.
fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let res = reqwest::get(url).await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    })
}

/// A blocking GET on a throwaway runtime (the tests' own threads are synchronous).
fn get_text(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

const LOGGING: &str = "[log]\nlevel = \"info\"\naccess_log = false\n";
