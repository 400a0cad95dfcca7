//! The bootstrap admin (`auth.bootstrap_admin_email` / `_password`): ensured at start so
//! a fresh deployment has someone who can administer it.

use crate::domain::user::{Email, NewUser, Password, Role, UserStatus};

use super::Services;

impl Services {
    pub async fn ensure_bootstrap_admin(&self) -> anyhow::Result<()> {
        let auth = &self.config.auth;
        let (Some(email), Some(password)) =
            (&auth.bootstrap_admin_email, &auth.bootstrap_admin_password)
        else {
            return Ok(());
        };
        let email = Email::parse(email)
            .map_err(|(_, m)| anyhow::anyhow!("auth.bootstrap_admin_email {m}"))?;
        let password = Password::parse(password.expose())
            .map_err(|(_, m)| anyhow::anyhow!("auth.bootstrap_admin_password {m}"))?;
        let existing = self
            .store
            .find_user_by_email(email.as_str())
            .await
            .map_err(|e| anyhow::anyhow!("looking up the bootstrap admin: {e}"))?;
        match existing {
            Some(user) if user.role == Role::Admin && user.status == UserStatus::Active => Ok(()),
            Some(user) => {
                tracing::warn!(
                    user_id = %user.id,
                    "the bootstrap admin email belongs to a user who is not an active admin; \
                     leaving it unchanged"
                );
                Ok(())
            }
            None => {
                let hash = self
                    .hash_password(password.into_inner())
                    .await
                    .map_err(|e| anyhow::anyhow!("hashing the bootstrap admin password: {e}"))?;
                let created = self
                    .store
                    .create_user(NewUser {
                        email: email.into_inner(),
                        name: "Administrator".into(),
                        password_hash: hash,
                        role: Role::Admin,
                    })
                    .await;
                match created {
                    Ok(user) => {
                        tracing::info!(user_id = %user.id, "created the bootstrap admin");
                        Ok(())
                    }
                    // Another instance starting at the same time created it first.
                    Err(crate::store::StoreError::Conflict(_)) => Ok(()),
                    Err(e) => Err(anyhow::anyhow!("creating the bootstrap admin: {e}")),
                }
            }
        }
    }
}
