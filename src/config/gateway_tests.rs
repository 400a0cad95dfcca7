//! Unit tests of the `[gateway]` section's validation.

use crate::config::Config;

const SECRET: &str = "identity_secret = \"0123456789abcdef0123456789abcdef\"\n";

fn with_route(route: &str) -> String {
    format!(
        "[gateway]\n{SECRET}[[gateway.routes]]\nname = \"reviews\"\n\
         prefix = \"/api/v1/reviews\"\nupstreams = [\"http://127.0.0.1:9000\"]\n{route}"
    )
}

fn key_of(text: &str) -> String {
    match Config::from_toml_str(text) {
        Ok(_) => "ok".into(),
        Err(crate::config::ConfigError::Invalid { key, .. }) => key,
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_route_parses_with_its_defaults() {
    let c = Config::from_toml_str(&with_route("")).unwrap();
    let r = &c.gateway.routes[0];
    assert_eq!(r.timeout_ms, 5000);
    assert_eq!(r.retries, 2);
    assert_eq!(r.auth, super::RouteAuth::Required);
    assert!(!r.strip_prefix && r.methods.is_empty());
}

#[test]
fn bad_routes_name_their_key() {
    let cases = [
        ("prefix = \"/api/v1/users/x\"\n", "gateway.routes[0].prefix"),
        ("prefix = \"/api/v1\"\n", "gateway.routes[0].prefix"),
        ("prefix = \"/reviews\"\n", "gateway.routes[0].prefix"),
        (
            "prefix = \"/api/v1/reviews/\"\n",
            "gateway.routes[0].prefix",
        ),
        ("prefix = \"/api/v1/a/../b\"\n", "gateway.routes[0].prefix"),
        ("upstreams = []\n", "gateway.routes[0].upstreams"),
        (
            "upstreams = [\"ftp://x\"]\n",
            "gateway.routes[0].upstreams[0]",
        ),
        (
            "upstreams = [\"http://x?q=1\"]\n",
            "gateway.routes[0].upstreams[0]",
        ),
        ("methods = [\"get\"]\n", "gateway.routes[0].methods"),
        ("timeout_ms = 0\n", "gateway.routes[0].timeout_ms"),
        ("name = \"Bad Name\"\n", "gateway.routes[0].name"),
        ("name = \"postgres\"\n", "gateway.routes[0].name"),
    ];
    for (line, key) in cases {
        // A later key in the same table wins over the one with_route set.
        let text = with_route("")
            .replace(&format!("{} = ", line.split(" = ").next().unwrap()), "#")
            + line;
        assert_eq!(key_of(&text), key, "{line}");
    }
}

#[test]
fn secret_is_required_with_routes_and_long_enough() {
    let text = with_route("").replace(SECRET, "");
    assert_eq!(key_of(&text), "gateway.identity_secret");
    let text = with_route("").replace(SECRET, "identity_secret = \"short\"\n");
    assert_eq!(key_of(&text), "gateway.identity_secret");
    assert_eq!(key_of("[gateway]\n"), "ok");
}

#[test]
fn overlapping_routes_and_unknown_part_routes_are_named() {
    let text = with_route("")
        + "[[gateway.routes]]\nname = \"more\"\nprefix = \"/api/v1/reviews/x\"\n\
           upstreams = [\"http://127.0.0.1:9001\"]\n";
    assert_eq!(key_of(&text), "gateway.routes[1].prefix");
    let text = with_route("")
        + "[[gateway.overview_parts]]\nname = \"r\"\nroute = \"nope\"\npath = \"/x\"\n";
    assert_eq!(key_of(&text), "gateway.overview_parts[0].route");
    let text = with_route("")
        + "[[gateway.overview_parts]]\nname = \"r\"\nroute = \"reviews\"\n\
           path = \"/u/{user_id}\"\n";
    assert_eq!(key_of(&text), "ok");
}

#[test]
fn upstream_section_is_checked() {
    let text = "[gateway.upstream]\nretry_budget_percent = -1.0\n";
    assert_eq!(key_of(text), "gateway.upstream.retry_budget_percent");
    let text = "[gateway.upstream.circuit]\nminimum_calls = 0\n";
    assert_eq!(key_of(text), "gateway.upstream.circuit.minimum_calls");
    let text = "[gateway.upstream]\nmax_concurrent = 0\n";
    assert_eq!(key_of(text), "gateway.upstream.max_concurrent");
}
