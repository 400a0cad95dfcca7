//! Why configuration could not be loaded, naming the key at fault.

/// Why configuration could not be loaded; the message names the key and the source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("{0}")]
    Parse(String),
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// Nested validators start their message with the field at fault ("quota must be ...");
/// prefix the section so the key is whole.
pub(super) fn invalid(section: &str, message: String) -> ConfigError {
    let first = message.split([' ', ':']).next().unwrap_or("");
    let is_field = !first.is_empty()
        && first
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    let key = match first.rsplit('.').next() {
        Some(field) if is_field && !field.is_empty() => format!("{section}.{field}"),
        _ => section.to_string(),
    };
    ConfigError::Invalid { key, message }
}
