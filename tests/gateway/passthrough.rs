//! What the gateway passes through as the connection carries it: `X-Forwarded-Proto`
//! (trusted only from a trusted proxy), and answers that have no body (304, 204, HEAD),
//! which must leave the connection clean for the next response.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use reqwest::Method;
use serde_json::Value;

use crate::upstream::{echoed, Mode, Upstream, ECHO_ETAG};
use crate::{route, spawn_gateway};

#[actix_web::test]
async fn forwarded_proto_is_trusted_only_from_a_trusted_proxy() {
    let echo = Upstream::start(Mode::Echo).await;
    let proto_seen = |doc: &Value| echoed(doc, "x-forwarded-proto");

    // The test client connects from 127.0.0.1: first not trusted, then trusted.
    let untrusted = spawn_gateway(vec![route("echo", "/api/v1/echo", &[&echo])], |_| {}).await;
    let trusted = spawn_gateway(vec![route("echo", "/api/v1/echo", &[&echo])], |c| {
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.gateway.overview_parts = vec![bulkhead::config::OverviewPartConfig {
            name: "echo".into(),
            route: "echo".into(),
            path: "/part".into(),
            timeout_ms: 2_000,
        }];
    })
    .await;

    let send = |app: &crate::helpers::TestApp, lines: &[&str]| {
        let mut req = app.request(Method::GET, "/api/v1/echo/x");
        for line in lines {
            req = req.header("x-forwarded-proto", *line);
        }
        req.send()
    };
    for lines in [&[][..], &["https"][..], &["http, https"][..]] {
        let doc: Value = send(&untrusted, lines).await.unwrap().json().await.unwrap();
        assert_eq!(proto_seen(&doc), ["http"], "untrusted peer, {lines:?}");
    }
    for (lines, want) in [
        (&[][..], "http"),
        (&["https"][..], "https"),
        (&["HTTPS"][..], "https"),
        (&["http, https"][..], "https"),
        (&["https", "http"][..], "http"),
        (&["https", "gopher"][..], "http"),
        (&["https, "][..], "https"),
    ] {
        let doc: Value = send(&trusted, lines).await.unwrap().json().await.unwrap();
        assert_eq!(proto_seen(&doc), [want], "trusted peer, {lines:?}");
    }
    // The overview's parts carry the same scheme.
    let user = trusted.new_user().await;
    let overview: Value = trusted
        .authed(Method::GET, "/api/v1/me/overview", &user.token)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        proto_seen(&overview["parts"]["echo"]),
        ["https"],
        "{overview}"
    );
}

/// Writes `requests` on one kept-alive connection at once (pipelined) and reads until
/// `complete` finds every answer in what arrived.
async fn pipelined<T>(
    address: &str,
    requests: &[String],
    complete: impl Fn(&[u8]) -> Option<T>,
) -> T {
    let addr = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(requests.concat().as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(done) = complete(&out) {
            return done;
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("incomplete answers: {:?}", String::from_utf8_lossy(&out)))
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
}

fn request(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nhost: gw.test\r\n{extra}\r\n")
}

/// The head at the start of `bytes` (lower-cased) and what follows it, once complete.
fn split_head(bytes: &[u8]) -> Option<(String, &[u8])> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((
        String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase(),
        &bytes[end..],
    ))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Four answers: three heads, then a head whose `Content-Length` body has arrived. A
/// stray byte between them shows as a head that is not a status line.
fn four_answers(bytes: &[u8]) -> Option<[String; 4]> {
    let (a, rest) = split_head(bytes)?;
    let (b, rest) = split_head(rest)?;
    let (c, rest) = split_head(rest)?;
    let (d, body) = split_head(rest)?;
    let len: usize = header(&d, "content-length")?.parse().ok()?;
    (body.len() >= len).then(|| {
        assert_eq!(body.len(), len, "bytes after the last answer: {body:?}");
        [a, b, c, d]
    })
}

#[actix_web::test]
async fn head_and_conditional_get_pass_through() {
    let echo = Upstream::start(Mode::Echo).await;
    let app = spawn_gateway(vec![route("echo", "/api/v1/echo", &[&echo])], |_| {}).await;
    let path = "/api/v1/echo/doc";
    let full = app.get(path).await;
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["etag"], ECHO_ETAG);
    assert!(!full.bytes().await.unwrap().is_empty());
    let if_none_match = format!("if-none-match: {ECHO_ETAG}\r\n");

    for round in 0..25 {
        // On the wire, pipelined: nothing may sit between a bodiless answer and the next
        // response (a stray chunked terminator after the 304 would).
        let requests = [
            request("GET", path, &if_none_match),
            request("GET", path, "x-want-status: 204\r\n"),
            request("HEAD", path, ""),
            request("GET", path, ""),
        ];
        let [not_modified, no_content, head, get] =
            pipelined(&app.address, &requests, four_answers).await;
        assert!(not_modified.starts_with("http/1.1 304"), "{not_modified}");
        assert_eq!(header(&not_modified, "etag"), Some(ECHO_ETAG));
        assert_eq!(header(&not_modified, "transfer-encoding"), None);
        assert!(
            no_content.starts_with("http/1.1 204"),
            "round {round}: after the 304 came {no_content:?}"
        );
        assert!(head.starts_with("http/1.1 200"), "round {round}: {head:?}");
        let declared: usize = header(&head, "content-length").unwrap().parse().unwrap();
        assert!(declared > 0, "the upstream's length: {head}");
        assert!(get.starts_with("http/1.1 200"), "round {round}: {get:?}");

        // Through a pooled client on one kept-alive connection.
        let res = app
            .request(Method::GET, path)
            .header("if-none-match", ECHO_ETAG)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 304);
        assert!(res.bytes().await.unwrap().is_empty());
        let res = app.request(Method::HEAD, path).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let declared: u64 = res.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(declared > 0, "the upstream's length");
        assert!(res.bytes().await.unwrap().is_empty());
        let doc: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(doc["method"], "GET", "round {round}");
    }
}

/// Streamed answers end in small writes: with Nagle on they would wait for the client's
/// delayed ACK. The server's side of an accepted connection (this process's own socket,
/// found in `/proc/self/fd` by its addresses) has `TCP_NODELAY` set.
#[cfg(target_os = "linux")]
#[actix_web::test]
async fn accepted_connections_have_nagle_off() {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;

    let echo = Upstream::start(Mode::Echo).await;
    let app = spawn_gateway(vec![route("echo", "/api/v1/echo", &[&echo])], |_| {}).await;
    let ok = |b: &[u8]| split_head(b).map(|(head, _)| head);
    let mut client = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    client
        .write_all(request("GET", "/health", "").as_bytes())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while ok(&seen).is_none() {
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    let (client_addr, server_addr) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
    let mut found = None;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: borrowed only to ask the kernel about it; ManuallyDrop never closes it.
        let socket = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
        if socket.peer_addr().ok() == Some(client_addr)
            && socket.local_addr().ok() == Some(server_addr)
        {
            found = Some(socket.nodelay().unwrap());
            break;
        }
    }
    assert_eq!(found, Some(true), "the accepted socket's TCP_NODELAY");
}
