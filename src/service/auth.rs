//! Issuing, rotating and revoking tokens, and verifying access tokens.
//!
//! Login answers the same 401 `invalid_credentials` for an unknown email and a wrong
//! password, and takes about as long for both: an unknown email is checked against a
//! dummy hash of the same cost. Account state is only revealed (403 `account_inactive`)
//! to a caller who proved the password.
//!
//! Refresh rotates: the presented token is marked rotated and a successor of the same
//! family is stored, in one store transaction, so of concurrent refreshes with one token
//! exactly one succeeds. Presenting a rotated token again is 401 `refresh_token_reused`
//! and revokes the family, newest member included. Unknown, expired or revoked tokens,
//! and tokens of deleted users, are 401 `unauthenticated`. Logout revokes the family
//! whether or not the token was known (it is idempotent, and tells nobody whether a
//! string is a live token).
//!
//! Access tokens carry the user's token epoch. Login stores its refresh token only while
//! the epoch it read with the password hash is still the user's (checked inside the
//! insert): a login that proved a password being replaced at that moment gets 401
//! `invalid_credentials` and no token.

use std::sync::Arc;

use chrono::Duration as ChronoDuration;
use uuid::Uuid;

use super::cached::VerifiedToken;
use super::services::Services;
use crate::auth::jwt::{unix_now, TokenError};
use crate::auth::refresh;
use crate::domain::token::{NewRefreshToken, TokenPair};
use crate::domain::user::{now, Email, Role, User, UserStatus};
use crate::error::{ApiError, ErrorCode};
use crate::store::Rotation;

fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "the email or password is wrong",
    )
}

impl Services {
    /// Verify an access token. A token verified before (same bytes) skips the signature
    /// and JSON work: only `exp` is checked again, with the configured leeway. Safe
    /// because a cached entry is keyed by the whole signed token, so any change to it is a
    /// miss and a full verification.
    pub async fn verify_token(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        if let Some(hit) = self.verified_tokens.get(token) {
            return if hit.exp + self.config.auth.leeway_secs >= unix_now() {
                Ok(hit)
            } else {
                Err(TokenError::Expired)
            };
        }
        let claims = self.jwt.verify(token)?;
        let verified = Arc::new(VerifiedToken {
            sub: claims.sub,
            role: Role::parse(&claims.role).unwrap_or(Role::User),
            exp: claims.exp,
            epoch: claims.epoch,
        });
        // Best effort: a full mailbox only means the next use verifies again.
        let _ = self
            .verified_tokens
            .insert(token.to_owned(), verified.clone())
            .await;
        Ok(verified)
    }

    /// Login: a new token pair for the active user whose email and password these are.
    /// `None` for an email that does not parse: it cannot belong to anyone, and gets the
    /// answer a wrong one gets, after the same work.
    pub async fn login(
        &self,
        email: Option<Email>,
        password: String,
    ) -> Result<TokenPair, ApiError> {
        let user = match email {
            Some(email) => {
                self.db
                    .read(|s| s.find_user_by_email(email.as_str()))
                    .await?
            }
            None => None,
        };
        let ok = self
            .verify_password(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let user = match user {
            Some(user) if ok => user,
            _ => return Err(invalid_credentials()),
        };
        if user.status != UserStatus::Active {
            return Err(ApiError::account_inactive(user.status));
        }
        self.issue_pair(&user, Uuid::now_v7()).await
    }

    /// Rotate a refresh token into a new pair.
    pub async fn refresh(&self, presented: &str) -> Result<TokenPair, ApiError> {
        let presented = refresh::hash(presented);
        let (refresh_token, successor) = refresh::generate();
        let expires_at = self.refresh_expiry();
        let rotation = self
            .db
            .write(|s| s.rotate_refresh_token(&presented, successor, expires_at))
            .await?;
        let (user_id, role, epoch) = match rotation {
            Rotation::Rotated {
                user_id,
                role,
                epoch,
                ..
            } => (user_id, role, epoch),
            Rotation::Reused => {
                tracing::warn!(
                    "a rotated refresh token was presented again; its family is revoked"
                );
                return Err(ApiError::new(
                    ErrorCode::RefreshTokenReused,
                    "this refresh token was already used; every token of its login is revoked",
                ));
            }
            Rotation::Inactive(status) => return Err(ApiError::account_inactive(status)),
            Rotation::Invalid => {
                return Err(ApiError::unauthenticated(
                    "the refresh token is unknown, expired or revoked",
                ))
            }
        };
        // The role and epoch are the ones the rotation read under the user's row lock: a
        // credential change that committed after it revoked the successor, and the
        // access token's epoch is then already below the user's.
        Ok(TokenPair {
            access_token: self.sign_access(user_id, role, epoch)?,
            token_type: "Bearer",
            expires_in: self.jwt.ttl_secs(),
            refresh_token,
        })
    }

    /// Logout: revoke the family of a refresh token, known or not.
    pub async fn logout(&self, presented: &str) -> Result<(), ApiError> {
        let presented = refresh::hash(presented);
        self.db
            .write(|s| s.revoke_refresh_family(&presented))
            .await?;
        Ok(())
    }

    /// A new access token and a new refresh token of `family`, stored as a hash.
    async fn issue_pair(&self, user: &User, family: Uuid) -> Result<TokenPair, ApiError> {
        let access_token = self.sign_access(user.id, user.role, user.token_epoch)?;
        let (refresh_token, hash) = refresh::generate();
        let token = NewRefreshToken {
            hash,
            family_id: family,
            user_id: user.id,
            expires_at: self.refresh_expiry(),
            epoch: user.token_epoch,
        };
        self.db.write(|s| s.create_refresh_token(token)).await?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.jwt.ttl_secs(),
            refresh_token,
        })
    }

    fn sign_access(&self, user: Uuid, role: Role, epoch: i32) -> Result<String, ApiError> {
        self.jwt.issue(user, role, epoch).map_err(|e| {
            tracing::error!(error = %e, "signing an access token failed");
            ApiError::internal()
        })
    }

    fn refresh_expiry(&self) -> chrono::DateTime<chrono::Utc> {
        let ttl = i64::try_from(self.config.auth.refresh_ttl_secs).unwrap_or(i64::MAX / 2);
        now() + ChronoDuration::seconds(ttl)
    }
}
