//! The catalogue: products through the guard, public reads through the product cache
//! (`product_cache.rs`), which every write here drops what it changed from.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use uuid::Uuid;

use super::product_cache::{page_entry, product_entry, CachedPage, CachedProduct};
use super::services::Services;
use crate::domain::precondition::IfMatch;
use crate::domain::product::{NewProduct, Product, ProductChanges, ProductQuery};
use crate::error::ApiError;

impl Services {
    pub async fn create_product(&self, new: NewProduct) -> Result<Product, ApiError> {
        let created = self.db.write(|s| s.create_product(new)).await;
        self.products_written(&created, None);
        created
    }

    /// A live product, from the store (writes and the admin paths).
    pub async fn product(&self, id: Uuid) -> Result<Option<Product>, ApiError> {
        self.db.read(|s| s.get_product(id)).await
    }

    /// A live product as `GET /api/v1/products/{id}` answers it: from the product cache
    /// when it holds a fresh enough entry (see `product_cache.rs`), else from the store.
    pub async fn product_view(&self, id: Uuid) -> Result<Option<Arc<CachedProduct>>, ApiError> {
        let load = || async move {
            let loaded = Instant::now();
            let product = self.db.read(|s| s.get_product(id)).await?;
            Ok(product.map(|p| product_entry(&p, loaded)))
        };
        self.products.product(id, load).await
    }

    /// Apply `changes` if the product's version satisfies `if_match` (checked inside the
    /// write: 412 `precondition_failed` otherwise).
    pub async fn update_product(
        &self,
        id: Uuid,
        changes: ProductChanges,
        if_match: &IfMatch,
    ) -> Result<Product, ApiError> {
        let updated = self
            .db
            .write(|s| s.update_product(id, changes, if_match))
            .await;
        self.products_written(&updated, Some(id));
        updated
    }

    /// Soft-delete under the same `if_match` rule.
    pub async fn delete_product(&self, id: Uuid, if_match: &IfMatch) -> Result<(), ApiError> {
        let deleted = self.db.write(|s| s.delete_product(id, if_match)).await;
        self.products_written(&deleted, Some(id));
        deleted
    }

    /// A page of products (`query.limit` rows at most), from the store.
    pub async fn list_products(&self, query: ProductQuery) -> Result<Vec<Product>, ApiError> {
        self.db.read(|s| s.list_products(query)).await
    }

    /// A list page as `GET /api/v1/products` answers it (`render` makes its bytes from
    /// the rows), cached under `key`, the request's query string.
    pub async fn product_page(
        &self,
        key: &str,
        query: ProductQuery,
        render: impl Fn(Vec<Product>) -> Bytes,
    ) -> Result<Arc<CachedPage>, ApiError> {
        let (query, render) = (&query, &render);
        let load = || async move {
            let loaded = Instant::now();
            let rows = self.db.read(|s| s.list_products(query.clone())).await?;
            Ok(Some(page_entry(render(rows), loaded)))
        };
        let page = self.products.page(key, load).await?;
        page.ok_or_else(ApiError::internal)
    }

    /// After a product write: drop the product (`id`, or the created product's) and
    /// every list page; a failed write may have committed, so it drops everything.
    fn products_written<T: WrittenProduct>(&self, outcome: &Result<T, ApiError>, id: Option<Uuid>) {
        match (outcome, id) {
            (Ok(_), Some(id)) => self.products.written([id]),
            (Ok(written), None) => self.products.written(written.id()),
            (Err(e), _) if !e.code.status().is_server_error() => {}
            (Err(_), _) => self.products.clear(),
        }
    }
}

/// What a product write returns, as the ids it wrote.
trait WrittenProduct {
    fn id(&self) -> Option<Uuid>;
}

impl WrittenProduct for Product {
    fn id(&self) -> Option<Uuid> {
        Some(self.id)
    }
}

impl WrittenProduct for () {
    fn id(&self) -> Option<Uuid> {
        None
    }
}
