//! Property-based fuzzing of the whole API with schemathesis, from `/openapi.json`,
//! against a running Bulkhead on Postgres, authenticated as the bootstrap admin so the
//! authenticated and admin routes are exercised too. Checks: no 5xx
//! (`not_a_server_error`), every answer matches its documented schema and status.
//! Bounded: a fixed number of examples per operation, a fixed seed, and a time limit.

use std::process::Command;
use std::time::Duration;

use crate::helpers::tools::{output_text, run_bounded, TempDir};
use crate::helpers::{spawn_app_with, StoreKind};

/// Examples per operation: enough to find the bad-input 500s, cheap enough for CI.
const MAX_EXAMPLES: &str = "20";
const TIME_LIMIT: Duration = Duration::from_secs(300);

#[actix_web::test]
async fn schemathesis_finds_no_server_errors_and_no_schema_violations() {
    let app = spawn_app_with(StoreKind::Postgres, |c| {
        // The fuzzer is one caller sending many requests: limits would answer most of
        // them with 429 and leave the handlers unexercised.
        c.rate_limits.enabled = false;
    })
    .await;
    let admin = app.admin().await;
    // Its working directory is a temporary one: schemathesis keeps a cache there.
    let workdir = TempDir::new("bulkhead-schemathesis");
    let mut cmd = Command::new("schemathesis");
    cmd.current_dir(&workdir.0)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "20240601",
            "--request-timeout",
            "10",
            "--workers",
            "1",
            "--no-color",
            // Schemathesis reuses ids it saw in responses, so these two would delete or
            // deactivate the admin it runs as (both allowed), and every later request
            // would be a 401. Their handlers are covered by tests/api/users_*.rs.
            "--exclude-operation-id",
            "delete_user",
            "--exclude-operation-id",
            "set_user_status",
        ])
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", admin.token))
        .env("SCHEMATHESIS_TELEMETRY", "false");
    let out = actix_web::rt::task::spawn_blocking(move || {
        run_bounded(cmd, TIME_LIMIT, "pip install schemathesis (.ci/run does)")
    })
    .await
    .expect("schemathesis runner");
    let text = output_text(&out);
    // The summary goes to the test log (`--nocapture`), to see what was covered.
    eprintln!("{text}");
    assert!(
        text.contains("API Operations"),
        "schemathesis did not run its tests:\n{text}"
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{}",
        output_text(&out)
    );
}
