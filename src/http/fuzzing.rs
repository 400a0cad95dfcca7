//! The request parsers as handlers run them, without a server: entry points for the fuzz
//! targets (`fuzz/`). Each returns the parser's answer and panics when a value it
//! accepted breaks a rule every store relies on (no NUL in text, times of years
//! 1..=9999): the fuzzer reports a panic as a finding.

use std::collections::HashMap;

use super::support::extract::parse_object;
use super::support::pagination::{parse_limit, Cursor};
use crate::domain::product::SortValue;
use crate::domain::text::{storable, storable_time};
use crate::error::ApiError;

fn assert_storable(s: &str) {
    assert!(storable(s), "accepted text that no store can hold: {s:?}");
}

/// `GET /api/v1/products`' query string.
pub fn product_list_query(query: &str) -> Result<(), ApiError> {
    // As the handler's extractor parses it.
    let params = actix_web::web::Query::<HashMap<String, String>>::from_query(query)
        .map_err(|e| ApiError::invalid_parameter("query", e.to_string()))?;
    let q = super::routes::products::list_query(&params)?;
    if let Some(text) = &q.q {
        assert_storable(text);
    }
    match q.after {
        Some((SortValue::Text(t), _)) => assert_storable(&t),
        Some((SortValue::Time(t), _)) => assert!(storable_time(&t), "accepted time {t}"),
        _ => {}
    }
    Ok(())
}

/// A `?cursor=` for `sort`, and `?limit=`: a decoded cursor encodes back to itself.
pub fn cursor(raw: &str, sort: &str) -> Result<(), ApiError> {
    let _ = parse_limit(Some(raw));
    let c = Cursor::decode(raw, sort)?;
    let again = Cursor::decode(&c.encode(), sort).expect("an encoded cursor decodes");
    assert_eq!(again, c);
    Ok(())
}

/// The JSON bodies of `POST /api/v1/orders`, products (POST/PUT and PATCH) and users
/// (POST and PATCH), each parsed into its domain values.
pub fn json_bodies(body: &[u8]) {
    if let Ok(order) = parse_object::<super::routes::orders::CreateOrder>(body) {
        let _ = order.parse();
    }
    if let Ok(p) = parse_object::<super::routes::products::ProductBody>(body) {
        if let Ok(p) = p.parse() {
            for s in [
                p.sku.as_str(),
                p.name.as_str(),
                p.description.as_str(),
                p.currency.as_str(),
            ] {
                assert_storable(s);
            }
        }
    }
    if let Ok(p) = parse_object::<super::routes::products::PatchBody>(body) {
        if let Ok(c) = p.parse() {
            let texts = [
                c.sku.as_ref().map(|v| v.as_str()),
                c.name.as_ref().map(|v| v.as_str()),
                c.description.as_ref().map(|v| v.as_str()),
                c.currency.as_ref().map(|v| v.as_str()),
            ];
            texts.into_iter().flatten().for_each(assert_storable);
        }
    }
    if let Ok(u) = parse_object::<Registration>(body) {
        if let Ok(email) = crate::domain::user::Email::parse(&u.email) {
            assert_storable(email.as_str());
        }
        if let Ok(name) = crate::domain::user::UserName::parse(&u.name) {
            assert_storable(&name.into_inner());
        }
        let _ = crate::domain::user::Password::parse(&u.password);
    }
}

/// The registration body (`POST /api/v1/users`), as its handler reads it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    email: String,
    name: String,
    password: String,
}
