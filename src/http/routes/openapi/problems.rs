//! Completes the generated document with what operations share, so no handler repeats
//! it: the `Problem` schema (its `code` enum is `ErrorCode::ALL`), every operation's error
//! answers (the codes of [`specific_codes`] plus the shared ones, grouped by status), the
//! bearer-JWT security scheme, `X-Request-Id` on every request and response, and the
//! rate-limit headers on every `/api/` response.

use serde_json::{json, Map, Value};

use crate::error::ErrorCode;
use crate::http::support::problem::PROBLEM_JSON;
use ErrorCode::*;

/// The codes an operation answers beyond the shared ones of [`shared_codes`]; `None` for
/// an operation nobody listed (a unit test refuses that).
pub fn specific_codes(operation_id: &str) -> Option<&'static [ErrorCode]> {
    Some(match operation_id {
        "health" | "ready" | "metrics" | "openapi" => &[],
        "create_user" => &[ValidationFailed, DuplicateEmail],
        "list_users" => &[Forbidden],
        "get_me" | "get_user" => &[],
        "update_user" => &[
            ValidationFailed,
            DuplicateEmail,
            PreconditionFailed,
            InvalidCredentials,
        ],
        "delete_user" => &[PreconditionFailed],
        "set_user_status" => &[Forbidden, ValidationFailed, InvalidTransition],
        "issue_token" => &[InvalidCredentials],
        "refresh_token" => &[RefreshTokenReused],
        "logout" => &[],
        "create_product" => &[Forbidden, ValidationFailed, DuplicateSku],
        "list_products" => &[],
        "get_product" => &[],
        "replace_product" | "update_product" => &[
            Forbidden,
            ValidationFailed,
            DuplicateSku,
            PreconditionFailed,
        ],
        "delete_product" => &[Forbidden, PreconditionFailed],
        "create_order" => &[
            IdempotencyKeyMissing,
            InvalidParameter,
            ValidationFailed,
            IdempotencyKeyMismatch,
            IdempotencyKeyInUse,
            InsufficientStock,
        ],
        "list_orders" => &[Forbidden],
        "get_order" => &[],
        "cancel_order" => &[InvalidTransition],
        // A failing part is listed in the document's `errors`, never the answer's status.
        "get_overview" => &[],
        _ => return None,
    })
}

/// Codes every operation of its kind can answer.
fn shared_codes(path: &str, op: &Value) -> Vec<ErrorCode> {
    let mut codes = Vec::new();
    if path.starts_with("/api/") {
        // Any request with an `Authorization` header is authenticated, open routes too.
        codes.extend([Unauthenticated, AccountInactive, RateLimited]);
        codes.extend([Internal, Overloaded, DependencyUnavailable]);
    }
    if op.get("requestBody").is_some() {
        codes.extend([
            MalformedRequest,
            RequestTimeout,
            PayloadTooLarge,
            UnsupportedMediaType,
        ]);
    }
    if path.contains('{') {
        codes.push(NotFound);
    }
    let has_query = op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    if has_query {
        codes.push(InvalidParameter);
    }
    codes
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn string_header(description: &str) -> Value {
    json!({"description": description, "schema": {"type": "string"}})
}

fn integer_header(description: &str) -> Value {
    json!({"description": description, "schema": {"type": "integer", "minimum": 0}})
}

fn ratelimit_headers() -> Vec<(&'static str, Value)> {
    vec![
        (
            "RateLimit-Policy",
            string_header("The policy applied (IETF httpapi draft), e.g. `\"user\";q=100;w=60`"),
        ),
        (
            "RateLimit",
            string_header(
                "What is left of the quota (IETF httpapi draft), e.g. `\"user\";r=99;t=60`",
            ),
        ),
        (
            "X-RateLimit-Limit",
            integer_header("Requests allowed per window"),
        ),
        (
            "X-RateLimit-Remaining",
            integer_header("Requests left in this window"),
        ),
        (
            "X-RateLimit-Reset",
            integer_header("Seconds until the window resets"),
        ),
    ]
}

/// The `Problem` and `FieldError` schemas, the security scheme, and every operation's
/// errors and shared headers.
pub fn complete(doc: &mut Value) {
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    if let Some(components) = components {
        components["schemas"]["Problem"] = problem_schema();
        components["schemas"]["FieldError"] = field_error_schema();
        components["securitySchemes"]["bearer"] = json!({
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from `POST /api/v1/auth/token`",
        });
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            if let Some(op) = item.get_mut(method) {
                complete_operation(path, method, op);
            }
        }
    }
}

fn complete_operation(path: &str, method: &str, op: &mut Value) {
    let id = op["operationId"].as_str().unwrap_or_default().to_string();
    let mut codes: Vec<ErrorCode> = specific_codes(&id).unwrap_or_default().to_vec();
    for code in shared_codes(path, op) {
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let mut by_status: std::collections::BTreeMap<u16, Vec<ErrorCode>> = Default::default();
    for code in codes {
        by_status
            .entry(code.status().as_u16())
            .or_default()
            .push(code);
    }
    let responses = &mut op["responses"];
    for (status, codes) in by_status {
        responses[status.to_string()] = problem_response(&codes);
    }
    let api = path.starts_with("/api/");
    if let Some(responses) = responses.as_object_mut() {
        for response in responses.values_mut() {
            let headers = &mut response["headers"];
            headers["X-Request-Id"] = string_header("The request's id (echoed when valid)");
            if api {
                for (name, header) in ratelimit_headers() {
                    headers[name] = header;
                }
            }
            if method == "head" {
                // A HEAD answer has the GET answer's headers and no body.
                if let Some(r) = response.as_object_mut() {
                    r.remove("content");
                }
            }
        }
    }
    let parameters = op
        .as_object_mut()
        .map(|o| o.entry("parameters").or_insert_with(|| json!([])));
    if let Some(Value::Array(parameters)) = parameters {
        parameters.push(json!({
            "name": "X-Request-Id",
            "in": "header",
            "required": false,
            "description": "Your id for this request (1-128 of `A-Za-z0-9._-`); echoed \
                            back, otherwise one is generated",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
        }));
    }
    if method == "head" {
        op["operationId"] = Value::String(format!("{id}_head"));
    }
}

fn problem_response(codes: &[ErrorCode]) -> Value {
    let listed: Vec<String> = codes
        .iter()
        .map(|c| format!("`{}` ({})", c.as_str(), c.title()))
        .collect();
    let mut headers = Map::new();
    if codes.contains(&Unauthenticated) {
        headers.insert(
            "WWW-Authenticate".into(),
            string_header("`Bearer realm=\"bulkhead\"`"),
        );
    }
    if codes
        .iter()
        .any(|c| matches!(c, RateLimited | Overloaded | DependencyUnavailable))
    {
        headers.insert(
            "Retry-After".into(),
            integer_header("Seconds to wait before retrying"),
        );
    }
    let enum_: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    json!({
        "description": listed.join("; "),
        "headers": headers,
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Problem"},
                        {"type": "object", "properties": {"code": {"enum": enum_}}},
                    ]
                }
            }
        }
    })
}

fn problem_schema() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let table: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|c| format!("- `{}`: {} {}", c.as_str(), c.status().as_u16(), c.title()))
        .collect();
    json!({
        "type": "object",
        "description": "An error (RFC 9457 problem details), served as `application/problem+json`.",
        "required": ["type", "title", "status", "detail", "instance", "code", "request_id"],
        "properties": {
            "type": {"type": "string", "description": "`urn:bulkhead:problem:<code>`"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "The request path"},
            "code": {
                "type": "string",
                "enum": codes,
                "description": format!("The stable code of the error:\n{}", table.join("\n")),
            },
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "The fields that break a rule (validation and parameter errors)",
                "items": {"$ref": "#/components/schemas/FieldError"},
            },
        },
    })
}

fn field_error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["field", "code", "message"],
        "properties": {
            "field": {"type": "string", "description": "The field, e.g. `email` or `items[0].quantity`"},
            "code": {"type": "string", "description": "The rule broken, e.g. `format`, `length`, `required`"},
            "message": {"type": "string"},
        },
    })
}
