//! Refresh tokens.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::token::NewRefreshToken;

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Store a newly issued refresh token (its hash).
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError>;
}
