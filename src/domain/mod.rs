//! Domain types: parsed, validated values the store and the services work with.
//! Parse, don't validate: a value of these types is valid by construction.

pub mod order;
pub mod precondition;
pub mod product;
pub mod rule;
pub mod text;
pub mod time;
pub mod token;
pub mod user;
