//! Product records.

use async_trait::async_trait;
use uuid::Uuid;

use super::error::StoreError;
use crate::domain::precondition::IfMatch;
use crate::domain::product::{NewProduct, Product, ProductChanges, ProductQuery};

#[async_trait]
pub trait ProductStore: Send + Sync {
    /// Insert a product. A live product with the same SKU is
    /// [`super::Conflict::DuplicateSku`].
    async fn create_product(&self, new: NewProduct) -> Result<Product, StoreError>;

    /// A live (not deleted) product by id.
    async fn get_product(&self, id: Uuid) -> Result<Option<Product>, StoreError>;

    /// Apply `changes` to a live product and bump its version, if its current version
    /// satisfies `if_match` (checked inside the write: [`super::Conflict::VersionMismatch`]
    /// otherwise). [`StoreError::NotFound`] when there is no live product `id`.
    async fn update_product(
        &self,
        id: Uuid,
        changes: ProductChanges,
        if_match: &IfMatch,
    ) -> Result<Product, StoreError>;

    /// Soft-delete a live product (its SKU becomes free), under the same `if_match` rule.
    async fn delete_product(&self, id: Uuid, if_match: &IfMatch) -> Result<(), StoreError>;

    /// One page of live products: filtered, in `query.sort` order then by id, strictly
    /// after `query.after`, at most `query.limit` rows.
    async fn list_products(&self, query: ProductQuery) -> Result<Vec<Product>, StoreError>;
}
