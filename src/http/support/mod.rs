//! Request and response helpers every handler shares.
//!
//! - `extract.rs`: the JSON body extractor and the query/path error handlers, answering
//!   400/413/415 exactly as the contract says.
//! - `caller.rs`: the authenticated [`caller::Caller`] (set by the authentication
//!   middleware) and the extractors that require one (`Caller`, `Admin`) or not
//!   (`MaybeCaller`).
//! - `rules.rs`: [`rules::Rules`], the one validation collector: every broken rule of a
//!   request, from the domain parsers' `Violation`s, in one 422.
//! - `query.rs`: refusing unknown query parameters.
//! - `integral.rs`: [`integral::Integral`], an integer body member written `3` or `3.0`.
//! - `etag.rs`: ETags on responses, 304 for `If-None-Match`, `If-Match` parsed into the
//!   domain's precondition.
//! - `pagination.rs`: `?limit=`, keyset cursors and the page envelope.
//! - `problem.rs`: rendering `ApiError` as problem+json.

pub mod caller;
pub mod etag;
pub mod extract;
pub mod integral;
pub mod pagination;
pub mod problem;
pub mod query;
pub mod rules;
