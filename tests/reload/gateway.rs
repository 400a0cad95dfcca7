//! Gateway routes replaced by a reload, with real upstreams and a request in flight.

use super::upstream::{Mode, Upstream};
use super::*;

const GATEWAY: &str = "[gateway]\nidentity_secret = \"gateway-identity-secret-0123456789abcdef\"\n\
    [gateway.upstream.circuit]\nminimum_calls = 2\nwindow_size = 2\nopen_wait_ms = 600000\n";

fn route(name: &str, upstream: &Upstream) -> String {
    format!(
        "[[gateway.routes]]\nname = \"{name}\"\nprefix = \"/api/v1/{name}\"\n\
         upstreams = [\"{}\"]\nauth = \"optional\"\nretries = 0\n",
        upstream.url
    )
}

/// The reload starts the new table, then serves it: new requests take the new routes, a
/// request in flight finishes on its old route, an unchanged route keeps its circuit
/// (still open, its upstream not asked), and an invalid route rejects the whole reload
/// naming its key.
#[test]
fn sighup_replaces_gateway_routes_and_requests_in_flight_finish() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt.block_on(Upstream::start(Mode::Held));
    let echo = rt.block_on(Upstream::start(Mode::Echo));
    let failing = rt.block_on(Upstream::start(Mode::Status(500)));
    let server = Server::start(
        "gateway",
        &format!(
            "{LOGGING}{GATEWAY}{}{}",
            route("items", &held),
            route("kept", &failing)
        ),
    );

    // The unchanged route's circuit opens on its failing upstream.
    let kept = server.url("/api/v1/kept/x");
    let mut opened = false;
    for _ in 0..10 {
        let (status, body) = get(&kept);
        if status == 503 && body.contains("dependency_unavailable") {
            opened = true;
            break;
        }
        assert_eq!(status, 500, "the upstream's own answer: {body}");
    }
    assert!(opened, "the kept route's circuit never opened");
    let failing_hits = failing.hits();

    // A request in flight on the route about to change.
    let in_flight = std::thread::spawn({
        let url = server.url("/api/v1/items/x");
        move || get(&url)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.hits() == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached its upstream"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    server.reload(&format!(
        "{LOGGING}{GATEWAY}{}{}{}",
        route("items", &echo),
        route("kept", &failing),
        route("added", &echo)
    ));
    server.await_metric("bulkhead_config_reloads_total{outcome=\"applied\"}", 1.0);
    assert!(
        !in_flight.is_finished(),
        "the held request cannot have finished"
    );

    // New requests take the new table.
    for path in ["/api/v1/items/x", "/api/v1/added/y"] {
        let (status, body) = get(&server.url(path));
        assert_eq!(status, 200, "{path}: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["path"], path, "{path} reached the echo");
    }
    let (status, body) = get(&kept);
    assert_eq!(
        status, 503,
        "the kept route's circuit is still open: {body}"
    );
    assert!(body.contains("dependency_unavailable"), "{body}");
    assert_eq!(
        failing.hits(),
        failing_hits,
        "an open circuit asks no upstream"
    );

    // The request in flight finishes on its old route.
    held.release(1);
    let (status, body) = in_flight.join().unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"held":true}"#));
    assert_eq!(held.hits(), 1);

    // An invalid route rejects the whole reload, naming the key; the table stays.
    server.reload(&format!(
        "{LOGGING}{GATEWAY}{}{}[[gateway.routes]]\nname = \"Bad Name\"\nprefix = \"/api/v1/bad\"\n\
         upstreams = [\"{}\"]\n",
        route("items", &held),
        route("kept", &failing),
        echo.url
    ));
    server.await_metric("bulkhead_config_reloads_total{outcome=\"rejected\"}", 1.0);
    assert!(
        server.log_text().contains("gateway.routes[2].name"),
        "the log names the key: {}",
        server.log_text()
    );
    let (status, body) = get(&server.url("/api/v1/added/z"));
    assert_eq!(status, 200, "the running table stays: {body}");
    let (status, body) = get(&server.url("/api/v1/items/x"));
    assert!(
        status == 200 && body.contains("\"path\""),
        "still the echo: {body}"
    );
}
