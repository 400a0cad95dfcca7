//! Malformed requests actix-http answers itself. Its h1 dispatcher writes a 400 for a
//! request head it cannot parse (a raw control byte in the path) and a 431 for a head
//! past its limits (more than 96 header lines, or past its buffer) before any service
//! runs, with no hook for the application: these answers have empty bodies, as the
//! README's API notes say. This pins that behaviour (a change of actix-http that moves
//! it shows here), and that the odd spellings which DO reach routing (`%ZZ`, `%FF%FE`:
//! bytes the parser accepts) are answered as problem+json like everything else.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, StoreKind, TestApp};

/// Send `request` on a new connection and read the answer until the peer closes or a
/// second passes with nothing more (keep-alive); the answer as text (lossy).
async fn exchange(app: &TestApp, request: &[u8]) -> String {
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code and the body of a raw answer.
fn status_and_body(answer: &str) -> (u16, &str) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body)
}

#[actix_web::test]
async fn what_the_dispatcher_answers_is_bare_and_what_routes_is_problem_json() {
    let app = spawn_app(StoreKind::Memory).await;

    // A raw control byte in the path: the head does not parse. Bare 400.
    let answer = exchange(&app, b"GET /api/v1/\x01 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, 400, "{answer:?}");
    assert!(body.is_empty(), "{answer:?}");
    assert!(!answer.contains("problem+json"), "{answer:?}");

    // A 22 KB header block (200 lines): past actix-http's 96 header lines. Bare 431.
    let mut head = b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..200 {
        head.extend_from_slice(format!("X-Filler-{i:03}: {}\r\n", "f".repeat(96)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert!(head.len() > 22_000);
    let answer = exchange(&app, &head).await;
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, 431, "{answer:?}");
    assert!(body.is_empty(), "{answer:?}");

    // Odd encodings the parser accepts reach routing: problem+json, with the request id.
    for path in ["/api/v1/users/%ZZ", "/api/v1/products/%FF%FE", "/%FF%FE"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = exchange(&app, request.as_bytes()).await;
        let (status, body) = status_and_body(&answer);
        assert!((400..500).contains(&status), "{path}: {answer:?}");
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{path}: {answer:?}"
        );
        assert!(lower.contains("x-request-id:"), "{path}: {answer:?}");
        let problem: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{path}: body {body:?} is not JSON: {e}"));
        assert_eq!(problem["status"], status, "{path}: {problem}");
        assert!(problem["code"].is_string(), "{path}: {problem}");
    }
}
