//! A broken value rule, as the domain parsers report it. The HTTP layer turns each into one
//! entry of a 422 problem's `errors`, naming the field.

/// One rule a value broke: a stable snake_case `code` and a human `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: &'static str,
    pub message: String,
}

impl Violation {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Whether `s` holds a control character (C0, DEL, C1), optionally allowing line breaks
/// and tabs, which free text such as a description may carry.
pub fn has_control(s: &str, allow_whitespace_controls: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_whitespace_controls && matches!(c, '\n' | '\r' | '\t')))
}
