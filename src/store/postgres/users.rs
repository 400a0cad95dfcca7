use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{pg_err, PgStore};
use crate::domain::precondition::IfMatch;
use crate::domain::user::{
    now, Email, NewUser, Role, User, UserChanges, UserName, UserStatus, UserView,
};
use crate::events::{Event, EventKind};
use crate::store::{Conflict, StoreError, UserKey, UserListQuery, UserSort, UserStore};

pub(crate) const USER_COLUMNS: &str =
    "id, email, name, password_hash, role, status, version, created_at, updated_at, token_epoch";

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
        token_epoch: row.get(9),
    })
}

/// Revoke every live refresh token of `user`. Callers have already written (and so
/// locked) the user's row in the same transaction: a concurrent rotation, which takes that
/// row `FOR SHARE` first, either finished before (its successor is revoked here, this
/// statement's snapshot being taken after the lock was granted) or sees the user's new
/// state and refuses.
async fn revoke_user_tokens(
    tx: &Transaction<'_>,
    user: Uuid,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .await
        .map_err(pg_err)?;
    tx.execute(&stmt, &[&user, &at]).await.map_err(pg_err)?;
    Ok(())
}

/// After a conditional write matched no row: was it missing, or at another version?
async fn why_not_written(tx: &Transaction<'_>, id: Uuid) -> StoreError {
    let found = tx
        .query_opt(
            "SELECT version FROM users WHERE id = $1 AND deleted_at IS NULL",
            &[&id],
        )
        .await;
    match found {
        Ok(Some(_)) => StoreError::Conflict(Conflict::VersionMismatch),
        Ok(None) => StoreError::NotFound,
        Err(e) => pg_err(e),
    }
}

impl PgStore {
    /// Write `user`'s event of `kind` (when events are on) and commit. The caller has
    /// already written the user's row in `tx`, so the event's seq follows every earlier
    /// change of this user.
    async fn commit_with_event(
        &self,
        tx: Transaction<'_>,
        kind: EventKind,
        user: &User,
    ) -> Result<(), StoreError> {
        if let Some(outbox) = &self.outbox {
            let event = Event::new(kind, user.id, user.updated_at, &UserView::from(user));
            outbox.write(&tx, &event).await?;
            tx.commit().await.map_err(pg_err)?;
            outbox.committed();
            return Ok(());
        }
        tx.commit().await.map_err(pg_err)
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let conn = self.write_conn().await?;
        let at = now();
        let id = Uuid::now_v7();
        let insert = "INSERT INTO users (id, email, name, password_hash, role, status, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'active', 1, $6, $6)";
        let (email, name, role) = (new.email.as_str(), new.name.as_str(), new.role.as_str());
        let params: [&(dyn ToSql + Sync); 6] = [&id, &email, &name, &new.password_hash, &role, &at];
        let Some(outbox) = &self.outbox else {
            let stmt = conn
                .prepare_cached(&format!("{insert} RETURNING {USER_COLUMNS}"))
                .await
                .map_err(pg_err)?;
            let row = conn.query_one(&stmt, &params).await.map_err(pg_err)?;
            return user_from_row(&row);
        };
        // The event's data is the user as it will be stored; one statement writes both,
        // so the event exists exactly when the user does.
        let user = User {
            id,
            email: email.to_string(),
            name: name.to_string(),
            password_hash: String::new(),
            role: new.role,
            status: UserStatus::Active,
            version: 1,
            token_epoch: 0,
            created_at: at,
            updated_at: at,
        };
        let event = Event::new(EventKind::UserRegistered, id, at, &UserView::from(&user));
        let notify = if outbox.wake.take_notify_slot() {
            ", (SELECT pg_notify('bulkhead_outbox', '')) AS n"
        } else {
            ""
        };
        let stmt = conn
            .prepare_cached(&format!(
                "WITH u AS ({insert} RETURNING {USER_COLUMNS}),
                      e AS (INSERT INTO outbox (id, kind, payload) SELECT $7, $8, $9 FROM u{notify})
                 SELECT {USER_COLUMNS} FROM u"
            ))
            .await
            .map_err(pg_err)?;
        let kind = event.kind.as_str();
        let params: [&(dyn ToSql + Sync); 9] = [
            params[0],
            params[1],
            params[2],
            params[3],
            params[4],
            params[5],
            &event.id,
            &kind,
            &event.payload,
        ];
        let row = conn.query_one(&stmt, &params).await.map_err(pg_err)?;
        outbox.committed();
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

    async fn update_user(
        &self,
        id: Uuid,
        changes: UserChanges,
        if_match: &IfMatch,
    ) -> Result<User, StoreError> {
        let mut conn = self.write_conn().await?;
        let tx = conn.transaction().await.map_err(pg_err)?;
        if changes.is_empty() {
            let row = tx
                .query_opt(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
                    ),
                    &[&id],
                )
                .await
                .map_err(pg_err)?
                .ok_or(StoreError::NotFound)?;
            let user = user_from_row(&row)?;
            if !if_match.admits(user.version) {
                return Err(StoreError::Conflict(Conflict::VersionMismatch));
            }
            return Ok(user);
        }
        // Lock the row first: the If-Match check and whether the credentials really change
        // are judged on the version this write replaces.
        let current = tx
            .query_opt(
                "SELECT version, email FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(pg_err)?
            .ok_or(StoreError::NotFound)?;
        let (version, email): (i64, String) = (current.get(0), current.get(1));
        if !if_match.admits(version) {
            return Err(StoreError::Conflict(Conflict::VersionMismatch));
        }
        let credentials = changes.changes_credentials(&email);
        let at = now();
        let stmt = tx
            .prepare_cached(&format!(
                "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email),
                        password_hash = COALESCE($4, password_hash),
                        token_epoch = token_epoch + $6,
                        version = version + 1, updated_at = $5
                 WHERE id = $1
                 RETURNING {USER_COLUMNS}"
            ))
            .await
            .map_err(pg_err)?;
        let row = tx
            .query_one(
                &stmt,
                &[
                    &id,
                    &changes.name.as_ref().map(UserName::as_str),
                    &changes.email.as_ref().map(Email::as_str),
                    &changes.password_hash,
                    &at,
                    &i32::from(credentials),
                ],
            )
            .await
            .map_err(pg_err)?;
        let user = user_from_row(&row)?;
        if credentials {
            revoke_user_tokens(&tx, id, at).await?;
        }
        self.commit_with_event(tx, EventKind::UserUpdated, &user)
            .await?;
        Ok(user)
    }

    async fn delete_user(&self, id: Uuid, if_match: &IfMatch) -> Result<(), StoreError> {
        let mut conn = self.write_conn().await?;
        let tx = conn.transaction().await.map_err(pg_err)?;
        let at = now();
        let stmt = tx
            .prepare_cached(&format!(
                "UPDATE users SET deleted_at = $2, updated_at = $2, version = version + 1
                 WHERE id = $1 AND deleted_at IS NULL
                   AND ($3::bigint[] IS NULL OR version = ANY($3))
                 RETURNING {USER_COLUMNS}"
            ))
            .await
            .map_err(pg_err)?;
        let Some(row) = tx
            .query_opt(&stmt, &[&id, &at, &if_match.versions()])
            .await
            .map_err(pg_err)?
        else {
            return Err(why_not_written(&tx, id).await);
        };
        revoke_user_tokens(&tx, id, at).await?;
        self.commit_with_event(tx, EventKind::UserDeleted, &user_from_row(&row)?)
            .await
    }

    async fn set_user_status(&self, id: Uuid, to: UserStatus) -> Result<User, StoreError> {
        let mut conn = self.write_conn().await?;
        let tx = conn.transaction().await.map_err(pg_err)?;
        // Lock the row, so the transition is judged on the status it replaces.
        let from: String = tx
            .query_opt(
                "SELECT status FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(pg_err)?
            .ok_or(StoreError::NotFound)?
            .get(0);
        let allowed = UserStatus::parse(&from).is_some_and(|f| f.can_become(to));
        if !allowed {
            return Err(StoreError::Conflict(Conflict::InvalidTransition {
                from,
                to: to.as_str().into(),
            }));
        }
        let at = now();
        let row = tx
            .query_one(
                &format!(
                    "UPDATE users SET status = $2, version = version + 1, updated_at = $3
                     WHERE id = $1 RETURNING {USER_COLUMNS}"
                ),
                &[&id, &to.as_str(), &at],
            )
            .await
            .map_err(pg_err)?;
        let user = user_from_row(&row)?;
        if to != UserStatus::Active {
            revoke_user_tokens(&tx, id, at).await?;
        }
        self.commit_with_event(tx, EventKind::UserStatusChanged, &user)
            .await?;
        Ok(user)
    }

    async fn make_active_admin(&self, id: Uuid, password_hash: String) -> Result<User, StoreError> {
        let mut conn = self.write_conn().await?;
        let tx = conn.transaction().await.map_err(pg_err)?;
        let at = now();
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE users SET role = 'admin', status = 'active', password_hash = $2,
                            token_epoch = token_epoch + 1, version = version + 1, updated_at = $3
                     WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
                ),
                &[&id, &password_hash, &at],
            )
            .await
            .map_err(pg_err)?
            .ok_or(StoreError::NotFound)?;
        let user = user_from_row(&row)?;
        revoke_user_tokens(&tx, id, at).await?;
        self.commit_with_event(tx, EventKind::UserUpdated, &user)
            .await?;
        Ok(user)
    }

    async fn list_users(&self, query: &UserListQuery) -> Result<Vec<User>, StoreError> {
        // The SQL text is assembled from fixed fragments chosen by the query's shape only;
        // every value is a parameter.
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let mut filters = vec!["deleted_at IS NULL".to_string()];
        let status = query.status.map(UserStatus::as_str);
        let role = query.role.map(Role::as_str);
        if let Some(status) = &status {
            params.push(status);
            filters.push(format!("status = ${}", params.len()));
        }
        if let Some(role) = &role {
            params.push(role);
            filters.push(format!("role = ${}", params.len()));
        }
        let column = match query.sort {
            UserSort::CreatedAt { .. } => "created_at",
            UserSort::Name { .. } => "name",
        };
        let (dir, cmp) = if query.sort.descending() {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        match &query.after {
            Some(UserKey::CreatedAt(at, id)) => {
                params.push(at);
                params.push(id);
            }
            Some(UserKey::Name(name, id)) => {
                params.push(name);
                params.push(id);
            }
            None => {}
        }
        if query.after.is_some() {
            let n = params.len();
            filters.push(format!("({column}, id) {cmp} (${}, ${n})", n - 1));
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        params.push(&limit);
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {} ORDER BY {column} {dir}, id {dir} LIMIT ${}",
            filters.join(" AND "),
            params.len()
        );
        let conn = self.read_conn().await?;
        let stmt = conn.prepare_cached(&sql).await.map_err(pg_err)?;
        let rows = conn.query(&stmt, &params).await.map_err(pg_err)?;
        rows.iter().map(user_from_row).collect()
    }
}
