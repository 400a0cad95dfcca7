use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{pg_err, PgStore};
use crate::domain::precondition::IfMatch;
use crate::domain::product::{
    NewProduct, Product, ProductChanges, ProductQuery, ProductSortKey, SortValue,
};
use crate::domain::user::now;
use crate::store::{Conflict, ProductStore, StoreError};

pub(crate) const PRODUCT_COLUMNS: &str =
    "id, sku, name, description, price_cents, currency, stock, version, created_at, updated_at";

pub(crate) fn product_from_row(row: &Row) -> Product {
    Product {
        id: row.get(0),
        sku: row.get(1),
        name: row.get(2),
        description: row.get(3),
        price_cents: row.get(4),
        currency: row.get(5),
        stock: row.get(6),
        version: row.get(7),
        created_at: row.get(8),
        updated_at: row.get(9),
    }
}

impl PgStore {
    /// After a conditional write touched no row: was the product missing or stale?
    async fn missing_or_stale(&self, id: Uuid) -> StoreError {
        let exists = async {
            let conn = self.write_conn().await?;
            let row = conn
                .query_opt(
                    "SELECT 1 FROM products WHERE id = $1 AND deleted_at IS NULL",
                    &[&id],
                )
                .await
                .map_err(pg_err)?;
            Ok::<_, StoreError>(row.is_some())
        };
        match exists.await {
            Ok(true) => StoreError::Conflict(Conflict::VersionMismatch),
            Ok(false) => StoreError::NotFound,
            Err(e) => e,
        }
    }
}

#[async_trait]
impl ProductStore for PgStore {
    async fn create_product(&self, new: NewProduct) -> Result<Product, StoreError> {
        let conn = self.write_conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "INSERT INTO products (id, sku, name, description, price_cents, currency, stock,
                                       version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
                 RETURNING {PRODUCT_COLUMNS}"
            ))
            .await
            .map_err(pg_err)?;
        let row = conn
            .query_one(
                &stmt,
                &[
                    &Uuid::now_v7(),
                    &new.sku.as_str(),
                    &new.name.as_str(),
                    &new.description.as_str(),
                    &new.price_cents.get(),
                    &new.currency.as_str(),
                    &new.stock.get(),
                    &now(),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(product_from_row(&row))
    }

    async fn get_product(&self, id: Uuid) -> Result<Option<Product>, StoreError> {
        let conn = self.read_conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1 AND deleted_at IS NULL"
            ))
            .await
            .map_err(pg_err)?;
        let row = conn.query_opt(&stmt, &[&id]).await.map_err(pg_err)?;
        Ok(row.as_ref().map(product_from_row))
    }

    async fn update_product(
        &self,
        id: Uuid,
        c: ProductChanges,
        if_match: &IfMatch,
    ) -> Result<Product, StoreError> {
        let conn = self.write_conn().await?;
        // The version check is part of the UPDATE, so no writer slips in between.
        let stmt = conn
            .prepare_cached(&format!(
                "UPDATE products SET
                    sku = COALESCE($2, sku), name = COALESCE($3, name),
                    description = COALESCE($4, description),
                    price_cents = COALESCE($5, price_cents),
                    currency = COALESCE($6, currency), stock = COALESCE($7, stock),
                    version = version + 1, updated_at = $8
                 WHERE id = $1 AND deleted_at IS NULL
                   AND ($9::bigint[] IS NULL OR version = ANY($9))
                 RETURNING {PRODUCT_COLUMNS}"
            ))
            .await
            .map_err(pg_err)?;
        let row = conn
            .query_opt(
                &stmt,
                &[
                    &id,
                    &c.sku.as_ref().map(|v| v.as_str()),
                    &c.name.as_ref().map(|v| v.as_str()),
                    &c.description.as_ref().map(|v| v.as_str()),
                    &c.price_cents.map(|v| v.get()),
                    &c.currency.as_ref().map(|v| v.as_str()),
                    &c.stock.map(|v| v.get()),
                    &now(),
                    &if_match.versions(),
                ],
            )
            .await
            .map_err(pg_err)?;
        drop(conn);
        match row {
            Some(row) => Ok(product_from_row(&row)),
            None => Err(self.missing_or_stale(id).await),
        }
    }

    async fn delete_product(&self, id: Uuid, if_match: &IfMatch) -> Result<(), StoreError> {
        let conn = self.write_conn().await?;
        let stmt = conn
            .prepare_cached(
                "UPDATE products SET deleted_at = $2, updated_at = $2, version = version + 1
                 WHERE id = $1 AND deleted_at IS NULL
                   AND ($3::bigint[] IS NULL OR version = ANY($3))",
            )
            .await
            .map_err(pg_err)?;
        let n = conn
            .execute(&stmt, &[&id, &now(), &if_match.versions()])
            .await
            .map_err(pg_err)?;
        drop(conn);
        if n == 1 {
            Ok(())
        } else {
            Err(self.missing_or_stale(id).await)
        }
    }

    async fn list_products(&self, query: ProductQuery) -> Result<Vec<Product>, StoreError> {
        let conn = self.read_conn().await?;
        // Only fixed fragments are spliced into the SQL (column and direction chosen by
        // the enum); every value is a parameter. Names sort by code point (`COLLATE "C"`,
        // the same order as the memory store), served by the `products_name_c_live` index.
        let column = match query.sort.key {
            ProductSortKey::CreatedAt => "created_at",
            ProductSortKey::PriceCents => "price_cents",
            ProductSortKey::Name => "name COLLATE \"C\"",
        };
        let (dir, cmp) = if query.sort.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let q = query.q.as_deref().map(like_pattern);
        let limit = i64::from(query.limit);
        let (time, int, text);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&query.min_price_cents, &query.max_price_cents, &q, &limit];
        let keyset = match &query.after {
            None => String::new(),
            Some((value, id)) => {
                match value {
                    SortValue::Time(v) => {
                        time = *v;
                        params.push(&time as &(dyn ToSql + Sync));
                    }
                    SortValue::Int(v) => {
                        int = *v;
                        params.push(&int);
                    }
                    SortValue::Text(v) => {
                        text = v.clone();
                        params.push(&text);
                    }
                }
                params.push(id);
                format!("AND ({column}, id) {cmp} ($5, $6)")
            }
        };
        let sql = format!(
            "SELECT {PRODUCT_COLUMNS} FROM products
             WHERE deleted_at IS NULL
               AND ($1::bigint IS NULL OR price_cents >= $1)
               AND ($2::bigint IS NULL OR price_cents <= $2)
               AND ($3::text IS NULL OR name ILIKE $3 ESCAPE '\\')
               {keyset}
             ORDER BY {column} {dir}, id {dir}
             LIMIT $4"
        );
        let stmt = conn.prepare_cached(&sql).await.map_err(pg_err)?;
        let rows = conn.query(&stmt, &params).await.map_err(pg_err)?;
        Ok(rows.iter().map(product_from_row).collect())
    }
}

/// `%q%` for ILIKE with `\`, `%` and `_` escaped, so `q` matches literally.
fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
