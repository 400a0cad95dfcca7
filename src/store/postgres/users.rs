use async_trait::async_trait;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{pg_err, PgStore};
use crate::domain::user::{now, NewUser, Role, User, UserStatus};
use crate::store::{StoreError, UserStore};

pub(crate) const USER_COLUMNS: &str =
    "id, email, name, password_hash, role, status, version, created_at, updated_at";

pub(crate) fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let role: &str = row.get(4);
    let status: &str = row.get(5);
    Ok(User {
        id: row.get(0),
        email: row.get(1),
        name: row.get(2),
        password_hash: row.get(3),
        role: Role::parse(role).ok_or_else(|| StoreError::Internal(format!("role {role}")))?,
        status: UserStatus::parse(status)
            .ok_or_else(|| StoreError::Internal(format!("status {status}")))?,
        version: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
    })
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let conn = self.write_conn().await?;
        let at = now();
        let stmt = conn
            .prepare_cached(&format!(
                "INSERT INTO users (id, email, name, password_hash, role, status, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'active', 1, $6, $6)
                 RETURNING {USER_COLUMNS}"
            ))
            .await
            .map_err(pg_err)?;
        let row = conn
            .query_one(
                &stmt,
                &[
                    &Uuid::now_v7(),
                    &new.email,
                    &new.name,
                    &new.password_hash,
                    &new.role.as_str(),
                    &at,
                ],
            )
            .await
            .map_err(pg_err)?;
        user_from_row(&row)
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let conn = self.read_conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
            ))
            .await
            .map_err(pg_err)?;
        let row = conn.query_opt(&stmt, &[&id]).await.map_err(pg_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let conn = self.read_conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL"
            ))
            .await
            .map_err(pg_err)?;
        let row = conn.query_opt(&stmt, &[&email]).await.map_err(pg_err)?;
        row.as_ref().map(user_from_row).transpose()
    }
}
