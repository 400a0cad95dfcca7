//! The one validation collector: every rule a request breaks, answered together.
//!
//! Domain parsers report a broken rule as a [`Violation`]; a handler checks each field
//! with [`Rules::check`] (or records one with [`Rules::push`]), keeps the parsed values,
//! and [`Rules::finish`] answers 422 `validation_failed` naming every field at fault.

use crate::domain::rule::Violation;
use crate::error::{ApiError, FieldError};

/// Every rule a request breaks, answered together in one 422.
#[derive(Default)]
pub struct Rules(Vec<FieldError>);

impl Rules {
    /// Keep the parsed value, or record why `field` is refused.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, Violation>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(v) => {
                self.push(field, v);
                None
            }
        }
    }

    pub fn push(&mut self, field: &str, v: Violation) {
        self.0.push(FieldError::new(field, v.code, v.message));
    }

    /// 422 `validation_failed` listing every violation, if there is any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}
