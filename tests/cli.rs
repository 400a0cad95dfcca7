//! The binary as an operator runs it: `check-config`, `migrate`, `serve` and signals.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bulkhead() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    // The tests decide every variable the binary sees.
    for (k, _) in std::env::vars() {
        if k.starts_with("BULKHEAD") || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bulkhead-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bulkhead.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(contents.as_bytes())
        .unwrap();
    path
}

#[test]
fn check_config_prints_effective_config_with_secrets_redacted() {
    let file = temp_file(
        "ok",
        "[auth]\njwt_secret = \"super-secret-super-secret-super-secret\"\n",
    );
    let out = bulkhead()
        .args(["check-config", "--config"])
        .arg(&file)
        .env("BULKHEAD__SERVER__BIND", "0.0.0.0:9999")
        .env("DATABASE_URL", "postgres://app:pa55word@db.internal/app")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("bind = \"0.0.0.0:9999\""), "{text}");
    assert!(
        text.contains("postgres://app:<redacted>@db.internal/app"),
        "{text}"
    );
    assert!(!text.contains("super-secret"), "{text}");
    assert!(!text.contains("pa55word"), "{text}");
    // The output is itself a valid configuration.
    let again = temp_file(
        "roundtrip",
        &text.replace("\"<redacted>\"", "\"0123456789abcdef0123456789abcdef\""),
    );
    let out = bulkhead()
        .args(["check-config", "--config"])
        .arg(&again)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_rejects_a_bad_file_naming_the_key() {
    let cases = [
        ("[server]\nbindd = \"x\"\n", "server.bindd"),
        (
            "[server]\nshutdown_timeout_secs = \"soon\"\n",
            "server.shutdown_timeout_secs",
        ),
        (
            "[rate_limits.login]\nquota = -1\n",
            "rate_limits.login.quota",
        ),
        ("not toml at all [", "TOML"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let file = temp_file(&format!("bad{i}"), text);
        let out = bulkhead()
            .args(["check-config", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success(), "accepted {text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key),
            "error for {text:?} does not name {key}: {err}"
        );
    }
    // BULKHEAD_CONFIG names the file too, and a bad environment override is named.
    let file = temp_file("env", "[server]\nworkers = 1\n");
    let out = bulkhead()
        .arg("check-config")
        .env("BULKHEAD_CONFIG", &file)
        .env("BULKHEAD__SERVER__WORKERS", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.workers"), "{err}");
    let out = bulkhead()
        .args(["check-config", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            use std::io::Read;
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("bulkhead did not become healthy on port {port}");
}

/// SIGTERM while a load runs: the process stops accepting, finishes what it accepted
/// (no 5xx, no reset of an accepted request) and exits 0.
#[test]
fn sigterm_during_load_drains_and_exits_zero() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let port = free_port();
        let mut child = bulkhead()
            .arg("serve")
            .env("BULKHEAD__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("BULKHEAD__SERVER__SHUTDOWN_TIMEOUT_SECS", "10")
            .env("BULKHEAD__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until_healthy(port);

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let client = reqwest::Client::new();
                        let (mut ok, mut refused, mut bad) = (0u32, 0u32, Vec::new());
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            match client
                                .get(format!("http://127.0.0.1:{port}/ready"))
                                .send()
                                .await
                            {
                                Ok(res) if res.status() == 200 || res.status() == 503 => {
                                    // 503 is /ready saying shutdown is under way: correct.
                                    if res.bytes().await.is_ok() {
                                        ok += 1
                                    } else {
                                        bad.push("body cut".to_string())
                                    }
                                }
                                Ok(res) => bad.push(format!("status {}", res.status())),
                                // After the listener closes, connects are refused: not accepted.
                                Err(e) if e.is_connect() => {
                                    refused += 1;
                                    tokio::time::sleep(Duration::from_millis(5)).await
                                }
                                Err(e) if e.is_request() => {
                                    refused += 1;
                                    tokio::time::sleep(Duration::from_millis(5)).await
                                }
                                Err(e) => bad.push(format!("{e:?}")),
                            }
                        }
                        (ok, refused, bad)
                    })
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        unsafe { libc::kill(child.id() as i32, signal) };
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "did not exit after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total_ok = 0;
        for w in workers {
            let (ok, _refused, bad) = w.join().unwrap();
            assert!(
                bad.is_empty(),
                "requests failed other than by refusal: {bad:?}"
            );
            total_ok += ok;
        }
        assert!(
            status.success(),
            "exit status after signal {signal}: {status:?}"
        );
        assert!(total_ok > 0, "the load ran");
    }
}

/// `check-config --diff FILE`: each change as `key: old -> new` (secrets redacted) and
/// the verdict, with an exit code a deploy script can branch on.
#[test]
fn check_config_diff_shows_a_reload_and_whether_it_would_be_accepted() {
    let running = temp_file(
        "diff-running",
        "[rate_limits.user]\nquota = 100\n[auth]\njwt_secret = \"aaaa-secret-aaaa-secret-aaaa-secret\"\n",
    );
    let diff = |name: &str, next: &str| {
        let next = temp_file(name, next);
        let out = bulkhead()
            .args(["check-config", "--config"])
            .arg(&running)
            .arg("--diff")
            .arg(&next)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let same_secret = "[auth]\njwt_secret = \"aaaa-secret-aaaa-secret-aaaa-secret\"\n";

    let (code, text) = diff(
        "diff-live",
        &format!("{same_secret}[rate_limits.user]\nquota = 50\nshadow = true\n"),
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        text,
        "rate_limits.user.quota: 100 -> 50\nrate_limits.user.shadow: false -> true\n\
         accepted: 2 change(s) apply live\n"
    );

    let (code, text) = diff(
        "diff-restart",
        "[rate_limits.user]\nquota = 100\n[auth]\njwt_secret = \"bbbb-secret-bbbb-secret-bbbb-secret\"\n",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "auth.jwt_secret: \"<redacted>\" -> \"<redacted>\"  (cannot change live: restart)"
        ),
        "{text}"
    );
    assert!(text.ends_with("rejected: `auth.jwt_secret` cannot change without a restart\n"));
    assert!(!text.contains("secret-"), "{text}");

    let (code, text) = diff("diff-invalid", "[rate_limits.user]\nquota = 0\n");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("rate_limits.user.quota"), "{text}");

    let (code, text) = diff(
        "diff-none",
        &format!("{same_secret}[rate_limits.user]\nquota = 100\n"),
    );
    assert_eq!((code, text.as_str()), (Some(0), "accepted: no changes\n"));
}

/// One raw HTTP/1.1 request on its own connection; the response's head and body.
fn http_get(port: u16, path: &str, request_id: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: {request_id}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf
}

/// `serve` with `config`, its stderr (the log) to `log`, once healthy on `port`.
fn serve_logging_to(
    config: &std::path::Path,
    port: u16,
    log: &std::path::Path,
) -> std::process::Child {
    let child = bulkhead()
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("BULKHEAD__SERVER__BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    wait_until_healthy(port);
    child
}

/// The JSON lines of `log` so far.
fn json_lines(log: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// The access lines of `log` that carry `request_id`.
fn access_lines(log: &std::path::Path, request_id: &str) -> Vec<serde_json::Value> {
    json_lines(log)
        .into_iter()
        .filter(|v| v["target"] == "access" && v["request_id"] == request_id)
        .collect()
}

/// The access log as an operator reads it: one JSON line per request on stderr, with the
/// request's id, route template, status and client; switched off by a reload.
#[test]
fn access_log_writes_a_line_per_request_and_a_reload_turns_it_off() {
    let port = free_port();
    let config = temp_file(
        "access-log",
        "[log]\nformat = \"json\"\nlevel = \"warn\"\naccess_log = true\n",
    );
    let log = config.with_file_name("stderr.log");
    let mut child = serve_logging_to(&config, port, &log);

    let answer = http_get(port, "/api/v1/users/me", "probe-1");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    http_get(port, "/api/v1/products/not-a-uuid", "probe-2");
    // The writer thread writes when its queue is empty: at once on an idle service.
    let deadline = Instant::now() + Duration::from_secs(10);
    while access_lines(&log, "probe-2").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = access_lines(&log, "probe-1");
    assert_eq!(first.len(), 1, "one line for the request: {first:?}");
    let line = &first[0];
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/api/v1/users/me");
    assert_eq!(line["status"], 401);
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert_eq!(line["level"], "INFO");
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(line.get("user_id").is_none(), "no caller: {line}");
    let ts = line["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'),
        "{ts}"
    );
    let second = access_lines(&log, "probe-2");
    assert_eq!(second.len(), 1, "{second:?}");
    // The route template, never the path as sent (a bounded, non-identifying field).
    assert_eq!(second[0]["route"], "/api/v1/products/{id}");
    assert_eq!(second[0]["status"], 404);

    // Off by a reload: the next request writes nothing.
    std::fs::write(
        &config,
        "[log]\nformat = \"json\"\nlevel = \"warn\"\naccess_log = false\n",
    )
    .unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let id = format!("probe-off-{n}");
        http_get(port, "/api/v1/users/me", &id);
        std::thread::sleep(Duration::from_millis(50));
        if access_lines(&log, &id).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reload did not turn the access log off"
        );
    }
    assert!(http_get(port, "/health", "probe-after").starts_with("HTTP/1.1 200"));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// API.md: the request id is "in every log line of the request", whatever `log.level`
/// says: at `warn`, the warning a request logs (its store is down) names the request.
#[test]
fn a_warning_logged_while_serving_a_request_carries_its_request_id() {
    let port = free_port();
    let config = temp_file(
        "warn-line",
        "[log]\nformat = \"json\"\nlevel = \"warn\"\naccess_log = false\n\
         [database]\nurl = \"postgres://postgres@127.0.0.1:1/nothing\"\nmigrate_on_start = false\n\
         [cache.products]\nenabled = false\n",
    );
    let log = config.with_file_name("stderr.log");
    let mut child = serve_logging_to(&config, port, &log);

    let answer = http_get(port, "/api/v1/products", "warn-probe-1");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let warned = |log: &std::path::Path| -> Vec<serde_json::Value> {
        json_lines(log)
            .into_iter()
            .filter(|v| v["message"] == "store unavailable")
            .collect()
    };
    // Background work (the janitor's first pass, at start) warns too, in its own span.
    let mine = |lines: &[serde_json::Value]| {
        lines
            .iter()
            .any(|v| v["span"]["request_id"] == "warn-probe-1")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mine(&warned(&log)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = warned(&log);
    assert!(
        mine(&lines),
        "the request logged its warning, naming it: {lines:?}"
    );
    for line in &lines {
        assert_eq!(line["level"], "WARN");
        assert!(
            line["span"]["name"].is_string(),
            "a line outside any span: {line}"
        );
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
