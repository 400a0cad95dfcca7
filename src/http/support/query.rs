//! Query strings: parameters a listing does not know are refused, so a misspelt filter
//! never silently lists everything.

use std::collections::HashMap;

use crate::error::ApiError;

/// 400 `invalid_parameter` for the first parameter that is not in `known`.
pub fn only_known(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<&String> = params
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    unknown.sort();
    match unknown.first() {
        Some(name) => Err(ApiError::invalid_parameter(
            name,
            format!("unknown parameter; known: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}
