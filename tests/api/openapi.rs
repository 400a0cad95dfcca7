//! `GET /openapi.json`: valid OpenAPI 3.1 (checked by `openapi-spec-validator`), and
//! exactly the routes the app serves: the document's `(path, method)` pairs equal those
//! registered through `http::resource` (so a route added without documentation fails
//! here), and a request to each documented operation is routed (never 405, never 5xx).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use bulkhead::error::ErrorCode;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{spawn_app, StoreKind, TestApp};
use crate::tools::{output_text, run_bounded, TempDir};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn fetch_document(app: &TestApp) -> Value {
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("ratelimit").is_none(),
        "/openapi.json is not rate limited"
    );
    let doc: Value = res.json().await.expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    doc
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.push((path.clone(), method.to_string(), op.clone()));
            }
        }
    }
    ops
}

#[actix_web::test]
async fn documents_exactly_the_served_routes() {
    let app = spawn_app(StoreKind::Memory).await;
    let doc = fetch_document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    let served: BTreeSet<(String, String)> = bulkhead::http::served_routes().into_iter().collect();
    assert!(!served.is_empty(), "the app registered no routes");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes served but not in /openapi.json: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "routes in /openapi.json the app does not serve: {unserved:?}"
    );

    // Black box: each documented operation is routed to a handler, not refused as a
    // method the resource does not serve.
    let admin = app.admin().await;
    let id = uuid::Uuid::new_v4().to_string();
    for (path, method, _) in operations(&doc) {
        let concrete = path.replace("{id}", &id);
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = app.authed(m, &concrete, &admin.token).send().await.unwrap();
        assert_ne!(res.status(), 405, "{method} {path} is documented but 405");
        assert!(
            res.status().as_u16() < 500,
            "{method} {path}: {}",
            res.status()
        );
    }
}

#[actix_web::test]
async fn every_operation_lists_its_errors_and_every_code_is_documented() {
    let app = spawn_app(StoreKind::Memory).await;
    let doc = fetch_document(&app).await;
    let schema_codes: BTreeSet<&str> = doc["components"]["schemas"]["Problem"]["properties"]
        ["code"]["enum"]
        .as_array()
        .expect("Problem.code enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let all: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(schema_codes, all, "Problem.code is ErrorCode::ALL");

    let mut answered = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"].as_str().expect("operationId").to_string();
        assert!(ids.insert(id.clone()), "duplicate operationId {id}");
        let responses = op["responses"].as_object().expect("responses");
        let mut has_problem = false;
        for (status, response) in responses {
            let Some(schema) = response["content"]["application/problem+json"].get("schema") else {
                continue;
            };
            has_problem = true;
            for code in schema["allOf"][1]["properties"]["code"]["enum"]
                .as_array()
                .expect("codes of a problem response")
            {
                let code = code.as_str().unwrap();
                let known = ErrorCode::ALL
                    .iter()
                    .find(|c| c.as_str() == code)
                    .unwrap_or_else(|| panic!("unknown code {code}"));
                assert_eq!(known.status().as_str(), status, "{code} under {status}");
                answered.insert(code.to_string());
            }
        }
        if path.starts_with("/api/") && method != "head" {
            assert!(has_problem, "{method} {path} lists no problem responses");
            assert!(op["security"].is_array(), "{method} {path} has no security");
        }
    }
    for code in ErrorCode::ALL {
        // 405 is an answer of a path to the methods it does not document, no operation's.
        if *code != ErrorCode::MethodNotAllowed {
            assert!(
                answered.contains(code.as_str()),
                "no operation answers {}",
                code.as_str()
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["bearerFormat"],
        "JWT"
    );
}

#[actix_web::test]
async fn the_document_passes_a_real_validator() {
    let app = spawn_app(StoreKind::Memory).await;
    let doc = fetch_document(&app).await;
    let dir = TempDir::new("bulkhead-openapi");
    let file = dir.path("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "openapi_spec_validator"]).arg(&file);
    let out = run_bounded(
        cmd,
        Duration::from_secs(60),
        "pip install openapi-spec-validator (.ci/run does)",
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator refused /openapi.json:\n{}",
        output_text(&out)
    );
    assert!(
        output_text(&out).contains("OK"),
        "unexpected validator output: {}",
        output_text(&out)
    );
}
