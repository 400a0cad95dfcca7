//! The in-memory tables, all under the store's one mutex (`State`). Only data and the
//! bookkeeping that keeps their indexes in step; the operations are the trait impls in
//! the sibling files.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::order::Order;
use crate::domain::precondition::IfMatch;
use crate::domain::product::Product;
use crate::domain::user::User;
use crate::store::{Conflict, StoreError};

/// Live users only: a deleted user is removed, which frees its email.
#[derive(Default)]
pub(crate) struct Users {
    pub(crate) by_id: HashMap<Uuid, User>,
    pub(crate) id_by_email: HashMap<String, Uuid>,
}

#[derive(Default)]
pub(crate) struct Products {
    /// Live products only: a soft delete removes the row here (nothing reads deleted
    /// products except order history, which keeps its own copy of SKU, name and price).
    pub(crate) by_id: HashMap<Uuid, Product>,
    pub(crate) id_by_sku: HashMap<String, Uuid>,
}

impl Products {
    /// The live product `id`, if `if_match` admits its version.
    pub(crate) fn checked(
        &mut self,
        id: Uuid,
        if_match: &IfMatch,
    ) -> Result<&mut Product, StoreError> {
        let product = self.by_id.get_mut(&id).ok_or(StoreError::NotFound)?;
        if !if_match.admits(product.version) {
            return Err(StoreError::Conflict(Conflict::VersionMismatch));
        }
        Ok(product)
    }
}

#[derive(Default)]
pub(crate) struct Orders {
    pub(crate) by_id: HashMap<Uuid, Order>,
    /// `(created_at, id)` of every order, for newest-first listing.
    pub(crate) by_time: BTreeSet<(DateTime<Utc>, Uuid)>,
    pub(crate) idempotency: HashMap<(Uuid, String), IdempotencyRecord>,
}

pub(crate) struct IdempotencyRecord {
    pub(crate) request_hash: Vec<u8>,
    /// `None` while the first request is in flight.
    pub(crate) response: Option<(u16, Vec<u8>)>,
    /// Claim time; the claim token.
    pub(crate) created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub(crate) family_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) rotated_at: Option<DateTime<Utc>>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
}

/// Refresh tokens by hash, with the hashes of each family and each user, so revoking a
/// family or a user's tokens does not scan every token.
#[derive(Default)]
pub(crate) struct RefreshTokens {
    pub(crate) by_hash: HashMap<Vec<u8>, TokenRow>,
    by_family: HashMap<Uuid, Vec<Vec<u8>>>,
    by_user: HashMap<Uuid, Vec<Uuid>>,
}

impl RefreshTokens {
    pub(crate) fn insert(&mut self, hash: Vec<u8>, row: TokenRow) {
        let family = self.by_family.entry(row.family_id).or_default();
        if family.is_empty() {
            self.by_user
                .entry(row.user_id)
                .or_default()
                .push(row.family_id);
        }
        family.push(hash.clone());
        self.by_hash.insert(hash, row);
    }

    /// Revoke every live member of `family`.
    pub(crate) fn revoke_family(&mut self, family: Uuid, at: DateTime<Utc>) {
        for hash in self.by_family.get(&family).into_iter().flatten() {
            if let Some(row) = self.by_hash.get_mut(hash) {
                row.revoked_at.get_or_insert(at);
            }
        }
    }

    /// Revoke every refresh token of `user`.
    pub(crate) fn revoke_user(&mut self, user: Uuid, at: DateTime<Utc>) {
        let families = self.by_user.get(&user).cloned().unwrap_or_default();
        for family in families {
            self.revoke_family(family, at);
        }
    }
}
