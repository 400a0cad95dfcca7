//! The one way a route is registered.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::http::middleware::request::RouteLabel;

/// A resource that answers 405 with `Allow` for the methods it does not route, and that
/// names its route template for metrics and the access log without an allocation.
///
/// Every route is registered through here, and here only: `allow` is the list of methods
/// it serves, recorded in [`served_routes`] so the OpenAPI test can compare the document
/// with what the app really serves.
pub fn resource(path: &'static str, allow: &'static str) -> actix_web::Resource {
    served_routes_table()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(path, allow);
    web::resource(path)
        .app_data(RouteLabel(path))
        .default_service(web::to(move || async move {
            Err::<HttpResponse, _>(ApiError::method_not_allowed(allow))
        }))
}

fn served_routes_table() -> &'static Mutex<BTreeMap<&'static str, &'static str>> {
    static ROUTES: OnceLock<Mutex<BTreeMap<&'static str, &'static str>>> = OnceLock::new();
    ROUTES.get_or_init(Mutex::default)
}

/// Every `(path template, method)` an app built in this process serves, as registered
/// through [`resource`] (empty until `http::app` has run once).
pub fn served_routes() -> Vec<(String, String)> {
    let table = served_routes_table()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    table
        .iter()
        .flat_map(|(path, allow)| {
            allow
                .split(',')
                .map(|m| (path.to_string(), m.trim().to_ascii_lowercase()))
        })
        .collect()
}
