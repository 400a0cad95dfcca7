use std::cmp::Ordering;

use async_trait::async_trait;
use uuid::Uuid;

use super::MemoryStore;
use crate::domain::precondition::IfMatch;
use crate::domain::product::{NewProduct, Product, ProductChanges, ProductQuery};
use crate::domain::user::now;
use crate::store::{Conflict, ProductStore, StoreError};

#[async_trait]
impl ProductStore for MemoryStore {
    async fn create_product(&self, new: NewProduct) -> Result<Product, StoreError> {
        let mut state = self.lock();
        if state.products.id_by_sku.contains_key(new.sku.as_str()) {
            return Err(StoreError::Conflict(Conflict::DuplicateSku));
        }
        let at = now();
        let product = Product {
            id: Uuid::now_v7(),
            sku: new.sku.as_str().to_string(),
            name: new.name.as_str().to_string(),
            description: new.description.as_str().to_string(),
            price_cents: new.price_cents.get(),
            currency: new.currency.as_str().to_string(),
            stock: new.stock.get(),
            version: 1,
            created_at: at,
            updated_at: at,
        };
        state
            .products
            .id_by_sku
            .insert(product.sku.clone(), product.id);
        state.products.by_id.insert(product.id, product.clone());
        Ok(product)
    }

    async fn get_product(&self, id: Uuid) -> Result<Option<Product>, StoreError> {
        Ok(self.lock().products.by_id.get(&id).cloned())
    }

    async fn update_product(
        &self,
        id: Uuid,
        changes: ProductChanges,
        if_match: &IfMatch,
    ) -> Result<Product, StoreError> {
        let mut state = self.lock();
        let products = &mut state.products;
        let old_sku = products.checked(id, if_match)?.sku.clone();
        // Check the SKU before mutating anything, so a conflict leaves the row untouched.
        if let Some(sku) = &changes.sku {
            if sku.as_str() != old_sku && products.id_by_sku.contains_key(sku.as_str()) {
                return Err(StoreError::Conflict(Conflict::DuplicateSku));
            }
        }
        let p = products.checked(id, if_match)?;
        if let Some(v) = changes.sku {
            p.sku = v.as_str().to_string();
        }
        if let Some(v) = changes.name {
            p.name = v.as_str().to_string();
        }
        if let Some(v) = changes.description {
            p.description = v.as_str().to_string();
        }
        if let Some(v) = changes.price_cents {
            p.price_cents = v.get();
        }
        if let Some(v) = changes.currency {
            p.currency = v.as_str().to_string();
        }
        if let Some(v) = changes.stock {
            p.stock = v.get();
        }
        p.version += 1;
        p.updated_at = now();
        let updated = p.clone();
        if updated.sku != old_sku {
            products.id_by_sku.remove(&old_sku);
            products.id_by_sku.insert(updated.sku.clone(), id);
        }
        Ok(updated)
    }

    async fn delete_product(&self, id: Uuid, if_match: &IfMatch) -> Result<(), StoreError> {
        let mut state = self.lock();
        let sku = state.products.checked(id, if_match)?.sku.clone();
        state.products.by_id.remove(&id);
        state.products.id_by_sku.remove(&sku);
        Ok(())
    }

    async fn list_products(&self, query: ProductQuery) -> Result<Vec<Product>, StoreError> {
        let state = self.lock();
        let key = query.sort.key;
        // Same order as Postgres: sort value (names by code point, as `COLLATE "C"`),
        // then id, both reversed for a descending sort.
        let order = |a: &Product| (a.sort_value(key), a.id);
        let needle = query.q.as_ref().map(|q| q.to_lowercase());
        let mut rows: Vec<&Product> = state
            .products
            .by_id
            .values()
            .filter(|p| query.min_price_cents.is_none_or(|m| p.price_cents >= m))
            .filter(|p| query.max_price_cents.is_none_or(|m| p.price_cents <= m))
            .filter(|p| {
                needle
                    .as_ref()
                    .is_none_or(|n| p.name.to_lowercase().contains(n.as_str()))
            })
            .filter(|p| match &query.after {
                None => true,
                Some(after) => {
                    let ord = order(p).cmp(after);
                    if query.sort.descending {
                        ord == Ordering::Less
                    } else {
                        ord == Ordering::Greater
                    }
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            let ord = order(a).cmp(&order(b));
            if query.sort.descending {
                ord.reverse()
            } else {
                ord
            }
        });
        Ok(rows
            .into_iter()
            .take(query.limit as usize)
            .cloned()
            .collect())
    }
}
