//! Middleware, outermost first (actix applies the last `wrap` outermost; `http::app`):
//! 1. [`request::middleware`]: request id, log span, problem rendering, access log; it
//!    must see every response, errors of inner layers included, so it is outermost.
//! 2. CORS: answers preflights itself, before authentication and rate limits see them.
//! 3. compression ([`compress::CompressIfAsked`]): for clients that accept it and bodies
//!    of at least `server.compress_min_bytes`. A problem's body is rendered outside it,
//!    by (1), so problem+json answers (a few hundred bytes) are never compressed.
//! 4. [`authenticate::middleware`]: the caller, before rate limiting, which keys on it.
//! 5. [`ratelimit::middleware`]: per user or per IP; innermost, so a rejected token
//!    never spends a user's quota and a limited request never reaches a handler.
//!
//! `client_ip.rs` resolves the client IP behind trusted proxies for the request context.

pub mod authenticate;
pub mod client_ip;
pub mod compress;
pub mod ratelimit;
pub mod request;
