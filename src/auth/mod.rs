//! Credentials: JWT access tokens, argon2id password hashes, opaque refresh tokens.
//! No HTTP here; `http::middleware::authenticate` maps failures to responses.

pub mod jwt;
pub mod password;
pub mod refresh;
