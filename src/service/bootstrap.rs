//! The bootstrap admin (`auth.bootstrap_admin_email` / `_password`): ensured at start so
//! a fresh deployment has someone who can administer it.
//!
//! - No live user has the email: the admin is created with the configured password.
//! - The email belongs to an active admin: left as it is. Its password may have been
//!   changed through the API since, and a restart must not undo that.
//! - The email belongs to a user who is not an active admin (a plain user, or a
//!   deactivated or suspended account): it is made an active admin, its password is
//!   reset to the configured one and its refresh tokens are revoked. Whoever registered
//!   that email before the operator configured it must not keep access to what is now the
//!   admin account; access tokens issued before the promotion keep only the role they were
//!   issued with (see `http::auth`).

use crate::domain::user::{Email, NewUser, Password, Role, UserName, UserStatus};
use crate::error::ErrorCode;

use super::services::Services;

/// The display name a created bootstrap admin gets.
const BOOTSTRAP_ADMIN_NAME: &str = "Administrator";

impl Services {
    pub async fn ensure_bootstrap_admin(&self) -> anyhow::Result<()> {
        let auth = &self.config.auth;
        let (Some(email), Some(password)) =
            (&auth.bootstrap_admin_email, &auth.bootstrap_admin_password)
        else {
            return Ok(());
        };
        let email = Email::parse(email)
            .map_err(|v| anyhow::anyhow!("auth.bootstrap_admin_email {}", v.message))?;
        let password = Password::parse(password.expose())
            .map_err(|v| anyhow::anyhow!("auth.bootstrap_admin_password {}", v.message))?;
        let existing = self
            .db
            .read(|s| s.find_user_by_email(email.as_str()))
            .await
            .map_err(|e| anyhow::anyhow!("looking up the bootstrap admin: {e}"))?;
        match existing {
            Some(user) if user.role == Role::Admin && user.status == UserStatus::Active => Ok(()),
            Some(user) => {
                let hash = self
                    .hash_password(password.into_inner())
                    .await
                    .map_err(|e| anyhow::anyhow!("hashing the bootstrap admin password: {e}"))?;
                let promoted = self
                    .write_user(user.id, |s| s.make_active_admin(user.id, hash))
                    .await
                    .map_err(|e| anyhow::anyhow!("promoting the bootstrap admin: {e}"))?;
                tracing::warn!(
                    user_id = %promoted.id,
                    was_role = user.role.as_str(),
                    was_status = user.status.as_str(),
                    "the bootstrap admin email belonged to a user who was not an active admin: \
                     made it an active admin with the configured password, refresh tokens revoked"
                );
                Ok(())
            }
            None => {
                let hash = self
                    .hash_password(password.into_inner())
                    .await
                    .map_err(|e| anyhow::anyhow!("hashing the bootstrap admin password: {e}"))?;
                let name = UserName::parse(BOOTSTRAP_ADMIN_NAME)
                    .map_err(|v| anyhow::anyhow!("the bootstrap admin's name {}", v.message))?;
                let new = NewUser {
                    email,
                    name,
                    password_hash: hash,
                    role: Role::Admin,
                };
                let created = self.db.write(|s| s.create_user(new)).await;
                match created {
                    Ok(user) => {
                        tracing::info!(user_id = %user.id, "created the bootstrap admin");
                        Ok(())
                    }
                    // Another instance starting at the same time created it first.
                    Err(e) if e.code == ErrorCode::DuplicateEmail => Ok(()),
                    Err(e) => Err(anyhow::anyhow!("creating the bootstrap admin: {e}")),
                }
            }
        }
    }
}
