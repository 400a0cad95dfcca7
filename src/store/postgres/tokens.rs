use async_trait::async_trait;

use super::{pg_err, PgStore};
use crate::domain::token::NewRefreshToken;
use crate::domain::user::now;
use crate::store::{StoreError, TokenStore};

#[async_trait]
impl TokenStore for PgStore {
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError> {
        let conn = self.write_conn().await?;
        let stmt = conn
            .prepare_cached(
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await
            .map_err(pg_err)?;
        conn.execute(
            &stmt,
            &[
                &token.hash,
                &token.family_id,
                &token.user_id,
                &now(),
                &token.expires_at,
            ],
        )
        .await
        .map_err(pg_err)?;
        Ok(())
    }
}
