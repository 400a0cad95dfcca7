//! Property-based fuzzing of the whole API with schemathesis, from `/openapi.json`,
//! against a running Bulkhead on Postgres, authenticated as the bootstrap admin so the
//! authenticated and admin routes are exercised too. Every check (`--checks all`), in
//! both generation modes: schema-valid requests (positive) must be accepted and answered
//! as documented; schema-violating ones (negative) must be refused. So the document
//! states the rules the server enforces (`http::routes::openapi::rules`).
//! Bounded: a fixed number of examples per operation, a fixed seed, and a time limit.

use std::process::Command;
use std::time::Duration;

use crate::helpers::tools::{output_text, run_bounded, TempDir};
use crate::helpers::{spawn_app_with, StoreKind};

/// Examples per operation: enough to find the bad-input 500s, cheap enough for CI.
const MAX_EXAMPLES: &str = "20";
const TIME_LIMIT: Duration = Duration::from_secs(300);

/// The refusals of schema-valid requests that depend on state, not on the request's
/// form, so no schema can state them: `positive_data_acceptance` admits them, per
/// operation, on top of its defaults. A forged cursor (400) on the lists; a stale
/// `If-Match` (412) on product writes and the user PATCH; a missing or wrong
/// `current_password` (422, 401) when the PATCH names the caller's own account; an
/// unknown product (422) in an order.
const CONFIG: &str = r#"
[[operations]]
include-operation-id = ["list_products", "list_products_head", "list_orders", "list_orders_head", "list_users"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "400"]

[[operations]]
include-operation-id = ["replace_product", "update_product", "delete_product"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "412"]

[[operations]]
include-operation-id = "update_user"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "412", "422"]

[[operations]]
include-operation-id = "create_order"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]
"#;

/// Schemathesis reuses ids it saw in responses, so these two would delete or deactivate
/// the admin it runs as (both allowed), and every later request would be a 401. Their
/// handlers are covered by tests/api/users_*.rs.
const EXCLUDED: [&str; 2] = ["delete_user", "set_user_status"];

/// Operations whose only inputs (headers the server takes whatever their value: an
/// invalid `X-Request-Id` is replaced, `If-None-Match` is compared) cannot be made
/// schema-violating: negative mode has nothing to generate for them.
const NOTHING_TO_VIOLATE: [&str; 3] = ["get_me", "get_me_head", "get_overview"];

#[actix_web::test]
async fn schemathesis_finds_nothing_in_either_mode() {
    let app = spawn_app_with(StoreKind::Postgres, |c| {
        // The fuzzer is one caller sending many requests: limits would answer most of
        // them with 429 and leave the handlers unexercised.
        c.rate_limits.enabled = false;
    })
    .await;
    let admin = app.admin().await;
    // Its working directory is a temporary one: schemathesis keeps a cache there.
    let workdir = TempDir::new("bulkhead-schemathesis");
    let config = workdir.path("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    for mode in ["positive", "negative"] {
        let mut cmd = Command::new("schemathesis");
        cmd.current_dir(&workdir.0)
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(app.url("/openapi.json"))
            .args(["--checks", "all", "--mode", mode])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", "20240601"])
            .args(["--request-timeout", "10", "--workers", "1", "--no-color"]);
        let excluded = EXCLUDED.iter().chain(if mode == "negative" {
            &NOTHING_TO_VIOLATE[..]
        } else {
            &[]
        });
        for id in excluded {
            cmd.args(["--exclude-operation-id", id]);
        }
        cmd.arg("--header")
            .arg(format!("Authorization: Bearer {}", admin.token))
            .env("SCHEMATHESIS_TELEMETRY", "false");
        let out = actix_web::rt::task::spawn_blocking(move || {
            run_bounded(cmd, TIME_LIMIT, "pip install schemathesis (.ci/run does)")
        })
        .await
        .expect("schemathesis runner");
        let text = output_text(&out);
        // The summary goes to the test log (`--nocapture`), to see what was covered.
        eprintln!("{mode} mode:\n{text}");
        assert!(
            text.contains("API Operations"),
            "schemathesis did not run its tests ({mode}):\n{text}"
        );
        assert!(
            out.status.success(),
            "schemathesis found problems in {mode} mode:\n{text}"
        );
    }
}
