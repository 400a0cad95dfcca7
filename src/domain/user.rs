//! Users: roles, statuses, the stored record, and the parsed values of user input.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::rule::Violation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Deactivated,
    Suspended,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Deactivated => "deactivated",
            UserStatus::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UserStatus::Active),
            "deactivated" => Some(UserStatus::Deactivated),
            "suspended" => Some(UserStatus::Suspended),
            _ => None,
        }
    }

    /// The allowed transitions: active->deactivated, active->suspended,
    /// deactivated->active, suspended->deactivated. Staying put is not a transition.
    pub fn can_become(self, to: UserStatus) -> bool {
        use UserStatus::{Active, Deactivated, Suspended};
        matches!(
            (self, to),
            (Active, Deactivated)
                | (Active, Suspended)
                | (Deactivated, Active)
                | (Suspended, Deactivated)
        )
    }
}

/// A stored, live (not deleted) user. `password_hash` never leaves the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub status: UserStatus,
    /// Bumped on every write; the ETag derives from it.
    pub version: i64,
    /// Bumped by a change of password, email or role: access tokens issued at a lower
    /// epoch no longer authenticate (see `http::middleware::authenticate`).
    pub token_epoch: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The public representation of a user: never a password or hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserView<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub status: UserStatus,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(u: &'a User) -> Self {
        Self {
            id: u.id,
            email: &u.email,
            name: &u.name,
            role: u.role,
            status: u.status,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// What creating a user needs: parsed values (the email normalised) and the password
/// already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub name: UserName,
    pub password_hash: String,
    pub role: Role,
}

/// The changes of a user update (`PATCH`): `None` leaves the field as it is. Parsed
/// values; the password already hashed.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub name: Option<UserName>,
    pub email: Option<Email>,
    pub password_hash: Option<String>,
}

impl UserChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.password_hash.is_none()
    }

    /// Whether applying these changes to a user whose email is `current_email` changes
    /// its credentials (a new password, or an email that really differs): such a write
    /// bumps the token epoch and revokes the user's refresh tokens.
    pub fn changes_credentials(&self, current_email: &str) -> bool {
        self.password_hash.is_some()
            || self
                .email
                .as_ref()
                .is_some_and(|e| e.as_str() != current_email)
    }
}

/// Timestamps are kept at microsecond precision, as Postgres stores them, so both
/// stores answer the same values.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// A normalised email: trimmed, lower-cased, at most 254 characters, `local@domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(Violation::new("required", "must not be empty"));
        }
        if email.chars().count() > 254 {
            return Err(Violation::new("too_long", "must be at most 254 characters"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(Violation::new("format", "must be an email address"));
        };
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '@';
        let domain_ok = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local.is_empty() || local.len() > 64 || local.chars().any(bad_char) || !domain_ok {
            return Err(Violation::new("format", "must be an email address"));
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A display name: 1..=100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 {
            return Err(Violation::new("required", "must not be empty"));
        }
        if len > 100 {
            return Err(Violation::new("too_long", "must be at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(Violation::new(
                "format",
                "must not contain control characters",
            ));
        }
        Ok(UserName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A password as given: 8..=128 characters. Never logged (no `Debug` of the value).
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let len = raw.chars().count();
        if len < 8 {
            return Err(Violation::new("too_short", "must be at least 8 characters"));
        }
        if len > 128 {
            return Err(Violation::new("too_long", "must be at most 128 characters"));
        }
        Ok(Password(raw.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "   ",
            "no-at",
            "@example.com",
            "a@",
            "a@b",
            "a b@c.d",
            "a@-b.com",
            "a@b..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long).unwrap_err().code, "too_long");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::parse("  Ada  ").unwrap().into_inner(), "Ada");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"x".repeat(101)).is_err());
        assert!(UserName::parse(&"é".repeat(100)).is_ok());
        assert!(UserName::parse("a\u{7}b").is_err());
    }

    #[test]
    fn only_the_listed_transitions_are_allowed() {
        use UserStatus::{Active, Deactivated, Suspended};
        let all = [Active, Deactivated, Suspended];
        let allowed = [
            (Active, Deactivated),
            (Active, Suspended),
            (Deactivated, Active),
            (Suspended, Deactivated),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?}->{to:?}"
                );
            }
        }
    }

    #[test]
    fn passwords_are_bounded_in_characters() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"p".repeat(128)).is_ok());
        assert!(Password::parse(&"p".repeat(129)).is_err());
        assert!(!format!("{:?}", Password::parse("secret-pass").unwrap()).contains("secret"));
    }
}
