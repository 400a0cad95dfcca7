//! The catalogue: products through the guard.

use uuid::Uuid;

use super::services::Services;
use crate::domain::precondition::IfMatch;
use crate::domain::product::{NewProduct, Product, ProductChanges, ProductQuery};
use crate::error::ApiError;

impl Services {
    pub async fn create_product(&self, new: NewProduct) -> Result<Product, ApiError> {
        self.db.write(|s| s.create_product(new)).await
    }

    /// A live product.
    pub async fn product(&self, id: Uuid) -> Result<Option<Product>, ApiError> {
        self.db.read(|s| s.get_product(id)).await
    }

    /// Apply `changes` if the product's version satisfies `if_match` (checked inside the
    /// write: 412 `precondition_failed` otherwise).
    pub async fn update_product(
        &self,
        id: Uuid,
        changes: ProductChanges,
        if_match: &IfMatch,
    ) -> Result<Product, ApiError> {
        self.db
            .write(|s| s.update_product(id, changes, if_match))
            .await
    }

    /// Soft-delete under the same `if_match` rule.
    pub async fn delete_product(&self, id: Uuid, if_match: &IfMatch) -> Result<(), ApiError> {
        self.db.write(|s| s.delete_product(id, if_match)).await
    }

    /// A page of products (`query.limit` rows at most).
    pub async fn list_products(&self, query: ProductQuery) -> Result<Vec<Product>, ApiError> {
        self.db.read(|s| s.list_products(query)).await
    }
}
