//! Slow and greedy clients: a body sent a byte at a time must not hold a connection
//! forever (408 `request_timeout`), and one client IP must not take every file
//! descriptor with connections it keeps open (`server.max_connections_per_ip`).

use std::collections::HashSet;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::eventually;
use crate::helpers::{spawn_app_with, StoreKind, TestApp};

fn port(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

/// Read until the peer closes (or `limit` passes); what was read, and whether it closed.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[actix_web::test]
async fn body_sent_one_byte_then_nothing_is_cut_off_with_408() {
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.server.client_body_timeout_ms = 300;
    })
    .await;
    let mut s = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    s.write_all(
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(closed, "the connection stays open after the 408: {answer}");
}

/// The accepted sockets this process holds on `port` (the server's side of them).
fn server_side_sockets(port: u16) -> usize {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 0A is LISTEN: the listener is not a connection.
            if local_port == Some(port) && f[3] != "0A" {
                inodes.insert(format!("socket:[{}]", f[9]));
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| inodes.contains(l.to_string_lossy().as_ref()))
        .count()
}

async fn health_on(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => buf[..n].starts_with(b"HTTP/1.1 200"),
        _ => false,
    }
}

#[actix_web::test]
async fn one_ip_opening_many_idle_connections_holds_at_most_its_cap() {
    const CAP: usize = 16;
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.server.max_connections_per_ip = CAP;
    })
    .await;
    let port = port(&app);
    let mut kept = Vec::new();
    for _ in 0..CAP {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert!(health_on(&mut s).await);
        kept.push(s); // idle keep-alive from here on
    }
    // The next ones are closed as they arrive, request or not.
    let mut refused = 0;
    let mut extra = Vec::new();
    for _ in 0..3 * CAP {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        if !health_on(&mut s).await {
            refused += 1;
        }
        extra.push(s);
    }
    assert_eq!(refused, 3 * CAP, "connections past the cap were served");
    // However many it opened, the server holds CAP descriptors for this client.
    let held = server_side_sockets(port);
    eprintln!(
        "fds held by one client: {held} (cap {CAP}, {} opened)",
        4 * CAP
    );
    assert!(
        eventually(Duration::from_secs(10), async || server_side_sockets(port)
            == CAP)
        .await,
        "server-side sockets: {} for a cap of {CAP}",
        server_side_sockets(port)
    );
    // The kept ones still work, and a closed one gives its slot back.
    assert!(health_on(&mut kept[0]).await);
    drop(kept.pop());
    assert!(
        eventually(Duration::from_secs(10), async || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            health_on(&mut s).await
        })
        .await,
        "a freed slot was never given back"
    );
}
