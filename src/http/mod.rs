//! The HTTP surface: the only place that knows actix-web, builds responses and turns
//! errors into problem+json. Three rooms:
//!
//! - [`middleware`]: what wraps every request (request id and problem rendering, CORS,
//!   compression, authentication, rate limits), in the order `app.rs` stacks them.
//! - [`support`]: request and response helpers handlers share: extractors (JSON body,
//!   caller, admin), the validation collector, ETags and conditional answers, pagination,
//!   and the problem rendering.
//! - [`routes`]: the handlers, one file per resource (users in a folder), each with its
//!   OpenAPI description; `routes::resource` registers every route.
//!
//! `app.rs` builds the application for one worker; `state.rs` is what every worker
//! shares.

mod app;
pub mod middleware;
pub mod routes;
mod state;
pub mod support;

pub use app::app;
pub use routes::resource::served_routes;
pub use state::{AppState, Lifecycle};
