//! States in the document the rules the server enforces, so a client generated from it
//! sends nothing the server refuses for its form: lengths, patterns, ranges, enums,
//! `minItems`, and which patch members may not be `null`. Applied to the generated
//! document after [`super::problems::complete`]; each rule mirrors a parser of
//! `src/domain` or `src/http` (named beside it). Refusals that depend on state (an
//! unknown or forged cursor, a stale `If-Match`, a wrong current password, an unknown
//! product) cannot be stated here.

use serde_json::{json, Map, Value};

/// No control character (`char::is_control`: Cc), and at least one character that is
/// neither whitespace nor control: what is left after trimming is not empty.
/// `UserName::parse`, `ProductName::parse`.
const TRIMMED_TEXT: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// Control characters other than line breaks and tabs. `Description::parse`.
const DESCRIPTION: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";

/// An address `Email::parse` accepts, as a client should send it (lower case; the server
/// also lower-cases and trims).
const EMAIL: &str = "^[a-z0-9._%+-]{1,64}@[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$";

/// `MAX_PRICE_CENTS`, `MAX_STOCK`.
const MAX_AMOUNT: i64 = 1_000_000_000_000;

fn email() -> Value {
    json!({"type": "string", "minLength": 3, "maxLength": 254, "pattern": EMAIL})
}

fn text(max: u32) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": TRIMMED_TEXT})
}

fn password() -> Value {
    json!({"type": "string", "minLength": 8, "maxLength": 128})
}

fn amount() -> Value {
    json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_AMOUNT})
}

fn description() -> Value {
    json!({"type": ["string", "null"], "maxLength": 2000, "pattern": DESCRIPTION})
}

fn product_fields() -> Vec<(&'static str, Value)> {
    vec![
        (
            "sku",
            json!({"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}),
        ),
        ("name", text(200)),
        ("description", description()),
        ("price_cents", amount()),
        (
            "currency",
            json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
        ),
        ("stock", amount()),
    ]
}

/// The body schemas' members, by schema name. Patch members are not nullable but
/// `description` (`null` resets it); absent is still allowed.
fn schema_rules() -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
    vec![
        (
            "CreateUser",
            vec![
                ("email", email()),
                ("name", text(100)),
                ("password", password()),
            ],
        ),
        (
            "UserPatch",
            vec![
                ("email", email()),
                ("name", text(100)),
                ("password", password()),
                ("current_password", json!({"type": "string"})),
            ],
        ),
        (
            "StatusChange",
            vec![(
                "status",
                json!({"type": "string", "enum": ["active", "deactivated", "suspended"]}),
            )],
        ),
        ("ProductBody", product_fields()),
        ("PatchBody", product_fields()),
        (
            "CreateOrder",
            vec![(
                "items",
                json!({"type": "array", "minItems": 1, "maxItems": 100,
                       "items": {"$ref": "#/components/schemas/ItemBody"}}),
            )],
        ),
        (
            "ItemBody",
            vec![
                ("product_id", json!({"type": "string", "format": "uuid"})),
                (
                    "quantity",
                    json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": 1000}),
                ),
            ],
        ),
    ]
}

fn sorts(path: &str) -> Option<Value> {
    match path {
        "/api/v1/products" => Some(json!([
            "created_at",
            "-created_at",
            "price_cents",
            "-price_cents",
            "name",
            "-name"
        ])),
        "/api/v1/users" => Some(json!(["created_at", "-created_at", "name", "-name"])),
        _ => None,
    }
}

fn statuses(path: &str) -> Option<Value> {
    match path {
        "/api/v1/orders" => Some(json!(["pending", "paid", "cancelled"])),
        "/api/v1/users" => Some(json!(["active", "deactivated", "suspended"])),
        _ => None,
    }
}

/// The rule of a query or header parameter of `path`, if it has one.
fn parameter_rule(path: &str, name: &str) -> Option<Value> {
    let member = "(id|email|name|role|status|created_at|updated_at)";
    Some(match name {
        // `pagination`: a cursor is never empty; whether it is one of ours is state.
        "cursor" => json!({"type": "string", "minLength": 1}),
        "status" => json!({"type": "string", "enum": statuses(path)?}),
        "role" => json!({"type": "string", "enum": ["user", "admin"]}),
        "sort" => json!({"type": "string", "enum": sorts(path)?}),
        // `users::admin::parse_fields`: known members, comma-separated.
        "fields" => json!({"type": "string", "pattern": format!("^{member}(,{member})*$")}),
        // `list_query`: empty is no filter; longer than `MAX_Q_CHARS` is refused.
        "q" => json!({"type": "string", "maxLength": 200}),
        // `IdempotencyKey::parse`: 1..=255 printable ASCII characters (no space at either
        // end: HTTP drops it).
        "Idempotency-Key" => json!({"type": "string", "minLength": 1, "maxLength": 255,
            "pattern": "^[\\x21-\\x7E]([\\x20-\\x7E]*[\\x21-\\x7E])?$"}),
        // Any value is accepted: one that is not 1-128 of `A-Za-z0-9._-` is replaced by
        // a generated id, not refused.
        "X-Request-Id" => json!({"type": "string"}),
        _ => return None,
    })
}

/// Put the rules into `doc`.
pub fn state(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    for (schema, members) in schema_rules() {
        let Some(properties) = schemas[schema]["properties"].as_object_mut() else {
            continue;
        };
        for (name, rule) in members {
            if let Some(p) = properties.get_mut(name) {
                merge(p, rule);
            }
        }
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(parameters) = op["parameters"].as_array_mut() else {
                continue;
            };
            for parameter in parameters {
                let name = parameter["name"].as_str().unwrap_or_default().to_string();
                if parameter["in"] == "path" {
                    continue;
                }
                if let Some(rule) = parameter_rule(path, &name) {
                    parameter["schema"] = rule;
                }
            }
        }
    }
}

/// Replace `target`'s type and constraints with `rule`'s, keeping its description.
fn merge(target: &mut Value, rule: Value) {
    let description = target.get("description").cloned();
    let mut rule: Map<String, Value> = match rule {
        Value::Object(m) => m,
        _ => return,
    };
    if let Some(d) = description {
        rule.insert("description".into(), d);
    }
    *target = Value::Object(rule);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_schema_and_member_exists() {
        let doc = super::super::document();
        for (schema, members) in schema_rules() {
            for (name, _) in members {
                assert!(
                    doc["components"]["schemas"][schema]["properties"][name].is_object(),
                    "{schema}.{name}"
                );
            }
        }
        let pattern = doc["components"]["schemas"]["ProductBody"]["properties"]["description"]
            ["pattern"]
            .as_str()
            .unwrap();
        assert_eq!(pattern, DESCRIPTION);
    }
}
